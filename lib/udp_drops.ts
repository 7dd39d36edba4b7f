// The datagrams the kernel dropped at one UDP socket because its receive buffer was full. It counts
// them per socket, in the last column of /proc/net/udp and /proc/net/udp6, where nobody looks:
// slps reads its own socket's count, so that loss before the first byte reaches it is said too.
// The files are read by the caller; this module only reads their text.

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
