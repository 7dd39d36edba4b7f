// slps's resume buffer, as its options choose it: in memory (a ring, as without --buffer-dir), or
// on disk in --buffer-dir (slps/disk_buffer.ts), going on with the run that the folder holds.
//
// The folder holds segment files (slps-<first number>.seg), `run` (the server id, the machine's
// boot id, the --fsync policy and whether slps stopped cleanly) and `slps.lock`, which one slps
// holds (flock) for as long as it runs. Any other file there is left alone. At start slps locks
// the folder, reads `run`, reads each segment's header (40 bytes) and checks the newest segment's
// records to find where the run stands: a tail cut short by a crash is cut off. Older segments
// are checked when a client first replays from them. What a start costs is bounded by the files
// it reads: 4,096 segments at most, one segment of at most MAX_SEGMENT_BYTES checked.

import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  lstatSync,
  opendirSync,
  openSync,
  readFileSync,
  readSync,
  statfsSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import {
  type DiskNumbers,
  decodeSegmentHeader,
  type FsyncPolicy,
  formatRunFile,
  MAX_FRAME,
  mayContinue,
  type Options,
  optional,
  originOf,
  parseFsync,
  parseRunFile,
  parseText,
  ResumeBuffer,
  type ResumeStore,
  type RunFile,
  reason,
  SEGMENT_FLAGS,
  SEGMENT_HEADER,
  type SegmentHeader,
  scanSegment,
  segmentFirst,
  segmentName,
  UsageError,
} from "../lib.ts";
import { LockHeld, lockBeside, readRegularFile, removeLeftovers, replaceFile, syncFolder } from "../slpc/files.ts";
import { DiskBuffer, frameBytesOf, type Piece, type Recovered, type SegmentPiece } from "./disk_buffer.ts";
import { diskError, INDEX_STEP, MAX_SEGMENT_BYTES } from "./segment_reader.ts";

/** The resume buffer in memory is one Buffer, which Bun allocates up to 4 GiB: --buffer and --queue stay below. */
export const MAX_BUFFER_GIB = 2;
/** On disk, --buffer may be this large: 1,024 segments of 256 MiB, an index of 64 MiB at most. */
export const MAX_BUFFER_DIR_GIB = 256;
/** The newest messages kept in memory as well, and all that is kept while the disk fails: the default --buffer. */
const TAIL_BYTES = 16 * 1024 ** 2;
/** A segment is about 1/32 of --buffer (so the oldest go 1/32 at a time), within these bounds. */
const MIN_SEGMENT_BYTES = 1024 ** 2;
/** Segment files read at start at most: the newest, if there are more. */
const MAX_SEGMENT_FILES = 4096;
/** While the disk fails, it is tried again this often. */
const RETRY_MS = 10_000;
// Each turn's write synced before its messages are sent or acknowledged: the only policy under which a power cut
// keeps the run. It costs one fdatasync a turn, fewer as the rate rises (bench/buffer_dir.ts: about 1,100 a second
// at 10,000 messages a second, 570 at 50,000, and 2 ms more latency at 10,000); docs/options.md says what each loses.
const FSYNC = "always";

// biome-ignore format: a table, one option a row (its help on a second line)
export const BUFFER_DIR_OPTIONS = {
  bufferDir: { default: "", arg: "DIR", parse: optional(parseText),
    help: "keep the resume buffer on disk in this folder (up to --buffer): the run goes on across a restart" },
  fsync: { default: FSYNC, arg: "POLICY", parse: parseFsync,
    help: "with --buffer-dir: always (sync each write before it is sent), never, or at most every SECONDS" },
} satisfies Options;

/** What slps.ts needs of its buffer: the store, the run, and --queue as it follows from --buffer. */
export interface BufferChoice {
  store: ResumeStore;
  serverId: string;
  /** --queue: with --buffer-dir and no --queue given, as far as --buffer. */
  queue: number;
  /** The disk's numbers for SIGUSR1 and /metrics; undefined in memory. */
  disk(): DiskNumbers | undefined;
  /** For SIGTERM and SIGINT: what waits is written and synced, and the run marked as stopped cleanly. */
  close(): void;
}

