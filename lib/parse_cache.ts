// What slps's filters read of each message, parsed once for all filtering clients and kept in a
// fixed number of slots, so that what clients do cannot make it grow (issue 17).

import type { Selector } from "./client_stream.ts";
import { FILTER_LIMITS, type Filter, type FilterFields, matches } from "./filter.ts";
import type { ResumeStore } from "./resume_buffer.ts";
import { parseSyslog } from "./syslog_message.ts";

/**
 * Slots of the cache: one flush scans at most MAX_SCAN (1,024) messages for a client, so clients
 * that stand near each other (live ones, at the head) find what the first of them parsed.
 */
export const PARSE_CACHE_SLOTS = 1024;

/** One slot: the fields of message `seq`. */
interface Entry extends FilterFields {
  seq: number;
}

/**
 * The filter fields of recent messages of a buffer (a ResumeStore), by sequence number. Message `seq` lives
 * in slot `seq % slots` until a message that maps to the same slot is asked for: a client far
 * behind parses again what it asks for, and costs no more than without a cache.
 *
 * Memory is bounded whatever the messages and clients: a slot holds two names of at most
 * FILTER_LIMITS.name characters (a longer one can match no filter, so it is kept as absent) and a
 * view of the message in the buffer, under a kilobyte; no structured data is decoded. Kept rather
 * than parsed again for each client, as measured with bench/filter_cost.ts: a lookup costs 0.03 µs,
 * a parse 1.4 µs for a plain message and up to 120 µs for 64 KB of structured data, which every
 * further filtering client would pay again; 1,024 slots hold under a megabyte.
 *
 * @example
 * ```ts
 * import { ParseCache, ResumeBuffer, parsePrograms } from "./lib.ts";
 * const buffer = new ResumeBuffer(1 << 20);
 * const seq = buffer.append(new TextEncoder().encode("<38>Jan  5 10:11:12 web sshd[42]: Accepted key"));
 * const cache = new ParseCache(buffer);
 * console.log(cache.selector({ programs: parsePrograms("sshd") })(seq)); // true
 * ```
 */
export class ParseCache {
  #buffer: ResumeStore;
  #slots: (Entry | undefined)[];

  constructor(buffer: ResumeStore, slots: number = PARSE_CACHE_SLOTS) {
    this.#buffer = buffer;
    this.#slots = new Array(slots).fill(undefined);
  }

  /** The fields of message `seq`, which the buffer must hold; its `message` is a view of the buffer. */
  fields(seq: number): FilterFields {
    const slot = seq % this.#slots.length;
    let entry = this.#slots[slot];
    if (entry?.seq !== seq) {
      const { facility, severity, hostname, app, message } = parseSyslog(this.#buffer.message(seq), {
        structuredData: false,
      });
      entry = { seq, facility, severity, hostname: named(hostname), app: named(app), message };
      this.#slots[slot] = entry;
    }
    return entry;
  }

  /** Whether a message passes `filter`, by number: what ClientStream.filterWith takes. */
  selector(filter: Filter): Selector {
    return (seq) => matches(filter, this.fields(seq));
  }
}

/** A name as a filter can match it: one longer than any filter's name can match none. */
const named = (name: string | undefined) =>
  name !== undefined && name.length <= FILTER_LIMITS.name ? name : undefined;
