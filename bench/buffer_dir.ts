// The resume buffer on disk (issue 19): the sweep's relay, UDP in -> slps -> TLS -> slpc -> UDP
// out, with slps keeping its buffer in a folder of the bench's own (--buffer-dir, on the disk that
// holds the system's temporary folder) under each --fsync policy, beside the buffer in memory.
// What a policy costs shows as slps's CPU per message, the latency (with `always` a message is
// sent once synced), and the syncs a second, which SIGUSR1 counts.

import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { snapshotOf } from "../test/kit.ts";
import type { Bench, Row, Setup } from "./harness.ts";
import { relayColumns } from "./sweep.ts";
import { each, f, table } from "./table.ts";

/** The buffer in memory, then on disk under each --fsync policy. */
export const BUFFER_KINDS = ["memory", "never", "1", "always"] as const;
export type BufferKind = (typeof BUFFER_KINDS)[number];

/** A row of the sweep, with slps's own numbers of its disk at the end of it. */
export type DiskRow = Row & { kind: BufferKind; fsyncs: number; diskBytes: number; diskErrors: number };

/** What slps said of its disk when a row was measured: the bench reads it once the row is done. */
export interface DiskReading {
  fsyncs: number;
  bytes: number;
  errors: number;
}

/** slp relaying with its buffer of `kind`; `reading` gets slps's disk numbers when the row ends. */
export async function slpOnDisk(bench: Bench, kind: BufferKind, reading: DiskReading): Promise<Setup> {
  const onDisk = kind === "memory" ? [] : ["--buffer-dir", mkdtempSync(join(bench.dir, "buffer-")), "--fsync", kind];
  const { sink, port } = await bench.startSink();
  const { slps, udpPort, tlsPort } = await bench.startSlps([...onDisk, "--buffer", "1GiB"]);
  const slpc = await bench.startSlpc([{ slps, tlsPort }], `127.0.0.1:${port}`);
  return {
    name: kind === "memory" ? "slp, buffer in memory" : `slp, --fsync ${kind}`,
    udpPort,
    processes: { slps, slpc },
    receiver: sink,
    streams: 1,
    dropPorts: [
      [udpPort, 1],
      [port, 1],
    ],
    async skipped() {
      const numbers = await snapshotOf(slps);
      const disk = numbers.buffer.disk ?? { fsyncs: 0, bytes: 0, errors: 0 };
      Object.assign(reading, { fsyncs: disk.fsyncs, bytes: disk.bytes, errors: disk.errors });
      return (numbers.clients as { dropped: number }[]).reduce((sum, client) => sum + client.dropped, 0);
    },
  };
}

export function diskTable(rows: DiskRow[], seconds: number): string {
  const note =
    "slps keeps its buffer in memory (as without --buffer-dir), or in a folder on this machine's disk under " +
    "each --fsync policy; `always` sends a message once its write is synced, so its latency holds the sync. " +
    "CPU per message is slps's and slpc's over the messages delivered; syncs/s are slps's fdatasync calls " +
    `over the ${seconds} s of load (and the wait for the count to settle); RSS is the peak, slps / slpc.`;
  return table(
    "The resume buffer on disk: UDP in -> slps (--buffer-dir) -> mutual TLS -> slpc -> UDP out",
    note,
    [
      ...relayColumns,
      ["lost uncounted", (row) => f(row.lostInside)],
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["slps CPU µs/msg", (row) => f(((row.processes.slps?.cpuSeconds ?? 0) / (row.delivered || 1)) * 1e6, 1)],
      ["syncs/s", (row) => f(row.fsyncs / seconds, 0)],
      ["MB on disk", (row) => f(row.diskBytes / 1e6, 1)],
      ["disk errors", (row) => f(row.diskErrors)],
      ["RSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
    ],
    rows,
  );
}
