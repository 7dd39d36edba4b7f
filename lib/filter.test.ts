import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import {
  describeFilter,
  type Filter,
  filterFromWire,
  filterToWire,
  matches,
  parseFacilities,
  parseHosts,
  parseMatch,
  parsePrograms,
  parseSeverity,
} from "./filter.ts";
import { parseSyslog, type SyslogMessage } from "./syslog_message.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 1000);
setDefaultTimeout(runs > 1000 ? 600_000 : 30_000);

const message = (text: string | Uint8Array) =>
  parseSyslog(typeof text === "string" ? Buffer.from(text, "latin1") : text);
const sshd = message("<36>Jan  5 10:11:12 Web1 sshd[7]: Failed password for root");
const sudo5424 = message('<85>1 2024-01-05T10:11:12Z db.example.com sudo 99 - [x@1 a="b"] alice : TTY=pts/0');
const cronDebug = message("<79>Jan  5 10:11:12 web1 CRON[3]: (root) CMD (run-parts)");
const noPri = message("Failed password, but no header");
const noHeader = message("<36>plain words");

describe("flag values", () => {
  test("--facility takes names, rsyslog's aliases and codes, in any case, with spaces around commas", () => {
    expect([...parseFacilities("auth,authpriv,local0")]).toEqual([4, 10, 16]);
    expect([...parseFacilities("AUTH, 10 ,audit,security")]).toEqual([4, 10, 13]);
  });

  test("--facility refuses unknown names, codes above 23 and empty items, naming the choices", () => {
    expect(() => parseFacilities("auth,bogus")).toThrow('no facility "bogus": use kern, user, mail');
    expect(() => parseFacilities("24")).toThrow('no facility "24"');
    expect(() => parseFacilities("auth,,cron")).toThrow("an empty facility name");
    expect(() => parseFacilities("")).toThrow("an empty facility name");
  });

  test("--severity takes a name, an alias or 0 to 7", () => {
    expect([parseSeverity("warning"), parseSeverity("WARN"), parseSeverity("err"), parseSeverity("error")]).toEqual([
      4, 4, 3, 3,
    ]);
    expect([parseSeverity("0"), parseSeverity(" 7 ")]).toEqual([0, 7]);
    expect(() => parseSeverity("8")).toThrow(
      'no severity "8": use emerg, alert, crit, err, warning, notice, info, debug or 0 to 7',
    );
    expect(() => parseSeverity("loud")).toThrow('no severity "loud"');
    expect(() => parseSeverity("warning,err")).toThrow('no severity "warning,err"');
  });

  test("--program and --host keep printable ASCII names, lower-cased", () => {
    expect([...parsePrograms("sshd, CRON,postfix/smtpd")]).toEqual(["sshd", "cron", "postfix/smtpd"]);
    expect([...parseHosts("Web1,db.example.com,2001:db8::1")]).toEqual(["web1", "db.example.com", "2001:db8::1"]);
  });

  test("--program and --host refuse names that no message can carry", () => {
    expect(() => parsePrograms("ssh d")).toThrow('program name "ssh d": messages carry only printable ASCII');
    expect(() => parseHosts("café")).toThrow('host name "café"');
    expect(() => parseHosts("a".repeat(256))).toThrow("host name of 256 characters; at most 255");
    expect(() => parsePrograms(Array.from({ length: 33 }, (_, i) => `p${i}`).join(","))).toThrow(
      "33 names; at most 32",
    );
  });

  test("--match takes text as it is, and refuses empty or oversized text", () => {
    expect(parseMatch(" Failed password ")).toBe(" Failed password ");
    expect(() => parseMatch("")).toThrow("empty text matches every message");
    expect(() => parseMatch("é".repeat(513))).toThrow("1026 bytes long; at most 1024");
    expect(() => parseMatch("\ud800")).toThrow("not valid Unicode text");
  });
});

