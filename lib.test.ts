// Unit tests of lib.ts: plain values in, plain values out, no sockets.

import { describe, expect, test } from "bun:test";
import {
  Deframer, SendQueue, dnOfCertificate, encodeFrame, formatDN, helpText, messageAsLine, nextBackoff, parseBytes, parseCount,
  parseDN, parseHostPort, parseOptions, parseSwitch, sameDN,
} from "./lib.ts";

const bytes = (text: string) => Buffer.from(text, "latin1");

/** Feeds `stream` to a fresh deframer in pieces cut at `cuts`, and collects what comes out. */
function deframe(stream: Buffer, cuts: number[], max = 65507) {
  const deframer = new Deframer(max);
  const messages: Buffer[] = [];
  let start = 0;
  for (const end of [...cuts, stream.length]) {
    for (const message of deframer.push(stream.subarray(start, end))) messages.push(Buffer.from(message));
    start = end;
  }
  return { messages, error: deframer.error, midFrame: deframer.midFrame };
}

describe("encodeFrame and Deframer", () => {
  const messages = [bytes("<13>hello"), bytes("two\nlines"), Buffer.from([0, 255, 10, 13, 0]), bytes("9 x"), Buffer.alloc(65507, 0x41)];
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

describe("SendQueue", () => {
  /** A socket that takes at most `room` bytes per call. */
  const socket = (room: number) => {
    const written: Buffer[] = [];
    return { written, write: (data: Uint8Array) => (written.push(Buffer.from(data.subarray(0, room))), Math.min(room, data.length)) };
  };

  test("writes everything when the socket takes it, coalesced into one write", () => {
    const queue = new SendQueue(1000);
    for (const text of ["1 a", "1 b", "1 c"]) queue.push(bytes(text));
    const sink = socket(1000);
    expect(queue.flush(sink.write)).toBe(true);
    expect(sink.written.map(String)).toEqual(["1 a1 b1 c"]);
    expect(queue.bytes).toBe(0);
  });

  test("keeps what a short write did not take and continues there", () => {
    const queue = new SendQueue(1000);
    queue.push(bytes("5 hello"));
    queue.push(bytes("5 world"));
    const slow = socket(4);
    expect(queue.flush(slow.write)).toBe(false);
    expect(queue.bytes).toBe(10);
    const fast = socket(1000);
    expect(queue.flush(fast.write)).toBe(true);
    expect(Buffer.concat([...slow.written, ...fast.written]).toString()).toBe("5 hello5 world");
  });

  test("over its limit it drops the oldest whole frames and counts them", () => {
    const queue = new SendQueue(10);
    for (const text of ["3 one", "3 two", "5 three"]) queue.push(bytes(text));
    expect(queue.takeDropped()).toBe(2);
    expect(queue.takeDropped()).toBe(0);
    const sink = socket(1000);
    queue.flush(sink.write);
    expect(Buffer.concat(sink.written).toString()).toBe("5 three");
  });

  test("never drops the frame that is partly written, so the stream stays well framed", () => {
    const queue = new SendQueue(12);
    queue.push(bytes("5 hello"));
    queue.flush(socket(3).write); // "5 h" is on the wire
    queue.push(bytes("5 world"));
    queue.push(bytes("3 new"));
    expect(queue.takeDropped()).toBe(1);
    const sink = socket(1000);
    queue.flush(sink.write);
    expect(Buffer.concat(sink.written).toString()).toBe("ello3 new");
  });

  test("a closed socket (write returns -1) leaves the queue as it was", () => {
    const queue = new SendQueue(100);
    queue.push(bytes("1 a"));
    expect(queue.flush(() => -1)).toBe(false);
    expect(queue.bytes).toBe(3);
  });
});

describe("distinguished names", () => {
  const x509Issuer = "C=US\nO=Example\nCN=Example CA";

  test("OpenSSL's one-line form and RFC 2253 name the same issuer", () => {
    const oneLine = parseDN("/C=US/O=Example/CN=Example CA");
    const rfc2253 = parseDN("CN=Example CA,O=Example,C=US");
    expect(sameDN(oneLine, rfc2253)).toBe(true);
    expect(sameDN(oneLine, dnOfCertificate(x509Issuer))).toBe(true);
  });

  test("order, values and extra attributes all matter", () => {
    const issuer = dnOfCertificate(x509Issuer);
    expect(sameDN(parseDN("/O=Example/C=US/CN=Example CA"), issuer)).toBe(false);
    expect(sameDN(parseDN("/C=US/O=Example/CN=Example CA B"), issuer)).toBe(false);
    expect(sameDN(parseDN("/C=US/O=Example/OU=X/CN=Example CA"), issuer)).toBe(false);
    expect(sameDN(parseDN("/C=US/O=example/CN=Example CA"), issuer)).toBe(false);
  });

  test("attribute types compare without regard to case or alias", () => {
    expect(sameDN(parseDN("/c=US/emailAddress=ca@example.com"), parseDN("E=ca@example.com,C=US"))).toBe(true);
  });

  test("escaped separators and spaces after commas are understood", () => {
    expect(parseDN("CN=Example\\, Inc. CA, O=A\\+B, C=US")).toEqual([["C", "US"], ["O", "A+B"], ["CN", "Example, Inc. CA"]]);
    expect(parseDN("/O=a\\/b/CN=c")).toEqual([["O", "a/b"], ["CN", "c"]]);
    expect(parseDN("CN=caf\\C3\\A9")).toEqual([["CN", "café"]]);
  });

  test("text that is no DN is refused with its reason", () => {
    expect(() => parseDN("Example CA")).toThrow("lacks TYPE=");
    expect(() => parseDN("")).toThrow("empty");
  });

  test("formatDN writes the one-line form back", () => {
    expect(formatDN(parseDN("CN=Example CA,O=Example,C=US"))).toBe("/C=US/O=Example/CN=Example CA");
  });
});

describe("option parsing", () => {
  const specs = {
    listen: { flag: "listen", env: "T_LISTEN", default: "0.0.0.0:6514", arg: "HOST:PORT", help: "where", parse: (t: string) => parseHostPort(t) },
    count: { flag: "count", env: "T_COUNT", default: "64", arg: "N", help: "how many", parse: parseCount(1) },
    quiet: { flag: "quiet", env: "T_QUIET", default: "0", help: "hush", parse: parseSwitch },
  };

  test("defaults, environment and flags, in rising order of precedence", () => {
    expect(parseOptions(specs, [], {})).toEqual({ listen: { host: "0.0.0.0", port: 6514 }, count: 64, quiet: false });
    expect(parseOptions(specs, [], { T_COUNT: "3", T_QUIET: "1" })).toMatchObject({ count: 3, quiet: true });
    expect(parseOptions(specs, ["--count", "5", "--quiet"], { T_COUNT: "3" })).toMatchObject({ count: 5, quiet: true });
    expect(parseOptions(specs, ["--listen=[::]:7000"], {})).toMatchObject({ listen: { host: "::", port: 7000 } });
  });

  test("--help wins over everything else", () => {
    expect(parseOptions(specs, ["--count", "x", "--help"], {})).toBe("help");
  });

  test.each([
    [["--nope"], {}, "unknown flag --nope (see --help)"],
    [["stray"], {}, "unexpected argument 'stray' (see --help)"],
    [["--count"], {}, "--count needs a value (N)"],
    [["--count", "0"], {}, '--count "0": must be 1 to 9007199254740991'],
    [["--quiet=yes please"], {}, "--quiet takes no value"],
    [[], { T_LISTEN: "::1" }, 'T_LISTEN "::1": expected HOST:PORT'],
  ])("%p %p is refused: %s", (argv, env, message) => {
    expect(() => parseOptions(specs, argv, env)).toThrow(message);
  });

  test("help lists each flag with its variable and default", () => {
    const text = helpText("t", "A test.", specs);
    expect(text).toContain("--listen HOST:PORT   T_LISTEN  (default 0.0.0.0:6514)");
    expect(text).toContain("--quiet   T_QUIET=1  (default 0)");
  });

  test("addresses in all their forms", () => {
    expect(parseHostPort("127.0.0.1:514")).toEqual({ host: "127.0.0.1", port: 514 });
    expect(parseHostPort("[::1]:6514")).toEqual({ host: "::1", port: 6514 });
    expect(parseHostPort("logs.example.com", 6514)).toEqual({ host: "logs.example.com", port: 6514 });
    expect(parseHostPort("[::]", 6514)).toEqual({ host: "::", port: 6514 });
    expect(() => parseHostPort("::1:514")).toThrow("expected HOST:PORT");
    expect(() => parseHostPort("host:0")).toThrow("port must be 1 to 65535");
    expect(() => parseHostPort("")).toThrow("required");
  });

  test("byte counts with and without units", () => {
    expect(parseBytes("8MiB")).toBe(8 * 1024 * 1024);
    expect(parseBytes("512KiB")).toBe(512 * 1024);
    expect(parseBytes("1000")).toBe(1000);
    expect(parseBytes("2 mb")).toBe(2_000_000);
    expect(() => parseBytes("8 parsecs")).toThrow("expected a byte count");
    expect(() => parseBytes("-1")).toThrow("expected a byte count");
  });
});

describe("nextBackoff", () => {
  test("doubles from the minimum to the maximum, with jitter in the upper half", () => {
    expect(nextBackoff(0, 1, 60, 0)).toBe(1);
    expect(nextBackoff(0, 1, 60, 1)).toBe(1);
    expect(nextBackoff(3, 1, 60, 0)).toBe(4);
    expect(nextBackoff(3, 1, 60, 1)).toBe(8);
    expect(nextBackoff(10, 1, 60, 0)).toBe(30);
    expect(nextBackoff(10, 1, 60, 1)).toBe(60);
    expect(nextBackoff(5000, 1, 60, 0.5)).toBe(45);
  });
});

describe("messageAsLine", () => {
  test("a message becomes exactly one line, its control bytes escaped and the rest untouched", () => {
    const message = Buffer.concat([bytes("a\nb\rc\0d\te\x1b"), Buffer.from([0xff, 0xc3, 0xa9])]);
    expect(messageAsLine(message)).toEqual(Buffer.concat([bytes("a\\nb\\rc\\x00d\te\\x1b"), Buffer.from([0xff, 0xc3, 0xa9, 0x0a])]));
  });
});
