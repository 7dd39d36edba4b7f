import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../test/fuzz.ts";
import {
  answerResume,
  gapNotice,
  gapsSummary,
  MAX_SEQ,
  parseControl,
  parseResumePoint,
  resumeStart,
  serverHello,
} from "./protocol.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const bytes = (text: string) => Buffer.from(text, "latin1");

describe("parseControl", () => {
  test("each control message type is checked field by field", () => {
    const parse = (value: unknown) => parseControl(Buffer.from(JSON.stringify(value)));
    expect(parse({ type: "resume", version: 1, server: "abc", last: 7 })).toEqual({
      type: "resume",
      version: 1,
      server: "abc",
      last: 7,
    });
    expect(parse({ type: "start", seq: 3, lost: null, reason: "x" })).toMatchObject({ seq: 3, lost: null });
    // Another version's hello passes unchecked: the caller names the mismatch.
    expect(parse({ type: "hello", version: 3 })).toEqual({ type: "hello", version: 3 } as never);
    // Filters: offered in a version 1 hello, sent only in a version 2 resume.
    const hello = { type: "hello", version: 1, server: "a", heartbeat: 1, first: 1, next: 1 };
    expect(parse({ ...hello, filters: true })).toMatchObject({ filters: true });
    expect(() => parse({ ...hello, filters: "yes" })).toThrow("hello message has a bad 'filters'");
    const filter = { severity: 4 };
    expect(parse({ type: "resume", version: 2, filter })).toMatchObject({ version: 2, filter });
    expect(() => parse({ type: "resume", version: 1, filter })).toThrow("resume message has a bad 'filter'");
    expect(() => parse({ type: "resume", version: 1, server: "abc" })).toThrow("resume message has a bad 'last'");
    expect(() => parse({ type: "resume", version: 1, last: -1, server: "a" })).toThrow("bad 'last'");
    expect(() => parse({ type: "start", seq: 0 })).toThrow("start message has a bad 'seq'");
    expect(() => parse({ type: "hello", version: 1, server: "a", heartbeat: 0, first: 1, next: 1 })).toThrow(
      "bad 'heartbeat'",
    );
    expect(() => parse({ type: "hello", version: 1, server: "a", heartbeat: 1, first: 5, next: 4 })).toThrow(
      "bad 'next'",
    );
    expect(() => parse({ type: "shout" })).toThrow('unknown control message type "shout"');
    expect(() => parse([1])).toThrow("not an object");
    expect(() => parseControl(bytes("{nope"))).toThrow("not JSON");
  });
});

describe("resumeStart", () => {
  const server = { id: "run2", first: 101, next: 201 };

  test("a new client starts live, or with everything held when it asks for a replay", () => {
    expect(resumeStart({}, server)).toEqual({ type: "start", seq: 201 });
    expect(resumeStart({ replay: true }, server)).toEqual({ type: "start", seq: 101 });
  });

  test("a returning client continues right after its last message", () => {
    expect(resumeStart({ server: "run2", last: 150 }, server)).toEqual({ type: "start", seq: 151 });
    expect(resumeStart({ server: "run2", last: 100 }, server)).toEqual({ type: "start", seq: 101 });
    expect(resumeStart({ server: "run2", last: 200 }, server)).toEqual({ type: "start", seq: 201 });
  });

  test("a resume point that left the buffer gets the oldest held and the exact count lost", () => {
    expect(resumeStart({ server: "run2", last: 40 }, server)).toEqual({
      type: "start",
      seq: 101,
      lost: 60,
      reason: "server buffer overflowed",
    });
  });

  test("another server id means a restart: everything held, count unknown", () => {
    const start = resumeStart({ server: "run1", last: 5000 }, server);
    expect(start).toEqual({ type: "start", seq: 101, lost: null, reason: "server restarted (was run1, now run2)" });
    expect(gapNotice(start)).toBe(
      "gap: an unknown number of messages lost, server restarted (was run1, now run2); continuing from #101",
    );
  });

  test("the gap line names the count", () => {
    expect(gapNotice({ type: "start", seq: 9, lost: 1234, reason: "server buffer overflowed" })).toBe(
      "gap: 1234 messages lost, server buffer overflowed; continuing from #9",
    );
    expect(gapNotice({ type: "start", seq: 9 })).toBeUndefined();
    expect(gapsSummary({ gaps: 3, lost: 12, unknown: 0 }, 40)).toBe(
      "gap: 12 messages lost in 3 more gaps within a second; continuing from #40",
    );
    expect(gapsSummary({ gaps: 2, lost: 5, unknown: 1 }, 7)).toBe(
      "gap: 5 messages and an unknown number lost in 2 more gaps within a second; continuing from #7",
    );
    expect(gapsSummary({ gaps: 1, lost: 0, unknown: 1 }, 7)).toBe(
      "gap: an unknown number of messages lost in 1 more gaps within a second; continuing from #7",
    );
  });

  test("the state file holds a server id and a number, nothing else", () => {
    expect(parseResumePoint('{"server":"ab","last":3}\n')).toEqual({ server: "ab", last: 3 });
    expect(() => parseResumePoint("")).toThrow("empty");
    expect(() => parseResumePoint('{"server":')).toThrow("not JSON");
    expect(() => parseResumePoint('{"server":"ab","last":-3}')).toThrow("expected");
  });
});

