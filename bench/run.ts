// The benchmark, on loopback with throwaway certificates. In order:
//   1. the harness floor: the load generator (bench/load.ts) straight into the sink
//      (bench/sink.ts), two processes sharing one clock (bench/clock.ts). No relay can be
//      measured below it, so every run prints it first;
//   2. the sweep: UDP in -> slps -> TLS -> slpc -> UDP out, over offered rates; with
//      --compare rsyslog, two rsyslogd relaying over mutual TLS beside it, and the ratios;
//   3. fan-out: one client process (bench/fanout_client.ts) holding N connections to slps, and
//      the same against the floor server (bench/fanout_floor.ts), which does nothing but fan out;
//   4. the server's memory with many authenticated clients sitting idle, slps and floor server;
//   5. one slpc following three slps at 10,000/s each: delivered share and latency per server;
//   6. the last hop: slpc --forward tcp:// and relp:// into a real rsyslog, and --forward journal
//      into a real journald, at 10,000/s (full run, or --smoke --last-hop);
//   7. slps's --batch-window at each rate: the wait it adds beside the CPU and wake-ups it saves;
//   8. issue 24's goals, each with what this run measured for it (bench/goals.ts).
// Each section is a file of its own: 1 and 2 bench/sweep.ts, 3 and 4 bench/fanout.ts, 5
// bench/many_servers.ts, 6 bench/last_hop.ts, 7 bench/windows.ts, 8 bench/goals.ts. What they share (the processes,
// one measurement, CPU and memory from /proc) is bench/harness.ts, their tables bench/table.ts.
// This file reads the flags, runs the sections in order and writes the results.
//
//   npm run bench                       the full run (a few minutes)
//   npm run bench -- --compare rsyslog  the same, with rsyslog side by side
//   npm run bench -- --smoke            a few seconds, to see that it works (no last hop)
//   npm run bench -- --windows          the batch window's section alone (its rates: --rates)
//   npm run bench -- --rates 10000,0 --fan-out 1,10 --fan-out-rate 10000 --idle 100
//                                       choose what to measure (rate 0: flat out)
//
// Prints the tables and writes bench/results.json, results.md and results.svg (or to --out DIR).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../test/kit.ts";
import { chart } from "./chart.ts";
import { CLOCK_NAME } from "./clock.ts";
import { fanOut, fanOutTables, type IdleRow, idleClients, idleTable } from "./fanout.ts";
import { goalsTable } from "./goals.ts";
import { Bench, type Row } from "./harness.ts";
import { journalUnavailable, type LastHop, lastHopTable, slpInto } from "./last_hop.ts";
import { manyServersTable, slpFollowing } from "./many_servers.ts";
import { compareTable, floorTable, harnessFloor, rsyslogRelay, slpRelay, sweepTable } from "./sweep.ts";
import { f, offeredText, percent } from "./table.ts";
import { type WindowRow, windowsTable, withWindow } from "./windows.ts";

// ---- Options

const argv = process.argv.slice(2);
function usage(text: string): never {
  console.error(`bench: ${text}`);
  process.exit(2);
}
const flagValue = (flag: string) => {
  if (!argv.includes(flag)) return undefined;
  const value = argv[argv.indexOf(flag) + 1];
  if (value === undefined || value.startsWith("--")) usage(`${flag} needs a value`);
  return value;
};
const switches = ["--smoke", "--last-hop", "--windows"];
const known = [...switches, "--compare", "--out", "--rates", "--fan-out", "--fan-out-rate", "--idle"];
const unknown = argv.find(
  (word, i) => word.startsWith("--") && !known.includes(word) && !known.slice(switches.length).includes(argv[i - 1]!),
);
if (unknown) usage(`unknown flag ${unknown} (flags: ${known.join(", ")})`);
/** A comma-separated list of whole numbers, at least `min` each. */
function listOf(flag: string, fallback: number[], min: number): number[] {
  const text = flagValue(flag);
  if (text === undefined) return fallback;
  const items = text.split(",").map((item) => item.trim());
  if (items.some((item) => !/^\d+$/.test(item) || Number(item) < min))
    usage(`${flag} "${text}": expected whole numbers from ${min}, comma-separated`);
  return items.map(Number);
}
/** One whole number, at least `min`. */
function countOf(flag: string, fallback: number, min: number): number {
  const text = flagValue(flag);
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) usage(`${flag} "${text}": expected a whole number from ${min}`);
  return Number(text);
}

