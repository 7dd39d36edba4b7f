// One server slpc follows, across its connections (slpc/connection.ts): the backoff between
// attempts, the protocol exchange (hello, resume, start, heartbeats, progress), where it stands,
// and its gap lines. What it receives goes into the ledger; where messages go from there is not
// its business.

import {
  type Address,
  addressKey,
  BASE_VERSION,
  type ControlMessage,
  describeFilter,
  type Entry,
  type Filter,
  formatAddress,
  gapNotice,
  gapsSummary,
  type Ledger,
  MAX_SEQ,
  nextBackoff,
  PROTOCOL_VERSION,
  type ProxyUrl,
  peerText,
  speaksVersion,
  type TlsFiles,
  type UnsaidGaps,
  VERSIONS,
  type WireFilter,
} from "../lib.ts";
import { Connection } from "./connection.ts";

/** A server far behind may report a gap a write: after one gap line, the next comes this much later, summing. */
const GAP_LINE_MS = 1000;
/** Bounds on the interval of progress messages, whatever heartbeat the server names. */
const MIN_PROGRESS_MS = 100;
const MAX_PROGRESS_MS = 60_000;
/** The longest delay a timer takes: setTimeout fires at once for anything longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A server to follow, what to ask it for (everything, or what its filter lets through), and the proxy on the way. */
export interface ServerChoice {
  address: Address;
  filter?: Filter;
  wireFilter?: WireFilter;
  proxy?: ProxyUrl;
}

/** What an Upstream needs from slpc: the settings, and the parts it shares with the other servers. */
export interface UpstreamHost {
  settings: { deadAfter: number; handshakeTimeout: number; retryMin: number; retryMax: number; replay: boolean };
  /** The certificates in force now: SIGHUP may have reloaded them for the next connection. */
  tls(): TlsFiles;
  log(line: string): void;
  ledger: Ledger<Upstream>;
  /** A message came and went into the ledger: for those who watch (the live view), not the output. */
  received(entry: Entry<Upstream>): void;
  /** Another server followed that owns server run `id` (see Upstream.owns), if any: one server under two names. */
  twinOf(upstream: Upstream, id: string): Upstream | undefined;
  /** A read brought messages, or reading may have to pause or resume: the output's turn. */
  changed(): void;
  /** Set once slpc stops: no more dialling, and a disconnect is no news. */
  stopping(): boolean;
}

/** A server slpc follows: its connection, where it stands, and its counters. */
export class Upstream implements ServerChoice {
  readonly address: Address;
  readonly filter?: Filter;
  readonly wireFilter?: WireFilter;
  readonly proxy?: ProxyUrl;
  /** --server as HOST:PORT: how log lines, SIGUSR1, --prefix and JSON's `from` name it. */
  readonly target: string;
  /** Its key in --state. */
  readonly key: string;
  /** The server run followed and the number of its next message, from its latest `start` on. */
  following?: { server: string; next: number };
  readonly counters = { received: 0, receivedBytes: 0, lost: 0, unknownGaps: 0, connects: 0, reconnects: 0 };
  readonly #host: UpstreamHost;
  /** The name its certificate must carry. */
  readonly #serverName: string;
  /** The connection being dialled, set up or used; undefined while waiting to dial again. */
  #connection?: Connection;
  /** Attempts in a row that did not stay up: the wait before the next one grows with them. */
  #failures = 0;
  #retryTimer?: Timer;
  /** Set when --state, or its entry for this server, was unreadable at start: the first `start` reports a gap. */
  #stateUnreadable: boolean;
  /** When its last gap line was said, and the gaps since that wait for the next (see #reportGap). */
  #gapLines: { saidAt: number; unsaid?: UnsaidGaps; timer?: Timer } = { saidAt: Number.NEGATIVE_INFINITY };
  /** Set while a server that offered `progress` streams: slpc reports how far it delivered, every heartbeat. */
  #progress?: { every: number; timer?: Timer };
  /** The number before the first message the current connection brought: where it resumed. */
  #resumedAfter = 0;

  constructor(host: UpstreamHost, choice: ServerChoice, serverName: string, stateUnreadable: boolean) {
    this.#host = host;
    this.address = choice.address;
    this.filter = choice.filter;
    this.wireFilter = choice.wireFilter;
    this.proxy = choice.proxy;
    this.target = formatAddress(choice.address);
    this.key = addressKey(choice.address);
    this.#serverName = serverName;
    this.#stateUnreadable = stateUnreadable;
  }

