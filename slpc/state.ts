// slpc's --state file on disk: the resume point of every server, read once at start and written
// whenever one moves, for as long as slpc runs.
//
// One slpc owns the file: an advisory lock (flock) on FILE.lock beside it, held for the life of
// the process, keeps a second slpc off it. The lock is not on the file itself, because each write
// replaces the file with a new one (a new inode) and a lock on the old one would guard nothing.
// Each write goes to a temporary file of its own, is synced and renamed over the file, and the
// folder is synced: neither a crash nor a power cut leaves a point half written. A symlink is
// followed, once, at start: the file written is its target, so the link stays a link. Anything
// there that is not a regular file (a FIFO, a folder, a device) is refused before it is opened:
// opening a FIFO waits for a writer, and opening a device may do something.

import { CString, dlopen, FFIType, read } from "bun:ffi";
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  type Stats,
  writeSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import {
  type Address,
  addressKey,
  formatAddress,
  formatStateFile,
  type ResumePoints,
  readStateFile,
  reason,
  UsageError,
} from "../lib.ts";

/**
 * While a resume point moves, it is written this often: a SIGKILL repeats at most what was handed
 * on in this long before it (plus the output's own confirmation time), at a cost of ten writes a
 * second of about a millisecond each.
 */
export const STATE_WRITE_MS = 100;
/**
 * A run's first delivery is written at once: slpc looks for it this often, in the first
 * FIRST_DELIVERY_WATCH_MS of the process (after that, STATE_WRITE_MS is soon enough), so that an
 * idle slpc does not wake up 100 times a second for good.
 */
export const FIRST_DELIVERY_POLL_MS = 10;
export const FIRST_DELIVERY_WATCH_MS = 10_000;
/** Symbolic links followed in a row at most, as Linux does before ELOOP. */
const MAX_LINKS = 40;
/** A state file holds a line per server: a larger one is not one, and is not read into memory. */
const MAX_STATE_BYTES = 4 * 1024 * 1024;
const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const O_CLOEXEC = 0o2000000; // Linux; not in node's constants
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

export interface StateStoreOptions {
  /** The --server addresses, in order: a file in the single-server format is the first's. */
  servers: readonly Address[];
  /** How a server without a point starts, for the log lines: "live", or with everything (--replay). */
  newClientStart: string;
  log: (line: string) => void;
  /** Wall-clock milliseconds: the name of a file moved aside carries the time. */
  now: () => number;
}

/**
 * slpc's --state file, locked, read and written.
 *
 * @example
 * const store = StateStore.open("/var/lib/slpc/state.json", { servers, newClientStart: "live", log, now: Date.now });
 * store.points; // the resume points read, by addressKey
 * store.save(new Map([["web.example.com:6514", { server: "5f2c", last: 9 }]])); // true: written
 * store.close();
 */
export class StateStore {
  /** --state as given: log lines name it. */
  readonly path: string;
  /** The resume points the file held at start, by server (addressKey); empty for a new client. */
  readonly points: ResumePoints;
  /** Servers (addressKey) whose point the file could not give: each starts as a new client, with a gap line. */
  readonly unreadable: Set<string>;
  /** The file read and replaced: `path`, or where its symlinks lead. */
  readonly #target: string;
  #lock: number | undefined;
  /** The file's text as last written or read. */
  #written: string;

  private constructor(path: string, target: string, lock: number) {
    this.path = path;
    this.#target = target;
    this.#lock = lock;
    this.points = new Map();
    this.unreadable = new Set();
    this.#written = "";
  }

  /**
   * Locks the file, reads it and proves it can be written (a file in the single-server format is
   * rewritten in the new one at once). Throws UsageError, one line naming the file, when it cannot
   * be used: slpc then exits 2 before a socket opens.
   */
  static open(path: string, options: StateStoreOptions): StateStore {
    const fail = (why: string) => new UsageError(`--state ${path}: ${why}`);
    if (path.endsWith("/")) throw fail("a folder's name (it ends in /), not a file's");
    let target: string;
    try {
      target = followLinks(path);
    } catch (error) {
      throw fail(reason(error));
    }
    const which = target === path ? "" : `its target ${target} is `;
    const kind = kindOf(statOrUndefined(target, fail));
    if (kind) throw fail(`${which}a ${kind}, not a regular file`);
    const store = new StateStore(path, target, lockBeside(target, fail));
    try {
      removeLeftovers(target);
      store.#read(options);
      if (store.points.size > 0) store.#write(formatStateFile(store.points));
      else store.#proveWritable();
    } catch (error) {
      store.close();
      throw error instanceof UsageError ? error : new UsageError(reason(error)); // each names the file already
    }
    return store;
  }

