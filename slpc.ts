// slpc: the client half of slp. It dials the server (the home machine has a dynamic address
// and cannot be dialled), proves itself with a client certificate, and writes every message
// the server streams into the local syslog daemon over UDP, or to stdout.
//
// The connection drops whenever the home address changes, often silently. So slpc tells the
// server the number of the last message it delivered and gets everything after it, treats a
// connection that has been silent too long as dead, and retries with backoff until it is back.

import type { Socket } from "bun";
import { lookup } from "node:dns/promises";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { checkServerIdentity } from "node:tls";
import {
  Deframer, MAX_MESSAGE, PROTOCOL_VERSION, expiryWarning, TLS13_ONLY, UsageError, encodeControl, formatAddress, gapNotice, helpText,
  loadTlsFiles, logger, type Address, messageAsLine, nextBackoff, parseCount, RateLimit, parseControl, parseHostPort, parseOptions, parseRequired,
  parseResumePoint, parseSeconds, parseSwitch, reason, type ControlMessage, type Option, type ResumePoint, type TlsFiles, type Values,
} from "./lib.ts";

// Defaults. Each has a flag and an environment variable (see --help).
const SERVER = ""; // HOST[:PORT] of slps; required
const PORT = 6514;
const CERT = "certs/client.pem";
const KEY = "certs/client.key";
const CA = "certs/ca.pem"; // the server certificate must chain to this; "system" for the system trust store
const CRL = ""; // if set, PEM revocation lists: a server certificate listed there is refused
const SERVERNAME = ""; // name the server certificate must carry; empty: the host of --server
const FORWARD = "127.0.0.1:514"; // the local syslog daemon's UDP input
const STDOUT = "0"; // 1: print messages instead of forwarding them
const STATE = ""; // file that keeps the resume point across restarts; empty: kept in memory only
const FORWARD_RATE = "50000"; // messages a second at most to the local syslog daemon; 0 for no limit
const REPLAY = "0"; // 1: a client with no resume point starts with everything the server holds
const DEAD_AFTER = "45"; // seconds without a byte from the server before the connection counts as dead
const RETRY_MIN = "1"; // seconds before the first reconnect attempt
const RETRY_MAX = "60"; // the longest wait between attempts
const HANDSHAKE_TIMEOUT = "10"; // seconds from dialling to the server's start: TCP connect, TLS handshake, hello

/** A server sends a heartbeat after seconds of silence; many in one second are an attack, not a protocol. */
const MAX_HEARTBEATS_PER_SECOND = 50;

/** A connection that lasted this long counts as having stayed up: the next retry waits RETRY_MIN again. */
const STAYED_UP_SECONDS = 10;

const OPTIONS = {
  server: { flag: "server", env: "SLPC_SERVER", default: SERVER, arg: "HOST[:PORT]", help: `the slps server; port ${PORT} when omitted (required)`, parse: (t: string) => parseHostPort(t, PORT) },
  cert: { flag: "cert", env: "SLPC_CERT", default: CERT, arg: "FILE", help: "client certificate chain, PEM", parse: parseRequired },
  key: { flag: "key", env: "SLPC_KEY", default: KEY, arg: "FILE", help: "private key of --cert, PEM", parse: parseRequired },
  ca: { flag: "ca", env: "SLPC_CA", default: CA, arg: "FILE", help: "CA that the server certificate must chain to, PEM; 'system' for the system trust store", parse: parseRequired },
  crl: { flag: "crl", env: "SLPC_CRL", default: CRL, arg: "FILE", help: "PEM file of CRLs; a server certificate listed there is refused", parse: (t: string) => t || undefined },
  servername: { flag: "servername", env: "SLPC_SERVERNAME", default: SERVERNAME, arg: "NAME", help: "name the server certificate must carry (default: the host of --server)", parse: (t: string) => t },
  forward: { flag: "forward", env: "SLPC_FORWARD", default: FORWARD, arg: "HOST:PORT", help: "local syslog daemon to send each message to over UDP, one datagram per message", parse: (t: string) => parseHostPort(t) },
  forwardRate: { flag: "forward-rate", env: "SLPC_FORWARD_RATE", default: FORWARD_RATE, arg: "N", help: "messages a second at most sent to --forward, so a burst (a replay after an outage) does not overflow the daemon's UDP buffer; 0 for no limit", parse: parseCount(0) },
  stdout: { flag: "stdout", env: "SLPC_STDOUT", default: STDOUT, help: "write each message as one line to stdout instead (its own LF shown as \\n)", parse: parseSwitch },
  state: { flag: "state", env: "SLPC_STATE", default: STATE, arg: "FILE", help: "keep the resume point in this file, so a restarted slpc loses nothing either", parse: (t: string) => t },
  replay: { flag: "replay", env: "SLPC_REPLAY", default: REPLAY, help: "with no resume point yet, start with everything the server still holds instead of live", parse: parseSwitch },
  deadAfter: { flag: "dead-after", env: "SLPC_DEAD_AFTER", default: DEAD_AFTER, arg: "SECONDS", help: "a connection that delivered no bytes for this long is closed and dialled again", parse: parseSeconds },
  retryMin: { flag: "retry-min", env: "SLPC_RETRY_MIN", default: RETRY_MIN, arg: "SECONDS", help: "wait before the first reconnect attempt; it doubles up to --retry-max", parse: parseSeconds },
  handshakeTimeout: { flag: "handshake-timeout", env: "SLPC_HANDSHAKE_TIMEOUT", default: HANDSHAKE_TIMEOUT, arg: "SECONDS", help: "a connection that has not finished its TCP connect, TLS handshake and the server's hello and start by then is closed and dialled again", parse: parseSeconds },
  retryMax: { flag: "retry-max", env: "SLPC_RETRY_MAX", default: RETRY_MAX, arg: "SECONDS", help: "longest wait between reconnect attempts", parse: parseSeconds },
} satisfies Record<string, Option<unknown>>;

