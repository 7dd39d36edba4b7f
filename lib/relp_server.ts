// The server's side of a RELP session, sans I/O: what rsyslog's omrelp (librelp's client) sends,
// read into requests, and the answers it expects (doc/relp.md, src/relpframe.c and src/copen.c in
// rsyslog/librelp). The caller hands each message on, answers `200 OK` once it is safe, in the
// order of the requests, and moves the bytes. lib/relp.ts is the client's side.
//
// A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The client numbers its frames from 1, one
// up each, and librelp's server ends the session on any other number: so does this one. After
// 999,999,999 the spec wraps to 1 (librelp's client renews its session before that).

import { MAX_MESSAGE } from "./framing.ts";

/** What a client asks, in the order it asked. */
export type RelpRequest =
  /** Opens the session: answer with `openAnswer(offers)`. */
  | { command: "open"; txnr: number; offers: string }
  /** One message; or one over `max` bytes, read through and not kept (answer it all the same). */
  | { command: "syslog"; txnr: number; message: Uint8Array }
  | { command: "syslog"; txnr: number; oversize: number }
  /** Ends the session: answer it (`relpAnswer(txnr, "")`) after the answers before it, then close. */
  | { command: "close"; txnr: number };

/** librelp's default largest DATALEN; a larger frame ends the session, as librelp's default (abort) does. */
export const MAX_RELP_DATA = 128 * 1024;
/** The longest `open` or `close` data kept: an open offer is about 100 bytes. */
const MAX_RELP_OFFERS = 4096;
const MAX_TXNR = 999_999_999;
/** The hint a server sends before it closes a session: txnr 0, no answer expected. */
export const RELP_SERVERCLOSE = Buffer.from("0 serverclose 0\n");
const LF = 0x0a;
/** The longest header, `999999999 <32 letters> 999999999`, and the byte after it. */
const MAX_HEADER = 9 + 1 + 32 + 1 + 9 + 1;

type Header = { txnr: number; command: string; length: number };

/**
 * @example
 * const session = new RelpServerSession();
 * session.push(Buffer.from("1 open 15 relp_version=0\n\n2 syslog 6 <13>hi\n"));
 * // [{ command: "open", txnr: 1, offers: "relp_version=0\n" }, { command: "syslog", txnr: 2, message: "<13>hi" }]
 * write(relpAnswer(2, "200 OK")); // "2 rsp 6 200 OK\n"
 */
export class RelpServerSession {
  /** Why the session cannot go on, once it cannot; nothing is read after that. */
  error: string | undefined;
  /** Set once the client sent `close`: what comes after it is not read. */
  closed = false;
  readonly #max: number;
  #opened = false;
  #nextTxnr = 1;
  /** The start of a header a chunk ended in, as text. */
  #header = "";
  #frame: Header | undefined;
  /** Bytes of the frame's data still to come, and what is kept of them. */
  #missing = 0;
  #parts: Uint8Array[] = [];
  #over = false;

