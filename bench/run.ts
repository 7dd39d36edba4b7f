// The benchmark: slps and slpc on loopback with throwaway certificates, a load generator and a
// UDP sink (bench/load.ts, bench/sink.ts), swept over offered rates; fan-out to many clients;
// slps's memory with 1,000 idle authenticated clients; the generator-to-sink ceiling; and, with
// --compare rsyslog, the same load through two rsyslogd relaying over mutual TLS.
//
//   npm run bench                       the full run (a few minutes)
//   npm run bench -- --compare rsyslog  the same, with rsyslog side by side
//   npm run bench -- --smoke            a few seconds, to see that it works
//   npm run bench -- --rates 10000,0 --fan-out 1,10 --idle 100   choose what to measure (0: flat out)
//
// Prints a table and writes bench/results.json and bench/results.svg (or to --out DIR).

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findDaemon } from "../test/daemons.ts";
import { Child, ROOT, freePort, removeDir, sleep, tcpListening, tempDir, udpDrops, udpListening, until } from "../test/kit.ts";
import { encodeControl } from "../lib.ts";
import { chart } from "./chart.ts";

const argv = process.argv.slice(2);
const smoke = argv.includes("--smoke");
const compare = argv.includes("--compare") ? argv[argv.indexOf("--compare") + 1] : undefined;
const outDir = argv.includes("--out") ? argv[argv.indexOf("--out") + 1]! : join(ROOT, "bench");
if (compare !== undefined && compare !== "rsyslog") {
  console.error(`bench: --compare ${compare}: only rsyslog is known`);
  process.exit(2);
}

if (compare) {
  const installed = Bun.spawnSync(["bash", join(ROOT, ".ci/install-daemons"), "--tls"], { stdout: "inherit", stderr: "inherit" });
  if (installed.exitCode !== 0) {
    console.error("bench: cannot install rsyslog and its TLS driver (bash .ci/install-daemons --tls)");
    process.exit(1);
  }
}

const listArg = (flag: string, fallback: number[]) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1]!.split(",").map(Number) : fallback);
const RATES = listArg("--rates", smoke ? [1_000, 10_000] : [1_000, 10_000, 25_000, 50_000, 100_000, 200_000, 0]);
const SECONDS = smoke ? 1 : 3;
const FAN_OUT = listArg("--fan-out", smoke ? [1, 2] : [1, 10, 50]);
// Each client is a process of its own, and this machine has 2 cores: 10,000/s to 50 clients would
// be 500,000 deliveries a second. 2,000/s keeps fan-out within what the machine itself can do.
const FAN_OUT_RATE = 2_000;
const IDLE_CLIENTS = listArg("--idle", [smoke ? 20 : 1_000])[0]!;
const SIZE = 200;

const BUN = process.execPath;
const dir = tempDir("slp-bench-");
const certs = join(dir, "certs");
const made = Bun.spawnSync(["bash", join(ROOT, "certs/make-certs.sh"), "-d", certs, "localhost", "client"], { stderr: "pipe" });
if (made.exitCode !== 0) throw new Error(made.stderr.toString());

// ---- Measuring processes and sockets

const TICKS = 100; // /proc/PID/stat counts CPU time in clock ticks of 1/100 s on Linux
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}
function rssMB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

/** Reads a child's stdout line by line. */
function lines(child: Child) {
  let seen = 0;
  return async (what: string, ms = 20_000): Promise<string> => {
    let line: string | undefined;
    await until(what, () => {
      const all = child.stdout.toString().split("\n");
      if (all.length - 1 > seen) line = all[seen++];
      return line !== undefined;
    }, ms);
    return line!;
  };
}

// ---- The relays under test

interface Relay {
  name: string;
  /** Where the load goes. */
  udpPort: number;
  /** The relay's processes, by role, for RSS and CPU. */
  processes: Record<string, Child>;
  /** Messages the relay dropped on purpose and counted (slps: clients more than --queue behind). */
  skipped?(): Promise<number>;
  stop(): Promise<void>;
}

async function stopAll(children: Child[]): Promise<void> {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(children.map((child) => child.proc.exited));
}

