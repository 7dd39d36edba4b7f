// Fault injection for slpc: a scripted server of the test's own, with the real server certificate,
// that picks a behaviour per connection (silence, resets before and after the TLS handshake,
// protocol violations, floods, a good stream) in sequences that fast-check draws from a fixed
// seed. After each sequence: slpc never exited, each bad connection ended within its deadline
// and slpc dialled again, no log line was a stack trace, its memory stayed bounded, and a good
// server's messages all arrived exactly once.
//
// The seed is printed; FAULT_SEED=N replays a failure, FAULT_RUNS=N runs more sequences.

import { describe, expect, test } from "bun:test";
import { connect, createServer, type Socket as NetSocket } from "node:net";
import type { Socket } from "bun";
import fc from "fast-check";
import { type ControlMessage, Deframer, encodeControl, encodeFrame, resumeStart, TLS13_ONLY } from "../lib.ts";
import { BUN, Child, rss, sleep, testBed, until } from "./kit.ts";

const SEED = Number(process.env.FAULT_SEED ?? 20261126);
const RUNS = Number(process.env.FAULT_RUNS ?? 15);

const bed = testBed();

const BEHAVIOURS = [
  "accept then silence",
  "reset before the TLS handshake",
  "reset after the TLS handshake",
  "hello then silence",
  "hello with a bad version",
  "start without hello",
  "garbage",
  "an endless length",
  "half a frame then silence",
  "a heartbeat flood",
  "a start far in the future",
  "a good stream",
] as const;
type Behaviour = (typeof BEHAVIOURS)[number];

/** slpc's deadlines in this test, short so that many connections fit in a run. */
const HANDSHAKE_TIMEOUT = 0.5;
const DEAD_AFTER = 0.5;
/** How long past its deadline a connection may take to end, on a busy shared machine. */
const SLACK_MS = 2000;
/** Connections the scripted server ends itself after this long: the good ones. */
const SERVED_MS = 300;

interface Record {
  behaviour: Behaviour | "final";
  acceptedAt: number;
  closedAt?: number;
}

interface Peer {
  behaviour: Behaviour | "final";
  front: NetSocket;
  deframer: Deframer;
  unsent?: Buffer;
  timers: Timer[];
}

/**
 * One run's server: a TCP front that plays the behaviours below TLS itself and hands the rest
 * to a TLS server behind it. `script` is consumed one behaviour per connection; after it, every
 * connection is the final good server, whose messages the run checks.
 */
