// slps: the server half of slp. It receives what the local syslog daemon forwards to its inputs
// (UDP, TCP, RELP, a unix socket), numbers each message and keeps the recent ones, and streams them
// to each connected, authorized client over mutual TLS 1.3.
//
// The client dials in because the machine that wants the logs sits behind a dynamic address
// and cannot be dialled. A client is authorized when its certificate chains to --ca and, if
// --issuer is set, was issued by exactly that CA: no client gets a byte before both hold. A
// client that comes back after its address changed says where it stopped, and gets the rest.

import { lookup } from "node:dns/promises";
import * as fs from "node:fs";
import type { Socket, SocketHandler, TCPSocketListener } from "bun";
import { bindFailure, formatAddress, mustResolve, parseHostPort } from "./lib/address.ts";
import { clientIdentity, refusal } from "./lib/client_auth.ts";
import { ClientStream } from "./lib/client_stream.ts";
import { crlExpiryWarnings, missingCrlWarning, type RevocationList, readCrl } from "./lib/crl.ts";
import { parseDN } from "./lib/dn.ts";
import { describeFilter } from "./lib/filter.ts";
import { Deframer, encodeControl, MAX_FRAME, MAX_MESSAGE } from "./lib/framing.ts";
import { chooseInputs, type NamedInput, parseInputList, resolveInputs } from "./lib/input_address.ts";
import { HandshakeLimiter, MAX_HANDSHAKE_SOURCES, TokenBucket } from "./lib/limits.ts";
import { logger, reason } from "./lib/log.ts";
import { prometheusText } from "./lib/metrics.ts";
import {
  helpText,
  type Options,
  optional,
  originOf,
  parseBytes,
  parseBytesUpTo,
  parseCount,
  parseList,
  parseOptions,
  parsePins,
  parseRequired,
  parseSeconds,
  parseSecondsFrom,
  parseText,
  UsageError,
  type Values,
} from "./lib/options.ts";
import { ParseCache } from "./lib/parse_cache.ts";
import { type Phase, phaseDeadline } from "./lib/phases.ts";
import { answerResume, type ControlMessage, parseControl, serverHello } from "./lib/protocol.ts";
import { type ClientState, serverMetrics, serverSnapshot } from "./lib/server_numbers.ts";
import { peerText } from "./lib/terminal_text.ts";
import { expiryWarning, loadTlsFiles, TLS13_ONLY, type TlsFiles } from "./lib/tls.ts";
import packageJson from "./package.json" with { type: "json" };
import { BUFFER_DIR_OPTIONS, type BufferChoice, chooseBuffer, MAX_BUFFER_DIR_GIB } from "./slps/buffer_dir.ts";
import type { Input } from "./slps/inputs/input.ts";
import { openInputs } from "./slps/inputs/open.ts";
import { BufferIntake } from "./slps/intake.ts";

// ---- Constants. Defaults first: each has a flag and an environment variable, named after its key
// in OPTIONS below: maxClients is --max-clients and SLPS_MAX_CLIENTS (see --help).

const UDP = "127.0.0.1:514"; // where the local syslog daemon forwards to, unless --input says otherwise
const INPUT = ""; // if set, comma-separated: udp://, tcp://, relp:// HOST:PORT, unix:PATH
const INPUT_CONNECTIONS = "16"; // connections at once to one tcp or relp input
const INPUT_TIMEOUT = "30"; // seconds a tcp or relp peer may take to finish a frame begun, or RELP's open
const LISTEN = "0.0.0.0:6514"; // the TLS port clients dial
const CERT = "certs/server.pem";
const KEY = "certs/server.key";
const CA = "certs/ca.pem"; // client certificates must chain to this
const ISSUER = ""; // if set, the client certificate's issuer must be exactly this DN
const CRL = ""; // if set, PEM revocation lists: a client certificate listed there is refused
const ALLOW = ""; // if set, comma-separated names: the client certificate's CN or a DNS/email name must be one
const PIN = ""; // if set, comma-separated SHA-256 fingerprints: the client certificate must be one of them
const MAX_CLIENTS = "64";
const MAX_PENDING = "32"; // connections at once that have not finished their TLS handshake
const HANDSHAKE_RATE = "60"; // TLS connections a minute from one address
const QUEUE = "16MiB"; // how far a client may fall behind before its oldest messages are skipped: as far as --buffer
const UDP_BUFFER = "8MiB"; // kernel receive buffer of the UDP socket, for bursts (capped by net.core.rmem_max)
const BUFFER = "16MiB"; // recent messages kept for clients that reconnect; 0 turns resume off
const HEARTBEAT = "15"; // seconds of silence after which a client gets a heartbeat
const STALL = "60"; // seconds a client may take no bytes at all while some wait for it
const METRICS = ""; // HOST:PORT to serve Prometheus metrics on at /metrics; empty: off
const HANDSHAKE_TIMEOUT = "10"; // seconds a connection may take to finish its TLS handshake and resume
const BATCH_WINDOW = "0.5"; // ms: while messages keep coming, what arrives within this goes to a client in one write