const log = logger("slpc");
let options: Values<typeof OPTIONS>;
let tls: TlsFiles;
/** The server run we follow and the last message delivered from it; undefined for a new client. */
let position: ResumePoint | undefined;
/** Whether `position` moved since it was last written to --state. */
let stateDirty = false;
/** --forward as an IP address: sendmmsg takes no names, and the UDP socket must be bound for its family. */
let forwardTo: Address & { family: 4 | 6 } = { host: "127.0.0.1", port: 514, family: 4 };
try {
  const parsed = parseOptions(OPTIONS, process.argv.slice(2), process.env);
  if (parsed === "help") {
    process.stdout.write(helpText("slpc", "Receives a server's syslog from slps over mutual TLS 1.3 and writes it to the local syslog daemon.", OPTIONS));
    process.exit(0);
  }
  options = parsed;
  if (options.retryMax < options.retryMin) throw new UsageError(`--retry-max ${options.retryMax}: must not be below --retry-min ${options.retryMin}`);
  tls = loadTls();
  if (options.state) {
    position = readState(options.state);
    saveState(true); // fails now, with exit 2, if the file cannot be written
  }
  if (!options.stdout) forwardTo = await resolveForward(options.forward);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  log(error.message);
  process.exit(2);
}
const { server, forward } = options;

/** Looked up once, at start: the local daemon does not move, and a name that does not resolve is a typo. */
async function resolveForward(address: Address): Promise<Address & { family: 4 | 6 }> {
  let found;
  try {
    found = await lookup(address.host, { all: true });
  } catch (error) {
    throw new UsageError(`--forward ${formatAddress(address)}: cannot resolve ${address.host}: ${reason(error)}`);
  }
  // A name with both families is taken as IPv4, where syslog daemons listen by default.
  const chosen = found.find((entry) => entry.family === 4) ?? found[0];
  if (!chosen) throw new UsageError(`--forward ${formatAddress(address)}: ${address.host} has no address`);
  return { host: chosen.address, port: address.port, family: chosen.family === 6 ? 6 : 4 };
}

function loadTls(): TlsFiles {
  return loadTlsFiles({ cert: options.cert, key: options.key, ca: options.ca === "system" ? undefined : options.ca, crl: options.crl });
}

const startedAt = Date.now();
const counters = { received: 0, receivedBytes: 0, delivered: 0, lost: 0, unknownGaps: 0, connects: 0, reconnects: 0 };
const serverName = options.servername || server.host;

// ---- The resume point on disk: written to a temporary file and renamed, so it is never half written.

function readState(path: string): ResumePoint | undefined {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UsageError(`--state ${path}: ${reason(error)}`);
  }
  try {
    return parseResumePoint(text);
  } catch (error) {
    throw new UsageError(`--state ${path}: ${(error as Error).message} (delete it to start as a new client)`);
  }
}

/** Writes the resume point; with `probe` and none yet, only proves the file can be written. */
function saveState(probe = false): void {
  stateDirty = false;
  if (!options.state || (!position && !probe)) return;
  const temporary = `${options.state}.tmp`;
  try {
    writeFileSync(temporary, position ? JSON.stringify(position) + "\n" : "");
    if (position) renameSync(temporary, options.state);
    else rmSync(temporary);
  } catch (error) {
    throw new UsageError(`--state ${options.state}: cannot write: ${reason(error)}`);
  }
}