function scriptedServer(run: number, script: Behaviour[]) {
  const records: Record[] = [];
  const tlsQueue: { behaviour: Behaviour | "final"; front: NetSocket }[] = [];
  const good: Buffer[] = [];
  const final: Buffer[] = [];
  const finalId = `final${run}`;

  const write = (socket: Socket<Peer>, data: Uint8Array) => {
    socket.data.unsent = socket.data.unsent ? Buffer.concat([socket.data.unsent, data]) : Buffer.from(data);
    pump(socket);
  };
  const pump = (socket: Socket<Peer>) => {
    const rest = socket.data.unsent;
    if (!rest) return;
    const taken = socket.write(rest);
    socket.data.unsent = taken >= rest.length ? undefined : rest.subarray(Math.max(taken, 0));
  };
  const hello = (server: string, next = 1) =>
    encodeControl({ type: "hello", version: 1, server, heartbeat: 0.1, first: 1, next });
  const heartbeat = encodeControl({ type: "heartbeat" });
  const heartbeats = (socket: Socket<Peer>) =>
    socket.data.timers.push(setInterval(() => write(socket, heartbeat), 100));

  /** Serves `held` as a server run `id` would: the start its resume asks for, the messages after it. */
  const serve = (
    socket: Socket<Peer>,
    id: string,
    held: Buffer[],
    resume: Extract<ControlMessage, { type: "resume" }>,
  ) => {
    const start = resumeStart(resume, { id, first: 1, next: held.length + 1 });
    const frames = held.slice(start.seq - 1).map((message) => encodeFrame(message));
    write(socket, Buffer.concat([encodeControl(start), ...frames]));
    heartbeats(socket);
  };

  const tls = Bun.listen<Peer>({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: Bun.file(bed.pki.server.cert), key: Bun.file(bed.pki.server.key), secureOptions: TLS13_ONLY },
    socket: {
      open(socket) {
        const { behaviour, front } = tlsQueue.shift()!;
        socket.data = { behaviour, front, deframer: new Deframer(1), timers: [] };
      },
      handshake(socket) {
        const { behaviour } = socket.data;
        if (behaviour === "reset after the TLS handshake") socket.data.front.resetAndDestroy();
        else if (behaviour === "hello with a bad version")
          write(socket, encodeControl({ type: "hello", version: 2 } as never));
        else if (behaviour === "start without hello") write(socket, encodeControl({ type: "start", seq: 1 }));
        else if (behaviour === "garbage") write(socket, Buffer.from("\x00\xffHELLO garbage\r\n"));
        else if (behaviour === "an endless length") write(socket, Buffer.from("9".repeat(100_000)));
        else if (behaviour === "a good stream") write(socket, hello(`good${run}`, good.length + 1));
        else if (behaviour === "final") write(socket, hello(finalId, final.length + 1));
        else if (behaviour !== "accept then silence" && behaviour !== "reset before the TLS handshake")
          write(socket, hello("hostile"));
      },
      data(socket, chunk) {
        for (const frame of socket.data.deframer.push(chunk)) {
          const message = JSON.parse(Buffer.from(frame.body).toString());
          if (message.type !== "resume") continue;
          const { behaviour } = socket.data;
          if (behaviour === "half a frame then silence") {
            write(
              socket,
              Buffer.concat([encodeControl({ type: "start", seq: 1 }), Buffer.from("100 only half of it")]),
            );
          } else if (behaviour === "a heartbeat flood") {
            write(socket, Buffer.concat([encodeControl({ type: "start", seq: 1 }), ...Array(20_000).fill(heartbeat)]));
          } else if (behaviour === "a start far in the future") {
            const frames = ["far 1", "far 2", "far 3"].map((text) => encodeFrame(Buffer.from(text)));
            write(
              socket,
              Buffer.concat([encodeControl({ type: "start", seq: Number.MAX_SAFE_INTEGER - 1 }), ...frames]),
            );
          } else if (behaviour === "a good stream") {
            good.push(...[1, 2, 3].map((k) => Buffer.from(`<13>good ${run}.${good.length + k}`)));
            serve(socket, `good${run}`, good, message);
            socket.data.timers.push(setTimeout(() => socket.end(), SERVED_MS));
          } else if (behaviour === "final") {
            serve(socket, finalId, final, message);
            // New messages while slpc streams: these must arrive exactly once, whatever came before.
            const fresh = Array.from({ length: 20 }, (_, k) => Buffer.from(`<13>final ${run}.${final.length + k + 1}`));
            final.push(...fresh);
            write(socket, Buffer.concat(fresh.map((m) => encodeFrame(m))));
          }
        }
      },
      drain: pump,
      close(socket) {
        for (const timer of socket.data?.timers ?? []) clearInterval(timer);
        socket.data?.front.destroy();
      },
    },
  });

  const front = createServer((client) => {
    const behaviour = script.shift() ?? "final";
    const record: Record = { behaviour, acceptedAt: performance.now() };
    records.push(record);
    client.on("close", () => (record.closedAt = performance.now()));
    client.on("error", () => {});
    if (behaviour === "accept then silence") return void client.resume(); // read and drop, so that its end is seen
    if (behaviour === "reset before the TLS handshake") return void client.once("data", () => client.resetAndDestroy());
    tlsQueue.push({ behaviour, front: client });
    const upstream = connect(tls.port, "127.0.0.1");
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  front.listen(0, "127.0.0.1");

  return {
    port: () => (front.address() as { port: number }).port,
    records,
    final,
    close() {
      front.close();
      tls.stop(true);
    },
  };
}

describe("slpc against a scripted hostile or silent server", () => {
  test(`random sequences of bad connections, then a good server (seed ${SEED}, ${RUNS} runs)`, async () => {
    console.log(`slpc fault injection: seed ${SEED}, ${RUNS} runs (FAULT_SEED=${SEED} replays them)`);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(...BEHAVIOURS), { minLength: 3, maxLength: 8 }), async (sequence) => {
        run++;
        const server = scriptedServer(run, [...sequence]);
        const sink = await bed.sink();
        const { cert, key } = bed.pki.cert("client");
        await until("the scripted server to listen", () => server.port() > 0);
        const c = new Child([
          BUN,
          "slpc.ts",
          "--server",
          `localhost:${server.port()}`,
          "--ca",
          bed.pki.ca,
          "--cert",
          cert,
          "--key",
          key,
          "--forward",
          `127.0.0.1:${sink.port}`,
          "--handshake-timeout",
          String(HANDSHAKE_TIMEOUT),
          "--dead-after",
          String(DEAD_AFTER),
          "--retry-min",
          "0.05",
          "--retry-max",
          "0.1",
        ]);
        try {
          const finals = () => sink.messages.map(String).filter((text) => text.startsWith("<13>final "));
          await until(
            () =>
              `run ${run} [${sequence.join(", ")}]: the final server's 20 messages (${finals().length})\n${c.stderr}`,
            () => finals().length >= 20 || c.proc.exitCode !== null,
            sequence.length * 4000 + 5000,
          );
          await sleep(300); // room for a duplicate to show
          const context = `run ${run} [${sequence.join(", ")}]:\n${c.stderr}`;
          expect(c.proc.exitCode, context).toBeNull();
          expect(finals(), context).toEqual(server.final.map(String));
          // Every behaviour had its connection, and slpc dialled again after each.
          expect(server.records.map((r) => r.behaviour).slice(0, sequence.length), context).toEqual(sequence);
          for (const record of server.records.slice(0, sequence.length)) {
            if (record.behaviour === "a good stream") continue; // the server ends those
            expect(record.closedAt, `${context}\n${record.behaviour} never ended`).toBeDefined();
            const lasted = record.closedAt! - record.acceptedAt;
            const deadline = Math.max(HANDSHAKE_TIMEOUT, DEAD_AFTER) * 1000 + SLACK_MS;
            expect(lasted, `${context}\n${record.behaviour} lasted ${lasted} ms`).toBeLessThan(deadline);
          }
          const lines = c.stderr.split("\n").slice(0, -1);
          expect(
            lines.filter((line) => !line.startsWith("slpc: ")),
            context,
          ).toEqual([]);
          expect(rss(c.pid), context).toBeLessThan(200 * 1024 * 1024);
        } finally {
          c.kill("SIGKILL");
          await c.proc.exited;
          server.close();
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
  }, 120_000);
});
