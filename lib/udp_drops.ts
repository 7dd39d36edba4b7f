// The datagrams the kernel dropped at one UDP socket because its receive buffer was full. It counts
// them per socket, in the last column of /proc/net/udp and /proc/net/udp6, where nobody looks:
// slps reads its own socket's count, so that loss before the first byte reaches it is said too.
// The functions read the tables' text; UdpDropCounter reads the files through what it is given.

import { reason } from "./log.ts";

/** The inodes of the sockets among the targets of a process's file descriptors (`socket:[12345]`). */
export function socketInodes(links: readonly string[]): Set<string> {
  const inodes = new Set<string>();
  for (const link of links) {
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode !== undefined) inodes.add(inode);
  }
  return inodes;
}

/** One socket's row of /proc/net/udp or udp6. */
interface UdpRow {
  port: number;
  inode: string;
  drops: number;
}

/** The rows of /proc/net/udp or /proc/net/udp6; the header line and anything malformed are left out. */
function rows(table: string): UdpRow[] {
  const found: UdpRow[] = [];
  for (const line of table.split("\n")) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    const fields = line.trim().split(/\s+/);
    const port = Number.parseInt(fields[1]?.split(":")[1] ?? "", 16);
    const drops = Number(fields[12]);
    if (fields.length < 13 || !/^\d+:$/.test(fields[0]!) || !Number.isInteger(port) || !Number.isInteger(drops))
      continue;
    found.push({ port, inode: fields[9]!, drops });
  }
  return found;
}

/** The inode of the socket bound to `port` that is one of `ours`, or undefined if the table has none. */
export function ownUdpSocket(table: string, port: number, ours: ReadonlySet<string>): string | undefined {
  return rows(table).find((row) => row.port === port && ours.has(row.inode))?.inode;
}

/**
 * The datagrams the kernel dropped at the socket with `inode`, or undefined if the table no longer
 * lists it.
 *
 * @example
 * ```ts
 * import { udpDrops } from "./lib/udp_drops.ts";
 * const table = "  sl  local_address rem_address ...\n" +
 *   " 9156: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 42811 2 0000000005ccc5e7 17\n";
 * console.log(udpDrops(table, "42811")); // 17
 * ```
 */
export function udpDrops(table: string, inode: string): number | undefined {
  return rows(table).find((row) => row.inode === inode)?.drops;
}

/** The three calls of node:fs that reading /proc takes: node:fs itself, or plain text in tests. */
export interface ProcFiles {
  readFileSync(path: string, encoding: "utf8"): string;
  readdirSync(path: string): string[];
  readlinkSync(path: string): string;
}

/**
 * The kernel's count of datagrams dropped at this process's UDP socket on `port`, read from /proc
 * when asked. Where /proc does not tell (not Linux, not mounted, the socket not listed), `say` is
 * called once with why, and the count is null from then on.
 */
export class UdpDropCounter {
  #fs: ProcFiles;
  #table: string;
  #say: (problem: string) => void;
  #inode: string | undefined;
  /** The count as the table last gave it: the socket is new when the counter is made. */
  #read = 0;
  /** The count as the last call of takeNew() saw it. */
  #taken = 0;

  constructor(fs: ProcFiles, port: number, ipv6: boolean, say: (problem: string) => void) {
    this.#fs = fs;
    this.#table = ipv6 ? "/proc/net/udp6" : "/proc/net/udp";
    this.#say = say;
    try {
      const links = fs.readdirSync("/proc/self/fd").flatMap((fd) => {
        try {
          return [fs.readlinkSync(`/proc/self/fd/${fd}`)];
        } catch {
          return []; // closed in the meantime
        }
      });
      // A read may miss a row (see total()): a few tries tell a torn read from a table without it.
      for (let tries = 0; tries < 3 && this.#inode === undefined; tries++) {
        this.#inode = ownUdpSocket(fs.readFileSync(this.#table, "utf8"), port, socketInodes(links));
      }
      if (this.#inode === undefined) this.#cannot(`${this.#table} does not list it`);
    } catch (error) {
      this.#cannot(reason(error));
    }
  }

  /** The datagrams dropped so far, or null where /proc does not tell. */
  total(): number | null {
    if (this.#inode === undefined) return null;
    try {
      // The kernel writes the table in pieces, and sockets that come and go meanwhile (2,000
      // churning made one read in about a hundred miss it) can shift a row out of the read. The
      // socket is still open, and its count only grows: the next read catches up.
      const drops = udpDrops(this.#fs.readFileSync(this.#table, "utf8"), this.#inode);
      if (drops !== undefined) this.#read = drops;
      return this.#read;
    } catch (error) {
      this.#cannot(reason(error));
    }
    return null;
  }

  /** The datagrams dropped since the last call, and in all; none while the count is unknown. */
  takeNew(): { dropped: number; total: number } {
    const total = this.total() ?? this.#taken;
    const dropped = total - this.#taken;
    this.#taken = total;
    return { dropped, total };
  }

  #cannot(why: string): void {
    this.#inode = undefined;
    this.#say(`cannot count the datagrams the kernel drops at the UDP socket: ${why}`);
  }
}
