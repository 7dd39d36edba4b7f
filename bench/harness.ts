// What every section of the bench shares: the throwaway certificates, every process it starts
// (so that a failure leaves none behind), slps, slpc, rsyslogd and the sink as each section starts
// them, and one measurement: the load generator (bench/load.ts) into a Setup, the receiver's
// report, and the CPU and memory of each process under test, read from /proc.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findDaemon } from "../test/daemons.ts";
import {
  BUN,
  Child,
  cpuSeconds,
  freePort,
  ROOT,
  removeDir,
  sleep,
  tempDir,
  udpDrops,
  udpListening,
  until,
} from "../test/kit.ts";
import { type Memory, memoryOf, PeakMemory } from "./memory.ts";
import type { TallyReport } from "./tally.ts";

// ---- What is measured: a relay or a server, and the process that receives what it delivers

export interface Setup {
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
  /** Bytes the relay's resume buffer holds, read once the load is through (slps's `buffer.bytes`). */
  held?(): Promise<number>;
  /** Removes what the setup leaves besides its processes (a daemon's files); run after the row, even when it fails. */
  cleanup?(): Promise<void>;
  /** How long the receiver's count must stand still to be final, at least: longer than the relay's own pauses. */
  settleMs?: number;
}

/** One stream's numbers; `sent` and `tag` where each stream had a load generator of its own. */
export type Stream = TallyReport & { skipped?: number; unknownSkips?: number; sent?: number; tag?: string };

export interface Row {
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
  /** What the relay's resume buffer held at the end, MB, where it says (slps). */
  heldMB?: number;
  /** CPU of the processes under test per message delivered (per message in, for fan-out), µs. */
  cpuUsPerMessage: number;
  /** CPU, wake-ups and memory of each process under test. */
  processes: Record<string, ProcessNumbers>;
  receiverCpuSeconds: number;
  senderCpuSeconds: number;
  /** How late the load generator's 99th percentile message left against its schedule, µs. */
  senderLateP99Us: number;
  /** Cores busy with anything else on the machine during the measurement (other users' work). */
  otherCores: number;
  /** Each stream's own numbers: the sink's one port, or each of the fan-out client's connections. */
  streams: Stream[];
}

/**
 * One process under test over one measurement: its CPU seconds, how often it slept and woke, and
 * its memory at its peak (sampled every 250 ms; bench/memory.ts says what each figure counts).
 */
export interface ProcessNumbers extends Memory {
  cpuSeconds: number;
  /** Times its threads went to sleep waiting and were woken (voluntary context switches, all threads). */
  wakeups: number;
  /** Peak VmRSS as the kernel kept it (VmHWM): file-backed pages included. */
  rssMB: number;
  /** Private memory (RssAnon) when the load began, MB: what the process held idle. */
  startAnonMB: number;
}

// ---- Measuring processes and the machine

/**
 * Voluntary context switches of all of a process's threads: each is one sleep (in epoll, for an
 * event loop) and one wake-up. All threads, since rsyslog's work is in threads other than its main.
 */
export function wakeups(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8");
      total += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]);
    } catch {} // a thread that ended meanwhile
  }
  return total;
}

export function statusMB(pid: number, field: "VmRSS" | "VmHWM"): number {
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

  /** `ours`: the processes that are not other load, read again at each reading. */
  constructor(readonly ours: () => number[]) {
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
    const ours = new Set(this.ours());
    for (const name of readdirSync("/proc")) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || ours.has(pid)) continue;
      try {
        into.set(pid, cpuSeconds(pid));
      } catch {} // gone meanwhile
    }
  }
}

