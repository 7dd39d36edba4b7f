// What slps still owes one client, and how it gets there through a socket that takes only what
// fits. The time and the socket's write come in as arguments, so it is tested on plain values.

import { encodeControl } from "./framing.ts";
import type { ControlMessage } from "./protocol.ts";
import type { ResumeStore } from "./resume_buffer.ts";

/**
 * Whether the message numbered `seq` passes a client's filter. Called only for numbers the
 * buffer holds; a ParseCache makes one that parses each message once for all clients.
 */
export type Selector = (seq: number) => boolean;

/**
 * Messages one flush looks at for a filtering client, at most: parsing costs microseconds each,
 * and a replay of a buffer that the filter leaves out whole must not hold the one thread for the
 * others. The caller flushes again later while such a stream is neither idle nor mid-write.
 */
export const MAX_SCAN = 1024;

/**
 * What one connected client still has to be sent: control frames, then data frames from its
 * cursor into the buffer (a ResumeStore). Bun's `write` takes what fits and buffers nothing, so
 * what it did not take waits here until `drain`. A client that falls more than `limit` bytes
 * behind skips its oldest messages: they are counted, and it is told with a `start` frame. Where
 * the buffer lost messages (a segment on disk it could not read), the client is told with a
 * `start` whose reason is the buffer's.
 *
 * A client with a filter (`select`) is sent only the messages that pass it. Data frames carry no
 * number, so wherever the numbers jump over filtered ones a `start` without `lost` comes first;
 * and when only filtered messages went by, `announce()` tells the client where it stands.
 */
export class ClientStream {
  /** Sequence number of the next data frame to send; undefined until the client has resumed. */
  cursor: number | undefined;
  /** Messages skipped because the client fell behind, since the count was last taken. */
  dropped = 0;
  /** Messages a filter left out: not sent, not lost. */
  filtered = 0;
  /** Data frames handed to the socket, and their bytes. */
  sent = 0;
  sentBytes = 0;
  /** When a write last left bytes unsent, if they are still waiting. */
  blockedSince: number | undefined;
  /** When bytes were last handed to the socket. */
  lastWrite: number;
  #buffer: ResumeStore;
  #limit: number;
  #controls: Uint8Array[] = [];
  #select: Selector | undefined;
  /** The number the client gives the next data frame: its last `start`, plus the frames since. */
  #clientNext: number | undefined;
  /** Messages skipped and not yet announced to the client. */
  #unannounced = 0;
  /** Set when a skipped range was too long to sort into lost and left out: the count is then unknown. */
  #unannouncedUncounted = false;
  /** Messages this flush may still look at for the filter. */
  #scanBudget = 0;
  /** Bytes built for the socket that it has not taken yet. */
  #unwritten: Uint8Array | undefined;

  constructor(buffer: ResumeStore, limit: number, now: number) {
    this.#buffer = buffer;
    this.#limit = limit;
    this.lastWrite = now;
  }

  /** Sends only the messages `select` passes, from the next `start` on. */
  filterWith(select: Selector): void {
    this.#select = select;
  }

  /** Queues a control frame ahead of any further data. */
  control(message: ControlMessage): void {
    this.#controls.push(encodeControl(message));
  }

  /** Sends `start` and begins the data at its `seq`. */
  start(start: Extract<ControlMessage, { type: "start" }>): void {
    this.control(start);
    this.cursor = this.#clientNext = start.seq;
  }

  /**
   * True when left-out messages moved the cursor past where the client thinks it stands, and a
   * `start` could say so now. The caller should `announce()` soon: the client's resume point then
   * stays close to the stream, and a reconnect neither scans those messages again nor finds them
   * gone from the buffer and takes them for lost.
   */
  get unannouncedPosition(): boolean {
    return !this.midWrite && this.#unannounced === 0 && this.cursor !== this.#clientNext;
  }

  /** Tells the client the number of the next message it may get, with a `start` without `lost`. */
  announce(): void {
    if (!this.unannouncedPosition || this.cursor === undefined) return;
    this.control({ type: "start", seq: this.cursor });
    this.#clientNext = this.cursor;
  }

