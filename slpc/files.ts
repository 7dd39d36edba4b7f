// Files handled with care, for slpc's --state: symlinks followed as the kernel's
// protected_symlinks rule would, nothing opened that is not a regular file (opening a FIFO waits
// for a writer, opening a device may do something), a file replaced whole or not at all
// (a temporary file of its own, synced and renamed), and an advisory lock (flock, through libc:
// neither Bun nor node has it) on a lock file beside it.

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
import { reason } from "../lib.ts";

/** Symbolic links followed in a row at most, as Linux does before ELOOP. */
const MAX_LINKS = 40;
const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const O_CLOEXEC = 0o2000000; // Linux; not in node's constants
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

/** Where `path`'s symlinks lead, each read relative to its own folder; `path` itself when it is none. */
export function followLinks(path: string): string {
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
export function statOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** What a file that is not a regular one is, in words; undefined for a regular file or none. */
export function kindOf(stats: Stats | undefined): string | undefined {
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
export function readRegularFile(path: string, max: number): Buffer | undefined {
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

/** The lock file is held by another process: `pid` when it wrote one into the file and still runs. */
export class LockHeld extends Error {
  constructor(
    readonly lockPath: string,
    readonly pid: number | undefined,
  ) {
    super(`${lockPath} is locked${pid ? ` by pid ${pid}` : ""}`);
  }
}

/**
 * Opens and locks `FILE.lock` beside `target` (flock, exclusive), for the life of the process, and
 * writes this process's pid into it for whoever finds it locked. Throws LockHeld, or an Error
 * saying why it cannot. The lock file stays after the process exits: removing it would let a
 * third process lock a new file while a second still holds the old one.
 */
export function lockBeside(target: string): number {
  const lockPath = `${target}.lock`;
  const notRegular = (kind: string) => new Error(`the lock file ${lockPath} is a ${kind}, not a regular file`);
  const kind = kindOf(statOrUndefined(lockPath));
  if (kind) throw notRegular(kind);
  let fd: number;
  try {
    fd = openSync(lockPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o644);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new Error(
      missing ? `no folder ${dirname(target)} to keep it in` : `cannot open the lock file: ${reason(error)}`,
    );
  }
  try {
    const kindOpened = kindOf(fstatSync(fd));
    if (kindOpened) throw notRegular(kindOpened);
    const result = tryLock(fd);
    if (result === "held") throw new LockHeld(lockPath, holderPid(fd));
    if (result !== "locked") throw new Error(`cannot lock ${lockPath}: ${result}`);
  } catch (error) {
    closeSync(fd);
    throw error;
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
 * Removes the temporary files a crash left beside `target` (`FILE.tmp-PID-RANDOM`, and an older
 * slpc's `FILE.tmp`). Call it holding the lock: only its holder writes them, so none is in use.
 */
export function removeLeftovers(target: string): void {
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
export function replaceFile(path: string, bytes: Buffer): void {
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
export function withoutPaths(error: unknown): string {
  const { message, syscall } = error as NodeJS.ErrnoException;
  if (typeof message !== "string" || !syscall) return reason(error);
  return `${message.replace(new RegExp(`, ${syscall} '.*$`), "")} (${syscall})`;
}

/** Makes a rename durable. Best effort: a folder that cannot be opened for reading still got the file. */
export function syncFolder(path: string): void {
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

/** Proves that a file could be written beside `target` now: a temporary file made, synced and removed. */
export function proveWritable(target: string): void {
  const temporary = temporaryName(target);
  try {
    const fd = openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } finally {
    removeQuietly(temporary);
  }
}
