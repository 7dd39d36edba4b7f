// Issue 13's goals, read off one run's results: each goal, what this run measured for it, and
// whether that meets it; and their table, the bench's last section. Pure: the bench passes its
// rows in, so it is tested on plain values. A goal the run did not measure (a rate left out of
// --rates, no --compare rsyslog) says which flag would measure it, rather than passing or failing.

import { f, table } from "./table.ts";

/** What the goals read of a row of the sweep or the fan-out (bench/harness.ts's Row has more). */
export interface GoalRow {
  relay: string;
  clients: number;
  /** Messages a second offered; 0 is flat out. */
  offered: number;
  share: number;
  rate: number;
  p99: number;
  lostInside: number;
  cpuUsPerMessage: number;
  processes: Record<string, { rssMB: number; cpuSeconds: number }>;
}

export interface GoalIdleRow {
  server: string;
  clients: number;
  addedMB: number;
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

const verdict = (met: boolean): Verdict => (met ? "met" : "not met");
const unmeasured = (goal: string, how: string): Goal => ({ goal, measured: how, verdict: "not measured" });

/** The highest delivered rate a relay carried losing at most MAX_LOSS, with its RSS; none if every rate lost more. */
function highestCarried(rows: GoalRow[]): { rate: number; rssMB: number[] } | undefined {
  const carried = rows.filter((row) => row.share >= 1 - MAX_LOSS).sort((a, b) => b.rate - a.rate);
  const best = carried[0];
  return best && { rate: best.rate, rssMB: Object.values(best.processes).map((p) => p.rssMB) };
}

export function goals({ floor, sweep, fanOut, idle }: GoalInput): Goal[] {
  const slpAt = (rate: number) => sweep.find((row) => row.relay === "slp" && row.offered === rate);
  const rsyslogAt = (rate: number) => sweep.find((row) => row.relay === "rsyslog" && row.offered === rate);
  const list: Goal[] = [];

  const at10k = slpAt(10_000);
  const floorAt10k = floor.find((row) => row.offered === 10_000);
  const p99Goal = "p99 at 10,000/s under 1 ms, and within 4x the harness floor";
  if (!at10k) list.push(unmeasured(p99Goal, "needs 10000 in --rates"));
  else {
    const ofFloor = floorAt10k ? `, ${f(at10k.p99 / floorAt10k.p99, 1)}x the floor's ${f(floorAt10k.p99, 2)} ms` : "";
    const withinFloor = !floorAt10k || at10k.p99 <= 4 * floorAt10k.p99;
    list.push({
      goal: p99Goal,
      measured: `${f(at10k.p99, 2)} ms${ofFloor}`,
      verdict: verdict(at10k.p99 < 1 && withinFloor),
    });
  }

  const at50k = slpAt(50_000);
  const p99At50kGoal = "p99 at 50,000/s under 5 ms";
  if (!at50k) list.push(unmeasured(p99At50kGoal, "needs 50000 in --rates"));
  else list.push({ goal: p99At50kGoal, measured: `${f(at50k.p99, 2)} ms`, verdict: verdict(at50k.p99 < 5) });

  const cpuGoal = "CPU per message flat out (both processes) at most 0.6x rsyslog's";
  const [slpFlat, rsyslogFlat] = [slpAt(0), rsyslogAt(0)];
  if (!slpFlat || !rsyslogFlat) list.push(unmeasured(cpuGoal, "needs 0 in --rates and --compare rsyslog"));
  else {
    const ratio = slpFlat.cpuUsPerMessage / rsyslogFlat.cpuUsPerMessage;
    const both = `${f(slpFlat.cpuUsPerMessage, 1)} / ${f(rsyslogFlat.cpuUsPerMessage, 1)} µs`;
    list.push({ goal: cpuGoal, measured: `${both}: ${f(ratio, 2)}x`, verdict: verdict(ratio <= 0.6) });
  }

  const rateGoal = `highest rate losing at most ${f(MAX_LOSS * 100, 1)}% at least rsyslog's`;
  const slpBest = highestCarried(sweep.filter((row) => row.relay === "slp"));
  const rsyslogBest = highestCarried(sweep.filter((row) => row.relay === "rsyslog"));
  if (!sweep.some((row) => row.relay === "rsyslog")) list.push(unmeasured(rateGoal, "needs --compare rsyslog"));
  else {
    const text = (best: typeof slpBest) =>
      best ? `${f(best.rate)}/s (RSS ${best.rssMB.map((mb) => f(mb, 1)).join(" / ")} MB)` : "none";
    const met = slpBest !== undefined && (rsyslogBest === undefined || slpBest.rate >= rsyslogBest.rate);
    list.push({
      goal: rateGoal,
      measured: `slp ${text(slpBest)}, rsyslog ${text(rsyslogBest)}`,
      verdict: verdict(met),
    });
  }

  const rssGoal = "peak RSS at 10,000/s at most 48 MB for slps and 40 MB for slpc";
  if (!at10k) list.push(unmeasured(rssGoal, "needs 10000 in --rates"));
  else {
    const [slps, slpc] = [at10k.processes.slps?.rssMB ?? 0, at10k.processes.slpc?.rssMB ?? 0];
    list.push({
      goal: rssGoal,
      measured: `${f(slps, 1)} / ${f(slpc, 1)} MB`,
      verdict: verdict(slps <= 48 && slpc <= 40),
    });
  }

  const clientCounts = [...new Set(fanOut.map((row) => row.clients))];
  for (const clients of clientCounts) {
    const slps = fanOut.find((row) => row.relay === "slps" && row.clients === clients);
    const floorServer = fanOut.find((row) => row.relay === "floor" && row.clients === clients);
    if (!slps || !floorServer) continue;
    const cpu = (row: GoalRow) => row.processes.server?.cpuSeconds ?? 0;
    const [p99Ratio, cpuRatio] = [slps.p99 / floorServer.p99, cpu(slps) / cpu(floorServer)];
    list.push({
      goal: `fan-out to ${f(clients)} client${clients === 1 ? "" : "s"}: p99 and CPU within 1.2x the floor server's`,
      measured:
        `p99 ${f(slps.p99, 2)} / ${f(floorServer.p99, 2)} ms (${f(p99Ratio, 2)}x), ` +
        `CPU ${f(cpu(slps), 2)} / ${f(cpu(floorServer), 2)} s (${f(cpuRatio, 2)}x)`,
      verdict: verdict(p99Ratio <= 1.2 && cpuRatio <= 1.2),
    });
  }

  const idleGoal = "1,000 idle clients add under 20 MB to slps";
  const idleSlps = idle.find((row) => row.server === "slps");
  if (idleSlps?.clients !== 1_000) list.push(unmeasured(idleGoal, "needs --idle 1000"));
  else list.push({ goal: idleGoal, measured: `${f(idleSlps.addedMB, 1)} MB`, verdict: verdict(idleSlps.addedMB < 20) });

  const lossGoal = "zero uncounted loss at every rate and fan-out";
  const slpRows = [...sweep.filter((row) => row.relay === "slp"), ...fanOut.filter((row) => row.relay === "slps")];
  const lost = slpRows.reduce((sum, row) => sum + row.lostInside, 0);
  list.push({
    goal: lossGoal,
    measured: `${f(lost)} lost uncounted over ${slpRows.length} measurements`,
    verdict: verdict(lost === 0),
  });
  return list;
}

/** The goals, against one run's results, as a table. */
export function goalsTable(results: GoalInput): string {
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
