// Where slps takes messages from the local syslog daemon: the values of `--input`. A bare
// HOST:PORT means UDP, as `--udp` and slpc's `--forward` read it; a scheme picks RFC 6587 TCP,
// RELP, or a local datagram socket such as /dev/log.

import { type Address, addressKey, formatAddress, parseHostPort } from "./address.ts";
import { unixPath } from "./forward_address.ts";
import { reason } from "./log.ts";
import { UsageError } from "./options.ts";

/** An input on a network address: `kind` is the protocol it speaks there. */
type HostInput<K extends "udp" | "tcp" | "relp"> = { kind: K; host: string; port: number };
export type InputAddress = HostInput<"udp"> | HostInput<"tcp"> | HostInput<"relp"> | { kind: "unix"; path: string };

const FORMS = "udp://HOST:PORT, tcp://HOST:PORT, relp://HOST:PORT, unix:/PATH or HOST:PORT";

/**
 * `udp://HOST:PORT` or `HOST:PORT`, `tcp://HOST:PORT`, `relp://HOST:PORT` (`[::1]:PORT` for an IPv6
 * literal), or `unix:/PATH` (also `unix:///PATH`). Throws one line naming the problem otherwise.
 *
 * @example
 * parseInputAddress("relp://127.0.0.1:2514"); // { kind: "relp", host: "127.0.0.1", port: 2514 }
 * parseInputAddress("unix:/run/slps.sock"); // { kind: "unix", path: "/run/slps.sock" }
 */
export function parseInputAddress(text: string): InputAddress {
  if (text === "") throw new Error(`required: ${FORMS}`);
  if (text.startsWith("unix:")) return { kind: "unix", path: unixPath(text.slice("unix:".length), "unix") };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  const kind = scheme ? scheme[1]!.toLowerCase() : "udp";
  if (kind !== "udp" && kind !== "tcp" && kind !== "relp") {
    throw new Error(`unknown scheme "${scheme![1]}"; expected ${FORMS}`);
  }
  const rest = scheme ? text.slice(scheme[0].length) : text;
  try {
    return { kind, ...parseHostPort(rest) } as InputAddress;
  } catch (error) {
    const message = reason(error);
    if (!scheme && message === "expected HOST:PORT") throw new Error(`expected ${FORMS}`);
    if (message === "required") throw new Error(`expected ${kind}://HOST:PORT`);
    throw new Error(scheme ? message.replace("expected HOST:PORT", `expected ${kind}://HOST:PORT`) : message);
  }
}

/** The address as `--input` writes it, for log lines and numbers. */
export function formatInputAddress(input: InputAddress): string {
  return input.kind === "unix" ? `unix:${input.path}` : `${input.kind}://${formatAddress(input)}`;
}

/**
 * What two inputs must not share: UDP has its ports, TCP's are shared by tcp:// and relp://, a
 * unix socket is its path. `host` may be the address a name resolved to; an IP address is written
 * as the kernel compares it (::ffff:127.0.0.1 is 127.0.0.1, 0::1 is ::1).
 */
export function inputKey(input: InputAddress, host?: string): string {
  if (input.kind === "unix") return `unix:${input.path}`;
  const address: Address = { host: boundHost(host ?? input.host), port: input.port };
  return `${input.kind === "udp" ? "udp" : "tcp"} ${addressKey(address)}`;
}

/**
 * `--input` as given, repeated or comma-separated: each input once. A unix path cannot hold a
 * comma, which would split it.
 *
 * @example
 * parseInputList("relp://127.0.0.1:2514,unix:/run/slps.sock"); // two inputs
 * parseInputList("tcp://127.0.0.1:514,relp://127.0.0.1:514"); // throws: one TCP port, two inputs
 */
export function parseInputList(text: string): InputAddress[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.every((item) => item === "")) throw new Error(`required: ${FORMS}`);
  const inputs = items
    .filter((item) => item !== "")
    .map((item) => {
      try {
        return parseInputAddress(item);
      } catch (error) {
        throw items.length > 1 ? new Error(`'${item}': ${reason(error)}`) : error;
      }
    });
  refuseShared(inputs);
  return inputs;
}

