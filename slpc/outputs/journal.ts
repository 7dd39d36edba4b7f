// --forward journal[:PATH]: each message as one entry of journald's native protocol (lib/journal_entry.ts),
// one datagram each, over a socket connected to journald's. A full queue is backpressure: the
// servers are not read, and slpc waits for room in poll(2), since journald's queue holds 11
// datagrams (net.unix.max_dgram_qlen) and a timer's wait would cap the rate at 11 a wait.
//
// A message is confirmed once journald has read it, not once its socket took it: journald started
// without systemd owns its socket and drops what waits there when it stops (11 messages in a trial).
// What it had not read then goes again; what it read and slpc had not yet heard of comes twice,
// and the failure line says how many may. Under systemd the socket outlives journald, and so does
// its queue: a restart is only a pause. An entry larger than a datagram goes in a sealed memfd.

import {
  type Entry,
  Fifo,
  journalEntry,
  MAX_SD_NAMES,
  parseSyslog,
  reason,
  SdFieldNames,
  surelyRead,
  UnixDatagramConnection,
} from "../../lib.ts";
import { Output, type OutputOptions } from "./output.ts";

/** How long one send waits in poll(2) for room, at most: longer, and journald is stuck, and a timer takes over. */
const ROOM_WAIT_MS = 1;
/** How long the servers' messages may keep the event loop waiting for room before other events get their turn. */
const SEND_TURN_MS = 10;
/** After journald made no room for ROOM_WAIT_MS, how long before its queue is tried again. */
const FULL_RETRY_MS = 5;
/** How often journald is asked whether it read everything sent, while something is unconfirmed. */
const SETTLE_MS = 2;
/** Messages that could not go at all are said at most this often, with the count. */
const REFUSED_LINE_MS = 60_000;
/** Errors of a send that mean journald's socket went away: what it had not read goes again. */
const GONE = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTCONN", "EPIPE", "ENOENT"]);

export interface JournalOptions<S> extends OutputOptions<S> {
  /** journald's native socket. */
  path: string;
  /** How SLP_FROM names a server: the --server it was given as. */
  from: (server: S) => string;
  /** SO_SNDBUF of the socket, which bounds a datagram; default net.core.wmem_default. Tests make it small. */
  sendBuffer?: number;
}

export class JournalOutput<S> extends Output<S> {
  readonly #from: (server: S) => string;
  readonly #socket: UnixDatagramConnection;
  /** The structured-data field names this run writes, up to MAX_SD_NAMES. */
  readonly #names = new SdFieldNames();
  #namesFullSaid = false;
  /** The entry of the message first in line: a full queue sends it again, unchanged. */
  #pending: { message: Entry<S>; entry: Uint8Array } | undefined;
  /** journald had no room at the last try; the next try clears it. */
  #queueFull = false;
  /** The size of each datagram given and not confirmed, oldest first: what tells how many journald has read. */
  readonly #unconfirmed = new Fifo<number>();
  #settleTimer: Timer | undefined;
  /** Messages sent again after journald went away, since the last line said so. */
  #sentAgain = 0;
  /** Messages that could not go at all since the last line about them, and when that was. */
  #refused = { unsaid: 0, saidAt: Number.NEGATIVE_INFINITY };
  /** Why the last refused message could not go in a memfd either. */
  #refusedBecause = "";
  #encodeFailed = false;

  constructor(options: JournalOptions<S>) {
    super(options);
    this.#from = options.from;
    this.#socket = new UnixDatagramConnection(options.path, { sendBuffer: options.sendBuffer });
  }

  override get full(): boolean {
    return this.failing || this.#queueFull;
  }

