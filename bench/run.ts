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
//   6. the last hop: slpc --forward tcp:// and relp:// into a real rsyslog at 10,000/s (full run,
//      or --smoke --last-hop);
//   7. issue 13's goals, each with what this run measured for it (bench/goals.ts).
// What the sections share (the processes, one measurement, CPU and memory from /proc) is
// bench/harness.ts, their tables bench/table.ts.
//
//   npm run bench                       the full run (a few minutes)
//   npm run bench -- --compare rsyslog  the same, with rsyslog side by side
//   npm run bench -- --smoke            a few seconds, to see that it works (no last hop)
//   npm run bench -- --rates 10000,0 --fan-out 1,10 --fan-out-rate 10000 --idle 100
//                                       choose what to measure (rate 0: flat out)
//
// Prints the tables and writes bench/results.json, results.md and results.svg (or to --out DIR).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Child, freePort, ROOT, sleep, tcpListening, udpListening, until } from "../test/kit.ts";
import { chart } from "./chart.ts";
import { CLOCK_NAME } from "./clock.ts";
import { goals } from "./goals.ts";
import { Bench, type Row, type Setup, slpsSkipped, statusMB } from "./harness.ts";
import { type Column, each, f, offeredText, type Pair, percent, table, versus } from "./table.ts";

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
const known = ["--smoke", "--last-hop", "--compare", "--out", "--rates", "--fan-out", "--fan-out-rate", "--idle"];
const unknown = argv.find(
  (word, i) => word.startsWith("--") && !known.includes(word) && !known.slice(2).includes(argv[i - 1]!),
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
/** The last hop into a real rsyslog, over TCP and RELP: in the full run only, or with --last-hop. */
const LAST_HOP: LastHop[] = smoke && !argv.includes("--last-hop") ? [] : ["tcp", "relp"];
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

// ---- The sweep, and the harness floor below it

/** The load straight into the sink: what the harness itself costs. */
async function harnessFloor(bench: Bench): Promise<Setup> {
  const { sink, port } = await bench.startSink();
  return { name: "harness", udpPort: port, processes: {}, receiver: sink, streams: 1, dropPorts: [[port, 1]] };
}

async function slpRelay(bench: Bench): Promise<Setup> {
  const { sink, port } = await bench.startSink();
  const { slps, udpPort, tlsPort } = await bench.startSlps();
  const slpc = await bench.startSlpc([{ slps, tlsPort }], `127.0.0.1:${port}`);
  return {
    name: "slp",
    udpPort,
    processes: { slps, slpc },
    receiver: sink,
    streams: 1,
    dropPorts: [
      [udpPort, 1],
      [port, 1],
    ],
    skipped: slpsSkipped(slps),
  };
}

/** Two rsyslogd relaying over mutual TLS: imudp -> omfwd (TLS) -> imtcp (TLS) -> omfwd UDP. */
async function rsyslogRelay(bench: Bench): Promise<Setup> {
  const { sink, port: sinkPort } = await bench.startSink();
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const certs = bench.certs;
  const tls = (cert: string) =>
    `global(DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="${certs}/ca.pem" ` +
    `DefaultNetstreamDriverCertFile="${certs}/${cert}.pem" DefaultNetstreamDriverKeyFile="${certs}/${cert}.key")`;
  const queue = `queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="1024"`;
  const home = bench.startRsyslog(`home-${udpPort}`, [
    tls("server"),
    `main_queue(${queue})`,
    `module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")`,
    `input(type="imtcp" address="127.0.0.1" port="${tlsPort}")`,
    `template(name="raw" type="string" string="%rawmsg%")`,
    `action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
  ]);
  await until("rsyslog home to listen", () => tcpListening(tlsPort), 10_000);
  const server = bench.startRsyslog(`server-${udpPort}`, [
    tls("client"),
    `main_queue(${queue})`,
    `module(load="imudp")`,
    `input(type="imudp" address="127.0.0.1" port="${udpPort}" rcvbufSize="8m")`,
    `action(type="omfwd" target="127.0.0.1" port="${tlsPort}" protocol="tcp" ` +
      `StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name" ` +
      `StreamDriverPermittedPeers="localhost" ${queue})`,
  ]);
  await until("rsyslog server to listen", () => udpListening(udpPort), 10_000);
  await sleep(500); // let the TLS connection between the two come up
  return {
    name: "rsyslog",
    udpPort,
    processes: { server, home },
    receiver: sink,
    streams: 1,
    dropPorts: [
      [udpPort, 1],
      [sinkPort, 1],
    ],
  };
}

function floorTable(rows: Row[]): string {
  const note = `Two processes, stamped and read on ${CLOCK_NAME}. No relay can be measured below this line.`;
  return table(
    "Harness floor: the load generator straight into the sink",
    note,
    [
      ["offered/s", (row) => offeredText(row.offered)],
      ["sent", (row) => f(row.sent)],
      ["delivered", (row) => percent(row.share)],
      ["delivered/s", (row) => f(row.rate)],
      ["p50 ms", (row) => f(row.p50, 3)],
      ["p99 ms", (row) => f(row.p99, 3)],
      ["max ms", (row) => f(row.max, 2)],
      ["kernel drops", (row) => f(row.kernelDrops)],
      ["sender late p99 µs", (row) => f(row.senderLateP99Us)],
      ["other load (cores)", (row) => f(row.otherCores, 2)],
    ],
    rows,
  );
}

/** What a relay delivered and how fast: the sweep's first columns, and the last hop's. */
const relayColumns: Column<Row>[] = [
  ["relay", (row) => row.relay],
  ["offered/s", (row) => offeredText(row.offered)],
  ["sent", (row) => f(row.sent)],
  ["delivered", (row) => percent(row.share)],
  ["delivered/s", (row) => f(row.rate)],
  ["p50 ms", (row) => f(row.p50, 2)],
  ["p99 ms", (row) => f(row.p99, 2)],
  ["max ms", (row) => f(row.max, 1)],
  ["kernel drops", (row) => f(row.kernelDrops)],
];

function sweepTable(rows: Row[]): string {
  const note =
    "RSS is the peak (VmHWM) and CPU the seconds used, of slps / slpc or of rsyslogd server / home; " +
    "CPU per message is both processes' CPU over the messages delivered.";
  return table(
    "Sweep: UDP in -> relay -> mutual TLS -> relay -> UDP out",
    note,
    [
      ...relayColumns,
      ["skipped (counted)", (row) => f(row.skipped)],
      ["lost uncounted", (row) => f(row.lostInside)],
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["RSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
      ["CPU s", (row) => each(row, (p) => f(p.cpuSeconds, 2))],
      ["other load (cores)", (row) => f(row.otherCores, 2)],
    ],
    rows,
  );
}

const totalRss = (row: Row) => Object.values(row.processes).reduce((sum, p) => sum + p.rssMB, 0);

/** slp beside rsyslog at each of `rates`, as ratios. */
function compareTable(rows: Row[], rates: number[]): string {
  const at = (relay: string, rate: number) => rows.find((row) => row.relay === relay && row.offered === rate)!;
  return table(
    "slp / rsyslog",
    "Ratios are slp's over rsyslog's: below 1 is better for slp.",
    [
      ["offered/s", ([slp]) => offeredText(slp.offered)],
      ["delivered slp / rsyslog", ([slp, rsyslog]) => `${percent(slp.share)} / ${percent(rsyslog.share)}`],
      ...versus<Row>("p99 ms slp / rsyslog", "p99 ratio", (row) => row.p99, 2),
      ...versus<Row>("CPU µs/msg slp / rsyslog", "CPU ratio", (row) => row.cpuUsPerMessage, 1),
      ...versus("RSS MB slp / rsyslog", "RSS ratio", totalRss, 1),
    ],
    rates.map((rate): Pair<Row> => [at("slp", rate), at("rsyslog", rate)]),
  );
}

// ---- Fan-out, and idle clients

/** The two servers fanned out from: slps, and the floor server. */
type FanOutServer = "slps" | "floor";

/** slps or the floor server, listening, with the bench's certificates. */
async function startServer(bench: Bench, server: FanOutServer) {
  if (server === "slps") {
    const { slps, udpPort, tlsPort } = await bench.startSlps();
    return { child: slps, udpPort, tlsPort };
  }
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const floor = bench.spawnScript("fanout_floor.ts", [String(udpPort), String(tlsPort), bench.certs]);
  await floor.waitFor(/serving on/);
  return { child: floor, udpPort, tlsPort };
}

/** The fan-out client with `count` connections to `tlsPort`, once every one has its `start`. */
async function startFanOutClient(bench: Bench, tlsPort: number, count: number, server: Child): Promise<Child> {
  const client = bench.spawnScript("fanout_client.ts", [String(tlsPort), String(count), bench.certs], "pipe");
  await until(
    () => `${count} connections to start; client: ${client.stderr}; server: ${server.stderr.slice(-2000)}`,
    () => client.stdout.toString().startsWith("ready ") || client.proc.exitCode !== null,
    120_000,
  );
  if (client.proc.exitCode !== null) throw new Error(`the fan-out client failed: ${client.stderr}`);
  return client;
}

async function fanOut(bench: Bench, server: FanOutServer, clients: number): Promise<Setup> {
  const { child, udpPort, tlsPort } = await startServer(bench, server);
  const receiver = await startFanOutClient(bench, tlsPort, clients, child);
  return {
    name: server,
    udpPort,
    processes: { server: child },
    receiver,
    streams: clients,
    dropPorts: [[udpPort, clients]],
  };
}

interface IdleRow {
  server: string;
  clients: number;
  beforeMB: number;
  withClientsMB: number;
  addedMB: number;
}

/** A server's memory with `count` authenticated clients that have resumed and then sit idle. */
async function idleClients(bench: Bench, server: FanOutServer, count: number): Promise<IdleRow> {
  const { smoke } = bench.options;
  const { child, tlsPort } = await startServer(bench, server);
  try {
    await sleep(smoke ? 200 : 500);
    const beforeMB = statusMB(child.pid, "VmRSS");
    const client = await startFanOutClient(bench, tlsPort, count, child);
    await sleep(smoke ? 200 : 1000);
    const withClientsMB = statusMB(child.pid, "VmRSS");
    await bench.stopAll([client]);
    return { server, clients: count, beforeMB, withClientsMB, addedMB: withClientsMB - beforeMB };
  } finally {
    await bench.stopAll([child]);
  }
}

const serverOf = (row: Row) => row.processes.server!;

/** Each measurement at `rate`, then slps beside the floor server at each of `fanOut` clients, as ratios. */
function fanOutTables(rows: Row[], rate: number, fanOut: number[]): string {
  const note =
    "Delivered is the worst connection's; latency is pooled over all connections, with the worst connection's " +
    "p99 beside it. CPU per message is the server's over the messages in; the client process shares the two cores.";
  const detail = table(
    `Fan-out at ${f(rate)} messages/s: slps and the floor server, to one client process holding N connections`,
    note,
    [
      ["clients", (row) => f(row.clients)],
      ["server", (row) => row.relay],
      ["delivered", (row) => percent(row.share)],
      ["missing", (row) => f(row.missing)],
      ["duplicates", (row) => f(row.duplicates)],
      ["out of order", (row) => f(row.outOfOrder)],
      ["skipped (counted)", (row) => f(row.skipped)],
      ["lost uncounted", (row) => f(row.lostInside)],
      ["p50 ms", (row) => f(row.p50, 2)],
      ["p99 ms", (row) => f(row.p99, 2)],
      ["worst connection p99 ms", (row) => f(row.worstP99, 2)],
      ["max ms", (row) => f(row.max, 1)],
      ["server CPU s", (row) => f(serverOf(row).cpuSeconds, 2)],
      ["server CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["server RSS MB", (row) => f(serverOf(row).rssMB, 1)],
      ["client CPU s", (row) => f(row.receiverCpuSeconds, 2)],
      ["other load (cores)", (row) => f(row.otherCores, 2)],
    ],
    rows,
  );
  const at = (relay: string, clients: number) => rows.find((row) => row.relay === relay && row.clients === clients)!;
  const ratios = table(
    "slps / floor server",
    "Ratios are slps's over the floor server's: the goal is at most 1.2x for p99 and CPU.",
    [
      ["clients", ([slps]) => f(slps.clients)],
      ...versus<Row>("p99 ms slps / floor", "p99 ratio", (row) => row.p99, 2),
      ...versus<Row>("server CPU s slps / floor", "CPU ratio", (row) => serverOf(row).cpuSeconds, 2),
      ...versus<Row>("server RSS MB slps / floor", "RSS ratio", (row) => serverOf(row).rssMB, 1),
    ],
    fanOut.map((clients): Pair<Row> => [at("slps", clients), at("floor", clients)]),
  );
  return `${detail}\n${ratios}`;
}

function idleTable(rows: IdleRow[]): string {
  return table(
    "Idle clients: the server's RSS with authenticated clients that resumed and sit idle",
    "",
    [
      ["server", (row) => row.server],
      ["clients", (row) => f(row.clients)],
      ["RSS MB before", (row) => f(row.beforeMB, 1)],
      ["RSS MB with them", (row) => f(row.withClientsMB, 1)],
      ["added MB", (row) => f(row.addedMB, 1)],
    ],
    rows,
  );
}

// ---- One slpc following several servers

/** One slpc following `count` slps, each with a load generator of its own. */
async function slpFollowing(bench: Bench, count: number): Promise<Setup> {
  const tags = Array.from({ length: count }, (_, i) => `s${i + 1}`);
  const { sink, port } = await bench.startSink(tags);
  const servers = [];
  for (let i = 0; i < count; i++) servers.push(await bench.startSlps());
  const slpc = await bench.startSlpc(servers, `127.0.0.1:${port}`);
  const skipped = servers.map(({ slps }) => slpsSkipped(slps));
  return {
    name: "slpc following",
    udpPort: servers[0]!.udpPort,
    udpPorts: servers.map(({ udpPort }) => udpPort),
    processes: { ...Object.fromEntries(servers.map(({ slps }, i) => [`slps ${tags[i]}`, slps])), slpc },
    receiver: sink,
    streams: count,
    dropPorts: [...servers.map(({ udpPort }): [number, number] => [udpPort, 1]), [port, 1]],
    skipped: async () => (await Promise.all(skipped.map((ask) => ask()))).reduce((sum, n) => sum + n, 0),
  };
}

/** The row of slpFollowing(`servers`): each server's stream, and slpc's own cost in the note. */
function manyServersTable(row: Row, servers: number): string {
  const slpc = row.processes.slpc!;
  const note =
    `Each server gets ${f(row.offered)} messages/s from a load generator of its own; slpc forwards all to one ` +
    `sink, with --forward-rate 0. slpc: ${f(slpc.cpuSeconds, 2)} CPU s, ${f(slpc.rssMB, 1)} MB RSS; ` +
    `${f(row.cpuUsPerMessage, 1)} µs of CPU per message, all ${servers + 1} processes; other load ` +
    `${f(row.otherCores, 2)} cores.`;
  return table(
    `One slpc following ${servers} servers at ${f(row.offered)} messages/s each`,
    note,
    [
      ["server", (stream) => stream.tag ?? ""],
      ["sent", (stream) => f(stream.sent ?? 0)],
      ["delivered", (stream) => percent(stream.sent ? stream.distinct / stream.sent : 0)],
      ["missing", (stream) => f(stream.missing)],
      ["duplicates", (stream) => f(stream.duplicates)],
      ["p50 ms", (stream) => f(stream.p50, 2)],
      ["p99 ms", (stream) => f(stream.p99, 2)],
      ["max ms", (stream) => f(stream.max, 1)],
    ],
    row.streams,
  );
}

// ---- The last hop

/** The transports of the last hop. */
type LastHop = "tcp" | "relp";

/**
 * slps and slpc, with slpc handing on over `transport` to a real rsyslog (imtcp or imrelp, the
 * ruleset without a queue, as deploy/rsyslog-home-relp.conf has it), which sends each message as
 * it came to the sink over UDP: the last hop's cost, and for RELP the daemon's acknowledgements.
 */
async function slpInto(bench: Bench, transport: LastHop): Promise<Setup> {
  const { sink, port: sinkPort } = await bench.startSink();
  const homePort = await freePort();
  const input = transport === "tcp" ? "imtcp" : "imrelp";
  const home = bench.startRsyslog(`${transport}-${homePort}`, [
    `module(load="${input}")`,
    `template(name="raw" type="string" string="%rawmsg%")`,
    `ruleset(name="slp" queue.type="Direct") {`,
    `  action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
    `}`,
    `input(type="${input}" address="127.0.0.1" port="${homePort}" ruleset="slp")`,
  ]);
  await until(`rsyslog's ${input} to listen`, () => tcpListening(homePort), 10_000);
  const { slps, udpPort, tlsPort } = await bench.startSlps();
  const slpc = await bench.startSlpc([{ slps, tlsPort }], `${transport}://127.0.0.1:${homePort}`);
  return {
    name: `slp ${transport}://`,
    udpPort,
    processes: { slps, slpc, rsyslog: home },
    receiver: sink,
    streams: 1,
    dropPorts: [
      [udpPort, 1],
      [sinkPort, 1],
    ],
    skipped: slpsSkipped(slps),
  };
}

function lastHopTable(rows: Row[]): string {
  return table(
    "Last hop: UDP in -> slps -> mutual TLS -> slpc -> tcp:// or relp:// -> rsyslog -> UDP out",
    "rsyslog (imtcp or imrelp, its ruleset without a queue) sends each message on to the sink; RSS and CPU " +
      "are of slps / slpc / rsyslogd.",
    [
      ...relayColumns,
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["RSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
    ],
    rows,
  );
}

// ---- The goals
/** The goals, against one run's results, as a table. */
function goalsTable(results: Parameters<typeof goals>[0]): string {
  return table(
    "Goals of issue 13, against this run",
    "A goal this run did not measure says what would measure it: the full run with --compare rsyslog measures all.",
    [
      ["goal", (row) => row.goal],
      ["measured", (row) => row.measured],
      ["verdict", (row) => row.verdict],
    ],
    goals(results),
  );
}

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
};
const progress = (row: Row) =>
  console.error(
    `bench: ${row.relay}${row.clients > 1 ? ` x${row.clients}` : ""} at ${offeredText(row.offered)}/s: ` +
      `${percent(row.share)} delivered, p99 ${f(row.p99, 3)} ms, other load ${f(row.otherCores, 2)} cores`,
  );
try {
  console.error(
    `bench: ${SIZE}-byte messages for ${SECONDS} s at each rate; slpc with --forward-rate 0; clock ${CLOCK_NAME}`,
  );
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

  const sections = [
    floorTable(results.floor),
    sweepTable(results.sweep),
    ...(compare ? [compareTable(results.sweep, RATES)] : []),
    fanOutTables(results.fanOut, FAN_OUT_RATE, FAN_OUT),
    idleTable(results.idle),
    manyServersTable(results.manyServers, MANY_SERVERS),
    ...(results.lastHop.length > 0 ? [lastHopTable(results.lastHop)] : []),
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
} finally {
  await bench.close();
}
process.exit(0);
