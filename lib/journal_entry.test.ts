import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import {
  isJournalFieldName,
  journalEntry,
  MAX_FIELD_NAME,
  MAX_SD_FIELDS,
  MAX_SD_NAMES,
  SD_OTHER,
  SdFieldNames,
  sdFieldName,
} from "./journal_entry.ts";
import { parseSyslog } from "./syslog_message.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 1000);
setDefaultTimeout(runs > 1000 ? 600_000 : 30_000);

const context = { from: "web.example.com:6514", server: "5f2c9a7e01b4d3c8", seq: 7 };

/**
 * An entry read back the way journald reads one (journald-native.c): `NAME=value\n`, or `NAME\n`,
 * a 64-bit little-endian length, the value and `\n`. Throws on anything journald would not take
 * whole: a field cut short, a missing `\n`, trailing bytes.
 */
function readEntry(entry: Uint8Array): [string, Buffer][] {
  const bytes = Buffer.from(entry);
  const fields: [string, Buffer][] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) throw new Error(`trailing bytes at ${at}`);
    const line = bytes.subarray(at, end);
    const equals = line.indexOf(0x3d);
    if (equals >= 0) {
      fields.push([line.subarray(0, equals).toString("latin1"), Buffer.from(line.subarray(equals + 1))]);
      at = end + 1;
      continue;
    }
    if (end + 9 > bytes.length) throw new Error(`binary field cut short at ${at}`);
    const size = Number(bytes.readBigUInt64LE(end + 1));
    const start = end + 9;
    if (start + size >= bytes.length || bytes[start + size] !== 0x0a) throw new Error(`binary field unended at ${at}`);
    fields.push([line.toString("latin1"), Buffer.from(bytes.subarray(start, start + size))]);
    at = start + size + 1;
  }
  return fields;
}

/** The entry of `input` as name -> value text (values of a repeated name joined by " | "). */
function entryOf(input: string | Uint8Array, names = new SdFieldNames()): Record<string, string> {
  const bytes = typeof input === "string" ? Buffer.from(input) : input;
  const record: Record<string, string> = {};
  for (const [name, value] of readEntry(journalEntry(parseSyslog(bytes), context, names))) {
    record[name] = name in record ? `${record[name]} | ${value.toString()}` : value.toString();
  }
  return record;
}

const slp = { SLP_FROM: "web.example.com:6514", SLP_SERVER: "5f2c9a7e01b4d3c8", SLP_SEQ: "7" };

