import { describe, expect, test } from "bun:test";
import { phaseDeadline } from "./phases.ts";

const limits = { handshakeMs: 10_000, stallMs: 60_000, closingMs: 2_000 };
const times = { openedAt: 1_000, progressAt: 1_000, blockedSince: undefined, lastWrite: 1_000 };

describe("phaseDeadline", () => {
  test("handshake and resume request share one clock from the TCP accept", () => {
    expect(phaseDeadline("handshaking", times, limits, 4_000)).toBe(7_000);
    expect(phaseDeadline("resuming", times, limits, 9_000)).toBe(2_000);
    expect(phaseDeadline("resuming", times, limits, 11_500)).toBe(-500);
  });

  test("a stream with nothing waiting is checked again a --stall later, however long it was quiet", () => {
    expect(phaseDeadline("streaming", times, limits, 500_000)).toBe(60_000);
  });

  test("a stream with bytes waiting has --stall from its last sign of life: a write, progress, or the block", () => {
    const blocked = { ...times, blockedSince: 5_000, lastWrite: 4_000, progressAt: 1_000 };
    expect(phaseDeadline("streaming", blocked, limits, 65_000)).toBe(0);
    expect(phaseDeadline("streaming", { ...blocked, lastWrite: 20_000 }, limits, 65_000)).toBe(15_000);
    expect(phaseDeadline("streaming", { ...blocked, progressAt: 30_000 }, limits, 65_000)).toBe(25_000);
  });

  test("a goodbye gets the closing time from when it began", () => {
    expect(phaseDeadline("closing", times, limits, 999_999)).toBe(2_000);
  });
});
