// One clock for every process of the bench. A message is stamped by the load generator and
// read by a sink in another process, so the latency is only as good as the agreement of their
// clocks. Bun's `process.hrtime` and `Bun.nanoseconds()` count from the start of each process,
// and `performance.timeOrigin` is the wall clock read once at start, so none of them is shared.
// CLOCK_MONOTONIC, read through libc, is one clock for the whole machine on Linux (bench.test.ts
// checks that a child's reading falls between two of its parent's).

import { dlopen, FFIType, ptr } from "bun:ffi";

const CLOCK_MONOTONIC = 1;
const TIMER_ABSTIME = 1;
const PR_SET_TIMERSLACK = 29;

function openLibc() {
  try {
    return dlopen("libc.so.6", {
      clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      clock_nanosleep: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
      prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
    }).symbols;
  } catch {
    return undefined;
  }
}

const libc = openLibc();
// A struct timespec (two 64-bit fields) read as 32-bit words: seconds since boot fit in the low
// word for 68 years. The views exist before `ptr` is taken, since JSC may move the storage of
// a small typed array the first time its buffer is touched.
const now32 = new Int32Array(new ArrayBuffer(16));
const nowPointer = libc ? ptr(now32) : 0;
const until32 = new Int32Array(new ArrayBuffer(16));
const untilPointer = libc ? ptr(until32) : 0;
const shared = new Int32Array(new SharedArrayBuffer(4));

/** Which clock `nowNs` reads: the same in every process of one run. */
export const CLOCK_NAME = libc ? "CLOCK_MONOTONIC" : "the wall clock at each process's start (libc.so.6 not found)";

/** Nanoseconds on a clock every process on this machine shares. */
export const nowNs: () => number = libc
  ? () => {
      libc.clock_gettime(CLOCK_MONOTONIC, nowPointer);
      return now32[0]! * 1e9 + (now32[2]! >>> 0);
    }
  : () => (performance.timeOrigin + performance.now()) * 1e6;

/**
 * Blocks the thread until `nowNs()` reaches `due`. The kernel wakes a sleeper up to its timer
 * slack late (50 µs by default; `fineTimers` makes it 1 ns), and the last `spinNs` are spent
 * polling the clock, so the wake-up lands within a few microseconds.
 */
export function sleepUntilNs(due: number, spinNs = 10_000): void {
  const sleepTo = due - spinNs;
  if (sleepTo > nowNs()) {
    if (libc) {
      until32[0] = Math.floor(sleepTo / 1e9);
      until32[1] = 0;
      until32[2] = Math.floor(sleepTo % 1e9);
      until32[3] = 0;
      libc.clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, untilPointer, null);
    } else {
      Atomics.wait(shared, 0, 0, (sleepTo - nowNs()) / 1e6);
    }
  }
  while (nowNs() < due);
}

/** Asks the kernel to wake this process's sleeps on time rather than up to 50 µs late. */
export function fineTimers(): void {
  libc?.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
}
