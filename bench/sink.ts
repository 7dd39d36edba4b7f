// UDP sink: receives the load generator's messages on one or more ports, each with an 8 MiB
// receive buffer. On the line "count" on stdin it prints how many messages all ports got; on any
// other line, what each port got since the last report: messages, distinct sequence numbers,
// and the latency from send to receipt (p50, p99, max, in ms).
// Usage: bun bench/sink.ts PORT...
import { createSocket } from "node:dgram";

const now = () => performance.timeOrigin + performance.now();

interface PortStats {
  port: number;
  received: number;
  distinct: number;
  /** One byte per sequence number: seen or not. */
  seen: Uint8Array;
  latencies: number[];
}

const ports: PortStats[] = process.argv.slice(2).map((text) => {
  const stats: PortStats = { port: Number(text), received: 0, distinct: 0, seen: new Uint8Array(1 << 20), latencies: [] };
  const socket = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
  socket.on("message", (message: Buffer) => {
    const arrived = now();
    stats.received++;
    // "<13>bench SEQ SENT_AT ...", possibly behind a header a relaying daemon added.
    const text = message.toString("latin1", 0, 160);
    const fields = text.slice(text.indexOf("bench ")).split(" ");
    const seq = Number(fields[1]);
    if (seq >= stats.seen.length) {
      const larger = new Uint8Array(Math.max(seq + 1, stats.seen.length * 2));
      larger.set(stats.seen);
      stats.seen = larger;
    }
    if (!stats.seen[seq]) {
      stats.seen[seq] = 1;
      stats.distinct++;
    }
    stats.latencies.push(arrived - Number(fields[2]));
  });
  socket.bind(stats.port, "127.0.0.1");
  return stats;
});

const percentile = (sorted: Float64Array, p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : 0);

for await (const line of console) {
  if (line === "count") {
    process.stdout.write(`${ports.reduce((sum, stats) => sum + stats.received, 0)}\n`);
    continue;
  }
  const report = ports.map((stats) => {
    const sorted = Float64Array.from(stats.latencies).sort();
    const result = { port: stats.port, received: stats.received, distinct: stats.distinct, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? 0 };
    Object.assign(stats, { received: 0, distinct: 0, latencies: [] });
    stats.seen.fill(0);
    return result;
  });
  process.stdout.write(JSON.stringify(report) + "\n");
}
