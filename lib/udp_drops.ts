// The datagrams the kernel dropped at one UDP socket because its receive buffer was full, which it
// counts per socket where nobody looks: slps reads its own socket's count, so that loss before the
// first byte reaches it is said too. /proc/net/udp and udp6 show the count, but cost the kernel a row
// for every UDP socket on the host, which any local user can open by the thousand: they are read
// once, at start, to find slps's socket among its descriptors; from then on the socket itself is
// asked (lib/socket_drops.ts). The functions read the tables' text; UdpDropCounter reads the files,
// and asks the socket, through what it is given.

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

/**
 * The three calls of node:fs that reading /proc takes, and the socket's own count (lib/socket_drops.ts):
 * the real ones, or plain values in tests.
 */
export interface ProcFiles {
  readFileSync(path: string, encoding: "utf8"): string;
  readdirSync(path: string): string[];
  readlinkSync(path: string): string;
  socketDrops(fd: number): number | undefined;
}

/**
 * The kernel's count of datagrams dropped at this process's UDP socket on `port`. The socket is found
 * at start, by its inode in /proc/net/udp (or udp6) among this process's descriptors; from then on
 * its own count is asked, at a cost that does not grow with the host's sockets. Where that cannot be
 * done (not Linux, /proc not mounted, the socket not found or not telling), `say` is called once
 * with why, and the count is null from then on.
 */
export class UdpDropCounter {
  #fs: ProcFiles;
  #say: (problem: string) => void;
  /** The descriptor of the socket, once found. */
  #fd: number | undefined;
  /** The count as the last call of takeNew() saw it. */
  #taken = 0;

  constructor(fs: ProcFiles, port: number, ipv6: boolean, say: (problem: string) => void) {
    this.#fs = fs;
    this.#say = say;
    const table = ipv6 ? "/proc/net/udp6" : "/proc/net/udp";
    try {
      const links = new Map<string, number>();
      for (const fd of fs.readdirSync("/proc/self/fd")) {
        try {
          links.set(fs.readlinkSync(`/proc/self/fd/${fd}`), Number(fd));
        } catch {
          // closed in the meantime
        }
      }
      // The kernel writes the table in pieces, and sockets that come and go meanwhile can shift a
      // row out of one read: a few tries tell a torn read from a table without the socket.
      let inode: string | undefined;
      for (let tries = 0; tries < 3 && inode === undefined; tries++) {
        inode = ownUdpSocket(fs.readFileSync(table, "utf8"), port, socketInodes([...links.keys()]));
      }
      if (inode === undefined) {
        this.#cannot(`${table} does not list it`);
        return;
      }
      this.#fd = links.get(`socket:[${inode}]`);
      this.total(); // one that cannot say is said now, at start
    } catch (error) {
      this.#cannot(reason(error));
    }
  }

  /** The datagrams dropped so far, or null where the socket does not tell. */
  total(): number | null {
    if (this.#fd === undefined) return null;
    const drops = this.#fs.socketDrops(this.#fd);
    if (drops === undefined) {
      this.#cannot("the socket does not tell (SO_MEMINFO)");
      return null;
    }
    return drops;
  }

  /** The datagrams dropped since the last call, and in all; none while the count is unknown. */
  takeNew(): { dropped: number; total: number } {
    const total = this.total() ?? this.#taken;
    const dropped = total - this.#taken;
    this.#taken = total;
    return { dropped, total };
  }

  #cannot(why: string): void {
    this.#fd = undefined;
    this.#say(`cannot count the datagrams the kernel drops at the UDP socket: ${why}`);
  }
}
