// Unit tests of lib.ts: plain values in, plain values out, no sockets.

import { describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { makeCert, removeDir, tempDir } from "./test/kit.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ClientStream, Deframer, MAX_CONTROL, ResumeBuffer, dnOfCertificate, encodeControl, encodeFrame, formatDN, gapNotice, helpText,
  isNetworkError, messageAsLine, messagesAsLines, nextBackoff, parseBytes, parseControl, parseCount, parseDN, parseHostPort, parseOptions, parseResumePoint,
  parseSwitch, prometheusText, RateLimit, expiryWarning, resumeStart, sameDN, bindFailure, certificateNames, fingerprintOf, parsePins,
  RateLimitByKey, casWithoutCrl, crlExpiryWarnings, isRevoked, readCrl, MAX_SEQ,
} from "./lib.ts";

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

describe("control frames", () => {
  test("a control frame is ! and an octet count, and never reads as a log message", () => {
    const hello = { type: "hello", version: 1, server: "abc", heartbeat: 15, first: 1, next: 1 } as const;
    const stream = Buffer.concat([encodeControl(hello), encodeFrame(bytes("!5 fake")), encodeControl({ type: "heartbeat" })]);
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

  test("each control message type is checked field by field", () => {
    const parse = (value: unknown) => parseControl(Buffer.from(JSON.stringify(value)));
    expect(parse({ type: "resume", version: 1, server: "abc", last: 7 })).toEqual({ type: "resume", version: 1, server: "abc", last: 7 });
    expect(parse({ type: "start", seq: 3, lost: null, reason: "x" })).toMatchObject({ seq: 3, lost: null });
    expect(parse({ type: "hello", version: 2 })).toEqual({ type: "hello", version: 2 } as never); // the caller names the mismatch
    expect(() => parse({ type: "resume", version: 1, server: "abc" })).toThrow("resume message has a bad 'last'");
    expect(() => parse({ type: "resume", version: 1, last: -1, server: "a" })).toThrow("bad 'last'");
    expect(() => parse({ type: "start", seq: 0 })).toThrow("start message has a bad 'seq'");
    expect(() => parse({ type: "hello", version: 1, server: "a", heartbeat: 0, first: 1, next: 1 })).toThrow("bad 'heartbeat'");
    expect(() => parse({ type: "hello", version: 1, server: "a", heartbeat: 1, first: 5, next: 4 })).toThrow("bad 'next'");
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
    expect(resumeStart({ server: "run2", last: 40 }, server)).toEqual({ type: "start", seq: 101, lost: 60, reason: "server buffer overflowed" });
  });

  test("another server id means a restart: everything held, count unknown", () => {
    const start = resumeStart({ server: "run1", last: 5000 }, server);
    expect(start).toEqual({ type: "start", seq: 101, lost: null, reason: "server restarted (was run1, now run2)" });
    expect(gapNotice(start)).toBe("gap: an unknown number of messages lost, server restarted (was run1, now run2); continuing from #101");
  });

  test("the gap line names the count", () => {
    expect(gapNotice({ type: "start", seq: 9, lost: 1234, reason: "server buffer overflowed" })).toBe(
      "gap: 1234 messages lost, server buffer overflowed; continuing from #9",
    );
    expect(gapNotice({ type: "start", seq: 9 })).toBeUndefined();
  });

  test("the state file holds a server id and a number, nothing else", () => {
    expect(parseResumePoint('{"server":"ab","last":3}\n')).toEqual({ server: "ab", last: 3 });
    expect(() => parseResumePoint("")).toThrow("empty");
    expect(() => parseResumePoint("{\"server\":")).toThrow("not JSON");
    expect(() => parseResumePoint('{"server":"ab","last":-3}')).toThrow("expected");
  });
});

describe("ResumeBuffer", () => {
  const message = (n: number) => bytes("x".repeat(n));

  test("numbers frames from 1 and forgets the oldest past its limit", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 5; i++) expect(buffer.append(message(8))).toBe(i + 1); // 10 bytes each
    buffer.trim(30);
    expect([buffer.first, buffer.next, buffer.bytes]).toEqual([3, 6, 30]);
    expect(buffer.frame(3).toString()).toBe("8 xxxxxxxx");
  });

  test("keeps what a connected client still needs, over the limit", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 5; i++) buffer.append(message(8));
    buffer.trim(0, 2);
    expect(buffer.first).toBe(2);
    buffer.trim(0);
    expect([buffer.first, buffer.bytes]).toEqual([6, 0]);
  });

  test("tells how far behind a position is and where to catch up to", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 5; i++) buffer.append(message(8));
    expect(buffer.behind(1)).toBe(50);
    expect(buffer.behind(5)).toBe(10);
    expect(buffer.behind(6)).toBe(0);
    expect(buffer.catchUpPoint(25)).toBe(4);
    expect(buffer.catchUpPoint(0)).toBe(6);
  });

  test("a frame that does not fit before the ring's end goes to its start, and what it overwrites is forgotten", () => {
    const buffer = new ResumeBuffer(0); // the smallest ring: room for two of the largest frames
    const big = (fill: number) => Buffer.alloc(60_000, fill);
    for (const fill of [0x61, 0x62, 0x63]) buffer.append(big(fill));
    expect([buffer.first, buffer.next]).toEqual([2, 4]);
    expect(buffer.frame(2).subarray(6)).toEqual(big(0x62));
    expect(buffer.frame(3).subarray(6)).toEqual(big(0x63));
    // Frames on both sides of the wrap are never one view.
    expect(buffer.run(2, 1 << 20)).toMatchObject({ next: 3 });
    expect(buffer.bytes).toBe(2 * 60_006);
  });

  test("run gives neighbouring frames as one view, up to a size", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (const text of ["a", "bb", "ccc"]) buffer.append(bytes(text));
    expect(Buffer.from(buffer.run(1, 100).data).toString()).toBe("1 a2 bb3 ccc");
    expect(buffer.run(1, 100).next).toBe(4);
    expect(Buffer.from(buffer.run(1, 7).data).toString()).toBe("1 a2 bb");
    expect(Buffer.from(buffer.run(3, 1).data).toString()).toBe("3 ccc"); // at least one frame
  });

  test("stays correct across many appends and trims", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 1; i <= 5000; i++) {
      buffer.append(bytes(String(i)));
      buffer.trim(100);
    }
    expect(buffer.next).toBe(5001);
    expect(buffer.frame(5000).toString()).toBe("4 5000");
    expect(buffer.frame(buffer.first).toString()).toBe(`4 ${buffer.first}`);
  });
});