if (options.state) {
  let lastFailure = "";
  setInterval(() => {
    if (!stateDirty) return;
    try {
      saveState();
      lastFailure = "";
    } catch (error) {
      // Once per kind of failure, not once a second while the disk stays full.
      if ((error as Error).message !== lastFailure) log((error as Error).message);
      lastFailure = (error as Error).message;
    }
  }, 1000).unref();
}

// ---- Output: the local syslog daemon over UDP, or stdout.

/** --forward in log lines: as the operator wrote it, and the address it resolved to when that differs. */
const forwardName = formatAddress(forward) + (forward.host === forwardTo.host ? "" : ` (${forwardTo.host})`);

// A syslog daemon that is not running answers with ICMP "port unreachable": an error event, or
// an exception from the next send. Say so at once, then at most once a minute with the count.
let forwardErrors = 0;
let forwardErrorLogged = -Infinity;
function forwardFailed(error: unknown): void {
  forwardErrors++;
  if (performance.now() - forwardErrorLogged < 60_000) return;
  const times = forwardErrors > 1 ? ` (${forwardErrors} times since the last report)` : "";
  log(`forward to ${forwardName}: ${error ? reason(error) : "not reachable"}${times}; is the syslog daemon listening?`);
  forwardErrorLogged = performance.now();
  forwardErrors = 0;
}

let udp: import("bun").udp.Socket<"buffer">;
try {
  udp = await Bun.udpSocket({
    hostname: forwardTo.family === 6 ? "::" : "0.0.0.0",
    socket: { drain: () => sendPending(), error: (_socket, error) => forwardFailed(error) },
  });
} catch (error) {
  log(`--forward ${forwardName}: cannot open a UDP socket for IPv${forwardTo.family}: ${reason(error)}`);
  process.exit(2);
}
/**
 * Messages not yet sent, with their numbers: over --forward-rate, or not taken by the kernel.
 * They go out in order, and while too many wait the connection to the server stops being read,
 * so the server holds the rest.
 */
const pending: { message: Uint8Array; seq: number }[] = [];
let pendingBytes = 0;
const PENDING_HIGH = 4096;
const PENDING_HIGH_BYTES = 4 * 1024 * 1024;
const forwardRate = options.forwardRate > 0 ? new RateLimit(options.forwardRate, Math.max(1, options.forwardRate / 100), performance.now()) : undefined;
let paceTimer: Timer | undefined;
let readingPaused = false;

function delivered(seq: number): void {
  counters.delivered++;
  position!.last = seq;
  stateDirty = true;
}

/** Messages handed to the kernel in one sendmmsg(2) call. */
const SEND_BATCH = 64;

/** While sends to --forward fail, how long before the messages kept are tried again. */
const FORWARD_RETRY_MS = 1000;
/** True after a send to --forward failed, until one succeeds: reading stays paused meanwhile. */
let forwardFailing = false;

function sendPending(): void {
  while (pending.length > 0) {
    const now = performance.now();
    let count = 0;
    while (count < Math.min(SEND_BATCH, pending.length) && (!forwardRate || forwardRate.take(now))) count++;
    if (count === 0) {
      paceTimer ??= setTimeout(() => {
        paceTimer = undefined;
        sendPending();
      }, Math.max(1, forwardRate!.wait()));
      break;
    }
    const packets: (Uint8Array | number | string)[] = [];
    for (let i = 0; i < count; i++) packets.push(pending[i]!.message, forwardTo.port, forwardTo.host);
    let sent;
    try {
      sent = udp.sendMany(packets);
    } catch (error) {
      // The messages stay, in order, and the server holds the rest until the daemon takes them.
      forwardFailed(error);
      forwardFailing = true;
      paceTimer ??= setTimeout(() => {
        paceTimer = undefined;
        sendPending();
      }, FORWARD_RETRY_MS);
      break;
    }
    forwardFailing = false;
    for (const { message, seq } of pending.splice(0, sent)) {
      pendingBytes -= message.length;
      delivered(seq);
    }
    if (sent < count) break; // the kernel is full: `drain` calls again
  }
  pauseReading(forwardFailing || pending.length >= PENDING_HIGH || pendingBytes >= PENDING_HIGH_BYTES);
}

/** Stops or restarts reading from the server, so that it holds what this side cannot take yet. */
function pauseReading(pause: boolean): void {
  if (pause === readingPaused) return;
  readingPaused = pause;
  if (pause) current?.pause();
  else current?.resume();
}

