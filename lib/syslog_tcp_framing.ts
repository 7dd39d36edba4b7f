// Syslog over TCP as daemons send it (RFC 6587): octet-counted frames, `MSG-LEN SP SYSLOG-MSG`,
// and LF-framed ones, `SYSLOG-MSG LF`, told apart per frame the way rsyslog's imtcp tells them: a
// frame that starts with a digit is octet-counted, anything else runs to the next LF. (No syslog
// message starts with a digit: it starts with its PRI, `<`.) rsyslog's and syslog-ng's `syslog()`
// driver count octets; syslog-ng's `network()`, and most other senders, end each message with LF.
//
// A message over the longest we carry is read through, never held, and reported as `oversize`:
// what a sender's long message costs is the time to read it, not memory, and the messages behind
// it still count. A frame that is neither form leaves no way to find the next one: `error`.

import { MAX_MESSAGE } from "./framing.ts";

/** One frame read: a message, or one over `max` bytes that was read through and not kept. */
export type TcpFrame = { message: Uint8Array } | { oversize: number };

/** The most digits of an octet count: 999,999,999 bytes, far past any message, as librelp reads DATALEN. */
const MAX_COUNT_DIGITS = 9;
const LF = 0x0a;
const SPACE = 0x20;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

type Mode = "start" | "count" | "octets" | "line";

/**
 * @example
 * const deframer = new SyslogTcpDeframer();
 * deframer.push(Buffer.from("5 <13>a<13>b\n<1")); // [{ message: "<13>a" }, { message: "<13>b" }]
 * deframer.push(Buffer.from("3>c\n")); // [{ message: "<13>c" }]
 */
export class SyslogTcpDeframer {
  /** Why the stream cannot be read on, once it cannot; nothing is read after that. */
  error: string | undefined;
  readonly #max: number;
  #mode: Mode = "start";
  /** The octet count being read, then the bytes of the frame still to come. */
  #count = 0;
  #digits = 0;
  /** The frame's bytes so far, unless it is over `max` and read through (`#over`). */
  #parts: Uint8Array[] = [];
  #have = 0;
  #over = false;

  /** @param max the longest message kept; a longer one is read through and reported as oversize */
  constructor(max = MAX_MESSAGE) {
    this.#max = max;
  }

  /** True while a frame is partly read. */
  get midFrame(): boolean {
    return this.#mode !== "start";
  }

  /** Bytes held of the frame being read: never more than `max`. */
  get buffered(): number {
    return this.#over ? 0 : this.#have;
  }

  /** Reads the next bytes; returns the frames they complete, in order. Messages may be views of `chunk`. */
  push(chunk: Uint8Array): TcpFrame[] {
    return [...this.frames(chunk)];
  }

  /**
   * The frames `chunk` completes, read as they are asked for: what waits to be asked costs the
   * chunk's bytes, not an object a frame. Read each to its end before the next chunk, and before `end`.
   */
  *frames(chunk: Uint8Array): Generator<TcpFrame, void, undefined> {
    let i = 0;
    while (i < chunk.length && this.error === undefined) {
      if (this.#mode === "start") {
        const byte = chunk[i]!;
        if (byte < DIGIT_0 || byte > DIGIT_9) {
          this.#mode = "line";
        } else if (byte === DIGIT_0) {
          this.error = "an octet count starts with 0";
        } else {
          this.#mode = "count";
          [this.#count, this.#digits] = [0, 0];
        }
      } else if (this.#mode === "count") {
        i = this.#readCount(chunk, i);
      } else if (this.#mode === "octets") {
        const take = Math.min(this.#count, chunk.length - i);
        this.#keep(chunk.subarray(i, i + take));
        this.#count -= take;
        i += take;
        if (this.#count === 0) yield this.#frame();
      } else {
        const lf = chunk.indexOf(LF, i);
        const end = lf === -1 ? chunk.length : lf;
        this.#keep(chunk.subarray(i, end));
        i = lf === -1 ? end : lf + 1;
        if (lf !== -1) yield this.#frame();
      }
    }
  }

  /**
   * The stream ended: a message without its closing LF is a message still, as rsyslog takes it
   * (some senders leave the last LF out); an octet-counted frame cut short is lost, and the string
   * says so.
   */
  end(): TcpFrame | string | undefined {
    if (this.error !== undefined || this.#mode === "start") return undefined;
    if (this.#mode === "line") return this.#frame();
    const had = this.#mode === "count" ? "its octet count" : `${this.#have} of its ${this.#have + this.#count} bytes`;
    return `the connection ended inside an octet-counted frame, after ${had}`;
  }

  /** Reads digits of an octet count from `i`, and the space after them; returns where it stopped. */
  #readCount(chunk: Uint8Array, i: number): number {
    for (; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte >= DIGIT_0 && byte <= DIGIT_9) {
        if (++this.#digits > MAX_COUNT_DIGITS) {
          this.error = `an octet count of over ${MAX_COUNT_DIGITS} digits`;
          return i;
        }
        this.#count = this.#count * 10 + (byte - DIGIT_0);
        continue;
      }
      if (byte !== SPACE) {
        this.error = `an octet count followed by byte 0x${byte.toString(16).padStart(2, "0")}, not a space`;
        return i;
      }
      this.#mode = "octets";
      return i + 1;
    }
    return i;
  }

  #keep(part: Uint8Array): void {
    this.#have += part.length;
    if (this.#over || part.length === 0) return;
    if (this.#have > this.#max) {
      this.#over = true;
      this.#parts = [];
    } else {
      this.#parts.push(part);
    }
  }

  #frame(): TcpFrame {
    const parts = this.#parts;
    const frame: TcpFrame = this.#over
      ? { oversize: this.#have }
      : { message: parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#have) };
    [this.#mode, this.#parts, this.#have, this.#over] = ["start", [], 0, false];
    return frame;
  }
}
