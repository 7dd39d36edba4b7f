// Property-based fuzzing, with fast-check, of everything that parses bytes or text from outside:
// the deframer, control messages, option parsing and distinguished names. Whatever comes in,
// the result is the right frames or one clear error: never an exception of another kind, a hang,
// or more memory than the frame limit. `bash .ci/run` runs a bounded number of cases;
// `npm run fuzz` runs many more (FUZZ_RUNS sets how many).

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import {
  Deframer, MAX_CONTROL, UsageError, encodeControl, encodeFrame, parseBytes, parseControl, parseDN, parseHostPort, parseOptions,
  parsePins, parseResumePoint, parseSeconds, resumeStart, type ControlMessage,
} from "./lib.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 1000);
// Many cases take longer than bun's 5 s default.
setDefaultTimeout(runs > 1000 ? 600_000 : 30_000);
const property = <T extends unknown[]>(...args: [...{ [K in keyof T]: fc.Arbitrary<T[K]> }, (...values: T) => void]) =>
  fc.assert(fc.property(...(args as unknown as Parameters<typeof fc.property>)), { numRuns: runs });

/** Cuts `bytes` at the given points (taken modulo its length) into chunks. */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => (bytes.length ? p % bytes.length : 0)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const end of [...at, bytes.length]) {
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  return chunks;
}

/** Feeds chunks to a deframer; checks after each that it holds no more than a frame's worth. */
function feed(chunks: Uint8Array[], max: number) {
  const deframer = new Deframer(max);
  const frames: { control: boolean; body: string }[] = [];
  for (const chunk of chunks) {
    for (const frame of deframer.push(chunk)) frames.push({ control: frame.control, body: Buffer.from(frame.body).toString("hex") });
    expect(deframer.buffered).toBeLessThanOrEqual(Math.max(max, MAX_CONTROL));
  }
  return { frames, error: deframer.error };
}

const heartbeat: ControlMessage = { type: "heartbeat" };
const frameArbitrary = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 300 }).map((body) => ({ control: false, body: Buffer.from(body) })),
  fc.record({ seq: fc.integer({ min: 1, max: 2 ** 40 }), lost: fc.option(fc.nat(), { nil: undefined }) }).map(({ seq, lost }) => ({
    control: true,
    body: Buffer.from(JSON.stringify({ type: "start", seq, ...(lost === undefined ? {} : { lost }) })),
  })),
  fc.constant({ control: true, body: Buffer.from(JSON.stringify(heartbeat)) }),
);

describe("the deframer under arbitrary input", () => {
  test("frames that were encoded come back exactly, however the stream is cut", () => {
    property(fc.array(frameArbitrary, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (sent, points) => {
      const nonEmpty = sent.filter((frame) => frame.body.length > 0);
      const stream = Buffer.concat(
        nonEmpty.map((frame) => (frame.control ? encodeControl(JSON.parse(frame.body.toString())) : encodeFrame(frame.body))),
      );
      const result = feed(cut(stream, points), 65507);
      expect(result.error).toBeUndefined();
      expect(result.frames).toEqual(nonEmpty.map((frame) => ({ control: frame.control, body: frame.body.toString("hex") })));
    });
  });

  test("arbitrary bytes end in frames or one error, the same however they are cut, within the limit", () => {
    property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 20 }), (bytes, points) => {
      const whole = feed([bytes], 100);
      const pieces = feed(cut(bytes, points), 100);
      expect(pieces).toEqual(whole);
    });
  });

  test("byte streams made of digits, spaces and bangs (the framing's own alphabet) also end well", () => {
    const alphabet = fc.constantFrom(...Buffer.from("0123456789 !x"));
    property(fc.array(alphabet, { maxLength: 500 }), fc.array(fc.nat(), { maxLength: 20 }), (bytes, points) => {
      const data = Uint8Array.from(bytes);
      expect(feed(cut(data, points), 50)).toEqual(feed([data], 50));
    });
  });
});

