// Reading slps's segment files back (--buffer-dir): a file opened when first read (four at most
// at once), a window of it in memory, and where the last frame was found, so that a replay reads
// each byte of a segment once and a client's position costs no read at all. What cannot be read
// throws Unreadable, which the disk buffer turns into a gap.

import { closeSync, constants, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { MAX_FRAME, RECORD_HEADER, readRecord, SEGMENT_HEADER, type SegmentScan, scanSegment } from "../lib.ts";

/** A segment grows to 1/32 of --buffer, this much at most; no more of any segment is ever read. */
export const MAX_SEGMENT_BYTES = 256 * 1024 ** 2;
/** Bytes between two entries of a segment's index, at least: a frame is found by reading this much at most. */
export const INDEX_STEP = 64 * 1024;
/** Bytes of a segment read at once to serve replays and find frames. */
const WINDOW_BYTES = 512 * 1024;
/** Segments read from at once without opening them again. */
const OPEN_READERS = 4;
const O_CLOEXEC = 0o2000000;

/** Why a segment cannot be read (it cannot be opened or read, or it changed since it was checked). */
export class Unreadable extends Error {}

/** What the reader needs of a segment: its file, its size, and its index once scanned. */
export interface SegmentFile {
  name: string;
  /** Bytes of the file, its header included. */
  size: number;
  /** The sparse index: ordinals (0 for the first record) and positions of a record every INDEX_STEP bytes. */
  ordinals?: number[];
  positions?: number[];
}

export class SegmentReader {
  readonly #dir: string;
  /** The segment being written, whose own file descriptor reads it too. */
  readonly #writing: () => { name: string; fd: number } | undefined;
  /** Files open for reading, the last used last. */
  #readers: { name: string; fd: number }[] = [];
  /** The bytes last read from a segment. */
  #window: { name: string; position: number; bytes: Buffer } | undefined;
  /** Where a frame was last found: a replay asks for the next one there. */
  #found: { name: string; ordinal: number; position: number } | undefined;

  constructor(dir: string, writing: () => { name: string; fd: number } | undefined) {
    this.#dir = dir;
    this.#writing = writing;
  }

  /** Reads a segment's records, each checked, up to `count` of them: for its index, and how many are whole. */
  scan(segment: SegmentFile, count: number): SegmentScan {
    const fd = this.open(segment);
    const read = (position: number, length: number) => {
      const bytes = Buffer.allocUnsafe(length);
      return bytes.subarray(0, readSync(fd, bytes, 0, length, position));
    };
    const size = Math.min(segment.size, SEGMENT_HEADER + MAX_SEGMENT_BYTES);
    try {
      return scanSegment(read, { from: SEGMENT_HEADER, size, step: INDEX_STEP, maxCount: count });
    } catch (error) {
      throw new Unreadable(`it cannot be read: ${diskError(error)}`);
    }
  }

  /**
   * The frame of record `ordinal` of a scanned segment, and where that record starts: from the
   * index entry before it, or from where the last frame was found if that is nearer.
   */
  find(segment: SegmentFile, ordinal: number): { frame: Uint8Array; position: number } {
    const entries = segment.ordinals!;
    let low = 0;
    let high = entries.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (entries[mid]! <= ordinal) low = mid;
      else high = mid - 1;
    }
    let at = entries[low]!;
    let position = segment.positions![low]!;
    const found = this.#found;
    if (found?.name === segment.name && found.ordinal <= ordinal && found.ordinal > at) {
      at = found.ordinal;
      position = found.position;
    }
    for (;;) {
      const record = this.recordAt(segment, position);
      if (at === ordinal) {
        this.#found = { name: segment.name, ordinal, position };
        return { frame: record.frame, position };
      }
      position += record.size;
      at++;
    }
  }

  /** Says where record `ordinal` starts: the next find or offset of it reads nothing before it. */
  remember(segment: SegmentFile, ordinal: number, position: number): void {
    this.#found = { name: segment.name, ordinal, position };
  }

  /** The record at `position` of a segment, which the scan found whole. */
  recordAt(segment: SegmentFile, position: number): { frame: Uint8Array; size: number } {
    const record = readRecord(this.#bytesAt(segment, position, RECORD_HEADER + MAX_FRAME), 0);
    if ("frame" in record) return record;
    // The scan read it whole before: the file changed under slps since.
    throw new Unreadable(`${"short" in record ? `cut short (${record.short})` : record.bad}, at byte ${position}`);
  }

  /** A file descriptor to read a segment by, opened if it is not yet. */
  open(segment: SegmentFile): number {
    const writing = this.#writing();
    if (segment.name === writing?.name) return writing.fd;
    const readers = this.#readers;
    const i = readers.findIndex((reader) => reader.name === segment.name);
    if (i >= 0) {
      const [reader] = readers.splice(i, 1);
      readers.push(reader!);
      return reader!.fd;
    }
    let fd: number;
    try {
      fd = openSync(join(this.#dir, segment.name), constants.O_RDONLY | constants.O_NOFOLLOW | O_CLOEXEC);
    } catch (error) {
      throw new Unreadable(`it cannot be opened: ${diskError(error)}`);
    }
    readers.push({ name: segment.name, fd });
    if (readers.length > OPEN_READERS) closeSync(readers.shift()!.fd);
    return fd;
  }

  /** Lets go of a segment: its file, and what was read of it. */
  forget(name: string): void {
    const i = this.#readers.findIndex((reader) => reader.name === name);
    if (i >= 0) closeSync(this.#readers.splice(i, 1)[0]!.fd);
    if (this.#window?.name === name) this.#window = undefined;
    if (this.#found?.name === name) this.#found = undefined;
  }

  close(): void {
    for (const reader of this.#readers.splice(0)) closeSync(reader.fd);
    this.#window = this.#found = undefined;
  }

  /** Bytes of a segment from `position`: at least `wanted` of them, or all up to its end. */
  #bytesAt(segment: SegmentFile, position: number, wanted: number): Buffer {
    const window = this.#window;
    const end = Math.min(position + wanted, segment.size);
    if (window?.name === segment.name && window.position <= position && window.position + window.bytes.length >= end) {
      return window.bytes.subarray(position - window.position);
    }
    const fd = this.open(segment);
    // A new Buffer each time: frames handed out as views of the last one stay as they are.
    const bytes = Buffer.allocUnsafe(Math.max(end - position, Math.min(WINDOW_BYTES, segment.size - position)));
    let length: number;
    try {
      length = readSync(fd, bytes, 0, bytes.length, position);
    } catch (error) {
      throw new Unreadable(`it cannot be read: ${diskError(error)}`);
    }
    this.#window = { name: segment.name, position, bytes: bytes.subarray(0, length) };
    return this.#window.bytes;
  }
}

/**
 * A failed file operation in words, as `no space left on device (ENOSPC)`: without the path, which
 * the line names already, and without the system call, which the line says in its own words.
 */
export function diskError(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  if (typeof code !== "string" || typeof message !== "string")
    return error instanceof Error ? error.message : `${error}`;
  const words = message.replace(new RegExp(`^${code}: `), "").replace(/, \w+( '.*')?$/, "");
  return `${words} (${code})`;
}
