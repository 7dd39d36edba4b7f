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
