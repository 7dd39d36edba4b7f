import { describe, expect, test } from "bun:test";
import { HandshakeLimiter, nextBackoff, TokenBucket } from "./limits.ts";

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

describe("TokenBucket", () => {
  test("allows a burst, then the rate, and says how long to wait", () => {
    const limit = new TokenBucket(1000, 3, 0); // one a millisecond, three at once
    expect([limit.take(0), limit.take(0), limit.take(0), limit.take(0)]).toEqual([true, true, true, false]);
    expect(limit.wait()).toBe(1);
    expect(limit.take(0.5)).toBe(false);
    expect(limit.take(1)).toBe(true);
    expect(limit.take(100)).toBe(true); // a long pause refills no more than the burst
    expect([limit.take(100), limit.take(100), limit.take(100)]).toEqual([true, true, false]);
  });
});

describe("HandshakeLimiter", () => {
  test("says whether an event is over the key's rate or the table of keys is full", () => {
    const limit = new HandshakeLimiter(2, 1000, 2);
    expect([limit.allow("a", 0), limit.allow("a", 1), limit.allow("a", 2)]).toEqual(["allowed", "allowed", "rate"]);
    expect(limit.allow("b", 3)).toBe("allowed");
    expect(limit.allow("c", 4)).toBe("full");
    expect(limit.allow("c", 1000)).toBe("allowed"); // a's window ended, so its place is free again
  });
});

describe("HandshakeLimiter with a full table", () => {
  test("a new address costs about what a counted one does, not a walk through the table", () => {
    // 50,000 addresses in a minute are one IPv6 /64's worth: before, each further new address
    // walked all of them (0.57 ms), and 1,750 connections a second took slps's whole thread.
    const full = new HandshakeLimiter(60, 60_000);
    for (let i = 0; i < 50_000; i++) full.allow(`2001:db8::${i.toString(16)}`, i / 1000);
    const roomy = new HandshakeLimiter(60, 60_000);
    const time = (limiter: HandshakeLimiter, prefix: string) => {
      const started = performance.now();
      for (let i = 0; i < 2000; i++) limiter.allow(`${prefix}${i.toString(16)}`, 100 + i / 1000);
      return performance.now() - started;
    };
    time(roomy, "2001:db8:2::"); // warm up
    const counted = time(roomy, "2001:db8:3::");
    const refused = time(full, "2001:db8:4::");
    expect(full.allow("2001:db8:5::1", 200)).toBe("full");
    // A generous factor for a shared machine: measured 1 to 2, against about 500 before.
    expect(refused).toBeLessThan(20 * counted + 5);
  });

  test("the oldest window that ended gives its place, also when its address came back since", () => {
    const limit = new HandshakeLimiter(5, 1000, 2);
    expect([limit.allow("a", 0), limit.allow("b", 500), limit.allow("a", 1000)]).toEqual([
      "allowed",
      "allowed",
      "allowed",
    ]);
    expect(limit.allow("c", 1600)).toBe("allowed"); // b's window ended at 1500; a's began again at 1000
    expect(limit.allow("d", 1700)).toBe("full"); // a's and c's are open
    expect(limit.allow("d", 2000)).toBe("allowed"); // a's ended
  });
});