describe("parseResumePoint", () => {
  test("parseResumePoint reads back every resume point slpc can write, and nothing past MAX_SEQ", () => {
    for (const point of [
      { server: "a", last: 0 },
      { server: "5f2c9a7e01b4d3c8", last: MAX_SEQ },
      { server: 'odd "id"\n', last: 7 },
    ]) {
      expect(parseResumePoint(`${JSON.stringify(point)}\n`)).toEqual(point);
    }
    expect(() => parseResumePoint(`{"server":"a","last":${MAX_SEQ + 1}}`)).toThrow("not an slpc state file");
    expect(() => parseResumePoint('{"server":"a","last":1.5}')).toThrow("not an slpc state file");
    expect(() => parseResumePoint('{"server":"","last":1}')).toThrow("not an slpc state file");
    expect(() => parseResumePoint(" \n")).toThrow("empty (not an slpc state file)");
  });
});

describe("sequence numbers in control messages", () => {
  const parse = (value: unknown) => parseControl(Buffer.from(JSON.stringify(value)));

  test("are bounded by MAX_SEQ, 2^52, in every message that carries one", () => {
    expect(MAX_SEQ).toBe(2 ** 52);
    expect(parse({ type: "resume", version: 1, server: "a", last: MAX_SEQ })).toMatchObject({ last: MAX_SEQ });
    const resume = { type: "resume", version: 1, server: "a" };
    expect(() => parse({ ...resume, last: MAX_SEQ + 1 })).toThrow("resume message has a bad 'last'");
    expect(() => parse({ type: "start", seq: 2 ** 53 - 1 })).toThrow("start message has a bad 'seq'");
    expect(() => parse({ type: "start", seq: 1, lost: MAX_SEQ + 1 })).toThrow("start message has a bad 'lost'");
    const hello = { type: "hello", version: 1, server: "a", heartbeat: 15 };
    expect(() => parse({ ...hello, first: MAX_SEQ + 1, next: MAX_SEQ + 1 })).toThrow("hello message has a bad 'first'");
    expect(() => parse({ ...hello, first: 1, next: MAX_SEQ + 1 })).toThrow("hello message has a bad 'next'");
    expect(() => parse({ type: "progress", last: MAX_SEQ + 1 })).toThrow("progress message has a bad 'last'");
  });

  test("progress carries the last number delivered; hello may offer it", () => {
    expect(parse({ type: "progress", last: 0 })).toEqual({ type: "progress", last: 0 });
    expect(parse({ type: "progress", last: 41, extra: true })).toEqual({ type: "progress", last: 41 });
    expect(() => parse({ type: "progress" })).toThrow("progress message has a bad 'last'");
    expect(() => parse({ type: "progress", last: "7" })).toThrow("progress message has a bad 'last'");
    const hello = { type: "hello", version: 1, server: "a", heartbeat: 15, first: 1, next: 1 };
    expect(parse({ ...hello, progress: true })).toMatchObject({ progress: true });
    expect(() => parse({ ...hello, progress: 1 })).toThrow("hello message has a bad 'progress'");
  });
});

