// The fan-out floor: the least a server can do to fan syslog out over mutual TLS, so that slps's
// fan-out numbers have something to stand beside. It speaks just enough of the protocol for
// bench/fanout_client.ts (hello, waits for resume, start) and then sends each datagram as a data
// frame to every connection: no resume buffer, no queue limit, no heartbeats, no counters.
//
//   bun bench/fanout_floor.ts UDP_PORT TLS_PORT CERTS_DIR
//
// CERTS_DIR holds ca.pem, server.pem and server.key. The same TLS 1.3 profile and the same UDP
// receive buffer as slps. The datagrams of one event-loop turn go out as one write per
// connection, as slps does: one write per datagram per connection would make the floor slower
// than what it bounds. A connection that cannot keep up is queued for, up to MAX_BACKLOG, then
// closed with a line on stderr.

import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import {
  type ControlMessage,
  Deframer,
  encodeControl,
  encodeFrame,
  PROTOCOL_VERSION,
  parseControl,
  reason,
  TLS13_ONLY,
} from "../lib.ts";

const [udpPortText, tlsPortText, certs] = process.argv.slice(2);
const udpPort = Number(udpPortText);
const tlsPort = Number(tlsPortText);
if (!(udpPort > 0 && udpPort < 65536) || !(tlsPort > 0 && tlsPort < 65536) || !certs) {
  process.stderr.write("usage: bun bench/fanout_floor.ts UDP_PORT TLS_PORT CERTS_DIR\n");
  process.exit(2);
}

const MAX_BACKLOG = 64 * 1024 * 1024;
const log = (text: string) => process.stderr.write(`fanout_floor: ${text}\n`);

interface Connection {
  deframer: Deframer;
  /** Bytes the socket did not take yet, oldest first. */
  backlog: Uint8Array[];
  backlogBytes: number;
}

/** Connections that have sent `resume`: the ones every datagram goes to. */
const started = new Set<Socket<Connection>>();
/** The sequence number of the next datagram. */
let next = 1;
/** The frames of this event-loop turn, written to every started connection at its end. */
let pending: Uint8Array[] = [];

function write(socket: Socket<Connection>, data: Uint8Array): void {
  const connection = socket.data;
  if (connection.backlog.length > 0) {
    connection.backlog.push(data);
    connection.backlogBytes += data.length;
  } else {
    const taken = socket.write(data);
    if (taken >= data.length) return;
    connection.backlog.push(data.subarray(Math.max(taken, 0)));
    connection.backlogBytes += data.length - Math.max(taken, 0);
  }
  if (connection.backlogBytes > MAX_BACKLOG) {
    log(`a client is more than ${MAX_BACKLOG} bytes behind; closing it`);
    started.delete(socket);
    socket.terminate();
  }
}

Bun.listen<Connection>({
  hostname: "127.0.0.1",
  port: tlsPort,
  tls: {
    cert: readFileSync(join(certs, "server.pem"), "utf8"),
    key: readFileSync(join(certs, "server.key"), "utf8"),
    ca: readFileSync(join(certs, "ca.pem"), "utf8"),
    requestCert: true,
    rejectUnauthorized: true,
    secureOptions: TLS13_ONLY,
  },
  socket: {
    open(socket) {
      socket.data = { deframer: new Deframer(4096), backlog: [], backlogBytes: 0 };
    },
    handshake(socket, success) {
      // Bun may report success for a certificate that failed verification: `authorized` decides.
      if (!success || !socket.authorized) return void socket.terminate();
      write(
        socket,
        encodeControl({ type: "hello", version: PROTOCOL_VERSION, server: "floor", heartbeat: 15, first: next, next }),
      );
    },
    data(socket, chunk) {
      for (const frame of socket.data.deframer.push(chunk)) {
        let message: ControlMessage | undefined;
        try {
          message = frame.control ? parseControl(frame.body) : undefined;
        } catch {}
        if (message?.type !== "resume" || started.has(socket)) return void socket.terminate();
        // The frames waiting for this turn's write go to this client too: its stream starts with them.
        write(socket, encodeControl({ type: "start", seq: next - pending.length }));
        started.add(socket);
      }
      if (socket.data.deframer.error) socket.terminate();
    },
    drain(socket) {
      const { backlog } = socket.data;
      if (backlog.length === 0) return;
      const data = backlog.length === 1 ? backlog[0]! : Buffer.concat(backlog);
      socket.data.backlog = [];
      socket.data.backlogBytes = 0;
      write(socket, data);
    },
    close(socket) {
      started.delete(socket);
    },
    error(_socket, error) {
      log(reason(error));
    },
  },
});

const udp = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
udp.on("message", (message: Buffer) => {
  next++;
  if (started.size === 0) return;
  pending.push(encodeFrame(message));
  if (pending.length > 1) return;
  setImmediate(() => {
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    pending = [];
    for (const socket of started) write(socket, data);
  });
});
udp.bind(udpPort, "127.0.0.1", () => log(`serving on udp 127.0.0.1:${udpPort} and tls 127.0.0.1:${tlsPort}`));
