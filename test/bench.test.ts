// A smoke run of the benchmark (npm run bench -- --smoke): it runs, and what it writes is whole.
// Speed is not judged here; the full `npm run bench` measures it.

import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, ROOT, removeDir, tempDir } from "./kit.ts";

test("npm run bench -- --smoke measures slp and writes the table, JSON and chart", () => {
  const out = tempDir("slp-bench-smoke-");
  try {
    const run = Bun.spawnSync([BUN, join(ROOT, "bench/run.ts"), "--smoke", "--out", out], {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
      timeout: 120_000,
    });
    expect(run.exitCode).toBe(0);
    const table = run.stdout.toString();
    expect(table).toContain("### Sweep: one client");
    expect(table).toContain("### slps memory with idle clients");
    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(results.sweep.map((row: { offered: number }) => row.offered)).toEqual([1_000, 10_000]);
    for (const row of [...results.sweep, ...results.fanOut]) {
      expect(row.sent).toBeGreaterThan(0);
      expect(row.delivered).toBeGreaterThan(0);
      expect(row.processes.slps.rssMB).toBeGreaterThan(0);
    }
    expect(results.fanOut.map((row: { clients: number }) => row.clients)).toEqual([1, 2]);
    expect(results.idle.clients).toBe(20);
    expect(readFileSync(join(out, "results.svg"), "utf8")).toStartWith("<svg");
    expect(existsSync(join(out, "results.md"))).toBe(true);
  } finally {
    removeDir(out);
  }
}, 150_000);
