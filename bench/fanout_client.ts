// The fan-out client: one light process that holds COUNT mutual-TLS connections to slps (or to
// bench/fanout_floor.ts), speaks the resume protocol on each as a new client (hello -> resume ->
// start, then data frames), and keeps a Tally (bench/tally.ts) per connection: every sequence
// number of the load generator's messages, and each message's latency.
//
// One process rather than one slpc per client: fifty slpc processes of 40 MB on two cores
// measure the machine, not the server.
//
//   bun bench/fanout_client.ts PORT COUNT CERTS_DIR
//
// CERTS_DIR holds ca.pem, client.pem and client.key (certs/make-certs.sh -d DIR localhost client).
// On stdout: "ready COUNT" once every connection has its `start`. On stdin, as bench/sink.ts:
// "count" prints how many data frames all connections got; "report SENT" prints
// {"pooled": {p50, p99, max}, "streams": [TallyReport + connection, skipped, unknownSkips]}
// and starts afresh; "stop" exits. A connection that fails or closes is a line on stderr and exit 1.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import {
  type ControlMessage,
  Deframer,
  encodeControl,
  MAX_MESSAGE,
  PROTOCOL_VERSION,
  parseControl,
  reason,
  TLS13_ONLY,
} from "../lib.ts";
import { nowNs } from "./clock.ts";
import { percentiles, Tally } from "./tally.ts";

const [portText, countText, certs] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
if (!(port > 0 && port < 65536) || !(count >= 0) || !certs) {
  process.stderr.write("usage: bun bench/fanout_client.ts PORT COUNT CERTS_DIR\n");
  process.exit(2);
}

/** Handshakes in flight at once: enough to connect a thousand quickly, few enough for --max-pending. */
const CONNECTING_AT_ONCE = 50;

interface Connection {
  index: number;
  deframer: Deframer;
  phase: "hello" | "resume" | "data";
  tally: Tally;
  /** Messages the server said it skipped, in `start` frames after the first. */
  skipped: number;
  /** `start` frames that skipped an unknown number. */
  unknownSkips: number;
  /** The part of the resume request the socket has not taken yet. */
  unsent?: Uint8Array;
  /** Called at the first `start`. */
  onStart?: () => void;
}

const tls = {
  ca: readFileSync(join(certs, "ca.pem"), "utf8"),
  cert: readFileSync(join(certs, "client.pem"), "utf8"),
  key: readFileSync(join(certs, "client.key"), "utf8"),
  serverName: "localhost",
  rejectUnauthorized: true,
  secureOptions: TLS13_ONLY,
};
const SPACE = 0x20;
const DIGIT_0 = 0x30;
const DIGIT_1 = 0x31;
const DIGIT_9 = 0x39;
const MAX_DIGITS = String(MAX_MESSAGE).length;

/**
 * Counts the whole data frames at the front of `chunk` where they lie and returns where they
 * end. It stops at anything else (a control frame, a frame the read cut, a length it does not
 * like) and leaves the rest to the Deframer, which decides what the stream means. It spares a
 * view and an object per message: at 100 connections, that is the difference between measuring
 * the server and measuring this process.
 */
function countWholeDataFrames(chunk: Uint8Array, tally: Tally, arrived: number): number {
  let at = 0;
  while (at < chunk.length && chunk[at]! >= DIGIT_1 && chunk[at]! <= DIGIT_9) {
    let length = 0;
    let i = at;
    for (; i < chunk.length && i - at < MAX_DIGITS && chunk[i]! >= DIGIT_0 && chunk[i]! <= DIGIT_9; i++) {
      length = length * 10 + (chunk[i]! - DIGIT_0);
    }
    const end = i + 1 + length;
    if (i >= chunk.length || chunk[i] !== SPACE || length > MAX_MESSAGE || end > chunk.length) break;
    tally.record(chunk, arrived, i + 1, end);
    at = end;
  }
  return at;
}

const resume = encodeControl({ type: "resume", version: PROTOCOL_VERSION });
const connections: Connection[] = [];
let stopping = false;