/** Sends a line to a child that answers with one line on stdout, and returns the answer. */
export function asker(child: Child) {
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

// ---- The processes

/** `--name value` for each entry. */
const flags = (values: Record<string, string>) =>
  Object.entries(values).flatMap(([name, value]) => [`--${name}`, value]);

/** Counts slps's skipped messages from its SIGUSR1 counters. */
export function slpsSkipped(slps: Child) {
  const numbers = slpsNumbers(slps);
  return async () =>
    ((await numbers()).clients as { dropped: number }[]).reduce((sum, client) => sum + client.dropped, 0);
}

/** Bytes slps's resume buffer holds, from its SIGUSR1 counters. */
export function slpsHeld(slps: Child) {
  const numbers = slpsNumbers(slps);
  return async () => (await numbers()).buffer.bytes as number;
}

/** slps's SIGUSR1 counters, each time asked. */
function slpsNumbers(slps: Child) {
  return async () => {
    const from = slps.stderr.length;
    slps.kill("SIGUSR1");
    // The whole line: stderr may come in pieces.
    const line = () => /^\{.*\}$/m.exec(slps.stderr.slice(from))?.[0];
    await until("slps's counters", () => line() !== undefined);
    return JSON.parse(line()!);
  };
}

export interface BenchOptions {
  /** How long each load generator sends. */
  seconds: number;
  /** Bytes in each message. */
  size: number;
  /** A run of a few seconds: shorter waits for a count to settle and for memory to show. */
  smoke: boolean;
  /** Flags for Bun before slps.ts and slpc.ts (bench/profile.ts preloads its probe), and their environment. */
  bunFlags?: string[];
  env?: Record<string, string>;
}

/** One run of the bench: its certificates, in a folder of its own, and the processes it started. */
export class Bench {
  readonly dir = tempDir("slp-bench-");
  readonly certs = join(this.dir, "certs");
  readonly #children = new Set<Child>();

  constructor(readonly options: BenchOptions) {
    const made = Bun.spawnSync(["bash", join(ROOT, "certs/make-certs.sh"), "-d", this.certs, "localhost", "client"], {
      stderr: "pipe",
    });
    if (made.exitCode !== 0) throw new Error(made.stderr.toString());
  }

  spawn(cmd: string[], stdin: "ignore" | "pipe" = "ignore", env: Record<string, string> = {}): Child {
    const child = new Child(cmd, env, stdin);
    this.#children.add(child);
    return child;
  }

  /** A script of the bench's own, under bench/, run by this Bun. */
  spawnScript(script: string, args: string[], stdin: "ignore" | "pipe" = "ignore"): Child {
    return this.spawn([BUN, join(ROOT, "bench", script), ...args], stdin);
  }

  async stopAll(stopping: Child[]): Promise<void> {
    for (const child of stopping) child.kill("SIGKILL");
    await Promise.all(stopping.map((child) => child.proc.exited));
    for (const child of stopping) this.#children.delete(child);
  }

  /** Stops every process still running and removes the certificates and the daemons' folders. */
  async close(): Promise<void> {
    await this.stopAll([...this.#children]);
    removeDir(this.dir);
  }

  async startSink(tags: string[] = []): Promise<{ sink: Child; port: number }> {
    const port = await freePort("udp");
    const tagging = tags.length > 0 ? ["--tags", tags.join(",")] : [];
    const sink = this.spawnScript("sink.ts", [...tagging, String(port)], "pipe");
    await until("the sink to bind", () => udpListening(port));
    return { sink, port };
  }

  async startSlps(extra: string[] = []): Promise<{ slps: Child; udpPort: number; tlsPort: number }> {
    const udpPort = await freePort("udp");
    const tlsPort = await freePort();
    const slps = this.#spawnProgram("slps.ts", [
      ...flags({
        udp: `127.0.0.1:${udpPort}`,
        listen: `127.0.0.1:${tlsPort}`,
        cert: join(this.certs, "server.pem"),
        key: join(this.certs, "server.key"),
        ca: join(this.certs, "ca.pem"),
        "max-clients": "2000",
        "max-pending": "1000",
        "handshake-rate": "100000",
      }),
      ...extra,
    ]);
    await slps.waitFor(/serving clients/);
    return { slps, udpPort, tlsPort };
  }

  /**
   * slpc following each of `servers`, with the bench's client certificate, handing on to `forward`
   * with no --forward-rate, and `extra` flags; returned once every server has started slpc's stream.
   */
  async startSlpc(servers: { slps: Child; tlsPort: number }[], forward: string, extra: string[] = []): Promise<Child> {
    const slpc = this.#spawnProgram("slpc.ts", [
      ...servers.flatMap(({ tlsPort }) => ["--server", `localhost:${tlsPort}`]),
      ...flags({
        ca: join(this.certs, "ca.pem"),
        cert: join(this.certs, "client.pem"),
        key: join(this.certs, "client.key"),
        forward,
        "forward-rate": "0",
      }),
      ...extra,
    ]);

    for (const { slps } of servers) {
      await until("slpc's stream to start", () => / starts at #/.test(slps.stderr), 30_000);
    }
    return slpc;
  }

  /** slps.ts or slpc.ts with `args`, run by this Bun with the bench's flags for it. */
  #spawnProgram(program: string, args: string[]): Child {
    return this.spawn([BUN, ...(this.options.bunFlags ?? []), program, ...args], "ignore", this.options.env);
  }

  /** An rsyslogd with its work folder `rsyslog-NAME` and `config` after its global() line. */
  startRsyslog(name: string, config: string[]): Child {
    const found = findDaemon("rsyslog");
    if (typeof found === "string") throw new Error(found);
    const work = join(this.dir, `rsyslog-${name}`);
    mkdirSync(work, { recursive: true });
    writeFileSync(
      join(work, "rsyslog.conf"),
      `${[`global(workDirectory="${work}" maxMessageSize="64k")`, ...config].join("\n")}\n`,
    );
    return this.spawn([...found.cmd, "-f", join(work, "rsyslog.conf"), "-i", join(work, "pid")], "ignore", found.env);
  }

  /** Builds a setup, sends it `offered` messages a second (0: flat out), and stops it. */
  async measure(build: () => Promise<Setup>, offered: number): Promise<Row> {
    const { seconds, size, smoke } = this.options;
    const setup = await build();
    const { processes, receiver } = setup;
    const ask = asker(receiver);
    const otherLoad = new OtherLoad(() => [process.pid, ...[...this.#children].map((child) => child.pid)]);
    const memory = new PeakMemory(Object.values(processes).map((child) => child.pid));
    const startMemory = new Map(Object.values(processes).map((child) => [child.pid, memoryOf(child.pid)]));
    try {
      const measured = [...Object.values(processes), receiver];
      const cpuBefore = measured.map((child) => cpuSeconds(child.pid));
      const wakeupsBefore = measured.map((child) => wakeups(child.pid));
      const dropsBefore = setup.dropPorts.map(([port]) => udpDrops(port));
      const ports = setup.udpPorts ?? [setup.udpPort];
      const tag = (i: number) => (setup.udpPorts ? [`s${i + 1}`] : []);
      const loads = ports.map((port, i) =>
        this.spawnScript("load.ts", [String(port), String(offered), String(seconds), String(size), ...tag(i)]),
      );
      type Sent = { sent: number; seconds: number; lateP99Us: number; cpuSeconds: number };
      const sentEach: Sent[] = [];
      for (const load of loads) {
        if ((await load.proc.exited) !== 0) throw new Error(`the load generator failed: ${load.stderr}`);
        this.#children.delete(load);
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
      const settleMs = Math.max(smoke ? 200 : 1000, setup.settleMs ?? 0);
      for (let waited = 0; waited < 30_000; waited += settleMs) {
        const count = Number(await ask("count", "the receiver's count"));
        if (count === last) break;
        last = count;
        await sleep(settleMs);
      }
      const cpu = measured.map((child, i) => cpuSeconds(child.pid) - cpuBefore[i]!);
      const woke = measured.map((child, i) => wakeups(child.pid) - wakeupsBefore[i]!);
      const peaks = memory.stop();
      const otherCores = otherLoad.stop();
      const drops = setup.dropPorts.map(([port], i) => udpDrops(port) - dropsBefore[i]!);
      const processRows = Object.fromEntries(
        Object.entries(processes).map(([role, child], i): [string, ProcessNumbers] => [
          role,
          {
            ...peaks.get(child.pid)!,
            rssMB: statusMB(child.pid, "VmHWM"),
            startAnonMB: startMemory.get(child.pid)!.anonMB,
            cpuSeconds: cpu[i]!,
            wakeups: woke[i]!,
          },
        ]),
      );
      const skippedByRelay = (await setup.skipped?.()) ?? 0;
      const held = await setup.held?.();
      type Report = { pooled: { p50: number; p99: number; max: number }; streams: Stream[] };
      const { pooled, streams }: Report = JSON.parse(
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
        ...(held === undefined ? {} : { heldMB: held / 1024 / 1024 }),
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
      memory.stop();
      await this.stopAll([...Object.values(processes), receiver]);
      await setup.cleanup?.();
    }
  }
}
