import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property } from "../test/fuzz.ts";
import { type Entry, Ledger } from "./ledger.ts";
import type { ResumePoint } from "./protocol.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const message = (text: string) => Buffer.from(text);
const entry = (from: string, seq: number, server = "run1"): Entry<string> => ({
  message: message(`${from} ${seq}`),
  from,
  server,
  seq,
});

describe("Ledger", () => {
  test("the line takes one message from each inbox in turn", () => {
    const ledger = new Ledger(["a", "b"], new Map());
    for (let seq = 1; seq <= 3; seq++) ledger.receive(entry("a", seq));
    ledger.receive(entry("b", 1));
    expect(ledger.next(4).map((e) => `${e.from}${e.seq}`)).toEqual(["a1", "b1", "a2", "a3"]);
  });

  test("a server's point stays before what the output has not confirmed, and moves as it confirms", () => {
    const ledger = new Ledger(["a"], new Map([["a", { server: "run1", last: 4 }]]));
    expect(ledger.resumePoint("a")).toEqual({ server: "run1", last: 4 });
    for (let seq = 5; seq <= 7; seq++) ledger.receive(entry("a", seq));
    ledger.give(ledger.next(2).length);
    expect([ledger.given, ledger.heldCount("a")]).toEqual([2, 3]);
    expect(ledger.resumePoint("a", { server: "run1", next: 8 })).toEqual({ server: "run1", last: 4 });
    ledger.confirm(1);
    expect(ledger.resumePoint("a", { server: "run1", next: 8 })).toEqual({ server: "run1", last: 5 });
    expect(ledger.giveBack().map((e) => e.seq)).toEqual([6]);
    expect(ledger.next(1).map((e) => e.seq)).toEqual([6]);
    expect(ledger.next(2).map((e) => e.seq)).toEqual([6, 7]);
    ledger.give(2);
    ledger.confirm(1, "undeliverable");
    ledger.confirm(1);
    expect(ledger.counts("a")).toEqual({ delivered: 2, undeliverable: 1, givenBack: 1 });
    expect(ledger.resumePoint("a", { server: "run1", next: 8 })).toEqual({ server: "run1", last: 7 });
    expect(ledger.newestHeld("a")).toBeUndefined();
  });

  test("with nothing held, the point is where the server's stream goes on: a gap moved it", () => {
    const ledger = new Ledger(["a"], new Map([["a", { server: "run1", last: 4 }]]));
    expect(ledger.resumePoint("a", { server: "run2", next: 1 })).toEqual({ server: "run2", last: 0 });
  });

  test("an inbox is full at its share of the total, within the bounds for one", () => {
    const bounds = {
      total: { messages: 8, bytes: 1000 },
      each: { messages: 3, bytes: 1000 },
      least: { messages: 2, bytes: 10 },
    };
    const one = new Ledger(["a"], new Map(), bounds);
    const four = new Ledger(["a", "b", "c", "d"], new Map(), bounds);
    for (let seq = 1; seq <= 2; seq++) for (const ledger of [one, four]) ledger.receive(entry("a", seq));
    expect([one.inboxFull("a"), four.inboxFull("a"), four.inboxFull("b")]).toEqual([false, true, false]);
    one.receive(entry("a", 3));
    expect(one.inboxFull("a")).toBe(true);
  });
});

/** One step of slpc's life as the ledger sees it. */
type Step =
  | { kind: "receive"; from: 0 | 1; count: number }
  | { kind: "give"; count: number }
  | { kind: "confirm"; count: number; undeliverable: boolean }
  | { kind: "refused" }
  | { kind: "reconnect"; from: 0 | 1 }
  | { kind: "restart" };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("receive" as const), from: fc.constantFrom(0 as const, 1 as const), count: fc.nat(5) }),
  fc.record({ kind: fc.constant("give" as const), count: fc.nat(6) }),
  fc.record({ kind: fc.constant("confirm" as const), count: fc.nat(6), undeliverable: fc.boolean() }),
  fc.record({ kind: fc.constant("refused" as const) }),
  fc.record({ kind: fc.constant("reconnect" as const), from: fc.constantFrom(0 as const, 1 as const) }),
  fc.record({ kind: fc.constant("restart" as const) }),
);

describe("Ledger under any interleaving", () => {
  test("no point passes a message that was not confirmed, nothing is confirmed twice, and held counts add up", () => {
    property(fc.array(step, { maxLength: 80 }), (steps) => {
      const servers = ["a", "b"];
      // What a server sends next when asked to resume, and every message ever confirmed.
      const confirmedEver = new Set<string>();
      let ledger = new Ledger(servers, new Map<string, ResumePoint>());
      let following = new Map<string, { server: string; next: number }>();
      let given: Entry<string>[] = [];
      let confirmedNow = new Set<string>();
      let received = new Map(servers.map((s) => [s, 0]));
      const connect = (s: string) => {
        // As Upstream does: resume after the newest message held, or at the point.
        const point = ledger.newestHeld(s) ?? undefined;
        const last = point ? point.seq : (ledger.resumePoint(s, following.get(s))?.last ?? 0);
        following.set(s, { server: "run1", next: last + 1 });
      };
      servers.forEach(connect);
      for (const each of steps) {
        if (each.kind === "receive") {
          const s = servers[each.from]!;
          const position = following.get(s)!;
          for (let i = 0; i < each.count; i++) ledger.receive(entry(s, position.next++));
          received.set(s, received.get(s)! + each.count);
        } else if (each.kind === "give") {
          given.push(...ledger.give(Math.min(each.count, ledger.next(each.count).length)));
        } else if (each.kind === "confirm") {
          const count = Math.min(each.count, given.length);
          for (const done of given.splice(0, count)) {
            const key = `${done.from} ${done.seq}`;
            expect(confirmedNow.has(key)).toBe(false);
            confirmedNow.add(key);
            confirmedEver.add(key);
          }
          ledger.confirm(count, each.undeliverable ? "undeliverable" : "delivered");
        } else if (each.kind === "refused") {
          expect(ledger.giveBack()).toEqual(given);
          given = [];
        } else if (each.kind === "reconnect") {
          connect(servers[each.from]!);
        } else {
          // --state keeps each point; a new process starts from them and the servers resend after them.
          const points = new Map<string, ResumePoint>();
          for (const s of servers) {
            const point = ledger.resumePoint(s, following.get(s));
            if (point) points.set(s, point);
          }
          ledger = new Ledger(servers, points);
          [following, given, confirmedNow, received] = [new Map(), [], new Set(), new Map(servers.map((s) => [s, 0]))];
          servers.forEach(connect);
        }
        for (const s of servers) {
          const last = ledger.resumePoint(s, following.get(s))?.last ?? 0;
          for (let seq = 1; seq <= last; seq++) expect(confirmedEver.has(`${s} ${seq}`)).toBe(true);
          const done = [...confirmedNow].filter((key) => key.startsWith(`${s} `)).length;
          expect(ledger.heldCount(s)).toBe(received.get(s)! - done);
          const { delivered, undeliverable } = ledger.counts(s);
          expect(delivered + undeliverable).toBe(done);
        }
      }
    });
  });
});