  /** Whether messages flow from it now. */
  get streaming(): boolean {
    return this.#connection?.phase === "streaming";
  }

  /** The server run this connection follows, once its hello came. */
  get serverId(): string | undefined {
    return this.#connection?.serverId;
  }

  /** Where to resume it: after the last message the output confirmed, as far as slpc knows now. */
  resumePoint() {
    return this.#host.ledger.resumePoint(this, this.following);
  }

  /**
   * Whether server run `id` is this one's rather than `other`'s, when both names lead to it: this
   * one is connected to it, or stands further along in it (a resume point from --state or an
   * earlier connection). `other` starting afresh in that run would skip what came since this one's
   * point, with no gap line; with --replay, deliver it all again.
   */
  owns(id: string, other: Upstream): boolean {
    if (this.serverId === id) return true;
    const mine = this.resumePoint();
    if (mine?.server !== id) return false;
    const theirs = other.resumePoint();
    return theirs?.server !== id || mine.last > theirs.last;
  }

  /** Reads from the server, or stops, so that it holds what this side cannot take yet. */
  read(wanted: boolean): void {
    this.#connection?.read(wanted);
  }

  /** The clock of the phase deadlines (see Connection.tick). */
  tick(now: number, frozen: boolean): void {
    this.#connection?.tick(now, frozen);
  }

  /** Stops dialling and drops the connection: slpc is stopping. The gaps not said yet are said. */
  stop(): void {
    clearTimeout(this.#retryTimer);
    this.#connection?.close();
    this.#sayGaps();
  }

  /** Dials the server. */
  connect(): void {
    const { settings, log, stopping } = this.#host;
    const { address, target } = this;
    const tls = this.#host.tls();
    const connection: Connection = new Connection(
      { ...settings, address, target, serverName: this.#serverName, tls, proxy: this.proxy, log, stopping },
      {
        authorized: () => {
          if (this.counters.connects++ > 0) this.counters.reconnects++;
        },
        message: (body) => this.#onMessage(connection, body),
        control: (message) => this.#onControl(connection, message),
        read: () => this.#host.changed(),
        thawed: () => this.#sendProgress(connection),
        ended: (stayedUp) => {
          clearInterval(this.#progress?.timer);
          this.#progress = undefined;
          if (this.#connection !== connection) return;
          this.#connection = undefined;
          if (stayedUp) this.#failures = 0;
          this.#retryLater();
        },
      },
    );
    this.#connection = connection;
    connection.dial();
  }

  #retryLater(): void {
    if (this.#host.stopping() || this.#retryTimer) return;
    const { retryMin, retryMax } = this.#host.settings;
    const seconds = nextBackoff(this.#failures++, retryMin, retryMax);
    this.#host.log(`${this.target}: retrying in ${seconds.toFixed(1)} s`);
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = undefined;
        this.connect();
      },
      Math.min(seconds * 1000, MAX_TIMER_MS),
    );
  }

  #onMessage(c: Connection, body: Uint8Array): void {
    const following = this.following!;
    // A number past the protocol's bound could not be resumed from: refuse it rather than lose count.
    if (following.next > MAX_SEQ) return c.close(`protocol error: message number beyond ${MAX_SEQ}`);
    this.counters.received++;
    this.counters.receivedBytes += body.length;
    const entry = { message: body, from: this, server: following.server, seq: following.next++ };
    this.#host.ledger.receive(entry);
    this.#host.received(entry);
  }

  /** hello, then start (possibly again later), heartbeat and error, in the order the protocol allows. */
  #onControl(c: Connection, message: ControlMessage): void {
    switch (message.type) {
      case "hello":
        return this.#onHello(c, message);
      case "start":
        return this.#onStart(c, message);
      case "heartbeat":
        return; // a sign of life, which the read that brought it already counted
      case "error":
        return c.close(`server says: ${peerText(message.message)}`);
      default:
        return c.close(`protocol error: unexpected ${message.type} message`);
    }
  }

  #onHello(c: Connection, hello: Extract<ControlMessage, { type: "hello" }>): void {
    if (!speaksVersion(hello.version)) {
      const versions = `server speaks protocol version ${hello.version}, this slpc speaks ${VERSIONS}`;
      return c.close(`${versions}; upgrade the older one`);
    }
    if (c.serverId !== undefined) return c.close("protocol error: second hello");
    // Never follow unfiltered what was asked for filtered: hang up, and try again later (it may be upgraded).
    if (this.filter && hello.filters !== true) {
      return c.close("the server does not offer filters (an slps before protocol version 2)");
    }
    // One server under two names (localhost and 127.0.0.1, say) would deliver everything twice.
    const twin = this.#host.twinOf(this, hello.server);
    if (twin) return c.close(`this is ${twin.target} under another name (server ${peerText(hello.server)})`);
    c.serverId = hello.server;
    // Only a server that offers it gets progress: an older one refuses messages it does not know.
    if (hello.progress === true) {
      this.#progress = { every: Math.min(Math.max(hello.heartbeat * 1000, MIN_PROGRESS_MS), MAX_PROGRESS_MS) };
    }
    const { deadAfter, replay } = this.#host.settings;
    if (hello.heartbeat >= deadAfter) {
      const heartbeat = `server heartbeat ${hello.heartbeat} s`;
      const dropped = "idle connections will be dropped";
      this.#host.log(`${this.target}: warning: ${heartbeat} is not below --dead-after ${deadAfter} s; ${dropped}`);
    }
    // Messages still waiting will be handed on: resume after them, not before.
    const held = this.#host.ledger.newestHeld(this);
    const point = held ? { server: held.server, last: held.seq } : this.resumePoint();
    const resume = point ? { server: point.server, last: point.last } : { replay };
    // A resume without a filter stays version 1, which every server speaks.
    if (!this.wireFilter) return c.send({ type: "resume", version: BASE_VERSION, ...resume });
    c.send({ type: "resume", version: PROTOCOL_VERSION, ...resume, filter: this.wireFilter });
  }

