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
   * at least one whole event), looking at no more than `maxLooks` messages, so that a viewer far
   * behind shares the thread. Undefined when nothing is to be sent now.
   */
  take(maxBytes: number, maxLooks: number): Buffer | undefined {
    const parts: Buffer[] = [];
    let bytes = 0;
    const history = this.#history;
    if (this.#unknownGap) {
      this.#unknownGap = false;
      parts.push(this.#notice(null));
    }
    if (this.#next < history.first) {
      const missed = history.first - this.#next;
      this.skipped += missed;
      this.#next = history.first;
      parts.push(this.#notice(missed));
    }
    for (let looks = 0; looks < maxLooks && bytes < maxBytes && this.#next < history.next; looks++) {
      const held = history.at(this.#next++)!;
      const prepared = history.prepare(held);
      if (!viewMatches(this.#filter, held, prepared)) continue;
      const event = this.format === "jsonl" ? prepared.json : sseEvent(eventId(this.#run, held.id), prepared.json);
      parts.push(event);
      bytes += event.length;
    }
    return parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Says that `missed` messages went by unsent (null: an unknown number, across a restart of slpc). */
  #notice(missed: number | null): Buffer {
    const data = JSON.stringify({ skipped: missed });
    return Buffer.from(this.format === "jsonl" ? `${data}\n` : `event: skipped\ndata: ${data}\n\n`);
  }
}

/** One SSE event: the JSON line as its data, which holds no LF or CR (JSON escapes them). */
function sseEvent(id: string, json: Buffer): Buffer {
  const head = `id: ${id}\ndata: `;
  const event = Buffer.allocUnsafe(head.length + json.length + 1);
  event.write(head, 0, "latin1");
  json.copy(event, head.length); // its LF ends the data line
  event[event.length - 1] = 0x0a; // and one more ends the event
  return event;
}