/** Clients send control messages only; a data frame of any size from one is refused once read. */
const CLIENT_MAX_MESSAGE = 1;
/** The longest a timer waits: a longer delay fires at once. A deadline further out is checked again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A heartbeat more often than this would look like a flood to slpc (over 50 a second). */
const MIN_HEARTBEAT = 0.1;
/** The longest --batch-window: a longer wait would be a delay, not a batch. */
const MAX_BATCH_WINDOW_MS = 100;
/** SO_RCVBUF takes an int, which the kernel doubles. */
const MAX_UDP_BUFFER_GIB = 1;
/**
 * Control messages one client may send a second, of any kind: it sends `resume` once and
 * `progress` once a heartbeat (ten a second at the shortest --heartbeat). Each is at most 4 KiB.
 */
const MAX_CONTROLS_PER_SECOND = 50;
/**
 * How soon a filtering client is told where it stands once left-out messages moved it on: its
 * resume point stays this close to the stream, at one `start` per client in this time at most.
 */
const ANNOUNCE_MS = 100;

// ---- Options, and the files they name. Anything wrong with them is one line and exit 2, before
// a socket opens.

// biome-ignore format: a table, one option a row (its help on a second line when it is long)
const OPTIONS = {
  udp: { default: UDP, arg: "HOST:PORT", parse: parseHostPort,
    help: "UDP address the local syslog daemon forwards to, one datagram a message; not opened for --input alone" },
  input: { default: INPUT, arg: "URL", parse: optional(parseInputList), repeatable: true,
    help: "where the daemon forwards to: udp://HOST:PORT, tcp://HOST:PORT (RFC 6587), relp://HOST:PORT, unix:/PATH" },
  inputConnections: { default: INPUT_CONNECTIONS, arg: "N", parse: parseCount(1),
    help: "connections at once to one tcp or relp input; one more is closed at once" },
  inputTimeout: { default: INPUT_TIMEOUT, arg: "SECONDS", parse: parseSeconds,
    help: "a tcp or relp connection that begins a frame (or RELP's open) and does not finish it by then is closed" },
  udpBuffer: { default: UDP_BUFFER, arg: "BYTES", parse: parseBytesUpTo(MAX_UDP_BUFFER_GIB),
    help: "kernel receive buffer of the UDP socket, so bursts are not dropped (capped by net.core.rmem_max)" },
  listen: { default: LISTEN, arg: "HOST:PORT", parse: parseHostPort,
    help: "TLS address clients connect to ([::]:6514 for IPv6)" },
  cert: { default: CERT, arg: "FILE", parse: parseRequired, help: "server certificate chain, PEM" },
  key: { default: KEY, arg: "FILE", parse: parseRequired, help: "private key of --cert, PEM" },
  ca: { default: CA, arg: "FILE", parse: parseRequired, help: "CA bundle that client certificates must chain to, PEM" },
  issuer: { default: ISSUER, arg: "DN", parse: optional(parseDN),
    help: "if set, the client certificate's issuer must be this DN (/C=US/O=Example/CN=CA or CN=CA,O=Example,C=US)" },
  crl: { default: CRL, arg: "FILE", parse: optional(parseText),
    help: "PEM file of CRLs, one from each CA in a client's chain; a certificate listed there is refused, pinned too" },
  allow: { default: ALLOW, arg: "NAME", parse: parseList, repeatable: true,
    help: "if given, the client certificate's subject CN or a DNS/email subjectAltName must be one of these" },
  pin: { default: PIN, arg: "SHA256", parse: parsePins, repeatable: true,
    help: "if given, the client certificate's SHA-256 fingerprint must be one of these, and need not chain to --ca" },
  maxClients: { default: MAX_CLIENTS, arg: "N", parse: parseCount(1),
    help: "authorized clients at once; one more is refused" },
  maxPending: { default: MAX_PENDING, arg: "N", parse: parseCount(1),
    help: "connections at once in their TLS handshake, or refused and being closed; more are closed at once" },
  handshakeRate: { default: HANDSHAKE_RATE, arg: "N", parse: parseCount(1),
    help: "TLS connections a minute from one address; more are closed at once" },
  queue: { default: QUEUE, arg: "BYTES", parse: parseQueue,
    help: `how far one client may fall behind, at least ${MAX_FRAME} bytes; past it its oldest messages are skipped` },
  buffer: { default: BUFFER, arg: "BYTES", parse: parseBytesUpTo(MAX_BUFFER_DIR_GIB),
    help: "recent messages kept for clients that reconnect, also while none is connected; 0 turns resume off" },
  ...BUFFER_DIR_OPTIONS,
  heartbeat: { default: HEARTBEAT, arg: "SECONDS",
    parse: parseSecondsFrom(MIN_HEARTBEAT, "slpc hangs up on a flood of over 50 heartbeats a second"),
    help: "a client that has been sent nothing for this long gets a heartbeat" },
  stall: { default: STALL, arg: "SECONDS", parse: parseSeconds,
    help: "a client that takes no bytes this long while some wait is disconnected, unless it reports progress" },
  metrics: { default: METRICS, arg: "HOST:PORT", parse: optional(parseHostPort),
    help: "serve counters in Prometheus text format at http://HOST:PORT/metrics (off by default)" },
  handshakeTimeout: { default: HANDSHAKE_TIMEOUT, arg: "SECONDS", parse: parseSeconds,
    help: "a connection that has not sent its resume request by then is closed; a refused one after min(this, 2 s)" },
  batchWindow: { default: BATCH_WINDOW, arg: "MS", parse: parseBatchWindow,
    help: "while messages keep coming, what arrives within this many milliseconds goes to a client in one write; " +
      "the first after a quiet spell goes at once. 0: a write each event-loop turn" },
} satisfies Options;

