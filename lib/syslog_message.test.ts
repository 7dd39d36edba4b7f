import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { formatJson } from "./format.ts";
import {
  FACILITY_CODES,
  FACILITY_NAMES,
  isIsoTimestamp,
  parseSyslog,
  SEVERITY_CODES,
  SEVERITY_NAMES,
  type SyslogMessage,
} from "./syslog_message.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 1000);
setDefaultTimeout(runs > 1000 ? 600_000 : 30_000);

const BOM = Uint8Array.of(0xef, 0xbb, 0xbf);
/** Text as UTF-8, bytes as they are. */
const concat = (...parts: (string | Uint8Array)[]) =>
  Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part) : part)));
/** The parse of one byte a character (`\xe9` is byte E9), with the message as such text, for readable expectations. */
function parsed(input: string) {
  const result = parseSyslog(Buffer.from(input, "latin1"));
  return { ...result, message: Buffer.from(result.message).toString("latin1") };
}
/** Checks the named fields of a parse; a field expected undefined must be absent or undefined. */
function expectFields(input: string, expected: Partial<ReturnType<typeof parsed>>) {
  const result: Record<string, unknown> = parsed(input);
  expect(Object.fromEntries(Object.keys(expected).map((key) => [key, result[key]]))).toEqual(expected);
}

// Datagrams as rsyslog 8.2302 and syslog-ng 3.38 (Debian 12) sent them over UDP, fed by util-linux
// logger 2.38 through their local sockets; times and host names as they were.
describe("what real daemons send", () => {
  test("rsyslog RSYSLOG_TraditionalForwardFormat", () => {
    expect(parsed("<36>Nov 27 05:32:09 web-server sshd[8119]: Failed password for root from 192.0.2.1")).toEqual({
      facility: 4,
      severity: 4,
      timestamp: "Nov 27 05:32:09",
      hostname: "web-server",
      app: "sshd",
      procid: "8119",
      message: "Failed password for root from 192.0.2.1",
      utf8: true,
      format: "rfc3164",
    });
    expectFields("<22>Nov 27 05:32:10 web-server postfix/smtpd[8123]: connect from x", {
      app: "postfix/smtpd",
      procid: "8123",
    });
    expectFields("<11>Nov 27 05:32:10 web-server kernel: no pid here", {
      app: "kernel",
      procid: undefined,
      message: "no pid here",
    });
  });

  test("rsyslog cuts a tag at 32 characters, colon and pid included: the tag ends at the space", () => {
    expectFields("<135>Nov 27 05:32:10 web-server a-very-long-program-name-over-32 long tag", {
      facility: 16,
      severity: 7,
      hostname: "web-server",
      app: "a-very-long-program-name-over-32",
      message: "long tag",
    });
  });

  test("rsyslog RSYSLOG_ForwardFormat: an RFC 3339 timestamp in the 3164 layout", () => {
    expectFields("<13>2026-11-27T05:32:10.012423+00:00 web-server enc: caf\xe9 latin1", {
      timestamp: "2026-11-27T05:32:10.012423+00:00",
      hostname: "web-server",
      app: "enc",
      message: "caf\xe9 latin1",
      utf8: false,
      format: "rfc3164",
    });
  });

  test("rsyslog RSYSLOG_SyslogProtocol23Format: MSG keeps its leading space, loses the final LF", () => {
    expect(parsed("<36>1 2026-11-27T05:32:09.999329+00:00 web-server sshd 8119 - -  Failed password\n")).toEqual({
      facility: 4,
      severity: 4,
      timestamp: "2026-11-27T05:32:09.999329+00:00",
      hostname: "web-server",
      app: "sshd",
      procid: "8119",
      message: " Failed password",
      utf8: true,
      format: "rfc5424",
    });
    expect(parsed("<155>1 2026-11-27T05:32:25.525803+00:00 - - - - - \n")).toEqual({
      facility: 19,
      severity: 3,
      timestamp: "2026-11-27T05:32:25.525803+00:00",
      message: "",
      utf8: true,
      format: "rfc5424",
    });
  });

  test("syslog-ng network(): 3164 with a final LF, embedded LF and NUL kept", () => {
    expectFields("<155>Jan  5 10:11:12 web-server app: multi\nline\x00nul\n", {
      timestamp: "Jan  5 10:11:12",
      hostname: "web-server",
      app: "app",
      message: "multi\nline\x00nul",
      format: "rfc3164",
    });
    expectFields("<155>Nov 27 05:32:42 web-server \n", { hostname: "web-server", app: undefined, message: "" });
  });

  test("syslog-ng syslog(): 5424 with structured data, escapes, UTF-8 values and a BOM before MSG", () => {
    const datagram = concat(
      '<155>1 2024-01-05T10:11:12+00:00 web-server app 42 ID47 [ex@32473 k="v \\"q\\" \\]x \\\\ y" n="2"][b@1 z="é"]',
      '[meta sequenceId="6"] ',
      BOM,
      "hello\n",
    );
    const result = parseSyslog(datagram);
    expect({ ...result, message: Buffer.from(result.message).toString() }).toEqual({
      facility: 19,
      severity: 3,
      timestamp: "2024-01-05T10:11:12+00:00",
      hostname: "web-server",
      app: "app",
      procid: "42",
      msgid: "ID47",
      structuredData: { "ex@32473": { k: 'v "q" ]x \\ y', n: "2" }, "b@1": { z: "é" }, meta: { sequenceId: "6" } },
      message: "hello",
      utf8: true,
      format: "rfc5424",
    });
  });

  test("logger --rfc5424=notq,notime: NILVALUE timestamp", () => {
    expect(parsed("<13>1 - vm app - - - bare")).toEqual({
      facility: 1,
      severity: 5,
      hostname: "vm",
      app: "app",
      message: "bare",
      utf8: true,
      format: "rfc5424",
    });
  });
});