  #onStart(c: Connection, start: Extract<ControlMessage, { type: "start" }>): void {
    if (c.serverId === undefined) return c.close("protocol error: start before hello");
    if (this.#stateUnreadable && start.lost === undefined) {
      start = { ...start, lost: null, reason: "the --state file was unreadable" };
    }
    this.#stateUnreadable = false;
    this.#reportGap(start);
    if (start.lost === null) this.counters.unknownGaps++;
    else this.counters.lost += start.lost ?? 0;
    this.following = { server: c.serverId, next: start.seq };
    if (c.phase !== "resuming") return;
    c.stream();
    this.#resumedAfter = start.seq - 1;
    const only = this.filter ? `, only ${describeFilter(this.filter)}` : "";
    this.#host.log(`${this.target}: following server ${peerText(c.serverId)} from #${start.seq}${only}`);
    const progress = this.#progress;
    if (progress) progress.timer = setInterval(() => this.#sendProgress(c), progress.every);
    this.#host.changed();
  }

  /**
   * Says a gap: the first at once, then at most one line a second, summing the gaps that came
   * meanwhile, so that one server far behind cannot flood the log and hide the others' lines.
   */
  #reportGap(start: Extract<ControlMessage, { type: "start" }>): void {
    const gap = gapNotice(start);
    if (!gap) return;
    const lines = this.#gapLines;
    const now = performance.now();
    if (!lines.unsaid && now - lines.saidAt >= GAP_LINE_MS) {
      this.#host.log(`${this.target}: ${gap}`);
      lines.saidAt = now;
      return;
    }
    lines.unsaid ??= { gaps: 0, lost: 0, unknown: 0 };
    const unsaid = lines.unsaid;
    unsaid.gaps++;
    if (start.lost === null) unsaid.unknown++;
    else unsaid.lost += start.lost ?? 0;
    lines.timer ??= setTimeout(() => this.#sayGaps(), Math.max(0, GAP_LINE_MS - (now - lines.saidAt)));
  }

  /** The gaps not said yet, in one line. */
  #sayGaps(): void {
    const lines = this.#gapLines;
    clearTimeout(lines.timer);
    lines.timer = undefined;
    if (!lines.unsaid) return;
    this.#host.log(`${this.target}: ${gapsSummary(lines.unsaid, this.following?.next ?? 1)}`);
    lines.unsaid = undefined;
    lines.saidAt = performance.now();
  }

  /**
   * Tells a server that offered `progress` how far delivery got, also while reading is paused: so
   * that the server counts a client that is slow to hand on, but alive, as alive (its --stall).
   */
  #sendProgress(c: Connection): void {
    if (!this.#progress || c.phase !== "streaming" || c.sending) return; // the last one is not out yet
    const point = this.resumePoint();
    const last = point?.server === c.serverId ? point!.last : this.#resumedAfter;
    c.send({ type: "progress", last });
  }
}
