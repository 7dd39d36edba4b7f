// slpc --web's cost (issue 20): slps and slpc --forward into the sink at 10,000 messages a second,
// with the view on and no viewer, one, and ten (bench/web_viewers.ts: streams read as fast as a page
// reads them, without a browser's own cost). What the view adds is slpc's CPU per message; what it
// must not change is what the sink gets.

import { freePort, until } from "../test/kit.ts";
import { type Bench, type Row, type Setup, slpsSkipped } from "./harness.ts";
import { f, percent, table } from "./table.ts";

/** What each row's viewers got, by the row's name: messages, and messages slpc said they skipped. */
const viewersGot = new Map<string, { messages: number; skipped: number }[]>();

/** slps, and slpc with --web forwarding to the sink, followed by `viewers` streams of /events. */
export async function slpWithViewers(bench: Bench, viewers: number): Promise<Setup> {
  const { sink, port } = await bench.startSink();
  const { slps, udpPort, tlsPort } = await bench.startSlps();
  const webPort = await freePort();
  const web = ["--web", `127.0.0.1:${webPort}`, "--web-viewers", String(Math.max(8, viewers))];
  const slpc = await bench.startSlpc([{ slps, tlsPort }], `127.0.0.1:${port}`, web);

  await slpc.waitFor(/--web: the live view is at/);
  const token = /\?token=(\S+)/.exec(slpc.stderr)![1]!;
  const name = `slpc --web, ${viewers} viewer${viewers === 1 ? "" : "s"}`;
  if (viewers === 0) viewersGot.set(name, []);
  const readers =
    viewers > 0 ? bench.spawnScript("web_viewers.ts", [String(webPort), token, String(viewers)], "pipe") : undefined;
  if (readers)
    await until(`the viewers' streams: ${readers.stderr}`, () => readers.stdout.toString().includes("ready"));
  return {
    name,
    udpPort,
    processes: { slps, slpc },
    receiver: sink,
    streams: 1,
    dropPorts: [
      [udpPort, 1],
      [port, 1],
    ],
    skipped: async () => {
      // Asked once the sink's count stood still: what the viewers got by then.
      if (readers) {
        const from = readers.stdout.length;
        readers.proc.stdin!.write("count\n");
        await until("the viewers' count", () => readers.stdout.subarray(from).includes(0x0a));
        viewersGot.set(name, JSON.parse(readers.stdout.subarray(from).toString().split("\n")[0]!));
      }
      return slpsSkipped(slps)();
    },
    cleanup: async () => {
      if (readers) await bench.stopAll([readers]);
    },
  };
}

/** The section's table: slpc's CPU per message delivered, and what the viewers got. */
export function webViewTable(rows: Row[]): string {
  const slpc = (row: Row) => row.processes.slpc!;
  const got = (row: Row) => {
    const each = viewersGot.get(row.relay) ?? [];
    if (each.length === 0) return "-";
    const least = Math.min(...each.map((viewer) => viewer.messages));
    const skipped = each.reduce((sum, viewer) => sum + viewer.skipped, 0);
    return `${f(least)}${skipped > 0 ? ` (${f(skipped)} skipped in all)` : ""}`;
  };
  const note =
    `slps and slpc --forward to the sink with --web on, at ${f(rows[0]?.offered ?? 0)} messages/s; viewers are ` +
    "streams of /events (SSE) read as fast as they come, in one process of their own. The machine is shared: " +
    "a run that shares it with other work reads higher, and the other load column says how much there was.";
  return table(
    "The live view (slpc --web): slpc's CPU per message",
    note,
    [
      ["viewers", (row) => row.relay.replace(/^slpc --web, (\d+) .*$/, "$1")],
      ["delivered", (row) => percent(row.share)],
      ["slpc CPU µs/message", (row) => f(row.delivered ? (slpc(row).cpuSeconds / row.delivered) * 1e6 : 0, 1)],
      ["slpc peak RSS MB", (row) => f(slpc(row).rssMB, 1)],
      ["p99 ms", (row) => f(row.p99, 2)],
      ["the slowest viewer got", got],
      ["other load, cores", (row) => f(row.otherCores, 2)],
    ],
    rows,
  );
}
