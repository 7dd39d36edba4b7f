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
//   7. the resume buffer on disk: the sweep's relay with slps's buffer in memory, then in a folder
//      (--buffer-dir) under each --fsync policy, at 10,000 and 50,000/s (bench/buffer_dir.ts);
//   8. the live view: slpc --web's CPU per message at 10,000/s with no viewer, one and ten
//      (bench/web_view.ts; in the full run, or alone with --web-view);
//   9. slps's --batch-window at each rate: the wait it adds beside the CPU and wake-ups it saves;
//  10. issue 24's goals, each with what this run measured for it (bench/goals.ts).
// Each section is a file of its own: 1 and 2 bench/sweep.ts, 3 and 4 bench/fanout.ts, 5
// bench/many_servers.ts, 6 bench/last_hop.ts, 7 bench/buffer_dir.ts, 8 bench/web_view.ts, 9 bench/windows.ts,
// 10 bench/goals.ts.
// What they share (the processes, one measurement, CPU and memory from /proc) is bench/harness.ts, their tables
// bench/table.ts.
// This file reads the flags, runs the sections in order and writes the results.
//
//   npm run bench                       the full run (a few minutes)
//   npm run bench -- --compare rsyslog  the same, with rsyslog side by side
//   npm run bench -- --smoke            a few seconds, to see that it works (no last hop, disk or view)
//   npm run bench -- --disk             the buffer on disk alone (section 7), with --smoke: at 10,000/s
//   npm run bench -- --rates 10000,0 --fan-out 1,10 --fan-out-rate 10000 --idle 100
//                                       choose what to measure (rate 0: flat out)
//   npm run bench -- --web-view         the live view's section alone, printed, no files written
//   npm run bench -- --windows          the batch window's section alone (its rates: --rates)
//
// Prints the tables and writes bench/results.json, results.md and results.svg (or to --out DIR).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../test/kit.ts";
import { BUFFER_KINDS, type DiskReading, type DiskRow, diskTable, slpOnDisk } from "./buffer_dir.ts";
import { chart } from "./chart.ts";
import { CLOCK_NAME } from "./clock.ts";
import { fanOut, fanOutTables, type IdleRow, idleClients, idleTable } from "./fanout.ts";
import { goalsTable } from "./goals.ts";
import { Bench, type Row } from "./harness.ts";
import { journalUnavailable, type LastHop, lastHopTable, slpInto } from "./last_hop.ts";
import { manyServersTable, slpFollowing } from "./many_servers.ts";
import { compareTable, floorTable, harnessFloor, rsyslogRelay, slpRelay, sweepTable } from "./sweep.ts";
import { f, offeredText, percent } from "./table.ts";
import { slpWithViewers, webViewTable } from "./web_view.ts";
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
const switches = ["--smoke", "--last-hop", "--disk", "--web-view", "--windows"];
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
const compare = flagValue("--compare");
if (compare !== undefined && compare !== "rsyslog") usage(`--compare ${compare}: only rsyslog is known`);
const outDir = flagValue("--out") ?? join(ROOT, "bench");
const RATES = listOf("--rates", smoke ? [1_000, 10_000] : [1_000, 10_000, 25_000, 50_000, 100_000, 200_000, 0], 0);
const FAN_OUT = listOf("--fan-out", smoke ? [1, 2] : [1, 10, 50, 100], 1);
const FAN_OUT_RATE = countOf("--fan-out-rate", smoke ? 1_000 : 10_000, 1);
const IDLE_CLIENTS = countOf("--idle", smoke ? 20 : 1_000, 1);
const SECONDS = smoke ? 1 : 3;
/** The last hop into a real rsyslog over TCP and RELP, and into journald: in the full run, or with --last-hop. */
const LAST_HOP: LastHop[] = smoke && !argv.includes("--last-hop") ? [] : ["tcp", "relp", "journal"];
const noJournal = LAST_HOP.length > 0 ? journalUnavailable() : undefined;
if (noJournal) {
  console.error(`bench: the last hop's journal row is left out: ${noJournal}`);
  LAST_HOP.pop();
}
const LAST_HOP_RATE = 10_000;
/** The buffer on disk, at the rates issue 19 names: in the full run, or alone with --disk (--smoke: 10,000 only). */
const diskOnly = argv.includes("--disk");
const DISK_RATES = smoke ? (diskOnly ? [10_000] : []) : [10_000, 50_000];
/** One slpc following this many servers, each at this rate (issue 11's row). */
const MANY_SERVERS = 3;
const MANY_SERVERS_RATE = smoke ? 1_000 : 10_000;
/** The rate the floor is measured at: the issue's goals are stated at 10,000/s. */
const FLOOR_RATES = [10_000, 0];
/** The live view's section: viewers, at the rate the issue names; in the full run, or alone with --web-view. */
const WEB_VIEWERS = [0, 1, 10];
const WEB_RATE = 10_000;
const webOnly = argv.includes("--web-view");
const webInRun = !smoke && !diskOnly;
/** slps's --batch-window values measured at each of WINDOW_RATES; in the full run, or alone with --windows. */
const windowsOnly = argv.includes("--windows");
const WINDOWS = smoke ? [0, 0.5] : [0, 0.1, 0.25, 0.5, 1];
const WINDOW_RATES = listOf("--rates", smoke ? [10_000] : [1_000, 10_000, 50_000, 0], 0);
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
  manyServers: undefined as Row | undefined,
  disk: [] as DiskRow[],
  webView: [] as Row[],
  windows: [] as WindowRow[],
};
const progress = (row: Row) =>
  console.error(
    `bench: ${row.relay}${row.clients > 1 ? ` x${row.clients}` : ""} at ${offeredText(row.offered)}/s: ` +
      `${percent(row.share)} delivered, p99 ${f(row.p99, 3)} ms, other load ${f(row.otherCores, 2)} cores`,
  );