/** An IP address as one spelling (an IPv4 address mapped into IPv6 as itself); a name as it is. */
function boundHost(host: string): string {
  if (!host.includes(":")) return host;
  let canonical: string;
  try {
    canonical = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return host;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const [high, low] = [Number.parseInt(mapped[1]!, 16), Number.parseInt(mapped[2]!, 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join(".");
}

/** Throws when two inputs would share a socket, naming both; `hosts` are what each host resolved to. */
export function refuseShared(inputs: readonly InputAddress[], hosts: readonly (string | undefined)[] = []): void {
  inputs.forEach((input, index) => {
    for (let earlier = 0; earlier < index; earlier++) {
      const why = clash(inputs[earlier]!, hosts[earlier], input, hosts[index]);
      if (why) throw new Error(why);
    }
  });
}

/** Why inputs `a` and `b` (whose hosts resolved to `hostA`, `hostB`) cannot both listen; undefined if they can. */
function clash(a: InputAddress, hostA: string | undefined, b: InputAddress, hostB: string | undefined) {
  const [one, other] = [formatInputAddress(a), formatInputAddress(b)];
  const [keyA, keyB] = [inputKey(a, hostA), inputKey(b, hostB)];
  if (keyA === keyB) return one === other ? `${one} is named twice` : `${one} and ${other} are the same address`;
  if (a.kind === "unix" || b.kind === "unix" || a.port !== b.port || (a.kind === "udp") !== (b.kind === "udp")) return;
  // A wildcard takes the port on the addresses it covers: the IPv4 one on every IPv4 address, the
  // IPv6 one on every address, as Linux binds it (net.ipv6.bindv6only 0).
  const [boundA, boundB] = [boundHost(hostA ?? a.host), boundHost(hostB ?? b.host)];
  for (const [wide, narrow] of [
    [boundA, boundB],
    [boundB, boundA],
  ]) {
    const where =
      wide === "::" ? "every address" : wide === "0.0.0.0" && !narrow!.includes(":") && "every IPv4 address";
    if (where) return `${one} and ${other} cannot both listen: ${wide} takes port ${a.port} on ${where}`;
  }
}

/** An input, and the flag that named it: `udp` for --udp, `input` for --input. */
export interface NamedInput {
  address: InputAddress;
  flag: "udp" | "input";
}

/**
 * The inputs slps opens: those of --input, and --udp's when --udp was given or --input was not,
 * so that slps without --input receives over UDP as it always has. Throws when --udp-buffer was
 * given and no UDP input is there to use it.
 *
 * @example
 * chooseInputs({ host: "127.0.0.1", port: 514 }, undefined, { udp: false, udpBuffer: false }); // --udp's input
 * chooseInputs({ host: "127.0.0.1", port: 514 }, [relp], { udp: false, udpBuffer: false }); // relp alone
 */
export function chooseInputs(
  udp: Address,
  inputs: InputAddress[] | undefined,
  given: { udp: boolean; udpBuffer: boolean },
): NamedInput[] {
  const chosen: NamedInput[] = inputs?.map((address) => ({ address, flag: "input" })) ?? [];
  if (given.udp || inputs === undefined) chosen.unshift({ address: { kind: "udp", ...udp }, flag: "udp" });
  if (given.udpBuffer && !chosen.some(({ address }) => address.kind === "udp")) {
    throw new UsageError("--udp-buffer sizes a UDP input's buffer, and there is none: add one with --input or --udp");
  }
  return chosen;
}

/**
 * Looks up each input's host with `lookup` (node:dns's), and refuses two inputs that would share
 * a socket once their names are resolved. Throws a UsageError naming the flag: a typo is one line
 * at start, not a socket that fails later.
 */
export async function resolveInputs(
  inputs: readonly NamedInput[],
  lookup: (host: string) => Promise<{ address: string }>,
): Promise<void> {
  const hosts: (string | undefined)[] = [];
  for (const { address, flag } of inputs) {
    if (address.kind === "unix") {
      hosts.push(undefined);
      continue;
    }
    try {
      hosts.push((await lookup(address.host)).address);
    } catch (error) {
      const shown = flag === "udp" ? formatAddress(address) : formatInputAddress(address);
      throw new UsageError(`--${flag} ${shown}: cannot resolve ${address.host}: ${reason(error)}`);
    }
  }
  try {
    refuseShared(
      inputs.map(({ address }) => address),
      hosts,
    );
  } catch (error) {
    throw new UsageError(`--input: ${reason(error)}`);
  }
}
