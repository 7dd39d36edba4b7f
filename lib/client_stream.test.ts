import { describe, expect, test } from "bun:test";
import { ClientStream, MAX_SCAN } from "./client_stream.ts";
import { Deframer } from "./framing.ts";
import { type Gap, ResumeBuffer } from "./resume_buffer.ts";

const bytes = (text: string) => Buffer.from(text, "latin1");

/** The log messages and control messages in `stream`, as a client would read them. */
function deframe(stream: Buffer) {
  const messages: Buffer[] = [];
  const controls: string[] = [];
  for (const frame of new Deframer(65507).push(stream)) {
    if (frame.control) controls.push(Buffer.from(frame.body).toString());
    else messages.push(Buffer.from(frame.body));
  }
  return { messages, controls };
}

describe("ClientStream", () => {
  /** A socket that takes at most `room` bytes per call. */
  const socket = (room: number) => {
    const written: Buffer[] = [];
    return {
      written,
      write: (data: Uint8Array) => {
        written.push(Buffer.from(data.subarray(0, room)));
        return Math.min(room, data.length);
      },
    };
  };
  const filled = (...messages: string[]) => {
    const buffer = new ResumeBuffer(1 << 20);
    for (const message of messages) buffer.append(bytes(message));
    return buffer;
  };

  test("writes control frames, then data from its start, coalesced into one write", () => {
    const buffer = filled("a", "b", "c");
    const stream = new ClientStream(buffer, 1000, 0);
    stream.start({ type: "start", seq: 2 });
    const sink = socket(1000);
    stream.flush(sink.write, 1);
    expect(sink.written.map(String)).toEqual(['!24 {"type":"start","seq":2}1 b1 c']);
    expect(stream.idle).toBe(true);
    expect(stream.lastWrite).toBe(1);
  });

  test("sends nothing but control frames before it has started", () => {
    const stream = new ClientStream(filled("a"), 1000, 0);
    stream.control({ type: "heartbeat" });
    const sink = socket(1000);
    stream.flush(sink.write, 0);
    expect(Buffer.concat(sink.written).toString()).toBe('!20 {"type":"heartbeat"}');
  });

  test("keeps what a short write did not take, continues there, and knows since when it is blocked", () => {
    const buffer = filled("hello", "world");
    const stream = new ClientStream(buffer, 1000, 0);
    stream.cursor = 1;
    const slow = socket(4);
    stream.flush(slow.write, 5);
    expect(stream.blockedSince).toBe(5);
    expect(stream.midWrite).toBe(true);
    const fast = socket(1000);
    stream.flush(fast.write, 9);
    expect(Buffer.concat([...slow.written, ...fast.written]).toString()).toBe("5 hello5 world");
    expect(stream.blockedSince).toBeUndefined();
  });

  test("a client too far behind skips its oldest messages, counts them, and is told where it resumes", () => {
    const buffer = filled("one", "two", "three");
    const stream = new ClientStream(buffer, 10, 0);
    stream.cursor = 1;
    buffer.append(bytes("four"));
    stream.keepWithinLimit();
    expect(stream.cursor).toBe(4);
    expect(stream.takeDropped()).toBe(3);
    expect(stream.takeDropped()).toBe(0);
    const sink = socket(1000);
    stream.flush(sink.write, 0);
    const text = Buffer.concat(sink.written).toString();
    const deframed = deframe(Buffer.from(text));
    expect(JSON.parse(deframed.controls[0]!)).toEqual({
      type: "start",
      seq: 4,
      lost: 3,
      reason: "client too slow: more than 10 bytes waiting",
    });
    expect(deframed.messages.map(String)).toEqual(["four"]);
  });

  test("what a short write left waits intact while the ring is overwritten under it", () => {
    const buffer = new ResumeBuffer(0);
    const big = (fill: number) => Buffer.alloc(60_000, fill);
    buffer.append(big(0x61));
    const stream = new ClientStream(buffer, 1 << 20, 0);
    stream.cursor = 1;
    const slow = socket(10);
    stream.flush(slow.write, 0);
    buffer.append(big(0x62));
    buffer.append(big(0x63)); // wraps to the ring's start, over frame 1
    stream.keepWithinLimit();
    const fast = socket(1 << 20);
    stream.flush(fast.write, 0);
    const frames = deframe(Buffer.concat([...slow.written, ...fast.written]));
    expect(frames.messages).toEqual([big(0x61), big(0x62), big(0x63)]);
    expect(frames.controls).toEqual([]);
  });

  test("a client whose next frames the ring has forgotten skips to what it holds, and is told", () => {
    const buffer = new ResumeBuffer(0);
    const stream = new ClientStream(buffer, 1 << 30, 0);
    stream.cursor = 1;
    for (let i = 0; i < 3; i++) buffer.append(Buffer.alloc(60_000, 0x61 + i));
    stream.keepWithinLimit();
    expect(stream.cursor).toBe(2);
    expect(stream.takeDropped()).toBe(1);
  });

  test("a closed socket (write returns -1) loses nothing from the stream's view", () => {
    const stream = new ClientStream(filled("a"), 100, 0);
    stream.cursor = 1;
    stream.flush(() => -1, 0);
    expect(stream.midWrite).toBe(true);
    expect(stream.blockedSince).toBe(0);
  });

  test("with a filter: only passing messages, a start without lost wherever the numbers jump", () => {
    const buffer = filled("a1", "b2", "b3", "a4", "a5", "b6");
    const stream = new ClientStream(buffer, 1000, 0);
    stream.filterWith((seq) => String(buffer.message(seq)).startsWith("a"));
    stream.start({ type: "start", seq: 1 });
    const sink = socket(1000);
    stream.flush(sink.write, 1);
    expect(sink.written.map(String)).toEqual(['!24 {"type":"start","seq":1}2 a1!24 {"type":"start","seq":4}2 a42 a5']);
    expect({ sent: stream.sent, filtered: stream.filtered, dropped: stream.dropped }).toEqual({
      sent: 3,
      filtered: 3,
      dropped: 0,
    });
    // Only b6 went by since: the position is told once, when asked to (instead of a heartbeat).
    expect(stream.unannouncedPosition).toBe(true);
    stream.announce();
    stream.flush(sink.write, 2);
    expect(sink.written.at(-1)!.toString()).toBe('!24 {"type":"start","seq":7}');
    expect(stream.unannouncedPosition).toBe(false);
  });

  test("with a filter, where it stands is told once when asked, and never in the middle of a write", () => {
    const buffer = filled("b1", "b2", "a3", "b4");
    const stream = new ClientStream(buffer, 1000, 0);
    stream.filterWith((seq) => String(buffer.message(seq)).startsWith("a"));
    stream.start({ type: "start", seq: 1 });
    const sink = socket(1000);
    stream.flush(sink.write, 1);
    // a3 went out after its start; b4 moved the cursor on: the client may be told it stands at #5.
    expect(stream.unannouncedPosition).toBe(true);
    stream.announce();
    stream.announce(); // once is enough
    stream.flush(sink.write, 2);
    expect(deframe(Buffer.concat(sink.written)).controls.map((c) => JSON.parse(c))).toEqual([
      { type: "start", seq: 1 },
      { type: "start", seq: 3 },
      { type: "start", seq: 5 },
    ]);
    // Mid-write: a start now would land inside a frame.
    buffer.append(bytes("a6"));
    buffer.append(bytes("b7"));
    const slow = socket(2);
    stream.flush(slow.write, 3);
    expect(stream.midWrite).toBe(true);
    expect(stream.unannouncedPosition).toBe(false);
    stream.announce();
    stream.flush(sink.write, 4);
    expect(Buffer.concat([...slow.written, sink.written.at(-1)!]).toString()).toBe("2 a6");
    expect(stream.unannouncedPosition).toBe(true);
  });

  test("with a filter, a gap not yet told carries the position itself: no start without lost before it", () => {
    const buffer = new ResumeBuffer(1 << 20);
    const stream = new ClientStream(buffer, 8, 0);
    stream.filterWith((seq) => String(buffer.message(seq)).startsWith("a"));
    stream.start({ type: "start", seq: 1 });
    for (const message of ["a1", "a2", "b3", "b4"]) buffer.append(bytes(message));
    stream.keepWithinLimit();
    expect(stream.unannouncedPosition).toBe(false);
    stream.announce();
    const sink = socket(1000);
    stream.flush(sink.write, 1);
    expect(deframe(Buffer.concat(sink.written)).controls.map((c) => JSON.parse(c))).toEqual([
      { type: "start", seq: 1 },
      { type: "start", seq: 3, lost: 2, reason: "client too slow: more than 8 bytes waiting" },
    ]);
  });

  test("with a filter, a client too slow is told only of the passing messages it lost", () => {
    const buffer = new ResumeBuffer(1 << 20);
    const stream = new ClientStream(buffer, 20, 0);
    stream.filterWith((seq) => String(buffer.message(seq)).startsWith("a"));
    stream.start({ type: "start", seq: 1 });
    for (const message of ["a1", "b2", "b3", "a4", "b5", "b6", "b7", "a8", "a9"]) {
      buffer.append(bytes(message));
      stream.keepWithinLimit();
    }
    const sink = socket(1000);
    stream.flush(sink.write, 1);
    const { messages, controls } = deframe(Buffer.concat(sink.written));
    // 20 bytes hold five frames: a1, b2, b3 and a4 were skipped, of which a1 and a4 would have passed.
    expect(messages.map(String)).toEqual(["a8", "a9"]);
    expect(controls.map((c) => JSON.parse(c))).toEqual([
      { type: "start", seq: 1 },
      { type: "start", seq: 5, lost: 2, reason: "client too slow: more than 20 bytes waiting" },
      { type: "start", seq: 8 },
    ]);
    expect({ dropped: stream.dropped, filtered: stream.filtered, sent: stream.sent }).toEqual({
      dropped: 2,
      filtered: 5,
      sent: 2,
    });
  });

  test("with a filter, one flush looks at no more than MAX_SCAN messages, and the next goes on from there", () => {
    const buffer = new ResumeBuffer(1 << 20);
    for (let i = 1; i <= 2 * MAX_SCAN + 1; i++) buffer.append(bytes(i === 2 * MAX_SCAN + 1 ? "wanted" : "other"));
    const stream = new ClientStream(buffer, 1 << 20, 0);
    const looked: number[] = [];
    stream.filterWith((seq) => {
      looked.push(seq);
      return String(buffer.message(seq)) === "wanted";
    });
    stream.start({ type: "start", seq: 1 });
    const sink = socket(1 << 20);
    stream.flush(sink.write, 1);
    expect(looked.length).toBe(MAX_SCAN);
    expect({ idle: stream.idle, midWrite: stream.midWrite }).toEqual({ idle: false, midWrite: false });
    stream.flush(sink.write, 2);
    stream.flush(sink.write, 3);
    expect(looked).toEqual(Array.from({ length: 2 * MAX_SCAN + 1 }, (_, i) => i + 1));
    expect(deframe(Buffer.concat(sink.written)).messages.map(String)).toEqual(["wanted"]);
    expect(stream.idle).toBe(true);
  });

  test("with a filter, a skip over MAX_SCAN is not parsed: the client is told an unknown number was lost", () => {
    const buffer = new ResumeBuffer(1 << 22);
    const stream = new ClientStream(buffer, 64, 0);
    const looked: number[] = [];
    stream.filterWith((seq) => {
      looked.push(seq);
      return true;
    });
    stream.start({ type: "start", seq: 1 });
    for (let i = 1; i <= 3 * MAX_SCAN; i++) buffer.append(bytes(`m${i}`));
    stream.keepWithinLimit(); // one skip over almost the whole backlog, as at a resume far behind
    expect(looked).toEqual([]);
    const sink = socket(1 << 20);
    stream.flush(sink.write, 1);
    const { controls } = deframe(Buffer.concat(sink.written));
    const gap = JSON.parse(controls[1]!);
    expect(gap).toMatchObject({ type: "start", lost: null, reason: "client too slow: more than 64 bytes waiting" });
    expect(gap.seq).toBeGreaterThan(3 * MAX_SCAN - 64);
    expect(looked.length).toBeLessThanOrEqual(MAX_SCAN);
  });

  /**
   * A buffer that lost messages `from` to `to - 1` (as a disk buffer loses a segment it cannot
   * read), and holds the rest in pieces: each `piece` messages, so that heldUntil stops short.
   */
  class LosingBuffer extends ResumeBuffer {
    constructor(
      readonly from: number,
      readonly to: number,
      readonly piece = Number.MAX_SAFE_INTEGER,
    ) {
      super(1 << 20);
    }
    override heldUntil(seq: number): number {
      if (seq >= this.from && seq < this.to) return seq;
      const pieceEnd = seq - (seq % this.piece) + this.piece;
      return Math.min(this.next, seq < this.from ? this.from : this.next, pieceEnd);
    }
    override gapAt(seq: number): Gap | undefined {
      return seq >= this.from && seq < this.to ? { next: this.to, reason: "segment s-3.seg is unreadable" } : undefined;
    }
    override frame(seq: number): Uint8Array {
      if (this.gapAt(seq)) throw new Error(`frame ${seq} asked for in the gap`);
      return super.frame(seq);
    }
    override span(seq: number, maxBytes: number): { data: Uint8Array; next: number } {
      const { data, next } = super.span(seq, maxBytes);
      const end = Math.min(next, this.heldUntil(seq));
      return { data: data.subarray(0, this.behind(seq) - this.behind(end)), next: end };
    }
  }

  test("messages the buffer lost are passed with a start that counts them and gives the buffer's reason", () => {
    const buffer = new LosingBuffer(3, 6);
    for (let i = 1; i <= 7; i++) buffer.append(bytes(`m${i}`));
    const stream = new ClientStream(buffer, 1 << 20, 0);
    stream.start({ type: "start", seq: 2 });
    const sink = socket(1 << 20);
    stream.flush(sink.write, 1);
    const { messages, controls } = deframe(Buffer.concat(sink.written));
    expect(messages.map(String)).toEqual(["m2", "m6", "m7"]);
    expect(controls.map((text) => JSON.parse(text))).toEqual([
      { type: "start", seq: 2 },
      { type: "start", seq: 6, lost: 3, reason: "segment s-3.seg is unreadable" },
    ]);
    expect(stream.idle).toBe(true);
  });

  test("with a filter, a gap is passed as lost (an unknown number: the filter might have left some out)", () => {
    const buffer = new LosingBuffer(3, 6, 2);
    for (let i = 1; i <= 9; i++) buffer.append(bytes(`m${i}`));
    const stream = new ClientStream(buffer, 1 << 20, 0);
    const looked: number[] = [];
    stream.filterWith((seq) => {
      looked.push(seq);
      return seq % 2 === 0;
    });
    stream.start({ type: "start", seq: 1 });
    const sink = socket(1 << 20);
    stream.flush(sink.write, 1);
    const { messages, controls } = deframe(Buffer.concat(sink.written));
    expect(looked).toEqual([1, 2, 6, 7, 8, 9]);
    expect(messages.map(String)).toEqual(["m2", "m6", "m8"]);
    expect(controls.map((text) => JSON.parse(text))).toEqual([
      { type: "start", seq: 1 },
      { type: "start", seq: 2 },
      { type: "start", seq: 6, lost: null, reason: "segment s-3.seg is unreadable" },
      { type: "start", seq: 8 },
    ]);
  });

  test("with a filter, a client too slow counts the messages of a gap it skips as lost, without parsing them", () => {
    const buffer = new LosingBuffer(3, 6);
    const stream = new ClientStream(buffer, 10, 0);
    const looked: number[] = [];
    stream.filterWith((seq) => {
      looked.push(seq);
      return false;
    });
    stream.start({ type: "start", seq: 1 });
    for (let i = 1; i <= 9; i++) buffer.append(bytes(`m${i}`)); // 4 bytes each: 10 bytes hold the last two
    stream.keepWithinLimit();
    expect(stream.cursor).toBe(8);
    expect(looked).toEqual([1, 2, 6, 7]);
    expect(stream.dropped).toBe(3);
  });
});
