// What tcp:// and relp:// share: a TCP listener for the local daemon, at most --input-connections
// connections on it, each read by its protocol's session, not read while the session waits (for
// room in the intake, or for the peer to take our answers), and cut when the peer owes the rest of
// a frame, or RELP's open, for longer than --input-timeout. These inputs are meant for the local
// daemon; bound to an address others reach, anyone there may send messages as over UDP, and hold
// the connections.

import type { Socket, TCPSocketListener } from "bun";
import { Fifo, formatAddress, peerText } from "../../lib.ts";
import { Input, type InputNumbers, type InputOptions } from "./input.ts";

export interface StreamOptions extends InputOptions {
  /** --input-connections: connections open at once; one more is closed at once. */
  maxConnections: number;
  /** --input-timeout, in ms: how long a frame begun, or RELP's open, may take. */
  timeoutMs: number;
}

/** What one connection speaks: what differs between tcp:// and relp://. */
export interface Session {
  /**
   * Reads the peer's bytes, as room in the intake comes: one that finds they cannot be read on
   * (a malformed frame) cuts the connection itself, then or later.
   */
  read(chunk: Uint8Array): void;
  /** What the peer owes, begun and not finished ("the rest of a frame", "RELP's open"): the deadline runs. */
  readonly owing: string | undefined;
  /** Frames read whole so far: each one restarts the deadline, which is for one frame, not a stream of them. */
  readonly frames: number;
  /** The connection closed, by either side. */
  ended(): void;
  /** Messages read and not handed on yet (no room in the buffer): a closed connection keeps its place till then. */
  readonly holding: boolean;
  /** The socket took all that was written to it. */
  drained(): void;
  /** slps stops: the last word before the connection closes, where the protocol has one. */
  farewell(): void;
}

/** One connection: its socket, its session, whether it is read, and the bytes its socket has not taken yet. */
export class Link {
  readonly remote: string;
  session!: Session;
  /** Since when the peer owes something while it is read (performance.now()); undefined while it owes nothing. */
  owedSince: number | undefined;
  /** The session's `frames` when the deadline last started. */
  #framesThen = 0;
  readonly #socket: Socket<Link>;
  #reading = true;
  /** What was written and the socket did not take whole yet, in order: Bun's write buffers nothing. */
  readonly #outbox = new Fifo<Uint8Array>((bytes) => bytes.length);
  /** Bytes of the oldest in the outbox that the socket took already. */
  #taken = 0;
  #ending = false;
  /** Closed, by either side: nothing more is written or read. */
  closed = false;

  constructor(socket: Socket<Link>, remote: string) {
    this.#socket = socket;
    this.remote = remote;
  }

  /** Bytes written and not yet taken by the socket. */
  get unsent(): number {
    return this.#outbox.weight - this.#taken;
  }

  /** Goes on reading, or stops: then the kernel holds what the peer sends, and then the peer waits. */
  reading(read: boolean): void {
    if (read === this.#reading || this.closed) return;
    this.#reading = read;
    if (read) this.#socket.resume();
    else this.#socket.pause();
    this.owed();
  }

  /** Starts or stops the deadline, as the session owes something or not, and is read. */
  owed(): void {
    const { owing, frames } = this.session;
    if (!this.#reading || owing === undefined) this.owedSince = undefined;
    else if (this.owedSince === undefined || frames !== this.#framesThen) this.owedSince = performance.now();
    this.#framesThen = frames;
  }

  write(bytes: Uint8Array): void {
    if (this.closed) return;
    this.#outbox.push(bytes);
    if (this.#outbox.length === 1) this.flush();
  }

  /** Writes what waits, as far as the socket takes it; true once nothing does. */
  flush(): boolean {
    for (let bytes = this.#outbox.at(0); bytes; bytes = this.#outbox.at(0)) {
      const rest = bytes.subarray(this.#taken);
      const taken = Math.max(0, this.#socket.write(rest));
      if (taken < rest.length) {
        this.#taken += taken;
        return false;
      }
      this.#outbox.shift();
      this.#taken = 0;
    }
    if (this.#ending) this.#socket.end();
    return true;
  }

  /** Ends our side once what waits is written; a peer that does not close its side is cut at the deadline. */
  end(): void {
    this.#ending = true;
    if (this.#outbox.length === 0) this.#socket.end();
  }

  cut(): void {
    this.#socket.terminate();
  }
}

export abstract class StreamInput extends Input {
  readonly #options: StreamOptions;
  readonly #links = new Set<Link>();
  #listener: TCPSocketListener<Link> | undefined;
  #refused = 0;

  constructor(address: { kind: "tcp" | "relp"; host: string; port: number }, options: StreamOptions) {
    super(address, options);
    this.#options = options;
  }

  /** The session of a new connection. */
  protected abstract session(link: Link): Session;

  async open(): Promise<void> {
    const { host, port } = this.address as { host: string; port: number };
    this.#listener = Bun.listen<Link>({
      hostname: host,
      port,
      socket: {
        open: (socket) => this.#opened(socket),
        data: (socket, chunk) => this.#read(socket.data, chunk),
        drain: (socket) => {
          if (socket.data?.flush()) socket.data.session.drained();
        },
        close: (socket) => this.#closed(socket.data),
        error: (socket, error) => {
          if ((error as NodeJS.ErrnoException).code === "ECONNRESET") return;
          this.note("connection error", `${socket.data?.remote ?? "?"}: ${peerText(error.message)}`);
        },
      },
    });
  }

  close(): void {
    for (const link of this.#links) {
      link.session.farewell();
      link.end();
    }
    this.#listener?.stop(false);
  }

  override housekeeping(now: number): void {
    const timeout = this.#options.timeoutMs;
    for (const link of this.#links) {
      if (link.closed && !link.session.holding) this.#links.delete(link);
      if (link.closed || link.owedSince === undefined || now - link.owedSince < timeout) continue;
      this.cut(link, `${link.session.owing} did not come within ${timeout / 1000} s (--input-timeout)`);
    }
    super.housekeeping(now);
  }

  override numbers(): InputNumbers {
    return { ...super.numbers(), connections: this.#links.size, refusedConnections: this.#refused };
  }

  /** Closes the connection at once, and says why in the next second's lines. */
  protected cut(link: Link, why: string): void {
    this.note("closed a connection", `${link.remote}: ${peerText(why)}`);
    link.cut();
  }

  #opened(socket: Socket<Link>): void {
    const host = socket.remoteAddress;
    // A connection reset before this callback ran has no address left: nobody to serve.
    if (host === undefined) return void socket.terminate();
    const remote = formatAddress({ host, port: socket.remotePort });
    if (this.#links.size >= this.#options.maxConnections) {
      this.#refused++;
      this.note(
        "refused a connection",
        `${remote}: ${this.#options.maxConnections} open already (--input-connections)`,
      );
      return void socket.terminate();
    }
    const link = new Link(socket, remote);
    socket.data = link;
    link.session = this.session(link);
    this.#links.add(link);
    link.owed();
  }

  #read(link: Link | undefined, chunk: Uint8Array): void {
    if (!link || link.closed || !this.#links.has(link)) return;
    link.session.read(chunk);
    link.owed();
  }

  /**
   * A connection that closed while it held messages keeps its place among the connections until
   * they are handed on (housekeeping lets it go): so what closed connections hold is bounded by
   * --input-connections too, however often a peer connects, sends and leaves.
   */
  #closed(link: Link | undefined): void {
    if (!link || link.closed || !this.#links.has(link)) return;
    link.closed = true;
    link.session.ended();
    if (!link.session.holding) this.#links.delete(link);
  }
}