  /**
   * @param options.max the longest message kept; a longer one (up to MAX_RELP_DATA) is read through as `oversize`
   * @param options.opened a session open from the start, whose next txnr is `opened`: a test's way to the wrap
   */
  constructor(options: { max?: number; opened?: number } = {}) {
    this.#max = options.max ?? MAX_MESSAGE;
    if (options.opened !== undefined) [this.#opened, this.#nextTxnr] = [true, options.opened];
  }

  /** Whether `open` was answered: before it, a client may send nothing else. */
  get opened(): boolean {
    return this.#opened;
  }

  /** True while a frame is partly read. */
  get midFrame(): boolean {
    return this.#header !== "" || this.#frame !== undefined;
  }

  /** Reads the client's next bytes; returns the requests they complete, in order. */
  push(chunk: Uint8Array): RelpRequest[] {
    return [...this.requests(chunk)];
  }

  /**
   * The requests `chunk` completes, read as they are asked for: what waits to be asked costs the
   * chunk's bytes, not an object a request. Read each to its end before the next chunk.
   */
  *requests(chunk: Uint8Array): Generator<RelpRequest, void, undefined> {
    let i = 0;
    while (i < chunk.length && this.error === undefined && !this.closed) {
      if (this.#frame === undefined) {
        i = this.#readHeader(chunk, i);
      } else if (this.#missing > 0) {
        const take = Math.min(this.#missing, chunk.length - i);
        if (!this.#over) this.#parts.push(chunk.subarray(i, i + take));
        this.#missing -= take;
        i += take;
      } else {
        if (chunk[i++] !== LF) this.error = `RELP frame ${this.#frame.txnr} does not end in LF`;
        else yield this.#request();
      }
    }
  }

  /** Reads header bytes from `i`; returns where it stopped. A header is short: it is read as text. */
  #readHeader(chunk: Uint8Array, i: number): number {
    const more = Buffer.from(chunk.buffer, chunk.byteOffset + i, Math.min(chunk.length - i, MAX_HEADER));
    const head = this.#header + more.toString("latin1");
    const header = /^(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])/.exec(head);
    if (!header) {
      // The start of a header waits for the rest, which is at most MAX_HEADER bytes on: this ends.
      const partial = /^\d{0,9}( [A-Za-z]{0,32}( \d{0,9})?)?$/.test(head) && head.length < MAX_HEADER;
      if (partial && i + more.length === chunk.length) {
        this.#header = head;
        return chunk.length;
      }
      this.error = `malformed RELP header ${JSON.stringify(head.slice(0, 40))}`;
      return i;
    }
    const consumed = header[0].length - this.#header.length;
    this.#header = "";
    const frame = { txnr: Number(header[1]), command: header[2]!, length: Number(header[3]) };
    if ((header[4] === "\n") !== (frame.length === 0)) {
      this.error = `malformed RELP header ${JSON.stringify(header[0])}`;
      return i;
    }
    const why = this.#refusal(frame);
    if (why) {
      this.error = why;
      return i;
    }
    this.#frame = frame;
    this.#missing = frame.length;
    this.#over = frame.length > this.#max;
    // With no data the LF that ended the header is the frame's trailer too: it is read as such.
    return i + consumed - (frame.length === 0 ? 1 : 0);
  }

  /** Why this frame ends the session, before its data is read; undefined when it may come. */
  #refusal({ txnr, command, length }: Header): string | undefined {
    if (txnr !== this.#nextTxnr) return `RELP txnr ${txnr} where ${this.#nextTxnr} was due`;
    this.#nextTxnr = txnr === MAX_TXNR ? 1 : txnr + 1;
    if (length > MAX_RELP_DATA) return `RELP frame of ${length} bytes, over ${MAX_RELP_DATA}`;
    if (command === "syslog") return this.#opened ? undefined : "RELP syslog before open";
    if (command !== "open" && command !== "close") return `unknown RELP command ${JSON.stringify(command)}`;
    if (command === "open" && this.#opened) return "RELP open sent twice";
    if (length > MAX_RELP_OFFERS) return `RELP ${command} of ${length} bytes, over ${MAX_RELP_OFFERS}`;
    return undefined;
  }

  #request(): RelpRequest {
    const { txnr, command, length } = this.#frame!;
    const data = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts);
    const over = this.#over;
    [this.#frame, this.#parts, this.#over] = [undefined, [], false];
    if (command === "open") {
      this.#opened = true;
      return { command, txnr, offers: Buffer.from(data).toString("latin1") };
    }
    if (command === "close") {
      this.closed = true;
      return { command, txnr };
    }
    return over ? { command: "syslog", txnr, oversize: length } : { command: "syslog", txnr, message: data };
  }
}

/** The frame that answers request `txnr`: `200 OK`, a `500 ...` refusal, or empty for `close`. */
export function relpAnswer(txnr: number, text: string): Buffer {
  return Buffer.from(text === "" ? `${txnr} rsp 0\n` : `${txnr} rsp ${Buffer.byteLength(text)} ${text}\n`, "latin1");
}

/**
 * The answer to a client's open offers: ours when it speaks RELP version 0 and offers the syslog
 * command; otherwise librelp's refusal, and `refused` says why, for the log line before closing.
 */
export function openAnswer(offers: string, software: string): { text: string; refused?: string } {
  const values = new Map<string, string>();
  for (const line of offers.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) values.set(line.slice(0, at), line.slice(at + 1));
  }
  const version = values.get("relp_version");
  if (version === undefined || !/^\d+$/.test(version)) {
    return { text: "500 error: no relp_version offered", refused: "the client offers no RELP version" };
  }
  if (!(values.get("commands") ?? "").split(",").includes("syslog")) {
    // librelp's words, which rsyslog's log shows.
    return { text: "500 required command not supported by client", refused: "the client does not offer syslog" };
  }
  return { text: `200 OK\nrelp_version=0\nrelp_software=${software}\ncommands=syslog` };
}
