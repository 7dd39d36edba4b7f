// slps's resume buffer on disk (--buffer-dir): every message appended to segment files of
// checksummed records (lib/buffer_files.ts), the recent ones also in a ring in memory (the tail),
// from which live clients are served as without a disk. Older frames are read back from the
// segments when a client replays them. Memory holds the tail, a sparse index of each segment
// read so far (a position every 64 KiB), one window of a segment being read, and where 4,096
// clients' cursors stand at most: it does not grow with the messages on disk.
//
// A message may be sent to clients once it is as safe as --fsync makes it: written, and with
// `always` synced. Records are written once per event-loop turn, all of the turn's in one write.
// When the disk fails (a full disk, a read-only folder) slps says so in one line, keeps going in
// memory (the tail), and tries the disk again every 10 s; a segment it cannot read costs the
// messages in it, as a gap the clients are told of. Opening the folder and going on from what it
// holds is slps/buffer_dir.ts.

import { closeSync, constants, fdatasyncSync, ftruncateSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import {
  type DiskNumbers,
  encodeSegmentHeader,
  type FsyncPolicy,
  type Gap,
  MAX_FRAME,
  RECORD_HEADER,
  ResumeBuffer,
  type ResumeStore,
  reason,
  recordSize,
  SEGMENT_FLAGS,
  SEGMENT_HEADER,
  segmentName,
  writeRecord,
} from "../lib.ts";
import { syncFolder } from "../slpc/files.ts";
import { diskError, INDEX_STEP, SegmentReader, Unreadable } from "./segment_reader.ts";

/** Offsets of frames on disk kept at most: a client's cursor each, for as many clients as slps serves. */
const KNOWN_OFFSETS = 4096;
/** Bytes of records written at once at most: a larger turn is written in several. */
const BATCH_BYTES = 1024 * 1024;
const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
const O_CLOEXEC = 0o2000000;

/** A stretch of numbers the disk held: a segment file, or messages lost (a gap). */
export type Piece = SegmentPiece | GapPiece;

interface PieceBase {
  /** The first number in it, and the number after its last. */
  first: number;
  next: number;
  /** Bytes of frames before its first: `total` at its start. */
  base: number;
}

export interface SegmentPiece extends PieceBase {
  kind: "segment";
  name: string;
  /** Bytes of the file, its header included. */
  size: number;
  /** The sparse index, once the segment was read: ordinals (0 for its first record) and positions. */
  ordinals?: number[];
  positions?: number[];
  /** What to say if its records turn out to end before `next`. */
  shortWhy: string;
}

export interface GapPiece extends PieceBase {
  kind: "gap";
  reason: string;
}

/** Frame bytes of a segment's records from its first to `next`, from its size: exact for a whole segment. */
export const frameBytesOf = (piece: SegmentPiece) =>
  Math.max(0, piece.size - SEGMENT_HEADER - RECORD_HEADER * (piece.next - piece.first));

export interface DiskBufferOptions {
  /** --buffer-dir. */
  dir: string;
  /** --buffer: bytes on disk at most (see trim). */
  limit: number;
  fsync: FsyncPolicy;
  /** Bytes of the newest frames kept in memory too, and all that is kept while the disk fails. */
  tailBytes: number;
  /** Bytes a segment grows to before the next one begins. */
  segmentBytes: number;
  log: (line: string) => void;
  /** Called when messages became sendable (written, and synced if --fsync says so), to send them. */
  onStored: () => void;
  /** Locks the folder, if it is not yet, before anything is written there: throws when it cannot. */
  takeFolder: () => void;
  /** Writes the run file (slps/buffer_dir.ts): throws when it cannot. */
  writeRun: (clean: boolean) => void;
  /** Removes the run file, so that a restart while the disk fails starts a new run: best effort. */
  dropRun: () => void;
  /** Lets go of the folder's lock. */
  unlock: () => void;
  /** How often to try the disk again while it fails. */
  retryMs: number;
}

/** What the disk buffer starts from: what slps/buffer_dir.ts recovered, or nothing. */
export interface Recovered {
  serverId: string;
  /** Oldest first, one after the other from the first number held to `next`. */
  pieces: Piece[];
  next: number;
  /** Frame bytes before `next`. */
  total: number;
  /** The newest segment, open, to go on writing; undefined: one begins at `next`. */
  writing?: { piece: SegmentPiece; fd: number };
  /** Why the disk cannot be used at start: the run begins in memory, and tries the disk later. */
  failure?: string;
}

/**
 * The resume buffer on disk: a ResumeStore whose messages live in segment files, the newest
 * also in memory. Call close() on a clean stop.
 */
export class DiskBuffer implements ResumeStore {
  first: number;
  next: number;
  bytes = 0;
  total: number;
  readonly serverId: string;
  readonly #options: DiskBufferOptions;
  /** The newest frames, numbered as on disk: live clients are served from here. */
  readonly #tail: ResumeBuffer;
  readonly #pieces: Piece[];
  /** The segment being written, and its file; undefined while the disk fails. */
  #writing: { piece: SegmentPiece; fd: number } | undefined;
  /** Records of this turn, not written yet, for messages #writing.piece.next on. */
  readonly #batch = Buffer.allocUnsafe(BATCH_BYTES);
  #batchLength = 0;
  /** The number after the last record in the batch. */
  #batchNext = 0;
  /** Index entries for records in the batch: ordinal and position. */
  #batchIndex: [number, number][] = [];
  #nextIndexAt = 0;
  #flushScheduled = false;
  #syncTimer: Timer | undefined;
  #retryTimer: Timer | undefined;
  /** Callbacks of whenStored, by number, oldest first. */
  #waiting: { seq: number; done: () => void }[] = [];
  #waitingHead = 0;
  /** Why the disk failed, while it does. */
  #failure: string | undefined;
  /** The number after the last record on disk: what the disk holds ends there while it fails. */
  #diskNext: number;
  #diskBytes = 0;
  #fsyncs = 0;
  #errors = 0;
  /** Reads frames back from the segments. */
  readonly #reader: SegmentReader;
  /**
   * `total` before frames on disk where clients' cursors stand: how far behind each client is is
   * asked after every message that arrives, and finding the frame again would read its segment.
   */
  readonly #knownOffsets = new Map<number, number>();
  /** Lines said once per kind, not once per attempt. */
  #said = new Set<string>();
  /** Whether slps may be told of sendable messages: not while it is still being built. */
  #ready = false;
  /** True while the disk is tried again: a failure then was said when the disk first failed. */
  #retrying = false;

  constructor(recovered: Recovered, options: DiskBufferOptions) {
    this.#options = options;
    this.#reader = new SegmentReader(
      options.dir,
      () => this.#writing && { ...this.#writing, name: this.#writing.piece.name },
    );
    this.serverId = recovered.serverId;
    this.#pieces = recovered.pieces;
    this.next = this.#diskNext = recovered.next;
    this.total = recovered.total;
    this.first = this.#pieces[0]?.first ?? this.next;
    for (const piece of this.#pieces) if (piece.kind === "segment") this.#diskBytes += piece.size;
    // Room for a whole batch too: what is not written yet must still be in the tail when it is.
    const ring = Math.max(options.tailBytes, 2 * BATCH_BYTES) + 2 * MAX_FRAME;
    this.#tail = new ResumeBuffer(ring, recovered.next, recovered.total);
    if (recovered.failure !== undefined) this.#startFailing(recovered.failure);
    else if (recovered.writing) this.#write(recovered.writing);
    else this.#beginSegment(this.next);
    this.#updateBytes();
    this.#ready = true;
  }

  // ---- Taking messages in, writing them out

  append(message: Uint8Array): number {
    const seq = this.#tail.append(message);
    if (this.#writing) this.#addRecord(seq, message);
    else this.#sendable(this.#tail.next); // in memory alone, a message is as safe as slps makes it at once
    return seq;
  }

  whenStored(seq: number, done: () => void): void {
    if (seq < this.next) done();
    else this.#waiting.push({ seq, done });
  }

  /** Writes what is waiting, syncs, marks the run as stopped cleanly, and lets go of the folder. For SIGTERM. */
  close(): void {
    this.#flush();
    clearTimeout(this.#syncTimer);
    clearInterval(this.#retryTimer);
    const writing = this.#writing;
    this.#writing = undefined;
    if (writing) {
      try {
        fdatasyncSync(writing.fd);
        this.#options.writeRun(true);
      } catch (error) {
        this.#options.log(`--buffer-dir ${this.#options.dir}: could not mark the run as stopped: ${reason(error)}`);
      }
      closeSync(writing.fd);
    }
    this.#reader.close();
    this.#options.unlock();
  }

  numbers(): DiskNumbers {
    const policy = this.#options.fsync;
    return {
      dir: this.#options.dir,
      fsync: String(policy),
      bytes: this.#diskBytes,
      segments: this.#pieces.filter((piece) => piece.kind === "segment").length,
      fsyncs: this.#fsyncs,
      errors: this.#errors,
      memoryOnly: this.#failure !== undefined,
    };
  }

  #addRecord(seq: number, message: Uint8Array): void {
    const size = recordSize(message.length);
    let writing = this.#writing!;
    const end = writing.piece.size + this.#batchLength;
    if (end + size > this.#options.segmentBytes && end > SEGMENT_HEADER) {
      this.#flush();
      if (this.#writing) this.#beginSegment(seq);
      if (!this.#writing) return;
      writing = this.#writing;
    } else if (this.#batchLength + size > this.#batch.length) {
      this.#flush();
      if (!this.#writing) return;
    }
    const at = writing.piece.size + this.#batchLength;
    if (at >= this.#nextIndexAt) {
      this.#batchIndex.push([seq - writing.piece.first, at]);
      this.#nextIndexAt = at + INDEX_STEP;
    }
    this.#batchLength += writeRecord(this.#batch, this.#batchLength, message);
    this.#batchNext = seq + 1;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  /** Writes the batch in one write, syncs it if --fsync always, and lets its messages be sent. */
  #flush(): void {
    const writing = this.#writing;
    if (!writing || this.#batchLength === 0) return;
    const { piece, fd } = writing;
    try {
      for (let done = 0; done < this.#batchLength; ) {
        done += writeSync(fd, this.#batch, done, this.#batchLength - done, piece.size + done);
      }
      if (this.#options.fsync === "always") this.#sync(fd);
    } catch (error) {
      return this.#fail(error, `write ${piece.name}`);
    }
    piece.size += this.#batchLength;
    this.#diskBytes += this.#batchLength;
    for (const [ordinal, position] of this.#batchIndex) {
      piece.ordinals!.push(ordinal);
      piece.positions!.push(position);
    }
    this.#batchIndex = [];
    this.#batchLength = 0;
    piece.next = this.#diskNext = this.#batchNext;
    if (typeof this.#options.fsync === "number") this.#syncSoon();
    this.#sendable(piece.next);
  }

  #sync(fd: number): void {
    fdatasyncSync(fd);
    this.#fsyncs++;
  }

  /** --fsync SECONDS: what was written is synced within that time. */
  #syncSoon(): void {
    if (this.#syncTimer !== undefined) return;
    this.#syncTimer = setTimeout(
      () => {
        this.#syncTimer = undefined;
        const writing = this.#writing;
        if (!writing) return;
        try {
          this.#sync(writing.fd);
        } catch (error) {
          this.#fail(error, `sync ${writing.piece.name}`);
        }
      },
      (this.#options.fsync as number) * 1000,
    );
  }

  /** Messages before `next` may be sent: clients are told, and so is whoever waits for them. */
  #sendable(next: number): void {
    this.next = next;
    this.total = next >= this.#tail.next ? this.#tail.total : this.#tail.total - this.#tail.behind(next);
    while (this.#waitingHead < this.#waiting.length && this.#waiting[this.#waitingHead]!.seq < next) {
      this.#waiting[this.#waitingHead++]!.done();
    }
    if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
      this.#waiting.splice(0, this.#waitingHead);
      this.#waitingHead = 0;
    }
    this.#updateBytes();
    if (this.#ready) this.#options.onStored();
  }

  /** Begins a segment at `first`, header synced; on failure the disk fails. */
  #beginSegment(first: number): void {
    const previous = this.#writing?.piece ?? this.#lastSegment();
    if (this.#writing) {
      const { fd, piece } = this.#writing;
      try {
        // --fsync SECONDS: the last of this segment is synced now, since its timer syncs the next one.
        if (typeof this.#options.fsync === "number") this.#sync(fd);
      } catch (error) {
        return this.#fail(error, `sync ${piece.name}`);
      }
      closeSync(fd);
      this.#writing = undefined;
    }
    const heldInMemory = first > this.#diskNext;
    const name = segmentName(first);
    let fd: number | undefined;
    try {
      fd = openSync(join(this.#options.dir, name), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
      const header = { run: this.serverId, first, previous: previous?.first ?? 0, flags: 0 };
      if (heldInMemory) header.flags |= SEGMENT_FLAGS.heldInMemory;
      writeSync(fd, encodeSegmentHeader(header), 0, SEGMENT_HEADER, 0);
      if (this.#options.fsync !== "never") {
        this.#sync(fd);
        syncFolder(this.#options.dir);
      }
    } catch (error) {
      if (fd !== undefined) {
        closeSync(fd);
        this.#removeQuietly(name);
      }
      return this.#fail(error, `begin ${name}`);
    }
    if (heldInMemory) {
      this.#pieces.push({
        kind: "gap",
        first: this.#diskNext,
        next: first,
        base: this.#offsetOf(this.#diskNext),
        reason: `held in memory only while --buffer-dir failed (${this.#failure ?? "?"}), and overwritten`,
      });
    }
    const base = this.#offsetOf(first);
    const piece: SegmentPiece = { kind: "segment", name, first, next: first, base, size: SEGMENT_HEADER, shortWhy: "" };
    piece.ordinals = [];
    piece.positions = [];
    this.#pieces.push(piece);
    this.#diskBytes += SEGMENT_HEADER;
    this.#diskNext = first;
    this.#write({ piece, fd });
  }

  #write(writing: { piece: SegmentPiece; fd: number }): void {
    this.#writing = writing;
    this.#failure = undefined;
    const { positions } = writing.piece;
    this.#nextIndexAt = positions!.length > 0 ? positions!.at(-1)! + INDEX_STEP : 0;
  }

  #lastSegment(): SegmentPiece | undefined {
    for (let i = this.#pieces.length - 1; i >= 0; i--) {
      const piece = this.#pieces[i]!;
      if (piece.kind === "segment") return piece;
    }
    return undefined;
  }

  // ---- When the disk fails

  /** The disk failed at `what`: one line, and messages are kept in memory until it works again. */
  #fail(error: unknown, what: string): void {
    this.#errors++;
    const writing = this.#writing;
    if (writing) {
      // What a failed write left of the batch is not a record anyone will read: cut it off if the disk lets us.
      try {
        ftruncateSync(writing.fd, writing.piece.size);
      } catch {}
      closeSync(writing.fd);
      this.#writing = undefined;
      // A segment that holds nothing is no use, and its name is the one the next attempt needs.
      if (writing.piece.next === writing.piece.first) {
        this.#pieces.splice(this.#pieces.indexOf(writing.piece), 1);
        this.#diskBytes -= writing.piece.size;
        this.#removeQuietly(writing.piece.name);
      }
    }
    this.#batchLength = 0;
    this.#batchIndex = [];
    const why = diskError(error);
    const tail = `${Math.round(this.#options.tailBytes / 1024 ** 2)} MiB`;
    const keeping = `keeping messages from #${this.#diskNext} in memory (the newest ${tail})`;
    const every = `${this.#options.retryMs / 1000} s`;
    if (!this.#retrying) {
      this.#options.log(
        `--buffer-dir ${this.#options.dir}: cannot ${what}: ${why}; ${keeping}, and trying the disk every ${every}`,
      );
    }
    // A restart before the disk works again must not go on with numbers that only memory held.
    this.#options.dropRun();
    this.#startFailing(why);
    this.#sendable(this.#tail.next);
  }

  #startFailing(why: string): void {
    this.#failure = why;
    clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    this.#retryTimer ??= setInterval(() => this.#retry(), this.#options.retryMs);
    this.#retryTimer.unref();
  }

  /**
   * Tries the disk again: a new segment, what memory still holds that the disk does not, and then
   * the run file. Not before: a restart between them would go on from what the disk holds, and
   * give numbers that clients were sent from memory to other messages.
   */
  #retry(): void {
    const from = Math.max(this.#diskNext, this.#tail.first);
    const lostFrom = this.#diskNext;
    try {
      this.#options.takeFolder();
    } catch {
      return; // still failing: the line said so when it began
    }
    this.#retrying = true;
    try {
      this.#beginSegment(from);
      for (let seq = from; seq < this.#tail.next && this.#writing; seq++) this.#addRecord(seq, this.#tail.message(seq));
      this.#flush();
      if (this.#writing) this.#options.writeRun(false);
    } catch (error) {
      this.#fail(error, "write the run file"); // still failing: the line said so when it began
    } finally {
      this.#retrying = false;
    }
    if (!this.#writing) return;
    clearInterval(this.#retryTimer);
    this.#retryTimer = undefined;
    const lost = from > lostFrom ? `; #${lostFrom} to #${from - 1}, held in memory only, were overwritten` : "";
    this.#options.log(`--buffer-dir ${this.#options.dir}: the disk takes messages again, from #${from}${lost}`);
  }

  // ---- Forgetting the oldest

  /**
   * Removes the oldest segments while the files hold over `limit` bytes, but none that holds a
   * number from `keepFrom` on (a client that far behind still needs it), nor the one being
   * written. The tail in memory keeps its own size; while the disk fails, what clients need of it.
   */
  trim(limit: number, keepFrom: number = this.next): void {
    // On disk, memory is a cache of what is sendable; while the disk fails, it is all there is.
    this.#tail.trim(this.#options.tailBytes, this.#writing ? this.next : keepFrom);
    while (this.#diskBytes > limit && this.#pieces.length > 0) {
      const oldest = this.#pieces[0]!;
      if (oldest.kind === "segment") {
        if (oldest === this.#writing?.piece || oldest.next > keepFrom) break;
        this.#forget(oldest);
        this.#knownOffsets.clear();
      }
      // A gap in front stays until then: a client resuming before it is told why, not that the buffer overflowed.
      this.#pieces.shift();
    }
    this.first = this.#pieces[0]?.first ?? this.#tail.first;
    this.#updateBytes();
  }

  #forget(piece: SegmentPiece): void {
    this.#diskBytes -= piece.size;
    this.#reader.forget(piece.name);
    try {
      unlinkSync(join(this.#options.dir, piece.name));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") this.#sayOnce(`unlink ${code}`, `cannot remove ${piece.name}: ${diskError(error)}`);
    }
  }

  #removeQuietly(name: string): void {
    try {
      unlinkSync(join(this.#options.dir, name));
    } catch {}
  }

  #updateBytes(): void {
    this.bytes = this.#diskBytes + this.#batchLength + (this.#writing ? 0 : this.#tail.bytes);
  }

  #sayOnce(kind: string, line: string): void {
    if (this.#said.has(kind)) return;
    this.#said.add(kind);
    this.#options.log(`--buffer-dir ${this.#options.dir}: ${line}`);
  }

  // ---- Reading frames back

  frame(seq: number): Uint8Array {
    if (seq >= this.#tail.first) return this.#tail.frame(seq);
    return this.#find(seq)?.frame ?? new Uint8Array(0);
  }

  message(seq: number): Uint8Array {
    if (seq >= this.#tail.first) return this.#tail.message(seq);
    const frame = this.#find(seq)?.frame;
    // A copy: a view would keep the whole window it was read in alive for as long as it is kept.
    return frame ? Buffer.from(frame.subarray(frame.indexOf(0x20) + 1)) : new Uint8Array(0);
  }

  span(seq: number, maxBytes: number): { data: Uint8Array; next: number } {
    if (seq >= this.#tail.first) {
      const { data, next } = this.#tail.span(seq, maxBytes);
      if (next <= this.next) return { data, next };
      // The tail holds frames not yet sendable: up to `next` only.
      return { data: data.subarray(0, this.#tail.behind(seq) - this.#tail.behind(this.next)), next: this.next };
    }
    const found = this.#find(seq);
    // Unreadable after all: it is a gap now, which the caller passes.
    if (!found) return { data: new Uint8Array(0), next: seq };
    const { piece, frame } = found;
    const end = Math.min(piece.next, this.#tail.first, this.next);
    const frames = [frame];
    let bytes = frame.length;
    let next = seq + 1;
    let position = found.position + RECORD_HEADER + frame.length;
    while (next < end) {
      const record = this.#read(piece, () => this.#reader.recordAt(piece, position));
      if (!record || bytes + record.frame.length > maxBytes) break;
      frames.push(record.frame);
      bytes += record.frame.length;
      position += record.size;
      next++;
    }
    // Unless a record that could not be read made the segment a gap meanwhile.
    if (next < piece.next && this.#pieceOf(next) === piece) {
      this.#reader.remember(piece, next - piece.first, position);
      this.#knowOffset(next, piece.base + position - SEGMENT_HEADER - RECORD_HEADER * (next - piece.first));
    }
    return { data: frames.length === 1 ? frame : Buffer.concat(frames, bytes), next };
  }

  behind(seq: number): number {
    return seq >= this.next ? 0 : this.total - this.#offsetOf(seq);
  }

  catchUpPoint(bytes: number): number {
    // The oldest number whose frame starts at or after `target`.
    const target = this.total - bytes;
    const tailFirst = Math.min(this.#tail.first, this.next);
    if (this.#offsetOf(tailFirst) < target) {
      return Math.min(this.#tail.catchUpPoint(bytes + this.#tail.total - this.total), this.next);
    }
    // On disk: the piece where the offsets reach the target, then its index, then one window.
    const pieces = this.#pieces;
    let low = 0;
    let high = pieces.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.#endOffset(mid) >= target) high = mid;
      else low = mid + 1;
    }
    const piece = pieces[low];
    if (!piece || piece.first >= tailFirst) return tailFirst;
    if (piece.kind === "gap" || piece.base >= target) return Math.max(piece.first, this.first);
    if (!this.#scanned(piece)) return this.catchUpPoint(bytes); // it was short: the pieces changed
    let seq = piece.first;
    for (let i = 0; i < piece.ordinals!.length; i++) {
      const ordinal = piece.ordinals![i]!;
      if (piece.base + piece.positions![i]! - SEGMENT_HEADER - RECORD_HEADER * ordinal >= target) break;
      seq = piece.first + ordinal;
    }
    while (seq < piece.next && seq < tailFirst && this.#offsetOf(seq) < target) seq++;
    return seq;
  }

  heldUntil(seq: number): number {
    if (seq >= this.next || seq >= this.#tail.first) return this.next;
    const piece = this.#pieceOf(seq);
    if (!piece || piece.kind === "gap" || !this.#scanned(piece)) return seq;
    // Short, or gone since: a gap now.
    if (seq >= piece.next || this.#read(piece, () => this.#reader.open(piece)) === undefined) return seq;
    return Math.min(piece.next, this.next);
  }

  gapAt(seq: number): Gap | undefined {
    if (seq >= this.next || seq >= this.#tail.first) return undefined;
    const piece = this.#pieceOf(seq);
    if (piece?.kind === "gap") return { next: piece.next, reason: piece.reason };
    if (piece || seq < this.#diskNext) return undefined;
    // Between what the disk holds and what memory still holds, while the disk fails.
    const why = `held in memory only while --buffer-dir failed (${this.#failure ?? "?"}), and overwritten`;
    return { next: this.#tail.first, reason: why };
  }

  /** The piece holding `seq`, if a piece does. */
  #pieceOf(seq: number): Piece | undefined {
    const pieces = this.#pieces;
    let low = 0;
    let high = pieces.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (pieces[mid]!.first <= seq) low = mid;
      else high = mid - 1;
    }
    const piece = pieces[low];
    return piece && piece.first <= seq && seq < piece.next ? piece : undefined;
  }

  /** The offset after piece `i`: where the next one starts. */
  #endOffset(i: number): number {
    const piece = this.#pieces[i]!;
    return piece.kind === "gap" ? piece.base : piece.base + frameBytesOf(piece);
  }

  /** `total` before frame `seq`. */
  #offsetOf(seq: number): number {
    if (seq >= this.#tail.first) return this.#tail.total - this.#tail.behind(seq);
    const piece = this.#pieceOf(seq);
    if (!piece) return this.#tail.total - this.#tail.behind(this.#tail.first); // lost while the disk failed
    if (piece.kind === "gap" || seq === piece.first) return piece.base;
    const known = this.#knownOffsets.get(seq);
    if (known !== undefined) return known;
    const found = this.#find(seq);
    if (!found) return this.#offsetOf(seq); // unreadable after all: the pieces changed
    const inFile = found.position - SEGMENT_HEADER - RECORD_HEADER * (seq - found.piece.first);
    return this.#knowOffset(seq, found.piece.base + Math.min(inFile, frameBytesOf(found.piece)));
  }

  #knowOffset(seq: number, offset: number): number {
    if (this.#knownOffsets.size >= KNOWN_OFFSETS) this.#knownOffsets.clear();
    this.#knownOffsets.set(seq, offset);
    return offset;
  }

  /** Frame `seq` from its segment; undefined when it cannot be read (it is then a gap). */
  #find(seq: number): { piece: SegmentPiece; frame: Uint8Array; position: number } | undefined {
    const piece = this.#pieceOf(seq);
    if (piece?.kind !== "segment" || !this.#scanned(piece) || seq >= piece.next) return undefined;
    const found = this.#read(piece, () => this.#reader.find(piece, seq - piece.first));
    return found && { piece, ...found };
  }

  /** Reads a segment's records once, checking each, for its index; one that ends early ends there. */
  #scanned(piece: SegmentPiece): boolean {
    if (piece.ordinals) return true;
    const scan = this.#read(piece, () => this.#reader.scan(piece, piece.next - piece.first));
    if (!scan) return false;
    piece.ordinals = scan.ordinals;
    piece.positions = scan.positions;
    if (scan.count < piece.next - piece.first) {
      this.#cut(piece, piece.first + scan.count, scan.bad ? `its records stop: ${scan.bad}` : piece.shortWhy);
    }
    return scan.count > 0;
  }

  /** What `read` gives; undefined when the segment cannot be read, which makes all of it a gap. */
  #read<T>(piece: SegmentPiece, read: () => T): T | undefined {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof Unreadable)) throw error;
      this.#errors++;
      this.#cut(piece, piece.first, error.message);
      return undefined;
    }
  }

  /** Ends a segment's piece at `at`: the numbers from there to its end become a gap naming it, said in one line. */
  #cut(piece: SegmentPiece, at: number, why: string): void {
    if (at >= piece.next) return;
    if (piece === this.#writing?.piece) this.#fail(new Error(why), `read ${piece.name}`);
    const lost = `segment ${piece.name}: ${why}`;
    this.#options.log(`--buffer-dir ${this.#options.dir}: ${lost}; messages #${at} to #${piece.next - 1} are lost`);
    const index = this.#pieces.indexOf(piece);
    const gap: GapPiece = { kind: "gap", first: at, next: piece.next, base: this.#endOffset(index), reason: lost };
    this.#reader.forget(piece.name);
    this.#knownOffsets.clear(); // those in the gap are its base now
    if (at === piece.first) {
      this.#pieces[index] = gap;
      this.#diskBytes -= piece.size;
      this.#removeQuietly(piece.name);
      this.#updateBytes();
    } else {
      piece.next = at;
      this.#pieces.splice(index + 1, 0, gap);
    }
  }
}
