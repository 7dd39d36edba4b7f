// One server slpc follows: its connection from dialling to close, the phases and their deadlines,
// the backoff between attempts, the protocol exchange (hello, resume, start, heartbeats, progress),
// and its gap lines. What it receives goes into the ledger; where messages go from there is not
// its business.

import { checkServerIdentity } from "node:tls";
import type { Socket } from "bun";
import {
  type Address,
  addressKey,
  BASE_VERSION,
  type ControlMessage,
  Deframer,
  describeFilter,
  encodeControl,
  type Filter,
  formatAddress,
  gapNotice,
  gapsSummary,
  isNetworkError,
  type Ledger,
  MAX_MESSAGE,
  MAX_SEQ,
  nextBackoff,
  PROTOCOL_VERSION,
  parseControl,
  peerText,
  reason,
  speaksVersion,
  TLS13_ONLY,
  type TlsFiles,
  type UnsaidGaps,
  VERSIONS,
  type WireFilter,
} from "../lib.ts";

/**
 * Control frames a server may send in a second beyond one per message: a filtered stream puts a
 * `start` before a message, a quiet one a heartbeat every --heartbeat (10 a second at most) and an
 * announcement of where it stands. More is an attack, not the protocol: each costs a parse.
 */
const MAX_CONTROLS_PER_SECOND = 50;
/** A server far behind may report a gap a write: after one gap line, the next comes this much later, summing. */
const GAP_LINE_MS = 1000;
/** A connection that lasted this long counts as having stayed up: the next retry waits --retry-min again. */
const STAYED_UP_SECONDS = 10;
/** Bounds on the interval of progress messages, whatever heartbeat the server names. */
const MIN_PROGRESS_MS = 100;
const MAX_PROGRESS_MS = 60_000;
/** The longest delay a timer takes: setTimeout fires at once for anything longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A server to follow, and what to ask it for: everything, or what its filter lets through. */
export interface ServerChoice {
  address: Address;
  filter?: Filter;
  wireFilter?: WireFilter;
}

/** What an Upstream needs from slpc: the settings, and the parts it shares with the other servers. */
export interface UpstreamHost {
  settings: { deadAfter: number; handshakeTimeout: number; retryMin: number; retryMax: number; replay: boolean };
  /** The certificates in force now: SIGHUP may have reloaded them for the next connection. */
  tls(): TlsFiles;
  log(line: string): void;
  ledger: Ledger<Upstream>;
  /** The other server followed as server run `id`, if any: one server under two names. */
  twinOf(upstream: Upstream, id: string): Upstream | undefined;
  /** A read brought messages, or reading may have to pause or resume: the output's turn. */
  changed(): void;
  /** Set once slpc stops: no more dialling, and a disconnect is no news. */
  stopping(): boolean;
}

/**
 * A connection's life, one phase after the other. From dialling to the server's first `start`
 * (connecting, handshaking, resuming) --handshake-timeout applies; while streaming, --dead-after,
 * counted only while slpc reads; closing lasts until the socket is gone.
 */
type Phase = "connecting" | "handshaking" | "resuming" | "streaming" | "closing";

interface Connection {
  phase: Phase;
  /** The socket, once TCP is up. */
  socket?: Socket<Connection>;
  /** When the setup must be done (performance.now() milliseconds): dialling plus --handshake-timeout. */
  setupDeadline: number;
  /** When bytes last came while reading: the silence that --dead-after measures starts here. */
  heardAt: number;
  /** When TLS was done and the server's certificate accepted. */
  authorizedAt?: number;
  /** Whether reading from the socket is paused, so that the server holds what this side cannot take yet. */
  paused: boolean;
  deframer: Deframer;
  /** The server's hello, once it came. */
  serverId?: string;
  /** Control frames the socket has not taken yet: Bun's write buffers nothing. */
  outbox?: Uint8Array;
  /** Control frames and messages in the current second: a flood of control frames is hung up on. */
  frames: { second: number; controls: number; messages: number };
  /** Set when the server's hello offers `progress`: then slpc reports how far it delivered, every `heartbeat`. */
  progressEvery?: number;
  progressTimer?: Timer;
  /** The number before the first message this connection brought: where it resumed. */
  resumedAfter?: number;
}

