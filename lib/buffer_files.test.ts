import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  formatRunFile,
  mayContinue,
  parseFsync,
  parseRunFile,
  RECORD_HEADER,
  readRecord,
  recordSize,
  SEGMENT_HEADER,
  scanSegment,
  segmentFirst,
  segmentName,
  writeRecord,
} from "./buffer_files.ts";
import { MAX_MESSAGE } from "./framing.ts";
import { MAX_SEQ } from "./protocol.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 300);

/** The records of `messages` one after the other, as a segment holds them after its header. */
function records(messages: Uint8Array[]): Buffer {
  const bytes = Buffer.alloc(messages.reduce((sum, message) => sum + recordSize(message.length), 0));
  let at = 0;
  for (const message of messages) at += writeRecord(bytes, at, message);
  expect(at).toBe(bytes.length);
  return bytes;
}

/** A reader of `bytes` as a file, that counts what it was asked for. */
function file(bytes: Uint8Array) {
  const reads: [number, number][] = [];
  return {
    reads,
    read: (position: number, length: number) => {
      reads.push([position, length]);
      return bytes.subarray(position, position + length);
    },
  };
}

const message = fc.uint8Array({ minLength: 1, maxLength: 300 });

describe("records", () => {
  test("a record is its frame behind its length and checksum, and reads back as that frame", () => {
    const bytes = records([Buffer.from("<13>hello")]);
    expect(bytes.length).toBe(RECORD_HEADER + "9 <13>hello".length);
    expect(bytes.readUInt32LE(0)).toBe(11);
    expect(bytes.subarray(8).toString()).toBe("9 <13>hello");
    const read = readRecord(bytes, 0);
    expect("frame" in read && Buffer.from(read.frame).toString()).toBe("9 <13>hello");
  });

  test("any messages read back as their frames; the last record cut anywhere reads as short, not a record", () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.nat(), (messages, cutAt) => {
        const bytes = records(messages);
        let at = 0;
        for (const sent of messages) {
          const read = readRecord(bytes, at);
          if (!("frame" in read)) throw new Error(JSON.stringify(read));
          expect(Buffer.from(read.frame)).toEqual(Buffer.concat([Buffer.from(`${sent.length} `), sent]));
          at += read.size;
        }
        const lastAt = bytes.length - recordSize(messages.at(-1)!.length);
        const cut = bytes.subarray(0, lastAt + (cutAt % recordSize(messages.at(-1)!.length)));
        expect(readRecord(cut, lastAt)).toHaveProperty("short");
      }),
      { numRuns: runs },
    );
  });

  test("a byte changed anywhere in a record makes it bad or short, never another record", () => {
    fc.assert(
      fc.property(message, fc.nat(), fc.integer({ min: 1, max: 255 }), (sent, where, flip) => {
        const bytes = records([sent]);
        const at = where % bytes.length;
        bytes[at]! ^= flip;
        const read = readRecord(bytes, 0);
        expect("frame" in read).toBe(false);
      }),
      { numRuns: runs },
    );
  });

  test("the largest message makes a record; a length over the largest frame is bad at once", () => {
    const largest = Buffer.alloc(MAX_MESSAGE, 0x61);
    expect(readRecord(records([largest]), 0)).toHaveProperty("frame");
    const huge = Buffer.alloc(RECORD_HEADER);
    huge.writeUInt32LE(0xffffffff, 0);
    expect(readRecord(huge, 0)).toEqual({ bad: `a record length of ${0xffffffff} bytes, not 3 to 65513` });
    expect(readRecord(Buffer.alloc(RECORD_HEADER), 0)).toEqual({ bad: "a record length of 0 bytes, not 3 to 65513" });
  });

  test("a record whose checksum matches but whose frame misstates its length is bad", () => {
    const bytes = records([Buffer.from("abc")]);
    bytes.write("4", RECORD_HEADER, "latin1"); // "4 abc": five bytes said, four there
    bytes.writeUInt32LE(Bun.hash.crc32(bytes.subarray(RECORD_HEADER)), 4);
    expect(readRecord(bytes, 0)).toEqual({ bad: "a record whose frame does not state its own length" });
  });
});

