// Fan-out: one client process (bench/fanout_client.ts) holding N connections to slps, and the
// same against the floor server (bench/fanout_floor.ts), which does nothing but fan out; then
// each server's memory with many authenticated clients sitting idle.

import { type Child, freePort, sleep, until } from "../test/kit.ts";
import type { Bench, Row, Setup } from "./harness.ts";
import { type Memory, memoryOf } from "./memory.ts";
import { f, type Pair, percent, table, versus } from "./table.ts";

/** The two servers fanned out from: slps, and the floor server. */
export type FanOutServer = "slps" | "floor";

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

export async function fanOut(bench: Bench, server: FanOutServer, clients: number): Promise<Setup> {
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

export interface IdleRow {
  server: string;
  clients: number;
  /** Private memory (RssAnon), MB: before the clients came, with them, and the difference. */
  beforeMB: number;
  withClientsMB: number;
  addedMB: number;
  /** VmRSS, MB, file-backed pages included: before and with the clients. */
  vmRssBeforeMB: number;
  vmRssWithClientsMB: number;
}

/**
 * The server's memory once it stands still: its private memory has moved less than 0.25 MB in the
 * last second (the handshakes' garbage collected), or 15 s have passed. A smoke run takes it at once.
 */
async function settledMemory(pid: number, smoke: boolean): Promise<Memory> {
  let last = memoryOf(pid);
  for (let waited = 0; !smoke && waited < 15_000; waited += 1000) {
    await sleep(1000);
    const now = memoryOf(pid);
    if (Math.abs(now.anonMB - last.anonMB) < 0.25) return now;
    last = now;
  }
  return last;
}

/** A server's memory with `count` authenticated clients that have resumed and then sit idle. */
export async function idleClients(bench: Bench, server: FanOutServer, count: number): Promise<IdleRow> {
  const { smoke } = bench.options;
  const { child, tlsPort } = await startServer(bench, server);
  try {
    await sleep(smoke ? 200 : 500);
    const before = await settledMemory(child.pid, smoke);
    const client = await startFanOutClient(bench, tlsPort, count, child);
    await sleep(smoke ? 200 : 1000);
    const withClients = await settledMemory(child.pid, smoke);
    await bench.stopAll([client]);
    return {
      server,
      clients: count,
      beforeMB: before.anonMB,
      withClientsMB: withClients.anonMB,
      addedMB: withClients.anonMB - before.anonMB,
      vmRssBeforeMB: before.vmRssMB,
      vmRssWithClientsMB: withClients.vmRssMB,
    };
  } finally {
    await bench.stopAll([child]);
  }
}

const serverOf = (row: Row) => row.processes.server!;

/** Each measurement at `rate`, then slps beside the floor server at each of `fanOut` clients, as ratios. */
export function fanOutTables(rows: Row[], rate: number, fanOut: number[]): string {
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
      ["server private MB (RssAnon)", (row) => f(serverOf(row).anonMB, 1)],
      ["server VmRSS MB", (row) => f(serverOf(row).rssMB, 1)],
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
      ...versus<Row>("server private MB slps / floor", "private ratio", (row) => serverOf(row).anonMB, 1),
    ],
    fanOut.map((clients): Pair<Row> => [at("slps", clients), at("floor", clients)]),
  );
  return `${detail}\n${ratios}`;
}

export function idleTable(rows: IdleRow[]): string {
  return table(
    "Idle clients: the server's memory with authenticated clients that resumed and sit idle",
    "Private memory is RssAnon, what the server alone holds, read once it stands still; VmRSS counts the pages " +
      "of the executable mapped from its file too. Bun's own mutual-TLS connection, before any code of ours, holds " +
      "about 15 KB of it (docs/performance.md).",
    [
      ["server", (row) => row.server],
      ["clients", (row) => f(row.clients)],
      ["private MB before", (row) => f(row.beforeMB, 1)],
      ["private MB with them", (row) => f(row.withClientsMB, 1)],
      ["private MB added", (row) => f(row.addedMB, 1)],
      ["private KB a client", (row) => f((row.addedMB * 1024) / row.clients, 1)],
      ["VmRSS MB before / with them", (row) => `${f(row.vmRssBeforeMB, 1)} / ${f(row.vmRssWithClientsMB, 1)}`],
    ],
    rows,
  );
}
