// slpc's --state file on disk: the resume point of every server, read once at start and written
// whenever one moves, for as long as slpc runs.
//
// One slpc owns the file: an advisory lock (flock) on FILE.lock beside it, held for the life of
// the process, keeps a second slpc off it. The lock is not on the file itself, because each write
// replaces the file with a new one (a new inode) and a lock on the old one would guard nothing.
// Each write goes to a temporary file of its own, is synced and renamed over the file, and the
// folder is synced: neither a crash nor a power cut leaves a point half written. A symlink is
// followed, once, at start: the file written is its target, so the link stays a link. Anything
// there that is not a regular file (a FIFO, a folder, a device) is refused before it is opened.
// How each of these is done safely is in ./files.ts.

import { closeSync, renameSync } from "node:fs";
import { dirname } from "node:path";
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
import {
  followLinks,
  kindOf,
  LockHeld,
  lockBeside,
  proveWritable,
  readRegularFile,
  removeLeftovers,
  replaceFile,
  statOrUndefined,
  syncFolder,
  withoutPaths,
} from "./files.ts";

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
/** A state file holds a line per server: a larger one is not one, and is not read into memory. */
const MAX_STATE_BYTES = 4 * 1024 * 1024;

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
    let lock: number;
    try {
      target = followLinks(path);
      const kind = kindOf(statOrUndefined(target));
      const which = target === path ? "" : `its target ${target} is `;
      if (kind) throw new Error(`${which}a ${kind}, not a regular file`);
      lock = lockBeside(target);
    } catch (error) {
      if (!(error instanceof LockHeld)) throw fail(reason(error));
      const by = `another slpc${error.pid ? ` (pid ${error.pid})` : ""}`;
      throw fail(`in use by ${by}, which holds ${error.lockPath}; give each slpc a state file of its own`);
    }
    const store = new StateStore(path, target, lock);
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
    try {
      proveWritable(this.#target);
    } catch (error) {
      throw new UsageError(`--state ${this.path}: cannot write: ${reason(error)}`);
    }
  }
}
