// --forward HOST:PORT or udp://HOST:PORT: one datagram a message, many to a sendmmsg(2). UDP gives
// no receipt, but a daemon that is not listening answers with ICMP "port unreachable", which comes
// back as an error event or from the next send: until UDP_SILENCE_MS passed without one, a
// datagram is not confirmed, and a refusal gives every unconfirmed one back to go again.

import type { udp } from "bun";
import { type Address, Fifo } from "../../lib.ts";
import { Output, type OutputOptions } from "./output.ts";

/** Messages handed to the kernel in one sendmmsg(2) call. */
const SEND_BATCH = 64;
/** How long a datagram goes unanswered before it counts as taken: an ICMP refusal takes far less, even on a LAN. */
const UDP_SILENCE_MS = 100;
/**
 * Bytes of datagrams waiting out UDP_SILENCE_MS at most, before no server is read. A bound on
 * memory only: a bound on their number would cap the rate at that number every 100 ms (4,096 of
 * them did: 41,000 messages a second, and a queue of seconds behind it at 50,000).
 */
const UNHEARD_HIGH_BYTES = 16 * 1024 * 1024;

export class UdpOutput<S> extends Output<S> {
  readonly #to: Address;
  #socket: udp.Socket<"buffer"> | undefined;
  /** Each sendmmsg of the datagrams given and unconfirmed, oldest first: how many, and when. */
  readonly #sends = new Fifo<{ count: number; at: number }>();
  #settleTimer: Timer | undefined;
  /** Datagrams sent again after a refusal since the last line said so: the daemon may have taken them once. */
  #sentAgain = 0;

  /** Opens the socket, for the family of `to`'s address; throws when the system gives none. */
  static async open<S>(options: OutputOptions<S>, to: Address & { family: 4 | 6 }): Promise<UdpOutput<S>> {
    const output = new UdpOutput(options, to);
    output.#socket = await Bun.udpSocket({
      hostname: to.family === 6 ? "::" : "0.0.0.0",
      socket: { drain: () => output.send(), error: (_socket, error) => output.#onRefusal(error) },
    });
    return output;
  }

  private constructor(options: OutputOptions<S>, to: Address) {
    super(options);
    this.#to = to;
  }

  override get full(): boolean {
    return this.failing || this.ledger.givenBytes >= UNHEARD_HIGH_BYTES;
  }

  override close(): void {
    super.close();
    clearTimeout(this.#settleTimer);
    this.#socket?.close();
  }

  unconfirmed(count: number, seconds: number): string {
    return `${this.name} refused ${count} datagrams within ${seconds} s; --state records only what it did not`;
  }

  protected sendWaiting(): void {
    for (;;) {
      const waiting = this.ledger.next(SEND_BATCH);
      if (!this.#socket) return;
      // Nothing to try again: a refusal that gave nothing back (it came after its datagrams
      // counted as taken: a slow link, a stray ICMP) must not keep every server unread for good.
      if (waiting.length === 0) {
        this.failing = false;
        return;
      }
      const count = this.allowed(Math.min(SEND_BATCH, waiting.length));
      if (count === 0) return;
      const packets: (Uint8Array | number | string)[] = [];
      for (let i = 0; i < count; i++) packets.push(waiting[i]!.message, this.#to.port, this.#to.host);
      let sent: number;
      try {
        sent = this.#socket.sendMany(packets);
      } catch (error) {
        // A refusal of an earlier datagram comes back here too (ECONNREFUSED).
        return this.#onRefusal(error);
      }
      this.failing = false;
      this.ledger.give(sent);
      this.#sends.push({ count: sent, at: performance.now() });
      this.#settle();
      if (sent < count) return; // the kernel is full: `drain` calls again
    }
  }

  /**
   * The daemon refused a datagram: those sent lately may not have arrived either. They go back to
   * the head of the line, in order, and are tried again later. UDP cannot tell which of them a
   * daemon that went away took before it went: those come twice, and the line says how many may.
   */
  #onRefusal(error: unknown): void {
    clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
    this.#sends.shiftMany(this.#sends.length);
    this.#sentAgain += this.ledger.giveBack().length;
    const again = `${this.#sentAgain} datagrams sent again`;
    const twice = `${again}, which come twice where the daemon took them before it refused`;
    if (this.sendFailed(error, this.#sentAgain > 0 ? `; ${twice}` : "")) this.#sentAgain = 0;
    this.changed();
  }

  /**
   * Datagrams that went unanswered for UDP_SILENCE_MS are confirmed; a timer comes back for the
   * rest, when the newest of them is due. While sends go on, each send confirms what is due by
   * then; the timer only takes the last of them. Timed for the oldest, it fired once per send
   * (at 1,000 messages a second, 0.9 timers and 0.6 more wake-ups a message: bench/profile.ts).
   */
  #settle(): void {
    const now = performance.now();
    let count = 0;
    while (this.#sends.length > 0 && now - this.#sends.at(0)!.at >= UDP_SILENCE_MS) {
      count += this.#sends.shift()!.count;
    }
    if (count > 0) {
      this.ledger.confirm(count);
      this.changed();
    }
    if (this.#sends.length > 0 && !this.#settleTimer) {
      const wait = Math.max(1, UDP_SILENCE_MS - (now - this.#sends.at(this.#sends.length - 1)!.at));
      this.#settleTimer = setTimeout(() => {
        this.#settleTimer = undefined;
        this.#settle();
      }, wait);
    }
  }
}