  /**
   * After new frames arrived: skips the oldest unsent ones while more than the limit is waiting,
   * or when the buffer no longer holds them.
   */
  keepWithinLimit(): void {
    if (this.cursor === undefined) return;
    if (this.#buffer.behind(this.cursor) <= this.#limit && this.cursor >= this.#buffer.first) return;
    const skipTo = Math.max(this.#buffer.catchUpPoint(this.#limit), this.#buffer.first);
    // Of the skipped messages the buffer still holds, those the filter leaves out are not lost.
    let lost = skipTo - this.cursor;
    const from = Math.max(this.cursor, this.#buffer.first);
    if (this.#select !== undefined && skipTo - from > MAX_SCAN) {
      // Parsing a whole backlog at once would hold slps's only thread, and every other client,
      // for seconds: the client is told an unknown number was lost instead.
      this.#unannouncedUncounted = true;
    } else if (this.#select !== undefined) {
      for (let seq = from; seq < skipTo; ) {
        const end = Math.min(this.#buffer.heldUntil(seq), skipTo);
        // Messages in a gap are lost, whatever the filter would have said of them.
        if (end <= seq) seq = Math.min(Math.max(this.#buffer.gapAt(seq)?.next ?? 0, seq + 1), skipTo);
        for (; seq < end; seq++) {
          if (!this.#select(seq)) {
            lost--;
            this.filtered++;
          }
        }
      }
    }
    this.dropped += lost;
    this.#unannounced += lost;
    this.cursor = skipTo;
  }

  /** True while a write is partly done: anything sent now would land inside a frame. */
  get midWrite(): boolean {
    return this.#unwritten !== undefined;
  }

  /** True when nothing is waiting to be written. */
  get idle(): boolean {
    return (
      this.#unwritten === undefined &&
      this.#controls.length === 0 &&
      (this.cursor === undefined || this.cursor >= this.#buffer.next)
    );
  }

  /**
   * Writes as much as the socket takes, coalescing frames so one write carries many. `write`
   * returns the bytes it took (fewer when the socket is full, or < 0 once it is closed).
   */
  flush(write: (data: Uint8Array) => number, now: number, maxWrite = 256 * 1024): void {
    this.#scanBudget = MAX_SCAN;
    for (;;) {
      this.#unwritten ??= this.#nextWrite(maxWrite);
      if (this.#unwritten === undefined) {
        this.blockedSince = undefined;
        return;
      }
      const taken = write(this.#unwritten);
      if (taken > 0) this.lastWrite = now;
      if (taken >= this.#unwritten.length) {
        this.#unwritten = undefined;
        continue;
      }
      // The rest waits for `drain`: a copy, since the ring under a view is overwritten in time.
      this.#unwritten = Buffer.from(this.#unwritten.subarray(Math.max(taken, 0)));
      this.blockedSince ??= now;
      return;
    }
  }

  /** Takes and resets the count of skipped messages. */
  takeDropped(): number {
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  #nextWrite(maxWrite: number): Uint8Array | undefined {
    const parts = this.#controls;
    this.#controls = [];
    if (this.#unannounced > 0 && this.cursor !== undefined) {
      const reason = `client too slow: more than ${this.#limit} bytes waiting`;
      const lost = this.#unannouncedUncounted ? null : this.#unannounced;
      parts.push(encodeControl({ type: "start", seq: this.cursor, lost, reason }));
      this.#unannounced = 0;
      this.#unannouncedUncounted = false;
      this.#clientNext = this.cursor;
    }
    if (this.cursor !== undefined && this.#buffer.heldUntil(this.cursor) <= this.cursor) this.#skipGaps(parts);
    if (this.#select !== undefined) this.#selected(parts, maxWrite);
    else if (this.cursor !== undefined && this.cursor < this.#buffer.next) {
      const { data, next } = this.#buffer.span(this.cursor, maxWrite);
      this.sent += next - this.cursor;
      this.sentBytes += data.length;
      this.cursor = next;
      this.#clientNext = next;
      parts.push(data);
    }
    return parts.length <= 1 ? parts[0] : Buffer.concat(parts);
  }

  /**
   * Moves the cursor past the gaps it stands in, telling the client what was lost and why. The
   * count is unknown to a filtering client: the filter might have left some of them out.
   */
  #skipGaps(parts: Uint8Array[]): void {
    for (;;) {
      const gap = this.cursor! < this.#buffer.next ? this.#buffer.gapAt(this.cursor!) : undefined;
      if (gap === undefined) return;
      const lost = this.#select === undefined ? gap.next - this.cursor! : null;
      parts.push(encodeControl({ type: "start", seq: gap.next, lost, reason: gap.reason }));
      this.cursor = this.#clientNext = gap.next;
    }
  }

  /** Adds the frames from the cursor on that pass the filter, up to about `maxWrite` bytes. */
  #selected(parts: Uint8Array[], maxWrite: number): void {
    const select = this.#select!;
    let bytes = 0;
    let end = this.cursor === undefined ? 0 : this.#buffer.heldUntil(this.cursor);
    while (this.cursor !== undefined && this.cursor < this.#buffer.next && bytes < maxWrite && this.#scanBudget > 0) {
      if (this.cursor >= end) {
        // The end of what the buffer holds in one piece: a gap to pass, or the next piece on disk.
        this.#skipGaps(parts);
        end = this.#buffer.heldUntil(this.cursor);
        if (end <= this.cursor) return;
        continue;
      }
      this.#scanBudget--;
      const seq = this.cursor++;
      if (!select(seq)) {
        this.filtered++;
        continue;
      }
      const frame = this.#buffer.frame(seq);
      if (frame.length === 0) {
        // A file the buffer could not read after all: it made it a gap, which the top of the loop passes.
        this.cursor = seq;
        if (this.#buffer.gapAt(seq) === undefined) return;
        end = seq;
        continue;
      }
      if (seq !== this.#clientNext) parts.push(encodeControl({ type: "start", seq }));
      parts.push(frame);
      bytes += frame.length;
      this.sent++;
      this.sentBytes += frame.length;
      this.#clientNext = seq + 1;
    }
  }
}
