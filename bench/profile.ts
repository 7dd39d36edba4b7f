// Where slp's time goes, per message, in measures that hardly move with the machine's other load:
// the wake-ups of each process (its main thread's voluntary context switches: each is one sleep
// in epoll and one wake), the timers it arms, the bytes its JavaScript allocates, its CPU, and
// with --strace its system calls by name (strace -c -f, in a second run of its own, since strace
// slows the process it watches: it then batches more than it would, so its counts are a floor).
//
//   bun bench/profile.ts [--rates 1000,10000,50000] [--messages 30000] [--strace | --plain]
//                        [--slps "FLAGS"] [--slpc "FLAGS"]
//
// Each rate: UDP in -> slps -> TLS -> slpc -> UDP out into the bench's sink, `--messages` messages
// of 200 bytes, both programs run with bench/probe.ts preloaded (timers armed, heap) and JSC's GC
// log on (the bytes allocated between collections). Prints one Markdown table per rate.

import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds, ROOT, sleep, tempDir, until } from "../test/kit.ts";
import { asker, Bench } from "./harness.ts";
import { type Column, f, offeredText, table } from "./table.ts";

const argv = process.argv.slice(2);
const value = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
const RATES = (value("--rates") ?? "1000,10000,50000").split(",").map(Number);
const MESSAGES = Number(value("--messages") ?? 30_000);
const STRACE = argv.includes("--strace");
/** CPU and wake-ups only: no probe. */
const PLAIN = argv.includes("--plain");
const EXTRA = {
  slps: value("--slps")?.split(" ").filter(Boolean) ?? [],
  slpc: value("--slpc")?.split(" ").filter(Boolean) ?? [],
};
if (RATES.some((rate) => !(rate > 0)) || !(MESSAGES > 0)) {
  console.error(
    "usage: bun bench/profile.ts [--rates R,R,...] [--messages N] [--strace | --plain] [--slps FLAGS] [--slpc FLAGS]",
  );
  process.exit(2);
}

/** Context switches of one thread, or of all threads of a process. */
function switches(pid: number): { mainVoluntary: number; mainInvoluntary: number; allThreads: number } {
  const read = (task: string) => {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)![1]);
    return [field("voluntary_ctxt_switches"), field("nonvoluntary_ctxt_switches")] as const;
  };
  const [mainVoluntary, mainInvoluntary] = read(String(pid));
  let allThreads = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [voluntary, involuntary] = read(task);
      allThreads += voluntary + involuntary;
    } catch {} // a thread that ended meanwhile
  }
  return { mainVoluntary, mainInvoluntary, allThreads };
}

type Counts = Record<string, number>;
type Probe = { armed: Counts; live: Counts; afterGc: Counts; at: number };

/** Asks the probe in `child` for its numbers (SIGUSR2); `at` is where its line starts in stderr. */
async function probe(child: { stderr: string; kill(signal: NodeJS.Signals): void }): Promise<Probe> {
  const from = child.stderr.length;
  child.kill("SIGUSR2");
  const whole = () => child.stderr.indexOf("\n", child.stderr.indexOf("probe {", from));
  await until("the probe's line", () => child.stderr.indexOf("probe {", from) >= 0 && whole() >= 0);
  const at = child.stderr.indexOf("probe {", from);
  return { ...JSON.parse(child.stderr.slice(at + 6, whole())), at };
}

/**
 * Objects the JavaScript heap allocated between two probes, by type; undefined when JSC collected
 * in between after all (its log says so), since a collection hides what it freed.
 */
function allocated(stderr: string, before: Probe, after: Probe): Counts | undefined {
  // The later probe's own collection is logged before its line.
  if (stderr.slice(before.at, after.at).split("START").length - 1 > 1) return undefined;
  const counts: Counts = {};
  for (const [type, n] of Object.entries(after.live)) {
    const more = n - (before.afterGc[type] ?? 0);
    if (more > 0) counts[type] = more;
  }
  return counts;
}

/** strace -c's table: calls by system call. */
function straceCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words.length < 5 || !/^\d+\.\d+$/.test(words[0]!) || words.at(-1) === "total") continue;
    counts.set(words.at(-1)!, Number(words[3]));
  }
  return counts;
}

/** What a pass measures: CPU and wake-ups alone, the probe's counts, or system calls under strace. */
type Pass = "plain" | "probe" | "strace";

