// One TLS connection to a server, from dialling to close: its phases and their deadlines, the
// tunnel through a proxy when there is one, the server certificate's checks, the frames it reads
// (with a bound on control frames), and the control messages it writes. What the frames mean is
// the Upstream's business (slpc/upstream.ts).
//
// Through a proxy: plain TCP to it, a tunnel, then TLS on that same socket (Bun's upgradeTLS): the
// proxy sees only ciphertext, and the server's certificate gets the same checks as directly.

import { lookup } from "node:dns/promises";
import { checkServerIdentity } from "node:tls";
import type { Socket, SocketHandler } from "bun";
import {
  type Address,
  type ControlMessage,
  clientTls,
  Deframer,
  encodeControl,
  formatProxy,
  ipBytes,
  isNetworkError,
  MAX_MESSAGE,
  ProxyHandshake,
  type ProxyUrl,
  parseControl,
  peerText,
  reason,
  type TlsFiles,
  type TunnelStep,
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
 * counted only while slpc reads; closing lasts until the socket is gone. Connecting includes the
 * proxy's part: its TCP connection and the tunnel's opening.
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
  /** The proxy to dial the server through; none: directly. */
  proxy?: ProxyUrl;
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
  /** Control frames (or a proxy's request) the socket has not taken yet: Bun's write buffers nothing. */
  #outbox: Uint8Array | undefined;
  /** Set once the proxy opened the tunnel: TLS has begun on its socket. */
  #tunnelOpen = false;
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

  /** Dials the server, directly or through the proxy. */
  dial(): void {
    const { address, target, log, proxy } = this.#settings;
    this.#enter("connecting");
    if (!proxy) {
      Bun.connect({
        hostname: address.host,
        port: address.port,
        tls: clientTls(this.#settings.tls, this.#settings.serverName),
        socket: {
          ...this.#tlsHandlers(),
          connectError: (_socket, error) => {
            if (!this.#ended) log(`cannot connect to ${target}: ${reason(error)}`);
            this.#end();
          },
        },
      }).catch(() => {
        // connectError has logged it.
      });
      return;
    }
    if (proxy.kind !== "socks5" || ipBytes(address.host)) return this.#dialProxy(proxy, address);
    // socks5:// sends the proxy an address, so the name is resolved here, within the same deadline.
    lookup(address.host).then(
      (found) => {
        if (!this.#ended) this.#dialProxy(proxy, { host: found.address, port: address.port });
      },
      (error) => {
        if (this.#ended) return;
        const why = "socks5h:// would let the proxy resolve it";
        log(`${target}: cannot resolve ${address.host} for proxy ${formatProxy(proxy)} (${why}): ${reason(error)}`);
        this.#end();
      },
    );
  }

  /**
   * Dials the proxy and asks it for a tunnel to `to`; once it is open, TLS begins on the same
   * socket. Bun hands the TLS connection's ciphertext to the plain socket's `data` too (its issue
   * 36534): once the tunnel is open, that is ignored.
   */
  #dialProxy(proxy: ProxyUrl, to: Address): void {
    const { target, log } = this.#settings;
    const tunnel = new ProxyHandshake(proxy, to);
    const step = (socket: Socket, next: TunnelStep): void => {
      switch (next.type) {
        case "send":
          this.#write(next.bytes);
          return;
        case "wait":
          return;
        case "failed":
          return this.close(`proxy ${formatProxy(proxy)} ${next.reason}`);
        case "open":
          this.#tunnelOpen = true;
          socket.upgradeTLS({
            tls: clientTls(this.#settings.tls, this.#settings.serverName),
            socket: this.#tlsHandlers(),
          });
          return;
      }
    };
    Bun.connect({
      hostname: proxy.host,
      port: proxy.port,
      socket: {
        open: (socket) => {
          if (this.#ended) return void socket.terminate(); // abandoned while dialling
          this.#socket = socket;
          step(socket, tunnel.start());
        },
        data: (socket, chunk) => {
          if (this.phase === "connecting" && !this.#tunnelOpen) step(socket, tunnel.receive(chunk));
        },
        drain: () => this.#flush(),
        close: (_socket, error) => this.#end(error),
        connectError: (_socket, error) => {
          if (!this.#ended) log(`cannot connect to proxy ${formatProxy(proxy)} for ${target}: ${reason(error)}`);
          this.#end();
        },
        error: (_socket, error) => {
          if (!this.#tunnelOpen) log(`${target}: proxy ${formatProxy(proxy)}: ${reason(error)}`);
        },
      },
    }).catch(() => {
      // connectError has logged it.
    });
  }

  /** The TLS socket's life, the same directly and through a tunnel. */
  #tlsHandlers(): SocketHandler<undefined> {
    const { target, log } = this.#settings;
    return {
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
      error: (_socket, error) => log(`${target}: ${reason(error)}`),
    };
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
    this.#write(encodeControl(message));
  }

  #write(bytes: Uint8Array): void {
    this.#outbox = this.#outbox ? Buffer.concat([this.#outbox, bytes]) : bytes;
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
      if (now < this.#setupDeadline) return;
      const proxy = this.#settings.proxy;
      const within = `within ${handshakeTimeout} s (--handshake-timeout)`;
      if (proxy && this.phase === "connecting" && this.#socket)
        this.close(`proxy ${formatProxy(proxy)} did not open the tunnel ${within}`);
      else if (proxy && this.phase === "connecting")
        this.close(`no connection to proxy ${formatProxy(proxy)} ${within}`);
      else this.close(`no TLS handshake, hello and start ${within}`);
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
      case "connecting": {
        this.#setupDeadline = now + handshakeTimeout * 1000;
        const proxy = this.#settings.proxy;
        log(`connecting to ${target}${proxy ? ` through proxy ${formatProxy(proxy)}` : ""}`);
        return;
      }
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
    const { target, log, stopping, proxy } = this.#settings;
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
    } else if (proxy && this.phase === "connecting" && this.#socket && !stopping()) {
      const because = error ? `: ${reason(error)}` : "";
      log(`${target}: proxy ${formatProxy(proxy)} closed the connection before opening the tunnel${because}`);
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
    // EPROTO: TLS failed before a certificate was seen; through a proxy, one that said 200 in vain.
    if (!success && (error as NodeJS.ErrnoException | null)?.code === "EPROTO") {
      const proxy = this.#settings.proxy;
      const through = proxy ? ` through proxy ${formatProxy(proxy)}, which said it opened the tunnel` : "";
      return `TLS handshake failed${through}: ${reason(error)}`;
    }
    const why = error ? reason(error) : "not authorized";
    if (!success || !socket.authorized) return `server certificate refused: ${why}`;
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
