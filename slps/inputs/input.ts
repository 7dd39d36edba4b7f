// What every input of slps shares: its address and counts, how it hands a message to the intake
// and counts it, and the lines it says at most once a second, so that no sender can flood the
// log. The inputs that can make their sender wait (tcp, relp, unix) keep what they read while the
// intake has no room in a Handoff, and stop reading meanwhile. Each kind's file holds only what
// differs: its socket, its framing, and what it answers.

import { Fifo, formatInputAddress, type InputAddress, type InputNumbers, MAX_MESSAGE } from "../../lib.ts";
import type { Intake } from "../intake.ts";

export type { InputNumbers };

export interface InputOptions {
  intake: Intake;
  log: (line: string) => void;
}

export abstract class Input {
  readonly address: InputAddress;
  readonly #counts = { received: 0, receivedBytes: 0, skipped: { empty: 0, oversize: 0 } };
  /** `skipped` as the last line about it said it: the difference is what is new. */
  readonly #skippedSaid = { empty: 0, oversize: 0 };
  /** Events said at most once a second, by what happened: how many since the last line, and the latest's detail. */
  readonly #events = new Map<string, { count: number; detail: string }>();
  protected readonly intake: Intake;
  /** Where this input's connections wait for room in the intake. */
  protected readonly room: RoomLine;
  readonly #log: (line: string) => void;

  constructor(address: InputAddress, options: InputOptions) {
    this.address = address;
    this.intake = options.intake;
    this.room = new RoomLine(options.intake);
    this.#log = options.log;
  }

  /** The input as --input writes it. */
  get name(): string {
    return formatInputAddress(this.address);
  }

  /** What a message is called on this input, in log lines. */
  protected abstract get unit(): string;

  /** Opens the socket; throws when it cannot, for the caller to say why and exit. */
  abstract open(): Promise<void>;

  /** slps stops: says goodbye where the protocol has a word for it, and lets go of the socket. */
  abstract close(): void;