/**
 * The probe's environment: no collection between two probes (JSC collects once 1 GiB was
 * allocated, and not on Bun's timer), and JSC's GC log to show that none happened.
 */
const PROBE_ENV = { BUN_JSC_logGC: "1", BUN_JSC_largeHeapSize: String(2 ** 30), BUN_GC_TIMER_DISABLE: "1" };

interface PassResult {
  sent: number;
  delivered: number;
  p50: number;
  p99: number;
  /** Per program, per message. */
  programs: {
    cpuUs: number;
    wakeups: number;
    involuntary: number;
    threadSwitches: number;
    armed?: Counts;
    /** Objects allocated, by type; undefined when JSC collected meanwhile. */
    allocated?: Counts;
    syscalls?: Map<string, number>;
  }[];
}

async function measure(rate: number, pass: Pass, messages = MESSAGES): Promise<PassResult> {
  const seconds = messages / rate;
  const probing = pass === "probe";
  const bench = new Bench({
    seconds,
    size: 200,
    smoke: false,
    ...(probing ? { bunFlags: ["--preload", join(ROOT, "bench/probe.ts")], env: PROBE_ENV } : {}),
  });
  const traces = tempDir("slp-profile-");
  try {
    const { sink, port } = await bench.startSink();
    const { slps, udpPort, tlsPort } = await bench.startSlps(EXTRA.slps);
    const slpc = await bench.startSlpc([{ slps, tlsPort }], `127.0.0.1:${port}`, EXTRA.slpc);
    const programs = [slps, slpc];
    await sleep(1000);
    const probes = async () => (probing ? [await probe(slps), await probe(slpc)] : undefined);
    const probesBefore = await probes();
    const reading = () => programs.map((child) => ({ cpu: cpuSeconds(child.pid), switches: switches(child.pid) }));
    const before = reading();
    const straces =
      pass === "strace"
        ? PROGRAMS.map((name, i) =>
            bench.spawn(["strace", "-c", "-f", "-p", String(programs[i]!.pid), "-o", join(traces, name)]),
          )
        : [];
    if (straces.length > 0) await sleep(1000); // attached to every thread
    const load = bench.spawnScript("load.ts", [String(udpPort), String(rate), String(seconds), "200"]);
    if ((await load.proc.exited) !== 0) throw new Error(`the load generator failed: ${load.stderr}`);
    const sent = JSON.parse(load.stdout.toString()).sent as number;
    const ask = asker(sink);
    let delivered = -1;
    for (let waited = 0; waited < 30_000; waited += 500) {
      const count = Number(await ask("count", "the sink's count"));
      if (count === delivered) break;
      delivered = count;
      await sleep(500);
    }
    for (const trace of straces) trace.kill("SIGINT");
    await Promise.all(straces.map((trace) => trace.proc.exited));
    const after = reading();
    const probesAfter = await probes();
    const { pooled } = JSON.parse(await ask(`report ${sent}`, "the sink's report"));
    const per = (n: number) => n / sent;
    return {
      sent,
      delivered,
      p50: pooled.p50,
      p99: pooled.p99,
      programs: programs.map((child, i) => {
        const [was, is] = [before[i]!, after[i]!];
        const [probedBefore, probedAfter] = [probesBefore?.[i], probesAfter?.[i]];
        return {
          cpuUs: per(is.cpu - was.cpu) * 1e6,
          wakeups: per(is.switches.mainVoluntary - was.switches.mainVoluntary),
          involuntary: per(is.switches.mainInvoluntary - was.switches.mainInvoluntary),
          threadSwitches: per(is.switches.allThreads - was.switches.allThreads),
          armed:
            probedAfter &&
            Object.fromEntries(
              Object.entries(probedAfter.armed).map(([kind, n]) => [kind, per(n - probedBefore!.armed[kind]!)]),
            ),
          allocated: probedAfter && perType(allocated(child.stderr, probedBefore!, probedAfter), per),
          syscalls: straces.length > 0 ? straceCounts(readFileSync(join(traces, PROGRAMS[i]!), "utf8")) : undefined,
        };
      }),
    };
  } finally {
    await bench.close();
    rmSync(traces, { recursive: true, force: true });
  }
}

