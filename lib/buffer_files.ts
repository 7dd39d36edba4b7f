// The files of slps's --buffer-dir, as bytes: segment files of records, their names and headers,
// the run file that says whether the run may go on, and the --fsync policy. Pure: whatever reads
// a file is passed in, so all of it is tested on plain values (slps/disk_buffer.ts does the I/O).
//
// A record is a frame as the protocol sends it ("LENGTH MESSAGE") behind its length and a
// checksum, each four bytes, little-endian:
//
//   [frame length: u32][CRC-32 of the frame: u32][frame]
//
// The checksum is CRC-32 (IEEE 802.3, zlib's), as Bun.hash.crc32 computes it natively: about
// 25 GB/s on this project's machine, and 80 ns for a call on a message of 200 bytes. CRC-32C
// would detect no more of what it is for (a write cut short, bytes that are not a record: any
// error burst of up to 32 bits, and anything else but for one chance in 2^32 either way), and
// Bun has no native one. A record costs its frame and 8 bytes, so that a position in a segment
// tells how many frame bytes lie before it.

import { MAX_FRAME } from "./framing.ts";
import { MAX_SEQ } from "./protocol.ts";

/** Bytes a record adds to its frame: its length and its checksum. */
export const RECORD_HEADER = 8;
/** Bytes of a segment's header: magic, run, first number, the previous segment's, flags, checksum. */
export const SEGMENT_HEADER = 40;
const MAGIC = Buffer.from("slpseg1\n", "latin1");

/** Flags of a segment header. */
export const SEGMENT_FLAGS = {
  /** Messages between the previous segment's last and this one's first were never written: the disk failed. */
  heldInMemory: 1,
} as const;

/** Writes the record of `message` into `target` at `at`, and returns its size. `target` must have room. */
export function writeRecord(target: Buffer, at: number, message: Uint8Array): number {
  const frameAt = at + RECORD_HEADER;
  const header = target.write(`${message.length} `, frameAt, "latin1");
  target.set(message, frameAt + header);
  const frameLength = header + message.length;
  target.writeUInt32LE(frameLength, at);
  target.writeUInt32LE(Bun.hash.crc32(target.subarray(frameAt, frameAt + frameLength)), at + 4);
  return RECORD_HEADER + frameLength;
}

/** The size of the record of a message of `length` bytes. */
export const recordSize = (length: number) => RECORD_HEADER + String(length).length + 1 + length;

/** A record read: its frame, a view of the bytes read, and its size; or why there is none whole. */
export type RecordRead = { frame: Uint8Array; size: number } | { short: string } | { bad: string };

/** The record at `at` of `bytes`: whole, cut short by the end of `bytes`, or not a record at all. */
export function readRecord(bytes: Uint8Array, at: number): RecordRead {
  const left = bytes.length - at;
  if (left < RECORD_HEADER) return { short: `${left} bytes of a record's header of ${RECORD_HEADER}` };
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, RECORD_HEADER);
  const length = view.getUint32(0, true);
  if (length < 3 || length > MAX_FRAME) return { bad: `a record length of ${length} bytes, not 3 to ${MAX_FRAME}` };
  if (left - RECORD_HEADER < length) return { short: `${left - RECORD_HEADER} bytes of a frame of ${length}` };
  const frame = bytes.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length);
  if (Bun.hash.crc32(frame) !== view.getUint32(4, true)) return { bad: "a record whose checksum does not match" };
  if (!frameAgrees(frame)) return { bad: "a record whose frame does not state its own length" };
  return { frame, size: RECORD_HEADER + length };
}

/** Whether a frame starts with its message's length, in digits as the protocol writes them, and a space. */
function frameAgrees(frame: Uint8Array): boolean {
  let value = 0;
  let digits = 0;
  for (; digits < 6 && digits < frame.length; digits++) {
    const byte = frame[digits]!;
    if (byte === 0x20) break;
    if (byte < 0x30 || byte > 0x39 || (digits === 0 && byte === 0x30)) return false;
    value = value * 10 + byte - 0x30;
  }
  return digits > 0 && frame[digits] === 0x20 && value === frame.length - digits - 1;
}