describe("the protocol under arbitrary input", () => {
  test("control messages: arbitrary bytes and arbitrary JSON are a message or a clear error", () => {
    property(fc.uint8Array({ maxLength: 200 }), (bytes) => returnsOrRefuses(() => parseControl(bytes)));
    property(fc.jsonValue(), (value) =>
      returnsOrRefuses(() => parseControl(Buffer.from(JSON.stringify(value) ?? "null"))),
    );
    const typed = fc.record(
      {
        type: fc.constantFrom("hello", "resume", "start", "heartbeat", "error", "other"),
        version: fc.anything(),
        seq: fc.anything(),
        server: fc.anything(),
        last: fc.anything(),
        lost: fc.anything(),
        first: fc.anything(),
        next: fc.anything(),
        heartbeat: fc.anything(),
        message: fc.anything(),
      },
      { requiredKeys: ["type"] },
    );
    property(typed, (value) => returnsOrRefuses(() => parseControl(Buffer.from(JSON.stringify(value) ?? "null"))));
  });

  test("a resume decision always lands inside what the server holds", () => {
    const held = fc
      .tuple(fc.integer({ min: 1, max: 1e9 }), fc.nat({ max: 1e6 }))
      .map(([first, count]) => ({ id: "run", first, next: first + count }));
    const request = fc.record({
      server: fc.option(fc.constantFrom("run", "old"), { nil: undefined }),
      last: fc.nat(),
      replay: fc.boolean(),
    });
    property(held, request, (server, { server: id, last, replay }) => {
      const start = resumeStart(id === undefined ? { replay } : { server: id, last }, server);
      expect(start.seq).toBeGreaterThanOrEqual(server.first);
      expect(start.seq).toBeLessThanOrEqual(server.next);
      if (id === "run" && last + 1 >= server.first && last + 1 <= server.next)
        expect(start).toEqual({ type: "start", seq: last + 1 });
    });
  });

  test("state files: arbitrary text is a resume point or a clear error", () => {
    property(fc.string({ maxLength: 200 }), (text) => returnsOrRefuses(() => parseResumePoint(text)));
  });
});

describe("the server's side", () => {
  const server = { id: "5f2c9a7e01b4d3c8", first: 1041, next: 1309 };

  test("serverHello says version 1 and offers progress and filters, and a client reads it as a hello", () => {
    const hello = serverHello(server.id, 15, server);
    expect(hello).toEqual({
      type: "hello",
      version: 1,
      server: server.id,
      heartbeat: 15,
      first: 1041,
      next: 1309,
      progress: true,
      filters: true,
    });
    expect(parseControl(Buffer.from(JSON.stringify(hello)))).toEqual(hello);
  });

  test("answerResume: the start, and the filter asked for; an empty filter is none", () => {
    expect(answerResume({ type: "resume", version: 1, server: server.id, last: 1300 }, server)).toEqual({
      filter: undefined,
      start: { type: "start", seq: 1301 },
    });
    const filtered = answerResume({ type: "resume", version: 2, filter: { programs: ["sshd"] } }, server);
    expect(filtered).toEqual({ filter: { programs: new Set(["sshd"]) }, start: { type: "start", seq: 1309 } });
    expect(answerResume({ type: "resume", version: 2, filter: {} }, server)).toMatchObject({ filter: undefined });
  });

  test("answerResume refuses another version and a bad filter, naming each", () => {
    expect(answerResume({ type: "resume", version: 3 }, server)).toEqual({
      refused: "client speaks protocol version 3, this server speaks 1 to 2",
    });
    expect(answerResume({ type: "resume", version: 2, filter: { severity: 9 } as never }, server)).toEqual({
      refused: "bad filter: filter: severity: not a whole number 0 to 7",
    });
  });
});
