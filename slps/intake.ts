// The seam between slps's inputs and its resume buffer: every input (udp, tcp, relp, unix) hands
// its messages here, and the acknowledged ones learn from it when to answer and when to wait.

import type { ClientStream } from "../lib/client_stream.ts";
import { MAX_FRAME, MAX_MESSAGE } from "../lib/framing.ts";
import { FRAME_INDEX_BYTES, type ResumeStore } from "../lib/resume_buffer.ts";

/** Where every input (udp, tcp, relp, unix) hands its messages. */
export interface Intake {
  /**
   * Takes one message: returns its sequence number, or undefined when it was skipped (empty, or over
   * MAX_MESSAGE) and counted as today's `skipped` counters count it.
   */
  receive(message: Uint8Array): number | undefined;
  /**
   * Calls `done` once message `seq` is as safe as slps makes it: at once when the buffer is in memory;
   * with --buffer-dir, once written (and fsynced, if --fsync says so). RELP acknowledges from here.
   */
  whenStored(seq: number, done: () => void): void;
  /**
   * False while taking another message would make the buffer forget one that no client has been
   * sent yet: acknowledged inputs (tcp, relp, unix) then stop reading, which is the daemon's
   * backpressure. UDP cannot wait and goes on as today (the oldest are forgotten).
   */
  hasRoom(): boolean;
  /** Calls `callback` (once) when hasRoom() turns true again. */
  onRoom(callback: () => void): void;
}

/** What the intake needs of a streaming client: where its stream stands. */
interface Streaming {
  data: { stream: ClientStream };
}

/**
 * The intake over slps's resume buffer: a message goes into the buffer, which is trimmed to
 * --buffer but keeps what a streaming client has not been sent yet, and every client is flushed.
 */
export class BufferIntake implements Intake {
  #store: ResumeStore;
  /** --buffer. */
  #limit: number;
  #streaming: ReadonlySet<Streaming>;
  #flush: () => void;
  /** Inputs that wait for room in the buffer, each called once when it comes. */
  #waiters: (() => void)[] = [];
  /** The first message that no client which has left was sent; those streaming say it with their cursors. */
  #sentBeforeLeaving = 1;

  constructor(store: ResumeStore, limit: number, streaming: ReadonlySet<Streaming>, flush: () => void) {
    this.#store = store;
    this.#limit = limit;
    this.#streaming = streaming;
    this.#flush = flush;
  }

  /**
   * An empty message, or one over MAX_MESSAGE, is skipped: as the frame `0 ` or one over the limit,
   * slpc would refuse the stream, and reconnect to the same frame for ever.
   */
  receive(message: Uint8Array): number | undefined {
    if (message.length === 0 || message.length > MAX_MESSAGE) return undefined;
    const seq = this.#store.append(message);
    let keepFrom = this.#store.next;
    for (const { data } of this.#streaming) {
      data.stream.keepWithinLimit();
      keepFrom = Math.min(keepFrom, data.stream.cursor!);
    }
    this.#store.trim(this.#limit, keepFrom);
    this.#flush();
    return seq;
  }

  whenStored(seq: number, done: () => void): void {
    this.#store.whenStored(seq, done);
  }

  /**
   * Whether a message taken now forgets none that no client was sent: the daemon's backpressure. A
   * streaming client keeps all it was not sent (the trim keeps from its cursor, and past --queue it is
   * told what it missed); with none, what nobody was sent and a message of the longest size fit --buffer.
   */
  hasRoom(): boolean {
    if (this.#streaming.size > 0) return true;
    const store = this.#store;
    const from = Math.max(this.#sentBeforeLeaving, store.first);
    const unsent = store.behind(from) + FRAME_INDEX_BYTES * (store.next - from);
    return unsent + MAX_FRAME + FRAME_INDEX_BYTES <= this.#limit;
  }

  onRoom(callback: () => void): void {
    this.#waiters.push(callback);
  }

  /** A client starts streaming: the inputs that wait may read again. */
  clientStreams(): void {
    if (this.#waiters.length > 0 && this.hasRoom()) for (const callback of this.#waiters.splice(0)) callback();
  }

  /** A streaming client leaves: what it was sent stays sent. */
  clientLeaves(stream: ClientStream): void {
    this.#sentBeforeLeaving = Math.max(this.#sentBeforeLeaving, stream.cursor!);
  }
}
