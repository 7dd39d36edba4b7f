// --forward unix:PATH: one datagram a message, addressed by path, so that a daemon that made its
// socket anew is found without more ado. A local socket does not drop: a full queue says so, and
// slpc waits; a message is confirmed once the daemon's queue took it.

import { UnixDatagramSender } from "../../lib.ts";
import { Output, type OutputOptions } from "./output.ts";

/** How long before a full queue of the daemon's is tried again. */
const FULL_RETRY_MS = 5;
/** Messages too large for the socket are said at most this often, with the count. */
const TOO_LARGE_LINE_MS = 60_000;

export class UnixOutput<S> extends Output<S> {
  readonly #sender: UnixDatagramSender;
  /** The daemon's queue was full at the last send; the next try clears it. */
  #queueFull = false;
  /** Messages skipped as larger than the socket takes, since the last line about them, and when that was. */
  #tooLarge = { unsaid: 0, saidAt: Number.NEGATIVE_INFINITY };

  /** Throws when the system gives no socket. */
  constructor(options: OutputOptions<S>, path: string) {
    super(options);
    this.#sender = new UnixDatagramSender(path);
  }

  override get full(): boolean {
    return this.failing || this.#queueFull;
  }

  override close(): void {
    super.close();
    this.#sender.close();
  }

  unconfirmed(count: number, seconds: number): string {
    return `${this.name} did not take ${count} messages within ${seconds} s; --state records only what it took`;
  }

  protected sendWaiting(): void {
    this.#queueFull = false;
    for (;;) {
      const next = this.ledger.next(1)[0];
      if (!next || this.allowed(1) === 0) return;
      let result: "sent" | "full";
      try {
        result = this.#sender.send(next.message);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EMSGSIZE") {
          this.#skipTooLarge(next.message.length);
          continue;
        }
        // No daemon there (ENOENT, ECONNREFUSED) or not allowed: the messages stay, and the servers hold the rest.
        this.sendFailed(error);
        return;
      }
      // A socket takes a datagram or says why at once: one taken after a failure means the daemon is back.
      if (this.failing) {
        this.up();
        this.recovered();
      }
      if (result === "full") {
        this.#queueFull = true;
        this.later(FULL_RETRY_MS);
        return;
      }
      this.ledger.give(1);
      this.ledger.confirm(1);
    }
  }

  /**
   * A datagram larger than the socket carries (EMSGSIZE: its send buffer, net.core.wmem_default)
   * would never go, and waiting for it would stall every message behind it. It is skipped, counted
   * (`undeliverable`) and said, at most once a minute with the count.
   */
  #skipTooLarge(bytes: number): void {
    this.ledger.give(1);
    this.ledger.confirm(1, "undeliverable");
    const tooLarge = this.#tooLarge;
    tooLarge.unsaid++;
    if (performance.now() - tooLarge.saidAt < TOO_LARGE_LINE_MS) return;
    const count = tooLarge.unsaid > 1 ? `${tooLarge.unsaid} messages` : "a message";
    const what = `${count} larger than the socket takes (EMSGSIZE, ${bytes} bytes the last)`;
    const fix = "raise net.core.wmem_default, or have the sender keep messages shorter";
    this.log(`forward to ${this.name}: skipped ${what}; ${fix}`);
    this.#tooLarge = { unsaid: 0, saidAt: performance.now() };
  }
}