describe("RFC 3164 variants", () => {
  test("a single-digit day is padded with a space, or not, or written with a zero", () => {
    for (const stamp of ["Jan  5 10:11:12", "Jan 5 10:11:12", "Jan 05 10:11:12"]) {
      expectFields(`<13>${stamp} host prog: text`, {
        timestamp: stamp,
        hostname: "host",
        app: "prog",
        message: "text",
      });
    }
  });

  test("a year after the day and fractions of a second are part of the timestamp", () => {
    expectFields("<13>Jan  5 2024 10:11:12 h t: x", { timestamp: "Jan  5 2024 10:11:12", hostname: "h" });
    expectFields("<13>Jan  5 10:11:12.123 h t: x", { timestamp: "Jan  5 10:11:12.123", hostname: "h" });
  });

  test("no hostname, as local sockets and many devices send: the first word is the tag", () => {
    expectFields("<13>Jan  5 10:11:12 sshd[1]: text", {
      hostname: undefined,
      app: "sshd",
      procid: "1",
      message: "text",
    });
    expectFields("<13>Jan  5 10:11:12 kernel: text", { hostname: undefined, app: "kernel", message: "text" });
  });

  test("an IPv6 address as hostname is not taken for a tag", () => {
    expectFields("<13>Jan  5 10:11:12 2001:db8:: t: x", { hostname: "2001:db8::", app: "t", message: "x" });
  });

  test("a tag with a pid and no colon, and a tag with a colon and no space", () => {
    expectFields("<13>Jan  5 10:11:12 h prog[7] text", { app: "prog", procid: "7", message: "text" });
    expectFields("<13>Jan  5 10:11:12 h prog:text", { app: "prog", message: "text" });
  });

  test("a last word without colon is the message, not a tag", () => {
    expectFields("<13>Jan  5 10:11:12 host word", { hostname: "host", app: undefined, message: "word" });
    expectFields("<13>Jan  5 10:11:12 host prog[1]", { app: undefined, message: "prog[1]" });
    expectFields("<13>Jan  5 10:11:12 host prog:", { app: "prog", message: "" });
  });

  test("after the tag's colon exactly one space goes; the message keeps the rest", () => {
    expectFields("<13>Jan  5 10:11:12 h prog:   indented", { message: "  indented" });
  });

  test("no timestamp: a tag only in the form `tag: ` or `tag[pid]: `, else all is text", () => {
    expectFields("<13>sshd[1]: text", { app: "sshd", procid: "1", message: "text", format: "rfc3164" });
    expect(parsed("<13>http://example.com/ is down")).toEqual({
      facility: 1,
      severity: 5,
      message: "http://example.com/ is down",
      utf8: true,
      format: "rfc3164",
    });
    expectFields("<13>hello world", { app: undefined, message: "hello world" });
  });

  test("a timestamp out of range is text", () => {
    expectFields("<13>Jan 32 10:11:12 h t: x", { timestamp: undefined, message: "Jan 32 10:11:12 h t: x" });
    expectFields("<13>2024-13-01T00:00:00Z h t: x", { timestamp: undefined });
  });
});

