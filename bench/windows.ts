// slps's --batch-window, both sides of its trade: at each offered rate and each window, the CPU
// both programs spend a message and how often each wakes, beside how long a message takes. While
// messages keep coming, slps writes to a client at most once a window, so each write and each
// wake-up of slpc carries more messages; the price is the wait, up to the window (or up to Bun's
// one-millisecond timer, for the last message of a burst).

import type { Bench, Row } from "./harness.ts";
import { slpRelay } from "./sweep.ts";
import { f, offeredText, percent, table } from "./table.ts";

export interface WindowRow extends Row {
  /** slps's --batch-window, milliseconds. */
  window: number;
}

/** slp with `--batch-window window`, at `offered` messages a second. */
export async function withWindow(bench: Bench, window: number, offered: number): Promise<WindowRow> {
  const row = await bench.measure(() => slpRelay(bench, ["--batch-window", String(window)]), offered);
  return { ...row, relay: `slp, window ${window} ms`, window };
}

const cpuOf = (row: Row, role: string) => ((row.processes[role]?.cpuSeconds ?? 0) / row.delivered) * 1e6;
const wakeupsOf = (row: Row, role: string) => (row.processes[role]?.wakeups ?? 0) / row.delivered;

export function windowsTable(rows: WindowRow[]): string {
  const note =
    "CPU is each program's CPU seconds over the messages delivered; wake-ups are the times its main thread slept " +
    "and was woken, a message. The change is against window 0 at the same rate (a write each event-loop turn).";
  const atZero = (row: WindowRow) => rows.find((other) => other.offered === row.offered && other.window === 0);
  const change = (row: WindowRow, value: (row: Row) => number, digits: number, unit: string) => {
    const zero = atZero(row);
    if (!zero || zero === row) return "";
    const delta = value(row) - value(zero);
    return `${delta >= 0 ? "+" : ""}${f(delta, digits)}${unit}`;
  };
  return table(
    "The batch window: what a message waits, against what it costs",
    note,
    [
      ["offered/s", (row) => offeredText(row.offered)],
      ["window ms", (row) => f(row.window, 2)],
      ["delivered", (row) => percent(row.share)],
      ["p50 ms", (row) => f(row.p50, 2)],
      ["p99 ms", (row) => f(row.p99, 2)],
      ["p50 change", (row) => change(row, (r) => r.p50, 2, " ms")],
      ["CPU µs/msg slps + slpc", (row) => `${f(cpuOf(row, "slps"), 1)} + ${f(cpuOf(row, "slpc"), 1)}`],
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["CPU change", (row) => change(row, (r) => r.cpuUsPerMessage, 1, " µs")],
      ["wake-ups/msg slps / slpc", (row) => `${f(wakeupsOf(row, "slps"), 2)} / ${f(wakeupsOf(row, "slpc"), 2)}`],
      ["lost uncounted", (row) => f(row.lostInside)],
      ["other load (cores)", (row) => f(row.otherCores, 2)],
    ],
    rows,
  );
}
