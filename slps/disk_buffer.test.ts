// The resume buffer on disk, on real files in a folder of each test's own: what it writes reads
// back, when a message may be sent, what a restart finds, and each bad file it may meet.

import { afterEach, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { ClientStream, Deframer, type FsyncPolicy, formatRunFile, UsageError } from "../lib.ts";
import { removeDir, tempDir } from "../test/kit.ts";
import { cannotChattr, cannotMount, immutable, readOnlyView, smallDisk } from "../test/mounts.ts";
import { openBufferDir } from "./buffer_dir.ts";
import type { DiskBuffer } from "./disk_buffer.ts";
import { MAX_SEGMENT_BYTES } from "./segment_reader.ts";

const required = process.env.SLP_REQUIRE_DAEMONS === "1";
if (cannotMount && !required) console.warn(`disk buffer tests of a full and a read-only disk skipped: ${cannotMount}`);
if (cannotChattr && !required) console.warn(`disk buffer test of a folder made read-only skipped: ${cannotChattr}`);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function folder(): string {
  const dir = tempDir("slp-disk-");
  cleanups.push(() => removeDir(dir));
  return dir;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Opened {
  buffer: DiskBuffer;
  lines: string[];
  stored: { count: number };
}

/** The buffer in `dir`, small enough that a test's messages fill several segments and overflow the tail. */
function open(
  dir: string,
  options: { limit?: number; fsync?: FsyncPolicy; tailBytes?: number; segmentBytes?: number; retryMs?: number } = {},
): Opened {
  const lines: string[] = [];
  const stored = { count: 0 };
  const sizes = {
    tailBytes: options.tailBytes ?? 16 * 1024,
    segmentBytes: options.segmentBytes ?? 64 * 1024,
    retryMs: options.retryMs ?? 50,
  };
  const buffer = openBufferDir(dir, {
    limit: options.limit ?? 64 << 20,
    queue: 64 << 20,
    fsync: options.fsync ?? "never",
    log: (line) => lines.push(line),
    onStored: () => stored.count++,
    sizes,
  });
  cleanups.push(() => buffer.close());
  return { buffer, lines, stored };
}

/** Message `i` of a test: its length varies, up to about 700 bytes. */
const message = (i: number) => Buffer.from(`<13>message ${i} ${"x".repeat((i * 37) % 700)}`);
const frameOf = (text: Uint8Array) => Buffer.concat([Buffer.from(`${text.length} `), text]);

/** Appends messages `from` to `to`, one turn's worth at a time, and waits for them to be written. */
async function fill(buffer: DiskBuffer, from: number, to: number, perTurn = 100): Promise<void> {
  for (let i = from; i <= to; i++) {
    expect(buffer.append(message(i))).toBe(i);
    buffer.trim(64 << 20);
    if (i % perTurn === 0) await tick();
  }
  await tick();
  expect(buffer.next).toBe(to + 1);
}

const segments = (dir: string) =>
  readdirSync(dir)
    .filter((name) => name.endsWith(".seg"))
    .sort();

/** Everything from `seq` on as ClientStream sends it: the messages and the control frames. */
function replay(buffer: DiskBuffer, seq: number) {
  const stream = new ClientStream(buffer, 1 << 30, 0);
  stream.start({ type: "start", seq });
  const written: Buffer[] = [];
  for (let i = 0; i < 10_000 && !stream.idle; i++) {
    stream.flush((data) => {
      written.push(Buffer.from(data));
      return data.length;
    }, 0);
  }
  const messages: string[] = [];
  const controls: Record<string, unknown>[] = [];
  for (const frame of new Deframer(65507).push(Buffer.concat(written))) {
    if (frame.control) controls.push(JSON.parse(Buffer.from(frame.body).toString()));
    else messages.push(Buffer.from(frame.body).toString());
  }
  return { messages, controls };
}

const texts = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(message(from + i)));

describe("DiskBuffer", () => {
  test("frames read back as appended, from memory and disk; behind and catchUpPoint count their bytes", async () => {
    const { buffer } = open(folder());
    await fill(buffer, 1, 3000);
    expect(segments(buffer.numbers().dir).length).toBeGreaterThan(10);
    for (let seq = 1; seq <= 3000; seq++) expect(Buffer.from(buffer.frame(seq))).toEqual(frameOf(message(seq)));
    for (const seq of [1, 2, 1500, 2999]) expect(Buffer.from(buffer.message(seq))).toEqual(message(seq));
    // behind: the frames' bytes from a number to the end; catchUpPoint: the oldest that fit.
    const after = new Array<number>(3002).fill(0);
    for (let seq = 3000; seq >= 1; seq--) after[seq] = after[seq + 1]! + frameOf(message(seq)).length;
    for (const seq of [1, 7, 100, 1234, 2000, 2990, 3000, 3001]) expect(buffer.behind(seq)).toBe(after[seq]!);
    for (const bytes of [0, 10, 5000, 100_000, 600_000, after[1]!, after[1]! + 1]) {
      const oldest = after.findIndex((behind, seq) => seq >= 1 && behind <= bytes);
      expect(buffer.catchUpPoint(bytes)).toBe(oldest);
    }
    expect(replay(buffer, 1).messages).toEqual(texts(1, 3000));
  });

  test("a message may be sent once the turn's records are written; whenStored calls back then", async () => {
    const { buffer, stored } = open(folder());
    const called: number[] = [];
    for (let i = 1; i <= 5; i++) buffer.append(message(i));
    buffer.whenStored(3, () => called.push(3));
    buffer.whenStored(5, () => called.push(5));
    expect([buffer.next, called, stored.count]).toEqual([1, [], 0]);
    await tick();
    expect([buffer.next, called, stored.count]).toEqual([6, [3, 5], 1]);
    buffer.whenStored(2, () => called.push(2));
    expect(called).toEqual([3, 5, 2]);
  });

  test("--fsync always syncs each turn's write once; never syncs nothing; SECONDS at most that often", async () => {
    const always = open(folder(), { fsync: "always" }).buffer;
    const atStart = always.numbers().fsyncs;
    for (let turn = 0; turn < 3; turn++) {
      for (let i = 0; i < 20; i++) always.append(message(i));
      await tick();
    }
    expect(always.numbers().fsyncs - atStart).toBe(3);
    const never = open(folder(), { fsync: "never" }).buffer;
    await fill(never, 1, 500);
    expect(never.numbers().fsyncs).toBe(0);
    const seconds = open(folder(), { fsync: 0.2, segmentBytes: 1 << 20 }).buffer;
    const before = seconds.numbers().fsyncs;
    await fill(seconds, 1, 200, 10); // twenty turns
    expect(seconds.numbers().fsyncs).toBe(before);
    await sleep(400);
    expect(seconds.numbers().fsyncs).toBe(before + 1);
  });

  test("trim removes the oldest segments past the limit, but not one a client still needs", async () => {
    const { buffer } = open(folder());
    const dir = buffer.numbers().dir;
    await fill(buffer, 1, 3000);
    buffer.trim(300_000, 100);
    expect(buffer.first).toBe(1);
    buffer.trim(300_000);
    const bytes = segments(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    expect(bytes).toBe(buffer.numbers().bytes);
    expect(bytes).toBeLessThanOrEqual(300_000);
    expect(bytes).toBeGreaterThan(300_000 - 64 * 1024);
    expect(buffer.first).toBeGreaterThan(1);
    expect(segments(dir)[0]).toBe(`slps-${String(buffer.first).padStart(16, "0")}.seg`);
    expect(replay(buffer, buffer.first).messages).toEqual(texts(buffer.first, 3000));
  });

  test("after a clean stop the run goes on: the same id, the numbers on from there, every frame there", async () => {
    const dir = folder();
    const first = open(dir);
    await fill(first.buffer, 1, 1000);
    const id = first.buffer.serverId;
    first.buffer.close();
    expect(JSON.parse(readFileSync(join(dir, "run"), "utf8"))).toMatchObject({ server: id, clean: true });
    const second = open(dir);
    expect(second.buffer.serverId).toBe(id);
    expect([second.buffer.first, second.buffer.next]).toEqual([1, 1001]);
    const count = segments(dir).length;
    expect(count).toBeGreaterThan(3);
    expect(second.lines).toEqual([
      `--buffer-dir ${dir}: run ${id} goes on from #1001: 1000 messages in ${count} segments`,
    ]);
    await fill(second.buffer, 1001, 1200);
    expect(replay(second.buffer, 1).messages).toEqual(texts(1, 1200));
  });

  test("a tail cut mid-record is cut off with one line, and the run goes on from the last whole record", async () => {
    const dir = folder();
    const first = open(dir);
    await fill(first.buffer, 1, 1000);
    first.buffer.close();
    const newest = join(dir, segments(dir).at(-1)!);
    truncateSync(newest, statSync(newest).size - 5);
    const second = open(dir);
    expect(second.lines[0]).toMatch(
      new RegExp(
        `segment ${segments(dir).at(-1)} cut off from byte \\d+ \\(a write cut short \\(\\d+ bytes of a frame`,
      ),
    );
    expect(second.lines).toHaveLength(2);
    expect(second.buffer.next).toBe(1000);
    await fill(second.buffer, 1000, 1100);
    expect(replay(second.buffer, 1).messages).toEqual(texts(1, 1100));
  });

  test("a newest segment begun, not written, is removed; one begun past the last record means a new run", async () => {
    for (const [begun, goesOn] of [
      [101, true],
      [150, false],
    ] as const) {
      const dir = folder();
      const first = open(dir);
      await fill(first.buffer, 1, 100);
      const id = first.buffer.serverId;
      first.buffer.close();
      // Numbers up to 149 may have been given out in memory alone: going on from #101 would give them away again.
      writeFileSync(join(dir, `slps-${String(begun).padStart(16, "0")}.seg`), "");
      const second = open(dir);
      expect([second.buffer.serverId === id, second.buffer.next]).toEqual(goesOn ? [true, 101] : [false, 1]);
      expect(segments(dir)).toEqual(["slps-0000000000000001.seg"]); // the old run's, or the new one's
      second.buffer.close();
    }
  });

  test("garbage in a segment in the middle costs the rest of it: one line, and a gap that names it", async () => {
    const dir = folder();
    const first = open(dir);
    await fill(first.buffer, 1, 3000);
    first.buffer.close();
    const middle = segments(dir)[5]!;
    const fd = openSync(join(dir, middle), "r+");
    writeSync(fd, Buffer.alloc(100, 0x7a), 0, 100, 2000);
    closeSync(fd);
    const second = open(dir);
    expect(second.lines).toHaveLength(1); // the run goes on; the segment is read when a client needs it
    const { messages, controls } = replay(second.buffer, 1);
    const gap = controls[1] as { seq: number; lost: number; reason: string };
    expect(gap.reason).toMatch(new RegExp(`^segment ${middle}: its records stop: a record .*, at byte \\d+$`));
    expect(messages).toEqual([...texts(1, gap.seq - gap.lost - 1), ...texts(gap.seq, 3000)]);
    expect(gap.lost).toBeGreaterThan(0);
    expect(second.lines).toHaveLength(2);
    expect(second.lines[1]).toBe(
      `--buffer-dir ${dir}: ${gap.reason}; messages #${gap.seq - gap.lost} to #${gap.seq - 1} are lost`,
    );
    // Once said, the gap stays what it is: another client is told the same, and no further line.
    expect(replay(second.buffer, 1).controls[1]).toEqual(gap);
    expect(second.lines).toHaveLength(2);
  });

  test("a segment deleted in the middle: one line at start, and a gap that names it", async () => {
    const dir = folder();
    const first = open(dir);
    await fill(first.buffer, 1, 1000);
    first.buffer.close();
    const names = segments(dir);
    unlinkSync(join(dir, names[3]!));
    const from = Number(names[3]!.slice(5, 21));
    const to = Number(names[4]!.slice(5, 21));
    const second = open(dir);
    const why = `segment ${names[3]} is missing`;
    expect(second.lines[0]).toBe(`--buffer-dir ${dir}: ${why}; messages #${from} to #${to - 1} are lost`);
    const { messages, controls } = replay(second.buffer, 1);
    expect(controls[1]).toEqual({ type: "start", seq: to, lost: to - from, reason: why });
    expect(messages).toEqual([...texts(1, from - 1), ...texts(to, 1000)]);
  });

  test("a segment deleted while slps runs costs nothing until slps lets go of it", async () => {
    const { buffer } = open(folder());
    const dir = buffer.numbers().dir;
    await fill(buffer, 1, 1000);
    buffer.heldUntil(1); // read once: slps holds it open from then on
    unlinkSync(join(dir, segments(dir)[0]!));
    expect(replay(buffer, 1).messages).toEqual(texts(1, 1000));
  });

  test("after the machine restarted under --fsync never, a new run begins, the old segments removed", async () => {
    for (const [fsync, goesOn] of [
      ["never", false],
      ["1", false],
      ["always", true],
    ] as const) {
      const dir = folder();
      const first = open(dir);
      await fill(first.buffer, 1, 100);
      const id = first.buffer.serverId;
      first.buffer.close();
      writeFileSync(join(dir, "run"), formatRunFile({ server: id, boot: "another boot", fsync, clean: false }));
      const second = open(dir);
      expect(second.buffer.serverId === id).toBe(goesOn);
      expect(second.buffer.next).toBe(goesOn ? 101 : 1);
      if (!goesOn) {
        const why = `the machine restarted while slps ran with --fsync ${fsync} and had not stopped`;
        expect(second.lines[0]).toStartWith(
          `--buffer-dir ${dir}: ${why}: what it had not synced may be lost; a new run`,
        );
        expect(second.lines[0]).toEndWith(", removing the old one's 1 segment");
        expect(segments(dir)).toEqual(["slps-0000000000000001.seg"]);
      }
      second.buffer.close();
    }
  });

  test("a second slps on the same folder is refused, naming the holder", () => {
    const dir = folder();
    open(dir);
    const second = () => open(dir);
    expect(second).toThrow(UsageError);
    expect(second).toThrow(
      `--buffer-dir ${dir}: in use by another slps (pid ${process.pid}), which holds ${dir}/slps.lock; ` +
        "give each slps a folder of its own",
    );
  });

  test("files that are not segments are left alone, and odd ones named as segments are not opened", async () => {
    const dir = folder();
    writeFileSync(join(dir, "notes.txt"), "mine");
    writeFileSync(join(dir, "slps-1.seg"), "not a segment name");
    mkdirSync(join(dir, "slps-0000000000000900.seg"));
    Bun.spawnSync(["mkfifo", join(dir, "slps-0000000000000901.seg")]);
    const { buffer, lines } = open(dir);
    await fill(buffer, 1, 10);
    expect(lines).toEqual([`--buffer-dir ${dir}: a new run ${buffer.serverId}`]);
    expect(readdirSync(dir).sort()).toEqual([
      "notes.txt",
      "run",
      "slps-0000000000000001.seg",
      "slps-0000000000000900.seg",
      "slps-0000000000000901.seg",
      "slps-1.seg",
      "slps.lock",
    ]);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
  });

  test("a huge newest segment costs one read of its first bytes at start, and is cut to its records", async () => {
    const dir = folder();
    const first = open(dir);
    await fill(first.buffer, 1, 10);
    first.buffer.close();
    const newest = join(dir, segments(dir).at(-1)!);
    const records = statSync(newest).size;
    appendFileSync(newest, Buffer.from("garbage"));
    truncateSync(newest, 8 * 1024 ** 3); // 8 GiB, sparse: garbage, then zeros
    const started = performance.now();
    const cpu = process.cpuUsage();
    const second = open(dir);
    const used = process.cpuUsage(cpu);
    expect(second.buffer.next).toBe(11);
    expect(second.lines[0]).toStartWith(`--buffer-dir ${dir}: segment ${segments(dir).at(-1)} cut off from byte`);
    expect(statSync(newest).size).toBe(records);
    // Generous: one read of a megabyte and a truncate, on a shared machine.
    expect(performance.now() - started).toBeLessThan(2000);
    expect((used.user + used.system) / 1000).toBeLessThan(1000);
    expect(MAX_SEGMENT_BYTES).toBeLessThan(8 * 1024 ** 3);
  });

  test.skipIf(cannotMount !== undefined && !required)(
    "a full disk: one line, messages go on in memory, and the disk is taken again once it has room",
    async () => {
      const disk = smallDisk(folder(), 1024 * 1024);
      cleanups.push(disk.unmount);
      const filler = join(disk.dir, "filler");
      writeFileSync(filler, Buffer.alloc(600 * 1024));
      const { buffer, lines } = open(disk.dir, { limit: 1024 * 1024, tailBytes: 1024 * 1024, retryMs: 100 });
      await fill(buffer, 1, 2000);
      expect(lines[1]).toStartWith(`--buffer-dir ${disk.dir}: warning: `); // the folder's free space, at start
      expect(lines.filter((line) => line.includes("cannot"))).toHaveLength(1);
      expect(lines[2]).toMatch(
        new RegExp(`^--buffer-dir ${disk.dir}: cannot (write|begin) slps-\\d+\\.seg: .*ENOSPC.*; keeping messages`),
      );
      expect(buffer.numbers()).toMatchObject({ memoryOnly: true, errors: 1 });
      expect(existsSync(join(disk.dir, "run"))).toBe(false); // a restart now would begin a new run
      const called: number[] = [];
      buffer.append(message(2001));
      buffer.whenStored(2001, () => called.push(2001));
      expect(called).toEqual([2001]);
      rmSync(filler);
      for (let i = 0; i < 50 && buffer.numbers().memoryOnly; i++) await sleep(20);
      expect(buffer.numbers().memoryOnly).toBe(false);
      expect(lines.at(-1)).toMatch(new RegExp(`^--buffer-dir ${disk.dir}: the disk takes messages again, from #\\d+$`));
      expect(existsSync(join(disk.dir, "run"))).toBe(true);
      expect(replay(buffer, 1).messages).toEqual(texts(1, 2001));
    },
  );

  test.skipIf(cannotMount !== undefined && !required)(
    "while the disk is taken again, the run file comes back only once what memory held is on disk",
    async () => {
      const disk = smallDisk(folder(), 4 * 1024 * 1024);
      cleanups.push(disk.unmount);
      const filler = join(disk.dir, "filler");
      writeFileSync(filler, Buffer.alloc(3584 * 1024));
      const run = join(disk.dir, "run");
      // Each time messages become sendable: the most ever given out, and whether a SIGKILL now would give any
      // of them a second time (the run file says go on, from fewer than were given out).
      let givenOut = 0;
      const again: string[] = [];
      const sizes = { tailBytes: 4 << 20, segmentBytes: 256 * 1024, retryMs: 100 };
      const onStored = () => {
        givenOut = Math.max(givenOut, buffer.next);
        if (buffer.next < givenOut && existsSync(run)) again.push(`#${buffer.next} to #${givenOut - 1}`);
      };
      const options = { limit: 4 << 20, queue: 4 << 20, fsync: "never" as const, log: () => {}, onStored, sizes };
      const buffer: DiskBuffer = openBufferDir(disk.dir, options);
      cleanups.push(() => buffer.close());
      await fill(buffer, 1, 6000);
      expect(buffer.numbers().memoryOnly).toBe(true);
      rmSync(filler);
      for (let i = 0; i < 50 && buffer.numbers().memoryOnly; i++) await sleep(20);
      expect(buffer.numbers().memoryOnly).toBe(false);
      expect(again).toEqual([]);
      expect(existsSync(run)).toBe(true);
      expect(replay(buffer, 1).messages).toEqual(texts(1, 6000));
    },
  );

  test.skipIf(cannotMount !== undefined && !required)(
    "memory holds only its tail while the disk is full: what it had to forget is a gap that says so",
    async () => {
      const disk = smallDisk(folder(), 1024 * 1024);
      cleanups.push(disk.unmount);
      const filler = join(disk.dir, "filler");
      writeFileSync(filler, Buffer.alloc(700 * 1024));
      const { buffer, lines } = open(disk.dir, { limit: 1024 * 1024, retryMs: 100 });
      await fill(buffer, 1, 2000);
      rmSync(filler);
      for (let i = 0; i < 50 && buffer.numbers().memoryOnly; i++) await sleep(20);
      const back =
        /the disk takes messages again, from #(\d+); #(\d+) to #(\d+), held in memory only, were overwritten$/;
      const [, from, lostFrom, lostTo] = back.exec(lines.at(-1)!)!.map(Number);
      expect(lostTo).toBe(from! - 1);
      const { messages, controls } = replay(buffer, 1);
      expect(controls[1]).toMatchObject({ type: "start", seq: from, lost: from! - lostFrom! });
      expect(controls[1]!.reason).toMatch(
        /^held in memory only while --buffer-dir failed \(.*ENOSPC.*\), and overwritten$/,
      );
      expect(messages).toEqual([...texts(1, lostFrom! - 1), ...texts(from!, 2000)]);
    },
  );

  test.skipIf(cannotChattr !== undefined && !required)(
    "a folder that turns read-only: one line when a segment cannot be begun, memory meanwhile, the disk again after",
    async () => {
      const dir = folder();
      const { buffer, lines } = open(dir, { tailBytes: 1 << 20, retryMs: 50 });
      await fill(buffer, 1, 100);
      immutable(dir, true);
      cleanups.push(() => immutable(dir, false));
      await fill(buffer, 101, 1000);
      const failed = lines.filter((line) => line.includes("cannot"));
      expect(failed).toEqual([
        expect.stringMatching(
          new RegExp(`^--buffer-dir ${dir}: cannot begin slps-\\d+\\.seg: .*EPERM.*; keeping messages`),
        ),
      ]);
      expect(buffer.numbers().memoryOnly).toBe(true);
      await sleep(200);
      expect(lines.filter((line) => line.includes("cannot"))).toHaveLength(1); // tried again, and not said again
      immutable(dir, false);
      for (let i = 0; i < 50 && buffer.numbers().memoryOnly; i++) await sleep(20);
      expect(lines.at(-1)).toMatch(/the disk takes messages again, from #\d+$/);
      await fill(buffer, 1001, 1100);
      expect(replay(buffer, 1).messages).toEqual(texts(1, 1100));
    },
  );

  test.skipIf(cannotMount !== undefined && !required)(
    "a read-only folder at start: one line, and a new run in memory",
    async () => {
      const dir = folder();
      const first = open(dir);
      await fill(first.buffer, 1, 100);
      first.buffer.close();
      const view = readOnlyView(folder(), dir);
      cleanups.push(view.unmount);
      const { buffer, lines } = open(view.dir);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^--buffer-dir ${view.dir}: cannot be written \\(.*EROFS.*\\); a new run [0-9a-f]{16} in memory only$`,
        ),
      );
      expect(buffer.numbers().memoryOnly).toBe(true);
      await fill(buffer, 1, 50);
      expect(buffer.first).toBeGreaterThan(1); // memory keeps what --buffer-dir's tail holds: 16 KiB here
      expect(replay(buffer, buffer.first).messages).toEqual(texts(buffer.first, 50));
    },
  );
});
