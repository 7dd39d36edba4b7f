// UDP sink: receives the load generator's messages on one or more ports, each with an 8 MiB
// receive buffer, and keeps a Tally (bench/tally.ts) per port. On the line "count" on stdin it
// prints how many messages all ports got; on "report SENT", what each port got since the last
// report: {"pooled": {p50, p99, max}, "streams": [TallyReport and port]}, as the fan-out client.
// Usage: bun bench/sink.ts PORT...
import { createSocket } from "node:dgram";
import { nowNs } from "./clock.ts";
import { percentiles, Tally } from "./tally.ts";

const ports = process.argv.slice(2).map((text) => {
  const port = Number(text);
  const tally = new Tally();
  const socket = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
  socket.on("message", (message: Buffer) => tally.record(message, nowNs()));
  socket.bind(port, "127.0.0.1");
  return { port, tally };
});

for await (const line of console) {
  const [command, sent] = line.split(" ");
  if (command === "count") {
    process.stdout.write(`${ports.reduce((sum, { tally }) => sum + tally.received, 0)}\n`);
  } else {
    const pooled = percentiles(ports.map(({ tally }) => tally.latencies()));
    const streams = ports.map(({ port, tally }) => ({ port, ...tally.report(Number(sent ?? 0)) }));
    process.stdout.write(`${JSON.stringify({ pooled, streams })}\n`);
  }
}
