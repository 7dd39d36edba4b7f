// The last hop: slpc --forward tcp:// and relp:// into a real rsyslog, which sends each message on
// to the sink over UDP, and --forward journal into a real journald, whose journal
// bench/journal_relay.ts follows and sends on to the sink (in the full run, or with --smoke --last-hop).

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UnixDatagramConnection } from "../lib.ts";
import { type Child, freePort, tcpListening, until } from "../test/kit.ts";
import { type Bench, type Row, type Setup, slpsSkipped } from "./harness.ts";
import { relayColumns } from "./sweep.ts";
import { each, f, table } from "./table.ts";

/** The transports of the last hop. */
export type LastHop = "tcp" | "relp" | "journal";

const JOURNALD = "/lib/systemd/systemd-journald";

/**
 * slps and slpc, with slpc handing on over `transport` to a real rsyslog (imtcp or imrelp, the
 * ruleset without a queue, as deploy/rsyslog-home-relp.conf has it), which sends each message as
 * it came to the sink over UDP: the last hop's cost, and for RELP the daemon's acknowledgements.
 */
export async function slpInto(bench: Bench, transport: LastHop): Promise<Setup> {
  if (transport === "journal") return slpIntoJournal(bench);
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

/** Why the journal row cannot be measured here, or undefined when it can. */
export function journalUnavailable(): string | undefined {
  if (!existsSync(JOURNALD)) return `${JOURNALD} is missing (bash .ci/install-daemons installs systemd)`;
  if (process.getuid?.() !== 0) return "systemd-journald runs as root only";
  if (!existsSync("/etc/machine-id")) return "/etc/machine-id is missing: journald names its journal after it";
  return undefined;
}

/** Whether a datagram socket at `path` takes a connection. */
function takesDatagrams(path: string): boolean {
  const probe = new UnixDatagramConnection(path);
  try {
    probe.connect();
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

/**
 * slps and slpc, with slpc writing into a journald of the bench's own, in a namespace as the journal
 * tests run it (its journal volatile, its rate limit off), and bench/journal_relay.ts following that
 * journal and sending each MESSAGE on to the sink. The namespace's files go after the row.
 */
async function slpIntoJournal(bench: Bench): Promise<Setup> {
  const namespace = `slpbench${process.pid}`;
  const socket = `/run/systemd/journal.${namespace}/socket`;
  const machineId = readFileSync("/etc/machine-id", "utf8").trim();
  const dropIns = `/run/systemd/journald@${namespace}.conf.d`;
  const journals = ["/run/log/journal", "/var/log/journal"].map((dir) => `${dir}/${machineId}.${namespace}`);
  const started: Child[] = [];
  let follower: number | undefined;
  const cleanup = async () => {
    try {
      if (follower) process.kill(follower, "SIGKILL");
    } catch {} // ended already
    await bench.stopAll(started);
    for (const path of [dropIns, `/run/systemd/journal.${namespace}`, ...journals])
      rmSync(path, { recursive: true, force: true });
  };
  try {
    mkdirSync(dropIns, { recursive: true });
    const conf = ["[Journal]", "Storage=volatile", "RuntimeMaxUse=256M", "RateLimitIntervalSec=0"];
    writeFileSync(join(dropIns, "slp-bench.conf"), `${conf.join("\n")}\n`);
    const { sink, port: sinkPort } = await bench.startSink();
    const journald = bench.spawn([JOURNALD, namespace], "ignore", { SYSTEMD_LOG_TARGET: "console" });
    started.push(journald);
    await until(
      () => `journald to take datagrams at ${socket}: ${journald.stderr}`,
      () => takesDatagrams(socket),
    );
    const relay = bench.spawnScript("journal_relay.ts", [namespace, String(sinkPort)]);
    started.push(relay);
    await until(
      () => `the relay to start journalctl: ${relay.stderr}`,
      () => relay.stdout.includes(0x0a),
    );
    follower = Number(relay.stdout.toString().split("\n")[0]);
    const { slps, udpPort, tlsPort } = await bench.startSlps();
    const slpc = await bench.startSlpc([{ slps, tlsPort }], `journal:${socket}`);
    return {
      name: "slp journal",
      udpPort,
      processes: { slps, slpc, journald },
      receiver: sink,
      streams: 1,
      dropPorts: [
        [udpPort, 1],
        [sinkPort, 1],
      ],
      skipped: slpsSkipped(slps),
      cleanup,
      // journald tells journalctl of new entries in batches, one every 250 ms at most.
      settleMs: 1000,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

export function lastHopTable(rows: Row[]): string {
  return table(
    "Last hop: UDP in -> slps -> mutual TLS -> slpc -> tcp://, relp:// or journal -> rsyslog or journald -> UDP out",
    "rsyslog (imtcp or imrelp, its ruleset without a queue) sends each message on to the sink; RSS and CPU " +
      "are of slps / slpc / rsyslogd. The journal row's latency includes journald storing the entry and " +
      "`journalctl -f -o cat` following the file (journald tells followers of a change at most every 250 ms), " +
      "and a relay sending each line on; RSS and CPU are of slps / slpc / journald, not journalctl or the relay.",
    [
      ...relayColumns,
      ["CPU µs/msg", (row) => f(row.cpuUsPerMessage, 1)],
      ["private MB (RssAnon)", (row) => each(row, (p) => f(p.anonMB, 1))],
      ["VmRSS MB", (row) => each(row, (p) => f(p.rssMB, 1))],
    ],
    rows,
  );
}