/** A queue that cannot hold one frame would skip every message: refused at start. */
function parseQueue(text: string): number {
  const bytes = parseBytes(text, MAX_BUFFER_DIR_GIB * 1024 ** 3);
  if (bytes < MAX_FRAME) {
    throw new Error(`must be at least ${MAX_FRAME} bytes, the frame of a message of ${MAX_MESSAGE}`);
  }
  return bytes;
}

/** Milliseconds, 0 or more, at most MAX_BATCH_WINDOW_MS. */
function parseBatchWindow(text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) > MAX_BATCH_WINDOW_MS) {
    throw new Error(`expected milliseconds from 0 to ${MAX_BATCH_WINDOW_MS}, like 0.5`);
  }
  return Number(text);
}

const log = logger("slps");
let options: Values<typeof OPTIONS>;
let tls: TlsFiles;
let buffers: BufferChoice;
let inputAddresses: NamedInput[];
try {
  const parsed = parseOptions("slps", OPTIONS, process.argv.slice(2), process.env);
  if (parsed === "help") {
    process.stdout.write(
      helpText("slps", "Streams this server's syslog to slpc clients over mutual TLS 1.3.", OPTIONS),
    );
    process.exit(0);
  }
  if (parsed === "version") {
    process.stdout.write(`slps ${packageJson.version}\n`);
    process.exit(0);
  }
  options = parsed;
  tls = loadFiles();
  const given = (key: string) => originOf(options, key) !== undefined;
  inputAddresses = chooseInputs(options.udp, options.input, { udp: given("udp"), udpBuffer: given("udpBuffer") });
  await resolveInputs(inputAddresses, lookup);
  await mustResolve("listen", options.listen, lookup);
  if (options.metrics) await mustResolve("metrics", options.metrics, lookup);
  buffers = chooseBuffer(options, log, () => scheduleFlush());
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  log(error.message);
  process.exit(2);
}
const { listen: listenAddress } = options;
/** Who may receive logs, beyond a certificate that chains to --ca; the CRLs come with each listener. */
const policy = { pins: options.pin, allow: options.allow, issuer: options.issuer, maxClients: options.maxClients };