/** A server slpc follows: its connection, where it stands, and its counters. */
export class Upstream implements ServerChoice {
  readonly address: Address;
  readonly filter?: Filter;
  readonly wireFilter?: WireFilter;
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

  constructor(host: UpstreamHost, choice: ServerChoice, serverName: string, stateUnreadable: boolean) {
    this.#host = host;
    this.address = choice.address;
    this.filter = choice.filter;
    this.wireFilter = choice.wireFilter;
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

  /** Reads from the server, or stops, so that it holds what this side cannot take yet. */
  read(wanted: boolean): void {
    const c = this.#connection;
    if (!c?.socket || c.phase !== "streaming" || wanted !== c.paused) return;
    c.paused = !wanted;
    if (!wanted) return void c.socket.pause();
    // The silence while paused was our own doing: --dead-after counts from now.
    c.heardAt = performance.now();
    c.socket.resume();
  }

  /**
   * The clock of the phase deadlines, every tick. A half-open connection (the home address changed
   * under it) delivers nothing and never fails by itself: the server's heartbeats are what make
   * silence mean death. After the process was `frozen` (SIGSTOP, a laptop asleep), the bytes the
   * server sent meanwhile wait unread: each phase's time starts again, and a progress message goes
   * out at once, so that a connection that died meanwhile fails fast.
   */
  tick(now: number, frozen: boolean): void {
    const c = this.#connection;
    const { handshakeTimeout, deadAfter } = this.#host.settings;
    if (!c || c.phase === "closing") return;
    if (frozen) {
      c.heardAt = now;
      if (c.phase !== "streaming") c.setupDeadline = now + handshakeTimeout * 1000;
      this.#sendProgress(c);
    } else if (c.phase !== "streaming") {
      if (now >= c.setupDeadline) {
        const timeout = `${handshakeTimeout} s (--handshake-timeout)`;
        this.#enter(c, "closing", `no TLS handshake, hello and start within ${timeout}`);
      }
    } else if (!c.paused && now - c.heardAt >= deadAfter * 1000) {
      this.#enter(c, "closing", `no bytes for ${deadAfter} s (--dead-after), the connection is presumed dead`);
    }
  }

  /** Stops dialling and drops the connection: slpc is stopping. The gaps not said yet are said. */
  stop(): void {
    clearTimeout(this.#retryTimer);
    this.#connection?.socket?.terminate();
    this.#sayGaps();
  }

  /** Dials the server. */
  connect(): void {
    const c: Connection = {
      phase: "connecting",
      setupDeadline: 0,
      heardAt: 0,
      paused: false,
      deframer: new Deframer(MAX_MESSAGE),
      frames: { second: 0, controls: 0, messages: 0 },
    };
    this.#connection = c;
    this.#enter(c, "connecting");
    const tls = this.#host.tls();
    Bun.connect<Connection>({
      hostname: this.address.host,
      port: this.address.port,
      data: c,
      tls: {
        cert: tls.cert,
        key: tls.key,
        ca: tls.ca,
        crl: tls.crl,
        serverName: this.#serverName,
        rejectUnauthorized: true,
        secureOptions: TLS13_ONLY,
      },
      socket: {
        open: (socket) => {
          if (this.#connection !== c) return void socket.terminate(); // abandoned while dialling
          c.socket = socket;
          this.#enter(c, "handshaking");
        },
        handshake: (socket, success, error) => {
          if (c.phase !== "handshaking") return;
          if (!success && isNetworkError(error)) return; // the connection is gone: `close` says so
          const why = this.#refusal(socket, success, error);
          if (why) return this.#enter(c, "closing", why);
          socket.setKeepAlive(true, 15_000);
          this.#enter(c, "resuming");
        },
        data: (_socket, chunk) => {
          // Never trust a byte from a server that failed its checks, or after we decided to hang up.
          if (c.phase !== "resuming" && c.phase !== "streaming") return;
          c.heardAt = performance.now();
          try {
            this.#read(c, chunk);
          } finally {
            this.#host.changed();
          }
        },
        drain: () => this.#flushOutbox(c),
        close: (_socket, error) => this.#ended(c, error),
        connectError: (_socket, error) => {
          if (this.#connection === c) this.#host.log(`cannot connect to ${this.target}: ${reason(error)}`);
          this.#ended(c);
        },
        error: (_socket, error) => this.#host.log(`${this.target}: ${reason(error)}`),
      },
    }).catch(() => {
      // connectError has logged it and scheduled the retry.
    });
  }

  /** Moves `c` into `phase`: every deadline, counter and log line of the lifecycle is set here. */
  #enter(c: Connection, phase: Phase, why = ""): void {
    const now = performance.now();
    const { log } = this.#host;
    c.phase = phase;
    switch (phase) {
      case "connecting":
        c.setupDeadline = now + this.#host.settings.handshakeTimeout * 1000;
        log(`connecting to ${this.target}`);
        return;
      case "handshaking":
        return; // TCP is up; the deadline from dialling still holds
      case "resuming":
        c.authorizedAt = now;
        if (this.counters.connects++ > 0) this.counters.reconnects++;
        log(`connected to ${this.target}`);
        return;
      case "streaming": {
        c.heardAt = now;
        c.resumedAfter = this.following!.next - 1;
        const only = this.filter ? `, only ${describeFilter(this.filter)}` : "";
        log(`${this.target}: following server ${peerText(c.serverId!)} from #${this.following!.next}${only}`);
        if (c.progressEvery !== undefined) c.progressTimer = setInterval(() => this.#sendProgress(c), c.progressEvery);
        this.#host.changed();
        return;
      }
      case "closing":
        clearInterval(c.progressTimer);
        if (why) log(`${this.target}: ${why}; closing the connection`);
        // Still dialling: Bun cannot cancel a TCP connect, so the attempt is abandoned instead.
        if (!c.socket) return this.#ended(c);
        c.socket.terminate();
        return;
    }
  }

  /** A connection is gone: say so, and dial again after a while. */
  #ended(c: Connection, error?: Error): void {
    clearInterval(c.progressTimer);
    if (this.#connection !== c) return; // an abandoned attempt that connected or failed after all
    this.#connection = undefined;
    const stopping = this.#host.stopping();
    if (c.authorizedAt !== undefined && !stopping) {
      const seconds = (performance.now() - c.authorizedAt) / 1000;
      if (seconds >= STAYED_UP_SECONDS) this.#failures = 0;
      // TLS 1.3 ends on this side before the server has checked our certificate: a refusal looks like this.
      const hint =
        c.serverId === undefined
          ? ", before the server's hello: does the server refuse this certificate? (its log says)"
          : "";
      const because = error ? `: ${reason(error)}` : "";
      this.#host.log(`disconnected from ${this.target} after ${seconds.toFixed(1)} s${because}${hint}`);
    } else if (c.phase === "handshaking" && !stopping) {
      // The network or the peer ended it, not a certificate check: say which.
      this.#host.log(
        error
          ? `${this.target}: connection lost during the TLS handshake: ${reason(error)}`
          : `${this.target}: the server closed the connection during the TLS handshake`,
      );
    }
    this.#retryLater();
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

  /** Why the server's certificate is not the one we want, or undefined when it is. */
  #refusal(socket: Socket<Connection>, success: boolean, error: Error | null): string | undefined {
    if (!success || !socket.authorized)
      return `server certificate refused: ${error ? reason(error) : "not authorized"}`;
    const mismatch = checkServerIdentity(this.#serverName, socket.getPeerCertificate());
    return mismatch ? `server certificate refused: ${peerText(mismatch.message)}` : undefined;
  }

  /** The frames of one read: messages into the ledger, control messages answered. */
  #read(c: Connection, chunk: Uint8Array): void {
    const frames = c.frames;
    for (const frame of c.deframer.push(chunk)) {
      const second = Math.floor(c.heardAt / 1000);
      if (second !== frames.second) Object.assign(frames, { second, controls: 0, messages: 0 });
      if (!frame.control) {
        frames.messages++;
        if (c.phase !== "streaming") return this.#enter(c, "closing", "protocol error: data before start");
        const following = this.following!;
        // A number past the protocol's bound could not be resumed from: refuse it rather than lose count.
        if (following.next > MAX_SEQ) {
          return this.#enter(c, "closing", `protocol error: message number beyond ${MAX_SEQ}`);
        }
        this.counters.received++;
        this.counters.receivedBytes += frame.body.length;
        this.#host.ledger.receive({ message: frame.body, from: this, server: following.server, seq: following.next++ });
        continue;
      }
      if (++frames.controls > MAX_CONTROLS_PER_SECOND + frames.messages) {
        const flood = `over ${MAX_CONTROLS_PER_SECOND} in a second beyond one a message`;
        return this.#enter(c, "closing", `protocol error: a flood of control messages, ${flood}`);
      }
      let message: ControlMessage;
      try {
        message = parseControl(frame.body);
      } catch (error) {
        return this.#enter(c, "closing", `protocol error: ${reason(error)}`);
      }
      this.#onControl(c, message);
      if (c.phase === "closing") return;
    }
    if (c.deframer.error) this.#enter(c, "closing", c.deframer.error);
  }

  /** hello, then start (possibly again later), heartbeat and error, in the order the protocol allows. */
  #onControl(c: Connection, message: ControlMessage): void {
    switch (message.type) {
      case "hello":
        return this.#onHello(c, message);
      case "start": {
        if (c.serverId === undefined) return this.#enter(c, "closing", "protocol error: start before hello");
        if (this.#stateUnreadable && message.lost === undefined) {
          message = { ...message, lost: null, reason: "the --state file was unreadable" };
        }
        this.#stateUnreadable = false;
        this.#reportGap(message);
        if (message.lost === null) this.counters.unknownGaps++;
        else this.counters.lost += message.lost ?? 0;
        this.following = { server: c.serverId, next: message.seq };
        if (c.phase === "resuming") this.#enter(c, "streaming");
        return;
      }
      case "heartbeat":
        return; // a sign of life, which the read that brought it already counted
      case "error":
        return this.#enter(c, "closing", `server says: ${peerText(message.message)}`);
      default:
        return this.#enter(c, "closing", `protocol error: unexpected ${message.type} message`);
    }
  }

  #onHello(c: Connection, hello: Extract<ControlMessage, { type: "hello" }>): void {
    if (!speaksVersion(hello.version)) {
      const versions = `server speaks protocol version ${hello.version}, this slpc speaks ${VERSIONS}`;
      return this.#enter(c, "closing", `${versions}; upgrade the older one`);
    }
    if (c.serverId !== undefined) return this.#enter(c, "closing", "protocol error: second hello");
    // Never follow unfiltered what was asked for filtered: hang up, and try again later (it may be upgraded).
    if (this.filter && hello.filters !== true) {
      return this.#enter(c, "closing", "the server does not offer filters (an slps before protocol version 2)");
    }
    // One server under two names (localhost and 127.0.0.1, say) would deliver everything twice.
    const twin = this.#host.twinOf(this, hello.server);
    if (twin) {
      return this.#enter(c, "closing", `this is ${twin.target} under another name (server ${peerText(hello.server)})`);
    }
    c.serverId = hello.server;
    // Only a server that offers it gets progress: an older one refuses messages it does not know.
    if (hello.progress === true) {
      c.progressEvery = Math.min(Math.max(hello.heartbeat * 1000, MIN_PROGRESS_MS), MAX_PROGRESS_MS);
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
    if (!this.wireFilter) return this.#send(c, { type: "resume", version: BASE_VERSION, ...resume });
    this.#send(c, { type: "resume", version: PROTOCOL_VERSION, ...resume, filter: this.wireFilter });
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

  #send(c: Connection, message: ControlMessage): void {
    const frame = encodeControl(message);
    c.outbox = c.outbox ? Buffer.concat([c.outbox, frame]) : frame;
    this.#flushOutbox(c);
  }

  /**
   * Tells a server that offered `progress` how far delivery got, also while reading is paused: so
   * that the server counts a client that is slow to hand on, but alive, as alive (its --stall).
   */
  #sendProgress(c: Connection): void {
    if (c.progressEvery === undefined || c.phase !== "streaming" || c.outbox) return; // the last one is not out yet
    const point = this.resumePoint();
    const last = point?.server === c.serverId ? point!.last : c.resumedAfter!;
    this.#send(c, { type: "progress", last });
  }

  #flushOutbox(c: Connection): void {
    if (!c.outbox || !c.socket || c.phase === "closing") return;
    const taken = c.socket.write(c.outbox);
    c.outbox = taken >= c.outbox.length ? undefined : c.outbox.subarray(Math.max(taken, 0));
  }
}