/** Runs `parse` and requires that it returns, or throws an error of the kinds the programs catch. */
function returnsOrRefuses(parse: () => unknown, kind: new (...args: never[]) => Error = Error) {
  try {
    parse();
  } catch (error) {
    expect((error as Error).constructor).toBe(kind);
    expect((error as Error).message.length).toBeGreaterThan(0);
  }
}

describe("parsers under arbitrary input", () => {
  test("control messages: arbitrary bytes and arbitrary JSON are a message or a clear error", () => {
    property(fc.uint8Array({ maxLength: 200 }), (bytes) => returnsOrRefuses(() => parseControl(bytes)));
    property(fc.jsonValue(), (value) => returnsOrRefuses(() => parseControl(Buffer.from(JSON.stringify(value) ?? "null"))));
    const typed = fc.record({ type: fc.constantFrom("hello", "resume", "start", "heartbeat", "error", "other"), version: fc.anything(), seq: fc.anything(), server: fc.anything(), last: fc.anything(), lost: fc.anything(), first: fc.anything(), next: fc.anything(), heartbeat: fc.anything(), message: fc.anything() }, { requiredKeys: ["type"] });
    property(typed, (value) => returnsOrRefuses(() => parseControl(Buffer.from(JSON.stringify(value) ?? "null"))));
  });

  test("a resume decision always lands inside what the server holds", () => {
    const held = fc.tuple(fc.integer({ min: 1, max: 1e9 }), fc.nat({ max: 1e6 })).map(([first, count]) => ({ id: "run", first, next: first + count }));
    const request = fc.record({ server: fc.option(fc.constantFrom("run", "old"), { nil: undefined }), last: fc.nat(), replay: fc.boolean() });
    property(held, request, (server, { server: id, last, replay }) => {
      const start = resumeStart(id === undefined ? { replay } : { server: id, last }, server);
      expect(start.seq).toBeGreaterThanOrEqual(server.first);
      expect(start.seq).toBeLessThanOrEqual(server.next);
      if (id === "run" && last + 1 >= server.first && last + 1 <= server.next) expect(start).toEqual({ type: "start", seq: last + 1 });
    });
  });

  test("options: arbitrary argv and environment give values or one UsageError", () => {
    const specs = {
      listen: { flag: "listen", env: "F_LISTEN", default: "0.0.0.0:6514", arg: "HOST:PORT", help: "", parse: (t: string) => parseHostPort(t) },
      queue: { flag: "queue", env: "F_QUEUE", default: "8MiB", arg: "BYTES", help: "", parse: parseBytes },
      wait: { flag: "wait", env: "F_WAIT", default: "1", arg: "SECONDS", help: "", parse: parseSeconds },
      pin: { flag: "pin", env: "F_PIN", default: "", arg: "SHA256", help: "", parse: parsePins, repeatable: true },
      issuer: { flag: "issuer", env: "F_ISSUER", default: "", arg: "DN", help: "", parse: (t: string) => (t ? parseDN(t) : undefined) },
    };
    const word = fc.oneof(fc.string(), fc.constantFrom("--listen", "--queue", "--wait", "--pin", "--issuer", "--help", "--x", "--queue=1k", "-h"));
    const env = fc.record({ F_LISTEN: fc.string(), F_QUEUE: fc.string(), F_PIN: fc.string(), F_ISSUER: fc.string() }, { requiredKeys: [] });
    property(fc.array(word, { maxLength: 8 }), env, (argv, environment) => returnsOrRefuses(() => parseOptions(specs, argv, environment), UsageError));
  });

  test("distinguished names, addresses, byte counts and state files: a value or a clear error", () => {
    property(fc.string({ maxLength: 200 }), (text) => {
      for (const parse of [parseDN, (t: string) => parseHostPort(t, 6514), parseBytes, parseSeconds, parsePins, parseResumePoint]) {
        returnsOrRefuses(() => parse(text));
      }
    });
  });
});
