// slpc: the client half of slp. It dials the server (the home machine has a dynamic address
// and cannot be dialled), proves itself with a client certificate, and writes every message
// the server streams into the local syslog daemon over UDP, or to stdout. When the connection
// drops it retries with exponential backoff until it is back.

import type { Socket } from "bun";
import { checkServerIdentity } from "node:tls";
import {
  Deframer, MAX_MESSAGE, TLS13_ONLY, UsageError, formatAddress, helpText, loadTlsFiles, logger, messageAsLine,
  nextBackoff, parseHostPort, parseOptions, parseRequired, parseSeconds, parseSwitch, reason, type Option,
} from "./lib.ts";

// Defaults. Each has a flag and an environment variable (see --help).
const SERVER = ""; // HOST[:PORT] of slps; required
const PORT = 6514;
const CERT = "certs/client.pem";
const KEY = "certs/client.key";
const CA = "certs/ca.pem"; // the server certificate must chain to this; "system" for the system trust store
const SERVERNAME = ""; // name the server certificate must carry; empty: the host of --server
const FORWARD = "127.0.0.1:514"; // the local syslog daemon's UDP input
const STDOUT = "0"; // 1: print messages instead of forwarding them
const RETRY_MIN = "1"; // seconds before the first reconnect attempt
const RETRY_MAX = "60"; // the longest wait between attempts

/** A connection that lasted this long counts as having stayed up: the next retry waits RETRY_MIN again. */
const STAYED_UP_SECONDS = 10;

const OPTIONS = {
  server: { flag: "server", env: "SLPC_SERVER", default: SERVER, arg: "HOST[:PORT]", help: `the slps server; port ${PORT} when omitted (required)`, parse: (t: string) => parseHostPort(t, PORT) },
  cert: { flag: "cert", env: "SLPC_CERT", default: CERT, arg: "FILE", help: "client certificate chain, PEM", parse: parseRequired },
  key: { flag: "key", env: "SLPC_KEY", default: KEY, arg: "FILE", help: "private key of --cert, PEM", parse: parseRequired },
  ca: { flag: "ca", env: "SLPC_CA", default: CA, arg: "FILE", help: "CA that the server certificate must chain to, PEM; 'system' for the system trust store", parse: parseRequired },
  servername: { flag: "servername", env: "SLPC_SERVERNAME", default: SERVERNAME, arg: "NAME", help: "name the server certificate must carry (default: the host of --server)", parse: (t: string) => t },
  forward: { flag: "forward", env: "SLPC_FORWARD", default: FORWARD, arg: "HOST:PORT", help: "local syslog daemon to send each message to over UDP, one datagram per message", parse: (t: string) => parseHostPort(t) },
  stdout: { flag: "stdout", env: "SLPC_STDOUT", default: STDOUT, help: "write each message as one line to stdout instead (its own LF shown as \\n)", parse: parseSwitch },
  retryMin: { flag: "retry-min", env: "SLPC_RETRY_MIN", default: RETRY_MIN, arg: "SECONDS", help: "wait before the first reconnect attempt; it doubles up to --retry-max", parse: parseSeconds },
  retryMax: { flag: "retry-max", env: "SLPC_RETRY_MAX", default: RETRY_MAX, arg: "SECONDS", help: "longest wait between reconnect attempts", parse: parseSeconds },
} satisfies Record<string, Option<unknown>>;

const log = logger("slpc");
let options;
let tls;
try {
  options = parseOptions(OPTIONS, process.argv.slice(2), process.env);
  if (options === "help") {
    process.stdout.write(helpText("slpc", "Receives a server's syslog from slps over mutual TLS 1.3 and writes it to the local syslog daemon.", OPTIONS));
    process.exit(0);
  }
  if (options.retryMax < options.retryMin) throw new UsageError(`--retry-max ${options.retryMax}: must not be below --retry-min ${options.retryMin}`);
  tls = loadTlsFiles({ cert: options.cert, key: options.key, ca: options.ca === "system" ? undefined : options.ca });
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  log(error.message);
  process.exit(2);
}
const { server, forward } = options;
const serverName = options.servername || server.host;

