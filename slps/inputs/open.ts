// The inputs slps was told to open, each by its kind, and opened: the one place that knows them all.

import { bindFailure, type NamedInput, reason } from "../../lib.ts";
import packageJson from "../../package.json" with { type: "json" };
import type { Intake } from "../intake.ts";
import type { Input } from "./input.ts";
import { RelpInput } from "./relp.ts";
import { TcpInput } from "./tcp.ts";
import { UdpInput } from "./udp.ts";
import { UnixInput } from "./unix.ts";

export interface InputSettings {
  intake: Intake;
  log: (line: string) => void;
  /** --udp-buffer */
  udpBuffer: number;
  /** --input-connections */
  maxConnections: number;
  /** --input-timeout, in ms */
  timeoutMs: number;
  /**
   * The entry point's URL (slps.ts's import.meta.url), which the unix input's reader is found from:
   * in a compiled slps every module's import.meta.url is the entry's, and the reader lies where
   * `bun build --compile slps.ts slps/inputs/unix_reader.ts` puts it, at its path from the entry.
   */
  entry: string;
}

/** Opens every input, in order; throws the line that says why one could not be, naming its flag. */
export async function openInputs(named: readonly NamedInput[], settings: InputSettings): Promise<Input[]> {
  const inputs: Input[] = [];
  for (const { address, flag } of named) {
    const input =
      address.kind === "udp"
        ? new UdpInput(address, { ...settings, bufferBytes: settings.udpBuffer })
        : address.kind === "tcp"
          ? new TcpInput(address, settings)
          : address.kind === "relp"
            ? new RelpInput(address, { ...settings, software: `slps,${packageJson.version}` })
            : new UnixInput(address, { ...settings, reader: new URL("./slps/inputs/unix_reader.ts", settings.entry) });
    try {
      await input.open();
    } catch (error) {
      if (address.kind === "unix") throw new Error(`cannot listen on ${input.name} (--input): ${reason(error)}`);
      throw new Error(bindFailure(flag, address, error, flag === "udp" ? undefined : input.name));
    }
    inputs.push(input);
  }
  return inputs;
}