describe("scanSegment", () => {
  test("counts whole records and indexes one at least every step bytes, from the first", () => {
    const messages = Array.from({ length: 100 }, (_, i) => Buffer.from(`message ${i} ${"x".repeat(i)}`));
    const bytes = records(messages);
    const scan = scanSegment(file(bytes).read, { from: 0, size: bytes.length, step: 500, chunk: 1 });
    expect(scan.count).toBe(100);
    expect(scan.end).toBe(bytes.length);
    expect(scan.bad).toBeUndefined();
    expect(scan.ordinals[0]).toBe(0);
    expect(scan.positions[0]).toBe(0);
    for (let i = 1; i < scan.positions.length; i++) {
      expect(scan.positions[i]! - scan.positions[i - 1]!).toBeGreaterThanOrEqual(500);
      expect(scan.positions[i]! - scan.positions[i - 1]!).toBeLessThan(500 + recordSize(200));
      // Each entry is where the record of that ordinal starts.
      const at = scan.positions[i]!;
      const ordinal = scan.ordinals[i]!;
      expect(at).toBe(messages.slice(0, ordinal).reduce((sum, m) => sum + recordSize(m.length), 0));
    }
  });

  test("a tail cut anywhere in the last record is found: what comes before it counts, and why it stops", () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 2, maxLength: 30 }), fc.nat(), (messages, cutAt) => {
        const bytes = records(messages);
        const lastAt = bytes.length - recordSize(messages.at(-1)!.length);
        const size = lastAt + 1 + (cutAt % (recordSize(messages.at(-1)!.length) - 1));
        const scan = scanSegment(file(bytes.subarray(0, size)).read, { from: 0, size, step: 64 });
        expect(scan.count).toBe(messages.length - 1);
        expect(scan.end).toBe(lastAt);
        expect(scan.bad).toMatch(new RegExp(`^a write cut short \\(.*\\), at byte ${lastAt}$`));
      }),
      { numRuns: runs },
    );
  });

  test("garbage in the middle stops the scan there, and says where", () => {
    const messages = Array.from({ length: 10 }, (_, i) => Buffer.from(`message ${i}`));
    const bytes = records(messages);
    const fifth = messages.slice(0, 5).reduce((sum, m) => sum + recordSize(m.length), 0);
    bytes.fill(0x7a, fifth + 3, fifth + 20);
    const scan = scanSegment(file(bytes).read, { from: 0, size: bytes.length, step: 64 });
    expect(scan).toMatchObject({ count: 5, end: fifth });
    expect(scan.bad).toMatch(/^a record (length of \d+ bytes, not 3 to 65513|whose checksum does not match), at byte /);
  });

  test("reads no more than maxCount records, and nothing past `size`", () => {
    const bytes = records(Array.from({ length: 10 }, () => Buffer.from("m")));
    const scan = scanSegment(file(bytes).read, { from: 0, size: bytes.length, step: 64, maxCount: 4 });
    expect(scan).toMatchObject({ count: 4, end: 4 * recordSize(1) });
    expect(scan.bad).toBeUndefined();
    const reader = file(Buffer.concat([bytes, Buffer.alloc(1 << 20, 0x41)]));
    const within = scanSegment(reader.read, { from: 0, size: bytes.length, step: 64 });
    expect(within.count).toBe(10);
    expect(within.bad).toBeUndefined();
    expect(reader.reads.every(([position, length]) => position + length <= bytes.length)).toBe(true);
  });

  test("a file shorter than the size it was said to have ends the scan, without reading again", () => {
    const bytes = records(Array.from({ length: 3 }, () => Buffer.from("m")));
    const reader = file(bytes);
    const scan = scanSegment(reader.read, { from: 0, size: bytes.length + 100, step: 64 });
    expect(scan).toMatchObject({
      count: 3,
      bad: `the file ends at byte ${bytes.length}, short of ${bytes.length + 100}`,
    });
    expect(reader.reads).toHaveLength(2);
  });

  test("a file of garbage costs one read and no index", () => {
    const garbage = Buffer.alloc(64 << 20, 0xff);
    const reader = file(garbage);
    const scan = scanSegment(reader.read, { from: SEGMENT_HEADER, size: garbage.length, step: 64 });
    expect(scan).toMatchObject({ count: 0, end: SEGMENT_HEADER, ordinals: [] });
    expect(reader.reads).toHaveLength(1);
  });
});

