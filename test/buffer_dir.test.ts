// slps's resume buffer on disk (--buffer-dir) end to end: real slps and slpc processes, real
// files, SIGKILL and SIGTERM, and each bad file or disk the issue names, made by the test (a tail
// cut mid-record, garbage in a segment, a segment deleted, a read-only bind mount, a full tmpfs).
// Messages come in over UDP. slps/disk_buffer.test.ts tests the buffer itself, on its own.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { BUN, Child, feed, protocolClient, type ServerHandle, sleep, snapshotOf, testBed, until } from "./kit.ts";
import { cannotMount, readOnlyView, smallDisk } from "./mounts.ts";

setDefaultTimeout(60_000);

const required = process.env.SLP_REQUIRE_DAEMONS === "1";
const withMounts = test.skipIf(cannotMount !== undefined && !required);

const bed = testBed();

/** A folder of the test's own for --buffer-dir. */
function bufferDir(name = "buffer"): string {
  const dir = join(bed.dir, `${name}-${Math.random().toString(16).slice(2)}`);
  mkdirSync(dir);
  bed.defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** slps with its buffer in `dir`, on the ports of `after` when it replaces one. */
const server = (dir: string, args: string[] = [], after?: ServerHandle) =>
  bed.server(
    ["--buffer-dir", dir, "--heartbeat", "0.3", ...args],
    after ? { udpPort: after.udpPort, tlsPort: after.tlsPort } : {},
  );

/** `count` messages `<13>NAME N`, numbered from `first`, of `size` bytes at least. */
const named = (name: string, count: number, first = 1, size = 0) =>
  Array.from({ length: count }, (_, i) => Buffer.from(`<13>${name} ${first + i} `.padEnd(size, "x")));
/** What a --stdout client printed, one message a line. */
const printed = (c: Child) => c.stdout.toString().split("\n").slice(0, -1);
const texts = (messages: Buffer[]) => messages.map(String);
const segments = (dir: string) =>
  readdirSync(dir)
    .filter((name) => name.endsWith(".seg"))
    .sort();

/**
 * Waits until slps has stored every message up to number `last`: written (and synced, as --fsync
 * says), so that none is still in the kernel's buffer or in the turn a SIGKILL would cut short.
 */
async function stored(s: ServerHandle, last: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await snapshotOf(s)).buffer.next > last) return;
    await sleep(20);
  }
  throw new Error(`slps did not store up to #${last}:\n${s.stderr}`);
}

/** Bytes a process read by read(2) and pread(2) so far, from the page cache or the disk. */
const bytesRead = (pid: number) => Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "latin1"))![1]);

/** slps with the test's certificates on loopback and `args`, not waited for: for what is refused at start. */
const slpsWith = (args: string[]) => {
  const { cert, key } = bed.pki.server;
  const files = ["--cert", cert, "--key", key, "--ca", bed.pki.ca];
  return new Child([BUN, "slps.ts", "--udp", "127.0.0.1:9", "--listen", "127.0.0.1:9", ...files, ...args]);
};

/** slpc printing to stdout, keeping its resume point in `state`; `args` after. */
const client = (s: ServerHandle, state: string, args: string[] = []) =>
  bed.client(s, { args: ["--state", state, "--dead-after", "2", ...args] });

