// The last hop: slpc --forward tcp:// and relp:// into a real rsyslog, which sends each message on
// to the sink over UDP (in the full run, or with --smoke --last-hop).

import { freePort, tcpListening, until } from "../test/kit.ts";
import { type Bench, type Row, type Setup, slpsSkipped } from "./harness.ts";
import { relayColumns } from "./sweep.ts";
import { each, f, table } from "./table.ts";

/** The transports of the last hop. */
export type LastHop = "tcp" | "relp";

/**
 * slps and slpc, with slpc handing on over `transport` to a real rsyslog (imtcp or imrelp, the
 * ruleset without a queue, as deploy/rsyslog-home-relp.conf has it), which sends each message as
 * it came to the sink over UDP: the last hop's cost, and for RELP the daemon's acknowledgements.
 */
export async function slpInto(bench: Bench, transport: LastHop): Promise<Setup> {
  const { sink, port: sinkPort } = await bench.startSink();
  const homePort = await freePort();
  const input = transport === "tcp" ? "imtcp" : "imrelp";
  const home = bench.startRsyslog(`${transport}-${homePort}`, [
    `module(load="${input}")`,
    `template(name="raw" type="string" string="%rawmsg%")`,
    `ruleset(name="slp" queue.type="Direct") {`,
    `  action(type="omfwd" target="127.0.0.1" port="${sinkPort}" protocol="udp" template="raw")`,
    `}`,
    `input(type="${input}" address="127.0.0.1" port="${homePort}" ruleset="slp")`,
  ]);
  await until(`rsyslog's ${input} to listen`, () => tcpListening(homePort), 10_000);
  const { slps, udpPort, tlsPort } = await bench.startSlps();
  const slpc = await bench.startSlpc([{ slps, tlsPort }], `${transport}://127.0.0.1:${homePort}`);
  return {
    name: `slp ${transport}://`,
    udpPort,
    processes: { slps, slpc, rsyslog: home },
    receiver: sink,
    streams: 1,
    dropPorts: [
      [udpPort, 1],
      [sinkPort, 1],
    ],
    skipped: slpsSkipped(slps),
  };
}

export function lastHopTable(rows: Row[]): string {
  return table(
    "Last hop: UDP in -> slps -> mutual TLS -> slpc -> tcp:// or relp:// -> rsyslog -> UDP out",
    "rsyslog (imtcp or imrelp, its ruleset without a queue) sends each message on to the sink; RSS and CPU " +
      "are of slps / slpc / rsyslogd.",
    [
      ...relayColumns,
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["RSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
    ],
    rows,
  );
}
