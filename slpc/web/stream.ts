// One viewer's place in the view's history, and the bytes it is sent: Server-Sent Events for the
// page (each event's id says where it stands, so that EventSource's reconnect resumes there), or
// JSON lines for curl. The viewer holds a place, not a copy: what it is sent is cut from the
// history as its socket takes it, so a viewer costs the same memory however far behind it is,
// and one that falls behind the history's start skips to it and is told how many it missed.

import { type ViewFilter, viewMatches } from "./filter.ts";
import type { History } from "./history.ts";

export type StreamFormat = "sse" | "jsonl";

/**
 * The start of a stream: `Last-Event-ID` (or the page's `lastEventId` after a reload), when it
 * names an event of this run of slpc, resumes after it; anything else starts at the oldest held.
 */
export function startOf(
  history: History,
  run: string,
  lastEventId: string | undefined,
): { next: number; known: boolean } {
  const match = lastEventId === undefined ? null : /^([0-9a-f]{1,16})-(\d{1,15})$/.exec(lastEventId);
  if (!match || match[1] !== run) return { next: history.first, known: lastEventId === undefined };
  return { next: Math.min(Number(match[2]) + 1, history.next), known: true };
}

/** The id of message `id` in this run of slpc, as SSE's `id:` field carries it. */
export const eventId = (run: string, id: number) => `${run}-${id}`;

/**
 * @example
 * ```ts
 * const stream = new ViewerStream(history, {}, "sse", "5f2c", history.first);
 * stream.take(64 * 1024, 1000); // "id: 5f2c-1\ndata: {...}\n\n..." or undefined when caught up
 * ```
 */
export class ViewerStream {
  readonly format: StreamFormat;
  /** Messages that went by unsent because this viewer was behind the history's start. */
  skipped = 0;
  /** Set when it started at a place of another run of slpc: how much it missed there is not known. */
  #unknownGap: boolean;
  readonly #history: History;
  readonly #filter: ViewFilter;
  readonly #run: string;
  /** The id of the next message to look at. */
  #next: number;

  constructor(history: History, filter: ViewFilter, format: StreamFormat, run: string, start: number, known = true) {
    this.#history = history;
    this.#filter = filter;
    this.format = format;
    this.#run = run;
    this.#next = start;
    this.#unknownGap = !known;
  }

  /** Whether messages wait that it has not looked at yet. */
  get behind(): boolean {
    return this.#next < this.#history.next || this.#unknownGap;
  }

  /**
   * The next bytes for this viewer: messages that pass its filter, about `maxBytes` at most (but
   * at least one message), looking at no more than `maxLooks` messages, so that a viewer far
   * behind shares the thread. Undefined when nothing is to be sent now. In SSE the messages of
   * one take are one event, a `data:` line each, its id the last one's: a page that takes 10,000
   * messages a second handles a few dozen events, not 10,000, and resumes after the whole event.
   */
  take(maxBytes: number, maxLooks: number): Buffer | undefined {
    const parts: Buffer[] = [];
    const history = this.#history;
    const sse = this.format === "sse";
    let bytes = 0;
    /** The id of the last message in the SSE event being written; 0 while none is open. */
    let open = 0;
    const end = () => {
      if (open !== 0) parts.push(Buffer.from(`id: ${eventId(this.#run, open)}\n\n`));
      open = 0;
    };
    if (this.#unknownGap) {
      this.#unknownGap = false;
      parts.push(this.#notice(null));
    }
    for (let looks = 0; looks <= maxLooks && bytes < maxBytes; looks++) {
      // Behind the oldest held: at the start, or because preparing a message pushed out older ones.
      if (this.#next < history.first) {
        end();
        const missed = history.first - this.#next;
        this.skipped += missed;
        this.#next = history.first;
        parts.push(this.#notice(missed));
      }
      if (looks === maxLooks || this.#next >= history.next) break;
      const held = history.at(this.#next++)!;
      const prepared = history.prepare(held);
      if (!viewMatches(this.#filter, held, prepared)) continue;
      if (sse) parts.push(DATA);
      parts.push(prepared.json); // its LF ends the data line; JSON holds no other LF or CR
      bytes += prepared.json.length;
      if (sse) open = held.id;
    }
    end();
    return parts.length === 0 ? undefined : Buffer.concat(parts);
  }

  /** Says that `missed` messages went by unsent (null: an unknown number, across a restart of slpc). */
  #notice(missed: number | null): Buffer {
    const data = JSON.stringify({ skipped: missed });
    return Buffer.from(this.format === "jsonl" ? `${data}\n` : `event: skipped\ndata: ${data}\n\n`);
  }
}

const DATA = Buffer.from("data: ");