const PROGRAMS = ["slps", "slpc"];
/** Messages in a window of the probe's: short, so that JSC's own timer rarely collects in it. */
const PROBE_MESSAGES = Math.min(MESSAGES, 3000);
const perType = (counts: Counts | undefined, per: (n: number) => number) =>
  counts && Object.fromEntries(Object.entries(counts).map(([type, n]) => [type, per(n)]));
/** The types of which a program allocates at least one in ten messages, most first. */
const commonTypes = (counts: Counts | undefined) =>
  counts === undefined
    ? "collected meanwhile"
    : Object.entries(counts)
        .filter(([, n]) => n >= 0.1)
        .sort(([, a], [, b]) => b - a)
        .map(([type, n]) => `${type} ${f(n, 1)}`)
        .join(", ");
const total = (counts: Counts | undefined) =>
  counts === undefined
    ? "-"
    : f(
        Object.values(counts).reduce((sum, n) => sum + n, 0),
        1,
      );
const perMessage = (n: number | undefined) => (n === undefined ? "-" : f(n, n < 0.1 ? 3 : 2));
for (const rate of RATES) {
  const plain = await measure(rate, "plain");
  // JSC still collects now and then on a timer of its own, which hides what it freed: the probe
  // runs short windows, again until each program had one without a collection.
  const probed = PLAIN ? plain : await measure(rate, "probe", PROBE_MESSAGES);
  for (let again = 0; !PLAIN && again < 3 && probed.programs.some((p) => p.allocated === undefined); again++) {
    const next = await measure(rate, "probe", PROBE_MESSAGES);
    for (const [i, p] of probed.programs.entries())
      if (p.allocated === undefined) probed.programs[i] = next.programs[i]!;
  }
  const traced = STRACE ? await measure(rate, "strace") : undefined;
  const calls = (i: number, name: string) =>
    traced ? (traced.programs[i]?.syscalls?.get(name) ?? 0) / traced.sent : 0;
  // The system calls that at least one program makes once in a hundred messages, most frequent first.
  const names = traced
    ? [...new Set(traced.programs.flatMap((p) => [...p.syscalls!.keys()]))]
        .filter((name) => PROGRAMS.some((_, i) => calls(i, name) >= 0.01))
        .sort((a, b) => calls(0, b) + calls(1, b) - calls(0, a) - calls(1, a))
    : [];
  const rows = PROGRAMS.map((program, i) => ({ program, i, ...plain.programs[i]!, ...probed.programs[i]! }));
  const runs = [
    `${f(plain.sent)} messages, ${f(plain.delivered)} delivered, p50 ${f(plain.p50, 2)} ms, p99 ${f(plain.p99, 2)} ms`,
    `with the probe ${f(probed.delivered)} delivered, p99 ${f(probed.p99, 2)} ms`,
    ...(traced ? [`under strace ${f(traced.delivered)} delivered, p99 ${f(traced.p99, 2)} ms`] : []),
  ];
  const note =
    `${runs.join("; ")}. Per message: CPU and wake-ups (the main thread's voluntary context switches) from the ` +
    "plain run; timers armed and JavaScript objects allocated from the probe's; system calls from strace's.";
  console.log(
    table(
      `${offeredText(rate)} messages/s`,
      note,
      [
        ["program", (row) => row.program],
        ["CPU µs", (row) => f(plain.programs[row.i]!.cpuUs, 1)],
        ["wake-ups", (row) => perMessage(plain.programs[row.i]!.wakeups)],
        ["preempted", (row) => perMessage(plain.programs[row.i]!.involuntary)],
        ["switches, all threads", (row) => perMessage(plain.programs[row.i]!.threadSwitches)],
        ["setImmediate", (row) => perMessage(row.armed?.setImmediate)],
        ["setTimeout", (row) => perMessage(row.armed?.setTimeout)],
        ["JS objects", (row) => total(row.allocated)],
        ...names.map((name): Column<(typeof rows)[number]> => [name, (row) => perMessage(calls(row.i, name))]),
        ...(traced
          ? [
              [
                "system calls",
                (row) =>
                  perMessage([...traced.programs[row.i]!.syscalls!.values()].reduce((a, b) => a + b, 0) / traced.sent),
              ] as Column<(typeof rows)[number]>,
            ]
          : []),
      ],
      rows,
    ),
  );
  for (const row of rows)
    console.log(`JavaScript objects ${row.program} allocates a message: ${commonTypes(row.allocated)}`);
  console.log();
}
process.exit(0);
