// Preloaded into slps or slpc by bench/profile.ts (`bun --preload bench/probe.ts slps.ts ...`):
// counts the timers the program arms, and on SIGUSR2 writes one line to stderr,
// `probe {"armed": {...}, "live": {...}, "afterGc": {...}, "heapBytes": N}`: the timers armed so
// far by kind, the objects on the JavaScript heap by type as they stand (`live`, which holds every
// object allocated since the last collection, dead or not) and after a full collection
// (`afterGc`), and then the heap's bytes, with the native memory JSC knows its objects hold.
// Run with collections off meanwhile (bench/profile.ts's PROBE_ENV), one probe's `live` less the
// one before's `afterGc` is every object allocated in between.

import { heapStats } from "bun:jsc";

const armed = { setTimeout: 0, setInterval: 0, setImmediate: 0, queueMicrotask: 0, nextTick: 0 };
type Scheduler = (...args: unknown[]) => unknown;
type SchedulerName = "setTimeout" | "setInterval" | "setImmediate" | "queueMicrotask";
const scope = globalThis as unknown as Record<SchedulerName, Scheduler>;
for (const name of ["setTimeout", "setInterval", "setImmediate", "queueMicrotask"] as const) {
  const original = scope[name];
  scope[name] = (...args) => {
    armed[name]++;
    return original(...args);
  };
}
const nextTick = process.nextTick;
process.nextTick = (...args: Parameters<typeof nextTick>) => {
  armed.nextTick++;
  return nextTick(...args);
};

process.on("SIGUSR2", () => {
  const live = heapStats().objectTypeCounts;
  Bun.gc(true);
  const stats = heapStats();
  const [afterGc, heapBytes] = [stats.objectTypeCounts, stats.heapSize + stats.extraMemorySize];
  process.stderr.write(`probe ${JSON.stringify({ armed, live, afterGc, heapBytes })}\n`);
});
