import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import {
  colorChoice,
  formatJson,
  formatPretty,
  formatRaw,
  messagesAsLines,
  type PrettyOptions,
  parseColorFlag,
  parseOutputFormat,
} from "./format.ts";
import { parseSyslog } from "./syslog_message.ts";
import { terminalCells, widthOf } from "./terminal_text.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 1000);
setDefaultTimeout(runs > 1000 ? 600_000 : 30_000);

/** Bytes written as one character each (`\xff` is the byte FF), or real UTF-8 text. */
const latin1 = (text: string) => Buffer.from(text, "latin1");
const BSD_3164 = latin1("<36>Jan  5 10:11:12 web-server sshd[8119]: Failed password for root from 192.0.2.1");
const SD_5424 = Buffer.from(
  '<155>1 2024-01-05T10:11:12.5+01:00 db.example.com postgres 42 ID47 [ex@32473 k="v \\"q\\"" n="2"][b@1] lost',
);
const NO_PRI = latin1("no header at all");
const NOT_UTF8 = latin1("<11>Jan  5 10:11:12 web kernel: caf\xe9 \xff");
const NEWLINES = latin1("<15>Jan  5 10:11:12 web app: first\nsecond\r\n\x1b[2Jthird\n");
const received = new Date("2024-01-05T09:30:00.250Z");

describe("formatRaw", () => {
  test("writes the bytes as they are, one line, with control bytes but TAB escaped, as --stdout does today", () => {
    expect(formatRaw(latin1("a\tb\nc\rd\x00\x1b[31m\x7f\xff")).toString("latin1")).toBe(
      "a\tb\\nc\\rd\\x00\\x1b[31m\\x7f\xff\n",
    );
    expect(formatRaw(new Uint8Array()).toString()).toBe("\n");
  });

  test("a message becomes exactly one line, its control bytes escaped and the rest untouched", () => {
    const message = Buffer.concat([latin1("a\nb\rc\0d\te\x1b"), Buffer.from([0xff, 0xc3, 0xa9])]);
    expect(formatRaw(message)).toEqual(
      Buffer.concat([latin1("a\\nb\\rc\\x00d\te\\x1b"), Buffer.from([0xff, 0xc3, 0xa9, 0x0a])]),
    );
  });

  test("messagesAsLines writes each message as the line formatRaw makes, all in one buffer", () => {
    const messages = [
      latin1("a\nb\rc\0d\te\x1b\x7f"),
      Buffer.from([0xff, 0xc3, 0xa9]),
      latin1(""),
      latin1("\x1f\x7f\n"),
    ];
    expect(messagesAsLines(messages)).toEqual(Buffer.concat(messages.map(formatRaw)));
    expect(messagesAsLines(messages).toString("latin1")).toBe(
      "a\\nb\\rc\\x00d\te\\x1b\\x7f\n\xff\xc3\xa9\n\n\\x1f\\x7f\\n\n",
    );
    expect(messagesAsLines([])).toEqual(Buffer.alloc(0));
  });
});

const json = (datagram: Uint8Array, seq = 1) =>
  JSON.parse(formatJson(parseSyslog(datagram), { from: "web:6514", server: "5f2c9a7e01b4d3c8", seq, received }));