describe("the resume buffer on disk", () => {
  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    test(`a client away across an slps restart (${signal}) resumes without a gap, with all it missed`, async () => {
      const dir = bufferDir();
      const state = join(bed.dir, `state-${signal}.json`);
      const first = await server(dir);
      const away = await client(first, state);
      await feed(first, named("before", 50));
      await until("the client to print 50", () => printed(away).length === 50);
      away.kill("SIGTERM");
      await away.exit();
      await feed(first, named("missed", 300, 1, 300));
      await stored(first, 350);
      first.kill(signal);
      await first.exit();
      const second = await server(dir, [], first);
      expect(second.stderr).toMatch(new RegExp(`--buffer-dir ${dir}: run [0-9a-f]{16} goes on from #351`));
      await feed(second, named("after", 20));
      await stored(second, 370);
      const back = await client(second, state);
      await until(
        () => `the client to print 320, not ${printed(back).length}:\n${back.stderr}`,
        () => printed(back).length === 320,
      );
      await sleep(300);
      expect(printed(back)).toEqual([...texts(named("missed", 300, 1, 300)), ...texts(named("after", 20))]);
      expect(back.stderr).not.toContain("gap");
      const ids = [first, second].map((s) => /server id ([0-9a-f]{16})/.exec(s.stderr)![1]);
      expect(ids[0]).toBe(ids[1]!);
    });
  }

  test("a client that stays connected follows across a SIGKILL of slps without a gap line", async () => {
    const dir = bufferDir();
    const first = await server(dir);
    const c = await bed.client(first, { args: ["--dead-after", "2"] });
    await feed(first, named("one", 100));
    await stored(first, 100);
    first.kill("SIGKILL");
    await first.exit();
    const second = await server(dir, [], first);
    await feed(second, named("two", 100));
    await until(
      () => `200 printed:\n${c.stderr}`,
      () => printed(c).length === 200,
    );
    expect(printed(c)).toEqual([...texts(named("one", 100)), ...texts(named("two", 100))]);
    expect(c.stderr).not.toContain("gap");
  });

  test("a client back after a night finds all that --buffer kept: --queue follows --buffer", async () => {
    const dir = bufferDir();
    const state = join(bed.dir, "state-night.json");
    const s = await server(dir, ["--buffer", "64MiB"]);
    const away = await client(s, state);
    await feed(s, named("evening", 1));
    await until("the client to print one", () => printed(away).length === 1); // and so to have a point to resume
    away.kill("SIGTERM");
    await away.exit();
    // 20 MB: more than the 16 MiB a client may fall behind by default without --buffer-dir.
    const night = named("night", 20_000, 1, 1000);
    await feed(s, night);
    await stored(s, 20_001);
    const back = await client(s, state);
    await until(
      () => `20,000 printed, not ${printed(back).length}`,
      () => printed(back).length === 20_000,
      30_000,
    );
    expect(printed(back)).toEqual(texts(night));
    expect(back.stderr).not.toContain("gap");
  });

  test("--buffer bounds the bytes on disk: the oldest segments go first", async () => {
    const dir = bufferDir();
    const s = await server(dir, ["--buffer", "4MiB"]);
    await feed(s, named("fill", 12_000, 1, 1000));
    await stored(s, 12_000);
    const numbers = await snapshotOf(s);
    const onDisk = segments(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    expect(onDisk).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(onDisk).toBeGreaterThan(3 * 1024 * 1024);
    expect(numbers.buffer.disk).toMatchObject({
      dir,
      bytes: onDisk,
      segments: segments(dir).length,
      memoryOnly: false,
    });
    expect(numbers.buffer.first).toBeGreaterThan(8000);
    expect(numbers.buffer.next).toBe(12_001);
    const replay = await bed.client(s, { args: ["--replay"] });
    await until("the replay", () => printed(replay).length === 12_001 - numbers.buffer.first);
    expect(printed(replay)).toEqual(texts(named("fill", 12_000, 1, 1000).slice(numbers.buffer.first - 1)));
  });

  test("clients replaying from disk cost no read of the disk for each message that arrives", async () => {
    const dir = bufferDir();
    const s = await server(dir, ["--buffer", "64MiB", "--fsync", "never"]);
    // 60 MB: beyond the 16 MiB held in memory too, and beyond what a socket takes before it is full.
    await feed(s, named("old", 60_000, 1, 1000));
    await stored(s, 55_000); // UDP on a busy machine may drop a few
    const id = /server id ([0-9a-f]{16})/.exec(s.stderr)![1]!;
    const creds = { ...bed.pki.cert("client"), ca: bed.pki.ca };
    // Two clients far behind, each in a segment of its own (2 MiB), that stop reading once their socket is full.
    for (const last of [0, 20_000]) {
      const resume = { type: "resume", version: 1, server: id, last } as const;
      const stalled = await protocolClient(s.tlsPort, creds, { resume });
      bed.defer(stalled.close);
    }
    await sleep(1000);
    const before = bytesRead(s.pid);
    const next = (await snapshotOf(s)).buffer.next;
    await feed(s, named("new", 2000, 1, 200));
    await stored(s, next + 1800);
    // Each new message asks how far behind each client is: that is known, not read again (it was 1.5 GB).
    expect(bytesRead(s.pid) - before).toBeLessThan(16 * 1024 * 1024);
  });

  test("a second slps on the same folder exits 2 with one line naming the holder", async () => {
    const dir = bufferDir();
    const first = await server(dir);
    const second = slpsWith(["--buffer-dir", dir]);
    expect(await second.exit()).toBe(2);
    expect(second.stderr).toBe(
      `slps: --buffer-dir ${dir}: in use by another slps (pid ${first.pid}), which holds ${dir}/slps.lock; ` +
        "give each slps a folder of its own\n",
    );
  });

  test("values --buffer-dir and --fsync cannot use are refused at start, one line and exit 2", async () => {
    const dir = bufferDir();
    writeFileSync(join(dir, "file"), "");
    for (const [args, line] of [
      [["--buffer-dir", join(dir, "nowhere")], `--buffer-dir ${join(dir, "nowhere")}: no such folder`],
      [["--buffer-dir", join(dir, "file")], `--buffer-dir ${join(dir, "file")}: not a folder`],
      [["--fsync", "always"], "--fsync: only with --buffer-dir"],
      [["--buffer-dir", dir, "--fsync", "sometimes"], '--fsync "sometimes": expected always, never, or seconds'],
      [["--buffer-dir", dir, "--buffer", "1MiB"], '--buffer "1048576": must be at least 2097152 with --buffer-dir'],
      [["--buffer-dir", dir, "--buffer", "300GiB"], '--buffer "300GiB": must be at most 256GiB'],
      [["--buffer", "3GiB"], '--buffer "3221225472": must be at most 2GiB, or give --buffer-dir'],
    ] as const) {
      const child = slpsWith([...args]);
      expect(await child.exit()).toBe(2);
      expect(child.stderr.split("\n")).toHaveLength(2);
      expect(child.stderr).toStartWith(`slps: ${line}`);
    }
  });

  withMounts("a --buffer larger than the folder's file system is refused at start", async () => {
    const disk = smallDisk(bufferDir(), 4 * 1024 * 1024);
    bed.defer(disk.unmount);
    const child = slpsWith(["--buffer-dir", disk.dir, "--buffer", "8MiB"]);
    expect(await child.exit()).toBe(2);
    expect(child.stderr).toBe(
      `slps: --buffer-dir ${disk.dir}: its file system holds 4194304 bytes in all, less than --buffer 8388608\n`,
    );
  });
});

