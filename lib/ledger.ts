// Where each message slpc received stands, on its way from a server to the output: in its
// server's inbox, in line for the output, or given to the output and not yet confirmed. The
// output takes from the inboxes in turns, so that a server replaying a backlog gets its share
// and no more; and each server's resume point is derived from what is still held, so that it
// never passes a message the output has not confirmed. Pure: the servers are whatever the caller
// names them by, and nothing here reads a clock or a socket.

import { Fifo } from "./fifo.ts";
import type { ResumePoint } from "./protocol.ts";

/** A message received and not yet confirmed: the server it came from, and the run that numbered it. */
export interface Entry<S> {
  message: Uint8Array;
  from: S;
  server: string;
  seq: number;
}

/** How a message left slpc's hands: with the output, or refused for good by it (too large for a socket). */
export type Outcome = "delivered" | "undeliverable";
/** What the ledger counts per server: each outcome, and messages given back by the output to go again. */
export type Counts = Record<Outcome | "givenBack", number>;

/** How much one server's inbox may hold before that server is not read, as an equal share of `total`. */
export interface InboxBounds {
  /** Messages and bytes in all inboxes together. */
  total: { messages: number; bytes: number };
  /** The most one inbox may hold, however few the servers. */
  each: { messages: number; bytes: number };
  /** The least one inbox may hold, however many the servers: a batch, and a message of the longest. */
  least: { messages: number; bytes: number };
}

/**
 * @example
 * ```ts
 * import { Ledger } from "./lib/ledger.ts";
 * const ledger = new Ledger(["web"], new Map());
 * ledger.receive({ message: new Uint8Array(3), from: "web", server: "run1", seq: 7 });
 * ledger.give(ledger.next(64).length); // the output has message 7
 * ledger.resumePoint("web"); // { server: "run1", last: 6 }: 7 is not confirmed yet
 * ledger.confirm(1);
 * ledger.resumePoint("web"); // { server: "run1", last: 7 }
 * ```
 */
export class Ledger<S> {
  readonly #servers: readonly S[];
  readonly #inboxes: Map<S, Fifo<Entry<S>>>;
  readonly #inboxLimit: { messages: number; bytes: number };
  /** Taken from the inboxes in turns, or given back by the output, and not given to it (again) yet. */
  #line: Entry<S>[] = [];
  /** The inbox the line takes from next. */
  #turn = 0;
  /** Given to the output and not confirmed yet, oldest first: every output confirms in order. */
  readonly #given = new Fifo<Entry<S>>((entry) => entry.message.length);
  /** The last message of each server the output confirmed, and the run it came from. */
  readonly #confirmed: Map<S, ResumePoint>;
  readonly #counts: Map<S, Counts>;

  /**
   * @param confirmed the resume points known at start (`--state`), by server
   * @param bounds how much the inboxes hold before a server is not read; default unbounded
   */
  constructor(servers: readonly S[], confirmed: ReadonlyMap<S, ResumePoint>, bounds?: InboxBounds) {
    this.#servers = servers;
    this.#inboxes = new Map(servers.map((s) => [s, new Fifo<Entry<S>>((entry) => entry.message.length)]));
    this.#confirmed = new Map(confirmed);
    this.#counts = new Map(servers.map((s) => [s, { delivered: 0, undeliverable: 0, givenBack: 0 }]));
    const share = (key: "messages" | "bytes") =>
      bounds === undefined
        ? Number.POSITIVE_INFINITY
        : Math.max(bounds.least[key], Math.min(bounds.each[key], Math.floor(bounds.total[key] / servers.length)));
    this.#inboxLimit = { messages: share("messages"), bytes: share("bytes") };
  }

  /** A message from `entry.from`, in the order it numbered them. */
  receive(entry: Entry<S>): void {
    this.#inbox(entry.from).push(entry);
  }

