// The connection to the home daemon that tcp:// and relp:// share: dialled at start, and again
// with backoff whenever it breaks (the daemon restarted), and an outbox for the bytes its socket
// did not take yet, since Bun's write buffers nothing. What goes over it is the output's business.

import type { Socket } from "bun";
import { type Address, nextBackoff } from "../../lib.ts";

/** Seconds between attempts to reach the daemon again, doubling from the first. */
const RETRY_MIN = 0.1;
const RETRY_MAX = 5;
/** A connection that lasted this long was a working daemon: its loss is news, and the retry is quick. */
const STAYED_UP_MS = 10_000;

export interface LinkEvents {
  /** A connection is up: the outbox is empty, and nothing of an earlier connection is owed on it. */
  opened(): void;
  data(chunk: Uint8Array): void;
  /** The socket took everything written to it. */
  drained(): void;
  /**
   * The connection is gone; another is dialled after the backoff, unless slpc stops. One that
   * `stayedUp` was a working daemon: its loss is news.
   */
  lost(error: Error, stayedUp: boolean): void;
}

export class DaemonLink {
  /** The socket of the connection that is up, if one is. */
  socket: Socket | undefined;
  readonly #to: Address;
  readonly #events: LinkEvents;
  readonly #stopping: () => boolean;
  /** The connection being dialled or used: events of an abandoned one are ignored. */
  #current: object | undefined;
  /** Connections in a row that broke before the daemon took a message: the wait before the next grows. */
  #failures = 0;
  #openedAt: number | undefined;
  /** Bytes the socket has not taken yet, in order. */
  #outbox: Buffer[] = [];

  constructor(to: Address, events: LinkEvents, stopping: () => boolean) {
    this.#to = to;
    this.#events = events;
    this.#stopping = stopping;
  }

  /** Whether bytes wait for the socket: the daemon pushes back. */
  get backedUp(): boolean {
    return this.#outbox.length > 0;
  }

  dial(): void {
    if (this.#stopping()) return;
    const current = {};
    this.#current = current;
    Bun.connect({
      hostname: this.#to.host,
      port: this.#to.port,
      socket: {
        open: (socket) => {
          if (this.#current !== current) return void socket.terminate();
          [this.socket, this.#openedAt, this.#outbox] = [socket, performance.now(), []];
          this.#events.opened();
        },
        data: (_socket, chunk) => {
          if (this.#current === current) this.#events.data(chunk);
        },
        drain: () => {
          if (this.#current !== current) return;
          this.write(new Uint8Array(0));
          this.#events.drained();
        },
        close: (_socket, error) => this.#lost(current, error),
        connectError: (_socket, error) => this.#lost(current, error),
      },
    }).catch(() => {
      // connectError has it.
    });
  }

  /** Writes `bytes` after what waits; what the socket does not take now waits for `drain`. */
  write(bytes: Uint8Array): void {
    if (bytes.length > 0) this.#outbox.push(Buffer.from(bytes));
    while (this.socket && this.#outbox.length > 0) {
      const chunk = this.#outbox[0]!;
      const taken = Math.max(0, this.socket.write(chunk));
      if (taken < chunk.length) {
        this.#outbox[0] = chunk.subarray(taken);
        return;
      }
      this.#outbox.shift();
    }
  }

  /** Hangs up for good, quietly: slpc stops. */
  close(): void {
    const socket = this.socket;
    [this.#current, this.socket] = [undefined, undefined];
    socket?.terminate();
  }

  /** The daemon took a message after failures: the backoff starts afresh. */
  recovered(): void {
    this.#failures = 0;
  }

  #lost(current: object, error?: Error): void {
    if (this.#current !== current) return;
    const stayedUp = this.#openedAt !== undefined && performance.now() - this.#openedAt >= STAYED_UP_MS;
    [this.#current, this.socket, this.#openedAt, this.#outbox] = [undefined, undefined, undefined, []];
    if (stayedUp) this.recovered();
    this.#events.lost(error ?? new Error("the daemon closed the connection"), stayedUp);
    if (this.#stopping()) return;
    setTimeout(() => this.dial(), nextBackoff(this.#failures++, RETRY_MIN, RETRY_MAX) * 1000);
  }
}
