// The server's memory of recent messages: a ring of frames that serves replays and is every
// connected client's queue at once.

import { MAX_FRAME } from "./framing.ts";

/** What a frame's place in the index costs: its position and offset, each a number in an array. */
export const FRAME_INDEX_BYTES = 16;

/** Messages a buffer lost from the middle of what it holds (a segment on disk it could not read), and why. */
export interface Gap {
  /** The number after the last one lost. */
  next: number;
  /** Why, for the `start` that tells a client, such as the segment file that could not be read. */
  reason: string;
}

/**
 * Where slps keeps the messages it numbered: what ClientStream, ParseCache and the numbers read.
 * ResumeBuffer keeps them in memory; slps/disk_buffer.ts on disk (--buffer-dir), with a tail of
 * them in memory. Frames are asked for only from `first` to `next`, and only where `heldUntil`
 * says the buffer holds them.
 */
export interface ResumeStore {
  /** Sequence number of the oldest frame held (equal to `next` when empty). */
  readonly first: number;
  /** Sequence number after the newest frame a client may be sent. */
  readonly next: number;
  /** Bytes held: in memory, or on disk. */
  readonly bytes: number;
  /** Bytes of frames up to `next`, counted from any start: the difference of two positions is bytes. */
  readonly total: number;
  /** Takes a message and returns its number; it may be sent once `next` passes it. */
  append(message: Uint8Array): number;
  /** Forgets the oldest frames while they cost over `limit` bytes, but none from `keepFrom` on. */
  trim(limit: number, keepFrom?: number): void;
  /** Frame `seq`, valid until the next append. */
  frame(seq: number): Uint8Array;
  /** Message `seq` without its frame's length, valid until the next append. */
  message(seq: number): Uint8Array;
  /** Frames from `seq` on, up to `maxBytes` (at least one) and `heldUntil(seq)`, as one view; the number after them. */
  span(seq: number, maxBytes: number): { data: Uint8Array; next: number };
  /** How many bytes lie between frame `seq` and the end of frame `next - 1`. */
  behind(seq: number): number;
  /** The oldest sequence number whose frames, from it to `next`, fit in `bytes`. */
  catchUpPoint(bytes: number): number;
  /**
   * Where the frames held without a break from `seq` on end: `next`, or where a gap begins (see
   * gapAt). More than `seq` unless `seq` is in a gap or at `next`.
   */
  heldUntil(seq: number): number;
  /** The gap `seq` lies in, if it lies in one. */
  gapAt(seq: number): Gap | undefined;
  /**
   * Calls `done` once message `seq` is as safe as slps makes it: at once in memory; on disk once
   * written, and synced if --fsync says so. An acknowledged input (RELP) acknowledges from here.
   */
  whenStored(seq: number, done: () => void): void;
}

/**
 * The most recent data frames, numbered from 1, bounded by bytes. It serves replays to clients
 * that come back, and is also every connected client's queue: each client is a cursor into it.
 *
 * The frames live in one ring of bytes, each written once as it arrives and never copied again
 * (a client's write is a view of the ring), and no frame is a JavaScript object of its own: at
 * tens of thousands of messages a second, a Buffer per message kept for minutes is what the
 * garbage collector would spend its time on.
 */
export class ResumeBuffer implements ResumeStore {
  /** Sequence number of the oldest frame held (equal to `next` when empty). */
  first: number;
  /** Sequence number the next frame will get. */
  next: number;
  /** Bytes held. */
  bytes = 0;
  /** Bytes ever appended: a frame's offset in this count tells how far behind a cursor is. */
  total: number;
  #ring: Buffer;
  /** Per frame held, from index #head on: where it starts in the ring, and `total` before it. */
  #positions: number[] = [];
  #offsets: number[] = [];
  #head = 0;
  /** Where in the ring the next frame goes. */
  #tail = 0;

  /**
   * @param capacity bytes of ring: what is held at most, plus room for the frame being added
   * @param first the number of the first frame: a run that continues from disk goes on from there
   * @param total where `total` starts, so that positions go on from those of frames held elsewhere
   */
  constructor(capacity: number, first = 1, total = 0) {
    this.#ring = Buffer.allocUnsafe(Math.max(capacity, 2 * MAX_FRAME));
    this.first = this.next = first;
    this.total = total;
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

  /** Everything from `first` to `next` is held: memory has no gaps. */
  heldUntil(_seq: number): number {
    return this.next;
  }

  gapAt(_seq: number): Gap | undefined {
    return undefined;
  }

  /** In memory, a message is as safe as slps makes it as soon as it is appended. */
  whenStored(_seq: number, done: () => void): void {
    done();
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
