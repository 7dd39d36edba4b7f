import { heapStats } from "bun:jsc";
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { formatJson, parseSyslog } from "../../lib.ts";
import { FUZZ_TIMEOUT, property } from "../../test/fuzz.ts";
import { type Arrival, HELD_OVERHEAD, History, PREPARED_OVERHEAD } from "./history.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const arrival = (text: string | Uint8Array, seq = 1): Arrival => ({
  message: typeof text === "string" ? Buffer.from(text) : text,
  from: "web.example.com:6514",
  server: "5f2c9a7e01b4d3c8",
  seq,
});

describe("History", () => {
  test("numbers messages from 1 in the order they came, and finds each by its id", () => {
    const history = new History(1024 * 1024);
    expect([history.first, history.next]).toEqual([1, 1]);
    const a = history.add(arrival("<13>a", 7), 1000);
    const b = history.add(arrival("<13>b", 8), 2000);
    expect([a.id, b.id, history.first, history.next]).toEqual([1, 2, 1, 3]);
    expect([history.at(1), history.at(2), history.at(0), history.at(3)]).toEqual([a, b, undefined, undefined]);
    expect(history.bytes).toBe(2 * (HELD_OVERHEAD + 5));
  });

  test("prepared, a message is the line --format json prints, and what the filter reads, lower case", () => {
    const history = new History(1024 * 1024);
    const text = "<38>Jan  5 10:11:12 Web1 SSHD[42]: Accepted KEY";
    const held = history.add(arrival(text, 7), Date.UTC(2026, 0, 5));
    const prepared = history.prepare(held);
    const context = { from: held.from, server: held.server, seq: 7, received: new Date(Date.UTC(2026, 0, 5)) };
    expect(prepared.json.toString()).toBe(formatJson(parseSyslog(Buffer.from(text)), context));
    expect([prepared.severity, prepared.host, prepared.app]).toEqual([6, "web1", "sshd"]);
    expect(prepared.lower.toString()).toBe(text.toLowerCase());
    expect(held.raw).toBeUndefined(); // the JSON holds it all
    expect(history.prepare(held)).toBe(prepared); // made once
    expect(history.bytes).toBe(PREPARED_OVERHEAD + prepared.json.length + prepared.lower.length);
  });

  test("a message's bytes are its own: the buffer it came in may be reused", () => {
    const history = new History(1024 * 1024);
    const buffer = Buffer.from("<13>original");
    const held = history.add(arrival(buffer), 0);
    buffer.fill(0x41);
    expect(JSON.parse(history.prepare(held).json.toString()).message).toBe("original");
  });

  test("the bound pushes out the oldest, keeps the newest, and counts one-byte messages at their overhead", () => {
    const limit = 100 * HELD_OVERHEAD;
    const history = new History(limit);
    for (let i = 1; i <= 10_000; i++) history.add(arrival("x", i), 0);
    expect(history.bytes).toBeLessThanOrEqual(limit);
    expect(history.next - history.first).toBe(Math.floor(limit / (HELD_OVERHEAD + 1)));
    expect(history.at(history.first - 1)).toBeUndefined();
    expect(history.at(10_000)?.seq).toBe(10_000);
    // One message larger than the bound is held alone, until the next.
    history.add(arrival("y".repeat(limit * 2)), 0);
    expect([history.first, history.next]).toEqual([10_001, 10_002]);
  });

  test("preparing may push out older messages; one prepared after it left is not counted again", () => {
    const history = new History(2 * HELD_OVERHEAD + PREPARED_OVERHEAD + 400);

    const old = history.add(arrival("<13>old"), 0);
    for (let i = 0; i < 3; i++) history.add(arrival("<13>next"), 0);
    const before = history.bytes;
    history.prepare(history.at(history.next - 1)!); // its JSON is larger than its bytes
    expect(history.first).toBeGreaterThan(old.id);
    const after = history.bytes;
    history.prepare(old);
    expect(history.bytes).toBe(after);
    expect(after).toBeLessThanOrEqual(history.limit);
    expect(before).toBeLessThanOrEqual(history.limit);
  });

  test("what the bound counts is what the heap holds: 16 MiB of history, prepared, takes 16 MiB of heap, about", () => {
    const limit = 16 * 1024 * 1024;
    const heap = () => {
      Bun.gc(true);
      const { heapSize } = heapStats();
      return heapSize + process.memoryUsage().arrayBuffers;
    };
    const before = heap();
    const history = new History(limit);
    for (let seq = 1; seq <= 100_000; seq++) {
      const message = `<38>Nov 27 09:14:02 web1 sshd[20611]: Accepted publickey for alice ${seq} ${"x".repeat(100)}`;

      history.prepare(history.add(arrival(message, seq), 0));
    }
    const grown = heap() - before;
    expect(history.bytes).toBeGreaterThan(limit * 0.99);
    // The garbage of preparing is collected; what stays is the history's, within a quarter of its bound.
    expect(grown).toBeLessThan(limit * 1.25);
    expect(grown).toBeGreaterThan(limit * 0.5);
  });

  test("any bytes make one JSON line, and the bound holds through any mix of adding and preparing", () => {
    property(
      fc.array(fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.boolean()), { maxLength: 60 }),
      fc.integer({ min: 1, max: 20_000 }),
      (steps, limit) => {
        const history = new History(limit);
        for (const [bytes, prepare] of steps) {
          const held = history.add(arrival(bytes), 0);
          if (prepare) {
            const { json } = history.prepare(held);
            expect(json.at(-1)).toBe(0x0a);
            expect(json.indexOf(0x0a)).toBe(json.length - 1);
            expect(json.includes(0x0d)).toBe(false);
            JSON.parse(json.toString());
          }
          if (history.next - history.first > 1) expect(history.bytes).toBeLessThanOrEqual(limit);
        }
      },
    );
  });
});