interface BufferValues {
  buffer: number;
  queue: number;
  bufferDir: string | undefined;
  fsync: FsyncPolicy;
}

/**
 * The resume buffer the options ask for. Throws UsageError for what can never work: a buffer in
 * memory over 2 GiB, a --buffer-dir that is not a folder or that another slps holds, a --buffer
 * larger than the folder's file system. A folder that cannot be written is one line, and memory.
 */
export function chooseBuffer(values: BufferValues, log: (line: string) => void, onStored: () => void): BufferChoice {
  const { buffer, bufferDir: dir } = values;
  const flag = (key: string) => originOf(values, key) ?? `--${key}`;
  const over = (key: string, gib: number, why: string) =>
    new UsageError(
      `${flag(key)} "${(values as unknown as Record<string, number>)[key]}": must be at most ${gib}GiB${why}`,
    );
  if (dir === undefined) {
    const inMemory = ", or give --buffer-dir to keep the buffer on disk";
    if (originOf(values, "fsync")) throw new UsageError(`${flag("fsync")}: only with --buffer-dir`);
    if (buffer > MAX_BUFFER_GIB * 1024 ** 3) throw over("buffer", MAX_BUFFER_GIB, inMemory);
    if (values.queue > MAX_BUFFER_GIB * 1024 ** 3) throw over("queue", MAX_BUFFER_GIB, inMemory);
    // What the ring holds at most: --buffer, or --queue for a client that far behind; and one frame in arrival.
    const store = new ResumeBuffer(Math.max(buffer, values.queue) + 2 * MAX_FRAME);
    return { store, serverId: newServerId(), queue: values.queue, disk: () => undefined, close: () => {} };
  }
  if (buffer > MAX_BUFFER_DIR_GIB * 1024 ** 3) throw over("buffer", MAX_BUFFER_DIR_GIB, " with --buffer-dir");
  if (buffer < 2 * MIN_SEGMENT_BYTES) {
    throw new UsageError(`${flag("buffer")} "${buffer}": must be at least ${2 * MIN_SEGMENT_BYTES} with --buffer-dir`);
  }
  // A client back after a night must find what the disk kept for it, not skip all but --queue of it.
  const queue = originOf(values, "queue") ? values.queue : Math.max(buffer, values.queue);
  const store = openBufferDir(dir, { limit: buffer, queue, fsync: values.fsync, log, onStored });
  return { store, serverId: store.serverId, queue, disk: () => store.numbers(), close: () => store.close() };
}

const newServerId = () => randomBytes(8).toString("hex");

interface OpenOptions {
  limit: number;
  queue: number;
  fsync: FsyncPolicy;
  log: (line: string) => void;
  onStored: () => void;
  /** Smaller sizes and a quicker retry than slps uses, for tests. */
  sizes?: { tailBytes?: number; segmentBytes?: number; retryMs?: number };
}

