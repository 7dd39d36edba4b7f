// What every output of slpc shares: where it takes messages from (the ledger's line), the pace
// --forward-rate sets, the wait after a failed send, and the failure line said at most once a
// minute. Each transport's file holds only what differs: how it sends, and what counts as taken.

import { type Ledger, reason, type TokenBucket } from "../../lib.ts";

/** While sends to --forward fail, how long before the messages kept are tried again. */
export const FORWARD_RETRY_MS = 1000;
/** A failure of --forward is said at once, then at most this often, with the count. */
const FAILURE_LINE_MS = 60_000;

export interface OutputOptions<S> {
  /** Where the messages wait, and where the output confirms them. */
  ledger: Ledger<S>;
  /** --forward-rate, or undefined for no limit. */
  rate: TokenBucket | undefined;
  /** The output as log lines name it: --forward as the operator wrote it, or stdout. */
  name: string;
  log: (line: string) => void;
  /** The output may take more, or less, than before: the servers are read again, or not. */
  changed: () => void;
}

/**
 * One output: the home daemon over a transport, or stdout. `send` is called whenever messages
 * may wait (after a read, on `drain`, on a timer); it takes what it can, in order, and confirms
 * in the ledger what arrived as far as its transport tells.
 */
export abstract class Output<S> {
  /** True after a send failed, until one succeeds: no server is read meanwhile. */
  protected failing = false;
  protected readonly ledger: Ledger<S>;
  readonly #options: OutputOptions<S>;
  #timer: Timer | undefined;
  /** After a failed send, when the next may go (performance.now() milliseconds). */
  #retryAt = 0;
  /** Failures since the last line about them, and when that was. */
  #failures = { count: 0, saidAt: Number.NEGATIVE_INFINITY };
  /** Set when a failure was said, until the output says it is back. */
  #failureSaid = false;
  /** Set once slpc stops: nothing more is given to the transport (see `finish`). */
  #finishing = false;

  constructor(options: OutputOptions<S>) {
    this.#options = options;
    this.ledger = options.ledger;
  }

  /** The output as log lines name it. */
  get name(): string {
    return this.#options.name;
  }

  /** Sends what waits, as far as the rate and the transport allow; then the servers are read, or not. */
  send(): void {
    if (this.#finishing) return;
    const wait = this.#retryAt - performance.now();
    // A timer may fire a little early: it comes back for the rest, or the output would wait for a
    // read that never comes.
    if (wait > 0) this.later(Math.ceil(wait));
    else this.sendWaiting();
    this.#options.changed();
  }

  /** Whether the output takes nothing more now: no server is read while it is. */
  get full(): boolean {
    return this.failing;
  }

  /**
   * Sends what --forward-rate and the transport allow now, and nothing after: slpc stops, and waits
   * only for what the transport was given. Sending on at the rate would hold SIGTERM for its whole
   * wait, and the line at its end would blame the daemon for what slpc was still sending.
   */
  finish(): void {
    this.send();
    this.#finishing = true;
  }

  /** Lets go of its sockets; what it held stays unconfirmed, for the next start to send again. */
  close(): void {
    clearTimeout(this.#timer);
  }

  /** What the failure line asks the operator to look at. */
  protected get question(): string {
    return "is the syslog daemon listening?";
  }

  /** The line for `count` messages still unconfirmed when SIGTERM's wait of `seconds` ran out. */
  abstract unconfirmed(count: number, seconds: number): string;

  /** Sends what waits in the ledger's line, by the transport. */
  protected abstract sendWaiting(): void;

  protected log(line: string): void {
    this.#options.log(line);
  }

  /** What it takes changed by itself (a confirmation, a refusal): the servers are read again, or not. */
  protected changed(): void {
    this.#options.changed();
  }

  /** How many of the next `count` messages --forward-rate lets go now; with none, `send` comes back when it does. */
  protected allowed(count: number): number {
    const rate = this.#options.rate;
    if (!rate) return count;
    const now = performance.now();
    let allowed = 0;
    while (allowed < count && rate.take(now)) allowed++;
    if (allowed === 0) this.later(Math.max(1, rate.wait()));
    return allowed;
  }

  /** Calls `send` again in `ms`, unless it is already due sooner. */
  protected later(ms: number): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.send();
    }, ms);
  }

  /**
   * A send failed: said (see `failed`), and nothing more goes until FORWARD_RETRY_MS from now, or
   * a daemon that went away would be sent, and would lose, whatever came meanwhile.
   */
  protected sendFailed(error: unknown, note = ""): boolean {
    const said = this.failed(error, note);
    this.#retryAt = performance.now() + FORWARD_RETRY_MS;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.later(FORWARD_RETRY_MS);
    return said;
  }

  /**
   * Counts a failure, and says it at once, then at most once a minute with the count; `note` ends
   * that line. Returns whether it was said.
   */
  protected failed(error: unknown, note = ""): boolean {
    this.failing = true;
    this.#failures.count++;
    if (performance.now() - this.#failures.saidAt < FAILURE_LINE_MS) return false;
    const { count } = this.#failures;
    const times = count > 1 ? ` (${count} times since the last report)` : "";
    const why = error ? reason(error) : "not reachable";
    this.log(`forward to ${this.name}: ${why}${times}; ${this.question}${note}`);
    this.#failureSaid = true;
    this.#failures = { count: 0, saidAt: performance.now() };
    return true;
  }

  /** The daemon is there again (a connection, a session): said if its failure was, and the sends go on. */
  protected up(): void {
    this.failing = false;
    if (this.#failureSaid) this.log(`forward to ${this.name}: connected`);
    this.#failureSaid = false;
  }

  /** The daemon took a message after failures: the next failure is news, said at once. */
  protected recovered(): void {
    this.#failures.saidAt = Number.NEGATIVE_INFINITY;
  }
}