// The header variants of issue 23, shaped as the issue gives them, with the fields that syslog-ng
// 3.38 (network()) and rsyslog 8.2302 (imudp, default parsers) read from them, tried on both as
// .ci/install-daemons unpacks them. Both read capitals, the ASA time without a year, a space
// before a timestamp and a year before the time. rsyslog alone reads an unpadded day before a
// year (`Mar 7 2008`) and keeps a 5424 header before malformed SD (syslog-ng refuses the message);
// syslog-ng alone reads a tag after the space, IOS's prefix and a year after the time (rsyslog
// needs pmciscoios and detect.YearAfterTimestamp for the last two).
describe("what devices send (issue 23)", () => {
  const malformedSd =
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 " +
    '[exampleSDID@32473 iut="3" eventSource= "Application"] text';
  test("a month's name in capitals: NOV as Nov, as both daemons read it; in lower case, text as to syslog-ng", () => {
    expectFields("<190>NOV 22 00:00:33 fw1 CMDLOGGER[165319912]: cmd_logger_text", {
      facility: 23,
      severity: 6,
      timestamp: "NOV 22 00:00:33",
      hostname: "fw1",
      app: "CMDLOGGER",
      procid: "165319912",
      message: "cmd_logger_text",
    });
    expectFields("<190>NoV 22 00:00:33 fw1 t: x", { timestamp: "NoV 22 00:00:33", hostname: "fw1" });
    expectFields("<190>nov 22 00:00:33 fw1 t: x", { timestamp: undefined, message: "nov 22 00:00:33 fw1 t: x" });
    expectFields("<190>NOVEMBER 22 00:00:33 fw1 t: x", { timestamp: undefined, hostname: undefined });
  });

  test("Cisco PIX/ASA: a year before the time, a colon after it, no host; the program is %ASA-4-106023", () => {
    expectFields("<167>Mar 7 2008 19:06:53: %ASA-4-106023: Deny udp src outside:192.0.2.1/53", {
      facility: 20,
      severity: 7,
      timestamp: "Mar 7 2008 19:06:53",
      hostname: undefined,
      app: "%ASA-4-106023",
      procid: undefined,
      message: "Deny udp src outside:192.0.2.1/53",
      format: "rfc3164",
    });
    expectFields("<167>Mar  7 19:06:53: %ASA-4-106023: Deny udp", {
      timestamp: "Mar  7 19:06:53",
      hostname: undefined,
      app: "%ASA-4-106023",
      message: "Deny udp",
    });
    // The colon goes after any timestamp, before a host too, but only as the timestamp's last character.
    expectFields("<13>2024-01-05T10:11:12Z: web t: x", { timestamp: "2024-01-05T10:11:12Z", hostname: "web" });
    expectFields("<13>Jan  5 10:11:12: web t: x", { timestamp: "Jan  5 10:11:12", hostname: "web", app: "t" });
    expectFields("<13>Jan  5 10:11:12:34 web t: x", { timestamp: undefined, message: "Jan  5 10:11:12:34 web t: x" });
    expectFields("<13>Jan  5 10:11:12:: web t: x", { timestamp: undefined });
  });

  test("a space after the PRI, before a timestamp or a tag; without either, the spaces stay in the text", () => {
    expectFields("<167> Mar  7 19:06:53 switch3 tag: text", {
      timestamp: "Mar  7 19:06:53",
      hostname: "switch3",
      app: "tag",
      message: "text",
    });
    expectFields("<15> openvpn[2499]: PTHREAD support initialized", {
      facility: 1,
      severity: 7,
      timestamp: undefined,
      hostname: undefined,
      app: "openvpn",
      procid: "2499",
      message: "PTHREAD support initialized",
      format: "rfc3164",
    });
    expectFields(`<15>${" ".repeat(16)}openvpn: sixteen`, { app: "openvpn", message: "sixteen" });
    expectFields(`<15>${" ".repeat(17)}openvpn: seventeen`, {
      app: undefined,
      message: `${" ".repeat(17)}openvpn: seventeen`,
    });
    expectFields("<13> hello world", { app: undefined, message: " hello world" });
    expectFields("<13>  http://example.com/ is down", { app: undefined, message: "  http://example.com/ is down" });
  });

  test("RFC 5424 before malformed SD: timestamp, host, app and msgid kept, the rest is the message", () => {
    expect(parsed(malformedSd)).toEqual({
      facility: 20,
      severity: 5,
      timestamp: "2003-10-11T22:14:15.003Z",
      hostname: "mymachine.example.com",
      app: "evntslog",
      msgid: "ID47",
      message: '[exampleSDID@32473 iut="3" eventSource= "Application"] text',
      utf8: true,
      format: "rfc5424",
    });
  });

  test("Cisco IOS: a sequence number and a starred time before the host; the program is %CRYPTO-4-...", () => {
    expectFields("<0>91: *Oct 07 03:10:04: mydevice.com %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet", {
      facility: 0,
      severity: 0,
      timestamp: "Oct 07 03:10:04",
      hostname: "mydevice.com",
      app: "%CRYPTO-4-RECVD_PKT_INV_SPI",
      procid: undefined,
      message: "decaps: rec'd IPSEC packet",
      format: "rfc3164",
    });
    expectFields("<189>52: *Mar  1 00:25:05.123: %SYS-5-CONFIG_I: Configured", {
      timestamp: "Mar  1 00:25:05.123",
      hostname: undefined,
      app: "%SYS-5-CONFIG_I",
      message: "Configured",
    });
    expectFields("<0>*Oct 07 03:10:04: r1 %X-1-Y: no number", { timestamp: "Oct 07 03:10:04", hostname: "r1" });
    expectFields("<0>91: .Oct 07 03:10:04: r1 %X-1-Y: once in sync", { timestamp: "Oct 07 03:10:04", app: "%X-1-Y" });
    expectFields("<0>91: Oct 07 03:10:04: r1 %X-1-Y: no mark", { timestamp: "Oct 07 03:10:04", hostname: "r1" });
    // Without a time after it, a number is a tag as before: `91: ` is the form of one.
    expectFields("<0>91: text", { timestamp: undefined, app: "91", message: "text" });
  });

  test("a year after the time (Linksys) is part of the timestamp, not the host", () => {
    expectFields("<190>Apr 15 21:28:13 2007 linksys app: msg", {
      timestamp: "Apr 15 21:28:13 2007",
      hostname: "linksys",
      app: "app",
      message: "msg",
    });
    // Four digits that end the input or run into more are a host, as to syslog-ng.
    expectFields("<190>Apr 15 21:28:13 2007", { timestamp: "Apr 15 21:28:13", hostname: "2007", message: "" });
    expectFields("<190>Apr 15 21:28:13 20071 app: x", { timestamp: "Apr 15 21:28:13", hostname: "20071" });
  });

  test("each of them gives the same fields in the filter's parse, which skips structured data", () => {
    for (const text of [
      "<190>NOV 22 00:00:33 fw1 CMDLOGGER[165319912]: cmd_logger_text",
      "<167>Mar 7 2008 19:06:53: %ASA-4-106023: Deny udp src outside:192.0.2.1/53",
      "<167> Mar  7 19:06:53 switch3 tag: text",
      "<15> openvpn[2499]: PTHREAD support initialized",
      malformedSd,
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [a b="c"][d] text',
      "<0>91: *Oct 07 03:10:04: mydevice.com %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet",
      "<190>Apr 15 21:28:13 2007 linksys app: msg",
    ]) {
      const input = Buffer.from(text);
      expect(parseSyslog(input, { structuredData: false })).toEqual({
        ...parseSyslog(input),
        structuredData: undefined,
      });
    }
  });
});