describe("ClientStream", () => {
  /** A socket that takes at most `room` bytes per call. */
  const socket = (room: number) => {
    const written: Buffer[] = [];
    return { written, write: (data: Uint8Array) => (written.push(Buffer.from(data.subarray(0, room))), Math.min(room, data.length)) };
  };
  const filled = (...messages: string[]) => {
    const buffer = new ResumeBuffer(1 << 20);
    for (const message of messages) buffer.append(bytes(message));
    return buffer;
  };

  test("writes control frames, then data from its start, coalesced into one write", () => {
    const buffer = filled("a", "b", "c");
    const stream = new ClientStream(buffer, 1000, 0);
    stream.start({ type: "start", seq: 2 });
    const sink = socket(1000);
    stream.flush(sink.write, 1);
    expect(sink.written.map(String)).toEqual(['!24 {"type":"start","seq":2}1 b1 c']);
    expect(stream.idle).toBe(true);
    expect(stream.lastWrite).toBe(1);
  });

  test("sends nothing but control frames before it has started", () => {
    const stream = new ClientStream(filled("a"), 1000, 0);
    stream.control({ type: "heartbeat" });
    const sink = socket(1000);
    stream.flush(sink.write, 0);
    expect(Buffer.concat(sink.written).toString()).toBe('!20 {"type":"heartbeat"}');
  });

  test("keeps what a short write did not take, continues there, and knows since when it is blocked", () => {
    const buffer = filled("hello", "world");
    const stream = new ClientStream(buffer, 1000, 0);
    stream.cursor = 1;
    const slow = socket(4);
    stream.flush(slow.write, 5);
    expect(stream.blockedSince).toBe(5);
    expect(stream.midWrite).toBe(true);
    const fast = socket(1000);
    stream.flush(fast.write, 9);
    expect(Buffer.concat([...slow.written, ...fast.written]).toString()).toBe("5 hello5 world");
    expect(stream.blockedSince).toBeUndefined();
  });

  test("a client too far behind skips its oldest messages, counts them, and is told where it resumes", () => {
    const buffer = filled("one", "two", "three");
    const stream = new ClientStream(buffer, 10, 0);
    stream.cursor = 1;
    buffer.append(bytes("four"));
    stream.keepWithinLimit();
    expect(stream.cursor).toBe(4);
    expect(stream.takeDropped()).toBe(3);
    expect(stream.takeDropped()).toBe(0);
    const sink = socket(1000);
    stream.flush(sink.write, 0);
    const text = Buffer.concat(sink.written).toString();
    const deframed = deframe(Buffer.from(text), []);
    expect(JSON.parse(deframed.controls[0]!)).toEqual({ type: "start", seq: 4, lost: 3, reason: "client too slow: more than 10 bytes waiting" });
    expect(deframed.messages.map(String)).toEqual(["four"]);
  });

  test("what a short write left waits intact while the ring is overwritten under it", () => {
    const buffer = new ResumeBuffer(0);
    const big = (fill: number) => Buffer.alloc(60_000, fill);
    buffer.append(big(0x61));
    const stream = new ClientStream(buffer, 1 << 20, 0);
    stream.cursor = 1;
    const slow = socket(10);
    stream.flush(slow.write, 0);
    buffer.append(big(0x62));
    buffer.append(big(0x63)); // wraps to the ring's start, over frame 1
    stream.keepWithinLimit();
    const fast = socket(1 << 20);
    stream.flush(fast.write, 0);
    const frames = deframe(Buffer.concat([...slow.written, ...fast.written]), []);
    expect(frames.messages).toEqual([big(0x61), big(0x62), big(0x63)]);
    expect(frames.controls).toEqual([]);
  });

  test("a client whose next frames the ring has forgotten skips to what it holds, and is told", () => {
    const buffer = new ResumeBuffer(0);
    const stream = new ClientStream(buffer, 1 << 30, 0);
    stream.cursor = 1;
    for (let i = 0; i < 3; i++) buffer.append(Buffer.alloc(60_000, 0x61 + i));
    stream.keepWithinLimit();
    expect(stream.cursor).toBe(2);
    expect(stream.takeDropped()).toBe(1);
  });

  test("a closed socket (write returns -1) loses nothing from the stream's view", () => {
    const stream = new ClientStream(filled("a"), 100, 0);
    stream.cursor = 1;
    stream.flush(() => -1, 0);
    expect(stream.midWrite).toBe(true);
    expect(stream.blockedSince).toBe(0);
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

describe("bindFailure", () => {
  const failure = (code: string) => Object.assign(new Error("Failed to listen"), { code });

  test("names the address and the flag, and what a low port needs", () => {
    expect(bindFailure("udp", { host: "127.0.0.1", port: 514 }, failure("EACCES"))).toBe(
      "cannot listen on 127.0.0.1:514 (--udp): ports under 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024 up with --udp",
    );
    expect(bindFailure("listen", { host: "::", port: 6514 }, failure("EADDRINUSE"))).toBe(
      "cannot listen on [::]:6514 (--listen): the address is already in use; pick another with --listen",
    );
    expect(bindFailure("listen", { host: "192.0.2.1", port: 6514 }, failure("EADDRNOTAVAIL"))).toBe(
      "cannot listen on 192.0.2.1:6514 (--listen): no such address on this machine",
    );
  });
});

describe("certificateNames and fingerprints", () => {
  test("a certificate's names for --allow are its CN and its DNS and email subjectAltNames", () => {
    const dir = tempDir();
    makeCert(dir, "named", { subject: "/O=Example/CN=laptop", san: "DNS:laptop.example.com,email:ann@example.com,IP:192.0.2.1" });
    const certificate = new X509Certificate(readFileSync(join(dir, "named.pem")));
    removeDir(dir);
    expect(certificateNames(certificate)).toEqual(["laptop", "laptop.example.com", "ann@example.com"]);
    expect(fingerprintOf(certificate)).toMatch(/^[0-9A-F]{64}$/);
    expect(parsePins(certificate.fingerprint256.toLowerCase())).toEqual(new Set([fingerprintOf(certificate)]));
  });
});

describe("RateLimit", () => {
  test("allows a burst, then the rate, and says how long to wait", () => {
    const limit = new RateLimit(1000, 3, 0); // one a millisecond, three at once
    expect([limit.take(0), limit.take(0), limit.take(0), limit.take(0)]).toEqual([true, true, true, false]);
    expect(limit.wait()).toBe(1);
    expect(limit.take(0.5)).toBe(false);
    expect(limit.take(1)).toBe(true);
    expect(limit.take(100)).toBe(true); // a long pause refills no more than the burst
    expect([limit.take(100), limit.take(100), limit.take(100)]).toEqual([true, true, false]);
  });
});

describe("prometheusText", () => {
  test("writes HELP, TYPE and one line per sample, with label values escaped", () => {
    const text = prometheusText([
      { name: "x_total", help: "Things.", type: "counter", samples: [{ labels: {}, value: 3 }] },
      { name: "y_bytes", help: "Per client.", type: "gauge", samples: [{ labels: { subject: '/CN=a"b\\c', address: "1.2.3.4:5" }, value: 7 }] },
    ]);
    expect(text).toBe(
      '# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n# HELP y_bytes Per client.\n# TYPE y_bytes gauge\ny_bytes{subject="/CN=a\\"b\\\\c",address="1.2.3.4:5"} 7\n',
    );
  });
});

describe("expiryWarning", () => {
  // A real certificate, made with openssl for this run, valid for 30 days.
  const dir = tempDir();
  makeCert(dir, "expiring", { subject: "/CN=expiring", days: 30 });
  const certificate = new X509Certificate(readFileSync(join(dir, "expiring.pem")));
  removeDir(dir);
  const expires = Date.parse(certificate.validTo);
  const daysBefore = (days: number) => new Date(expires - days * 86_400_000);

  test("says nothing while more than 14 days are left", () => {
    expect(expiryWarning("cert", certificate, daysBefore(20))).toBeUndefined();
  });

  test("warns within 14 days, and after expiry", () => {
    expect(expiryWarning("cert", certificate, daysBefore(5.5))).toBe(
      `warning: --cert certificate expiring expires in 5 days (${certificate.validTo}); renew it and send SIGHUP`,
    );
    expect(expiryWarning("cert", certificate, daysBefore(-1))).toBe(`warning: --cert certificate expiring expired on ${certificate.validTo}`);
  });
});

describe("messageAsLine", () => {
  test("a message becomes exactly one line, its control bytes escaped and the rest untouched", () => {
    const message = Buffer.concat([bytes("a\nb\rc\0d\te\x1b"), Buffer.from([0xff, 0xc3, 0xa9])]);
    expect(messageAsLine(message)).toEqual(Buffer.concat([bytes("a\\nb\\rc\\x00d\te\\x1b"), Buffer.from([0xff, 0xc3, 0xa9, 0x0a])]));
  });
});

describe("slpc hardening (issue 9)", () => {
  test("messagesAsLines writes each message as the line messageAsLine makes, all in one buffer", () => {
    const messages = [bytes("a\nb\rc\0d\te\x1b\x7f"), Buffer.from([0xff, 0xc3, 0xa9]), bytes(""), bytes("\x1f\x7f\n")];
    expect(messagesAsLines(messages)).toEqual(Buffer.concat(messages.map(messageAsLine)));
    expect(messagesAsLines(messages).toString("latin1")).toBe("a\\nb\\rc\\x00d\te\\x1b\\x7f\n\xff\xc3\xa9\n\n\\x1f\\x7f\\n\n");
    expect(messagesAsLines([])).toEqual(Buffer.alloc(0));
  });

  test("parseResumePoint reads back every resume point slpc can write, and nothing past MAX_SEQ", () => {
    for (const point of [{ server: "a", last: 0 }, { server: "5f2c9a7e01b4d3c8", last: MAX_SEQ }, { server: 'odd "id"\n', last: 7 }]) {
      expect(parseResumePoint(JSON.stringify(point) + "\n")).toEqual(point);
    }
    expect(() => parseResumePoint(`{"server":"a","last":${MAX_SEQ + 1}}`)).toThrow("not an slpc state file");
    expect(() => parseResumePoint('{"server":"a","last":1.5}')).toThrow("not an slpc state file");
    expect(() => parseResumePoint('{"server":"","last":1}')).toThrow("not an slpc state file");
    expect(() => parseResumePoint(" \n")).toThrow("empty (not an slpc state file)");
  });
});

describe("isNetworkError", () => {
  test("tells a reset, a timeout or an unreachable host from a refusal by TLS", () => {
    const failure = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNREFUSED", "EHOSTUNREACH"]) expect(isNetworkError(failure(code))).toBe(true);
    expect(isNetworkError(failure("CERT_HAS_EXPIRED"))).toBe(false);
    expect(isNetworkError(new Error("no code"))).toBe(false);
    expect(isNetworkError(null)).toBe(false);
  });
});

// Issue 9, the server's side.
describe("CRLs read by slps itself", () => {
  const dir = tempDir();
  makeCert(dir, "root", { subject: "/O=Example/CN=Root", ca: true });
  makeCert(dir, "inter", { subject: "/O=Example/CN=Inter", issuer: "root", ca: true });
  makeCert(dir, "kept", { subject: "/CN=kept", issuer: "inter" });
  makeCert(dir, "lost", { subject: "/CN=lost", issuer: "inter" });
  makeCert(dir, "direct", { subject: "/CN=direct", issuer: "root" });
  /** A CRL from `ca` revoking `names`, by `openssl ca`, as an operator makes one. */
  const crl = (ca: string, names: string[]) => {
    writeFileSync(join(dir, `${ca}.index`), "");
    const config = `[ca]\ndefault_ca = t\n[t]\ndatabase = ${dir}/${ca}.index\ndefault_md = sha256\ndefault_crl_days=9`;
    writeFileSync(join(dir, `${ca}.cnf`), config);
    const run = (...args: string[]) => {
      const command = ["openssl", "ca", "-config", `${ca}.cnf`, "-keyfile", `${ca}.key`, "-cert", `${ca}.pem`, ...args];
      const result = Bun.spawnSync(command, { cwd: dir, stderr: "pipe" });
      if (result.exitCode !== 0) throw new Error(result.stderr.toString());
    };
    for (const name of names) run("-revoke", `${name}.pem`);
    run("-gencrl", "-out", `${ca}.crl`);
    return readFileSync(join(dir, `${ca}.crl`), "utf8");
  };
  const read = (name: string) => new X509Certificate(readFileSync(join(dir, `${name}.pem`)));
  const certificates = new Map(["root", "inter", "kept", "lost", "direct"].map((name) => [name, read(name)]));
  const certificate = (name: string) => certificates.get(name)!;
  const fromInter = crl("inter", ["lost"]);
  const fromRoot = crl("root", []);
  const rootPem = readFileSync(join(dir, "root.pem"), "utf8");
  removeDir(dir);

  test("readCrl reads the issuer and the revoked serial numbers", () => {
    const list = readCrl(fromInter);
    expect(list.revoked).toEqual(new Set([certificate("lost").serialNumber.replace(/^0+/, "")]));
    expect(readCrl(fromRoot).revoked.size).toBe(0);
    expect(list.issuer.equals(readCrl(fromRoot).issuer)).toBe(false);
  });

  test("readCrl reads when a CRL runs out, and crlExpiryWarnings names it, its CA and the fix", () => {
    const nextUpdate = readCrl(fromInter).nextUpdate!;
    const days = (nextUpdate.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(8); // made with default_crl_days=9
    expect(days).toBeLessThanOrEqual(9);
    const at = (offsetDays: number) => new Date(nextUpdate.getTime() + offsetDays * 86_400_000);
    expect(crlExpiryWarnings("crl", "c.pem", [fromRoot, fromInter], rootPem, at(-30))).toEqual([]);
    const soon = crlExpiryWarnings("crl", "c.pem", [fromRoot], rootPem, at(-3.5));
    expect(soon).toEqual([expect.stringMatching(/^warning: --crl c\.pem: the CRL from \/O=Example\/CN=Root expires in 3 days/)]);
    const late = crlExpiryWarnings("crl", "c.pem", [fromRoot, fromInter], rootPem, at(1));
    expect(late).toHaveLength(2);
    expect(late[0]).toContain("the CRL from /O=Example/CN=Root expired on ");
    expect(late[1]).toContain("the CRL number 2 expired on "); // its CA is not in the bundle given
    expect(late[1]).toContain("until it is renewed (bash certs/revoke.sh, then SIGHUP)");
  });

  test("isRevoked needs both the issuer and the serial to match", () => {
    expect(isRevoked(certificate("lost"), [readCrl(fromInter)])).toBe(true);
    expect(isRevoked(certificate("kept"), [readCrl(fromInter)])).toBe(false);
    expect(isRevoked(certificate("lost"), [readCrl(fromRoot)])).toBe(false);
    expect(isRevoked(certificate("lost"), [])).toBe(false);
    expect(isRevoked(certificate("direct"), [readCrl(fromRoot), readCrl(fromInter)])).toBe(false);
  });

  test("casWithoutCrl names each CA in a bundle that no CRL comes from", () => {
    const bundle = [certificate("root").toString(), certificate("inter").toString()].join("");
    expect(casWithoutCrl(bundle, [fromRoot, fromInter])).toEqual([]);
    expect(casWithoutCrl(bundle, [fromInter])).toEqual(["/O=Example/CN=Root"]);
    expect(casWithoutCrl(bundle, [])).toEqual(["/O=Example/CN=Root", "/O=Example/CN=Inter"]);
  });

  test("a CRL that is not DER, or cut short, is refused with a reason", () => {
    expect(() => readCrl("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----")).toThrow();
    const body = fromInter.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    const cut = Buffer.from(body, "base64").subarray(0, 40).toString("base64");
    expect(() => readCrl(`-----BEGIN X509 CRL-----\n${cut}\n-----END X509 CRL-----`)).toThrow("DER truncated");
  });
});

describe("RateLimitByKey", () => {
  test("says whether an event is over the key's rate or the table of keys is full", () => {
    const limit = new RateLimitByKey(2, 1000, 2);
    expect([limit.allow("a", 0), limit.allow("a", 1), limit.allow("a", 2)]).toEqual(["allowed", "allowed", "rate"]);
    expect(limit.allow("b", 3)).toBe("allowed");
    expect(limit.allow("c", 4)).toBe("full");
    expect(limit.allow("c", 1000)).toBe("allowed"); // a's window ended, so its place is free again
  });
});

describe("multi-valued RDNs", () => {
  test("an issuer with O and CN in one RDN matches --issuer in every way of writing it", () => {
    const issuer = dnOfCertificate("C=US\nO=Example + CN=Multi CA"); // as node:crypto prints it
    const forms = ["/C=US/O=Example+CN=Multi CA", "/C=US/CN=Multi CA+O=Example", "/C=US/O=Example + CN=Multi CA"];
    forms.push("CN=Multi CA+O=Example,C=US");
    for (const written of forms) expect(sameDN(parseDN(written), issuer)).toBe(true);
    expect(sameDN(parseDN("/C=US/O=Example+CN=Other CA"), issuer)).toBe(false);
  });

  test("a space escaped at the end of a value is kept", () => {
    expect(parseDN("/O=a\\ +CN=b")).toEqual([["CN", "b"], ["O", "a "]]);
    expect(dnOfCertificate("O=a\\  + CN=b")).toEqual([["CN", "b"], ["O", "a "]]);
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