/** Opens --buffer-dir: locked, the run it holds gone on with or a new one begun, and one line saying which. */
export function openBufferDir(dir: string, options: OpenOptions): DiskBuffer {
  const { limit, log } = options;
  const fail = (why: string) => new UsageError(`--buffer-dir ${dir}: ${why}`);
  let kind: string;
  try {
    const stats = statSync(dir);
    kind = stats.isDirectory() ? "" : "not a folder";
  } catch (error) {
    kind = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such folder" : diskError(error);
  }
  if (kind) throw fail(kind);
  const { blocks, bsize, bavail } = statfsSync(dir);
  if (limit > blocks * bsize) {
    throw fail(`its file system holds ${blocks * bsize} bytes in all, less than --buffer ${limit}`);
  }
  const boot = bootId();
  const segmentBytes =
    options.sizes?.segmentBytes ?? Math.min(Math.max(Math.floor(limit / 32), MIN_SEGMENT_BYTES), MAX_SEGMENT_BYTES);
  // The lock is held for the life of the process, or until close().
  let lock: number | undefined;
  let failure: string | undefined;
  try {
    lock = lockBeside(join(dir, "slps"));
  } catch (error) {
    if (error instanceof LockHeld) {
      const by = `another slps${error.pid ? ` (pid ${error.pid})` : ""}`;
      throw fail(`in use by ${by}, which holds ${error.lockPath}; give each slps a folder of its own`);
    }
    failure = diskError(error);
  }
  let recovered: Recovered;
  if (failure === undefined) {
    removeLeftovers(join(dir, "run"));
    recovered = recover(dir, boot, segmentBytes, log);
  } else {
    recovered = { serverId: newServerId(), pieces: [], next: 1, total: 0 };
  }
  const runFile = join(dir, "run");
  let oldRemoved = false;
  /** The folder locked, before anything is written there; throws when it cannot be. */
  const takeFolder = () => {
    lock ??= lockBeside(join(dir, "slps"));
    // A run that began in memory: the segments of the one before it are no use to anyone.
    if (failure !== undefined && !oldRemoved) removeSegments(dir, (header) => header?.run !== recovered.serverId);
    oldRemoved = failure !== undefined;
  };
  const writeRun = (clean: boolean) => {
    takeFolder();
    const run: RunFile = { server: recovered.serverId, boot, fsync: String(options.fsync), clean };
    replaceFile(runFile, Buffer.from(formatRunFile(run)));
    syncFolder(dir);
  };
  if (failure === undefined) {
    try {
      writeRun(false);
    } catch (error) {
      failure = diskError(error);
      // Numbers given out in memory alone must not be taken for the run on disk: a new run, in memory.
      if (recovered.writing) closeSync(recovered.writing.fd);
      recovered = { serverId: newServerId(), pieces: [], next: 1, total: 0 };
    }
  }
  if (failure !== undefined) {
    log(`--buffer-dir ${dir}: cannot be written (${failure}); a new run ${recovered.serverId} in memory only`);
    recovered.failure = failure;
  } else {
    const diskBytes = recovered.pieces.reduce((sum, piece) => sum + (piece.kind === "segment" ? piece.size : 0), 0);
    if (bavail * bsize + diskBytes < limit) {
      const free = `${bavail * bsize} bytes free, less than --buffer ${limit}`;
      log(`--buffer-dir ${dir}: warning: ${free}; when the disk is full, the newest messages are kept in memory`);
    }
  }
  const tailBytes = options.sizes?.tailBytes ?? Math.min(Math.max(limit, options.queue), TAIL_BYTES);
  const dropRun = () => {
    try {
      unlinkSync(runFile);
    } catch {}
  };
  const unlock = () => {
    if (lock !== undefined) closeSync(lock);
    lock = undefined;
  };
  return new DiskBuffer(recovered, {
    dir,
    limit,
    fsync: options.fsync,
    tailBytes,
    segmentBytes,
    log,
    onStored: options.onStored,
    takeFolder,
    writeRun,
    dropRun,
    unlock,
    retryMs: options.sizes?.retryMs ?? RETRY_MS,
  });
}

/** The kernel's boot id: another one means the machine restarted. */
function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
  } catch {
    return "unknown";
  }
}

/** A segment file as found at start: its name, size and header, or why the header cannot be read. */
interface Found {
  name: string;
  first: number;
  size: number;
  header?: SegmentHeader;
  bad?: string;
  /** Its header is cut short: slps was beginning it, and wrote no record in it. */
  begun?: boolean;
}

/** The segment files in `dir`, oldest first: the newest MAX_SEGMENT_FILES, if there are more. */
function listSegments(dir: string, log: (line: string) => void): string[] {
  let names: string[] = [];
  let seen = 0;
  const folder = opendirSync(dir);
  try {
    for (let entry = folder.readSync(); entry !== null; entry = folder.readSync()) {
      if (segmentFirst(entry.name) === undefined) continue;
      seen++;
      names.push(entry.name);
      if (names.length >= 2 * MAX_SEGMENT_FILES) names = names.sort().slice(-MAX_SEGMENT_FILES);
    }
  } finally {
    folder.closeSync();
  }
  names = names.sort().slice(-MAX_SEGMENT_FILES);
  if (seen > names.length) {
    log(`--buffer-dir ${dir}: ${seen} segment files; only the newest ${names.length} are read`);
  }
  return names;
}

