// Load generator: numbered, timestamped syslog messages of a fixed size over UDP, at a steady
// rate or flat out. Usage: bun bench/load.ts PORT RATE SECONDS [SIZE]   (RATE 0: flat out)
// Prints {"sent": N, "seconds": S} when done. Each message: "<13>bench SEQ SENT_AT_MS padding".

export {};

const [port, rate, seconds, size = 200] = process.argv.slice(2).map(Number) as [number, number, number, number?];
const socket = await Bun.udpSocket({ connect: { hostname: "127.0.0.1", port } });
const now = () => performance.timeOrigin + performance.now();

function message(seq: number): Buffer {
  const head = `<13>bench ${seq} ${now().toFixed(3)} `;
  return Buffer.from(head.padEnd(size, "x"));
}

let sent = 0;
const started = performance.now();
const deadline = started + seconds * 1000;
const BATCH = 64;
while (performance.now() < deadline) {
  const due = rate > 0 ? Math.min(Math.floor(((performance.now() - started) / 1000) * rate), rate * seconds) : sent + BATCH;
  while (sent < due) {
    const count = Math.min(BATCH, due - sent);
    const batch = Array.from({ length: count }, (_, i) => message(sent + i + 1));
    const taken = socket.sendMany(batch);
    sent += taken;
    if (taken < count) break; // the socket's send buffer is full: try again next turn
  }
  // Yield: a steady rate sleeps until the next message is due; flat out only lets the loop breathe.
  await (rate > 0 ? Bun.sleep(Math.max(0, Math.min(1, ((sent + 1) / rate) * 1000 - (performance.now() - started)))) : Promise.resolve());
}
socket.close();
process.stdout.write(JSON.stringify({ sent, seconds: (performance.now() - started) / 1000 }) + "\n");