describe("bad files in --buffer-dir: one line each, and delivery goes on", () => {
  /** slps that received `count` messages of `size` bytes into `dir` and stopped (SIGTERM). */
  async function filled(dir: string, count: number, size: number) {
    const s = await server(dir);
    await feed(s, named("old", count, 1, size));
    await stored(s, count);
    s.kill("SIGTERM");
    await s.exit();
    return s;
  }

  /** After a fault: new messages still reach a client that is connected. */
  async function deliveryGoesOn(s: ServerHandle) {
    const live = await bed.client(s);
    await feed(s, named("new", 10));
    await until("the new messages", () => printed(live).length === 10);
    expect(printed(live)).toEqual(texts(named("new", 10)));
  }

  test("a tail cut mid-record: cut off with one line, and the run goes on from the last whole record", async () => {
    const dir = bufferDir();
    const before = await filled(dir, 100, 100);
    const newest = join(dir, segments(dir).at(-1)!);
    truncateSync(newest, statSync(newest).size - 3);
    const s = await server(dir, [], before);
    const lines = s.stderr.split("\n").filter((line) => line.includes("--buffer-dir"));
    expect(lines[0]).toMatch(/^slps: --buffer-dir .*: segment slps-0+1\.seg cut off from byte \d+ \(a write cut short/);
    expect(lines[1]).toMatch(/goes on from #100: 99 messages in 1 segments$/);
    expect(lines).toHaveLength(2);
    await deliveryGoesOn(s);
  });

  for (const [kind, header] of [
    ["nothing", 0],
    ["half its header", 20],
  ] as const) {
    test(`a newest segment slps died beginning (${kind} written): one line, and the run goes on`, async () => {
      const dir = bufferDir();
      const first = await server(dir);
      const c = await bed.client(first, { args: ["--dead-after", "2"] });
      await feed(first, named("one", 100));
      await stored(first, 100);
      first.kill("SIGKILL");
      await first.exit();
      // What a SIGKILL or a power cut between creating the next segment and writing its header leaves.
      const begun = "slps-0000000000000101.seg";
      const fd = openSync(join(dir, segments(dir)[0]!), "r");
      const bytes = Buffer.alloc(header);
      readSync(fd, bytes, 0, header, 0);
      closeSync(fd);
      writeFileSync(join(dir, begun), bytes);
      const second = await server(dir, [], first);
      const lines = second.stderr.split("\n").filter((line) => line.includes("--buffer-dir"));
      expect(lines).toEqual([
        `slps: --buffer-dir ${dir}: segment ${begun} is not used: ${header} bytes of a header of 40`,
        expect.stringMatching(/: run [0-9a-f]{16} goes on from #101: 100 messages in 1 segments$/),
      ]);
      await feed(second, named("two", 100));
      await until(
        () => `200 printed:\n${c.stderr}`,
        () => printed(c).length === 200,
      );
      expect(printed(c)).toEqual([...texts(named("one", 100)), ...texts(named("two", 100))]);
      expect(c.stderr).not.toContain("gap");
    });
  }

  test("garbage in a segment: a client replaying across it gets a gap line naming the segment", async () => {
    const dir = bufferDir();
    const before = await filled(dir, 4000, 1000); // 4 MB: four segments of 1 MiB
    const middle = segments(dir)[1]!;
    const fd = openSync(join(dir, middle), "r+");
    writeSync(fd, Buffer.alloc(64, 0x7a), 0, 64, 100_000);
    closeSync(fd);
    const s = await server(dir, [], before);
    const replay = await bed.client(s, { args: ["--replay"] });
    await s.waitFor(new RegExp(`segment ${middle}: its records stop: .*; messages #\\d+ to #\\d+ are lost`));
    await replay.waitFor(new RegExp(`gap: \\d+ messages lost, segment ${middle}: its records stop: `));
    const [, from, to] = /messages #(\d+) to #(\d+) are lost/.exec(s.stderr)!.map(Number);
    await until("the replay", () => printed(replay).length === 4000 - (to! - from! + 1));
    const old = texts(named("old", 4000, 1, 1000));
    expect(printed(replay)).toEqual([...old.slice(0, from! - 1), ...old.slice(to!)]);
    expect(s.stderr.match(/its records stop/g)).toHaveLength(1);
    await deliveryGoesOn(s);
  });

  test("a segment deleted: one line at start, and a client replaying across it gets a gap line naming it", async () => {
    const dir = bufferDir();
    const before = await filled(dir, 4000, 1000);
    const deleted = segments(dir)[1]!;
    unlinkSync(join(dir, deleted));
    const s = await server(dir, [], before);
    expect(s.stderr).toMatch(new RegExp(`--buffer-dir ${dir}: segment ${deleted} is missing; messages #\\d+ to #\\d+`));
    const replay = await bed.client(s, { args: ["--replay"] });
    await replay.waitFor(new RegExp(`gap: \\d+ messages lost, segment ${deleted} is missing; continuing from #\\d+`));
    await deliveryGoesOn(s);
  });

  withMounts("a read-only folder at start: one line, and slps serves from memory", async () => {
    const dir = bufferDir();
    const before = await filled(dir, 10, 100);
    const view = readOnlyView(bufferDir("view"), dir);
    bed.defer(view.unmount);
    const s = await server(view.dir, [], before);
    const lines = s.stderr.split("\n").filter((line) => line.includes("--buffer-dir"));
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^slps: --buffer-dir ${view.dir}: cannot be written \\(.*EROFS.*\\); a new run [0-9a-f]{16} in memory only$`,
        ),
      ),
    ]);
    await deliveryGoesOn(s);
    expect((await snapshotOf(s)).buffer.disk).toMatchObject({ memoryOnly: true });
  });

  withMounts(
    "a full disk: one line, delivery goes on from memory, and one line when the disk has room again",
    async () => {
      const disk = smallDisk(bufferDir(), 3 * 1024 * 1024);
      bed.defer(disk.unmount);
      const filler = join(disk.dir, "filler");
      writeFileSync(filler, Buffer.alloc(2 * 1024 * 1024));
      const s = await server(disk.dir, ["--buffer", "2MiB"]);
      const live = await bed.client(s);
      const messages = named("full", 2000, 1, 1000);
      await feed(s, messages);
      await s.waitFor(
        /--buffer-dir .*: cannot (write|begin) slps-\d+\.seg: .*ENOSPC.*; keeping messages from #\d+ in memory/,
      );
      await until("all of them", () => printed(live).length === 2000);
      expect(printed(live)).toEqual(texts(messages));
      expect(s.stderr.match(/cannot (write|begin)/g)).toHaveLength(1);
      expect((await snapshotOf(s)).buffer.disk).toMatchObject({ memoryOnly: true, errors: 1 });
      rmSync(filler);
      await s.waitFor(/--buffer-dir .*: the disk takes messages again, from #\d+/, 15_000);
      expect((await snapshotOf(s)).buffer.disk).toMatchObject({ memoryOnly: false });
      await feed(s, named("later", 10));
      await until("the later ones", () => printed(live).length === 2010);
    },
  );
});
