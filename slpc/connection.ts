// One TLS connection to a server, from dialling to close: its phases and their deadlines, the
// server certificate's checks, the frames it reads (with a bound on control frames), and the
// control messages it writes. What the frames mean is the Upstream's business (slpc/upstream.ts).

import { checkServerIdentity } from "node:tls";
import type { Socket } from "bun";
import {
  type Address,
  type ControlMessage,
  Deframer,
  encodeControl,
  isNetworkError,
  MAX_MESSAGE,
  parseControl,
  peerText,
  reason,
  TLS13_ONLY,
  type TlsFiles,
} from "../lib.ts";

/**
 * Control frames a server may send in a second beyond one per message: a filtered stream puts a
 * `start` before a message, a quiet one a heartbeat every --heartbeat (10 a second at most) and an
 * announcement of where it stands. More is an attack, not the protocol: each costs a parse.
 */
const MAX_CONTROLS_PER_SECOND = 50;
/** A connection that lasted this long counts as having stayed up: the next retry waits --retry-min again. */
const STAYED_UP_SECONDS = 10;

/**
 * A connection's life, one phase after the other. From dialling to the server's first `start`
 * (connecting, handshaking, resuming) --handshake-timeout applies; while streaming, --dead-after,
 * counted only while slpc reads; closing lasts until the socket is gone.
 */
export type Phase = "connecting" | "handshaking" | "resuming" | "streaming" | "closing";

/** What the connection tells the server it is to, in the order it happens. */
export interface ConnectionEvents {
  /** TLS is done and the server's certificate accepted: the protocol may begin. */
  authorized(): void;
  /** A message, in the order the server sent them; only while streaming. */
  message(body: Uint8Array): void;
  /** A control message, checked as far as its form goes. */
  control(message: ControlMessage): void;
  /** A read is done: what it brought may go on. */
  read(): void;
  /** The process was frozen: the connection's clocks start again, and the server may be told where we are. */
  thawed(): void;
  /** The connection is gone for good; one that `stayedUp` was a working one. */
  ended(stayedUp: boolean): void;
}

export interface ConnectionSettings {
  address: Address;
  /** The server as log lines name it. */
  target: string;
  /** The name its certificate must carry. */
  serverName: string;
  tls: TlsFiles;
  handshakeTimeout: number;
  deadAfter: number;
  log: (line: string) => void;
  /** Set once slpc stops: a disconnect is no news then. */
  stopping: () => boolean;
}

export class Connection {
  phase: Phase = "connecting";
  /** The server run, once its hello came: set by whoever reads the hello. */
  serverId: string | undefined;
  readonly #settings: ConnectionSettings;
  readonly #events: ConnectionEvents;
  #socket: Socket | undefined;
  /** When the setup must be done (performance.now() milliseconds): dialling plus --handshake-timeout. */
  #setupDeadline = 0;
  /** When bytes last came while reading: the silence that --dead-after measures starts here. */
  #heardAt = 0;
  /** When TLS was done and the server's certificate accepted. */
  #authorizedAt: number | undefined;
  /** Whether reading is paused, so that the server holds what this side cannot take yet. */
  #paused = false;
  readonly #deframer = new Deframer(MAX_MESSAGE);
  /** Control frames the socket has not taken yet: Bun's write buffers nothing. */
  #outbox: Uint8Array | undefined;
  /** Control frames and messages in the current second: a flood of control frames is hung up on. */
  #frames = { second: 0, controls: 0, messages: 0 };
  /** Set once it ended: an attempt abandoned while dialling may connect or fail after all. */
  #ended = false;

  constructor(settings: ConnectionSettings, events: ConnectionEvents) {
    this.#settings = settings;
    this.#events = events;
  }

  /** Whether a control message is still on its way out. */
  get sending(): boolean {
    return this.#outbox !== undefined;
  }

