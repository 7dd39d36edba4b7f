// The phases of a connection to slps, and how long it may stay in each: the rules of its life as
// plain values, so that every deadline is tested without a socket or a timer.

/**
 * A connection's life, in order: its TLS handshake and certificate checks; once authorized, the
 * wait for its resume request; the stream of messages; and a short goodbye.
 */
export type Phase = "handshaking" | "resuming" | "streaming" | "closing";

/** The deadlines, in milliseconds: --handshake-timeout, --stall, and the goodbye's. */
export interface PhaseLimits {
  handshakeMs: number;
  stallMs: number;
  closingMs: number;
}

/** When things happened to a connection, in milliseconds on one clock. */
export interface PhaseTimes {
  /** When the TCP connection was accepted. */
  openedAt: number;
  /** When its client last said how far it delivered (`progress`). */
  progressAt: number;
  /** When a write to it last left bytes waiting, if they still wait. */
  blockedSince: number | undefined;
  /** When bytes were last handed to its socket. */
  lastWrite: number;
}

/**
 * Milliseconds the connection may stay in `phase` from `now`; zero or less when it overstayed.
 *
 * @example
 * ```ts
 * import { phaseDeadline } from "./lib/phases.ts";
 * const limits = { handshakeMs: 10_000, stallMs: 60_000, closingMs: 2_000 };
 * const times = { openedAt: 0, progressAt: 0, blockedSince: undefined, lastWrite: 0 };
 * console.log(phaseDeadline("resuming", times, limits, 4_000)); // 6000
 * ```
 */
export function phaseDeadline(phase: Phase, times: PhaseTimes, limits: PhaseLimits, now: number): number {
  switch (phase) {
    case "handshaking":
    case "resuming":
      // One clock for both: a client that is slow to handshake has less time to resume.
      return times.openedAt + limits.handshakeMs - now;
    case "streaming":
      // Checked again each --stall while nothing waits; while bytes wait, --stall from the last sign of life.
      if (times.blockedSince === undefined) return limits.stallMs;
      return Math.max(times.blockedSince, times.lastWrite, times.progressAt) + limits.stallMs - now;
    case "closing":
      return limits.closingMs;
  }
}