function fail(connection: Connection, why: string): never {
  process.stderr.write(`fanout_client: connection ${connection.index}: ${why}\n`);
  process.exit(1);
}

/** Writes what the socket takes now, and keeps the rest for `drain`: Bun buffers nothing. */
function send(socket: Socket<Connection>, data: Uint8Array): void {
  const taken = Math.max(0, socket.write(data));
  socket.data.unsent = taken < data.length ? data.subarray(taken) : undefined;
}

function onControl(socket: Socket<Connection>, body: Uint8Array): void {
  const connection = socket.data;
  let message: ControlMessage;
  try {
    message = parseControl(body);
  } catch (error) {
    fail(connection, reason(error));
  }
  if (message.type === "heartbeat") return;
  if (message.type === "error") fail(connection, `the server says: ${message.message}`);
  if (connection.phase === "hello" && message.type === "hello") {
    connection.phase = "resume";
    send(socket, resume);
  } else if (connection.phase !== "hello" && message.type === "start") {
    if (connection.phase === "data") {
      if (message.lost === null) connection.unknownSkips++;
      else connection.skipped += message.lost ?? 0;
    }
    connection.phase = "data";
    connection.onStart?.();
    connection.onStart = undefined;
  } else {
    fail(
      connection,
      `unexpected ${message.type} while waiting for ${connection.phase === "hello" ? "hello" : "start"}`,
    );
  }
}

function open(index: number): Promise<void> {
  const connection: Connection = {
    index,
    deframer: new Deframer(MAX_MESSAGE),
    phase: "hello",
    tally: new Tally(),
    skipped: 0,
    unknownSkips: 0,
  };
  connections.push(connection);
  return new Promise<void>((resolve) => {
    connection.onStart = resolve;
    Bun.connect<Connection>({
      hostname: "127.0.0.1",
      port,
      data: connection,
      tls,
      socket: {
        handshake(_socket, success, error) {
          if (!success) fail(connection, `TLS handshake failed: ${reason(error)}`);
        },
        data(socket, chunk) {
          // One stamp per read: every frame in it arrived at once; parsing them is our time, not the server's.
          const arrived = nowNs();
          const { deframer } = connection;
          const counted =
            connection.phase === "data" && !deframer.midFrame
              ? countWholeDataFrames(chunk, connection.tally, arrived)
              : 0;
          if (counted === chunk.length) return;
          for (const frame of deframer.push(counted > 0 ? chunk.subarray(counted) : chunk)) {
            if (frame.control) onControl(socket, frame.body);
            else if (connection.phase === "data") connection.tally.record(frame.body, arrived);
            else fail(connection, `a data frame before start`);
          }
          if (deframer.error) fail(connection, deframer.error);
        },
        drain(socket) {
          if (connection.unsent) send(socket, connection.unsent);
        },
        close(_socket, error) {
          if (!stopping) fail(connection, `closed by the server${error ? `: ${reason(error)}` : ""}`);
        },
        connectError(_socket, error) {
          fail(connection, `cannot connect: ${reason(error)}`);
        },
      },
    }).catch((error) => fail(connection, `cannot connect: ${reason(error)}`));
  });
}

let next = 0;
await Promise.all(
  Array.from({ length: Math.min(CONNECTING_AT_ONCE, count) }, async () => {
    while (next < count) await open(next++);
  }),
);
process.stdout.write(`ready ${count}\n`);

for await (const line of console) {
  const [command, sent] = line.split(" ");
  if (command === "count") {
    process.stdout.write(`${connections.reduce((sum, { tally }) => sum + tally.received, 0)}\n`);
    continue;
  }
  if (command === "stop") {
    stopping = true;
    break;
  }
  const pooled = percentiles(connections.map(({ tally }) => tally.latencies()));
  const streams = connections.map(({ index, tally, skipped, unknownSkips }) => ({
    connection: index,
    ...tally.report(Number(sent ?? 0)),
    skipped,
    unknownSkips,
  }));
  for (const connection of connections) connection.skipped = connection.unknownSkips = 0;
  process.stdout.write(`${JSON.stringify({ pooled, streams })}\n`);
}
process.exit(0);