describe("journalEntry", () => {
  test("RFC 3164: the fields journald's own syslog input sets, the host in SLP_HOST", () => {
    expect(entryOf("<38>Jan  5 10:11:12 web sshd[42]: Accepted publickey for ana")).toEqual({
      PRIORITY: "6",
      SYSLOG_FACILITY: "4",
      SYSLOG_IDENTIFIER: "sshd",
      SYSLOG_PID: "42",
      SYSLOG_TIMESTAMP: "Jan  5 10:11:12",
      SLP_HOST: "web",
      ...slp,
      MESSAGE: "Accepted publickey for ana",
    });
  });

  test("RFC 5424: APP-NAME, PROCID, MSGID, and each structured-data parameter by the rule", () => {
    const input =
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" ' +
      'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event';
    expect(entryOf(input)).toEqual({
      PRIORITY: "5",
      SYSLOG_FACILITY: "20",
      SYSLOG_IDENTIFIER: "evntslog",
      SYSLOG_PID: "1234",
      SYSLOG_TIMESTAMP: "2003-10-11T22:14:15.003Z",
      SLP_HOST: "mymachine.example.com",
      SLP_MSGID: "ID47",
      SLP_SD_EXAMPLESDID_32473_IUT: "3",
      SLP_SD_EXAMPLESDID_32473_EVENTSOURCE: "Application",
      SLP_SD_EXAMPLESDID_32473_EVENTID: "1011",
      SLP_SD_EXAMPLEPRIORITY_32473_CLASS: "high",
      ...slp,
      MESSAGE: "An application event",
    });
  });

  test("NILVALUEs give no field; kern (facility 0) is written, as a remote kernel's message is real", () => {
    expect(entryOf("<2>1 - - - - - - panic")).toEqual({
      PRIORITY: "2",
      SYSLOG_FACILITY: "0",
      ...slp,
      MESSAGE: "panic",
    });
  });

  test("a message slpc cannot parse: its raw bytes in MESSAGE, and no priority guessed", () => {
    expect(entryOf("no PRI at all\n")).toEqual({ ...slp, MESSAGE: "no PRI at all\n" });
    expect(entryOf("<999>too high")).toEqual({ ...slp, MESSAGE: "<999>too high" });
    expect(entryOf("")).toEqual({ ...slp, MESSAGE: "" });
  });

  test("MESSAGE with a line break goes in the binary-safe form, byte for byte", () => {
    const entry = journalEntry(parseSyslog(Buffer.from("<13>app: one\ntwo\r\n\n")), context, new SdFieldNames());
    const message = Buffer.from("one\ntwo\r\n");
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(message.length));
    expect(
      Buffer.from(entry).includes(Buffer.concat([Buffer.from("\nMESSAGE\n"), length, message, Buffer.from("\n")])),
    ).toBe(true);
    expect(readEntry(entry).find(([name]) => name === "MESSAGE")?.[1]).toEqual(message);
  });

  test("MESSAGE that is not UTF-8, or holds control bytes, goes in the binary-safe form; text stays text", () => {
    const bytes = Buffer.concat([Buffer.from("<13>app: "), Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x1b])]);
    const entry = Buffer.from(journalEntry(parseSyslog(bytes), context, new SdFieldNames()));
    expect(readEntry(entry).at(-1)).toEqual(["MESSAGE", Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x1b])]);
    expect(entry.includes("\nMESSAGE\n")).toBe(true);
    const plain = Buffer.from(
      journalEntry(parseSyslog(Buffer.from("<13>app: tab\there é")), context, new SdFieldNames()),
    );
    expect(plain.toString().endsWith("\nMESSAGE=tab\there é\n")).toBe(true);
  });

  test("a structured-data value with a line break, quotes and brackets arrives whole", () => {
    const fields = entryOf('<13>1 - h a - - [x@1 v="a\nb \\"q\\" \\]"] m');
    expect(fields.SLP_SD_X_1_V).toBe('a\nb "q" ]');
  });

  test("parameters whose names fold together are both kept, as two values of one field", () => {
    expect(entryOf('<13>1 - h a - - [a x="1"][A x="2"][a.b c="3"][a_b c="4"] m')).toMatchObject({
      SLP_SD_A_X: "1 | 2",
      SLP_SD_A_B_C: "3 | 4",
    });
  });

  test("a parameter whose field name would be over 64 characters goes into SLP_SD_OTHER, in RFC 5424's form", () => {
    const id = `i${"d".repeat(31)}`;
    const name = `n${"a".repeat(31)}`;
    const fields = entryOf(`<13>1 - h a - - [${id} ${name}="v\\\\a\\"l\\]ue" short="s"] m`);
    expect(fields[SD_OTHER]).toBe(`[${id} ${name}="v\\\\a\\"l\\]ue"]`);
    expect(fields[`SLP_SD_${id.toUpperCase()}_SHORT`]).toBe("s");
  });

  test(`past ${MAX_SD_FIELDS} parameters in one message, the rest go into SLP_SD_OTHER`, () => {
    const params = Array.from({ length: MAX_SD_FIELDS + 3 }, (_, i) => ` p${i}="${i}"`).join("");
    const fields = entryOf(`<13>1 - h a - - [x${params}] m`);
    const own = Object.keys(fields).filter((name) => name.startsWith("SLP_SD_X_"));
    expect(own).toHaveLength(MAX_SD_FIELDS);
    const rest = [MAX_SD_FIELDS, MAX_SD_FIELDS + 1, MAX_SD_FIELDS + 2];
    expect(fields[SD_OTHER]).toBe(`[x${rest.map((i) => ` p${i}="${i}"`).join("")}]`);
  });

  test(`past ${MAX_SD_NAMES} names in a run, new names go into SLP_SD_OTHER; known ones keep theirs`, () => {
    const names = new SdFieldNames();
    for (let i = 0; i < MAX_SD_NAMES; i++)
      expect(entryOf(`<13>1 - h a - - [x n${i}="v"] m`, names)).toHaveProperty(`SLP_SD_X_N${i}`);
    expect(names.full).toBe(true);
    const fields = entryOf('<13>1 - h a - - [x n0="old" fresh="new"] m', names);
    expect(fields.SLP_SD_X_N0).toBe("old");
    expect(fields[SD_OTHER]).toBe('[x fresh="new"]');
  });
});