/** A segment's header: the run it belongs to and the numbers around it. */
export interface SegmentHeader {
  /** The server id of the run, 16 hex digits. */
  run: string;
  /** The number of its first record. */
  first: number;
  /** The first number of the segment written before it in the run; 0 for the run's first. */
  previous: number;
  /** SEGMENT_FLAGS. */
  flags: number;
}

export function encodeSegmentHeader(header: SegmentHeader): Buffer {
  const bytes = Buffer.alloc(SEGMENT_HEADER);
  MAGIC.copy(bytes, 0);
  bytes.write(header.run, 8, 8, "hex");
  bytes.writeBigUInt64LE(BigInt(header.first), 16);
  bytes.writeBigUInt64LE(BigInt(header.previous), 24);
  bytes.writeUInt32LE(header.flags, 32);
  bytes.writeUInt32LE(Bun.hash.crc32(bytes.subarray(0, 36)), 36);
  return bytes;
}

/** Reads a segment's header; throws an Error saying what is wrong with it. */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (data.length < SEGMENT_HEADER) throw new Error(`${data.length} bytes, shorter than a segment's header`);
  if (!data.subarray(0, 8).equals(MAGIC)) throw new Error("not a segment (its first bytes are not slps's)");
  if (Bun.hash.crc32(data.subarray(0, 36)) !== data.readUInt32LE(36)) {
    throw new Error("a segment header whose checksum does not match");
  }
  const first = Number(data.readBigUInt64LE(16));
  const previous = Number(data.readBigUInt64LE(24));
  if (first < 1 || first > MAX_SEQ || previous >= first) throw new Error(`a segment header with first #${first}`);
  return { run: data.toString("hex", 8, 16), first, previous, flags: data.readUInt32LE(32) };
}

/** The file name of the segment whose first record is `first`: sorted by name is sorted by number. */
export const segmentName = (first: number) => `slps-${String(first).padStart(16, "0")}.seg`;

/** The first number a segment's file name gives; undefined for a name that is not a segment's. */
export function segmentFirst(name: string): number | undefined {
  const match = /^slps-(\d{16})\.seg$/.exec(name);
  const first = match ? Number(match[1]) : 0;
  return first >= 1 && first <= MAX_SEQ ? first : undefined;
}

/** What a scan of a segment's records found. */
export interface SegmentScan {
  /** Whole records, one after the other from `from`. */
  count: number;
  /** Where the last of them ends. */
  end: number;
  /** A sparse index: the ordinal (0 for the first) and position of a record at least every `step` bytes. */
  ordinals: number[];
  positions: number[];
  /** Why the bytes at `end` are not a record; undefined when the scan reached `size` or `maxCount`. */
  bad?: string;
}

export interface ScanOptions {
  /** Where the first record starts. */
  from: number;
  /** Bytes of the file: no record is looked for past them. */
  size: number;
  /** Bytes between index entries, at least. */
  step: number;
  /** Records to read at most: a segment's share of the numbers, when later segments tell it. */
  maxCount?: number;
  /** Bytes read at once; a record is never longer than one read of MAX_FRAME + RECORD_HEADER. */
  chunk?: number;
}

/**
 * Reads the records of a segment, each checked, and indexes every `step` bytes. Memory: one
 * chunk and the index; CPU: one checksum of every byte up to `size`.
 */