/**
 * The certificate, key, CA and CRL files. Who pins client certificates needs no CA: then a missing
 * default CA file is fine.
 */
function loadFiles(): TlsFiles {
  const pinsOnly = options.pin.size > 0 && options.ca === CA && !fs.existsSync(CA);
  return loadTlsFiles({ ...options, ca: pinsOnly ? undefined : options.ca });
}

/** How long a connection may stay in each phase; a refused one gets min(--handshake-timeout, 2 s) to close. */
const phaseLimits = {
  handshakeMs: options.handshakeTimeout * 1000,
  stallMs: options.stall * 1000,
  closingMs: Math.min(options.handshakeTimeout, 2) * 1000,
};

// ---- State: everything slps keeps between events, in one place. The sections below read and change it.

/** The run's id (a client that sees another knows its buffer is gone), the buffer, --queue as it follows from it. */
const { serverId, store: resumeBuffer, queue: queueLimit } = buffers;
const startedAt = Date.now();
const counters = { connections: 0, refused: 0 };
/**
 * What the clients' filters read of each message, parsed once for all of them in a fixed number of
 * slots. Nothing is parsed while no client filters, so the path of a message to clients without
 * filters is what it was.
 */
const parseCache = new ParseCache(resumeBuffer);

// A connection is in exactly one phase (lib/phases.ts), held in that phase's set, and each phase
// has a deadline (see `deadlineOf`).

/** One TLS connection, from its first byte to its close; once authorized, a client (lib/server_numbers.ts). */
interface Client extends ClientState {
  /** Changed only by `enter`. "closed" is the end: in no set, with no timer. */
  phase: Phase | "closed";
  /** When the TCP connection was accepted: handshake and resume request are due --handshake-timeout later. */
  openedAt: number;
  /** Ends the current phase when it overstays. */
  deadline?: Timer;
  deframer: Deframer;
  /** When it last said how far it delivered (`delivered`): a sign of life. */
  progressAt: number;
  /** Control messages it may still send: MAX_CONTROLS_PER_SECOND. */
  controls: TokenBucket;
}

const connections: Record<Phase, Set<Socket<Client>>> = {
  handshaking: new Set(),
  resuming: new Set(),
  streaming: new Set(),
  closing: new Set(),
};

/**
 * Connections that take a --max-pending slot: not authorized yet, or refused and on their way
 * out. Derived, never counted by hand, so that no path through the callbacks can leak a slot.
 */
const pending = () => connections.handshaking.size + connections.closing.size;
/** Clients past the certificate checks, counted against --max-clients. */
const authorized = () => connections.resuming.size + connections.streaming.size;

// Before authentication nothing may be cheap for an attacker: few handshakes at once, few per
// address. Refusals for these are counted and logged once a second, not once per connection.
const handshakesBySource = new HandshakeLimiter(options.handshakeRate, 60_000);
const floodRefusals = { pending: 0, rate: 0, full: 0, reset: 0 };

// Frames are written at the end of an event-loop turn, so that a burst of datagrams becomes a few
// large TLS writes instead of one small write per message; and while messages keep coming, at most
// once per --batch-window, so that each write, and each wake-up of the client, carries more.
/** A flush of every client is due at the end of this turn. */
let flushThisTurn = false;
/** A flush waits for the window to pass (or for a datagram that comes after it has). */
let flushTimer: Timer | undefined;
let lastFlushAt = Number.NEGATIVE_INFINITY;
let announceScheduled = false;

// ---- A connection's life: the handlers Bun calls, in the order it calls them; then the phases and
// their deadlines, the certificate checks, and the protocol.

/**
 * The handlers of one TLS connection, in the order Bun calls them: open (a flood is refused
 * before any work), handshake (the certificate checks), data (the resume request, then progress),
 * drain, close. `crls` are the listener's --crl, which refusal() checks pinned certificates against.
 */
