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
//
//   npm run bench                       the full run (a few minutes)
//   npm run bench -- --compare rsyslog  the same, with rsyslog side by side
//   npm run bench -- --smoke            a few seconds, to see that it works (no last hop)
//   npm run bench -- --rates 10000,0 --fan-out 1,10 --fan-out-rate 10000 --idle 100
//                                       choose what to measure (rate 0: flat out)
//
// Prints the tables and writes bench/results.json, results.md and results.svg (or to --out DIR).

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findDaemon } from "../test/daemons.ts";
import {
  Child,
  freePort,
  ROOT,
  removeDir,
  sleep,
  tcpListening,
  tempDir,
  udpDrops,
  udpListening,
  until,
} from "../test/kit.ts";
import { chart } from "./chart.ts";
import { CLOCK_NAME } from "./clock.ts";
import { goals } from "./goals.ts";
import type { TallyReport } from "./tally.ts";

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
const LAST_HOP: ("tcp" | "relp")[] = smoke && !argv.includes("--last-hop") ? [] : ["tcp", "relp"];
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

const BUN = process.execPath;
const dir = tempDir("slp-bench-");
const certs = join(dir, "certs");
const made = Bun.spawnSync(["bash", join(ROOT, "certs/make-certs.sh"), "-d", certs, "localhost", "client"], {
  stderr: "pipe",
});
if (made.exitCode !== 0) throw new Error(made.stderr.toString());

/** Every process the bench started, so that a failure leaves none behind. */
const children = new Set<Child>();
function spawn(cmd: string[], stdin: "ignore" | "pipe" = "ignore", env: Record<string, string> = {}): Child {
  const child = new Child(cmd, env, stdin);
  children.add(child);
  return child;
}
async function stopAll(stopping: Child[]): Promise<void> {
  for (const child of stopping) child.kill("SIGKILL");
  await Promise.all(stopping.map((child) => child.proc.exited));
  for (const child of stopping) children.delete(child);
}

// ---- Measuring processes and the machine

const TICKS = 100; // /proc counts CPU time in clock ticks of 1/100 s on Linux
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}
function statusMB(pid: number, field: "VmRSS" | "VmHWM"): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}
/**
 * The cores that other processes on the machine (other people's tests, say) kept busy while a
 * measurement ran, about: their own CPU times, read every 250 ms so that a process that ends
 * meanwhile still counts up to its last reading. Neither /proc/stat's totals (sampled at each
 * tick: the load generator, asleep most of every 100 µs, shows there as idle) nor the times a
 * parent reaps from its children (a whole test run's at once, when it ends) can tell this.
 */
class OtherLoad {
  #first = new Map<number, number>();
  #last = new Map<number, number>();
  #started = performance.now();
  #timer: ReturnType<typeof setInterval>;
  #cores: number | undefined;

  constructor() {
    this.#read(this.#first);
    this.#timer = setInterval(() => this.#read(this.#last), 250);
  }

  /** Stops reading (once); returns the cores busy on average. */
  stop(): number {
    if (this.#cores !== undefined) return this.#cores;
    clearInterval(this.#timer);
    this.#read(this.#last);
    let busy = 0;
    for (const [pid, seconds] of this.#last) busy += seconds - (this.#first.get(pid) ?? 0);
    this.#cores = Math.max(0, busy / ((performance.now() - this.#started) / 1000));
    return this.#cores;
  }

  #read(into: Map<number, number>): void {
    const ours = new Set([process.pid, ...[...children].map((child) => child.pid)]);
    for (const name of readdirSync("/proc")) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || ours.has(pid)) continue;
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        into.set(pid, (Number(fields[11]) + Number(fields[12])) / TICKS);
      } catch {} // gone meanwhile
    }
  }
}

/** Sends a line to a child that answers with one line on stdout, and returns the answer. */
function asker(child: Child) {
  // Lines written before the first question (the fan-out client's "ready") answer none.
  let seen = child.stdout.toString().split("\n").length - 1;
  return async (question: string, what: string, ms = 20_000): Promise<string> => {
    child.proc.stdin!.write(`${question}\n`);
    let line: string | undefined;
    await until(
      () => `${what}; stderr: ${child.stderr}`,
      () => {
        const all = child.stdout.toString().split("\n");
        if (all.length - 1 > seen) line = all[seen++];
        return line !== undefined;
      },
      ms,
    );
    return line!;
  };
}