export function scanSegment(read: (position: number, length: number) => Uint8Array, options: ScanOptions): SegmentScan {
  const { from, size, step, maxCount = Number.MAX_SAFE_INTEGER } = options;
  const chunk = Math.max(options.chunk ?? 1 << 20, MAX_FRAME + RECORD_HEADER);
  const scan: SegmentScan = { count: 0, end: from, ordinals: [], positions: [] };
  let indexedUpTo = -Infinity;
  while (scan.end < size && scan.count < maxCount) {
    const bytes = read(scan.end, Math.min(chunk, size - scan.end));
    if (bytes.length === 0) return { ...scan, bad: `the file ends at byte ${scan.end}, short of ${size}` };
    let at = 0;
    while (scan.count < maxCount && at < bytes.length) {
      const record = readRecord(bytes, at);
      if ("bad" in record) return { ...scan, bad: `${record.bad}, at byte ${scan.end}` };
      if ("short" in record) {
        // A record cut by the end of this read is read again whole by the next; by the end of the file, it is torn.
        if (scan.end + (bytes.length - at) >= size) {
          return { ...scan, bad: `a write cut short (${record.short}), at byte ${scan.end}` };
        }
        break;
      }
      if (scan.end >= indexedUpTo + step) {
        scan.ordinals.push(scan.count);
        scan.positions.push(scan.end);
        indexedUpTo = scan.end;
      }
      scan.count++;
      scan.end += record.size;
      at += record.size;
    }
  }
  return scan;
}

/** What the run file says: the run that the segments belong to, and how the last slps left it. */
export interface RunFile {
  /** The server id, 16 hex digits. */
  server: string;
  /** The kernel's boot_id when it was written: another one means the machine restarted since. */
  boot: string;
  /** The --fsync policy the run was written with. */
  fsync: string;
  /** Whether slps stopped cleanly (SIGTERM, SIGINT), everything written and synced. */
  clean: boolean;
}

export const formatRunFile = (run: RunFile) => `${JSON.stringify(run)}\n`;

/** Reads the run file; throws an Error saying what is wrong with it. */
export function parseRunFile(text: string): RunFile {
  let value: Partial<RunFile> | null;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("not JSON");
  }
  if (
    typeof value?.server !== "string" ||
    !/^[0-9a-f]{16}$/.test(value.server) ||
    typeof value.boot !== "string" ||
    typeof value.fsync !== "string" ||
    typeof value.clean !== "boolean"
  ) {
    throw new Error('not a run file (expected {"server": 16 hex digits, "boot", "fsync", "clean"})');
  }
  return { server: value.server, boot: value.boot, fsync: value.fsync, clean: value.clean };
}

/**
 * Whether a run may go on from what its segments hold: only where no client can have been sent a
 * message that the disk lost, since the run would give its number to another message. A clean
 * stop synced everything. After slps alone was killed (the same boot) the kernel still wrote what
 * slps had handed it. After the machine went down, what was not synced may be gone: with
 * --fsync always nothing was sent before it was synced, and the run goes on; with any other
 * policy a new run starts, and a client that comes back is told of an unknown gap.
 */
export function mayContinue(run: RunFile, boot: string): { yes: true } | { yes: false; why: string } {
  if (run.clean || run.boot === boot || run.fsync === "always") return { yes: true };
  const policy = `--fsync ${run.fsync}`;
  return {
    yes: false,
    why: `the machine restarted while slps ran with ${policy} and had not stopped: what it had not synced may be lost`,
  };
}

/** --fsync: "always" (each batch synced before it is sent or acknowledged), "never", or at most every SECONDS. */
export type FsyncPolicy = "always" | "never" | number;

/** The longest a timer waits, in seconds: a longer period could not be kept. */
const MAX_FSYNC_SECONDS = 86_400;

export function parseFsync(text: string): FsyncPolicy {
  if (text === "always" || text === "never") return text;
  if (!/^\d+(\.\d+)?$/.test(text) || !(Number(text) > 0)) {
    throw new Error("expected always, never, or seconds above zero like 1 or 0.2");
  }
  if (Number(text) > MAX_FSYNC_SECONDS) throw new Error(`must be at most ${MAX_FSYNC_SECONDS} seconds`);
  return Number(text);
}