try {
  if (webOnly) {
    for (const viewers of WEB_VIEWERS) {
      results.webView.push(await bench.measure(() => slpWithViewers(bench, viewers), WEB_RATE));
      progress(results.webView.at(-1)!);
    }
    console.log(webViewTable(results.webView));
    await bench.close();
    process.exit(0);
  }
  if (windowsOnly) {
    // A section alone writes no results: they would stand for a whole run.
    await measureWindows();
    console.log(windowsTable(results.windows));
    await bench.close();
    process.exit(0);
  }
  console.error(
    `bench: ${SIZE}-byte messages for ${SECONDS} s at each rate; slpc with --forward-rate 0; clock ${CLOCK_NAME}`,
  );
  if (!diskOnly) await otherSections();
  for (const rate of DISK_RATES) {
    for (const kind of BUFFER_KINDS) {
      const reading: DiskReading = { fsyncs: 0, bytes: 0, errors: 0 };
      const row = await bench.measure(() => slpOnDisk(bench, kind, reading), rate);
      results.disk.push({ ...row, kind, fsyncs: reading.fsyncs, diskBytes: reading.bytes, diskErrors: reading.errors });
      progress(row);
    }
  }
  if (diskOnly) {
    console.log(diskTable(results.disk, SECONDS));
    console.error("bench: --disk measured the buffer on disk alone, and wrote no results files");
  } else {
    const sections = [
      floorTable(results.floor),
      sweepTable(results.sweep),
      ...(compare ? [compareTable(results.sweep, RATES)] : []),
      fanOutTables(results.fanOut, FAN_OUT_RATE, FAN_OUT),
      idleTable(results.idle),
      manyServersTable(results.manyServers!, MANY_SERVERS),
      ...(results.lastHop.length > 0 ? [lastHopTable(results.lastHop)] : []),
      ...(results.disk.length > 0 ? [diskTable(results.disk, SECONDS)] : []),
      ...(results.webView.length > 0 ? [webViewTable(results.webView)] : []),
      ...(results.windows.length > 0 ? [windowsTable(results.windows)] : []),
      goalsTable(results),
    ];
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

/** Every section but the disk's, in order: --disk leaves them out. */
async function otherSections(): Promise<void> {
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
  results.manyServers = await bench.measure(() => slpFollowing(bench, MANY_SERVERS), MANY_SERVERS_RATE);
  progress(results.manyServers);
  for (const transport of LAST_HOP) {
    results.lastHop.push(await bench.measure(() => slpInto(bench, transport), LAST_HOP_RATE));
    progress(results.lastHop.at(-1)!);
  }
  for (const viewers of webInRun ? WEB_VIEWERS : []) {
    results.webView.push(await bench.measure(() => slpWithViewers(bench, viewers), WEB_RATE));
    progress(results.webView.at(-1)!);
  }
  await measureWindows();
}

/** Each window at each of WINDOW_RATES, window 0 first at each rate: the others' changes are against it. */
async function measureWindows(): Promise<void> {
  for (const rate of WINDOW_RATES) {
    for (const window of WINDOWS) {
      results.windows.push(await withWindow(bench, window, rate));
      progress(results.windows.at(-1)!);
    }
  }
}