// ---- Output: the local syslog daemon over UDP, or stdout.

const udp = await Bun.udpSocket({
  socket: {
    drain: () => sendPending(),
    // An ICMP "port unreachable" from a syslog daemon that is not running arrives here, without an error object.
    error: (_socket, error) => log(`forward to ${formatAddress(forward)}: ${error ? reason(error) : "not reachable"}`),
  },
});
/** Messages the kernel would not take yet; they go out on `drain`, in order. */
let pending: Uint8Array[] = [];

function sendPending(): void {
  while (pending.length > 0 && udp.send(pending[0]!, forward.port, forward.host)) pending.shift();
}

function output(message: Uint8Array): void {
  if (options.stdout) {
    process.stdout.write(messageAsLine(message));
  } else if (pending.length > 0 || !udp.send(message, forward.port, forward.host)) {
    pending.push(message);
  }
}

// ---- The connection to the server, and reconnecting.

interface Connection {
  deframer: Deframer;
  authorized: boolean;
  since: number;
}

let attempt = 0;
let current: Socket<Connection> | undefined;
let retryTimer: Timer | undefined;
let stopping = false;
const target = formatAddress(server);

function retryLater(): void {
  if (stopping || retryTimer) return;
  const seconds = nextBackoff(attempt++, options.retryMin, options.retryMax);
  log(`retrying in ${seconds.toFixed(1)} s`);
  retryTimer = setTimeout(() => {
    retryTimer = undefined;
    connect();
  }, seconds * 1000);
}

/** Why the server's certificate is not the one we want, or undefined when it is. */
function serverRefusal(socket: Socket<Connection>, success: boolean, error: Error | null): string | undefined {
  if (!success || !socket.authorized) return `server certificate refused: ${error ? reason(error) : "not authorized"}`;
  const mismatch = checkServerIdentity(serverName, socket.getPeerCertificate());
  return mismatch ? `server certificate refused: ${mismatch.message}` : undefined;
}

function connect(): void {
  log(`connecting to ${target}`);
  Bun.connect<Connection>({
    hostname: server.host,
    port: server.port,
    data: { deframer: new Deframer(MAX_MESSAGE), authorized: false, since: 0 },
    tls: { cert: tls.cert, key: tls.key, ca: tls.ca, serverName, rejectUnauthorized: true, secureOptions: TLS13_ONLY },
    socket: {
      open(socket) {
        current = socket;
      },
      handshake(socket, success, error) {
        const why = serverRefusal(socket, success, error);
        if (why) {
          log(`${target}: ${why}`);
          socket.terminate();
          return;
        }
        socket.data.authorized = true;
        socket.data.since = performance.now();
        socket.setKeepAlive(true, 30_000);
        log(`connected to ${target}`);
      },
      data(socket, chunk) {
        if (!socket.data.authorized) return; // never trust a byte from a server that failed its checks
        const { deframer } = socket.data;
        for (const message of deframer.push(chunk)) output(message);
        if (deframer.error) {
          log(`${target}: ${deframer.error}; closing the connection`);
          socket.terminate();
        }
      },
      close(socket, error) {
        current = undefined;
        if (socket.data.authorized) {
          const seconds = (performance.now() - socket.data.since) / 1000;
          if (seconds >= STAYED_UP_SECONDS) attempt = 0;
          log(`disconnected from ${target} after ${seconds.toFixed(1)} s${error ? `: ${reason(error)}` : ""}`);
        }
        retryLater();
      },
      connectError(_socket, error) {
        current = undefined;
        log(`cannot connect to ${target}: ${reason(error)}`);
        retryLater();
      },
      error(_socket, error) {
        log(`${target}: ${reason(error)}`);
      },
    },
  }).catch(() => {
    // connectError has logged it and scheduled the retry.
  });
}

function shutdown(signal: string): void {
  stopping = true;
  log(`${signal}: exiting`);
  clearTimeout(retryTimer);
  current?.end();
  sendPending();
  udp.close();
  process.exit(0);
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));

connect();
