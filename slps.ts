// slps: the server half of slp. It receives what the local syslog daemon forwards over UDP and
// streams a copy of every message to each connected, authorized client over mutual TLS 1.3.
//
// The client dials in because the machine that wants the logs sits behind a dynamic address
// and cannot be dialled. A client is authorized when its certificate chains to --ca and, if
// --issuer is set, was issued by exactly that CA: no client gets a byte before both hold.

import type { Socket, TCPSocketListener } from "bun";
import {
  MAX_MESSAGE, SendQueue, TLS13_ONLY, UsageError, bindFailure, dnOfCertificate, encodeFrame, formatAddress,
  formatDN, helpText, loadTlsFiles, logger, parseBytes, parseCount, parseDN, parseHostPort, parseOptions, parseRequired, parseSeconds,
  reason, sameDN, type DistinguishedName, type Option,
} from "./lib.ts";

// Defaults. Each has a flag and an environment variable (see --help).
const UDP = "127.0.0.1:514"; // where the local syslog daemon forwards to
const LISTEN = "0.0.0.0:6514"; // the TLS port clients dial
const CERT = "certs/server.pem";
const KEY = "certs/server.key";
const CA = "certs/ca.pem"; // client certificates must chain to this
const ISSUER = ""; // if set, the client certificate's issuer must be exactly this DN
const MAX_CLIENTS = "64";
const QUEUE = "8MiB"; // per client; over it the oldest messages are dropped
const HANDSHAKE_TIMEOUT = "10"; // seconds a connection may take to finish its TLS handshake

const OPTIONS = {
  udp: { flag: "udp", env: "SLPS_UDP", default: UDP, arg: "HOST:PORT", help: "UDP address the local syslog daemon forwards to; one datagram is one message", parse: (t: string) => parseHostPort(t) },
  listen: { flag: "listen", env: "SLPS_LISTEN", default: LISTEN, arg: "HOST:PORT", help: "TLS address clients connect to ([::]:6514 for IPv6)", parse: (t: string) => parseHostPort(t) },
  cert: { flag: "cert", env: "SLPS_CERT", default: CERT, arg: "FILE", help: "server certificate chain, PEM", parse: parseRequired },
  key: { flag: "key", env: "SLPS_KEY", default: KEY, arg: "FILE", help: "private key of --cert, PEM", parse: parseRequired },
  ca: { flag: "ca", env: "SLPS_CA", default: CA, arg: "FILE", help: "CA bundle that client certificates must chain to, PEM", parse: parseRequired },
  issuer: { flag: "issuer", env: "SLPS_ISSUER", default: ISSUER, arg: "DN", help: "if set, the client certificate's issuer must equal this DN (/C=US/O=Example/CN=Example CA or CN=Example CA,O=Example,C=US)", parse: (t: string) => (t === "" ? undefined : parseDN(t)) },
  maxClients: { flag: "max-clients", env: "SLPS_MAX_CLIENTS", default: MAX_CLIENTS, arg: "N", help: "authorized clients at once; one more is refused", parse: parseCount(1) },
  queue: { flag: "queue", env: "SLPS_QUEUE", default: QUEUE, arg: "BYTES", help: "per-client outbound queue; when full the client's oldest messages are dropped and counted", parse: parseBytes },
  handshakeTimeout: { flag: "handshake-timeout", env: "SLPS_HANDSHAKE_TIMEOUT", default: HANDSHAKE_TIMEOUT, arg: "SECONDS", help: "a connection that has not finished its TLS handshake by then is closed", parse: parseSeconds },
} satisfies Record<string, Option<unknown>>;

const log = logger("slps");
let options;
let tls;
try {
  options = parseOptions(OPTIONS, process.argv.slice(2), process.env);
  if (options === "help") {
    process.stdout.write(helpText("slps", "Streams this server's syslog to slpc clients over mutual TLS 1.3.", OPTIONS));
    process.exit(0);
  }
  tls = loadTlsFiles(options);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  log(error.message);
  process.exit(2);
}
const { udp: udpAddress, listen: listenAddress, issuer: requiredIssuer, maxClients, queue: queueLimit } = options;

/** One TLS connection, from its first byte to its close. */
interface Client {
  remote: string;
  /** Set once the certificate checks passed; from then on it is in `authorizedClients`. */
  name?: string;
  queue: SendQueue;
  droppedTotal: number;
  handshakeTimer?: Timer;
}

const authorizedClients = new Set<Socket<Client>>();