// ---- What is measured: a relay or a server, and the process that receives what it delivers

interface Setup {
  name: string;
  /** Where the load goes. */
  udpPort: number;
  /** With several servers, where each load generator goes, its messages tagged s1, s2... (the sink's --tags). */
  udpPorts?: number[];
  /** The processes under test, by role, for CPU and RSS. */
  processes: Record<string, Child>;
  /** The sink or the fan-out client. */
  receiver: Child;
  /** How many streams the receiver checks: one per port or connection. */
  streams: number;
  /** UDP ports whose kernel drops count, and for how many streams each drop is a loss. */
  dropPorts: [port: number, streams: number][];
  /** Messages the relay dropped on purpose and counted, when the receiver cannot tell. */
  skipped?(): Promise<number>;
}

/** `--name value` for each entry. */
const flags = (values: Record<string, string>) =>
  Object.entries(values).flatMap(([name, value]) => [`--${name}`, value]);

async function startSink(tags: string[] = []): Promise<{ sink: Child; port: number }> {
  const port = await freePort("udp");
  const tagging = tags.length > 0 ? ["--tags", tags.join(",")] : [];
  const sink = spawn([BUN, join(ROOT, "bench/sink.ts"), ...tagging, String(port)], "pipe");
  await until("the sink to bind", () => udpListening(port));
  return { sink, port };
}

async function startSlps(extra: string[] = []): Promise<{ slps: Child; udpPort: number; tlsPort: number }> {
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const slps = spawn([
    BUN,
    "slps.ts",
    ...flags({
      udp: `127.0.0.1:${udpPort}`,
      listen: `127.0.0.1:${tlsPort}`,
      cert: join(certs, "server.pem"),
      key: join(certs, "server.key"),
      ca: join(certs, "ca.pem"),
      "max-clients": "2000",
      "max-pending": "1000",
      "handshake-rate": "100000",
    }),
    ...extra,
  ]);
  await slps.waitFor(/serving clients/);
  return { slps, udpPort, tlsPort };
}

async function startFloorServer(): Promise<{ floor: Child; udpPort: number; tlsPort: number }> {
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const floor = spawn([BUN, join(ROOT, "bench/fanout_floor.ts"), String(udpPort), String(tlsPort), certs]);
  await floor.waitFor(/serving on/);
  return { floor, udpPort, tlsPort };
}

/** Counts slps's skipped messages from its SIGUSR1 counters. */
function slpsSkipped(slps: Child) {
  return async () => {
    const from = slps.stderr.length;
    slps.kill("SIGUSR1");
    await until("slps's counters", () => slps.stderr.slice(from).includes("{"));
    const counters = JSON.parse(
      slps.stderr
        .slice(from)
        .split("\n")
        .find((line) => line.startsWith("{"))!,
    );
    return (counters.clients as { dropped: number }[]).reduce((sum, client) => sum + client.dropped, 0);
  };
}

/**
 * slpc following each of `servers`, with the bench's client certificate, handing on to `forward`
 * with no --forward-rate; returned once every server has started slpc's stream.
 */