/** A segment's size and header, read without following a link or waiting on a FIFO. */
function readHeader(dir: string, name: string): Found {
  const first = segmentFirst(name)!;
  let fd: number;
  try {
    // Not opened at all unless it is a regular file; and if one is put there meanwhile, not waited on.
    if (!lstatSync(join(dir, name)).isFile()) return { name, first, size: 0, bad: "not a regular file" };
    fd = openSync(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return { name, first, size: 0, bad: diskError(error) };
  }
  let size = 0;
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { name, first, size: 0, bad: "not a regular file" };
    size = stats.size;
    const bytes = Buffer.alloc(SEGMENT_HEADER);
    const length = readSync(fd, bytes, 0, SEGMENT_HEADER, 0);
    if (length < SEGMENT_HEADER)
      return { name, first, size, bad: `${length} bytes of a header of ${SEGMENT_HEADER}`, begun: true };
    const header = decodeSegmentHeader(bytes.subarray(0, length));
    if (header.first !== first) return { name, first, size, bad: `its header says #${header.first}` };
    return { name, first, size, header };
  } catch (error) {
    return { name, first, size, bad: diskError(error) };
  } finally {
    closeSync(fd);
  }
}

/** Removes the segment files whose header `which` picks; returns how many. */
function removeSegments(dir: string, which: (header: SegmentHeader | undefined) => boolean): number {
  let removed = 0;
  for (const name of listSegments(dir, () => {})) {
    const found = readHeader(dir, name);
    if (found.bad === "not a regular file" || !which(found.header)) continue;
    try {
      unlinkSync(join(dir, name));
      removed++;
    } catch {}
  }
  return removed;
}

/**
 * Where the run that `dir` holds stands: its segments as pieces, the newest checked and its torn
 * tail cut off, and where the numbers go on. A run that cannot go on gives way to a new one, and
 * its segments are removed, in one line.
 */
