import { describe, expect, test } from "bun:test";
import { FRAME_INDEX_BYTES, ResumeBuffer } from "./resume_buffer.ts";

const bytes = (text: string) => Buffer.from(text, "latin1");

describe("ResumeBuffer", () => {
  const message = (n: number) => bytes("x".repeat(n));

  test("numbers frames from 1 and forgets the oldest past its limit", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 5; i++) expect(buffer.append(message(8))).toBe(i + 1); // 10 bytes each
    buffer.trim(3 * (10 + FRAME_INDEX_BYTES)); // a frame costs its bytes and its place in the index
    expect([buffer.first, buffer.next, buffer.bytes]).toEqual([3, 6, 30]);
    expect(buffer.frame(3).toString()).toBe("8 xxxxxxxx");
  });

  test("a flood of one-byte messages keeps no more frames than their bytes and index fit in the limit", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 10_000; i++) {
      buffer.append(message(1));
      buffer.trim(1900);
    }
    expect(buffer.next - buffer.first).toBe(Math.floor(1900 / (3 + FRAME_INDEX_BYTES)));
  });

  test("keeps what a connected client still needs, over the limit", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 5; i++) buffer.append(message(8));
    buffer.trim(0, 2);
    expect(buffer.first).toBe(2);
    buffer.trim(0);
    expect([buffer.first, buffer.bytes]).toEqual([6, 0]);
  });

  test("tells how far behind a position is and where to catch up to", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 0; i < 5; i++) buffer.append(message(8));
    expect(buffer.behind(1)).toBe(50);
    expect(buffer.behind(5)).toBe(10);
    expect(buffer.behind(6)).toBe(0);
    expect(buffer.catchUpPoint(25)).toBe(4);
    expect(buffer.catchUpPoint(0)).toBe(6);
  });

  test("a frame that does not fit before the ring's end goes to its start, and what it overwrites is forgotten", () => {
    const buffer = new ResumeBuffer(0); // the smallest ring: room for two of the largest frames
    const big = (fill: number) => Buffer.alloc(60_000, fill);
    for (const fill of [0x61, 0x62, 0x63]) buffer.append(big(fill));
    expect([buffer.first, buffer.next]).toEqual([2, 4]);
    expect(buffer.frame(2).subarray(6)).toEqual(big(0x62));
    expect(buffer.frame(3).subarray(6)).toEqual(big(0x63));
    // Frames on both sides of the wrap are never one view.
    expect(buffer.span(2, 1 << 20)).toMatchObject({ next: 3 });
    expect(buffer.bytes).toBe(2 * 60_006);
  });

  test("span gives neighbouring frames as one view, up to a size", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (const text of ["a", "bb", "ccc"]) buffer.append(bytes(text));
    expect(Buffer.from(buffer.span(1, 100).data).toString()).toBe("1 a2 bb3 ccc");
    expect(buffer.span(1, 100).next).toBe(4);
    expect(Buffer.from(buffer.span(1, 7).data).toString()).toBe("1 a2 bb");
    expect(Buffer.from(buffer.span(3, 1).data).toString()).toBe("3 ccc"); // at least one frame
  });

  test("stays correct across many appends and trims", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 1; i <= 5000; i++) {
      buffer.append(bytes(String(i)));
      buffer.trim(100);
    }
    expect(buffer.next).toBe(5001);
    expect(buffer.frame(5000).toString()).toBe("4 5000");
    expect(buffer.frame(buffer.first).toString()).toBe(`4 ${buffer.first}`);
  });

  test("a ring that goes on from a run on disk numbers from there, and counts positions from there", () => {
    const buffer = new ResumeBuffer(1 << 20, 1001, 50_000);
    expect([buffer.first, buffer.next, buffer.total]).toEqual([1001, 1001, 50_000]);
    expect(buffer.append(bytes("abc"))).toBe(1001);
    expect([buffer.total, buffer.behind(1001), buffer.catchUpPoint(5)]).toEqual([50_005, 5, 1001]);
  });

  test("in memory everything from first to next is held, and stored as soon as it is appended", () => {
    const buffer = new ResumeBuffer(1 << 20);
    buffer.append(bytes("a"));
    expect([buffer.heldUntil(1), buffer.gapAt(1)]).toEqual([2, undefined]);
    const stored: number[] = [];
    buffer.whenStored(1, () => stored.push(1));
    expect(stored).toEqual([1]);
  });
});
