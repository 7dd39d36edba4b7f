// What the live view (slpc --web) holds: the latest messages slpc received, bounded in bytes,
// each numbered in the order it came, so that a viewer that comes back after a drop gets exactly
// what it missed while that is still here. A message is kept as it came, and parsed and written
// as JSON only when a viewer first needs it: with nobody watching, the view costs a copy. Pure:
// the time comes in as an argument.

import { formatJson, parseSyslog } from "../../lib.ts";

/** A message as slpc received it: its bytes, the --server it came from, and its number in that server's run. */
export interface Arrival {
  message: Uint8Array;
  /** The --server, HOST:PORT. */
  from: string;
  /** The server run that numbered it. */
  server: string;
  seq: number;
}

/** What viewers need of a message: its JSON (docs/output.md's schema) and what the view's filter reads. */
export interface Prepared {
  /** One line of `--format json`, its LF included. */
  json: Buffer;
  /** The message's bytes with ASCII capitals lowered: what the text filter searches. */
  lower: Buffer;
  severity: number | undefined;
  /** HOSTNAME and APP-NAME (or tag), lower case. */
  host: string | undefined;
  app: string | undefined;
}

export interface Held {
  /** Its number in the view, from 1, in the order slpc received the messages. */
  readonly id: number;
  readonly from: string;
  readonly server: string;
  readonly seq: number;
  /** When slpc received it, in milliseconds since the epoch. */
  readonly received: number;
  /** Its bytes, until it is prepared. */
  raw?: Buffer;
  prepared?: Prepared;
}

/**
 * What a message costs beside its bytes, counted against the bound: its object and its buffer's,
 * so that a flood of one-byte messages is bounded too; and once prepared, the objects of that
 * form (two buffers, its fields). Measured on Bun 1.4.5: 350 bytes of heap for a message of 200
 * bytes as it came, 1,580 prepared (history.test.ts holds the heap to the bound).
 */
export const HELD_OVERHEAD = 256;
export const PREPARED_OVERHEAD = 1024;

/**
 * @example
 * ```ts
 * import { History } from "./slpc/web/history.ts";
 * const history = new History(1024 * 1024);
 * const held = history.add({ message: Buffer.from("<38>web sshd[1]: hi"), from: "web:6514", server: "r1", seq: 7 }, 0);
 * history.prepare(held).json.toString(); // {"from":"web:6514","server":"r1","seq":7,...,"message":"hi"}\n
 * history.at(held.id) === held; // true, until newer messages push it out
 * ```
 */
export class History {
  /** The most bytes held, counted as `weigh` counts them. */
  readonly limit: number;
  #items: (Held | undefined)[] = [];
  #head = 0;
  #bytes = 0;
  #next = 1;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** The id of the oldest message held; `next` when none is. */
  get first(): number {
    return this.#next - (this.#items.length - this.#head);
  }

  /** The id the next message will get. */
  get next(): number {
    return this.#next;
  }

  /** Bytes held, as `weigh` counts them: never above `limit`, but for the newest message alone. */
  get bytes(): number {
    return this.#bytes;
  }

  /** A message slpc received at `now`: held, and the oldest pushed out while the bound is passed. */
  add(arrival: Arrival, now: number): Held {
    const { from, server, seq } = arrival;
    // A copy: the message may be a view into a larger read buffer, which it would keep alive.
    const held: Held = { id: this.#next++, from, server, seq, received: now, raw: Buffer.from(arrival.message) };
    this.#items.push(held);
    this.#bytes += weigh(held);
    this.#trim();
    return held;
  }

  /** The message with this id, while it is held. */
  at(id: number): Held | undefined {
    const first = this.first;
    return id >= first && id < this.#next ? this.#items[this.#head + id - first] : undefined;
  }

  /**
   * Its JSON and the fields the filter reads, made once however many viewers ask. Its bytes are
   * let go then (the JSON holds them all), and its new size is counted, which may push out the oldest.
   */
  prepare(held: Held): Prepared {
    if (held.prepared) return held.prepared;
    const raw = held.raw!;
    const before = weigh(held);
    held.prepared = prepared(held, raw);
    held.raw = undefined;
    // One pushed out already was counted out when it left.
    if (held.id >= this.first) {
      this.#bytes += weigh(held) - before;
      this.#trim();
    }
    return held.prepared;
  }

  /** Pushes out the oldest while more than `limit` is held, keeping the newest. */
  #trim(): void {
    while (this.#bytes > this.limit && this.#items.length - this.#head > 1) {
      const oldest = this.#items[this.#head]!;
      this.#items[this.#head++] = undefined;
      this.#bytes -= weigh(oldest);
    }
    // The spent front is dropped once it is most of the array: amortised O(1), bounded memory.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** What a message counts against the bound, as it is now: its bytes, or its JSON and lowered text. */
function weigh(held: Held): number {
  const { raw, prepared } = held;
  return raw ? HELD_OVERHEAD + raw.length : PREPARED_OVERHEAD + prepared!.json.length + prepared!.lower.length;
}

const CAPITAL_A = 0x41;
const CAPITAL_Z = 0x5a;

function prepared(held: Held, raw: Buffer): Prepared {
  const lower = Buffer.from(raw);
  for (let i = 0; i < lower.length; i++) {
    const byte = lower[i]!;
    if (byte >= CAPITAL_A && byte <= CAPITAL_Z) lower[i] = byte + 0x20;
  }
  const { from, server, seq } = held;
  const context = { from, server, seq, received: new Date(held.received) };
  try {
    const parsed = parseSyslog(raw);
    const json = Buffer.from(formatJson(parsed, context));
    const { severity, hostname, app } = parsed;
    return { json, lower, severity, host: hostname?.toLowerCase(), app: app?.toLowerCase() };
  } catch {
    // A bug must not stop the view at the message that shows it: that message comes as its bytes.
    const json = Buffer.from(formatJson({ message: raw, utf8: false, format: "unknown" }, context));
    return { json, lower, severity: undefined, host: undefined, app: undefined };
  }
}
