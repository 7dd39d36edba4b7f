// What a receiving end of the bench keeps of one stream of the load generator's messages: every
// sequence number (missing, duplicate, out of order) and the latency of each message from the
// stamp inside it to its arrival, on the clock of bench/clock.ts. The sink keeps one per UDP
// port, the fan-out client one per TLS connection.
//
// A message reads `<13>bench SEQ SENT_NS padding`, possibly behind a header a relaying daemon
// added; SENT_NS is nowNs() when the generator handed it to the kernel.

const MARK = Buffer.from("bench ");
const SPACE = 0x20;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
/** The highest sequence number taken for one: the bitmap of those seen stays within 16 MB. */
const MAX_SEQ = 1 << 24;
/** How far into a message the mark is looked for: past any header a daemon may add. */
const SEARCHED = 256;

/** Where the mark ends in bytes[start, end), or -1. */
function afterMark(bytes: Uint8Array, start: number, end: number): number {
  const last = Math.min(end, start + SEARCHED) - MARK.length;
  outer: for (let i = start; i <= last; i++) {
    for (let j = 0; j < MARK.length; j++) if (bytes[i + j] !== MARK[j]) continue outer;
    return i + MARK.length;
  }
  return -1;
}

/** Where the number that `numberAt` read last ended. Kept outside, so a message costs no object. */
let numberEnd = 0;

/** The decimal number at `at` in `bytes`, before `end`, that a space ends; or -1. */
function numberAt(bytes: Uint8Array, at: number, end: number): number {
  let value = 0;
  let i = at;
  for (; i < end && bytes[i]! >= DIGIT_0 && bytes[i]! <= DIGIT_9; i++) value = value * 10 + (bytes[i]! - DIGIT_0);
  numberEnd = i;
  return i > at && i < end && bytes[i] === SPACE ? value : -1;
}

export interface TallyReport {
  /** Messages received, the load generator's or not. */
  received: number;
  /** Distinct sequence numbers among them. */
  distinct: number;
  /** Sequence numbers 1..sent never received (0 when `sent` was not given). */
  missing: number;
  duplicates: number;
  /** Received after a later sequence number had been. */
  outOfOrder: number;
  /** Received, but not a message of the load generator. */
  foreign: number;
  /** Latency from stamp to arrival, in ms. */
  p50: number;
  p99: number;
  max: number;
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : 0;

/** p50, p99 and max in ms of latencies in µs, from one stream or pooled from many. */
export function percentiles(latencies: Float64Array[]): { p50: number; p99: number; max: number } {
  const all = new Float64Array(latencies.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of latencies) {
    all.set(part, at);
    at += part.length;
  }
  all.sort();
  return { p50: percentile(all, 0.5) / 1000, p99: percentile(all, 0.99) / 1000, max: (all.at(-1) ?? 0) / 1000 };
}

export class Tally {
  #received = 0;
  #distinct = 0;
  #duplicates = 0;
  #outOfOrder = 0;
  #foreign = 0;
  #highest = 0;
  /** One byte per sequence number: seen or not. */
  #seen = new Uint8Array(1 << 16);
  /** Latencies in µs; a typed array, so that a million of them is no work for the collector. */
  #latencies = new Float64Array(1 << 14);

  get received(): number {
    return this.#received;
  }

  /** Counts one message, bytes[start, end), that arrived at `arrivedNs`. */
  record(bytes: Uint8Array, arrivedNs: number, start = 0, end = bytes.length): void {
    this.#received++;
    const mark = afterMark(bytes, start, end);
    const seq = mark < 0 ? -1 : numberAt(bytes, mark, end);
    const sentNs = seq < 1 ? -1 : numberAt(bytes, numberEnd + 1, end);
    if (seq < 1 || seq > MAX_SEQ || sentNs < 0) {
      this.#foreign++;
      return;
    }
    if (seq >= this.#seen.length) {
      const larger = new Uint8Array(Math.max(seq + 1, this.#seen.length * 2));
      larger.set(this.#seen);
      this.#seen = larger;
    }
    if (this.#seen[seq]) {
      this.#duplicates++;
    } else {
      this.#seen[seq] = 1;
      if (seq < this.#highest) this.#outOfOrder++;
      const index = this.#distinct++;
      if (index >= this.#latencies.length) {
        const larger = new Float64Array(this.#latencies.length * 2);
        larger.set(this.#latencies);
        this.#latencies = larger;
      }
      this.#latencies[index] = (arrivedNs - sentNs) / 1000;
    }
    this.#highest = Math.max(this.#highest, seq);
  }

  /** The latency of each distinct message since the last report, in µs, in order of arrival. */
  latencies(): Float64Array {
    return this.#latencies.subarray(0, this.#distinct);
  }

  /** What arrived since the last report, given how many messages were sent; then starts afresh. */
  report(sent = 0): TallyReport {
    let missing = 0;
    for (let seq = 1; seq <= sent; seq++) if (!this.#seen[seq]) missing++;
    const report = {
      received: this.#received,
      distinct: this.#distinct,
      missing,
      duplicates: this.#duplicates,
      outOfOrder: this.#outOfOrder,
      foreign: this.#foreign,
      ...percentiles([this.latencies()]),
    };
    this.#received = this.#distinct = this.#duplicates = this.#outOfOrder = this.#foreign = this.#highest = 0;
    this.#seen = new Uint8Array(1 << 16);
    this.#latencies = new Float64Array(1 << 14);
    return report;
  }
}