  override close(): void {
    super.close();
    clearTimeout(this.#settleTimer);
    this.#socket.close();
  }

  unconfirmed(count: number, seconds: number): string {
    return `${this.name} did not read ${count} messages within ${seconds} s; --state records only what it read`;
  }

  protected override get question(): string {
    return "is systemd-journald running?";
  }

  protected sendWaiting(): void {
    this.#queueFull = false;
    // With nothing to send, journald is dialled only to end a failure: the servers are not read until it is.
    const dial = this.failing || this.ledger.next(1).length > 0;
    if (!this.#socket.connected && dial && !this.#connect()) return;
    const turnEnds = performance.now() + SEND_TURN_MS;
    for (;;) {
      const next = this.ledger.next(1)[0];
      if (!next || this.allowed(1) === 0) break;
      const entry = this.#entry(next);
      let result: "sent" | "sealed" | "full" | "refused";
      try {
        result = this.#send(entry);
      } catch (error) {
        if (GONE.has((error as NodeJS.ErrnoException).code ?? "")) return this.#lost(error);
        // Not allowed (EACCES) or short of memory: the messages stay, and the servers hold the rest.
        this.sendFailed(error);
        return;
      }
      this.failing = false;
      if (result === "full") {
        // journald reads a datagram in microseconds: poll(2) finds the room far sooner than a timer.
        if (performance.now() < turnEnds && this.#socket.waitWritable(ROOM_WAIT_MS)) continue;
        this.#queueFull = true;
        this.later(performance.now() < turnEnds ? FULL_RETRY_MS : 1);
        break;
      }
      if (result === "refused" && this.ledger.given > 0) {
        // The ledger confirms in order: those before it first, once journald read them.
        this.later(SETTLE_MS);
        break;
      }
      this.#pending = undefined;
      this.ledger.give(1);
      if (result === "refused") this.#skip(next.message.length);
      // A sealed memfd travels in an empty datagram.
      else this.#unconfirmed.push(result === "sent" ? entry.length : 0);
    }
    this.#settle();
  }

  #connect(): boolean {
    try {
      this.#socket.connect();
      this.failing = false;
      return true;
    } catch (error) {
      this.sendFailed(error);
      return false;
    }
  }

  /** The entry of `message`, made once however often a full queue sends it. */
  #entry(message: Entry<S>): Uint8Array {
    if (this.#pending?.message === message) return this.#pending.entry;
    const context = { from: this.#from(message.from), server: message.server, seq: message.seq };
    let entry: Uint8Array;
    try {
      entry = journalEntry(parseSyslog(message.message), context, this.#names);
    } catch (error) {
      // A bug must not stop the stream at the message that shows it: that message goes as unparsed bytes.
      if (!this.#encodeFailed) this.log(`forward to ${this.name}: ${reason(error)}; writing such messages unparsed`);
      this.#encodeFailed = true;
      entry = journalEntry({ message: message.message, utf8: false, format: "unknown" }, context, this.#names);
    }
    if (this.#names.full && !this.#namesFullSaid) {
      this.log(
        `forward to ${this.name}: ${MAX_SD_NAMES} structured-data field names in use; parameters with other ` +
          "names go into SLP_SD_OTHER from now on (restart slpc to start afresh)",
      );
      this.#namesFullSaid = true;
    }
    this.#pending = { message, entry };
    return entry;
  }

  /**
   * One entry, as a datagram or, larger than the socket carries (EMSGSIZE: SO_SNDBUF,
   * net.core.wmem_default), in a sealed memfd as the protocol provides. "refused" when neither
   * can carry it: a kernel without memfd, or out of descriptors.
   */
  #send(entry: Uint8Array): "sent" | "sealed" | "full" | "refused" {
    try {
      return this.#socket.send(entry);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EMSGSIZE" && code !== "ENOBUFS") throw error;
    }
    try {
      return this.#socket.sendSealed(entry) === "sent" ? "sealed" : "full";
    } catch (error) {
      if (GONE.has((error as NodeJS.ErrnoException).code ?? "")) throw error;
      this.#refusedBecause = reason(error);
      return "refused";
    }
  }

  /**
   * A message no way of the protocol could carry would stall every message behind it: it is
   * skipped, counted (`undeliverable`) and said, at most once a minute with the count.
   */
  #skip(bytes: number): void {
    this.ledger.confirm(1, "undeliverable");
    const refused = this.#refused;
    refused.unsaid++;
    if (performance.now() - refused.saidAt < REFUSED_LINE_MS) return;
    const count = refused.unsaid > 1 ? `${refused.unsaid} messages` : "a message";
    const why = `a memfd could not carry either: ${this.#refusedBecause}; ${bytes} bytes the last`;
    this.log(
      `forward to ${this.name}: skipped ${count} larger than a datagram, which ${why}; raise net.core.wmem_default`,
    );
    this.#refused = { unsaid: 0, saidAt: performance.now() };
  }

  /**
   * Confirms what journald has read. SIOCOUTQ says how much of what was sent it has not read yet,
   * which is the newest of it (surelyRead); the rest it read, unless it went away and dropped it,
   * which also leaves nothing unread: an empty datagram tells which. A timer asks again while
   * anything is unconfirmed.
   */
  #settle(): void {
    if (this.ledger.given === 0 || this.#settleTimer || !this.#socket.connected) return;
    try {
      const read = surelyRead(this.#unconfirmed, this.#socket.unread());
      if (read > 0) {
        this.#socket.send(new Uint8Array(0));
        this.ledger.confirm(read);
        this.#unconfirmed.shiftMany(read);
        this.changed();
      }
    } catch (error) {
      return this.#lost(error);
    }
    if (this.ledger.given === 0) return;
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = undefined;
      this.#settle();
    }, SETTLE_MS);
  }

  /**
   * journald's socket went away (journald stopped, and it owned it): what it had not read is gone
   * with it, so everything unconfirmed goes again, in order, on a new connection.
   */
  #lost(error: unknown): void {
    this.#socket.close();
    clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
    this.#unconfirmed.shiftMany(this.#unconfirmed.length);
    this.#sentAgain += this.ledger.giveBack().length;
    const twice = `${this.#sentAgain} messages sent again, which come twice where journald read them before it went`;
    if (this.sendFailed(error, this.#sentAgain > 0 ? `; ${twice}` : "")) this.#sentAgain = 0;
    this.changed();
  }
}