function output(message: Uint8Array, seq: number): void {
  if (options.stdout) {
    // A full pipe makes write() return false: stop reading the server until stdout drains.
    if (!process.stdout.write(messageAsLine(message)) && !readingPaused) {
      pauseReading(true);
      process.stdout.once("drain", () => pauseReading(false));
    }
    delivered(seq);
    return;
  }
  // Sent in batches: onData calls sendPending once it has taken all the messages of a read.
  pending.push({ message, seq });
  pendingBytes += message.length;
}

// ---- The connection to the server, and reconnecting.

interface Connection {
  deframer: Deframer;
  authorized: boolean;
  since: number;
  lastByte: number;
  /** The server's hello, once it came. */
  serverId?: string;
  /** Number of the next data frame, once the server said where it starts. */
  nextSeq?: number;
  /** Heartbeats in the current second: a server that sends a flood of them is hung up on. */
  heartbeats: number;
  heartbeatSecond: number;
  closing?: boolean;
  /** Ends an attempt that has not reached the server's start within --handshake-timeout. */
  setupTimer?: Timer;
  /** The socket, once TCP is up. */
  socket?: Socket<Connection>;
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

function hangUp(socket: Socket<Connection>, why: string): void {
  log(`${target}: ${why}; closing the connection`);
  socket.data.closing = true;
  socket.terminate();
}

/** hello, then start (possibly again later), heartbeat and error, in the order the protocol allows. */
function onControl(socket: Socket<Connection>, message: ControlMessage): void {
  const connection = socket.data;
  switch (message.type) {
    case "hello": {
      if (message.version !== PROTOCOL_VERSION)
        return hangUp(socket, `server speaks protocol version ${message.version}, this slpc speaks ${PROTOCOL_VERSION}; upgrade the older one`);
      if (connection.serverId !== undefined) return hangUp(socket, "protocol error: second hello");
      connection.serverId = message.server;
      if (message.heartbeat >= options.deadAfter)
        log(`warning: server heartbeat ${message.heartbeat} s is not below --dead-after ${options.deadAfter} s; idle connections will be dropped`);
      // Messages waiting for the local daemon will still be delivered: resume after them, not before.
      const last = pending.at(-1)?.seq ?? position?.last;
      const resume = position ? { server: position.server, last: last! } : { replay: options.replay };
      socket.write(encodeControl({ type: "resume", version: PROTOCOL_VERSION, ...resume }));
      return;
    }
    case "start": {
      if (connection.serverId === undefined) return hangUp(socket, "protocol error: start before hello");
      const gap = gapNotice(message);
      if (gap) log(gap);
      if (message.lost === null) counters.unknownGaps++;
      else counters.lost += message.lost ?? 0;
      if (connection.nextSeq === undefined) log(`following server ${connection.serverId} from #${message.seq}`);
      connection.nextSeq = message.seq;
      clearTimeout(connection.setupTimer);
      if (position?.server !== connection.serverId) position = { server: connection.serverId, last: message.seq - 1 };
      return;
    }
    case "heartbeat": {
      const second = Math.floor(performance.now() / 1000);
      if (second !== connection.heartbeatSecond) [connection.heartbeatSecond, connection.heartbeats] = [second, 0];
      if (++connection.heartbeats > MAX_HEARTBEATS_PER_SECOND) return hangUp(socket, `protocol error: heartbeat flood, over ${MAX_HEARTBEATS_PER_SECOND} in a second`);
      return;
    }
    case "error":
      return hangUp(socket, `server says: ${message.message}`);
    default:
      return hangUp(socket, `protocol error: unexpected ${message.type} message`);
  }
}

function onData(socket: Socket<Connection>, chunk: Uint8Array): void {
  try {
    deliverFrames(socket, chunk);
  } finally {
    if (!options.stdout) sendPending();
  }
}

function deliverFrames(socket: Socket<Connection>, chunk: Uint8Array): void {
  const connection = socket.data;
  connection.lastByte = performance.now();
  for (const frame of connection.deframer.push(chunk)) {
    if (!frame.control) {
      if (connection.nextSeq === undefined) return hangUp(socket, "protocol error: data before start");
      counters.received++;
      counters.receivedBytes += frame.body.length;
      output(frame.body, connection.nextSeq++);
      continue;
    }
    let message;
    try {
      message = parseControl(frame.body);
    } catch (error) {
      return hangUp(socket, `protocol error: ${(error as Error).message}`);
    }
    onControl(socket, message);
    if (connection.closing) return;
  }
  if (connection.deframer.error) hangUp(socket, connection.deframer.error);
}

// A half-open connection (the home address changed under it) delivers nothing and never fails
// by itself: the server's heartbeats are what make silence mean death.
setInterval(() => {
  if (!current?.data.authorized || current.data.closing) return;
  if (performance.now() - current.data.lastByte >= options.deadAfter * 1000) {
    hangUp(current, `no bytes for ${options.deadAfter} s (--dead-after), the connection is presumed dead`);
  }
}, Math.min(1000, options.deadAfter * 250)).unref();

function connect(): void {
  log(`connecting to ${target}`);
  const connection: Connection = { deframer: new Deframer(MAX_MESSAGE), authorized: false, since: 0, lastByte: 0, heartbeats: 0, heartbeatSecond: 0 };
  // A peer that accepts and never answers (a stuck proxy, the wrong host after a DNS change)
  // would hold this attempt forever: no timeout of TCP or TLS ends it.
  connection.setupTimer = setTimeout(() => {
    const why = `no TLS handshake, hello and start within ${options.handshakeTimeout} s (--handshake-timeout)`;
    if (connection.socket) return hangUp(connection.socket, why);
    // Still connecting: Bun cannot cancel a TCP connect, so the attempt is abandoned instead.
    log(`${target}: ${why}`);
    connection.closing = true;
    retryLater();
  }, options.handshakeTimeout * 1000);
  Bun.connect<Connection>({
    hostname: server.host,
    port: server.port,
    data: connection,
    tls: { cert: tls.cert, key: tls.key, ca: tls.ca, crl: tls.crl, serverName, rejectUnauthorized: true, secureOptions: TLS13_ONLY },
    socket: {
      open(socket) {
        if (connection.closing) return socket.terminate();
        connection.socket = socket;
        current = socket;
        readingPaused = false;
      },
      handshake(socket, success, error) {
        const why = serverRefusal(socket, success, error);
        if (why) {
          log(`${target}: ${why}`);
          socket.data.closing = true;
          socket.terminate();
          return;
        }
        socket.data.authorized = true;
        socket.data.since = socket.data.lastByte = performance.now();
        socket.setKeepAlive(true, 15_000);
        if (counters.connects++ > 0) counters.reconnects++;
        log(`connected to ${target}`);
      },
      data(socket, chunk) {
        // Never trust a byte from a server that failed its checks, or after we decided to hang up.
        if (socket.data.authorized && !socket.data.closing) onData(socket, chunk);
      },
      close(socket, error) {
        clearTimeout(connection.setupTimer);
        if (current === socket) current = undefined;
        if (socket.data.authorized && !stopping) {
          const seconds = (performance.now() - socket.data.since) / 1000;
          if (seconds >= STAYED_UP_SECONDS) attempt = 0;
          log(`disconnected from ${target} after ${seconds.toFixed(1)} s${error ? `: ${reason(error)}` : ""}`);
        }
        retryLater();
      },
      connectError(_socket, error) {
        clearTimeout(connection.setupTimer);
        if (connection.closing) return; // abandoned: the timeout has scheduled the retry
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

// ---- For operators: certificate renewal, expiry warnings, numbers.

function warnIfExpiring(): void {
  const warning = expiryWarning("cert", tls.leaf, new Date());
  if (warning) log(warning);
}
warnIfExpiring();
setInterval(warnIfExpiring, 86_400_000).unref();

/** SIGHUP: reread the certificate, key and CA for the next connection; the current one stays. */
process.on("SIGHUP", () => {
  try {
    tls = loadTls();
  } catch (error) {
    log(`SIGHUP: ${(error as Error).message}; keeping the certificates in force`);
    return;
  }
  log(`SIGHUP: reloaded --cert ${options.cert}, --key ${options.key}, --ca ${options.ca}${options.crl ? ` and --crl ${options.crl}` : ""}; the next connection uses them`);
  warnIfExpiring();
});

process.on("SIGUSR1", () => {
  const snapshot = {
    program: "slpc",
    uptime: Math.round((Date.now() - startedAt) / 1000),
    server: target,
    connected: current?.data.nextSeq !== undefined,
    ...counters,
    pending: pending.length,
    position: position ?? null,
  };
  process.stderr.write(JSON.stringify(snapshot) + "\n");
});

function shutdown(signal: string): void {
  stopping = true;
  log(`${signal}: exiting`);
  clearTimeout(retryTimer);
  current?.terminate();
  sendPending();
  try {
    saveState();
  } catch (error) {
    log((error as Error).message);
  }
  udp.close();
  process.exit(0);
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));

connect();
