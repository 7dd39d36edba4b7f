// --forward relp://HOST:PORT: up to RELP_WINDOW messages in flight, each confirmed only when the
// daemon acknowledged it. A broken connection sends the unacknowledged again on the next: a
// duplicate at worst, never a loss (lib/relp.ts has the protocol).

import { type Address, peerText, RelpSession } from "../../lib.ts";
import { DaemonLink } from "./daemon_link.ts";
import { Output, type OutputOptions } from "./output.ts";

/** RELP messages in flight at most: librelp's default window, so acknowledgements do not cap throughput. */
const RELP_WINDOW = 128;

export class RelpOutput<S> extends Output<S> {
  readonly #link: DaemonLink;
  readonly #session: RelpSession<null>;
  readonly #overdueCheck: Timer;
  /** The daemon answered the close that renews the session: the end of this connection is no failure. */
  #renewing = false;

  /** `session` is a test's way to bring renewal, at txnr 999,999,999, within reach (a lower `lastTxnr`). */
  constructor(
    options: OutputOptions<S>,
    to: Address,
    stopping: () => boolean,
    session = new RelpSession<null>({ window: RELP_WINDOW }),
  ) {
    super(options);
    this.#session = session;
    this.#link = new DaemonLink(
      to,
      {
        opened: () => {
          this.#link.write(this.#session.open());
          this.send();
        },
        data: (chunk) => this.#received(chunk),
        drained: () => this.send(),
        lost: (error, stayedUp) => {
          this.#session.lost();
          if (stayedUp) this.recovered();
          if (!this.#renewing) this.failed(error);
          this.#renewing = false;
          this.changed();
        },
      },
      stopping,
    );
    this.#link.dial();
    // A daemon that stops answering without closing the connection: give up on it and dial again.
    this.#overdueCheck = setInterval(() => {
      const overdue = this.#session.overdue(performance.now());
      if (!overdue) return;
      this.log(`forward to ${this.name}: ${overdue}`);
      this.#link.socket?.terminate();
    }, 1000);
    this.#overdueCheck.unref();
  }

  override get full(): boolean {
    return this.failing || this.#link.backedUp || this.#session.inFlight >= RELP_WINDOW;
  }

  override close(): void {
    super.close();
    clearInterval(this.#overdueCheck);
    this.#link.close();
  }

  unconfirmed(count: number, seconds: number): string {
    const within = `${count} messages within ${seconds} s`;
    return `${this.name} did not acknowledge ${within}; --state records only what it acknowledged`;
  }

  /** What may go now, in one write: a system call for the lot, not one a message. */
  protected sendWaiting(): void {
    const frames: Uint8Array[] = [];
    while (this.#link.socket && this.#session.phase === "open" && !this.full) {
      const next = this.ledger.next(1)[0];
      if (!next || this.allowed(1) === 0) break;
      const frame = this.#session.send(next.message, null);
      if (!frame) break;
      this.ledger.give(1);
      frames.push(frame);
    }
    if (frames.length > 0) this.#link.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  #received(chunk: Uint8Array): void {
    for (const event of this.#session.receive(chunk)) {
      if (event.type === "opened") {
        this.up();
        this.#link.write(event.resend);
      } else if (event.type === "acknowledged") {
        // Acknowledgements come in the order the messages were sent, which is the ledger's order too.
        this.ledger.confirm(1);
        // Only an acknowledgement proves a daemon took a message; a kernel taking bytes does not.
        this.#link.recovered();
        this.recovered();
      } else {
        // A renewing close is routine; anything else is worth a line. The daemon's words are its own.
        if (event.reason === "the RELP session was closed") this.#renewing = true;
        else this.failed(new Error(peerText(event.reason)));
        this.#link.socket?.end();
      }
    }
    this.send();
  }
}