describe("RFC 5424 edge cases", () => {
  test("an empty SD element, repeated IDs and parameters: the first wins", () => {
    expect(parsed('<13>1 - - - - - [a][b x="1" x="2"][b y="3"] m').structuredData).toEqual({ a: {}, b: { x: "1" } });
  });

  test("a backslash before another character stays, as RFC 5424 says", () => {
    expect(parsed('<13>1 - - - - - [a x="c:\\dir\\n"]').structuredData).toEqual({ a: { x: "c:\\dir\\n" } });
  });

  test("SD-IDs and names from the sender cannot reach an object's prototype", () => {
    const sd = parsed('<13>1 - - - - - [__proto__ __proto__="x" constructor="y"]').structuredData!;
    expect(Object.keys(sd)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(sd)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(sd))).toEqual(JSON.parse('{"__proto__":{"__proto__":"x","constructor":"y"}}'));
  });

  test("a broken 5424 header is read as 3164: PRI kept, the rest is text", () => {
    for (const rest of ["1 yesterday h a p m -", "1 - h a", "1 - h a p m", "01 - - - - - -"]) {
      expect(parsed(`<13>${rest}`)).toEqual({ facility: 1, severity: 5, message: rest, utf8: true, format: "rfc3164" });
    }
  });

  test("a valid header before structured data that is not: the header's fields, and the rest as it came", () => {
    for (const rest of ["[unclosed", "-x", '[a b="c"]x y', "[] \xef\xbb\xbfno BOM dropped", "x"]) {
      expect(parsed(`<13>1 2024-01-05T10:11:12Z h a p m ${rest}`)).toEqual({
        facility: 1,
        severity: 5,
        timestamp: "2024-01-05T10:11:12Z",
        hostname: "h",
        app: "a",
        procid: "p",
        msgid: "m",
        message: rest,
        utf8: true,
        format: "rfc5424",
      });
    }
    expectFields("<13>1 - h a p m ", { hostname: "h", msgid: "m", message: "", format: "rfc5424" });
  });

  test("a BOM is dropped only in 5424, where it marks MSG as UTF-8", () => {
    expect(parsed("<13>1 - - - - - - \xef\xbb\xbf").message).toBe("");
    expect(parsed("<13>Jan  5 10:11:12 h t: \xef\xbb\xbfx").message).toBe("\xef\xbb\xbfx");
  });
});