describe("matches", () => {
  test("each criterion alone", () => {
    expect(matches({ facilities: parseFacilities("auth") }, sshd)).toBe(true);
    expect(matches({ facilities: parseFacilities("auth") }, sudo5424)).toBe(false);
    expect(matches({ severity: parseSeverity("warning") }, sshd)).toBe(true);
    expect(matches({ severity: parseSeverity("err") }, sshd)).toBe(false);
    expect(matches({ programs: parsePrograms("sudo") }, sudo5424)).toBe(true);
    expect(matches({ programs: parsePrograms("cron") }, cronDebug)).toBe(true);
    expect(matches({ hosts: parseHosts("web1") }, sshd)).toBe(true);
    expect(matches({ hosts: parseHosts("web1") }, sudo5424)).toBe(false);
    expect(matches({ match: "Failed password" }, sshd)).toBe(true);
    expect(matches({ match: "failed password" }, sshd)).toBe(false);
  });

  test("criteria combine with AND, the values in a list with OR", () => {
    const filter = { facilities: parseFacilities("auth,authpriv"), programs: parsePrograms("sshd,sudo") };
    expect([sshd, sudo5424, cronDebug].map((m) => matches(filter, m))).toEqual([true, true, false]);
    const severe = { ...filter, severity: parseSeverity("warning") };
    expect([sshd, sudo5424, cronDebug].map((m) => matches(severe, m))).toEqual([true, false, false]);
  });

  test("the empty filter passes everything, unparsable messages included", () => {
    expect([sshd, noPri, noHeader, message(new Uint8Array())].every((m) => matches({}, m))).toBe(true);
  });

  test("a message without a header matches only a filter that does not look at headers", () => {
    for (const filter of [
      { facilities: new Set([0, 1, 4]) },
      { severity: 7 },
      { programs: new Set(["failed"]) },
      { hosts: new Set(["failed"]) },
    ]) {
      expect(matches(filter, noPri)).toBe(false);
    }
    expect(matches({ match: "Failed password" }, noPri)).toBe(true);
    expect(matches({ match: "<" }, noPri)).toBe(false);
  });

  test("a message with a PRI but no other header passes on facility and severity, not on program or host", () => {
    expect(matches({ facilities: parseFacilities("auth"), severity: 4 }, noHeader)).toBe(true);
    expect(matches({ programs: parsePrograms("plain") }, noHeader)).toBe(false);
  });

  test("--match looks at MSG only, byte for byte, through non-UTF-8 bytes and newlines", () => {
    expect(matches({ match: "sshd" }, sshd)).toBe(false);
    const binary = message(
      Buffer.concat([Buffer.from("<13>Jan  5 10:11:12 h t: "), Uint8Array.of(0xff, 0x0a), Buffer.from("café\nnext")]),
    );
    expect(matches({ match: "café\nnext" }, binary)).toBe(true);
    expect(matches({ match: "\xff" }, binary)).toBe(false); // U+00FF is two bytes in UTF-8, not the byte FF
  });

  test("a filter whose match text changes is matched on the new text", () => {
    const filter: Filter = { match: "Failed" };
    expect(matches(filter, sshd)).toBe(true);
    filter.match = "Accepted";
    expect(matches(filter, sshd)).toBe(false);
  });

  // A safety test, not a benchmark: a backtracking engine would take longer than the universe has left.
  test("a catastrophic regular expression against a 64 KB message is just text, found or not at once", () => {
    const long = message(`<13>Jan  5 10:11:12 h t: ${"a".repeat(65_000)}!`);
    const started = performance.now();
    expect(matches({ match: parseMatch("(a+)+$") }, long)).toBe(false);
    expect(matches({ match: parseMatch(`${"a".repeat(1023)}b`) }, long)).toBe(false);
    expect(matches({ match: parseMatch(`${"a".repeat(1023)}!`) }, long)).toBe(true);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("wire form", () => {
  const full: Filter = {
    facilities: parseFacilities("local0,auth"),
    severity: 4,
    programs: parsePrograms("sudo,sshd"),
    hosts: parseHosts("web1"),
    match: 'Failed "password"',
  };

  test("a filter goes to JSON and back unchanged, lists sorted", () => {
    const wire = filterToWire(full);
    expect(wire).toEqual({
      facilities: [4, 16],
      severity: 4,
      programs: ["sshd", "sudo"],
      hosts: ["web1"],
      match: 'Failed "password"',
    });
    expect(filterFromWire(JSON.parse(JSON.stringify(wire)))).toEqual(full);
    expect(filterToWire({})).toEqual({});
    expect(filterFromWire({})).toEqual({});
  });

  test("every bad field is refused with the field's name", () => {
    const cases: [unknown, string][] = [
      [null, "filter: not an object"],
      [[], "filter: not an object"],
      ["x", "filter: not an object"],
      [{ facility: [4] }, 'filter: unknown field "facility"'],
      [JSON.parse('{"__proto__": {"severity": 1}}'), 'filter: unknown field "__proto__"'],
      [{ facilities: 4 }, "filter: facilities: not a list"],
      [{ facilities: [] }, "filter: facilities: 0 values; 1 to 32"],
      [{ facilities: [24] }, "filter: facilities: not a whole number 0 to 23"],
      [{ facilities: [1.5] }, "filter: facilities: not a whole number"],
      [{ facilities: ["4"] }, "filter: facilities: not a whole number"],
      [{ facilities: [4, 4] }, "filter: facilities: a value is repeated"],
      [{ severity: -1 }, "filter: severity: not a whole number 0 to 7"],
      [{ severity: null }, "filter: severity: not a whole number"],
      [{ programs: ["sshd", 1] }, "filter: programs: not a string"],
      [{ programs: ["SSHD", "sshd"] }, "filter: programs: a value is repeated"],
      [{ hosts: ["a b"] }, 'filter: hosts: host name "a b"'],
      [{ hosts: Array(33).fill("h") }, "filter: hosts: 33 values; 1 to 32"],
      [{ hosts: Array(1e6).fill("h") }, "filter: hosts: 1000000 values; 1 to 32"],
      [{ match: "" }, "filter: match: empty text"],
      [{ match: ["x"] }, "filter: match: not a string"],
      [{ match: "x".repeat(1025) }, "filter: match: 1025 bytes long; at most 1024"],
      [{ programs: Array.from({ length: 32 }, (_, i) => `${i}`.padEnd(200, "x")) }, "bytes; at most 2048 fit"],
    ];
    for (const [value, error] of cases) expect(() => filterFromWire(value)).toThrow(error);
  });

  test("filterToWire refuses a filter too large for the resume request, so slpc can refuse it at start", () => {
    const hosts = parseHosts(Array.from({ length: 32 }, (_, i) => `host-${i}.`.padEnd(100, "x")).join(","));
    expect(() => filterToWire({ hosts })).toThrow(/^the filter takes \d+ bytes; at most 2048 fit$/);
  });

  test("describeFilter says what a filter keeps", () => {
    expect(describeFilter(full)).toBe(
      'facility auth,local0; severity warning or worse; program sshd,sudo; host web1; match "Failed \\"password\\""',
    );
    expect(describeFilter({})).toBe("everything");
  });

  test("describeFilter escapes a client's match text: no line break, ESC, C1 or bidi control comes out raw", () => {
    const described = describeFilter({ match: "x\nslps: forged\x1b]0;t\x07\u009b2J\u202e" });
    expect(described).toBe('match "x\\nslps: forged\\u001b]0;t\\u0007\\u009b2J\\u202e"');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this test looks for
    expect(described).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    expect(describeFilter({ match: "a".repeat(1024) }).length).toBeLessThan(220);
  });
});

// Fuzzing: FUZZ_RUNS sets the cases (`npm run fuzz` runs many).
const property = <T extends unknown[]>(...args: [...{ [K in keyof T]: fc.Arbitrary<T[K]> }, (...values: T) => void]) =>
  fc.assert(fc.property(...(args as unknown as Parameters<typeof fc.property>)), { numRuns: runs });

const nameArbitrary = fc.string({ unit: fc.constantFrom(..."abcXYZ09-./_:@"), minLength: 1, maxLength: 20 });
const filterArbitrary: fc.Arbitrary<Filter> = fc.record(
  {
    facilities: fc
      .uniqueArray(fc.integer({ min: 0, max: 23 }), { minLength: 1, maxLength: 24 })
      .map((codes) => new Set(codes)),
    severity: fc.integer({ min: 0, max: 7 }),
    programs: fc
      .uniqueArray(nameArbitrary, { minLength: 1, maxLength: 5 })
      .map((names) => parsePrograms(names.join(","))),
    hosts: fc.uniqueArray(nameArbitrary, { minLength: 1, maxLength: 5 }).map((names) => parseHosts(names.join(","))),
    match: fc.string({ unit: fc.constantFrom(..."ab é\n"), minLength: 1, maxLength: 4 }),
  },
  { requiredKeys: [] },
);

/** The definition of a match, written apart from the code under test. */
function reference(filter: Filter, m: SyslogMessage): boolean {
  const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");
  return (
    (!filter.facilities || (m.facility !== undefined && filter.facilities.has(m.facility))) &&
    (filter.severity === undefined || (m.severity ?? 8) <= filter.severity) &&
    (!filter.programs || [...filter.programs].some((p) => p === m.app?.toLowerCase())) &&
    (!filter.hosts || [...filter.hosts].some((h) => h === m.hostname?.toLowerCase())) &&
    (filter.match === undefined || latin1(m.message).includes(latin1(Buffer.from(filter.match))))
  );
}

describe("filters under arbitrary input", () => {
  test("any filter survives the wire unchanged", () => {
    property(filterArbitrary, (filter) =>
      expect(filterFromWire(JSON.parse(JSON.stringify(filterToWire(filter))))).toEqual(filter),
    );
  });

  test("any JSON value is refused with an Error or gives a filter that survives the wire", () => {
    // Values near the valid ones, so that some pass and the checks at each edge are reached.
    const mostly = <T>(near: fc.Arbitrary<T>) =>
      fc.oneof({ arbitrary: near, weight: 6 }, { arbitrary: fc.jsonValue(), weight: 1 });
    const names = fc.array(fc.string({ unit: fc.constantFrom(..."aaZ9-é ,"), maxLength: 3 }), { maxLength: 3 });
    const near = fc.record(
      {
        facilities: mostly(fc.array(fc.integer({ min: -1, max: 24 }), { maxLength: 3 })),
        severity: mostly(fc.oneof(fc.integer({ min: -1, max: 8 }), fc.double())),
        programs: mostly(names),
        hosts: mostly(names),
        match: mostly(fc.string({ maxLength: 3 })),
      },
      { requiredKeys: [] },
    );
    let accepted = 0;
    property(fc.oneof(fc.jsonValue(), near), (value) => {
      let filter: Filter;
      try {
        filter = filterFromWire(value);
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message).toStartWith("filter: ");
        return;
      }
      expect(filterFromWire(filterToWire(filter))).toEqual(filter);
      accepted++;
    });
    expect(accepted).toBeGreaterThan(runs / 100);
  });

  test("matches agrees with the definition on arbitrary messages", () => {
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 100 }),
      fc
        .tuple(
          fc.integer({ min: 0, max: 191 }),
          fc.constantFrom("", "Jan  5 10:11:12 "),
          nameArbitrary,
          nameArbitrary,
          fc.string({ unit: fc.constantFrom(..."ab é\n"), maxLength: 12 }),
        )
        .map(([pri, stamp, host, app, text]) => Buffer.from(`<${pri}>${stamp}${host} ${app}: ${text}`)),
    );
    property(filterArbitrary, datagram, (filter, bytes) => {
      const parsed = parseSyslog(bytes);
      expect(matches(filter, parsed)).toBe(reference(filter, parsed));
    });
  });
});