  /** Writes `points` when they differ from what the file holds; whether it wrote. Throws an Error naming the file. */
  save(points: ResumePoints): boolean {
    const text = formatStateFile(points);
    if (points.size === 0 || text === this.#written) return false;
    this.#write(text);
    return true;
  }

  /** Lets the lock go, for another slpc. */
  close(): void {
    if (this.#lock !== undefined) closeSync(this.#lock);
    this.#lock = undefined;
  }

  /** Reads the points. A file that is not a state file must not keep slpc down: it is moved aside. */
  #read(options: StateStoreOptions): void {
    const { servers, newClientStart, log, now } = options;
    let bytes: Buffer | undefined;
    try {
      bytes = readRegularFile(this.#target, MAX_STATE_BYTES + 1);
    } catch (error) {
      throw new UsageError(`--state ${this.path}: ${reason(error)}`);
    }
    if (bytes === undefined) return;
    const text = bytes.toString("utf8");
    let read: ReturnType<typeof readStateFile>;
    try {
      if (bytes.length > MAX_STATE_BYTES) throw new Error(`over ${MAX_STATE_BYTES >> 20} MiB (not an slpc state file)`);
      read = readStateFile(text, servers);
    } catch (error) {
      const aside = this.#asideName(now);
      try {
        renameSync(this.#target, aside);
      } catch (failure) {
        throw new UsageError(
          `--state ${this.path}: ${reason(error)}, and it cannot be moved aside: ${reason(failure)}`,
        );
      }
      log(
        `--state ${this.path}: ${reason(error)}; moved it to ${aside} and starting as a new client, ${newClientStart}`,
      );
      for (const server of servers) this.unreadable.add(addressKey(server));
      return;
    }
    if (read.converted) {
      const first = formatAddress(servers[0]!);
      log(`--state ${this.path}: a single server's resume point, read as ${first}'s and kept in the new format`);
    }
    if (read.unreadable.size > 0) this.#keepUnreadable(bytes, read.unreadable, options);
    for (const [key, point] of read.points) this.points.set(key, point);
    this.#written = formatStateFile(read.points);
  }

  /**
   * Entries that are not resume points cost their own servers their points, not the others
   * theirs: the file is copied aside as it was, and each such server starts as a new client.
   */
  #keepUnreadable(bytes: Buffer, unreadable: Map<string, string>, options: StateStoreOptions): void {
    const { newClientStart, log, now } = options;
    const aside = this.#asideName(now);
    try {
      replaceFile(aside, bytes);
    } catch (error) {
      throw new UsageError(
        `--state ${this.path}: an entry is unreadable, and the file cannot be copied aside: ${reason(error)}`,
      );
    }
    for (const [key, why] of unreadable) {
      const start = `that server starts as a new client, ${newClientStart}`;
      log(`--state ${this.path}: server ${key}: ${why}; copied the file to ${aside}; ${start}`);
      this.unreadable.add(key);
    }
  }

  /** Where a file that cannot be read whole is kept, for whoever wants to look at it. */
  #asideName(now: () => number): string {
    return `${this.#target}.bad-${Math.floor(now() / 1000)}`;
  }

  /** Writes `text` to a temporary file of its own, syncs it, renames it over the file and syncs the folder. */
  #write(text: string): void {
    try {
      replaceFile(this.#target, Buffer.from(text));
    } catch (error) {
      throw new Error(`--state ${this.path}: cannot write: ${withoutPaths(error)}`);
    }
    this.#written = text;
    syncFolder(dirname(this.#target));
  }

  /** With no point to write yet, proves at start that a write would succeed: exit 2 now rather than lose them later. */
  #proveWritable(): void {
    const temporary = temporaryName(this.#target);
    try {
      const fd = openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666);
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      throw new UsageError(`--state ${this.path}: cannot write: ${reason(error)}`);
    } finally {
      removeQuietly(temporary);
    }
  }
}

/** Where `path`'s symlinks lead, each read relative to its own folder; `path` itself when it is none. */
function followLinks(path: string): string {
  let current = path;
  for (let links = 0; links <= MAX_LINKS; links++) {
    let stats: Stats;
    try {
      stats = lstatSync(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return current; // a dangling link's target is made
      throw error;
    }
    if (!stats.isSymbolicLink()) return current;
    if (plantedLink(stats, dirname(current)))
      throw new Error(`${current} is a symbolic link another user made in a folder anyone may write; not followed`);
    current = resolve(dirname(current), readlinkSync(current));
  }
  throw new Error(`more than ${MAX_LINKS} symbolic links in a row (a loop?)`);
}

/**
 * Whether the link is one the kernel would not follow under fs.protected_symlinks: in a sticky
 * folder anyone may write (/tmp), made by neither this user nor the folder's owner. Whoever made
 * it could point it at any file slpc may replace. slpc reads links itself (to write beside the
 * target), so it checks this itself, whatever the sysctl says.
 */
function plantedLink(link: Stats, folder: string): boolean {
  const uid = process.getuid?.();
  if (uid === undefined || link.uid === uid) return false;
  const parent = lstatSync(folder);
  const stickyAndOpen = (parent.mode & 0o1002) === 0o1002;
  return stickyAndOpen && parent.uid !== link.uid;
}

/** What is at `path` without following a link: undefined when nothing is. */
function statOrUndefined(path: string, fail: (why: string) => UsageError): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fail(reason(error));
  }
}

/** What a file that is not a regular one is, in words; undefined for a regular file or none. */
function kindOf(stats: Stats | undefined): string | undefined {
  if (!stats || stats.isFile()) return undefined;
  if (stats.isDirectory()) return "folder";
  if (stats.isFIFO()) return "fifo";
  if (stats.isCharacterDevice()) return "character device";
  if (stats.isBlockDevice()) return "block device";
  if (stats.isSocket()) return "socket";
  if (stats.isSymbolicLink()) return "symbolic link";
  return "special file";
}

/**
 * The bytes of the regular file at `path`, at most `max` of them; undefined when there is none.
 * Opened without blocking and without following a link, and checked again once open, so a FIFO
 * or a link put there since the check is refused rather than waited on.
 */
function readRegularFile(path: string, max: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const stats = fstatSync(fd);
    const kind = kindOf(stats);
    if (kind) throw new Error(`a ${kind}, not a regular file`);
    const buffer = Buffer.alloc(Math.min(max, stats.size + 1));
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n)
      n = readSync(fd, buffer, length, buffer.length - length, null);
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens and locks `FILE.lock` beside the file, for the life of the process, and writes this
 * process's pid into it for whoever finds it locked. The lock file stays after slpc exits:
 * removing it would let a third process lock a new file while a second still holds the old one.
 */
function lockBeside(target: string, fail: (why: string) => UsageError): number {
  const lockPath = `${target}.lock`;
  const kind = kindOf(statOrUndefined(lockPath, fail));
  if (kind) throw fail(`the lock file ${lockPath} is a ${kind}, not a regular file`);
  let fd: number;
  try {
    fd = openSync(lockPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o644);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw fail(missing ? `no folder ${dirname(target)} to keep it in` : `cannot open the lock file: ${reason(error)}`);
  }
  try {
    const kindOpened = kindOf(fstatSync(fd));
    if (kindOpened) throw fail(`the lock file ${lockPath} is a ${kindOpened}, not a regular file`);
    const result = tryLock(fd);
    if (result === "held") {
      const pid = holderPid(fd);
      const by = `another slpc${pid ? ` (pid ${pid})` : ""}`;
      throw fail(`in use by ${by}, which holds ${lockPath}; give each slpc a state file of its own`);
    }
    if (result !== "locked") throw fail(`cannot lock ${lockPath}: ${result}`);
  } catch (error) {
    closeSync(fd);
    throw error instanceof UsageError ? error : fail(`cannot lock ${lockPath}: ${reason(error)}`);
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch {
    // A hint for whoever finds the file locked, no more: a full disk says what it must when the state is written.
  }
  return fd;
}

/**
 * The pid the holder of a lock file wrote into it; undefined when there is none yet, or it names
 * no live process (a holder between its lock and its write leaves the one before it there).
 */
function holderPid(fd: number): number | undefined {
  const buffer = Buffer.alloc(16);
  const text = buffer.toString("latin1", 0, readSync(fd, buffer, 0, buffer.length, 0));
  if (!/^[1-9]\d{0,9}\n$/.test(text)) return undefined;
  try {
    process.kill(Number(text), 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return undefined;
  }
  return Number(text);
}

let libc: ReturnType<typeof openLibc> | undefined;

function openLibc() {
  const { i32, ptr } = FFIType;
  return dlopen("libc.so.6", {
    flock: { args: [i32, i32], returns: i32 },
    strerror: { args: [i32], returns: ptr },
    __errno_location: { args: [], returns: ptr },
  }).symbols;
}

/** flock(2), exclusive and without waiting: "locked", "held" by another open file, or why it failed. */
function tryLock(fd: number): "locked" | "held" | string {
  libc ??= openLibc();
  for (;;) {
    if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return "locked";
    const errno = read.i32(libc.__errno_location()!, 0);
    if (errno === EWOULDBLOCK) return "held";
    if (errno !== EINTR) return `flock: ${new CString(libc.strerror(errno)!).toString()} (errno ${errno})`;
  }
}

/** A name of its own for each write: pid and a random part, in the file's own folder so the rename stays in it. */
function temporaryName(target: string): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0]!.toString(16).padStart(8, "0");
  return `${target}.tmp-${process.pid}-${random}`;
}

/**
 * Removes the temporary files a crash left beside the file (today's `FILE.tmp-PID-RANDOM`, and an
 * older slpc's `FILE.tmp`). Only the holder of the lock writes them, so none is in use.
 */
function removeLeftovers(target: string): void {
  const name = basename(target);
  const folder = dirname(target);
  let entries: string[];
  try {
    entries = readdirSync(folder);
  } catch {
    return; // a folder that cannot be listed: the write below says what is wrong with it
  }
  const ours = /^\.tmp(-\d+-[0-9a-f]{8})?$/;
  for (const entry of entries) {
    if (!entry.startsWith(name) || !ours.test(entry.slice(name.length))) continue;
    try {
      rmSync(join(folder, entry));
    } catch {
      // Not a file of ours after all (a folder): it is in no one's way.
    }
  }
}

/**
 * Puts `bytes` at `path` whole or not at all: in a temporary file of its own, synced, then renamed
 * over it. A rename replaces a name and never writes into what was there, so a link or a file
 * someone put in the way is replaced, not written through.
 */
function replaceFile(path: string, bytes: Buffer): void {
  const temporary = temporaryName(path);
  try {
    const fd = openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666);
    try {
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    removeQuietly(temporary); // a full disk leaves an empty one behind
    throw error;
  }
}

/** Removes a temporary file, if there is one: what went wrong before says more than this could. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // The same reason as the failure being reported, or a leftover the next start removes.
  }
}

/**
 * A failed write's reason without the paths node puts in it: the temporary file's name is new
 * each time, and slpc logs a failure once per reason, not ten times a second while it lasts.
 */
function withoutPaths(error: unknown): string {
  const { message, syscall } = error as NodeJS.ErrnoException;
  if (typeof message !== "string" || !syscall) return reason(error);
  return `${message.replace(new RegExp(`, ${syscall} '.*$`), "")} (${syscall})`;
}

/** Makes a rename durable. Best effort: a folder that cannot be opened for reading still got the file. */
function syncFolder(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, O_RDONLY | O_CLOEXEC);
    fsyncSync(fd);
  } catch {
    // The rename stands; only its durability across a power cut is not assured.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
