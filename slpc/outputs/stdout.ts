// --stdout and --format: each read's messages as lines, in one write, confirmed once stdout says
// it took them: until then a SIGTERM could lose them, and the resume point must not pass them.

import {
  type Entry,
  formatJson,
  formatPretty,
  formatRaw,
  messagesAsLines,
  type OutputFormat,
  parseSyslog,
  reason,
} from "../../lib.ts";
import { Output, type OutputOptions } from "./output.ts";

export interface StdoutOptions<S> extends OutputOptions<S> {
  format: OutputFormat;
  /** Whether pretty colours its lines by severity. */
  color: boolean;
  /** Whether each raw or pretty line begins with its server (--prefix). */
  prefix: boolean;
  /** Every server followed: how each is named in --prefix and JSON's `from`, and the host pretty shows. */
  servers: readonly S[];
  describe: (server: S) => { target: string; host: string };
}

export class StdoutOutput<S> extends Output<S> {
  readonly #options: StdoutOptions<S>;
  /** Each server's --prefix, padded to the longest so that the columns after it line up; "" without. */
  readonly #prefixes: Map<S, string>;
  /** Writes stdout has not confirmed, oldest first: how many messages each holds. */
  readonly #writes: number[] = [];
  /** stdout has not taken everything written to it: no server is read meanwhile. */
  #pipeFull = false;
  /** Set once a formatter failed on a message: said once, not once a message. */
  #formatFailed = false;

  constructor(options: StdoutOptions<S>) {
    super(options);
    this.#options = options;
    const targets = options.servers.map((server) => options.describe(server).target);
    const width = Math.max(...targets.map((target) => target.length));
    this.#prefixes = new Map(options.servers.map((s, i) => [s, options.prefix ? `${targets[i]!.padEnd(width)} ` : ""]));
    // One listener for the life of the process, not one per pause.
    process.stdout.on("drain", () => {
      this.#pipeFull = false;
      this.changed();
    });
  }

  override get full(): boolean {
    return this.#pipeFull;
  }

  unconfirmed(count: number, seconds: number): string {
    return `stdout did not take ${count} lines within ${seconds} s; --state records only what it took`;
  }

  /** The lines of what waits, as one write. */
  protected sendWaiting(): void {
    const count = this.ledger.next(Number.POSITIVE_INFINITY).length;
    if (count === 0) return;
    const written = this.ledger.give(count);
    this.#writes.push(count);
    const taken = process.stdout.write(this.#lines(written), (error) => {
      // A failed write ends slpc (stdout's error event): what it held is not confirmed.
      if (!error) this.ledger.confirm(this.#writes.shift()!);
    });
    if (!taken) this.#pipeFull = true; // stop reading the servers until stdout drains
  }

  /** The messages as stdout shows them; raw is the bytes as they came, which needs no parsing. */
  #lines(messages: readonly Entry<S>[]): Buffer {
    const { format, prefix } = this.#options;
    if (format === "raw" && !prefix) return messagesAsLines(messages.map(({ message }) => message));
    const received = new Date();
    // A terminal may have been resized since the last write.
    const width = (process.stdout.columns || 80) - (this.#prefixes.values().next().value?.length ?? 0);
    const lines: Buffer[] = [];
    for (const { message, from, server, seq } of messages) {
      const shown = this.#prefixes.get(from)!;
      if (format === "raw") {
        lines.push(Buffer.concat([Buffer.from(shown), formatRaw(message)]));
        continue;
      }
      try {
        const parsed = parseSyslog(message);
        const { target, host } = this.#options.describe(from);
        const line =
          format === "json"
            ? formatJson(parsed, { from: target, server, seq, received })
            : formatPretty(parsed, { server: host, now: received, color: this.#options.color, width }).replace(
                /^(?=.)/gm,
                shown,
              );
        lines.push(Buffer.from(line));
      } catch (error) {
        // A bug must not stop the stream at the message that shows it: that message goes out raw.
        if (!this.#formatFailed) this.log(`--format ${format}: ${reason(error)}; printing such messages raw`);
        this.#formatFailed = true;
        lines.push(Buffer.concat([Buffer.from(shown), formatRaw(message)]));
      }
    }
    return Buffer.concat(lines);
  }
}
