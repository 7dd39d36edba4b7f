// What one datagram costs slps's filter path, by kind (issue 17): the full parse slps ran for
// filters before, beside what it runs now, and the memory of keeping one parse. Usage:
//
//   bun bench/filter_cost.ts [ROUNDS]      (default 200 parses of each kind, best of 5 runs)
//
// Prints a Markdown table: microseconds a message, and bytes of heap kept per cached parse.

import { heapStats } from "bun:jsc";
import { parseSyslog } from "../lib.ts";
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

const round = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(0));
const rows = [
  "| datagram | bytes | full parse µs | filter path µs | full parse kept, bytes | filter path kept, bytes |",
];
rows.push("|---|---:|---:|---:|---:|---:|");
for (const [kind, input] of Object.entries(HOSTILE)) {
  const cells = [timed(full, input), timed(filterPath, input), kept(full, input), kept(filterPath, input)];
  rows.push(`| ${kind} | ${input.length} | ${cells.map(round).join(" | ")} |`);
}
console.log(rows.join("\n"));
