import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property } from "../test/fuzz.ts";
import { Deframer, encodeControl, encodeFrame, MAX_CONTROL } from "./framing.ts";
import type { ControlMessage } from "./protocol.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const bytes = (text: string) => Buffer.from(text, "latin1");

/** Feeds `stream` to a fresh deframer in pieces cut at `cuts`, and collects what comes out. */
function deframe(stream: Buffer, cuts: number[], max = 65507) {
  const deframer = new Deframer(max);
  const messages: Buffer[] = [];
  const controls: string[] = [];
  let start = 0;
  for (const end of [...cuts, stream.length]) {
    for (const frame of deframer.push(stream.subarray(start, end))) {
      if (frame.control) controls.push(Buffer.from(frame.body).toString());
      else messages.push(Buffer.from(frame.body));
    }
    start = end;
  }
  return { messages, controls, error: deframer.error, midFrame: deframer.midFrame };
}

describe("encodeFrame and Deframer", () => {
  const messages = [
    bytes("<13>hello"),
    bytes("two\nlines"),
    Buffer.from([0, 255, 10, 13, 0]),
    bytes("9 x"),
    Buffer.alloc(65507, 0x41),
  ];
  const stream = Buffer.concat(messages.map(encodeFrame));

  test("a frame is the decimal length, a space and the message", () => {
    expect(encodeFrame(bytes("hi\n")).toString("latin1")).toBe("3 hi\n");
  });

  test("many frames in one chunk all come out, in order", () => {
    expect(deframe(stream, []).messages).toEqual(messages);
  });

  test("a stream cut at every byte still yields the same messages", () => {
    const small = Buffer.concat(messages.slice(0, 4).map(encodeFrame));
    const everyByte = Array.from({ length: small.length - 1 }, (_, i) => i + 1);
    expect(deframe(small, everyByte).messages).toEqual(messages.slice(0, 4));
  });

  test("cuts inside the length, after the space and inside a large message are harmless", () => {
    const bigStart = stream.length - 65507 - 6;
    for (const cuts of [[1], [2, 3], [13], [bigStart + 2, bigStart + 6, bigStart + 30000]]) {
      const result = deframe(stream, cuts);
      expect(result.messages).toEqual(messages);
      expect(result.error).toBeUndefined();
      expect(result.midFrame).toBe(false);
    }
  });

  test("a partial frame waits for the rest", () => {
    const result = deframe(bytes("5 hel"), []);
    expect(result.messages).toEqual([]);
    expect(result.midFrame).toBe(true);
  });

  test.each([
    ["x 12", "malformed frame: expected a length, got byte 0x78"],
    ["05 hello", "frame length starts with 0"],
    ["0 ", "frame length starts with 0"],
    [" 5 hello", "malformed frame: expected a length, got byte 0x20"],
    ["5\nhello", "malformed frame: expected a length, got byte 0x0a"],
    ["65508 ", "frame length 65508 over 65507 bytes"],
    ["9999999999999999999999 ", "frame length over 65507 bytes"],
  ])("malformed input %p ends in one clear error", (input, error) => {
    const result = deframe(bytes(input), []);
    expect(result.error).toBe(error);
    expect(result.messages).toEqual([]);
  });

  test("frames before a malformed one are still delivered, nothing after it", () => {
    const result = deframe(bytes("2 ok2 ok?? 2 no"), []);
    expect(result.messages.map(String)).toEqual(["ok", "ok"]);
    expect(result.error).toContain("0x3f");
  });

  test("an endless run of digits fails within the digits of the limit, without buffering", () => {
    const deframer = new Deframer(100);
    expect(deframer.push(bytes("1000"))).toEqual([]);
    expect(deframer.error).toBe("frame length over 100 bytes");
  });
});

describe("control frames", () => {
  test("a control frame is ! and an octet count, and never reads as a log message", () => {
    const hello = { type: "hello", version: 1, server: "abc", heartbeat: 15, first: 1, next: 1 } as const;
    const stream = Buffer.concat([
      encodeControl(hello),
      encodeFrame(bytes("!5 fake")),
      encodeControl({ type: "heartbeat" }),
    ]);
    expect(encodeControl({ type: "heartbeat" }).toString()).toBe('!20 {"type":"heartbeat"}');
    for (const cuts of [[], [1], [2], [3, 4, 30]]) {
      const result = deframe(stream, cuts);
      expect(result.controls.map((c) => JSON.parse(c))).toEqual([hello, { type: "heartbeat" }]);
      expect(result.messages.map(String)).toEqual(["!5 fake"]);
    }
  });

  test.each([
    ["!!5 x", "malformed frame: expected a length, got byte 0x21"],
    ["5!5 x", "malformed frame: expected a length, got byte 0x21"],
    [`!${MAX_CONTROL + 1} `, `frame length ${MAX_CONTROL + 1} over ${MAX_CONTROL} bytes`],
    ["!99999 ", `frame length over ${MAX_CONTROL} bytes`],
  ])("a malformed control frame %p ends in one clear error", (input, error) => {
    expect(deframe(bytes(input), []).error).toBe(error);
  });
});

// Fuzzing: whatever bytes come in, the result is the frames that were sent or one clear error.

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
    for (const frame of deframer.push(chunk))
      frames.push({ control: frame.control, body: Buffer.from(frame.body).toString("hex") });
    expect(deframer.buffered).toBeLessThanOrEqual(Math.max(max, MAX_CONTROL));
  }
  return { frames, error: deframer.error };
}

const heartbeat: ControlMessage = { type: "heartbeat" };
const frameArbitrary = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 300 }).map((body) => ({ control: false, body: Buffer.from(body) })),
  fc
    .record({ seq: fc.integer({ min: 1, max: 2 ** 40 }), lost: fc.option(fc.nat(), { nil: undefined }) })
    .map(({ seq, lost }) => ({
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
        nonEmpty.map((frame) =>
          frame.control ? encodeControl(JSON.parse(frame.body.toString())) : encodeFrame(frame.body),
        ),
      );
      const result = feed(cut(stream, points), 65507);
      expect(result.error).toBeUndefined();
      expect(result.frames).toEqual(
        nonEmpty.map((frame) => ({ control: frame.control, body: frame.body.toString("hex") })),
      );
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