describe("segment headers and names", () => {
  test("a header reads back as written, and any changed byte makes it unreadable", () => {
    const header = { run: "5f2c9a7e01b4d3c8", first: 123_456_789_012, previous: 1, flags: 1 };
    const bytes = encodeSegmentHeader(header);
    expect(bytes.length).toBe(SEGMENT_HEADER);
    expect(decodeSegmentHeader(bytes)).toEqual(header);
    fc.assert(
      fc.property(fc.nat({ max: SEGMENT_HEADER - 1 }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const changed = Buffer.from(bytes);
        changed[at]! ^= flip;
        expect(() => decodeSegmentHeader(changed)).toThrow();
      }),
      { numRuns: runs },
    );
    expect(() => decodeSegmentHeader(bytes.subarray(0, 39))).toThrow("39 bytes, shorter than a segment's header");
    expect(() => decodeSegmentHeader(Buffer.alloc(40))).toThrow("not a segment");
  });

  test("a name gives the first number, and names sort as their numbers do", () => {
    expect(segmentName(1)).toBe("slps-0000000000000001.seg");
    expect(segmentFirst(segmentName(MAX_SEQ))).toBe(MAX_SEQ);
    for (const other of ["slps-1.seg", "slps-0000000000000000.seg", "slps-0000000000000001.seg.tmp", "run", "x.seg"]) {
      expect(segmentFirst(other)).toBeUndefined();
    }
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_SEQ }), fc.integer({ min: 1, max: MAX_SEQ }), (a, b) => {
        expect(segmentFirst(segmentName(a))).toBe(a);
        expect(segmentName(a) < segmentName(b)).toBe(a < b);
      }),
      { numRuns: runs },
    );
  });
});

describe("the run file and whether a run goes on", () => {
  const run = { server: "5f2c9a7e01b4d3c8", boot: "b1", fsync: "1", clean: false };

  test("reads back as written; anything else is refused, saying so", () => {
    expect(parseRunFile(formatRunFile(run))).toEqual(run);
    expect(() => parseRunFile("")).toThrow("not JSON");
    expect(() => parseRunFile('{"server":"x"}')).toThrow("not a run file");
    expect(() => parseRunFile(formatRunFile({ ...run, server: "5F2C9A7E01B4D3C8" }))).toThrow("not a run file");
  });

  test("a run goes on after a clean stop, after slps alone was killed, or with --fsync always", () => {
    expect(mayContinue({ ...run, clean: true }, "b2")).toEqual({ yes: true });
    expect(mayContinue(run, "b1")).toEqual({ yes: true });
    expect(mayContinue({ ...run, fsync: "always" }, "b2")).toEqual({ yes: true });
  });

  test("after the machine went down under --fsync never or SECONDS, a new run starts, and the line says why", () => {
    for (const fsync of ["never", "1"]) {
      expect(mayContinue({ ...run, fsync }, "b2")).toEqual({
        yes: false,
        why:
          `the machine restarted while slps ran with --fsync ${fsync} and had not stopped: ` +
          "what it had not synced may be lost",
      });
    }
  });
});

describe("parseFsync", () => {
  test("always, never, or seconds above zero", () => {
    expect(parseFsync("always")).toBe("always");
    expect(parseFsync("never")).toBe("never");
    expect(parseFsync("0.2")).toBe(0.2);
    expect(parseFsync("86400")).toBe(86_400);
    for (const bad of ["", "0", "-1", "1e3", "sometimes", "Always"]) expect(() => parseFsync(bad)).toThrow();
    expect(() => parseFsync("86401")).toThrow("must be at most 86400 seconds");
  });
});