describe("what is not syslog", () => {
  test("no PRI, a PRI above 191, or a malformed one: unknown, the whole input as message", () => {
    for (const input of [
      "no pri at all",
      "<192>Jan  5 10:11:12 h t: x",
      "<1000>x",
      "<>x",
      "<1a>x",
      "<13",
      "13>x",
      " <13>x",
      "",
      "\n",
    ]) {
      expect(parsed(input)).toEqual({ message: input, utf8: true, format: "unknown" });
    }
  });

  test("PRI 0 and 191 are the bounds", () => {
    expectFields("<0>x", { facility: 0, severity: 0 });
    expectFields("<191>x", { facility: 23, severity: 7 });
  });

  test("non-UTF-8 bytes are kept and flagged", () => {
    const input = concat("<13>Jan  5 10:11:12 h t: ", Uint8Array.of(0xff, 0xfe, 0x00, 0x80));
    const result = parseSyslog(input);
    expect([...result.message]).toEqual([0xff, 0xfe, 0x00, 0x80]);
    expect(result.utf8).toBe(false);
  });

  test("a non-ASCII byte where a hostname or tag would be ends the header", () => {
    expectFields("<13>Jan  5 10:11:12 h\xe9st t: x", { hostname: undefined, app: undefined, message: "h\xe9st t: x" });
  });
});

describe("name tables", () => {
  test("every code has one name, and every name and alias leads back to its code", () => {
    expect(FACILITY_NAMES).toHaveLength(24);
    expect(SEVERITY_NAMES).toHaveLength(8);
    for (const [code, name] of FACILITY_NAMES.entries()) expect(FACILITY_CODES.get(name)).toBe(code);
    for (const [code, name] of SEVERITY_NAMES.entries()) expect(SEVERITY_CODES.get(name)).toBe(code);
    expect([FACILITY_CODES.get("audit"), FACILITY_CODES.get("security"), SEVERITY_CODES.get("warn")]).toEqual([
      13, 13, 4,
    ]);
  });
});

// Fuzzing, as lib/framing.test.ts fuzzes the deframer: FUZZ_RUNS sets the cases (`npm run fuzz` runs many).
const property = <T extends unknown[]>(...args: [...{ [K in keyof T]: fc.Arbitrary<T[K]> }, (...values: T) => void]) =>
  fc.assert(fc.property(...(args as unknown as Parameters<typeof fc.property>)), { numRuns: runs });