function clientHandlers(crls: RevocationList[]): SocketHandler<Client> {
  return {
    open(socket) {
      counters.connections++;
      const host = socket.remoteAddress;
      const now = performance.now();
      // A connection reset before this callback ran has no address left: nobody to serve.
      const full = pending() >= options.maxPending;
      const verdict = host === undefined ? "reset" : full ? "pending" : handshakesBySource.allow(host, now);
      if (verdict !== "allowed") {
        floodRefusals[verdict]++;
        if (verdict !== "reset") counters.refused++;
        socket.terminate();
        return;
      }
      socket.data = {
        remote: formatAddress({ host: host!, port: socket.remotePort }),
        phase: "handshaking",
        openedAt: now,
        progressAt: now,
        controls: new TokenBucket(MAX_CONTROLS_PER_SECOND, MAX_CONTROLS_PER_SECOND, now),
        deframer: new Deframer(CLIENT_MAX_MESSAGE),
        stream: new ClientStream(resumeBuffer, queueLimit, now),
        droppedTotal: 0,
      };
      enter(socket, "handshaking");
    },
    handshake(socket, success, error) {
      if (socket.data?.phase !== "handshaking") return;
      // Bun may report success for a certificate that failed verification; refusal() checks `authorized` too.
      const certificate = socket.getPeerX509Certificate();
      const handshake = { certificate, success, authorized: socket.authorized, error };
      const why = refusal(handshake, { ...policy, crls }, authorized(), Date.now());
      if (why) {
        counters.refused++;
        log(`refused ${socket.data.remote}: ${why}`);
        return goodbye(socket);
      }
      Object.assign(socket.data, clientIdentity(socket.data.remote, certificate));
      socket.setKeepAlive(true, 30_000);
      enter(socket, "resuming");
      log(`client ${socket.data.name} connected (${authorized()} in all)`);
      socket.data.stream.control(serverHello(serverId, options.heartbeat, resumeBuffer));
      flush(socket);
    },
    data(socket, chunk) {
      const phase = socket.data?.phase;
      if (phase !== "resuming" && phase !== "streaming") return;
      const { deframer } = socket.data;
      for (const frame of deframer.push(chunk)) {
        if (!frame.control) return refuseProtocol(socket, "clients may send control messages only");
        if (!socket.data.controls.take(performance.now())) {
          return refuseProtocol(socket, `over ${MAX_CONTROLS_PER_SECOND} control messages in a second`);
        }
        onControlFrame(socket, frame.body);
        if (socket.data.phase === "closing" || socket.data.phase === "closed") return;
      }
      if (deframer.error) refuseProtocol(socket, deframer.error);
    },
    drain(socket) {
      const phase = socket.data?.phase;
      if (phase === "resuming" || phase === "streaming") flush(socket);
    },
    close(socket, error) {
      if (socket.data) enter(socket, "closed", error ? reason(error) : undefined);
    },
    error(socket, error) {
      log(`connection ${socket.data?.remote ?? "?"}: ${peerText(reason(error))}`);
    },
  };
}

/**
 * Moves a connection into `phase`: the one place that changes its phase, its set and its
 * deadline. Entering "closed" twice (our own terminate, then Bun's close) is one close.
 */
function enter(socket: Socket<Client>, phase: Phase | "closed", why?: string): void {
  const client = socket.data;
  if (client.phase === "closed") return;
  if (client.phase === "streaming") intake.clientLeaves(client.stream);
  connections[client.phase].delete(socket);
  clearTimeout(client.deadline);
  client.phase = phase;
  if (phase === "closed") {
    if (client.name === undefined) return;
    const dropped = client.droppedTotal + client.stream.takeDropped();
    const skippedInAll = dropped ? `, ${dropped} messages skipped in all` : "";
    const filtered = client.filter ? `, ${client.stream.filtered} messages filtered out` : "";
    log(`client ${client.name} disconnected${why ? `: ${why}` : ""}${skippedInAll}${filtered}`);
    return;
  }
  connections[phase].add(socket);
  if (phase === "streaming") setImmediate(() => intake.clientStreams());
  const now = performance.now();
  const ms = Math.min(Math.max(0, deadlineOf(client, phase, now)), MAX_TIMER_MS);
  client.deadline = setTimeout(() => overstayed(socket, phase), ms);
}