async function startSlpc(servers: { slps: Child; tlsPort: number }[], forward: string): Promise<Child> {
  const slpc = spawn([
    BUN,
    "slpc.ts",
    ...servers.flatMap(({ tlsPort }) => ["--server", `localhost:${tlsPort}`]),
    ...flags({
      ca: join(certs, "ca.pem"),
      cert: join(certs, "client.pem"),
      key: join(certs, "client.key"),
      forward,
      "forward-rate": "0",
    }),
  ]);
  for (const { slps } of servers) await until("slpc's stream to start", () => / starts at #/.test(slps.stderr), 30_000);
  return slpc;
}

/** The load straight into the sink: what the harness itself costs. */
async function harnessFloor(): Promise<Setup> {
  const { sink, port } = await startSink();
  return { name: "harness", udpPort: port, processes: {}, receiver: sink, streams: 1, dropPorts: [[port, 1]] };
}

async function slpRelay(): Promise<Setup> {
  const { sink, port } = await startSink();
  const { slps, udpPort, tlsPort } = await startSlps();
  const slpc = await startSlpc([{ slps, tlsPort }], `127.0.0.1:${port}`);
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

/** One slpc following `count` slps, each with a load generator of its own. */
async function slpFollowing(count: number): Promise<Setup> {
  const tags = Array.from({ length: count }, (_, i) => `s${i + 1}`);
  const { sink, port } = await startSink(tags);
  const servers = [];
  for (let i = 0; i < count; i++) servers.push(await startSlps());
  const slpc = await startSlpc(servers, `127.0.0.1:${port}`);
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

/**
 * slps and slpc, with slpc handing on over `transport` to a real rsyslog (imtcp or imrelp, the
 * ruleset without a queue, as deploy/rsyslog-home-relp.conf has it), which sends each message as
 * it came to the sink over UDP: the last hop's cost, and for RELP the daemon's acknowledgements.
 */
async function slpInto(transport: "tcp" | "relp"): Promise<Setup> {
  const found = findDaemon("rsyslog");
  if (typeof found === "string") throw new Error(found);
  const { sink, port: sinkPort } = await startSink();
  const homePort = await freePort();
  const work = join(dir, `rsyslog-${transport}-${homePort}`);
  mkdirSync(work, { recursive: true });
  const input = transport === "tcp" ? "imtcp" : "imrelp";
  writeFileSync(
    join(work, "rsyslog.conf"),
    `${[
      `global(workDirectory="${work}" maxMessageSize="64k")`,
      `module(load="${input}")`,
      `template(name="raw" type="string" string="%rawmsg%")`,
      `ruleset(name="slp" queue.type="Direct") {`,
      `  action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
      `}`,
      `input(type="${input}" address="127.0.0.1" port="${homePort}" ruleset="slp")`,
    ].join("\n")}\n`,
  );
  const home = spawn([...found.cmd, "-f", join(work, "rsyslog.conf"), "-i", join(work, "pid")], "ignore", found.env);
  await until(`rsyslog's ${input} to listen`, () => tcpListening(homePort), 10_000);
  const { slps, udpPort, tlsPort } = await startSlps();
  const slpc = await startSlpc([{ slps, tlsPort }], `${transport}://127.0.0.1:${homePort}`);
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

/** Two rsyslogd relaying over mutual TLS: imudp -> omfwd (TLS) -> imtcp (TLS) -> omfwd UDP. */
async function rsyslogRelay(): Promise<Setup> {
  const found = findDaemon("rsyslog");
  if (typeof found === "string") throw new Error(found);
  const { sink, port: sinkPort } = await startSink();
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const run = (name: string, config: string[]) => {
    const work = join(dir, `rsyslog-${name}-${udpPort}`);
    mkdirSync(work, { recursive: true });
    writeFileSync(
      join(work, "rsyslog.conf"),
      `${[`global(workDirectory="${work}" maxMessageSize="64k")`, ...config].join("\n")}\n`,
    );
    return spawn([...found.cmd, "-f", join(work, "rsyslog.conf"), "-i", join(work, "pid")], "ignore", found.env);
  };
  const tls = (cert: string) =>
    `global(DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="${certs}/ca.pem" ` +
    `DefaultNetstreamDriverCertFile="${certs}/${cert}.pem" DefaultNetstreamDriverKeyFile="${certs}/${cert}.key")`;
  const queue = `queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="1024"`;
  const home = run("home", [
    tls("server"),
    `main_queue(${queue})`,
    `module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")`,
    `input(type="imtcp" address="127.0.0.1" port="${tlsPort}")`,
    `template(name="raw" type="string" string="%rawmsg%")`,
    `action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
  ]);
  await until("rsyslog home to listen", () => tcpListening(tlsPort), 10_000);
  const server = run("server", [
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

/** The fan-out client with `count` connections to `tlsPort`, once every one has its `start`. */
async function startFanOutClient(tlsPort: number, count: number, server: Child): Promise<Child> {
  const client = spawn([BUN, join(ROOT, "bench/fanout_client.ts"), String(tlsPort), String(count), certs], "pipe");
  await until(
    () => `${count} connections to start; client: ${client.stderr}; server: ${server.stderr.slice(-2000)}`,
    () => client.stdout.toString().startsWith("ready ") || client.proc.exitCode !== null,
    120_000,
  );
  if (client.proc.exitCode !== null) throw new Error(`the fan-out client failed: ${client.stderr}`);
  return client;
}

async function fanOut(server: "slps" | "floor", clients: number): Promise<Setup> {
  const { child, udpPort, tlsPort } =
    server === "slps"
      ? await startSlps().then(({ slps, ...ports }) => ({ child: slps, ...ports }))
      : await startFloorServer().then(({ floor, ...ports }) => ({ child: floor, ...ports }));
  const receiver = await startFanOutClient(tlsPort, clients, child);
  return {
    name: server,
    udpPort,
    processes: { server: child },
    receiver,
    streams: clients,
    dropPorts: [[udpPort, clients]],
  };
}

// ---- One measurement

/** One stream's numbers; `sent` and `tag` where each stream had a load generator of its own. */
type Stream = TallyReport & { skipped?: number; unknownSkips?: number; sent?: number; tag?: string };

interface Row {
  relay: string;
  clients: number;
  offered: number;
  sent: number;
  /** Distinct messages that reached the worst stream. */
  delivered: number;
  share: number;
  /** `delivered` per second. */
  rate: number;
  /** Latency pooled over all streams, ms. */
  p50: number;
  p99: number;
  max: number;
  /** The p99 of the worst stream, ms. */
  worstP99: number;
  /** Over all streams. */
  missing: number;
  duplicates: number;
  outOfOrder: number;
  kernelDrops: number;
  /** Dropped by the relay on purpose, and counted: a client more than --queue behind. */
  skipped: number;
  /** Lost neither in the kernel nor counted: the goal is none. */
  lostInside: number;
  /** CPU of the processes under test per message delivered (per message in, for fan-out), µs. */
  cpuUsPerMessage: number;
  /** Peak RSS (VmHWM) and CPU seconds of each process under test. */
  processes: Record<string, { rssMB: number; cpuSeconds: number }>;
  receiverCpuSeconds: number;
  senderCpuSeconds: number;
  /** How late the load generator's 99th percentile message left against its schedule, µs. */
  senderLateP99Us: number;
  /** Cores busy with anything else on the machine during the measurement (other users' work). */
  otherCores: number;
  /** Each stream's own numbers: the sink's one port, or each of the fan-out client's connections. */
  streams: Stream[];
}

async function measure(build: () => Promise<Setup>, offered: number): Promise<Row> {
  const setup = await build();
  const { processes, receiver } = setup;
  const ask = asker(receiver);
  const otherLoad = new OtherLoad();
  try {
    const measured = [...Object.values(processes), receiver];
    const cpuBefore = measured.map((child) => cpuSeconds(child.pid));
    const dropsBefore = setup.dropPorts.map(([port]) => udpDrops(port));
    const ports = setup.udpPorts ?? [setup.udpPort];
    const tag = (i: number) => (setup.udpPorts ? [`s${i + 1}`] : []);
    const loads = ports.map((port, i) =>
      spawn([
        BUN,
        join(ROOT, "bench/load.ts"),
        String(port),
        String(offered),
        String(SECONDS),
        String(SIZE),
        ...tag(i),
      ]),
    );
    type Sent = { sent: number; seconds: number; lateP99Us: number; cpuSeconds: number };
    const sentEach: Sent[] = [];
    for (const load of loads) {
      if ((await load.proc.exited) !== 0) throw new Error(`the load generator failed: ${load.stderr}`);
      children.delete(load);
      sentEach.push(JSON.parse(load.stdout.toString()));
    }
    const sender: Sent = {
      sent: sentEach.reduce((sum, each) => sum + each.sent, 0),
      seconds: Math.max(...sentEach.map((each) => each.seconds)),
      lateP99Us: Math.max(...sentEach.map((each) => each.lateP99Us)),
      cpuSeconds: sentEach.reduce((sum, each) => sum + each.cpuSeconds, 0),
    };
    // Wait for what is still on its way, until the receiver's count stands still (at most 30 s).
    let last = -1;
    for (let waited = 0; waited < 30_000; waited += smoke ? 200 : 1000) {
      const count = Number(await ask("count", "the receiver's count"));
      if (count === last) break;
      last = count;
      await sleep(smoke ? 200 : 1000);
    }
    const cpu = measured.map((child, i) => cpuSeconds(child.pid) - cpuBefore[i]!);
    const otherCores = otherLoad.stop();
    const drops = setup.dropPorts.map(([port], i) => udpDrops(port) - dropsBefore[i]!);
    const processRows = Object.fromEntries(
      Object.entries(processes).map(([role, child], i) => [
        role,
        { rssMB: statusMB(child.pid, "VmHWM"), cpuSeconds: cpu[i]! },
      ]),
    );
    const skippedByRelay = (await setup.skipped?.()) ?? 0;
    const { pooled, streams }: { pooled: { p50: number; p99: number; max: number }; streams: Stream[] } = JSON.parse(
      await ask(`report ${sentEach.map((each) => each.sent).join(",")}`, "the receiver's report"),
    );
    const sum = (value: (stream: Stream) => number) => streams.reduce((total, stream) => total + value(stream), 0);
    // Several loads: what all streams got; one load to many clients: the worst client's.
    const delivered = setup.udpPorts ? sum((stream) => stream.distinct) : Math.min(...streams.map((s) => s.distinct));
    const skipped = skippedByRelay + sum((stream) => stream.skipped ?? 0);
    const missing = sum((stream) => stream.missing);
    const lostInKernel = setup.dropPorts.reduce((total, [, streamsHit], i) => total + drops[i]! * streamsHit, 0);
    const relayCpu = cpu.slice(0, -1).reduce((total, seconds) => total + seconds, 0);
    return {
      relay: setup.name,
      clients: setup.streams,
      offered,
      sent: sender.sent,
      delivered,
      share: sender.sent ? delivered / sender.sent : 0,
      rate: delivered / sender.seconds,
      p50: pooled.p50,
      p99: pooled.p99,
      max: pooled.max,
      worstP99: Math.max(...streams.map((stream) => stream.p99)),
      missing,
      duplicates: sum((stream) => stream.duplicates),
      outOfOrder: sum((stream) => stream.outOfOrder),
      kernelDrops: drops.reduce((total, n) => total + n, 0),
      skipped,
      lostInside: Math.max(0, missing - lostInKernel - skipped),
      cpuUsPerMessage: delivered ? (relayCpu / delivered) * 1e6 : 0,
      processes: processRows,
      receiverCpuSeconds: cpu.at(-1)!,
      senderCpuSeconds: sender.cpuSeconds,
      senderLateP99Us: sender.lateP99Us,
      otherCores,
      streams: streams.map((stream, i) => ({ ...stream, sent: sentEach[i]?.sent ?? sender.sent })),
    };
  } finally {
    otherLoad.stop();
    await stopAll([...Object.values(processes), receiver]);
  }
}

interface IdleRow {
  server: string;
  clients: number;
  beforeMB: number;
  withClientsMB: number;
  addedMB: number;
}

/** A server's memory with `count` authenticated clients that have resumed and then sit idle. */
async function idleClients(server: "slps" | "floor", count: number): Promise<IdleRow> {
  const { child, tlsPort } =
    server === "slps"
      ? await startSlps().then(({ slps, tlsPort }) => ({ child: slps, tlsPort }))
      : await startFloorServer().then(({ floor, tlsPort }) => ({ child: floor, tlsPort }));
  try {
    await sleep(smoke ? 200 : 500);
    const beforeMB = statusMB(child.pid, "VmRSS");
    const client = await startFanOutClient(tlsPort, count, child);
    await sleep(smoke ? 200 : 1000);
    const withClientsMB = statusMB(child.pid, "VmRSS");
    await stopAll([client]);
    return { server, clients: count, beforeMB, withClientsMB, addedMB: withClientsMB - beforeMB };
  } finally {
    await stopAll([child]);
  }
}

// ---- The tables

const f = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const offeredText = (rate: number) => (rate === 0 ? "flat out" : f(rate));
const percent = (share: number) => `${f(share * 100, 2)}%`;
const ratio = (a: number, b: number) => (b ? `${f(a / b, 2)}x` : "-");
const totalRss = (row: Row) => Object.values(row.processes).reduce((sum, p) => sum + p.rssMB, 0);
const each = (row: Row, value: (p: { rssMB: number; cpuSeconds: number }) => string) =>
  Object.values(row.processes).map(value).join(" / ");
const serverOf = (row: Row) => row.processes.server!;
/** "a / b" and a's ratio to b, for two rows measured side by side. */
const versus = (a: number, b: number, digits: number) => [`${f(a, digits)} / ${f(b, digits)}`, ratio(a, b)];

/** A column: its heading, and its cell for a row. */
type Column<T> = [heading: string, cell: (row: T) => string];

function table<T>(title: string, note: string, columns: Column<T>[], rows: T[]): string {
  return [
    `### ${title}`,
    "",
    ...(note ? [note, ""] : []),
    `| ${columns.map(([heading]) => heading).join(" | ")} |`,
    `|${columns.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${columns.map(([, cell]) => cell(row)).join(" | ")} |`),
    "",
  ].join("\n");
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

function sweepTable(rows: Row[]): string {
  const note =
    "RSS is the peak (VmHWM) and CPU the seconds used, of slps / slpc or of rsyslogd server / home; " +
    "CPU per message is both processes' CPU over the messages delivered.";
  return table(
    "Sweep: UDP in -> relay -> mutual TLS -> relay -> UDP out",
    note,
    [
      ["relay", (row) => row.relay],
      ["offered/s", (row) => offeredText(row.offered)],
      ["sent", (row) => f(row.sent)],
      ["delivered", (row) => percent(row.share)],
      ["delivered/s", (row) => f(row.rate)],
      ["p50 ms", (row) => f(row.p50, 2)],
      ["p99 ms", (row) => f(row.p99, 2)],
      ["max ms", (row) => f(row.max, 1)],
      ["kernel drops", (row) => f(row.kernelDrops)],
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

function compareTable(rows: Row[]): string {
  const pairs = RATES.map((rate) => ({
    slp: rows.find((row) => row.relay === "slp" && row.offered === rate)!,
    rsyslog: rows.find((row) => row.relay === "rsyslog" && row.offered === rate)!,
  }));
  type Pair = (typeof pairs)[number];
  const side = (value: (row: Row) => number, digits: number) => (pair: Pair) =>
    versus(value(pair.slp), value(pair.rsyslog), digits);
  const [p99, cpu, rss] = [side((row) => row.p99, 2), side((row) => row.cpuUsPerMessage, 1), side(totalRss, 1)];
  return table(
    "slp / rsyslog",
    "Ratios are slp's over rsyslog's: below 1 is better for slp.",
    [
      ["offered/s", (pair) => offeredText(pair.slp.offered)],
      ["delivered slp / rsyslog", (pair) => `${percent(pair.slp.share)} / ${percent(pair.rsyslog.share)}`],
      ["p99 ms slp / rsyslog", (pair) => p99(pair)[0]!],
      ["p99 ratio", (pair) => p99(pair)[1]!],
      ["CPU µs/msg slp / rsyslog", (pair) => cpu(pair)[0]!],
      ["CPU ratio", (pair) => cpu(pair)[1]!],
      ["RSS MB slp / rsyslog", (pair) => rss(pair)[0]!],
      ["RSS ratio", (pair) => rss(pair)[1]!],
    ],
    pairs,
  );
}

function fanOutTables(rows: Row[]): string {
  const note =
    "Delivered is the worst connection's; latency is pooled over all connections, with the worst connection's p99 " +
    "beside it. CPU per message is the server's over the messages in; the client process shares the two cores.";
  const detail = table(
    `Fan-out at ${f(FAN_OUT_RATE)} messages/s: slps and the floor server, to one client process holding N connections`,
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
  const pairs = FAN_OUT.map((clients) => ({
    slps: rows.find((row) => row.relay === "slps" && row.clients === clients)!,
    floor: rows.find((row) => row.relay === "floor" && row.clients === clients)!,
  }));
  type Pair = (typeof pairs)[number];
  const side = (value: (row: Row) => number, digits: number) => (pair: Pair) =>
    versus(value(pair.slps), value(pair.floor), digits);
  const [p99, cpu, rss] = [
    side((row) => row.p99, 2),
    side((row) => serverOf(row).cpuSeconds, 2),
    side((row) => serverOf(row).rssMB, 1),
  ];
  const ratios = table(
    "slps / floor server",
    "Ratios are slps's over the floor server's: the goal is at most 1.2x for p99 and CPU.",
    [
      ["clients", (pair) => f(pair.slps.clients)],
      ["p99 ms slps / floor", (pair) => p99(pair)[0]!],
      ["p99 ratio", (pair) => p99(pair)[1]!],
      ["server CPU s slps / floor", (pair) => cpu(pair)[0]!],
      ["CPU ratio", (pair) => cpu(pair)[1]!],
      ["server RSS MB slps / floor", (pair) => rss(pair)[0]!],
      ["RSS ratio", (pair) => rss(pair)[1]!],
    ],
    pairs,
  );
  return `${detail}\n${ratios}`;
}

function lastHopTable(rows: Row[]): string {
  return table(
    "Last hop: UDP in -> slps -> mutual TLS -> slpc -> tcp:// or relp:// -> rsyslog -> UDP out",
    "rsyslog (imtcp or imrelp, its ruleset without a queue) sends each message on to the sink; RSS and CPU " +
      "are of slps / slpc / rsyslogd.",
    [
      ["relay", (row) => row.relay],
      ["offered/s", (row) => offeredText(row.offered)],
      ["sent", (row) => f(row.sent)],
      ["delivered", (row) => percent(row.share)],
      ["delivered/s", (row) => f(row.rate)],
      ["p50 ms", (row) => f(row.p50, 2)],
      ["p99 ms", (row) => f(row.p99, 2)],
      ["max ms", (row) => f(row.max, 1)],
      ["kernel drops", (row) => f(row.kernelDrops)],
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["RSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
    ],
    rows,
  );
}

function manyServersTable(row: Row): string {
  const slpc = row.processes.slpc!;
  const note =
    `Each server gets ${f(row.offered)} messages/s from a load generator of its own; slpc forwards all to one ` +
    `sink, with --forward-rate 0. slpc: ${f(slpc.cpuSeconds, 2)} CPU s, ${f(slpc.rssMB, 1)} MB RSS; ` +
    `${f(row.cpuUsPerMessage, 1)} µs of CPU per message, all ${MANY_SERVERS + 1} processes; other load ` +
    `${f(row.otherCores, 2)} cores.`;
  return table(
    `One slpc following ${MANY_SERVERS} servers at ${f(row.offered)} messages/s each`,
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

function goalsTable(): string {
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
    results.floor.push(await measure(harnessFloor, rate));
    progress(results.floor.at(-1)!);
  }
  console.error(floorTable(results.floor));
  for (const rate of RATES) {
    for (const relay of compare ? [slpRelay, rsyslogRelay] : [slpRelay]) {
      results.sweep.push(await measure(relay, rate));
      progress(results.sweep.at(-1)!);
    }
  }
  for (const clients of FAN_OUT) {
    for (const server of ["slps", "floor"] as const) {
      results.fanOut.push(await measure(() => fanOut(server, clients), FAN_OUT_RATE));
      progress(results.fanOut.at(-1)!);
    }
  }
  for (const server of ["slps", "floor"] as const) results.idle.push(await idleClients(server, IDLE_CLIENTS));
  results.manyServers = await measure(() => slpFollowing(MANY_SERVERS), MANY_SERVERS_RATE);
  progress(results.manyServers);
  for (const transport of LAST_HOP) {
    results.lastHop.push(await measure(() => slpInto(transport), LAST_HOP_RATE));
    progress(results.lastHop.at(-1)!);
  }

  const sections = [
    floorTable(results.floor),
    sweepTable(results.sweep),
    ...(compare ? [compareTable(results.sweep)] : []),
    fanOutTables(results.fanOut),
    idleTable(results.idle),
    manyServersTable(results.manyServers),
    ...(results.lastHop.length > 0 ? [lastHopTable(results.lastHop)] : []),
    goalsTable(),
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
  await stopAll([...children]);
  removeDir(dir);
}
process.exit(0);