/** Whether this client certificate may receive logs, or why not. */
function refusal(socket: Socket<Client>, success: boolean, error: Error | null): string | undefined {
  if (!success || !socket.authorized) return `certificate refused: ${error ? reason(error) : "not authorized"}`;
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) return "no client certificate";
  const issuer: DistinguishedName = dnOfCertificate(certificate.issuer);
  if (requiredIssuer && !sameDN(issuer, requiredIssuer))
    return `issuer ${formatDN(issuer)} is not --issuer ${formatDN(requiredIssuer)}`;
  if (authorizedClients.size >= maxClients) return `already ${authorizedClients.size} clients (--max-clients ${maxClients})`;
  return undefined;
}

function clientName(socket: Socket<Client>): string {
  const subject = dnOfCertificate(socket.getPeerX509Certificate()?.subject ?? "");
  const cn = subject.findLast(([type]) => type === "CN");
  return `${socket.data.remote} (${cn ? cn[1] : formatDN(subject)})`;
}

// Frames are queued per client and written once per event-loop turn, so a burst of datagrams
// becomes a few large TLS writes instead of one small write per message.
let flushScheduled = false;

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(() => {
    flushScheduled = false;
    for (const socket of authorizedClients) flush(socket);
  });
}

function flush(socket: Socket<Client>): void {
  socket.data.queue.flush((data) => socket.write(data));
}

function broadcast(message: Uint8Array): void {
  if (authorizedClients.size === 0) return;
  const frame = encodeFrame(message);
  for (const socket of authorizedClients) socket.data.queue.push(frame);
  scheduleFlush();
}

// A stalled client's queue overflows at the rate messages arrive: report its drops once a second, not per message.
const dropReport = setInterval(() => {
  for (const socket of authorizedClients) {
    const dropped = socket.data.queue.takeDropped();
    if (dropped === 0) continue;
    socket.data.droppedTotal += dropped;
    log(`client ${socket.data.name}: queue over ${queueLimit} bytes, dropped ${dropped} oldest messages (${socket.data.droppedTotal} in all)`);
  }
}, 1000);
dropReport.unref();

let listener: TCPSocketListener<Client>;
try {
  listener = Bun.listen<Client>({
    hostname: listenAddress.host,
    port: listenAddress.port,
    tls: { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true, secureOptions: TLS13_ONLY },
    socket: {
      open(socket) {
        socket.data = { remote: formatAddress({ host: socket.remoteAddress, port: socket.remotePort }), queue: new SendQueue(queueLimit), droppedTotal: 0 };
        socket.data.handshakeTimer = setTimeout(() => {
          log(`refused ${socket.data.remote}: no TLS handshake within ${options.handshakeTimeout} s`);
          socket.terminate();
        }, options.handshakeTimeout * 1000);
      },
      handshake(socket, success, error) {
        clearTimeout(socket.data.handshakeTimer);
        // Bun may report success for a certificate that failed verification; refusal() checks `authorized` too.
        const why = refusal(socket, success, error);
        if (why) {
          log(`refused ${socket.data.remote}: ${why}`);
          socket.end();
          return;
        }
        socket.data.name = clientName(socket);
        socket.setKeepAlive(true, 30_000);
        authorizedClients.add(socket);
        log(`client ${socket.data.name} connected (${authorizedClients.size} in all)`);
      },
      data(socket) {
        // Clients have nothing to say in this protocol; what they send is read and ignored.
        void socket;
      },
      drain(socket) {
        if (authorizedClients.has(socket)) flush(socket);
      },
      close(socket, error) {
        clearTimeout(socket.data?.handshakeTimer);
        if (!socket.data || !authorizedClients.delete(socket)) return;
        const dropped = socket.data.droppedTotal + socket.data.queue.takeDropped();
        const why = error ? `: ${reason(error)}` : "";
        log(`client ${socket.data.name} disconnected${why}${dropped ? `, ${dropped} messages dropped in all` : ""}`);
      },
      error(socket, error) {
        log(`connection ${socket.data?.remote ?? "?"}: ${reason(error)}`);
      },
    },
  });
} catch (error) {
  log(bindFailure("listen", listenAddress, error));
  process.exit(1);
}

let udp: Awaited<ReturnType<typeof Bun.udpSocket>>;
try {
  udp = await Bun.udpSocket({
    hostname: udpAddress.host,
    port: udpAddress.port,
    socket: {
      data(_socket, datagram, _port, _address, flags) {
        if (flags?.truncated) log(`a datagram over ${MAX_MESSAGE} bytes was truncated`);
        broadcast(datagram);
      },
    },
  });
} catch (error) {
  log(bindFailure("udp", udpAddress, error));
  process.exit(1);
}

log(`receiving syslog on udp ${formatAddress(udpAddress)}, serving clients on tls ${formatAddress({ host: listenAddress.host, port: listener.port })}`);

function shutdown(signal: string): void {
  log(`${signal}: closing ${authorizedClients.size} clients and exiting`);
  udp.close();
  listener.stop(true);
  process.exit(0);
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