  /** Dials the server. */
  dial(): void {
    const { address, serverName, tls, target, log } = this.#settings;
    this.#enter("connecting");
    Bun.connect({
      hostname: address.host,
      port: address.port,
      tls: {
        cert: tls.cert,
        key: tls.key,
        ca: tls.ca,
        crl: tls.crl,
        serverName,
        rejectUnauthorized: true,
        secureOptions: TLS13_ONLY,
      },
      socket: {
        open: (socket) => {
          if (this.#ended) return void socket.terminate(); // abandoned while dialling
          this.#socket = socket;
          this.#enter("handshaking");
        },
        handshake: (socket, success, error) => {
          if (this.phase !== "handshaking") return;
          if (!success && isNetworkError(error)) return; // the connection is gone: `close` says so
          const why = this.#refusal(socket, success, error);
          if (why) return this.close(why);
          socket.setKeepAlive(true, 15_000);
          this.#enter("resuming");
        },
        data: (_socket, chunk) => {
          // Never trust a byte from a server that failed its checks, or after we decided to hang up.
          if (this.phase !== "resuming" && this.phase !== "streaming") return;
          this.#heardAt = performance.now();
          try {
            this.#read(chunk);
          } finally {
            this.#events.read();
          }
        },
        drain: () => this.#flush(),
        close: (_socket, error) => this.#end(error),
        connectError: (_socket, error) => {
          if (!this.#ended) log(`cannot connect to ${target}: ${reason(error)}`);
          this.#end();
        },
        error: (_socket, error) => log(`${target}: ${reason(error)}`),
      },
    }).catch(() => {
      // connectError has logged it.
    });
  }

  /** The server's first `start` came: messages flow, and --dead-after counts. */
  stream(): void {
    this.#enter("streaming");
  }

  /** Hangs up, saying `why` when given. */
  close(why = ""): void {
    if (this.phase !== "closing") this.#enter("closing", why);
  }

  /** Writes a control message after those not taken yet. */
  send(message: ControlMessage): void {
    const frame = encodeControl(message);
    this.#outbox = this.#outbox ? Buffer.concat([this.#outbox, frame]) : frame;
    this.#flush();
  }

  /** Reads from the server, or stops, so that it holds what this side cannot take yet. */
  read(wanted: boolean): void {
    if (!this.#socket || this.phase !== "streaming" || wanted !== this.#paused) return;
    this.#paused = !wanted;
    if (!wanted) return void this.#socket.pause();
    // The silence while paused was our own doing: --dead-after counts from now.
    this.#heardAt = performance.now();
    this.#socket.resume();
  }

  /**
   * The clock of the phase deadlines, every tick. A half-open connection (the home address changed
   * under it) delivers nothing and never fails by itself: the server's heartbeats are what make
   * silence mean death. After the process was `frozen` (SIGSTOP, a laptop asleep), the bytes the
   * server sent meanwhile wait unread: each phase's time starts again.
   */
  tick(now: number, frozen: boolean): void {
    const { handshakeTimeout, deadAfter } = this.#settings;
    if (this.phase === "closing") return;
    if (frozen) {
      this.#heardAt = now;
      if (this.phase !== "streaming") this.#setupDeadline = now + handshakeTimeout * 1000;
      this.#events.thawed();
    } else if (this.phase !== "streaming") {
      if (now >= this.#setupDeadline) {
        this.close(`no TLS handshake, hello and start within ${handshakeTimeout} s (--handshake-timeout)`);
      }
    } else if (!this.#paused && now - this.#heardAt >= deadAfter * 1000) {
      this.close(`no bytes for ${deadAfter} s (--dead-after), the connection is presumed dead`);
    }
  }

  /** Moves into `phase`: every deadline and log line of the lifecycle is set here. */
  #enter(phase: Phase, why = ""): void {
    const now = performance.now();
    const { target, log, handshakeTimeout } = this.#settings;
    this.phase = phase;
    switch (phase) {
      case "connecting":
        this.#setupDeadline = now + handshakeTimeout * 1000;
        log(`connecting to ${target}`);
        return;
      case "handshaking":
        return; // TCP is up; the deadline from dialling still holds
      case "resuming":
        this.#authorizedAt = now;
        log(`connected to ${target}`);
        return this.#events.authorized();
      case "streaming":
        this.#heardAt = now;
        return;
      case "closing":
        if (why) log(`${target}: ${why}; closing the connection`);
        // Still dialling: Bun cannot cancel a TCP connect, so the attempt is abandoned instead.
        if (!this.#socket) return this.#end();
        this.#socket.terminate();
        return;
    }
  }

  /** The connection is gone: said, once. */
  #end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    const { target, log, stopping } = this.#settings;
    const seconds = this.#authorizedAt === undefined ? 0 : (performance.now() - this.#authorizedAt) / 1000;
    if (this.#authorizedAt !== undefined && !stopping()) {
      // TLS 1.3 ends on this side before the server has checked our certificate: a refusal looks
      // like this. A hang-up of our own (a hello we refused) has said why already.
      const hint =
        this.serverId === undefined && this.phase !== "closing"
          ? ", before the server's hello: does the server refuse this certificate? (its log says)"
          : "";
      const because = error ? `: ${reason(error)}` : "";
      log(`disconnected from ${target} after ${seconds.toFixed(1)} s${because}${hint}`);
    } else if (this.phase === "handshaking" && !stopping()) {
      // The network or the peer ended it, not a certificate check: say which.
      log(
        error
          ? `${target}: connection lost during the TLS handshake: ${reason(error)}`
          : `${target}: the server closed the connection during the TLS handshake`,
      );
    }
    this.#events.ended(seconds >= STAYED_UP_SECONDS);
  }

  /** Why the server's certificate is not the one we want, or undefined when it is. */
  #refusal(socket: Socket, success: boolean, error: Error | null): string | undefined {
    if (!success || !socket.authorized)
      return `server certificate refused: ${error ? reason(error) : "not authorized"}`;
    const mismatch = checkServerIdentity(this.#settings.serverName, socket.getPeerCertificate());
    return mismatch ? `server certificate refused: ${peerText(mismatch.message)}` : undefined;
  }

  /** The frames of one read, in order, until one ends the connection. */
  #read(chunk: Uint8Array): void {
    const frames = this.#frames;
    for (const frame of this.#deframer.push(chunk)) {
      const second = Math.floor(this.#heardAt / 1000);
      if (second !== frames.second) Object.assign(frames, { second, controls: 0, messages: 0 });
      if (!frame.control) {
        frames.messages++;
        if (this.phase !== "streaming") return this.close("protocol error: data before start");
        this.#events.message(frame.body);
      } else if (++frames.controls > MAX_CONTROLS_PER_SECOND + frames.messages) {
        const flood = `over ${MAX_CONTROLS_PER_SECOND} in a second beyond one a message`;
        return this.close(`protocol error: a flood of control messages, ${flood}`);
      } else {
        let message: ControlMessage;
        try {
          message = parseControl(frame.body);
        } catch (error) {
          return this.close(`protocol error: ${reason(error)}`);
        }
        this.#events.control(message);
      }
      if (this.phase === "closing") return;
    }
    if (this.#deframer.error) this.close(this.#deframer.error);
  }

  #flush(): void {
    if (!this.#outbox || !this.#socket || this.phase === "closing") return;
    const taken = this.#socket.write(this.#outbox);
    this.#outbox = taken >= this.#outbox.length ? undefined : this.#outbox.subarray(Math.max(taken, 0));
  }
}
