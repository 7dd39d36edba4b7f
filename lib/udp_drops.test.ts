import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { socketDrops } from "./socket_drops.ts";
import { ownUdpSocket, type ProcFiles, socketInodes, UdpDropCounter, udpDrops } from "./udp_drops.ts";

// As Linux 6.x writes them, padded with spaces.
const HEADER =
  "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer";
const MIDDLE = "07 00000000:00000000 00:00000000 00000000     0        0";
const row = (sl: string, local: string, remote: string, inode: string, drops: string) =>
  `${sl}: ${local} ${remote} ${MIDDLE} ${inode} 2 000000005ccc5e79 ${drops}   `;
const UDP = [
  `${HEADER} drops            `,
  row(" 9156", "0100007F:0202", "00000000:0000", "42811", "0"),
  row(" 9560", "00000000:0202", "00000000:0000", "42823", "1234"),
  "",
].join("\n");
const V6_ZERO = "00000000000000000000000000000000";
const UDP6 = [
  `${HEADER} drops`,
  row("  123", "00000000000000000000000001000000:9C49", `${V6_ZERO}:0000`, "50001", "7"),
  "",
].join("\n");

describe("udp drops", () => {
  test("the socket on a port that is ours, of several bound to it; its drops", () => {
    expect(ownUdpSocket(UDP, 514, new Set(["42823", "99"]))).toBe("42823");
    expect(ownUdpSocket(UDP, 514, new Set(["42811"]))).toBe("42811");
    expect(ownUdpSocket(UDP, 515, new Set(["42811"]))).toBeUndefined();
    expect(udpDrops(UDP, "42823")).toBe(1234);
    expect(udpDrops(UDP, "42811")).toBe(0);
    expect(udpDrops(UDP, "1")).toBeUndefined();
  });

  test("IPv6 rows have the same columns", () => {
    expect(ownUdpSocket(UDP6, 0x9c49, new Set(["50001"]))).toBe("50001");
    expect(udpDrops(UDP6, "50001")).toBe(7);
  });

  test("only socket links name an inode", () => {
    expect([...socketInodes(["/dev/null", "socket:[42]", "pipe:[7]", "anon_inode:[eventpoll]", "socket:[8]"])]).toEqual(
      ["42", "8"],
    );
  });

  test("a truncated or foreign table gives nothing, never a wrong number", () => {
    expect(udpDrops("", "42811")).toBeUndefined();
    expect(udpDrops(UDP.slice(0, 200), "42811")).toBeUndefined();
    expect(ownUdpSocket("garbage\n1: x y\n", 514, new Set(["x"]))).toBeUndefined();
  });

  test("this process's own UDP socket is found in the kernel's table, by its inode", async () => {
    const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const links = fs.readdirSync("/proc/self/fd").flatMap((fd) => {
        try {
          return [fs.readlinkSync(`/proc/self/fd/${fd}`)];
        } catch {
          return [];
        }
      });
      const table = fs.readFileSync("/proc/net/udp", "utf8");
      const inode = ownUdpSocket(table, socket.port, socketInodes(links));
      expect(inode).toMatch(/^\d+$/);
      expect(udpDrops(table, inode!)).toBe(0);
    } finally {
      socket.close();
    }
  });

  test("UdpDropCounter reads this process's socket from the real /proc, and what is new since it asked", async () => {
    const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const said: string[] = [];
      const counter = new UdpDropCounter({ ...fs, socketDrops }, socket.port, false, (problem) => said.push(problem));
      expect(counter.total()).toBe(0);
      expect(counter.takeNew()).toEqual({ dropped: 0, total: 0 });
      expect(said).toEqual([]);
    } finally {
      socket.close();
    }
  });

  test("UdpDropCounter finds its socket in the table once, then asks the socket; says once when it cannot", () => {
    const files = { readable: true, drops: 1234 as number | undefined, tableReads: 0 };
    const proc: ProcFiles = {
      readdirSync: () => ["0", "1", "7"],
      readlinkSync: (path) => (path.endsWith("/7") ? "socket:[42823]" : "/dev/null"),
      readFileSync: (path) => {
        if (path !== "/proc/net/udp") throw new Error(`ENOENT: ${path}`);
        if (!files.readable) throw new Error(`EACCES: ${path}`);
        files.tableReads++;
        return UDP;
      },
      socketDrops: (fd) => (fd === 7 ? files.drops : undefined),
    };
    const said: string[] = [];
    const counter = new UdpDropCounter(proc, 514, false, (problem) => said.push(problem));
    expect(counter.takeNew()).toEqual({ dropped: 1234, total: 1234 });
    files.drops = 1300;
    expect(counter.takeNew()).toEqual({ dropped: 66, total: 1300 });
    expect(counter.takeNew()).toEqual({ dropped: 0, total: 1300 });
    // The table costs the kernel a row for every UDP socket on the host: it is read at start only.
    files.readable = false;
    expect(counter.total()).toBe(1300);
    expect(files.tableReads).toBe(1);
    files.drops = undefined;
    expect(counter.total()).toBeNull();
    expect(counter.total()).toBeNull();
    expect(counter.takeNew()).toEqual({ dropped: 0, total: 1300 });
    expect(said).toEqual([
      "cannot count the datagrams the kernel drops at the UDP socket: the socket does not tell (SO_MEMINFO)",
    ]);
    // IPv6 reads udp6; where it cannot be read at all, that is said at once.
    const none: string[] = [];
    expect(new UdpDropCounter(proc, 514, true, (problem) => none.push(problem)).total()).toBeNull();
    expect(none).toEqual(["cannot count the datagrams the kernel drops at the UDP socket: ENOENT: /proc/net/udp6"]);
  });
});

describe("UdpDropCounter and a table read while other sockets come and go", () => {
  test("a start-up read that misses its row is tried again; one that never finds it is said once", () => {
    // The kernel writes /proc/net/udp in pieces; sockets opened and closed meanwhile (2,000 of them
    // churning, as on a busy resolver) made about one read in a hundred miss slps's own row.
    const reads = { count: 0, missing: 1 };
    const torn = UDP.split("\n")
      .filter((line) => !line.includes("42823"))
      .join("\n");
    const proc: ProcFiles = {
      readdirSync: () => ["7"],
      readlinkSync: () => "socket:[42823]",
      readFileSync: () => (reads.count++ < reads.missing ? torn : UDP),
      socketDrops: () => 5,
    };
    const said: string[] = [];
    expect(new UdpDropCounter(proc, 514, false, (problem) => said.push(problem)).total()).toBe(5);
    expect(said).toEqual([]);
    [reads.count, reads.missing] = [0, 3];
    expect(new UdpDropCounter(proc, 514, false, (problem) => said.push(problem)).total()).toBeNull();
    expect(said).toEqual([
      "cannot count the datagrams the kernel drops at the UDP socket: /proc/net/udp does not list it",
    ]);
  });
});