/** Milliseconds the connection may stay in its phase from now. */
function deadlineOf(client: Client, phase: Phase, now: number): number {
  return phaseDeadline(phase, { ...client, ...client.stream }, phaseLimits, now);
}

/** A connection's phase deadline passed. */
function overstayed(socket: Socket<Client>, phase: Phase): void {
  const client = socket.data;
  if (client.phase !== phase) return;
  // Not yet: the deadline lay beyond the longest timer, or a stream took bytes (or said it delivered some) since.
  if (phase !== "closing" && deadlineOf(client, phase, performance.now()) > 0) return enter(socket, phase);
  switch (phase) {
    case "handshaking":
    case "resuming":
      counters.refused++;
      log(`refused ${client.remote}: no TLS handshake and resume request within ${options.handshakeTimeout} s`);
      return cut(socket);
    case "streaming":
      log(`client ${client.name}: took no bytes for ${options.stall} s (--stall); closing`);
      return cut(socket);
    case "closing":
      return cut(socket); // the peer never closed its side
  }
}

/** Closes at once, without waiting for the peer. */
function cut(socket: Socket<Client>): void {
  socket.terminate();
  enter(socket, "closed");
}

/**
 * Sends `last` if given, then our FIN, and gives the peer until the closing deadline to close
 * its side. Not `end()`: on a TLS socket whose peer never answers, Bun's `end()` keeps the
 * connection open for good, and a `terminate()` after it no longer closes it.
 */
function goodbye(socket: Socket<Client>, last?: Uint8Array): void {
  enter(socket, "closing");
  if (last) socket.write(last);
  socket.shutdown();
}

/** A control message from an authorized client: `resume` once, then `progress` as often as it likes. */
function onControlFrame(socket: Socket<Client>, body: Uint8Array): void {
  const client = socket.data;
  let message: ControlMessage;
  try {
    message = parseControl(body);
  } catch (error) {
    return refuseProtocol(socket, `bad control message: ${reason(error)}`);
  }
  if (message.type === "progress" && client.phase === "streaming") {
    // A sign of life: a client whose own output is slow stops reading, but it is not dead (see deadlineOf).
    client.delivered = message.last;
    client.progressAt = performance.now();
    return;
  }
  if (message.type === "resume" && client.phase === "streaming") return refuseProtocol(socket, "resume sent twice");
  if (message.type !== "resume") return refuseProtocol(socket, `unexpected ${message.type} message`);
  const answer = answerResume(message, { id: serverId, first: resumeBuffer.first, next: resumeBuffer.next });
  if ("refused" in answer) return refuseProtocol(socket, answer.refused);
  const { filter, start } = answer;
  if (filter) {
    client.filter = filter;
    client.stream.filterWith(parseCache.selector(filter));
    log(`client ${client.name} filters: ${describeFilter(filter)}`);
  }
  // The reason may hold the server id the client sent.
  const lost = `${start.lost ?? "unknown number of"} messages lost (${peerText(start.reason ?? "")})`;
  const from = start.lost === undefined ? "" : `, ${lost}`;
  log(`client ${client.name} starts at #${start.seq}${message.server === undefined ? " (new)" : ""}${from}`);
  client.stream.start(start);
  client.stream.keepWithinLimit();
  enter(socket, "streaming");
  flush(socket);
}

/** Tells the peer why (unless that would cut a frame in half), and closes. The why may quote the peer. */
function refuseProtocol(socket: Socket<Client>, message: string): void {
  log(`client ${socket.data.name}: ${peerText(message, 300)}; closing`);
  if (socket.data.stream.midWrite) return cut(socket);
  goodbye(socket, encodeControl({ type: "error", message }));
}

function flush(socket: Socket<Client>): void {
  const { stream } = socket.data;
  stream.flush((data) => socket.write(data), performance.now());
  // A filtering stream looks at MAX_SCAN messages a write: the rest in a later turn, after the other clients'.
  if (!stream.idle && !stream.midWrite) scheduleFlush();
  if (stream.unannouncedPosition) scheduleAnnounce();
}