const smoke = argv.includes("--smoke");
/** Only the batch window's section. */
const windowsOnly = argv.includes("--windows");
const compare = flagValue("--compare");
if (compare !== undefined && compare !== "rsyslog") usage(`--compare ${compare}: only rsyslog is known`);
const outDir = flagValue("--out") ?? join(ROOT, "bench");
const RATES = listOf("--rates", smoke ? [1_000, 10_000] : [1_000, 10_000, 25_000, 50_000, 100_000, 200_000, 0], 0);
const FAN_OUT = listOf("--fan-out", smoke ? [1, 2] : [1, 10, 50, 100], 1);
const FAN_OUT_RATE = countOf("--fan-out-rate", smoke ? 1_000 : 10_000, 1);
const IDLE_CLIENTS = countOf("--idle", smoke ? 20 : 1_000, 1);
const SECONDS = smoke ? 1 : 3;
/** slps's --batch-window values measured at each of WINDOW_RATES. */
const WINDOWS = smoke ? [0, 0.5] : [0, 0.1, 0.25, 0.5, 1];
const WINDOW_RATES = listOf("--rates", smoke ? [10_000] : [1_000, 10_000, 50_000, 0], 0);
/** The last hop into a real rsyslog over TCP and RELP, and into journald: in the full run, or with --last-hop. */
const LAST_HOP: LastHop[] = smoke && !argv.includes("--last-hop") ? [] : ["tcp", "relp", "journal"];
const noJournal = LAST_HOP.length > 0 ? journalUnavailable() : undefined;
if (noJournal) {
  console.error(`bench: the last hop's journal row is left out: ${noJournal}`);
  LAST_HOP.pop();
}
const LAST_HOP_RATE = 10_000;
/** One slpc following this many servers, each at this rate (issue 11's row). */
const MANY_SERVERS = 3;
const MANY_SERVERS_RATE = smoke ? 1_000 : 10_000;
/** The rate the floor is measured at: the issue's goals are stated at 10,000/s. */
const FLOOR_RATES = [10_000, 0];
const SIZE = 200;

if (compare) {
  const installed = Bun.spawnSync(["bash", join(ROOT, ".ci/install-daemons"), "--tls"], {
    stdout: "inherit",
    stderr: "inherit",
  });
  if (installed.exitCode !== 0) {
    console.error("bench: cannot install rsyslog and its TLS driver (bash .ci/install-daemons --tls)");
    process.exit(1);
  }
}

const bench = new Bench({ seconds: SECONDS, size: SIZE, smoke });

// ---- The run

const results = {
  machine: `${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`,
  date: new Date().toISOString(),
  clock: CLOCK_NAME,
  size: SIZE,
  seconds: SECONDS,
  floor: [] as Row[],
  sweep: [] as Row[],
  fanOut: [] as Row[],
  idle: [] as IdleRow[],
  lastHop: [] as Row[],
  windows: [] as WindowRow[],
  manyServers: undefined as Row | undefined,
};
const progress = (row: Row) =>
  console.error(
    `bench: ${row.relay}${row.clients > 1 ? ` x${row.clients}` : ""} at ${offeredText(row.offered)}/s: ` +
      `${percent(row.share)} delivered, p99 ${f(row.p99, 3)} ms, other load ${f(row.otherCores, 2)} cores`,
  );
/** Each window at each of WINDOW_RATES, window 0 first at each rate: the others' changes are against it. */
async function measureWindows(): Promise<void> {
  for (const rate of WINDOW_RATES) {
    for (const window of WINDOWS) {
      results.windows.push(await withWindow(bench, window, rate));
      progress(results.windows.at(-1)!);
    }
  }
}

/** Every section but the windows', in order. */
async function measureAll(): Promise<string[]> {
  for (const rate of FLOOR_RATES) {
    results.floor.push(await bench.measure(() => harnessFloor(bench), rate));
    progress(results.floor.at(-1)!);
  }
  console.error(floorTable(results.floor));
  for (const rate of RATES) {
    for (const relay of compare ? [slpRelay, rsyslogRelay] : [slpRelay]) {
      results.sweep.push(await bench.measure(() => relay(bench), rate));
      progress(results.sweep.at(-1)!);
    }
  }
  for (const clients of FAN_OUT) {
    for (const server of ["slps", "floor"] as const) {
      results.fanOut.push(await bench.measure(() => fanOut(bench, server, clients), FAN_OUT_RATE));
      progress(results.fanOut.at(-1)!);
    }
  }
  for (const server of ["slps", "floor"] as const) results.idle.push(await idleClients(bench, server, IDLE_CLIENTS));
  const manyServers = await bench.measure(() => slpFollowing(bench, MANY_SERVERS), MANY_SERVERS_RATE);
  results.manyServers = manyServers;
  progress(manyServers);
  for (const transport of LAST_HOP) {
    results.lastHop.push(await bench.measure(() => slpInto(bench, transport), LAST_HOP_RATE));
    progress(results.lastHop.at(-1)!);
  }
  await measureWindows();
  return [
    floorTable(results.floor),
    sweepTable(results.sweep),
    ...(compare ? [compareTable(results.sweep, RATES)] : []),
    fanOutTables(results.fanOut, FAN_OUT_RATE, FAN_OUT),
    idleTable(results.idle),
    manyServersTable(manyServers, MANY_SERVERS),
    ...(results.lastHop.length > 0 ? [lastHopTable(results.lastHop)] : []),
    windowsTable(results.windows),
    goalsTable(results),
  ];
}

try {
  console.error(
    `bench: ${SIZE}-byte messages for ${SECONDS} s at each rate; slpc with --forward-rate 0; clock ${CLOCK_NAME}`,
  );
  if (windowsOnly) {
    // A section alone writes no results: they would stand for a whole run.
    await measureWindows();
    console.log(windowsTable(results.windows));
  } else {
    const sections = await measureAll();
    const heading = `Measured ${results.date} on ${results.machine}; ${SIZE}-byte messages, ${SECONDS} s at each rate`;
    const text = `${heading}\n\n${sections.join("\n")}`;
    console.log(text);
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(outDir, "results.md"), text);
    writeFileSync(join(outDir, "results.svg"), chart(results.sweep, RATES));
    console.error(`bench: wrote ${join(outDir, "results.json")}, results.md and results.svg`);
  }
} finally {
  await bench.close();
}
process.exit(0);