async function slpRelay(sinkPorts: number[], extraServerArgs: string[] = []): Promise<Relay> {
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const slps = new Child([BUN, "slps.ts", "--udp", `127.0.0.1:${udpPort}`, "--listen", `127.0.0.1:${tlsPort}`,
    "--cert", join(certs, "server.pem"), "--key", join(certs, "server.key"), "--ca", join(certs, "ca.pem"),
    "--max-clients", "2000", "--max-pending", "1000", "--handshake-rate", "100000", ...extraServerArgs]);
  await slps.waitFor(/serving clients/);
  const clients = sinkPorts.map((port) => new Child([BUN, "slpc.ts", "--server", `localhost:${tlsPort}`, "--ca", join(certs, "ca.pem"),
    "--cert", join(certs, "client.pem"), "--key", join(certs, "client.key"), "--forward", `127.0.0.1:${port}`, "--forward-rate", "0"]));
  await until("every slpc to start", () => (slps.stderr.match(/ starts at #/g) ?? []).length === clients.length, 60_000);
  const processes: Record<string, Child> = { slps };
  clients.forEach((client, i) => (processes[`slpc${i + 1}`] = client));
  const skipped = async () => {
    const from = slps.stderr.length;
    slps.kill("SIGUSR1");
    await until("slps's counters", () => slps.stderr.slice(from).includes("{"));
    const counters = JSON.parse(slps.stderr.slice(from).split("\n").find((line) => line.startsWith("{"))!);
    return (counters.clients as { dropped: number }[]).reduce((sum, client) => sum + client.dropped, 0);
  };
  return { name: "slp", udpPort, processes, skipped, stop: () => stopAll([slps, ...clients]) };
}

/** Two rsyslogd relaying over mutual TLS: imudp -> omfwd (TLS) -> imtcp (TLS) -> omfwd UDP. */
async function rsyslogRelay(sinkPort: number): Promise<Relay> {
  const found = findDaemon("rsyslog");
  if (typeof found === "string") throw new Error(found);
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const run = async (name: string, config: string[]) => {
    const work = join(dir, `rsyslog-${name}-${udpPort}`);
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, "rsyslog.conf"), [`global(workDirectory="${work}" maxMessageSize="64k")`, ...config].join("\n") + "\n");
    const child = new Child([...found.cmd, "-f", join(work, "rsyslog.conf"), "-i", join(work, "pid")], found.env);
    return child;
  };
  const tls = (cert: string) =>
    `global(DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="${certs}/ca.pem" DefaultNetstreamDriverCertFile="${certs}/${cert}.pem" DefaultNetstreamDriverKeyFile="${certs}/${cert}.key")`;
  const queue = `queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="1024"`;
  const home = await run("home", [
    tls("server"),
    `main_queue(${queue})`,
    `module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")`,
    `input(type="imtcp" address="127.0.0.1" port="${tlsPort}")`,
    `template(name="raw" type="string" string="%rawmsg%")`,
    `action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
  ]);
  await until("rsyslog home to listen", () => tcpListening(tlsPort), 10_000);
  const server = await run("server", [
    tls("client"),
    `main_queue(${queue})`,
    `module(load="imudp")`,
    `input(type="imudp" address="127.0.0.1" port="${udpPort}" rcvbufSize="8m")`,
    `action(type="omfwd" target="127.0.0.1" port="${tlsPort}" protocol="tcp" StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost" ${queue})`,
  ]);
  await until("rsyslog server to listen", () => udpListening(udpPort), 10_000);
  await sleep(500); // let the TLS connection between the two come up
  return { name: "rsyslog", udpPort, processes: { "rsyslogd (server)": server, "rsyslogd (home)": home }, stop: () => stopAll([server, home]) };
}

/** No relay at all: the generator sends straight to the sink. */
function ceiling(sinkPort: number): Relay {
  return { name: "ceiling", udpPort: sinkPort, processes: {}, stop: async () => {} };
}

// ---- One measurement

interface Row {
  relay: string;
  clients: number;
  offered: number;
  sent: number;
  delivered: number;
  share: number;
  rate: number;
  p50: number;
  p99: number;
  max: number;
  kernelDrops: number;
  /** Dropped by the relay on purpose, and counted: a client more than --queue behind. */
  skipped: number;
  /** Lost neither in the kernel nor counted: the goal is none. */
  lostInside: number;
  processes: Record<string, { rssMB: number; cpuSeconds: number }>;
}

async function measure(makeRelay: (sinkPorts: number[]) => Promise<Relay> | Relay, offered: number, clients = 1): Promise<Row> {
  const sinkPorts = await Promise.all(Array.from({ length: clients }, () => freePort("udp")));
  const sink = new Child([BUN, join(ROOT, "bench/sink.ts"), ...sinkPorts.map(String)], {}, "pipe");
  const readSink = lines(sink);
  await until("the sink to bind", () => sinkPorts.every(udpListening));
  const relay = await makeRelay(sinkPorts);
  const cpuBefore = Object.fromEntries(Object.entries(relay.processes).map(([role, child]) => [role, cpuSeconds(child.pid)]));
  const watched = [relay.udpPort, ...sinkPorts.filter((port) => port !== relay.udpPort)];
  const dropsBefore = watched.map(udpDrops);
  const load = new Child([BUN, join(ROOT, "bench/load.ts"), String(relay.udpPort), String(offered), String(SECONDS), String(SIZE)]);
  const { sent, seconds } = JSON.parse(await lines(load)("the load generator's report", SECONDS * 1000 + 30_000));
  // Let what is on its way arrive: wait until the sink's count stops moving.
  const processes: Row["processes"] = {};
  for (const [role, child] of Object.entries(relay.processes)) processes[role] = { rssMB: rssMB(child.pid), cpuSeconds: 0 };
  // Wait for what is still on its way, until the sink's count stands still for a second (at most 30 s).
  let last = -1;
  for (let waited = 0; waited < 30_000; waited += 1000) {
    sink.proc.stdin!.write("count\n");
    const count = Number(await readSink("the sink's count"));
    if (count === last) break;
    last = count;
    await sleep(smoke ? 300 : 1000);
  }
  const kernelDrops = watched.map(udpDrops).reduce((sum, drops, i) => sum + drops - dropsBefore[i]!, 0);
  for (const [role, child] of Object.entries(relay.processes)) {
    processes[role]!.cpuSeconds = cpuSeconds(child.pid) - cpuBefore[role]!;
    processes[role]!.rssMB = Math.max(processes[role]!.rssMB, rssMB(child.pid));
  }
  // Many clients read as one column: the mean RSS of one slpc, the CPU of all of them.
  const slpcs = Object.keys(processes).filter((role) => role.startsWith("slpc"));
  if (slpcs.length > 0) {
    const all = slpcs.map((role) => processes[role]!);
    slpcs.forEach((role) => delete processes[role]);
    processes[slpcs.length === 1 ? "slpc" : "slpc (each)"] = {
      rssMB: all.reduce((sum, p) => sum + p.rssMB, 0) / all.length,
      cpuSeconds: all.reduce((sum, p) => sum + p.cpuSeconds, 0) / all.length,
    };
  }
  const skipped = (await relay.skipped?.()) ?? 0;
  sink.proc.stdin!.write("report\n");
  const report: { received: number; distinct: number; p50: number; p99: number; max: number }[] = JSON.parse(await readSink("the sink's report"));
  await relay.stop();
  sink.kill("SIGKILL");
  await sink.proc.exited;
  const delivered = Math.min(...report.map((port) => port.distinct));
  const worst = report.reduce((a, b) => (b.p99 > a.p99 ? b : a));
  return {
    relay: relay.name, clients, offered, sent, delivered, share: sent ? delivered / sent : 0, rate: delivered / seconds,
    p50: worst.p50, p99: worst.p99, max: worst.max, kernelDrops, skipped,
    lostInside: Math.max(0, sent * clients - report.reduce((s, p) => s + p.distinct, 0) - kernelDrops - skipped), processes,
  };
}

/** slps's memory with `count` authenticated clients that have resumed and then sit idle. */
async function idleClients(count: number): Promise<{ clients: number; idleMB: number; withClientsMB: number }> {
  const relay = await slpRelay([]);
  const slps = relay.processes.slps!;
  await sleep(500);
  const idleMB = rssMB(slps.pid);
  const sockets: { end(): void }[] = [];
  const resume = encodeControl({ type: "resume", version: 1 });
  for (let i = 0; i < count; i++) {
    const tlsPort = Number(/tls 127\.0\.0\.1:(\d+)/.exec(slps.stderr)![1]);
    sockets.push(
      await Bun.connect({
        hostname: "127.0.0.1",
        port: tlsPort,
        tls: { cert: Bun.file(join(certs, "client.pem")), key: Bun.file(join(certs, "client.key")), ca: Bun.file(join(certs, "ca.pem")), serverName: "localhost" },
        socket: { data: (socket) => void socket.write(resume) },
      }),
    );
  }
  await until(`${count} idle clients`, () => (slps.stderr.match(/ starts at #/g) ?? []).length === count, 120_000);
  await sleep(1000);
  const withClientsMB = rssMB(slps.pid);
  sockets.forEach((socket) => socket.end());
  await relay.stop();
  return { clients: count, idleMB, withClientsMB };
}

// ---- The run

const f = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const offeredText = (rate: number) => (rate === 0 ? "flat out" : f(rate));

function table(rows: Row[], title: string): string {
  const roles = [...new Set(rows.flatMap((row) => Object.keys(row.processes)))];
  const head = ["relay", "clients", "offered/s", "sent", "delivered", "share", "delivered/s", "p50 ms", "p99 ms", "max ms", "kernel drops", "skipped (counted)", "lost uncounted",
    ...roles.flatMap((role) => [`${role} RSS MB`, `${role} CPU s`])];
  const body = rows.map((row) => [row.relay, f(row.clients), offeredText(row.offered), f(row.sent), f(row.delivered), `${f(row.share * 100, 2)}%`, f(row.rate),
    f(row.p50, 2), f(row.p99, 2), f(row.max, 1), f(row.kernelDrops), f(row.skipped), f(row.lostInside),
    ...roles.flatMap((role) => (row.processes[role] ? [f(row.processes[role]!.rssMB, 1), f(row.processes[role]!.cpuSeconds, 2)] : ["", ""]))]);
  return [`### ${title}`, "", `| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...body.map((cells) => `| ${cells.join(" | ")} |`), ""].join("\n");
}

const results: { sweep: Row[]; fanOut: Row[]; idle?: Awaited<ReturnType<typeof idleClients>>; ceiling: Row[]; machine: string; date: string } = {
  sweep: [], fanOut: [], ceiling: [], machine: `${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`, date: new Date().toISOString(),
};
try {
  console.error(`bench: ${SIZE}-byte messages for ${SECONDS} s at each rate; slpc with --forward-rate 0`);
  for (const rate of [10_000, 0]) results.ceiling.push(await measure((ports) => ceiling(ports[0]!), rate));
  for (const rate of RATES) {
    results.sweep.push(await measure((ports) => slpRelay(ports), rate));
    if (compare) results.sweep.push(await measure((ports) => rsyslogRelay(ports[0]!), rate));
    console.error(`bench: ${offeredText(rate)} done`);
  }
  for (const clients of FAN_OUT) results.fanOut.push(await measure((ports) => slpRelay(ports), FAN_OUT_RATE, clients));
  results.idle = await idleClients(IDLE_CLIENTS);

  const lines = [
    table(results.ceiling, "Ceiling: the load generator straight into the sink"),
    table(results.sweep, "Sweep: one client"),
    table(results.fanOut, `Fan-out at ${f(FAN_OUT_RATE)} messages/s (delivered and latency of the worst client)`),
    `### slps memory with idle clients\n\n| clients | slps RSS MB before | slps RSS MB with them |\n|---|---|---|\n| ${f(results.idle.clients)} | ${f(results.idle.idleMB, 1)} | ${f(results.idle.withClientsMB, 1)} |\n`,
  ];
  if (compare) {
    const ratio = (a: number, b: number) => (b ? `${f(a / b, 2)}x` : "-");
    const pairs = RATES.map((rate) => [results.sweep.find((r) => r.relay === "slp" && r.offered === rate)!, results.sweep.find((r) => r.relay === "rsyslog" && r.offered === rate)!]);
    lines.push(["### slp / rsyslog", "", "| offered/s | delivered/s | p99 | max |", "|---|---|---|---|",
      ...pairs.map(([slp, rsyslog]) => `| ${offeredText(slp!.offered)} | ${ratio(slp!.rate, rsyslog!.rate)} | ${ratio(slp!.p99, rsyslog!.p99)} | ${ratio(slp!.max, rsyslog!.max)} |`), ""].join("\n"));
  }
  const text = `Measured ${results.date} on ${results.machine}\n\n${lines.join("\n")}`;
  console.log(text);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "results.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(outDir, "results.md"), text);
  writeFileSync(join(outDir, "results.svg"), chart(results.sweep, RATES));
  console.error(`bench: wrote ${join(outDir, "results.json")}, results.md and results.svg`);
} finally {
  removeDir(dir);
}
process.exit(0);