  /** Whether `server`'s inbox holds its share or more: it is not to be read until the output takes some. */
  inboxFull(server: S): boolean {
    const inbox = this.#inbox(server);
    return inbox.length >= this.#inboxLimit.messages || inbox.weight >= this.#inboxLimit.bytes;
  }

  /**
   * The messages next in line for the output, at least `count` when the inboxes hold that many:
   * the line is topped up from the inboxes, one from each in turn. They stay in line until given.
   */
  next(count: number): readonly Entry<S>[] {
    for (let empty = 0; this.#line.length < count && empty < this.#servers.length; ) {
      const entry = this.#inbox(this.#servers[this.#turn]!).shift();
      this.#turn = (this.#turn + 1) % this.#servers.length;
      if (entry) this.#line.push(entry);
      empty = entry ? 0 : empty + 1;
    }
    return this.#line;
  }

  /** Gives the first `count` messages in line to the output: held, until confirmed or given back. */
  give(count: number): Entry<S>[] {
    const given = this.#line.splice(0, count);
    for (const entry of given) this.#given.push(entry);
    return given;
  }

  /** The oldest `count` messages given reached their end: each server's point moves past them. */
  confirm(count: number, outcome: Outcome = "delivered"): void {
    // Confirmed in the order received: the last of each server's is its point.
    for (const { from, server, seq } of this.#given.shiftMany(count)) {
      this.#counts.get(from)![outcome]++;
      this.#confirmed.set(from, { server, last: seq });
    }
  }

  /**
   * Everything given and not confirmed goes back to the head of the line, in order: the output
   * cannot tell what of it arrived, so it goes again, and may arrive twice.
   */
  giveBack(): Entry<S>[] {
    const back = this.#given.shiftMany(this.#given.length);
    for (const { from } of back) this.#counts.get(from)!.givenBack++;
    this.#line.unshift(...back);
    return back;
  }

  /** Messages given to the output and not confirmed. */
  get given(): number {
    return this.#given.length;
  }

  /** Bytes of the messages given to the output and not confirmed. */
  get givenBytes(): number {
    return this.#given.weight;
  }

  /** The oldest message of `server` held: given and unconfirmed, in line, or in its inbox. */
  oldestHeld(server: S): Entry<S> | undefined {
    const from = (entry: Entry<S>) => entry.from === server;
    return this.#given.find(from) ?? this.#line.find(from) ?? this.#inbox(server).at(0);
  }

  /** The newest message of `server` held: what a reconnect resumes after, since all of it goes out first. */
  newestHeld(server: S): Entry<S> | undefined {
    const from = (entry: Entry<S>) => entry.from === server;
    return this.#inbox(server).at(-1) ?? this.#line.findLast(from) ?? this.#given.findLast(from);
  }

  /** How many messages of `server` are held, wherever they are. */
  heldCount(server: S): number {
    let count = this.#inbox(server).length;
    for (const entry of this.#line) count += +(entry.from === server);
    for (const entry of this.#given) count += +(entry.from === server);
    return count;
  }

  /** Messages of `server` delivered, refused for good, and given back to go again, since start. */
  counts(server: S): Readonly<Counts> {
    return this.#counts.get(server)!;
  }

  /**
   * Where to resume `server`: just before the oldest message held, since held messages go out in
   * order; with none held, at `following` (the server's next number, which a gap or a restart may
   * have moved past the last confirmed), or at the last confirmed.
   */
  resumePoint(server: S, following?: { server: string; next: number }): ResumePoint | undefined {
    const oldest = this.oldestHeld(server);
    if (oldest) return { server: oldest.server, last: oldest.seq - 1 };
    return following ? { server: following.server, last: following.next - 1 } : this.#confirmed.get(server);
  }

  #inbox(server: S): Fifo<Entry<S>> {
    const inbox = this.#inboxes.get(server);
    if (inbox === undefined) throw new Error("a server the ledger does not follow");
    return inbox;
  }
}
