// One slpc following several slps (issue 11's row), each slps with a load generator of its own:
// the share delivered and the latency of each server's stream, told apart by the sink's tags.

import { type Bench, type Row, type Setup, slpsSkipped } from "./harness.ts";
import { f, percent, table } from "./table.ts";

/** One slpc following `count` slps, each with a load generator of its own. */
export async function slpFollowing(bench: Bench, count: number): Promise<Setup> {
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
export function manyServersTable(row: Row, servers: number): string {
  const slpc = row.processes.slpc!;
  const note =
    `Each server gets ${f(row.offered)} messages/s from a load generator of its own; slpc forwards all to one ` +
    `sink, with --forward-rate 0. slpc: ${f(slpc.cpuSeconds, 2)} CPU s, ${f(slpc.anonMB, 1)} MB private ` +
    `(RssAnon), ${f(slpc.rssMB, 1)} MB VmRSS; ` +
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