describe("field names", () => {
  test.each([
    ["exampleSDID@32473", "eventSource", "SLP_SD_EXAMPLESDID_32473_EVENTSOURCE"],
    ["timeQuality", "tzKnown", "SLP_SD_TIMEQUALITY_TZKNOWN"],
    ["origin", "ip", "SLP_SD_ORIGIN_IP"],
    ["a-b.c", "d:e", "SLP_SD_A_B_C_D_E"],
    ["x".repeat(28), "y".repeat(28), `SLP_SD_${"X".repeat(28)}_${"Y".repeat(28)}`],
  ])("[%s %s=...] is %s", (id, name, field) => {
    expect(sdFieldName(id, name)).toBe(field);
    expect(isJournalFieldName(field)).toBe(true);
  });

  test("a name past 64 characters has no field", () => {
    expect(sdFieldName("x".repeat(28), "y".repeat(29))).toBeUndefined();
  });

  test.each([
    ["MESSAGE", true],
    ["A", true],
    ["_PID", false],
    ["1ABC", false],
    ["lower", false],
    ["WITH-DASH", false],
    ["", false],
    ["A".repeat(MAX_FIELD_NAME), true],
    ["A".repeat(MAX_FIELD_NAME + 1), false],
  ])("%j is a field name a client may set: %p", (name, valid) => {
    expect(isJournalFieldName(name)).toBe(valid);
  });
});

// Fuzzing: FUZZ_RUNS sets the cases (`npm run fuzz` runs many).
describe("any message", () => {
  const sdName = fc.stringMatching(/^[!#-<>-\\^-~]{1,32}$/);
  const sdValue = fc.string({ unit: "binary", maxLength: 40 }).map((text) => text.replace(/["\\\]]/g, "\\$&"));
  const structured = fc
    .tuple(
      fc.array(fc.tuple(sdName, fc.array(fc.tuple(sdName, sdValue), { maxLength: 30 })), { maxLength: 8 }),
      fc.uint8Array({ maxLength: 200 }),
    )
    .map(([elements, message]) => {
      const sd = elements.map(([id, params]) => `[${id}${params.map(([n, v]) => ` ${n}="${v}"`).join("")}]`);
      return Buffer.concat([Buffer.from(`<13>1 - h a - - ${sd.join("") || "-"} `), message]);
    });
  const anyInput = fc.oneof(fc.uint8Array({ maxLength: 600 }), structured);

  test("gives a well-formed entry with valid names, a bounded count of fields and a bounded size", () => {
    const names = new SdFieldNames();
    fc.assert(
      fc.property(anyInput, fc.nat(), (input, seq) => {
        const entry = journalEntry(parseSyslog(input), { ...context, seq }, names);
        const fields = readEntry(entry);
        for (const [name] of fields) expect(isJournalFieldName(name)).toBe(true);
        // journald drops an entry of more than 1024 fields (ENTRY_FIELD_COUNT_MAX).
        expect(fields.length).toBeLessThanOrEqual(12 + MAX_SD_FIELDS + 1);
        // A value's byte may become three (U+FFFD); each own field adds a name and its framing.
        expect(entry.length).toBeLessThanOrEqual(3 * input.length + MAX_SD_FIELDS * (MAX_FIELD_NAME + 10) + 300);
        expect(fields.filter(([name]) => name === "SLP_SEQ")).toEqual([["SLP_SEQ", Buffer.from(String(seq))]]);
      }),
      { numRuns: runs },
    );
  });

  test("keeps its text byte for byte in MESSAGE, and a PRIORITY only when it has a PRI", () => {
    fc.assert(
      fc.property(anyInput, (input) => {
        const parsed = parseSyslog(input);
        const fields = readEntry(journalEntry(parsed, context, new SdFieldNames()));
        expect(fields.filter(([name]) => name === "MESSAGE")).toEqual([["MESSAGE", Buffer.from(parsed.message)]]);
        if (parsed.format === "unknown") expect(Buffer.from(parsed.message)).toEqual(Buffer.from(input));
        const priority = fields.find(([name]) => name === "PRIORITY")?.[1].toString();
        expect(priority).toBe(parsed.severity === undefined ? undefined : String(parsed.severity));
      }),
      { numRuns: runs },
    );
  });
});