function recover(dir: string, boot: string, segmentBytes: number, log: (line: string) => void): Recovered {
  const say = (line: string) => log(`--buffer-dir ${dir}: ${line}`);
  const fresh = (why?: string): Recovered => {
    const serverId = newServerId();
    const removed = removeSegments(dir, () => true);
    const old = removed ? `, removing the old one's ${removed} segment${removed === 1 ? "" : "s"}` : "";
    const because = why ?? (removed ? "no run file" : undefined);
    say(because === undefined ? `a new run ${serverId}` : `${because}; a new run ${serverId}${old}`);
    return { serverId, pieces: [], next: 1, total: 0 };
  };
  let run: RunFile | undefined;
  try {
    const text = readRegularFile(join(dir, "run"), 4096);
    if (text === undefined) return fresh();
    run = parseRunFile(text.toString("utf8"));
  } catch (error) {
    return fresh(`the run file cannot be read (${reason(error)})`);
  }
  const verdict = mayContinue(run, boot);
  if (!verdict.yes) return fresh(verdict.why);
  const found = listSegments(dir, log).map((name) => readHeader(dir, name));
  // A segment whose header is not this run's: removed, and its numbers a gap if later ones follow.
  const badWhy = new Map<number, string>();
  for (const segment of found) {
    if (segment.header?.run === run.server || segment.bad === "not a regular file") continue;
    const why = segment.bad ?? `it belongs to run ${segment.header!.run}`;
    badWhy.set(segment.first, `segment ${segment.name} could not be used: ${why}`);
    say(`segment ${segment.name} is not used: ${why}`);
    try {
      unlinkSync(join(dir, segment.name));
    } catch {}
  }
  const ours = found.filter((segment) => segment.header?.run === run.server);
  const newest = ours.at(-1);
  // A newest file shorter than a header was being begun when slps died: it held no record, and the run goes on
  // if the one before it ends where it was to begin.
  const begun = found.at(-1)!.begun ? found.at(-1) : undefined;
  const unusable = () => fresh(`run ${run.server}: its newest segment is missing or unreadable`);
  if (newest === undefined || (found.at(-1)!.first > newest.first && begun === undefined)) return unusable();
  // The newest: its records checked, a torn tail cut off, and written on if there is room.
  const scanned = scanNewest(dir, newest, say);
  if (scanned === undefined) return fresh(`run ${run.server}: its newest segment ${newest.name} cannot be read`);
  const { scan, fd } = scanned;
  const next = newest.first + scan.count;
  if (begun !== undefined && begun.first !== next) {
    if (fd !== undefined) closeSync(fd);
    return unusable();
  }
  const pieces: Piece[] = [];
  let base = 0;
  for (let i = 0; i < ours.length; i++) {
    const segment = ours[i]!;
    const after = ours[i + 1];
    let end = after ? after.first : next;
    const missing = after && after.header!.previous > segment.first && after.header!.previous < after.first;
    if (missing) end = after.header!.previous;
    const shortWhy =
      after && after.header!.flags & SEGMENT_FLAGS.heldInMemory
        ? `it ends at #${end - 1}: what came next was held in memory only while --buffer-dir failed`
        : "its records end early: a segment after it is missing";
    const size = segment === newest ? scan.end : segment.size;
    const piece: SegmentPiece = {
      kind: "segment",
      name: segment.name,
      first: segment.first,
      next: end,
      base,
      size,
      shortWhy,
    };
    if (segment === newest) Object.assign(piece, { ordinals: scan.ordinals, positions: scan.positions });
    pieces.push(piece);
    base += frameBytesOf(piece);
    if (missing) {
      const previous = after.header!.previous;
      const why = badWhy.get(previous) ?? `segment ${segmentName(previous)} is missing`;
      pieces.push({ kind: "gap", first: previous, next: after.first, base, reason: why });
      say(`${why}; messages #${previous} to #${after.first - 1} are lost`);
    }
  }
  const piece = pieces.at(-1) as SegmentPiece;
  const writing = fd !== undefined && piece.size < segmentBytes ? { piece, fd } : undefined;
  if (fd !== undefined && writing === undefined) closeSync(fd);
  const messages = next - pieces[0]!.first;
  say(`run ${run.server} goes on from #${next}: ${messages} messages in ${ours.length} segments`);
  return { serverId: run.server, pieces, next, total: base, writing };
}

/**
 * The newest segment's records, checked, and what follows the last whole one cut off (a write cut
 * short by a crash, or garbage): at most MAX_SEGMENT_BYTES of it are read. The file is kept open
 * to write on, when it can be; undefined when it cannot be read at all.
 */
function scanNewest(dir: string, segment: Found, say: (line: string) => void) {
  let fd: number;
  let writable = true;
  const path = join(dir, segment.name);
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
  } catch {
    writable = false;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return undefined;
    }
  }
  const read = (position: number, length: number) => {
    const bytes = Buffer.allocUnsafe(length);
    return bytes.subarray(0, readSync(fd, bytes, 0, length, position));
  };
  const size = Math.min(segment.size, MAX_SEGMENT_BYTES + SEGMENT_HEADER);
  const scan = scanSegment(read, { from: SEGMENT_HEADER, size, step: INDEX_STEP });
  if (scan.end < segment.size) {
    const why = scan.bad ?? `over ${MAX_SEGMENT_BYTES} bytes of records`;
    say(`segment ${segment.name} cut off from byte ${scan.end} (${why}): ${segment.size - scan.end} bytes`);
    try {
      if (!writable) throw new Error("read-only");
      ftruncateSync(fd, scan.end);
    } catch {
      writable = false;
    }
  }
  if (!writable) {
    closeSync(fd);
    return { scan, fd: undefined };
  }
  return { scan, fd };
}
