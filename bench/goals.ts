// Issue 24's goals, read off one run's results: each goal, what this run measured for it, and
// whether that meets it; and their table, the bench's last section. Pure: the bench passes its
// rows in, so it is tested on plain values. A goal the run did not measure (a rate left out of
// --rates, no --compare rsyslog) says which flag would measure it, rather than passing or failing.
// A goal not met says, from the same run, what stands in its way: the wake-ups behind the CPU, the
// memory each process held before the load began.

import { f, offeredText, table } from "./table.ts";

/** What the goals read of one process of a row (bench/harness.ts's ProcessNumbers has more). */
export interface GoalProcess {
  cpuSeconds: number;
  /** Peak VmRSS, file-backed pages included. */
  rssMB: number;
  /** Peak private memory (RssAnon), and what the process held when the load began. */
  anonMB: number;
  startAnonMB: number;
  /** Voluntary context switches, all threads. */
  wakeups: number;
}

/** What the goals read of a row of the sweep or the fan-out (bench/harness.ts's Row has more). */
export interface GoalRow {
  relay: string;
  clients: number;
  /** Messages a second offered; 0 is flat out. */
  offered: number;
  share: number;
  rate: number;
  delivered: number;
  p99: number;
  lostInside: number;
  cpuUsPerMessage: number;
  processes: Record<string, GoalProcess>;
  /** What slps's resume buffer held at the end, MB. */
  heldMB?: number;
}

export interface GoalIdleRow {
  server: string;
  clients: number;
  /** Private memory (RssAnon) the clients added, MB. */
  addedMB: number;
  vmRssBeforeMB: number;
  vmRssWithClientsMB: number;
}

export interface GoalInput {
  floor: GoalRow[];
  sweep: GoalRow[];
  fanOut: GoalRow[];
  idle: GoalIdleRow[];
}

export type Verdict = "met" | "not met" | "not measured";

export interface Goal {
  goal: string;
  measured: string;
  verdict: Verdict;
}

/** The largest share of messages a rate may lose and still count as carried. */
export const MAX_LOSS = 0.001;
/** CPU a message, both processes, against rsyslog's at the same rate. */
export const CPU_RATIO = 0.6;
/** Private memory beyond what slps's resume buffer holds, and slpc's, at 10,000/s; MB. */
export const SLPS_BEYOND_HELD_MB = 6;
export const SLPC_PRIVATE_MB = 6;
/** Private memory 1,000 idle clients may add to slps, MB. */
export const IDLE_ADDED_MB = 20;

const verdict = (met: boolean): Verdict => (met ? "met" : "not met");
const unmeasured = (goal: string, how: string): Goal => ({ goal, measured: how, verdict: "not measured" });
/** A row's wake-ups a message delivered, each process: "0.71 / 0.14". */
const wakeupsText = (row: GoalRow) =>
  Object.values(row.processes)
    .map((p) => f(row.delivered ? p.wakeups / row.delivered : 0, 2))
    .join(" / ");

/** The highest delivered rate a relay carried losing at most MAX_LOSS, with its memory; none if all lost more. */
function highestCarried(rows: GoalRow[]): { rate: number; anonMB: number[] } | undefined {
  const carried = rows.filter((row) => row.share >= 1 - MAX_LOSS).sort((a, b) => b.rate - a.rate);
  const best = carried[0];
  return best && { rate: best.rate, anonMB: Object.values(best.processes).map((p) => p.anonMB) };
}

