// The sweep: UDP in -> slps -> TLS -> slpc -> UDP out over offered rates, below it the harness
// floor (the load generator straight into the sink), and with --compare rsyslog two rsyslogd
// relaying over mutual TLS beside it, and the ratios.

import { freePort, sleep, tcpListening, udpListening, until } from "../test/kit.ts";
import { CLOCK_NAME } from "./clock.ts";
import { type Bench, type Row, type Setup, slpsHeld, slpsSkipped } from "./harness.ts";
import { type Column, each, f, offeredText, type Pair, percent, table, versus } from "./table.ts";

/** The load straight into the sink: what the harness itself costs. */
export async function harnessFloor(bench: Bench): Promise<Setup> {
  const { sink, port } = await bench.startSink();
  return { name: "harness", udpPort: port, processes: {}, receiver: sink, streams: 1, dropPorts: [[port, 1]] };
}

/** slps and slpc between the load and the sink; `slpsFlags` are added to slps's (bench/windows.ts's window). */
export async function slpRelay(bench: Bench, slpsFlags: string[] = []): Promise<Setup> {
  const { sink, port } = await bench.startSink();
  const { slps, udpPort, tlsPort } = await bench.startSlps(slpsFlags);
  const slpc = await bench.startSlpc([{ slps, tlsPort }], `127.0.0.1:${port}`);
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
    held: slpsHeld(slps),
  };
}

/** Two rsyslogd relaying over mutual TLS: imudp -> omfwd (TLS) -> imtcp (TLS) -> omfwd UDP. */
export async function rsyslogRelay(bench: Bench): Promise<Setup> {
  const { sink, port: sinkPort } = await bench.startSink();
  const udpPort = await freePort("udp");
  const tlsPort = await freePort();
  const certs = bench.certs;
  const tls = (cert: string) =>
    `global(DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="${certs}/ca.pem" ` +
    `DefaultNetstreamDriverCertFile="${certs}/${cert}.pem" DefaultNetstreamDriverKeyFile="${certs}/${cert}.key")`;
  const queue = `queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="1024"`;
  const home = bench.startRsyslog(`home-${udpPort}`, [
    tls("server"),
    `main_queue(${queue})`,
    `module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")`,
    `input(type="imtcp" address="127.0.0.1" port="${tlsPort}")`,
    `template(name="raw" type="string" string="%rawmsg%")`,
    `action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
  ]);
  await until("rsyslog home to listen", () => tcpListening(tlsPort), 10_000);
  const server = bench.startRsyslog(`server-${udpPort}`, [
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

export function floorTable(rows: Row[]): string {
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

/** What a relay delivered and how fast: the sweep's first columns, and the last hop's. */
export const relayColumns: Column<Row>[] = [
  ["relay", (row) => row.relay],
  ["offered/s", (row) => offeredText(row.offered)],
  ["sent", (row) => f(row.sent)],
  ["delivered", (row) => percent(row.share)],
  ["delivered/s", (row) => f(row.rate)],
  ["p50 ms", (row) => f(row.p50, 2)],
  ["p99 ms", (row) => f(row.p99, 2)],
  ["max ms", (row) => f(row.max, 1)],
  ["kernel drops", (row) => f(row.kernelDrops)],
];

export function sweepTable(rows: Row[]): string {
  const note =
    "Memory and CPU are of slps / slpc or of rsyslogd server / home. Private memory is the peak of RssAnon " +
    "(sampled every 250 ms): what each process alone holds. VmRSS is the peak of every resident page, counting " +
    "the pages of the executable mapped from its file (most of a Bun process's), which are shared and which the " +
    "kernel can drop. Held is what slps's resume buffer holds at the end. CPU per message is both processes' CPU " +
    "over the messages delivered.";
  return table(
    "Sweep: UDP in -> relay -> mutual TLS -> relay -> UDP out",
    note,
    [
      ...relayColumns,
      ["skipped (counted)", (row) => f(row.skipped)],
      ["lost uncounted", (row) => f(row.lostInside)],
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["private MB (RssAnon)", (row) => each(row, (p) => f(p.anonMB, 1))],
      ["VmRSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
      ["held MB", (row) => (row.heldMB === undefined ? "" : f(row.heldMB, 1))],
      ["CPU s", (row) => each(row, (p) => f(p.cpuSeconds, 2))],
      ["other load (cores)", (row) => f(row.otherCores, 2)],
    ],
    rows,
  );
}

const totalPrivate = (row: Row) => Object.values(row.processes).reduce((sum, p) => sum + p.anonMB, 0);

/** slp beside rsyslog at each of `rates`, as ratios. */
export function compareTable(rows: Row[], rates: number[]): string {
  const at = (relay: string, rate: number) => rows.find((row) => row.relay === relay && row.offered === rate)!;
  return table(
    "slp / rsyslog",
    "Ratios are slp's over rsyslog's: below 1 is better for slp.",
    [
      ["offered/s", ([slp]) => offeredText(slp.offered)],
      ["delivered slp / rsyslog", ([slp, rsyslog]) => `${percent(slp.share)} / ${percent(rsyslog.share)}`],
      ...versus<Row>("p99 ms slp / rsyslog", "p99 ratio", (row) => row.p99, 2),
      ...versus<Row>("CPU µs/msg slp / rsyslog", "CPU ratio", (row) => row.cpuUsPerMessage, 1),
      ...versus("private MB slp / rsyslog (RssAnon, both processes)", "private ratio", totalPrivate, 1),
    ],
    rates.map((rate): Pair<Row> => [at("slp", rate), at("rsyslog", rate)]),
  );
}