describe("formatJson", () => {
  test("every field, named, with nulls for what the message lacks", () => {
    expect(json(BSD_3164)).toEqual({
      from: "web:6514",
      server: "5f2c9a7e01b4d3c8",
      seq: 1,
      received: "2024-01-05T09:30:00.250Z",
      facility: "auth",
      severity: "warning",
      timestamp: "Jan  5 10:11:12",
      hostname: "web-server",
      app: "sshd",
      procid: "8119",
      msgid: null,
      structured_data: null,
      message: "Failed password for root from 192.0.2.1",
    });
  });

  test("RFC 5424 with structured data as an object", () => {
    expect(json(SD_5424)).toMatchObject({
      facility: "local3",
      severity: "err",
      timestamp: "2024-01-05T10:11:12.5+01:00",
      msgid: "ID47",
      structured_data: { "ex@32473": { k: 'v "q"', n: "2" }, "b@1": {} },
      message: "lost",
    });
  });

  test("a message without header keeps all its bytes as message, every header field null", () => {
    expect(json(NO_PRI)).toMatchObject({
      facility: null,
      severity: null,
      hostname: null,
      app: null,
      message: "no header at all",
    });
  });

  test("a message that is not UTF-8 comes as message_base64 with its exact bytes", () => {
    const record = json(NOT_UTF8);
    expect(record.message).toBeUndefined();
    expect(Buffer.from(record.message_base64, "base64")).toEqual(latin1("caf\xe9 \xff"));
  });

  test("each record is one line, whatever the message holds", () => {
    const line = formatJson(parseSyslog(NEWLINES), { from: "web:6514", server: "s", seq: 2, received });
    expect(line.indexOf("\n")).toBe(line.length - 1);
    expect(JSON.parse(line).message).toBe("first\nsecond\r\n\x1b[2Jthird");
  });

  test("C1 controls and bidi overrides are escaped in the line, and read back as they came", () => {
    const hostile = '<13>1 2026-12-03T00:00:00Z h app - - [x@1 k="\u202e"] csi\u009b31m \u202eevil\u2066 \u0085';
    const line = formatJson(parseSyslog(Buffer.from(hostile)), { from: "web:6514", server: "s", seq: 3, received });
    expect(line).not.toMatch(/[\u0080-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
    expect(line).toContain("csi\\u009b31m \\u202eevil\\u2066 \\u0085");
    const record = JSON.parse(line);
    expect(record.message).toBe("csi\u009b31m \u202eevil\u2066 \u0085");
    expect(record.structured_data).toEqual({ "x@1": { k: "\u202e" } });
  });
});

// A missing jq fails the test where the daemons are required (CI), and skips it elsewhere.
const jq = Bun.which("jq");
describe.skipIf(jq === null && !process.env.SLP_REQUIRE_DAEMONS)("formatJson read by jq", () => {
  test("jq reads every line, and every field as written", () => {
    expect(jq, "jq is not installed (apt-get install jq)").not.toBeNull();
    const datagrams = [
      BSD_3164,
      SD_5424,
      NO_PRI,
      NOT_UTF8,
      NEWLINES,
      latin1('<13>1 - - - - - [__proto__ x="1"] \xef\xbb\xbfbom'),
    ];
    const input = datagrams.map((datagram, index) =>
      formatJson(parseSyslog(datagram), { from: "web:6514", server: "srv:6514", seq: index + 1, received }),
    );
    const program = `[.from, .server, .seq, .received, .facility, .severity, .hostname, .app, .procid, .msgid,
      (.structured_data | tojson), (.message // ("base64:" + .message_base64))] | @json`;
    const run = Bun.spawnSync([jq!, "-r", program], {
      stdin: Buffer.from(input.join("")),
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    const rows = run.stdout
      .toString()
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(rows.map((row) => row.shift())).toEqual(Array(datagrams.length).fill("web:6514"));
    expect(rows).toEqual([
      [
        "srv:6514",
        1,
        "2024-01-05T09:30:00.250Z",
        "auth",
        "warning",
        "web-server",
        "sshd",
        "8119",
        null,
        "null",
        "Failed password for root from 192.0.2.1",
      ],
      [
        "srv:6514",
        2,
        "2024-01-05T09:30:00.250Z",
        "local3",
        "err",
        "db.example.com",
        "postgres",
        "42",
        "ID47",
        '{"ex@32473":{"k":"v \\"q\\"","n":"2"},"b@1":{}}',
        "lost",
      ],
      ["srv:6514", 3, "2024-01-05T09:30:00.250Z", null, null, null, null, null, null, "null", "no header at all"],
      [
        "srv:6514",
        4,
        "2024-01-05T09:30:00.250Z",
        "user",
        "err",
        "web",
        "kernel",
        null,
        null,
        "null",
        "base64:Y2Fm6SD/",
      ],
      [
        "srv:6514",
        5,
        "2024-01-05T09:30:00.250Z",
        "user",
        "debug",
        "web",
        "app",
        null,
        null,
        "null",
        "first\nsecond\r\n\x1b[2Jthird",
      ],
      [
        "srv:6514",
        6,
        "2024-01-05T09:30:00.250Z",
        "user",
        "notice",
        null,
        null,
        null,
        null,
        '{"__proto__":{"x":"1"}}',
        "bom",
      ],
    ]);
  });
});

const plain: PrettyOptions = { color: false, width: 120, timeZone: "UTC", now: received, server: "srv" };
const pretty = (datagram: Uint8Array, options: Partial<PrettyOptions> = {}) =>
  formatPretty(parseSyslog(datagram), { ...plain, ...options });
/** Where the message starts: after time (15), host (12), program[pid] (16) and severity (7), a space after each. */
const MESSAGE_COLUMN = 54;

describe("formatPretty", () => {
  test("columns line up: time, host, program[pid], severity, then the message", () => {
    expect(pretty(BSD_3164)).toBe(
      "Jan  5 10:11:12 web-server   sshd[8119]       warning Failed password for root from 192.0.2.1\n",
    );
    expect(pretty(SD_5424)).toBe(
      'Jan  5 09:11:12 db.example.… postgres[42]     err     lost [ex@32473 k="v \\"q\\"" n=2][b@1]\n',
    );
    const starts: [Uint8Array, string][] = [
      [BSD_3164, "Failed"],
      [SD_5424, "lost"],
      [NOT_UTF8, "caf"],
      [NO_PRI, "no header"],
    ];
    for (const [datagram, start] of starts) expect(pretty(datagram).slice(MESSAGE_COLUMN)).toStartWith(start);
  });

  test("an RFC 3339 time shows in the time zone asked for; one without a zone as written", () => {
    expect(pretty(SD_5424, { timeZone: "Asia/Tokyo" })).toStartWith("Jan  5 18:11:12 ");
    expect(pretty(Buffer.from("<13>2024-01-05T10:11:12 h t: x"), { timeZone: "Asia/Tokyo" })).toStartWith(
      "Jan  5 10:11:12 h ",
    );
  });

  test("a message without a header shows its time of arrival, the server as host, and all its text", () => {
    expect(pretty(NO_PRI)).toBe(`Jan  5 09:30:00 srv${" ".repeat(9 + 1 + 16 + 1 + 7 + 1)}no header at all\n`);
    expect(pretty(NO_PRI, { now: undefined, server: undefined })).toBe(
      `${" ".repeat(MESSAGE_COLUMN)}no header at all\n`,
    );
  });

  test("bytes that are not UTF-8 and control characters show as escapes; LF continues under the message", () => {
    expect(pretty(NOT_UTF8).slice(MESSAGE_COLUMN)).toBe("caf\\xe9 \\xff\n");
    expect(pretty(NEWLINES)).toBe(
      `${[
        "Jan  5 10:11:12 web          app              debug   first",
        `${" ".repeat(MESSAGE_COLUMN)}second\\r`,
        `${" ".repeat(MESSAGE_COLUMN)}\\x1b[2Jthird`,
      ].join("\n")}\n`,
    );
  });

  test("long lines wrap at a space, continuing under the message column", () => {
    const words = Array.from({ length: 12 }, (_, i) => `word${i}`).join(" ");
    const lines = pretty(latin1(`<14>Jan  5 10:11:12 h t: ${words}`), { width: 80 })
      .trimEnd()
      .split("\n");
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    for (const line of lines.slice(1)) expect(line.slice(0, MESSAGE_COLUMN)).toBe(" ".repeat(MESSAGE_COLUMN));
    expect(lines.map((line) => line.slice(MESSAGE_COLUMN).trim()).join(" ")).toBe(words);
  });

  test("colour by severity: red for err and worse, yellow for warning, dim for debug, none otherwise", () => {
    const colored = (severity: number) => pretty(latin1(`<${8 + severity}>Jan  5 10:11:12 h t: text`), { color: true });
    for (const severity of [0, 1, 2, 3]) expect(colored(severity)).toContain("\x1b[31mtext\x1b[0m");
    expect(colored(4)).toContain("\x1b[33mwarning\x1b[0m \x1b[33mtext\x1b[0m");
    expect(colored(7)).toContain("\x1b[2mtext\x1b[0m");
    for (const severity of [5, 6]) expect(colored(severity)).not.toContain("\x1b");
    expect(
      pretty(NEWLINES, { color: true })
        .split("\n")
        .slice(0, 3)
        .every((line) => line.endsWith("\x1b[0m")),
    ).toBe(true);
  });

  test("structured data is dimmed after the text; nothing is coloured when colour is off", () => {
    expect(pretty(SD_5424, { color: true })).toContain("\x1b[31mlost\x1b[0m\x1b[31m\x1b[2m [ex@32473");
    expect(pretty(SD_5424)).not.toContain("\x1b");
  });
});

describe("formatPretty under arbitrary bytes", () => {
  test("the output holds only our colour codes, lines within the width, and at least one line", () => {
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc
        .tuple(fc.integer({ min: 0, max: 191 }), fc.uint8Array({ maxLength: 300 }))
        .map(([pri, rest]) =>
          Buffer.concat([Buffer.from(`<${pri}>1 2024-01-05T10:11:12Z h a p m [x y="\\]"] `), rest]),
        ),
    );
    fc.assert(
      fc.property(datagram, fc.boolean(), fc.integer({ min: 74, max: 200 }), (bytes, color, width) => {
        const output = pretty(bytes, { color, width });
        expect(output.endsWith("\n")).toBe(true);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the colour codes this test strips start with ESC
        const text = output.replace(/\x1b\[(?:0|2|31|33)m/g, "");
        // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach a terminal is control characters
        expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/);
        if (!color) expect(text).toBe(output);
        for (const line of text.slice(0, -1).split("\n"))
          expect(widthOf(terminalCells(line))).toBeLessThanOrEqual(width);
      }),
      { numRuns: runs },
    );
  });
});

describe("colour choice", () => {
  test("--color always and never decide; auto colours a terminal unless NO_COLOR is set or TERM is dumb", () => {
    expect(colorChoice("always", false, { NO_COLOR: "1" })).toBe(true);
    expect(colorChoice("never", true, {})).toBe(false);
    expect(colorChoice("auto", true, {})).toBe(true);
    expect(colorChoice("auto", false, {})).toBe(false);
    expect(colorChoice("auto", true, { NO_COLOR: "1" })).toBe(false);
    expect(colorChoice("auto", true, { NO_COLOR: "" })).toBe(true); // no-color.org: set and not empty
    expect(colorChoice("auto", true, { TERM: "dumb" })).toBe(false);
  });

  test("--color takes always, never or auto", () => {
    expect(["always", "never", "auto"].map(parseColorFlag)).toEqual(["always", "never", "auto"]);
    expect(() => parseColorFlag("yes")).toThrow("expected always, never or auto");
  });
});

describe("format choice", () => {
  test("--format takes raw, json or pretty", () => {
    expect(["raw", "json", "pretty"].map(parseOutputFormat)).toEqual(["raw", "json", "pretty"]);
    expect(() => parseOutputFormat("yaml")).toThrow("expected raw, json or pretty");
    expect(() => parseOutputFormat("JSON")).toThrow("expected raw, json or pretty");
  });
});
