// Framing. A log message travels as an octet-counted frame as in RFC 5425 section 4.3,
// `MSG-LEN SP SYSLOG-MSG`, so it may hold any byte, LF and NUL included. A control message
// (hello, resume, start, heartbeat, error) is framed the same way behind a `!`, as in
// `!27 {"type":"heartbeat"}`: a data frame always starts with a digit 1-9, so the two can never
// be mistaken for each other.

import type { ControlMessage } from "./protocol.ts";

/** The largest payload of one UDP datagram over IPv4, and so the largest syslog message we carry. */
export const MAX_MESSAGE = 65507;

/** The most bytes one data frame takes: the longest message and its header. */
export const MAX_FRAME = MAX_MESSAGE + String(MAX_MESSAGE).length + 1;

/** The frame for one log message: its length in decimal, a space, the message. */
export function encodeFrame(message: Uint8Array): Buffer {
  const header = `${message.length} `;
  const frame = Buffer.allocUnsafe(header.length + message.length);
  frame.write(header, 0, "latin1");
  frame.set(message, header.length);
  return frame;
}

/** The frame for one control message: `!`, the length of its JSON, a space, the JSON. */
export function encodeControl(message: ControlMessage): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  return Buffer.concat([Buffer.from(`!${json.length} `), json]);
}

export interface Frame {
  control: boolean;
  body: Uint8Array;
}

const SPACE = 0x20;
const BANG = 0x21;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** The longest control message accepted: they are small JSON objects. */
export const MAX_CONTROL = 4096;
const MAX_CONTROL_DIGITS = String(MAX_CONTROL).length;

/**
 * Turns a byte stream, cut anywhere, back into the frames that were sent.
 *
 * @example
 * const deframer = new Deframer(65507);
 * deframer.push(Buffer.from("5 hel")); // []
 * deframer.push(Buffer.from("lo3 abc")); // [{ control: false, body: "hello" }, { control: false, body: "abc" }]
 */
export class Deframer {
  /** Why the stream is unusable, once it is; nothing is decoded after that. */
  error: string | undefined;
  #maxLength: number;
  /** Digits of #maxLength and of MAX_CONTROL: a length with more is refused before its space. */
  #maxDigits: number;
  /** Whether the frame being read is a control frame. */
  #control = false;
  /** The length read so far; -1 while between frames. */
  #length = -1;
  #digits = 0;
  /** Parts of the body being collected, and how many bytes it still needs. */
  #parts: Uint8Array[] = [];
  #missing = 0;

  /** @param maxLength the longest log message accepted; a longer length is an error */
  constructor(maxLength: number) {
    this.#maxLength = maxLength;
    this.#maxDigits = String(maxLength).length;
  }

  /** Bytes held for the frame being received: never more than the longest frame allowed. */
  get buffered(): number {
    return this.#parts.reduce((sum, part) => sum + part.length, 0);
  }

  /** True while a frame is partly received. */
  get midFrame(): boolean {
    return this.#length !== -1 || this.#missing > 0 || this.#control;
  }

  /** Feeds the next bytes; returns the frames they complete, in order. */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let i = 0;
    while (i < chunk.length && this.error === undefined) {
      if (this.#missing > 0) {
        const take = Math.min(this.#missing, chunk.length - i);
        this.#parts.push(chunk.subarray(i, i + take));
        this.#missing -= take;
        i += take;
        if (this.#missing === 0) frames.push(this.#takeFrame());
        continue;
      }
      if (this.#length === -1 && !this.#control) {
        const end = this.#wholeFrameAt(chunk, i);
        if (end > 0) {
          frames.push({ control: chunk[i] === BANG, body: chunk.subarray(end - this.#fastLength, end) });
          i = end;
          continue;
        }
      }
      const byte = chunk[i++]!;
      const limit = this.#control ? MAX_CONTROL : this.#maxLength;
      if (byte >= DIGIT_0 && byte <= DIGIT_9) {
        if (this.#length === -1 && byte === DIGIT_0) this.error = "frame length starts with 0";
        else if (++this.#digits > (this.#control ? MAX_CONTROL_DIGITS : this.#maxDigits))
          this.error = `frame length over ${limit} bytes`;
        else this.#length = Math.max(this.#length, 0) * 10 + (byte - DIGIT_0);
      } else if (byte === SPACE && this.#length > 0) {
        if (this.#length > limit) this.error = `frame length ${this.#length} over ${limit} bytes`;
        this.#missing = this.#length;
        this.#length = -1;
        this.#digits = 0;
      } else if (byte === BANG && this.#length === -1 && !this.#control) {
        this.#control = true;
      } else {
        this.error = `malformed frame: expected a length, got byte 0x${byte.toString(16).padStart(2, "0")}`;
      }
    }
    return frames;
  }

  /** The body length #wholeFrameAt found last. */
  #fastLength = 0;

  /**
   * Where the frame that starts at `start` ends, when the whole of it, valid, is in `chunk`; else
   * 0, and the byte-by-byte path reads it (and names what is wrong with it). Most frames arrive
   * whole: reading them in one go costs a fraction of the byte-by-byte path.
   */
  #wholeFrameAt(chunk: Uint8Array, start: number): number {
    const control = chunk[start] === BANG;
    const first = control ? start + 1 : start;
    const maxDigits = control ? MAX_CONTROL_DIGITS : this.#maxDigits;
    let at = first;
    let length = 0;
    for (; at < chunk.length && at - first < maxDigits; at++) {
      const byte = chunk[at]!;
      if (byte < DIGIT_0 || byte > DIGIT_9) break;
      length = length * 10 + (byte - DIGIT_0);
    }
    const valid = at > first && chunk[first] !== DIGIT_0 && chunk[at] === SPACE;
    if (!valid || length > (control ? MAX_CONTROL : this.#maxLength) || at + 1 + length > chunk.length) return 0;
    this.#fastLength = length;
    return at + 1 + length;
  }

  #takeFrame(): Frame {
    const parts = this.#parts;
    const frame = { control: this.#control, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
    this.#parts = [];
    this.#control = false;
    return frame;
  }
}
