// UDP sink: receives the load generator's messages on one or more ports, each with an 8 MiB
// receive buffer, and keeps a Tally (bench/tally.ts) per port, or with --tags A,B per tag on each
// port (messages of `bun bench/load.ts ... TAG`, which start "<13>TAG "). On the line "count" on
// stdin it prints how many messages all ports got; on "report SENT[,SENT...]", what each stream
// got since the last report, given how many were sent to each (one number for all, or one per
// tag): {"pooled": {p50, p99, max}, "streams": [TallyReport, port and tag]}, as the fan-out client.
// Usage: bun bench/sink.ts [--tags A,B,...] PORT...
import { createSocket } from "node:dgram";
import { nowNs } from "./clock.ts";
import { percentiles, Tally } from "./tally.ts";

const argv = process.argv.slice(2);
const tags = argv[0] === "--tags" ? argv[1]!.split(",") : [undefined];
const streams = (argv[0] === "--tags" ? argv.slice(2) : argv).flatMap((text) => {
  const port = Number(text);
  const mine = tags.map((tag) => ({ port, tag, head: Buffer.from(`<13>${tag} `), tally: new Tally() }));
  const socket = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
  socket.on("message", (message: Buffer) => {
    // Untagged, or a message no tag starts: the first stream has it (as foreign, when it is none of the load's).
    const stream = mine.find(({ tag, head }) => tag !== undefined && message.subarray(0, head.length).equals(head));
    (stream ?? mine[0]!).tally.record(message, nowNs());
  });
  socket.bind(port, "127.0.0.1");
  return mine;
});

for await (const line of console) {
  const [command, sent = "0"] = line.split(" ");
  if (command === "count") {
    process.stdout.write(`${streams.reduce((sum, { tally }) => sum + tally.received, 0)}\n`);
  } else {
    const sents = sent.split(",").map(Number);
    const pooled = percentiles(streams.map(({ tally }) => tally.latencies()));
    const reports = streams.map(({ port, tag, tally }, i) => ({ port, tag, ...tally.report(sents[i] ?? sents[0]!) }));
    process.stdout.write(`${JSON.stringify({ pooled, streams: reports })}\n`);
  }
}