export function goals({ floor, sweep, fanOut, idle }: GoalInput): Goal[] {
  const slpAt = (rate: number) => sweep.find((row) => row.relay === "slp" && row.offered === rate);
  const rsyslogAt = (rate: number) => sweep.find((row) => row.relay === "rsyslog" && row.offered === rate);
  const list: Goal[] = [];

  // CPU at every rate measured beside rsyslog, from 1,000/s up.
  const cpuGoal = (rate: number) =>
    `CPU a message (both processes) at most ${CPU_RATIO}x rsyslog's at ${offeredText(rate)}${rate ? "/s" : ""}`;
  const compared = [...new Set(sweep.map((row) => row.offered))].filter(
    (rate) => (rate === 0 || rate >= 1_000) && slpAt(rate) && rsyslogAt(rate),
  );
  if (compared.length === 0) list.push(unmeasured(cpuGoal(1_000), "needs --compare rsyslog"));
  for (const rate of compared.sort((a, b) => (a || Infinity) - (b || Infinity))) {
    const [slp, rsyslog] = [slpAt(rate)!, rsyslogAt(rate)!];
    const ratio = slp.cpuUsPerMessage / rsyslog.cpuUsPerMessage;
    const wakeups = `wake-ups a message slps / slpc ${wakeupsText(slp)}, rsyslog's ${wakeupsText(rsyslog)}`;
    list.push({
      goal: cpuGoal(rate),
      measured: `${f(slp.cpuUsPerMessage, 1)} / ${f(rsyslog.cpuUsPerMessage, 1)} µs: ${f(ratio, 2)}x (${wakeups})`,
      verdict: verdict(ratio <= CPU_RATIO),
    });
  }

  const at10k = slpAt(10_000);
  const floorAt10k = floor.find((row) => row.offered === 10_000);
  const p99Goal = "p99 at 10,000/s under 1 ms";
  if (!at10k) list.push(unmeasured(p99Goal, "needs 10000 in --rates"));
  else {
    const ofFloor = floorAt10k ? ` (the harness floor's ${f(floorAt10k.p99, 2)} ms)` : "";
    list.push({ goal: p99Goal, measured: `${f(at10k.p99, 2)} ms${ofFloor}`, verdict: verdict(at10k.p99 < 1) });
  }

  const at50k = slpAt(50_000);
  const p99At50kGoal = "p99 at 50,000/s under 5 ms";
  if (!at50k) list.push(unmeasured(p99At50kGoal, "needs 50000 in --rates"));
  else list.push({ goal: p99At50kGoal, measured: `${f(at50k.p99, 2)} ms`, verdict: verdict(at50k.p99 < 5) });

  const slpsGoal = `slps's private memory at 10,000/s at most what its resume buffer holds + ${SLPS_BEYOND_HELD_MB} MB`;
  const slpcGoal = `slpc's private memory at 10,000/s at most ${SLPC_PRIVATE_MB} MB`;
  const slps = at10k?.processes.slps;
  const slpc = at10k?.processes.slpc;
  if (!at10k || !slps || !slpc || at10k.heldMB === undefined) {
    list.push(unmeasured(slpsGoal, "needs 10000 in --rates"), unmeasured(slpcGoal, "needs 10000 in --rates"));
  } else {
    const beyond = slps.anonMB - at10k.heldMB;
    const idleText = (p: GoalProcess) => `${f(p.startAnonMB, 1)} MB of it before the load`;
    list.push({
      goal: slpsGoal,
      measured:
        `RssAnon ${f(slps.anonMB, 1)} MB, held ${f(at10k.heldMB, 1)} MB: ${f(beyond, 1)} MB beyond ` +
        `(${idleText(slps)}; VmRSS ${f(slps.rssMB, 1)} MB)`,
      verdict: verdict(beyond <= SLPS_BEYOND_HELD_MB),
    });
    list.push({
      goal: slpcGoal,
      measured: `RssAnon ${f(slpc.anonMB, 1)} MB (${idleText(slpc)}; VmRSS ${f(slpc.rssMB, 1)} MB)`,
      verdict: verdict(slpc.anonMB <= SLPC_PRIVATE_MB),
    });
  }

  const idleGoal = `1,000 idle clients add under ${IDLE_ADDED_MB} MB of private memory to slps`;
  const idleSlps = idle.find((row) => row.server === "slps");
  const idleFloor = idle.find((row) => row.server === "floor");
  if (idleSlps?.clients !== 1_000) list.push(unmeasured(idleGoal, "needs --idle 1000"));
  else {
    const vmRss = idleSlps.vmRssWithClientsMB - idleSlps.vmRssBeforeMB;
    const floorText = idleFloor ? `, the floor server's ${f(idleFloor.addedMB, 1)} MB` : "";
    list.push({
      goal: idleGoal,
      measured: `${f(idleSlps.addedMB, 1)} MB (VmRSS ${f(vmRss, 1)} MB${floorText})`,
      verdict: verdict(idleSlps.addedMB < IDLE_ADDED_MB),
    });
  }

  const lossGoal = "zero uncounted loss at every rate and fan-out";
  const slpRows = [...sweep.filter((row) => row.relay === "slp"), ...fanOut.filter((row) => row.relay === "slps")];
  const lost = slpRows.reduce((sum, row) => sum + row.lostInside, 0);
  list.push({
    goal: lossGoal,
    measured: `${f(lost)} lost uncounted over ${slpRows.length} measurements`,
    verdict: verdict(lost === 0),
  });

  const rateGoal = `highest rate losing at most ${f(MAX_LOSS * 100, 1)}% at least rsyslog's`;
  const slpBest = highestCarried(sweep.filter((row) => row.relay === "slp"));
  const rsyslogBest = highestCarried(sweep.filter((row) => row.relay === "rsyslog"));
  if (!sweep.some((row) => row.relay === "rsyslog")) list.push(unmeasured(rateGoal, "needs --compare rsyslog"));
  else {
    const text = (best: typeof slpBest) =>
      best ? `${f(best.rate)}/s (private ${best.anonMB.map((mb) => f(mb, 1)).join(" / ")} MB)` : "none";
    const met = slpBest !== undefined && (rsyslogBest === undefined || slpBest.rate >= rsyslogBest.rate);
    list.push({
      goal: rateGoal,
      measured: `slp ${text(slpBest)}, rsyslog ${text(rsyslogBest)}`,
      verdict: verdict(met),
    });
  }
  return list;
}

/** The goals, against one run's results, as a table. */
export function goalsTable(results: GoalInput): string {
  return table(
    "Goals of issue 24, against this run",
    "A goal this run did not measure says what would measure it: the full run with --compare rsyslog measures all. " +
      "Private memory is RssAnon, at its peak; VmRSS beside it counts the executable's pages too.",
    [
      ["goal", (row) => row.goal],
      ["measured", (row) => row.measured],
      ["verdict", (row) => row.verdict],
    ],
    goals(results),
  );
}
