// Load generator: numbered, timestamped syslog messages of a fixed size over UDP, at a steady
// rate or flat out. Usage: bun bench/load.ts PORT RATE SECONDS [SIZE [TAG]]   (RATE 0: flat out)
// Each message: "<13>bench SEQ SENT_NS padding", SENT_NS read from bench/clock.ts just before
// the message goes to the kernel, so how late the pacing is never counts as the relay's latency.
// With a TAG, "<13>TAG bench SEQ ...": several generators into one sink (bench/sink.ts --tags).
// Prints {"sent": N, "seconds": S, "lateP99Us": L, "cpuSeconds": C} when done: L is how late the
// 99th percentile message left against its due time, which says whether the pacing held.
//
// Message N is due (N - 1)/RATE seconds after the start. The generator sleeps until then on the
// kernel's clock (clock_nanosleep, not a JavaScript timer, which has a granularity of a
// millisecond) and polls the clock for the last few microseconds; messages that fell due while
// it was not running go out together, as one sendmmsg.

import { fineTimers, nowNs, sleepUntilNs } from "./clock.ts";

const [port, rate, seconds, size = 200] = process.argv.slice(2, 6).map(Number) as [number, number, number, number?];
const tag = process.argv[6] ? `${process.argv[6]} ` : "";
const socket = await Bun.udpSocket({ connect: { hostname: "127.0.0.1", port } });
fineTimers();

const BATCH = 64;
const PADDING = 0x78; // "x"
// The kernel copies each datagram when it is sent, so one set of buffers serves every batch.
const buffers = Array.from({ length: BATCH }, () => Buffer.alloc(size, PADDING));

/** Writes message `seq`, stamped now, into buffers[slot]; returns the view to send. */
function stamp(slot: number, seq: number): Buffer {
  const buffer = buffers[slot]!;
  const head = `<13>${tag}bench ${seq} ${nowNs()} `;
  const written = buffer.write(head, 0, "latin1");
  if (written < head.length) return Buffer.from(head);
  buffer.fill(PADDING, written);
  return buffer;
}

/** Sends what the socket takes; a port where nothing listens ends the run with one line. */
function send(datagrams: Buffer[]): number {
  try {
    return socket.sendMany(datagrams);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ECONNREFUSED") throw error;
    process.stderr.write(`load: nothing listens on udp 127.0.0.1:${port} any more (after ${sent} messages)\n`);
    process.exit(1);
  }
}

const total = rate > 0 ? Math.round(rate * seconds) : Number.POSITIVE_INFINITY;
const late = new Float64Array(rate > 0 ? total : 0);
const batch: Buffer[] = [];
let sent = 0;
const started = nowNs();
const deadline = started + seconds * 1e9;
const dueNs = (seq: number) => started + ((seq - 1) / rate) * 1e9;
while (sent < total) {
  const now = nowNs();
  if (rate === 0 && now >= deadline) break;
  // Every message due by now, in batches; flat out, one batch a turn.
  const due = rate > 0 ? Math.min(total, Math.floor(((now - started) / 1e9) * rate) + 1) : sent + BATCH;
  let full = false;
  while (sent < due && !full) {
    batch.length = 0;
    for (let seq = sent + 1; seq <= due && batch.length < BATCH; seq++) batch.push(stamp(batch.length, seq));
    const taken = send(batch);
    for (let seq = sent + 1; rate > 0 && seq <= sent + taken; seq++) late[seq - 1] = (nowNs() - dueNs(seq)) / 1000;
    sent += taken;
    full = taken < batch.length;
  }
  // A full send buffer: give the receiver 50 µs. Otherwise sleep until the next message is due.
  if (full) sleepUntilNs(nowNs() + 50_000, 0);
  else if (rate > 0 && sent < total) sleepUntilNs(dueNs(sent + 1));
}
const elapsed = (nowNs() - started) / 1e9;
socket.close();
const lateSorted = late.sort();
const lateP99Us = lateSorted.length ? lateSorted[Math.floor(lateSorted.length * 0.99)]! : 0;
const { user, system } = process.cpuUsage();
process.stdout.write(`${JSON.stringify({ sent, seconds: elapsed, lateP99Us, cpuSeconds: (user + system) / 1e6 })}\n`);
