// The server's memory of recent messages: a ring of frames that serves replays and is every
// connected client's queue at once.

import { MAX_FRAME } from "./framing.ts";

/** What a frame's place in the index costs: its position and offset, each a number in an array. */
export const FRAME_INDEX_BYTES = 16;

/**
 * The most recent data frames, numbered from 1, bounded by bytes. It serves replays to clients
 * that come back, and is also every connected client's queue: each client is a cursor into it.
 *
 * The frames live in one ring of bytes, each written once as it arrives and never copied again
 * (a client's write is a view of the ring), and no frame is a JavaScript object of its own: at
 * tens of thousands of messages a second, a Buffer per message kept for minutes is what the
 * garbage collector would spend its time on.
 */
export class ResumeBuffer {
  /** Sequence number of the oldest frame held (equal to `next` when empty). */
  first = 1;
  /** Sequence number the next frame will get. */
  next = 1;
  /** Bytes held. */
  bytes = 0;
  /** Bytes ever appended: a frame's offset in this count tells how far behind a cursor is. */
  total = 0;
  #ring: Buffer;
  /** Per frame held, from index #head on: where it starts in the ring, and `total` before it. */
  #positions: number[] = [];
  #offsets: number[] = [];
  #head = 0;
  /** Where in the ring the next frame goes. */
  #tail = 0;

  /** @param capacity bytes of ring: what is held at most, plus room for the frame being added */
  constructor(capacity: number) {
    this.#ring = Buffer.allocUnsafe(Math.max(capacity, 2 * MAX_FRAME));
  }

  /** Frames `message` into the ring; forgets the oldest frames it would overwrite. Returns its number. */
  append(message: Uint8Array): number {
    const header = `${message.length} `;
    const size = header.length + message.length;
    // A frame never wraps around the end of the ring, so that each one is a single view.
    const at = this.#tail + size <= this.#ring.length ? this.#tail : 0;
    while (this.first < this.next && this.#overlaps(this.#positions[this.#head]!, this.#length(this.first), at, size))
      this.#forgetOldest();
    this.#ring.write(header, at, "latin1");
    this.#ring.set(message, at + header.length);
    this.#positions.push(at);
    this.#offsets.push(this.total);
    this.#tail = at + size;
    this.bytes += size;
    this.total += size;
    return this.next++;
  }

  /**
   * Forgets the oldest frames while they cost over `limit` bytes, but none from `keepFrom` on. A
   * frame costs its bytes and its place in the index (FRAME_INDEX_BYTES): without that, a flood of
   * one-byte datagrams would make the index cost five times `limit` beside the ring.
   */
  trim(limit: number, keepFrom: number = this.next): void {
    while (this.bytes + FRAME_INDEX_BYTES * (this.next - this.first) > limit && this.first < keepFrom)
      this.#forgetOldest();
    if (this.#head > 1024 && this.#head * 2 > this.#positions.length) {
      this.#positions.splice(0, this.#head);
      this.#offsets.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Frame `seq`, as a view of the ring: valid until the next append. */
  frame(seq: number): Uint8Array {
    const start = this.#positions[this.#index(seq)]!;
    return this.#ring.subarray(start, start + this.#length(seq));
  }

  /** Message `seq` without its frame's length, as a view of the ring: valid until the next append. */
  message(seq: number): Uint8Array {
    const frame = this.frame(seq);
    return frame.subarray(frame.indexOf(0x20) + 1);
  }

  /**
   * Frames from `seq` on that lie next to each other in the ring, up to `maxBytes` (at least
   * one), as one view valid until the next append; and the number of the frame after them.
   */
  span(seq: number, maxBytes: number): { data: Uint8Array; next: number } {
    const start = this.#positions[this.#index(seq)]!;
    let end = start + this.#length(seq);
    let next = seq + 1;
    while (
      next < this.next &&
      this.#positions[this.#index(next)] === end &&
      end - start + this.#length(next) <= maxBytes
    ) {
      end += this.#length(next++);
    }
    return { data: this.#ring.subarray(start, end), next };
  }

  /** How many bytes lie between frame `seq` and the newest frame's end. */
  behind(seq: number): number {
    return seq >= this.next ? 0 : this.total - this.#offsets[this.#index(seq)]!;
  }

  /** The oldest sequence number whose frames, from it to the newest, fit in `bytes`. */
  catchUpPoint(bytes: number): number {
    let low = this.first;
    let high = this.next;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      if (this.behind(mid) <= bytes) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  #index(seq: number): number {
    return this.#head + seq - this.first;
  }

  #length(seq: number): number {
    const index = this.#index(seq);
    return (seq + 1 < this.next ? this.#offsets[index + 1]! : this.total) - this.#offsets[index]!;
  }

  #forgetOldest(): void {
    this.bytes -= this.#length(this.first);
    this.#head++;
    this.first++;
  }

  #overlaps(start: number, length: number, at: number, size: number): boolean {
    return start < at + size && at < start + length;
  }
}