  /** Once a second: deadlines, and the lines about what happened since the last call. */
  housekeeping(_now: number): void {
    const { skipped } = this.#counts;
    const [empty, oversize] = [skipped.empty - this.#skippedSaid.empty, skipped.oversize - this.#skippedSaid.oversize];
    const unit = this.unit;
    if (empty > 0)
      this.log(`skipped ${empty} empty ${unit}: an empty message cannot be relayed (${skipped.empty} in all)`);
    if (oversize > 0) {
      this.log(
        `skipped ${oversize} ${unit} over ${MAX_MESSAGE} bytes, too long for a frame (${skipped.oversize} in all)`,
      );
    }
    Object.assign(this.#skippedSaid, skipped);
    for (const [what, { count, detail }] of this.#events) {
      this.log(count === 1 ? `${what}: ${detail}` : `${what} ${count} times, the last: ${detail}`);
    }
    this.#events.clear();
  }

  numbers(): InputNumbers {
    const { received, receivedBytes, skipped } = this.#counts;
    return { input: this.name, kind: this.address.kind, received, receivedBytes, skipped: { ...skipped } };
  }

  /** Hands one message to the intake and counts it; its sequence number, or undefined when it was skipped. */
  protected take(message: Uint8Array): number | undefined {
    const seq = this.intake.receive(message);
    if (seq === undefined) {
      this.#counts.skipped[message.length === 0 ? "empty" : "oversize"]++;
    } else {
      this.#counts.received++;
      this.#counts.receivedBytes += message.length;
    }
    return seq;
  }

  /** A message over MAX_MESSAGE that was read through, never held: counted as skipped. */
  protected skipOversize(): void {
    this.#counts.skipped.oversize++;
  }

  /** Says `detail` in the next second's lines, under `what`; more of the same `what` are counted, not said. */
  protected note(what: string, detail: string): void {
    const event = this.#events.get(what);
    if (event) [event.count, event.detail] = [event.count + 1, detail];
    else this.#events.set(what, { count: 1, detail });
  }

  protected log(line: string): void {
    this.#log(`input ${this.name}: ${line}`);
  }
}

/**
 * An input's connections that wait for room in the intake, which is asked once for all of them:
 * one that closes leaves the line, so that connections a peer opens and closes while slps holds
 * back cost nothing once gone, however many there were.
 */
export class RoomLine {
  readonly #intake: Intake;
  readonly #waiting = new Set<() => void>();
  #asked = false;

  constructor(intake: Intake) {
    this.#intake = intake;
  }

  hasRoom(): boolean {
    return this.#intake.hasRoom();
  }

  /** Calls `callback` once when the intake has room; returns what takes it out of the line before. */
  onRoom(callback: () => void): () => void {
    this.#waiting.add(callback);
    if (!this.#asked) {
      this.#asked = true;
      this.#intake.onRoom(() => this.#wake());
    }
    return () => this.#waiting.delete(callback);
  }

  #wake(): void {
    this.#asked = false;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const callback of waiting) callback();
  }
}

/**
 * What one sender's input read and has not handed on yet, in order: an item that needs room waits
 * while the intake has none, and the ones behind it with it. Items are taken from what is offered
 * only as they are handed on, so that a deframer's lazy frames wait as the bytes they are read from,
 * not as an object each (an empty line is one byte). `changed` is called when it starts or stops
 * waiting, so that the input stops or goes on reading.
 *
 * @example
 * const frames = new Handoff(room, (frame) => input.take(frame), () => true, () => socket.pause());
 * frames.offer(deframer.frames(chunk)); // handed on now, or as soon as the intake has room
 */
export class Handoff<T> {
  /** What was offered, each read as far as it was handed on. */
  readonly #sources = new Fifo<Iterator<T>>();
  /** The next item, taken from its source and not handed on yet, while `#hasNext`. */
  #next: T | undefined;
  #hasNext = false;
  readonly #room: RoomLine;
  readonly #hand: (item: T) => void;
  readonly #needsRoom: (item: T) => boolean;
  readonly #changed: () => void;
  /** Takes this out of the room's line, while it waits there. */
  #leaveLine: (() => void) | undefined;
  #dropped = false;

  constructor(room: RoomLine, hand: (item: T) => void, needsRoom: (item: T) => boolean, changed: () => void) {
    this.#room = room;
    this.#hand = hand;
    this.#needsRoom = needsRoom;
    this.#changed = changed;
  }

  /** Items wait for room in the intake. */
  get waiting(): boolean {
    return this.#hasNext || this.#sources.length > 0;
  }

  /** Hands on `items` after those already waiting: at once where the intake has room. */
  offer(items: Iterable<T>): void {
    if (this.#dropped) return;
    const wasWaiting = this.waiting;
    this.#sources.push(items[Symbol.iterator]());
    if (!wasWaiting) this.#run();
  }

  /** Forgets what waits, and takes nothing more: its sender will send it again. */
  drop(): void {
    this.#dropped = true;
    this.#sources.shiftMany(this.#sources.length);
    [this.#next, this.#hasNext] = [undefined, false];
    this.#leaveLine?.();
    this.#leaveLine = undefined;
  }

  #run(): void {
    while (!this.#dropped && this.#peek()) {
      const item = this.#next as T;
      if (this.#needsRoom(item) && !this.#room.hasRoom()) return this.#waitForRoom();
      [this.#next, this.#hasNext] = [undefined, false];
      this.#hand(item);
    }
    this.#changed();
  }

  /** Takes the next item from its source, unless taken already; false when there is none. */
  #peek(): boolean {
    while (!this.#hasNext && this.#sources.length > 0) {
      const result = this.#sources.at(0)!.next();
      if (result.done) this.#sources.shift();
      else [this.#next, this.#hasNext] = [result.value, true];
    }
    return this.#hasNext;
  }

  #waitForRoom(): void {
    this.#leaveLine ??= this.#room.onRoom(() => {
      this.#leaveLine = undefined;
      this.#run();
    });
    this.#changed();
  }
}