/** Soon, each filtering client that left-out messages moved on is told where it stands. */
function scheduleAnnounce(): void {
  if (announceScheduled) return;
  announceScheduled = true;
  setTimeout(() => {
    announceScheduled = false;
    for (const socket of connections.streaming) {
      if (!socket.data.stream.unannouncedPosition) continue;
      socket.data.stream.announce();
      flush(socket);
    }
  }, ANNOUNCE_MS);
}

// ---- Messages: each message an input takes goes into the resume buffer, and from there to every
// streaming client.

/** Where every input hands its messages: the resume buffer, and from there every streaming client. */
const intake = new BufferIntake(resumeBuffer, options.buffer, connections.streaming, scheduleFlush);

/**
 * Flushes every client at the end of this turn, unless the last flush was less than
 * --batch-window ago: then when it has passed. Bun's timers wait a millisecond at the least, so
 * a window shorter than that ends with the first datagram that arrives after it, or with the timer.
 */
function scheduleFlush(): void {
  if (flushThisTurn || connections.streaming.size === 0) return;
  const wait = lastFlushAt + options.batchWindow - performance.now();
  if (wait > 0) {
    flushTimer ??= setTimeout(flushAll, wait);
    return;
  }
  clearTimeout(flushTimer);
  flushTimer = undefined;
  flushThisTurn = true;
  setImmediate(flushAll);
}

function flushAll(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  flushThisTurn = false;
  lastFlushAt = performance.now();
  for (const socket of connections.streaming) flush(socket);
}

// Once a second: report refusals and skipped messages (a flood or a stalled client would
// otherwise log once per connection or message), and send heartbeats on idle connections.
function housekeeping(): void {
  const now = performance.now();
  const { pending: busy, rate, full, reset } = floodRefusals;
  if (busy > 0) log(`refused ${busy} connections: ${options.maxPending} handshakes already pending (--max-pending)`);
  const perAddress = `over ${options.handshakeRate} a minute from one address (--handshake-rate)`;
  if (rate > 0) log(`refused ${rate} connections: ${perAddress}`);
  if (full > 0)
    log(`refused ${full} connections: the --handshake-rate table is full (${MAX_HANDSHAKE_SOURCES} addresses)`);
  if (reset > 0) log(`closed ${reset} connections that were reset before they could be served`);
  floodRefusals.pending = floodRefusals.rate = floodRefusals.full = floodRefusals.reset = 0;
  for (const input of inputs) input.housekeeping(now);
  for (const socket of connections.streaming) {
    const client = socket.data;
    const dropped = client.stream.takeDropped();
    if (dropped > 0) {
      client.droppedTotal += dropped;
      const skippedNow = `skipped ${dropped} oldest messages (${client.droppedTotal} in all)`;
      log(`client ${client.name}: more than ${queueLimit} bytes behind, ${skippedNow}`);
    }
    if (client.stream.idle && now - client.stream.lastWrite >= options.heartbeat * 1000) {
      // A filtering client told where it stands does not scan the same messages again after a reconnect.
      if (client.stream.unannouncedPosition) client.stream.announce();
      else client.stream.control({ type: "heartbeat" });
      flush(socket);
    }
  }
}
setInterval(housekeeping, Math.min(1000, options.heartbeat * 500)).unref();

// ---- Sockets: the TLS listener, the inputs, and the metrics server if asked for.

/** The TLS listener with the given certificates; SIGHUP replaces it, while its connections stay. */
function listen(files: TlsFiles): TCPSocketListener<Client> {
  // The TLS layer checks CRLs only for certificates it verifies; pinned ones refusal() checks against these.
  const crls = (files.crl ?? []).map(readCrl);
  return Bun.listen<Client>({
    hostname: listenAddress.host,
    port: listenAddress.port,
    tls: {
      cert: files.cert,
      key: files.key,
      ca: files.ca,
      crl: files.crl,
      requestCert: true,
      secureOptions: TLS13_ONLY,
      // With pins, a certificate need not chain to --ca: the TLS layer must let it through to refusal().
      rejectUnauthorized: policy.pins.size === 0,
    },
    socket: clientHandlers(crls),
  });
}

let listener: TCPSocketListener<Client>;
try {
  listener = listen(tls);
} catch (error) {
  log(bindFailure("listen", listenAddress, error));
  process.exit(1);
}

