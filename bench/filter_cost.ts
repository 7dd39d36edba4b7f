// What one datagram costs slps's filter path, by kind (issue 17): the full parse slps ran for
// filters before, beside the parse it runs now and a lookup in its ParseCache; and the memory of
// keeping a parse: before, one per message a filtering client might still ask for, now one per slot. Usage:
//
//   bun bench/filter_cost.ts [ROUNDS]      (default 200 parses of each kind, best of 5 runs)
//
// Prints a Markdown table: microseconds a message, and bytes of heap kept per parse.

import { heapStats } from "bun:jsc";
import { ParseCache, parseSyslog, ResumeBuffer } from "../lib.ts";
import { HOSTILE } from "./hostile_datagrams.ts";

const ROUNDS = Number(process.argv[2] ?? 200);

/** Microseconds per call of `parse` on `input`: the best of five runs of ROUNDS calls. */
function timed(parse: (input: Uint8Array) => unknown, input: Uint8Array): number {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 5; run++) {
    const start = Bun.nanoseconds();
    for (let i = 0; i < ROUNDS; i++) parse(input);
    best = Math.min(best, (Bun.nanoseconds() - start) / ROUNDS / 1000);
  }
  return best;
}

/** Heap bytes that 100 kept results of `parse` on `input` hold, per result. */
function kept(parse: (input: Uint8Array) => unknown, input: Uint8Array): number {
  Bun.gc(true);
  const before = heapStats().heapSize;
  const results = Array.from({ length: 100 }, () => parse(input));
  Bun.gc(true);
  const after = heapStats().heapSize;
  if (results.length !== 100) throw new Error("unreachable");
  return Math.max(0, (after - before) / 100);
}

const full = (input: Uint8Array) => parseSyslog(input);
const filterPath = (input: Uint8Array) => parseSyslog(input, { structuredData: false });

/** Microseconds a lookup of a message the cache holds takes. */
function hit(input: Uint8Array): number {
  const buffer = new ResumeBuffer(1 << 20);
  const seq = buffer.append(input);
  const cache = new ParseCache(buffer);
  return timed(() => cache.fields(seq), input);
}

/** Heap bytes a cache slot holds: 100 different messages, each in a slot of its own. */
function slot(input: Uint8Array): number {
  const buffer = new ResumeBuffer(1 << 24);
  for (let i = 0; i < 100; i++) buffer.append(input);
  const cache = new ParseCache(buffer);
  let seq = 0;
  return kept(() => cache.fields(++seq), input);
}

const round = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(0));
const rows = [
  "| datagram | bytes | full parse µs (before) | filter parse µs (now) | cache hit µs | " +
    "full parse kept, bytes (before: one per message held) | cache slot, bytes (now: 1,024 slots) |",
];
rows.push("|---|---:|---:|---:|---:|---:|---:|");
for (const [kind, input] of Object.entries(HOSTILE)) {
  const cells = [timed(full, input), timed(filterPath, input), hit(input), kept(full, input), slot(input)];
  rows.push(`| ${kind} | ${input.length} | ${cells.map(round).join(" | ")} |`);
}
console.log(rows.join("\n"));
