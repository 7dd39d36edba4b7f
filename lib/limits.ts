// Limits in time: how often a source address may start a TLS handshake (slps), how fast slpc
// hands messages to the local daemon, and how long slpc waits before it dials again. The time
// comes in as an argument.

/** Addresses the handshake-rate table holds at once (--handshake-rate). */
export const MAX_HANDSHAKE_SOURCES = 50_000;

/**
 * At most `limit` events per key in each fixed window of `windowMs`, the window starting with the
 * key's first event. slps counts TLS handshakes per source address with it, so that one address
 * cannot keep it busy with handshakes.
 *
 * @example
 * const handshakes = new HandshakeLimiter(2, 60_000); // two a minute per address
 * handshakes.allow("192.0.2.1", 0); // "allowed"
 * handshakes.allow("192.0.2.1", 10); // "allowed"
 * handshakes.allow("192.0.2.1", 20); // "rate"
 * handshakes.allow("192.0.2.1", 60_000); // "allowed": a new window
 */
export class HandshakeLimiter {
  #limit: number;
  #windowMs: number;
  #maxKeys: number;
  /** By key, in the order their windows began (a Map keeps insertion order): the oldest first. */
  #counts = new Map<string, { since: number; count: number }>();

  /** @param maxKeys the most keys counted at once: what a scan from many addresses may cost */
  constructor(limit: number, windowMs: number, maxKeys = MAX_HANDSHAKE_SOURCES) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#maxKeys = maxKeys;
  }

  /**
   * Counts one event for `key`: "allowed", or why not: "rate" when the key is over its limit,
   * "full" when the table of keys is full, so that a new key cannot be counted at all.
   */
  allow(key: string, now: number): "allowed" | "rate" | "full" {
    let entry = this.#counts.get(key);
    if (!entry || now - entry.since >= this.#windowMs) {
      // A scan from many addresses costs bounded memory: finished windows are forgotten, and
      // while too many are still open, new addresses are refused until some finish. The oldest
      // come first, so only finished ones are looked at: a walk through a full table for each
      // new address would let 1,750 connections a second take the whole thread.
      this.#counts.delete(key);
      for (const [k, e] of this.#counts) {
        if (this.#counts.size < this.#maxKeys || now - e.since < this.#windowMs) break;
        this.#counts.delete(k);
      }
      if (this.#counts.size >= this.#maxKeys) return "full";
      entry = { since: now, count: 0 };
      this.#counts.set(key, entry);
    }
    return ++entry.count <= this.#limit ? "allowed" : "rate";
  }
}

/**
 * Seconds to wait before reconnect attempt number `attempt` (0 for the first retry): doubling
 * from `min` up to `max`, with jitter so that many clients cut off together don't return in step.
 * The result lies between half the doubled value and the doubled value, never below `min`.
 */
export function nextBackoff(attempt: number, min: number, max: number, random: number = Math.random()): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.max(min, ceiling / 2 + (random * ceiling) / 2);
}

/**
 * A token bucket: at most `perSecond` events a second, in bursts of at most `burst`. slpc uses
 * it to pace what it sends to the local syslog daemon, since a UDP datagram that finds the
 * daemon's receive buffer full is dropped without a word to the sender.
 *
 * @example
 * const bucket = new TokenBucket(1000, 2, 0); // one a millisecond, two at once
 * [bucket.take(0), bucket.take(0), bucket.take(0)]; // [true, true, false]
 * bucket.wait(); // 1: milliseconds until the next token
 */
export class TokenBucket {
  #perMs: number;
  #burst: number;
  #tokens: number;
  #since: number;

  constructor(perSecond: number, burst: number, now: number) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#since = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#since) * this.#perMs);
    this.#since = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** Milliseconds until the next token. */
  wait(): number {
    return Math.max(0, (1 - this.#tokens) / this.#perMs);
  }
}