let inputs: Input[] = []; // housekeeping may run before they are open
try {
  const { udpBuffer, inputConnections: maxConnections, inputTimeout } = options;
  const settings = { intake, log, udpBuffer, maxConnections, timeoutMs: inputTimeout * 1000, entry: import.meta.url };
  inputs = await openInputs(inputAddresses, settings);
} catch (error) {
  log(reason(error));
  process.exit(1);
}

if (options.metrics) {
  try {
    Bun.serve({
      hostname: options.metrics.host,
      port: options.metrics.port,
      fetch: (request) =>
        new URL(request.url).pathname === "/metrics"
          ? new Response(prometheusText(serverMetrics(numbers())), {
              headers: { "content-type": "text/plain; version=0.0.4" },
            })
          : new Response("slps serves /metrics only\n", { status: 404 }),
    });
  } catch (error) {
    log(bindFailure("metrics", options.metrics, error));
    process.exit(1);
  }
}

// ---- For operators: expiry and CRL warnings, and the numbers SIGUSR1 prints and /metrics serves.

/** Our certificate, and the CRLs, which refuse every client under their CA once they run out. */
function warnIfExpiring(): void {
  const now = new Date();
  const warning = expiryWarning("cert", tls.leaf, now);
  if (warning) log(warning);
  if (options.crl && tls.crl) for (const line of crlExpiryWarnings("crl", options.crl, tls.crl, tls.ca, now)) log(line);
}
warnIfExpiring();
setInterval(warnIfExpiring, 86_400_000).unref();

/** OpenSSL checks the CRLs of the whole chain: a CA in --ca without one in --crl has every client under it refused. */
function warnIfCrlMissing(files: TlsFiles): void {
  const warning = options.crl && files.crl && files.ca && missingCrlWarning(options.crl, files.ca, files.crl);
  if (warning) log(warning);
}
warnIfCrlMissing(tls);

/** What SIGUSR1 prints and /metrics serves. */
function numbers() {
  const state = { server: serverId, startedAt, now: Date.now(), counters, buffer: resumeBuffer, connections };
  const inputNumbers = inputs.map((input) => input.numbers());
  return serverSnapshot({ ...state, inputs: inputNumbers, bufferLimit: options.buffer, disk: buffers.disk() });
}

// ---- Signals: SIGHUP rereads the certificates, SIGUSR1 prints the numbers, SIGINT and SIGTERM stop.

/** SIGHUP: reread the certificate, key and CA. New connections use them; connected clients stay. */
function reload(): void {
  let files: TlsFiles;
  try {
    files = loadFiles();
  } catch (error) {
    log(`SIGHUP: ${reason(error)}; keeping the certificates in force`);
    return;
  }
  // Bun cannot swap a listener's certificates, so a new listener takes the port. Stopping the old
  // one first leaves the port closed for a moment, which a connecting client retries through.
  listener.stop(false);
  try {
    listener = listen(files);
  } catch (error) {
    log(`SIGHUP: ${bindFailure("listen", listenAddress, error)}; keeping the certificates in force`);
    try {
      listener = listen(tls);
    } catch (again) {
      // Something else took the port in that moment: without a listener slps serves nobody.
      log(`SIGHUP: ${bindFailure("listen", listenAddress, again)}; exiting`);
      process.exit(1);
    }
    return;
  }
  tls = files;
  const crl = options.crl ? ` and --crl ${options.crl}` : "";
  log(`SIGHUP: reloaded --cert ${options.cert}, --key ${options.key}, --ca ${options.ca}${crl}`);
  warnIfExpiring();
  warnIfCrlMissing(files);
}

function shutdown(signal: string): void {
  log(`${signal}: closing ${authorized()} clients and exiting`);
  for (const input of inputs) input.close();
  listener.stop(true);
  buffers.close();
  process.exit(0);
}

process.on("SIGHUP", reload);
process.on("SIGUSR1", () => process.stderr.write(`${JSON.stringify(numbers())}\n`));
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));

// Said last, once the signals have their handlers: whoever signals slps on this line finds them.
const served = formatAddress({ host: listenAddress.host, port: listener.port });
const receiving = inputs.map((input) => input.name.replace("://", " ").replace(":/", " /")).join(", ");
log(`server id ${serverId}: receiving syslog on ${receiving}, serving clients on tls ${served}`);