/** What any parse must satisfy, whatever the input. */
function checkInvariants(input: Uint8Array, result: SyslogMessage) {
  const tail = Buffer.from(input.subarray(input.length - result.message.length));
  const tailBeforeLF = Buffer.from(input.subarray(input.length - result.message.length - 1, input.length - 1));
  expect(tail.equals(result.message) || (input.at(-1) === 0x0a && tailBeforeLF.equals(result.message))).toBe(true);
  const roundTrip = new TextEncoder().encode(new TextDecoder("utf-8", { ignoreBOM: true }).decode(result.message));
  expect(result.utf8).toBe(Buffer.from(roundTrip).equals(result.message));
  if (result.format === "unknown") {
    expect(Buffer.from(result.message).equals(input)).toBe(true);
    expect([result.facility, result.severity, result.hostname, result.app, result.timestamp]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  } else {
    expect(result.facility! * 8 + result.severity!).toBeLessThanOrEqual(191);
  }
  if (result.timestamp !== undefined) expect(result.timestamp).toMatch(/^[\x21-\x7e][\x20-\x7e]*$/);
  for (const field of [result.hostname, result.app, result.procid, result.msgid]) {
    if (field !== undefined) expect(field).toMatch(/^[\x21-\x7e]+$/);
  }
}

describe("the parser under arbitrary input", () => {
  test("arbitrary bytes never throw; the message is the input's tail, less at most one final LF", () => {
    property(fc.uint8Array({ maxLength: 600 }), (input) => checkInvariants(input, parseSyslog(input)));
  });

  test("bytes from syslog's own alphabet behind a valid PRI also end well", () => {
    const alphabet = fc.constantFrom(...Buffer.from('<>0123456789 -:[]"\\=T.Z+JanDec\n\xff', "latin1"));
    property(fc.integer({ min: 0, max: 191 }), fc.array(alphabet, { maxLength: 200 }), (pri, rest) => {
      const input = concat(`<${pri}>`, Uint8Array.from(rest));
      const result = parseSyslog(input);
      checkInvariants(input, result);
      expect(result.format).not.toBe("unknown");
      expect(result.facility! * 8 + result.severity!).toBe(pri);
    });
  });
});

/** What may come between a PRI and a timestamp, a timestamp of each kind or a 5424 header, and what follows. */
const BEFORE_TIME_PIECES = [" ", "  ", "91: ", "*", ".", "x"];
// biome-ignore format: a list, read across
const TIME_PIECES = [
  "", "NOV 22 00:00:33", "nov 22 00:00:33", "Mar 7 2008 19:06:53", "Apr 15 21:28:13 2007", "Oct 07 03:10:04.123",
  "2024-01-05T10:11:12Z", "Jan 32 10:11:12", "1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 ",
];
// biome-ignore format: a list, read across
const AFTER_TIME_PIECES = [
  " ", ":", ": ", "2007", " 2007 ", ".5", "fw1 ", "%ASA-4-106023: ", "openvpn[2499]: ", "tag ", "word", "- ",
  '[a b="c"]', '[a b= "c"]', "[", "]", "\n", "\xff", "\xef\xbb\xbf",
];
/** A datagram pieced together from what devices send (issue 23). */
const deviceDatagram = fc
  .tuple(
    fc.integer({ min: 0, max: 191 }),
    fc.array(fc.constantFrom(...BEFORE_TIME_PIECES), { maxLength: 3 }),
    fc.constantFrom(...TIME_PIECES),
    fc.array(fc.constantFrom(...AFTER_TIME_PIECES), { maxLength: 12 }),
  )
  .map(([pri, before, stamp, after]) => Buffer.from(`<${pri}>${before.join("")}${stamp}${after.join("")}`, "latin1"));

describe("the parser on what devices send, pieced together at random (issue 23)", () => {
  test("never throws, keeps the input's tail as message, reads the same without SD, is one JSON line", () => {
    const context = { from: "web:6514", server: "s", seq: 1, received: new Date(0) };
    property(deviceDatagram, (input) => {
      const result = parseSyslog(input);
      checkInvariants(input, result);
      expect(result.format).not.toBe("unknown");
      expect(parseSyslog(input, { structuredData: false })).toEqual({ ...result, structuredData: undefined });
      const line = formatJson(result, context);
      expect(line.indexOf("\n")).toBe(line.length - 1);
      const record = JSON.parse(line);
      expect([record.timestamp, record.hostname, record.app]).toEqual(
        [result.timestamp, result.hostname, result.app].map((field) => field ?? null),
      );
    });
  });

  // A safety test, not a benchmark: a pattern that backtracked over the body would take seconds
  // or hours on one of these; reading them once takes well under a millisecond each.
  test("64 KB of what each header rule looks for, after each variant's header, is read at once", () => {
    const heads = [
      "<13>",
      "<13> ",
      "<0>91: *",
      "<167>Mar 7 2008 19:06:53:",
      "<190>Apr 15 21:28:13",
      "<13>1 - h a - - ",
    ];
    const bodies = [" ", "9", "91: ", "*", ":", "NOV 22 ", "19:06:53 ", "2007 ", "[a b=", '"', "x"];
    const started = performance.now();
    for (const head of heads) {
      for (const body of bodies) {
        const input = Buffer.from(head + body.repeat(Math.ceil(65_000 / body.length)));
        for (const structuredData of [true, false]) checkInvariants(input, parseSyslog(input, { structuredData }));
      }
    }
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

const printable = (min: number, max: number, exclude = "") =>
  fc
    .string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
      minLength: min,
      maxLength: max,
    })
    .filter((s) => ![...exclude].some((c) => s.includes(c)));
const nil = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
const isoStamp = fc
  .date({ min: new Date("1970-01-01"), max: new Date("2999-12-31"), noInvalidDate: true })
  .map((d) => d.toISOString());
/** BSD's timestamp in the forms devices write it: capitals, a day padded with a zero, a year before or after. */
const bsdStamp = fc
  .record({
    month: fc.integer({ min: 0, max: 11 }),
    capitals: fc.boolean(),
    day: fc.integer({ min: 1, max: 31 }),
    pad: fc.constantFrom(" ", "0"),
    seconds: fc.integer({ min: 0, max: 86399 }),
    year: fc.constantFrom("", "before", "after"),
  })
  .map(({ month, capitals, day, pad, seconds, year }) => {
    const two = (n: number) => String(n).padStart(2, "0");
    const clock = `${two(Math.floor(seconds / 3600))}:${two(Math.floor(seconds / 60) % 60)}:${two(seconds % 60)}`;
    const name = "JanFebMarAprMayJunJulAugSepOctNovDec".slice(month * 3, month * 3 + 3);
    const date = `${capitals ? name.toUpperCase() : name} ${String(day).padStart(2, pad)}`;
    if (year === "before") return `${date} 2008 ${clock}`;
    return year === "after" ? `${date} ${clock} 2007` : `${date} ${clock}`;
  });
const sdName = printable(1, 32, '= ]"');
const escapeValue = (value: string) => value.replace(/[\\"\]]/g, (c) => `\\${c}`);
/** A message that does not end in LF, which the parser would drop. */
const body = fc.uint8Array({ maxLength: 200 }).filter((b) => b.at(-1) !== 0x0a);

describe("generated valid messages round-trip their fields", () => {
  test("RFC 5424", () => {
    const sd = fc.dictionary(
      sdName,
      fc.dictionary(sdName, fc.string({ unit: "grapheme", maxLength: 20 }), { maxKeys: 3 }),
      { minKeys: 1, maxKeys: 3 },
    );
    property(
      fc.integer({ min: 0, max: 191 }),
      nil(isoStamp),
      nil(printable(1, 255)),
      nil(printable(1, 48)),
      nil(printable(1, 128)),
      nil(printable(1, 32)),
      nil(sd),
      fc.boolean(),
      body,
      (pri, timestamp, hostname, app, procid, msgid, structuredData, bom, message) => {
        const field = (value: string | undefined) => (value === undefined || value === "-" ? "-" : value);
        const sdText =
          structuredData === undefined
            ? "-"
            : Object.entries(structuredData)
                .map(
                  ([id, params]) =>
                    `[${id}${Object.entries(params)
                      .map(([k, v]) => ` ${k}="${escapeValue(v)}"`)
                      .join("")}]`,
                )
                .join("");
        const header = `<${pri}>1 ${[timestamp, hostname, app, procid, msgid].map(field).join(" ")} ${sdText} `;
        const result = parseSyslog(concat(header, bom ? BOM : "", message));
        const nilled = (value: string | undefined) => (value === "-" ? undefined : value);
        expect(result).toEqual({
          facility: pri >> 3,
          severity: pri & 7,
          timestamp,
          hostname: nilled(hostname),
          app: nilled(app),
          procid: nilled(procid),
          msgid: nilled(msgid),
          structuredData,
          message: expect.anything(),
          utf8: expect.any(Boolean),
          format: "rfc5424",
        });
        const expected = bom || message.slice(0, 3).join() !== "239,187,191" ? message : message.subarray(3);
        expect(Buffer.from(result.message).equals(expected)).toBe(true);
      },
    );
  });

  test("RFC 3164, with and without hostname and pid, and what devices put around the timestamp", () => {
    const tag = printable(1, 32, ":[]");
    // Four digits alone after a BSD time are its year, as syslog-ng reads them, never a host.
    const hostname = printable(1, 64, "[:").filter((name) => !/^\d{4}$/.test(name));
    // Spaces after the PRI, Cisco IOS's sequence number and clock mark; Cisco's colon after the time.
    const before = fc.constantFrom("", " ", "   ", "91: ", "91: *", "0: .", "*");
    property(
      fc.integer({ min: 0, max: 191 }),
      before,
      fc.oneof(bsdStamp, isoStamp),
      fc.constantFrom("", ":"),
      nil(hostname),
      tag,
      nil(fc.nat().map(String)),
      body,
      (pri, prefix, timestamp, colon, hostname, app, procid, message) => {
        fc.pre(!(colon && / \d{4}$/.test(timestamp))); // `2007:` after a time is no year to either daemon
        const host = hostname === undefined ? "" : `${hostname} `;
        const pid = procid === undefined ? "" : `[${procid}]`;
        const input = concat(`<${pri}>${prefix}${timestamp}${colon} ${host}${app}${pid}: `, message);
        const result = parseSyslog(input);
        expect(result).toEqual({
          facility: pri >> 3,
          severity: pri & 7,
          timestamp,
          hostname,
          app,
          procid,
          message: expect.anything(),
          utf8: expect.any(Boolean),
          format: "rfc3164",
        });
        expect(Buffer.from(result.message).equals(message)).toBe(true);
      },
    );
  });

  test("every RFC 3339 timestamp the generator makes is accepted", () => {
    property(isoStamp, (stamp) => expect(isIsoTimestamp(stamp)).toBe(true));
  });
});

describe("a parse for filters, structured data checked and skipped (issue 17)", () => {
  const skipping = (input: Uint8Array) => parseSyslog(input, { structuredData: false });
  /** The full parse without its structured data: what the skipping parse must give. */
  const withoutSd = (input: Uint8Array) => ({ ...parseSyslog(input), structuredData: undefined });

  test("9,000 SD elements in 62 KB: header and MSG as the full parse has them, and no SD", () => {
    const elements = Array.from({ length: 9000 }, (_, n) => `[${n.toString(36)}${n % 4 ? "" : ' a="b\\"]"'}]`);
    const input = Buffer.from(`<13>1 2026-01-05T10:11:12Z web cron 42 - ${elements.join("")} job ran`);
    const result = skipping(input);
    expect(result).toEqual(withoutSd(input));
    expect(result).toMatchObject({ hostname: "web", app: "cron", format: "rfc5424" });
    expect(result.structuredData).toBeUndefined();
    expect(Buffer.from(result.message).toString()).toBe("job ran");
  });

  test("malformed SD is text after the header, exactly as in the full parse", () => {
    for (const sd of ['[a b="c"', "[a b=c]", '[a b="c"]x', "[]", '[a="b"]', '[a b="c\\"]']) {
      const input = Buffer.from(`<13>1 - web cron - - ${sd} text`);
      expect(skipping(input)).toEqual(withoutSd(input));
    }
  });

  test("any input from syslog's alphabet after a 5424 header: the same fields as the full parse, less SD", () => {
    const alphabet = fc.constantFrom(...Buffer.from('ab =[]"\\\xff ', "latin1"));
    property(fc.integer({ min: 0, max: 191 }), fc.array(alphabet, { maxLength: 200 }), (pri, rest) => {
      const input = concat(`<${pri}>1 - web cron 7 - [`, Uint8Array.from(rest));
      expect(skipping(input)).toEqual(withoutSd(input));
    });
    property(fc.uint8Array({ maxLength: 300 }), (input) => expect(skipping(input)).toEqual(withoutSd(input)));
  });
});
