import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type Filter, matches, parseHosts, parseMatch, parsePrograms, parseSeverity } from "./filter.ts";
import { PARSE_CACHE_SLOTS, ParseCache } from "./parse_cache.ts";
import { ResumeBuffer } from "./resume_buffer.ts";
import { parseSyslog } from "./syslog_message.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 200);

/** A buffer holding `messages`, numbered from 1. */
function holding(...messages: (string | Buffer)[]) {
  const buffer = new ResumeBuffer(1 << 22);
  for (const message of messages) buffer.append(typeof message === "string" ? Buffer.from(message) : message);
  return buffer;
}

const SSHD = "<34>Jan  5 10:11:12 web sshd[7]: Failed password for root";

describe("ParseCache", () => {
  test("a message is parsed once, whatever the number of filters that ask for it", () => {
    const cache = new ParseCache(holding(SSHD, "<13>Jan  5 10:11:13 db cron[1]: ran"));
    const [sshd, cron] = [
      cache.selector({ programs: parsePrograms("sshd") }),
      cache.selector({ hosts: parseHosts("db") }),
    ];
    expect([sshd(1), sshd(2), cron(1), cron(2)]).toEqual([true, false, false, true]);
    const first = cache.fields(1);
    expect(cache.fields(1)).toBe(first);
    expect(first).toMatchObject({ facility: 4, severity: 2, hostname: "web", app: "sshd" });
    expect(Buffer.from(first.message).toString()).toBe("Failed password for root");
  });

  test("it holds a fixed number of slots: a message asked for again after its slot was reused is parsed again", () => {
    const buffer = holding(...Array.from({ length: 9 }, (_, i) => `<13>m ${i + 1}`));
    const cache = new ParseCache(buffer, 4);
    const one = cache.fields(1);
    expect(cache.fields(1)).toBe(one);
    cache.fields(5); // slot 1 as well
    const again = cache.fields(1);
    expect(again).not.toBe(one);
    expect(again).toEqual(one);
    expect(PARSE_CACHE_SLOTS).toBe(1024);
  });

  test("a slot holds no structured data, and no name longer than a filter's, whatever the message", () => {
    const long = "h".repeat(30_000);
    const elements = Array.from({ length: 9000 }, (_, n) => `[${n.toString(36)} a="b"]`).join("");
    const cache = new ParseCache(
      holding(
        `<13>1 - ${long} ${long} - - - text`,
        `<13>1 - web cron - - ${elements} job ran`,
        `<13>1 - ${"h".repeat(255)} a - - - x`,
      ),
    );
    expect(cache.fields(1)).toMatchObject({ hostname: undefined, app: undefined });
    expect(cache.selector({ hosts: parseHosts("h".repeat(255)) })(1)).toBe(false);
    expect(cache.fields(2)).toMatchObject({ hostname: "web", app: "cron" });
    expect(Object.keys(cache.fields(2)).sort()).toEqual(["app", "facility", "hostname", "message", "seq", "severity"]);
    expect(Buffer.from(cache.fields(2).message).toString()).toBe("job ran");
    expect(cache.fields(3).hostname).toHaveLength(255);
  });

  test("its selectors agree with matches on the full parse, for any message and filter", () => {
    const messages = [
      SSHD,
      '<86>1 2026-01-05T10:11:14Z web sudo 1 - [x a="]"] session opened',
      "<11>Jan  5 10:11:15 web cron[1]: caf\xe9 \xff broken",
      "no header at all: password",
      '<191>1 - DB Postgres - - [a b="c"][d] vacuum',
    ].map((text) => Buffer.from(text, "latin1"));
    const filter: fc.Arbitrary<Filter> = fc.record(
      {
        severity: fc.integer({ min: 0, max: 7 }).map(String).map(parseSeverity),
        programs: fc.constantFrom("sshd", "sudo,cron", "postgres").map(parsePrograms),
        hosts: fc.constantFrom("web", "db").map(parseHosts),
        match: fc.constantFrom("pass", "\xff", "vacuum", "]").map(parseMatch),
      },
      { requiredKeys: [] },
    );
    const cache = new ParseCache(holding(...messages), 2);
    fc.assert(
      fc.property(filter, fc.integer({ min: 1, max: messages.length }), (f, seq) => {
        expect(cache.selector(f)(seq)).toBe(matches(f, parseSyslog(messages[seq - 1]!)));
      }),
      { numRuns: runs },
    );
  });
});
