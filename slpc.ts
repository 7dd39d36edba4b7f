// slpc: the client half of slp. It dials the server (the home machine has a dynamic address
// and cannot be dialled), proves itself with a client certificate, and writes every message
// the server streams into the local syslog daemon over UDP, or to stdout.
//
// The connection drops whenever the home address changes, often silently. So slpc tells the
// server the number of the last message it delivered and gets everything after it, treats a
// connection that has been silent too long as dead, and retries with backoff until it is back.
//
// One slpc follows any number of servers, each with its own connection, resume point and filter.
// Their messages meet only at the output, which takes them in turns: a server that is down,
// hostile or replaying a backlog delays no other.

import type { LookupAddress } from "node:dns";
import { lookup } from "node:dns/promises";
import { checkServerIdentity } from "node:tls";
import type { Socket } from "bun";
import {
  type Address,
  addressKey,
  BASE_VERSION,
  type ControlMessage,
  colorChoice,
  Deframer,
  describeFilter,
  encodeControl,
  encodeFrame,
  expiryWarning,
  Fifo,
  type Filter,
  type ForwardAddress,
  filterToWire,
  formatAddress,
  formatForwardAddress,
  formatJson,
  formatPretty,
  formatRaw,
  gapNotice,
  gapsSummary,
  helpText,
  isNetworkError,
  loadTlsFiles,
  logger,
  MAX_MESSAGE,
  MAX_SEQ,
  messagesAsLines,
  nextBackoff,
  type Options,
  type OutputFormat,
  optional,
  PROTOCOL_VERSION,
  parseColorFlag,
  parseControl,
  parseCount,
  parseFacilities,
  parseForwardAddress,
  parseGroupedOptions,
  parseHostPortList,
  parseHosts,
  parseMatch,
  parseOutputFormat,
  parsePrograms,
  parseRequired,
  parseSeconds,
  parseSeverity,
  parseSwitch,
  parseSyslog,
  parseText,
  RelpSession,
  type ResumePoint,
  type ResumePoints,
  reason,
  speaksVersion,
  TLS13_ONLY,
  type TlsFiles,
  TokenBucket,
  UnixDatagramSender,
  type UnsaidGaps,
  UsageError,
  type Values,
  VERSIONS,
  type WireFilter,
} from "./lib.ts";
import packageJson from "./package.json" with { type: "json" };
import { FIRST_DELIVERY_POLL_MS, FIRST_DELIVERY_WATCH_MS, STATE_WRITE_MS, StateStore } from "./slpc/state.ts";

// ---- Constants. Defaults first: each has a flag and an environment variable, named after its key
// in OPTIONS below: deadAfter is --dead-after and SLPC_DEAD_AFTER (see --help).

const SERVER = ""; // HOST[:PORT] of slps, or several, comma-separated; required
const PORT = 6514;
const CERT = "certs/client.pem";
const KEY = "certs/client.key";
const CA = "certs/ca.pem"; // the server certificate must chain to this; "system" for the system trust store
const CRL = ""; // if set, PEM revocation lists: a server certificate listed there is refused
const SERVERNAME = ""; // name the server certificate must carry; empty: the host of --server (one server only)
const FORWARD = "127.0.0.1:514"; // the local syslog daemon: UDP; tcp://, relp:// or unix:PATH pick another transport
const STDOUT = "0"; // 1: print messages instead of forwarding them, pretty on a terminal and raw otherwise
const FORMAT = ""; // raw, json or pretty: print messages in that form instead of forwarding them
const COLOR = "auto"; // pretty's colours: always, never, or auto (on a terminal, unless NO_COLOR is set)
const PREFIX = "0"; // 1: each line on stdout begins with the server it came from
const STATE = ""; // file that keeps the resume point of each server across restarts; empty: kept in memory only
const FORWARD_RATE = "50000"; // messages a second at most to the local syslog daemon; 0 for no limit
const REPLAY = "0"; // 1: a client with no resume point starts with everything the server holds
const DEAD_AFTER = "45"; // seconds without a byte from the server before the connection counts as dead
const HANDSHAKE_TIMEOUT = "10"; // seconds from dialling to the server's start: TCP connect, TLS handshake, hello
const RETRY_MIN = "1"; // seconds before the first reconnect attempt
const RETRY_MAX = "60"; // the longest wait between attempts
// Filters, applied by the server so that what they leave out never crosses the link; empty: off. Given
// after a --server, they apply to that server alone, instead of these.
const FACILITY = ""; // comma-separated facilities, e.g. auth,authpriv,local0
const SEVERITY = ""; // this level and more severe, e.g. warning
const PROGRAM = ""; // comma-separated programs (RFC 3164 tag, RFC 5424 APP-NAME), e.g. sshd,sudo
const HOST = ""; // comma-separated HOSTNAMEs as the messages carry them
const MATCH = ""; // text the message must contain, byte for byte (not a pattern)

/** A server sends a heartbeat after seconds of silence; many in one second are an attack, not a protocol. */
const MAX_HEARTBEATS_PER_SECOND = 50;

/** A server far behind may report a gap a write: after one gap line, the next comes this much later, summing. */
const GAP_LINE_MS = 1000;

/** A connection that lasted this long counts as having stayed up: the next retry waits RETRY_MIN again. */
const STAYED_UP_SECONDS = 10;

/** Bounds on the interval of progress messages, whatever heartbeat the server names. */
const MIN_PROGRESS_MS = 100;
const MAX_PROGRESS_MS = 60_000;

/** The longest delay a timer takes: setTimeout fires at once for anything longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** While this many messages, or bytes of them, from one server wait to be handed on, that server is not read. */
const PENDING_HIGH = 4096;
const PENDING_HIGH_BYTES = 4 * 1024 * 1024;
/**
 * What all the servers' inboxes hold at most together: each server's bound is its share of this,
 * at most the one above, so that memory does not grow with the number of servers.
 */
const INBOXES_HIGH = 4 * PENDING_HIGH;
const INBOXES_HIGH_BYTES = 4 * PENDING_HIGH_BYTES;
/** Messages handed to the kernel in one sendmmsg(2) call. */
const SEND_BATCH = 64;
/** While sends to --forward fail, how long before the messages kept are tried again. */
const FORWARD_RETRY_MS = 1000;
/** How long a datagram goes unanswered before it counts as taken: an ICMP refusal takes far less, even on a LAN. */
const UDP_SILENCE_MS = 100;
/**
 * Bytes of datagrams waiting out UDP_SILENCE_MS at most, before no server is read. A bound on
 * memory only: a bound on their number would cap the rate at that number every 100 ms (4,096 of
 * them did: 41,000 messages a second, and a queue of seconds behind it at 50,000).
 */
const UNHEARD_HIGH_BYTES = 16 * 1024 * 1024;
/** RELP messages in flight at most: librelp's default window, so acknowledgements do not cap throughput. */
const RELP_WINDOW = 128;
/** Seconds between attempts to reach the daemon again for tcp:// and relp://, doubling from the first. */
const DAEMON_RETRY_MIN = 0.1;
const DAEMON_RETRY_MAX = 5;
/** unix:: how long before a full queue of the daemon's is tried again. */
const UNIX_FULL_RETRY_MS = 5;

/** How long SIGTERM waits for stdout to take what was written to it. */
const STOP_WAIT_MS = 5000;

// ---- Options, and what they name: certificates, the resume point on disk and the forward address.
// Anything wrong with them is one line and exit 2, before a socket opens.

// biome-ignore format: a table, one option a row (its help on a second line when it is long)
const OPTIONS = {
  server: { default: SERVER, arg: "HOST[:PORT]", parse: optional((text: string) => parseHostPortList(text, PORT)),
    help: `an slps server to follow, port ${PORT} when omitted (required). Repeat it to follow several ` +
      "(comma-separated in the variable). Filter flags after a --server are that server's alone; " +
      "those before the first --server apply to every server without its own" },
  cert: { default: CERT, arg: "FILE", parse: parseRequired, help: "client certificate chain, PEM" },
  key: { default: KEY, arg: "FILE", parse: parseRequired, help: "private key of --cert, PEM" },
  ca: { default: CA, arg: "FILE", parse: parseRequired,
    help: "CA that the server certificate must chain to, PEM; 'system' for the system trust store" },
  crl: { default: CRL, arg: "FILE", parse: optional(parseText),
    help: "PEM file of CRLs; a server certificate listed there is refused" },
  servername: { default: SERVERNAME, arg: "NAME", parse: parseText,
    help: "name the server certificate must carry (default: the host of --server); only with a single server" },
  forward: { default: FORWARD, arg: "ADDRESS", parse: parseForwardAddress,
    help: "local syslog daemon to send each message to: HOST:PORT or udp://HOST:PORT (one datagram each), " +
      "tcp://HOST:PORT (octet-counted), relp://HOST:PORT (acknowledged), unix:PATH (a datagram socket, /dev/log)" },
  forwardRate: { default: FORWARD_RATE, arg: "N", parse: parseCount(0),
    help: "messages a second at most to --forward, so that a replay does not overflow a UDP buffer; " +
      "tcp://, relp:// and unix: push back by themselves and need it less; 0: no limit" },
  stdout: { default: STDOUT, parse: parseSwitch,
    help: "write each message to stdout instead: --format pretty on a terminal, raw otherwise" },
  format: { default: FORMAT, arg: "raw|json|pretty", parse: optional(parseOutputFormat),
    help: "write each message to stdout instead, one line (raw: as it came, its LF as \\n), JSON, or columns" },
  color: { default: COLOR, arg: "always|never|auto", parse: parseColorFlag,
    help: "colour pretty's lines by severity: auto on a terminal, unless NO_COLOR is set" },
  prefix: { default: PREFIX, parse: parseSwitch,
    help: "begin each raw or pretty line on stdout with the server it came from, HOST:PORT (JSON has it as 'from')" },
  state: { default: STATE, arg: "FILE", parse: parseText,
    help: "keep the resume point of each server in this file, so a restarted slpc loses nothing either" },
  replay: { default: REPLAY, parse: parseSwitch,
    help: "with no resume point yet, start with everything the server still holds instead of live" },
  deadAfter: { default: DEAD_AFTER, arg: "SECONDS", parse: parseSeconds,
    help: "a connection that delivered no bytes for this long is closed and dialled again" },
  handshakeTimeout: { default: HANDSHAKE_TIMEOUT, arg: "SECONDS", parse: parseSeconds,
    help: "a connection that has not reached the server's start (TCP, TLS, hello) by then is dialled again" },
  retryMin: { default: RETRY_MIN, arg: "SECONDS", parse: parseSeconds,
    help: "wait before the first reconnect attempt; it doubles up to --retry-max" },
  retryMax: { default: RETRY_MAX, arg: "SECONDS", parse: parseSeconds,
    help: "longest wait between reconnect attempts" },
  facility: { default: FACILITY, arg: "LIST", parse: optional(parseFacilities),
    help: "only messages of these facilities (auth,authpriv,local0 or codes); the server filters" },
  severity: { default: SEVERITY, arg: "LEVEL", parse: optional(parseSeverity),
    help: "only messages of this severity or more severe (warning, err, ...); the server filters" },
  program: { default: PROGRAM, arg: "LIST", parse: optional(parsePrograms),
    help: "only messages from these programs (RFC 3164 tag, RFC 5424 APP-NAME), case ignored; the server filters" },
  host: { default: HOST, arg: "LIST", parse: optional(parseHosts),
    help: "only messages with one of these HOSTNAMEs, case ignored; the server filters" },
  match: { default: MATCH, arg: "TEXT", parse: optional(parseMatch),
    help: "only messages whose text contains TEXT, byte for byte (not a pattern); the server filters" },
} satisfies Options;

/** The filter flags: after a --server, they apply to that server alone. */
const FILTER_KEYS = ["facility", "severity", "program", "host", "match"] as const;

/** A server to follow, and what to ask it for: everything, or what its filter lets through. */
interface ServerChoice {
  address: Address;
  filter?: Filter;
  wireFilter?: WireFilter;
}

const log = logger("slpc");
let options: Values<typeof OPTIONS>;
let tls: TlsFiles;
let choices: ServerChoice[];
/** The resume points in --state at start, by server (addressKey); empty for a new client. */
let stored: ResumePoints = new Map();
/** Servers (addressKey) whose point --state could not give: their first `start` reports an unknown gap. */
let unreadablePoints = new Set<string>();
/** The --state file, locked for slpc's life; undefined without --state. */
let stateStore: StateStore | undefined;
/**
 * --forward's host as an IP address (udp, tcp, relp): sendmmsg takes no names, the UDP socket must
 * be bound for its family, and a name is looked up once, at start.
 */
let forwardTo: Address & { family: 4 | 6 } = { host: "127.0.0.1", port: 514, family: 4 };
try {
  const argv = process.argv.slice(2);
  const parsed = parseGroupedOptions("slpc", OPTIONS, argv, process.env, "server", FILTER_KEYS);
  if (parsed === "help") {
    process.stdout.write(
      helpText(
        "slpc",
        "Receives the syslog of one or more servers from slps over mutual TLS 1.3 and writes it to the local " +
          "syslog daemon.\n\nFollowing several servers, each with its own filter:\n" +
          "  slpc --severity warning --server web.example.com --server db.example.com --program postgres\n" +
          "web gets warning and worse, db every message of postgres: a server followed by filter flags " +
          "has those alone, and one without has those before the first --server.",
        OPTIONS,
      ),
    );
    process.exit(0);
  }
  if (parsed === "version") {
    process.stdout.write(`slpc ${packageJson.version}\n`);
    process.exit(0);
  }
  options = parsed.values;
  if (options.format) options.stdout = true;
  if (options.prefix && !options.stdout)
    throw new UsageError("--prefix: only with --stdout or --format, not --forward");
  if (options.retryMax < options.retryMin)
    throw new UsageError(`--retry-max ${options.retryMax}: must not be below --retry-min ${options.retryMin}`);
  choices = chooseServers(parsed.groups);
  tls = loadTls();
  if (options.state) {
    // Locked for slpc's life; exit 2 now if the file cannot be written, and one in the old format is converted.
    stateStore = StateStore.open(options.state, {
      servers: choices.map((choice) => choice.address),
      newClientStart: newClientStart(),
      log,
      now: Date.now,
    });
    stored = stateStore.points;
    unreadablePoints = stateStore.unreadable;
  }
  if (!options.stdout && options.forward.transport !== "unix") forwardTo = await resolveForward(options.forward);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  log(error.message);
  process.exit(2);
}
const { forward } = options;
/** --forward in log lines: as the operator wrote it, and the address it resolved to when that differs. */
const forwardName =
  forward.transport === "unix"
    ? formatForwardAddress(forward)
    : (forward.transport === "udp" ? formatAddress(forward) : formatForwardAddress(forward)) +
      (forward.host === forwardTo.host ? "" : ` (${forwardTo.host})`);

/** How often the phase deadlines are checked (see the clock below): well within the shortest of them. */
const TICK_MS = Math.max(1, Math.min(1000, options.deadAfter * 250, options.handshakeTimeout * 250));

/**
 * Every --server with its filter: the filter flags that follow it, or when none do, those before
 * the first --server (or in the environment). Each server once; --servername only for a single one.
 */
function chooseServers(groups: Partial<Values<typeof OPTIONS>>[]): ServerChoice[] {
  const given = groups.length > 0 ? groups : [{ server: options.server }];
  const chosen: ServerChoice[] = [];
  const seen = new Set<string>();
  for (const group of given) {
    if (groups.length > 0 && group.server === undefined) throw new UsageError('--server "": expected HOST[:PORT]');
    // A server with filter flags of its own has those alone: nothing of the common filter mixes in.
    const own = FILTER_KEYS.some((key) => group[key] !== undefined);
    const values = own ? { ...options, ...Object.fromEntries(FILTER_KEYS.map((key) => [key, group[key]])) } : options;
    const addresses = group.server ?? [];
    const filter = filterOf(values, addresses.length > 0 ? `--server ${formatAddress(addresses[0]!)}: ` : "");
    for (const address of addresses) {
      if (seen.has(addressKey(address))) throw new UsageError(`--server ${formatAddress(address)}: named twice`);
      seen.add(addressKey(address));
      chosen.push({ address, ...filter });
    }
  }
  if (chosen.length === 0) throw new UsageError("--server: required: the slps server to follow (see --help)");
  if (chosen.length > 1 && options.servername) {
    const why = "with several servers, each server's certificate must carry the host --server names";
    throw new UsageError(`--servername ${options.servername}: only with a single --server; ${why}`);
  }
  return chosen;
}

/** What the filter flags in `values` ask a server for; nothing when none is set. */
function filterOf(values: Values<typeof OPTIONS>, where: string): Omit<ServerChoice, "address"> {
  const { facility, severity, program, host, match } = values;
  const criteria: Filter = { facilities: facility, severity, programs: program, hosts: host, match };
  for (const key of Object.keys(criteria) as (keyof Filter)[]) if (criteria[key] === undefined) delete criteria[key];
  if (Object.keys(criteria).length === 0) return {};
  try {
    return { filter: criteria, wireFilter: filterToWire(criteria) };
  } catch (error) {
    throw new UsageError(`${where}the filter is too large: ${reason(error)}`);
  }
}

function loadTls(): TlsFiles {
  const { cert, key, ca, crl } = options;
  return loadTlsFiles({ cert, key, ca: ca === "system" ? undefined : ca, crl });
}

/** Looked up once, at start: the local daemon does not move, and a name that does not resolve is a typo. */
async function resolveForward(address: ForwardAddress & Address): Promise<Address & { family: 4 | 6 }> {
  const shown = address.transport === "udp" ? formatAddress(address) : formatForwardAddress(address);
  let found: LookupAddress[];
  try {
    found = await lookup(address.host, { all: true });
  } catch (error) {
    throw new UsageError(`--forward ${shown}: cannot resolve ${address.host}: ${reason(error)}`);
  }
  // A name with both families is taken as IPv4, where syslog daemons listen by default.
  const chosen = found.find((entry) => entry.family === 4) ?? found[0];
  if (!chosen) throw new UsageError(`--forward ${shown}: ${address.host} has no address`);
  return { host: chosen.address, port: address.port, family: chosen.family === 6 ? 6 : 4 };
}

/** How a client without a resume point starts. */
function newClientStart(): string {
  return options.replay ? "with everything the server holds (--replay)" : "live";
}

// ---- State: everything slpc keeps between events, in one place. The sections below read and change it.

const startedAt = Date.now();

/** A message received and not yet handed on: the server it came from, and the run that numbered it. */
interface Waiting {
  message: Uint8Array;
  from: Upstream;
  server: string;
  seq: number;
}

/** A server slpc follows: its connection, where it stands, and what it sent that waits for the output. */
interface Upstream extends ServerChoice {
  /** --server as HOST:PORT: how log lines, SIGUSR1, --prefix and JSON's `from` name it. */
  target: string;
  /** Its key in --state. */
  key: string;
  /** The name its certificate must carry. */
  serverName: string;
  /** The connection being dialled, set up or used; undefined while waiting to dial again. */
  connection?: Connection;
  /** Attempts in a row that did not stay up: the wait before the next one grows with them. */
  failures: number;
  retryTimer?: Timer;
  /** The server run followed and the number of its next message, from its latest `start` on. */
  following?: { server: string; next: number };
  /** The last message handed on, to the daemon or to stdout, and the server run it came from. */
  handedOn?: ResumePoint;
  /** Set when --state, or its entry for this server, was unreadable at start: the first `start` reports a gap. */
  stateUnreadable: boolean;
  /** Messages received and not yet given to the output, oldest first, weighed in bytes. */
  inbox: Fifo<Waiting>;
  /** When its last gap line was said, and the gaps since that wait for the next (see reportGap). */
  gapLines: { saidAt: number; unsaid?: UnsaidGaps; timer?: Timer };
  counters: Record<
    "received" | "receivedBytes" | "delivered" | "lost" | "unknownGaps" | "connects" | "reconnects",
    number
  >;
}

const upstreams: Upstream[] = choices.map((choice) => ({
  ...choice,
  target: formatAddress(choice.address),
  key: addressKey(choice.address),
  serverName: options.servername || choice.address.host,
  failures: 0,
  handedOn: stored.get(addressKey(choice.address)),
  stateUnreadable: unreadablePoints.has(addressKey(choice.address)),
  inbox: new Fifo<Waiting>((entry) => entry.message.length),
  gapLines: { saidAt: Number.NEGATIVE_INFINITY },
  counters: { received: 0, receivedBytes: 0, delivered: 0, lost: 0, unknownGaps: 0, connects: 0, reconnects: 0 },
}));
/**
 * How many messages, and bytes of them, may wait in one server's inbox before it is not read: an
 * equal share of INBOXES_HIGH, at least a batch and one message of the longest.
 */
const inboxHigh = Math.max(SEND_BATCH, Math.min(PENDING_HIGH, Math.floor(INBOXES_HIGH / upstreams.length)));
const inboxHighBytes = Math.max(
  MAX_MESSAGE,
  Math.min(PENDING_HIGH_BYTES, Math.floor(INBOXES_HIGH_BYTES / upstreams.length)),
);
/** Resume points in --state of servers not followed now: kept, so that leaving one out for a while loses nothing. */
const otherPoints: ResumePoints = new Map([...stored].filter(([key]) => !upstreams.some((u) => u.key === key)));
/**
 * Messages given to the output and not yet sent, oldest first: a few at a time, taken from the
 * servers' inboxes in turns (see `refill`), and those that a refusal put back.
 */
const pending: Waiting[] = [];
/** The inbox that `refill` takes from next. */
let nextInbox = 0;
/**
 * Datagrams sent to --forward in the last UDP_SILENCE_MS. UDP gives no receipt, but a daemon that
 * is not listening answers with ICMP "port unreachable", which comes back as an error event:
 * until this long has passed without one, a datagram is not counted as handed on.
 */
const unheard = new Fifo<Waiting & { sentAt: number }>((entry) => entry.message.length);
/** relp://: messages sent on the RELP session and not yet acknowledged by the daemon, oldest first. */
const unacknowledged: Waiting[] = [];
/** Comes back to hand on the datagrams in `unheard` once they have gone unanswered long enough. */
let heardTimer: Timer | undefined;
/** Writes to stdout that it has not confirmed taking, oldest first, each with the messages it holds. */
const unconfirmed: Waiting[][] = [];
/** Wakes sendPending when --forward-rate allows the next message, or to try again after a failed send. */
let sendTimer: Timer | undefined;
/** True after a send to --forward failed, until one succeeds: no server is read meanwhile. */
let forwardFailing = false;
/** Failed sends to --forward since the last report, and when that was. */
let forwardErrors = 0;
let forwardErrorLogged = -Infinity;
/** Set when a failure of --forward was logged, until a connection to the daemon says it is back. */
let forwardFailureSaid = false;
/** True while stdout has not taken everything written to it: no server is read meanwhile. */
let stdoutFull = false;
/** Set by SIGTERM and SIGINT. */
let stopping = false;
/** When the clock of the phase deadlines last ticked: a tick much later than due means slpc was frozen. */
let lastTick = performance.now();
/** Paces the sends to --forward (--forward-rate); undefined for no limit. */
const forwardBucket =
  options.forwardRate > 0
    ? new TokenBucket(options.forwardRate, Math.max(1, options.forwardRate / 100), performance.now())
    : undefined;

/**
 * Where to resume `u`: after the last message handed on; or, when none waits, at its latest
 * start, which may have moved past it (a gap, a server restart).
 */
function resumePoint(u: Upstream): ResumePoint | undefined {
  // Held messages go out in order: the point is just before the oldest one still held, which
  // also holds for a new client whose output has taken nothing yet.
  const oldest = oldestHeld(u);
  if (oldest) return { server: oldest.server, last: oldest.seq - 1 };
  return u.following ? { server: u.following.server, last: u.following.next - 1 } : u.handedOn;
}

/** The oldest message of `u` that slpc holds and has not handed on: written to stdout, sent, or waiting. */
function oldestHeld(u: Upstream): Waiting | undefined {
  const fromU = (held: Waiting) => held.from === u;
  for (const write of unconfirmed) {
    const written = write.find(fromU);
    if (written) return written;
  }
  return unheard.find(fromU) ?? unacknowledged.find(fromU) ?? pending.find(fromU) ?? u.inbox.at(0);
}

/** The newest message of `u` that slpc holds: waiting to go out, sent, or written to stdout. */
function newestHeld(u: Upstream): Waiting | undefined {
  const fromU = (held: Waiting) => held.from === u;
  const waiting =
    u.inbox.at(-1) ?? pending.findLast(fromU) ?? unheard.findLast(fromU) ?? unacknowledged.findLast(fromU);
  if (waiting) return waiting;
  for (let i = unconfirmed.length - 1; i >= 0; i--) {
    const written = unconfirmed[i]!.findLast(fromU);
    if (written) return written;
  }
  return undefined;
}

/** How many messages of `u` slpc holds, counted where they are. */
function heldCount(u: Upstream): number {
  let count = u.inbox.length;
  for (const list of [pending, unheard, unacknowledged, ...unconfirmed])
    for (const held of list) count += +(held.from === u);
  return count;
}

/** Writes the resume points to --state when one moved since the last write. */
function saveState(): void {
  if (!stateStore) return;
  const points: ResumePoints = new Map();
  for (const u of upstreams) {
    const point = resumePoint(u);
    if (point) points.set(u.key, point);
  }
  for (const [key, point] of otherPoints) points.set(key, point);
  stateStore.save(points);
}

// ---- A connection's life: dialling, the handlers Bun calls, the phases and their deadlines, and the
// protocol.

/**
 * A connection's life, one phase after the other. From dialling to the server's first `start`
 * (connecting, handshaking, resuming) --handshake-timeout applies; while streaming, --dead-after,
 * counted only while slpc reads; closing lasts until the socket is gone.
 */
type Phase = "connecting" | "handshaking" | "resuming" | "streaming" | "closing";

interface Connection {
  /** The server it is to. */
  upstream: Upstream;
  phase: Phase;
  /** The socket, once TCP is up. */
  socket?: Socket<Connection>;
  /** When the setup must be done (performance.now() milliseconds): dialling plus --handshake-timeout. */
  setupDeadline: number;
  /** When bytes last came while reading: the silence that --dead-after measures starts here. */
  heardAt: number;
  /** When TLS was done and the server's certificate accepted. */
  authorizedAt?: number;
  /** Whether reading from the socket is paused, so that the server holds what this side cannot take yet. */
  paused: boolean;
  deframer: Deframer;
  /** The server's hello, once it came. */
  serverId?: string;
  /** Control frames the socket has not taken yet: Bun's write buffers nothing. */
  outbox?: Uint8Array;
  /** Heartbeats in the current second: a server that sends a flood of them is hung up on. */
  heartbeats: number;
  heartbeatSecond: number;
  /** Set when the server's hello offers `progress`: then slpc reports how far it delivered, every `heartbeat`. */
  progressEvery?: number;
  progressTimer?: Timer;
  /** The number before the first message this connection brought: where it resumed. */
  resumedAfter?: number;
}

function connect(u: Upstream): void {
  const c: Connection = {
    upstream: u,
    phase: "connecting",
    setupDeadline: 0,
    heardAt: 0,
    paused: false,
    deframer: new Deframer(MAX_MESSAGE),
    heartbeats: 0,
    heartbeatSecond: 0,
  };
  u.connection = c;
  enter(c, "connecting");
  Bun.connect<Connection>({
    hostname: u.address.host,
    port: u.address.port,
    data: c,
    tls: {
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      crl: tls.crl,
      serverName: u.serverName,
      rejectUnauthorized: true,
      secureOptions: TLS13_ONLY,
    },
    socket: {
      open(socket) {
        if (u.connection !== c) return void socket.terminate(); // abandoned while dialling
        c.socket = socket;
        enter(c, "handshaking");
      },
      handshake(socket, success, error) {
        if (c.phase !== "handshaking") return;
        if (!success && isNetworkError(error)) return; // the connection is gone: `close` says so
        const why = serverRefusal(u, socket, success, error);
        if (why) return enter(c, "closing", why);
        socket.setKeepAlive(true, 15_000);
        enter(c, "resuming");
      },
      data(_socket, chunk) {
        // Never trust a byte from a server that failed its checks, or after we decided to hang up.
        if (c.phase === "resuming" || c.phase === "streaming") onData(c, chunk);
      },
      drain: () => flushOutbox(c),
      close: (_socket, error) => ended(c, error),
      connectError(_socket, error) {
        if (u.connection === c) log(`cannot connect to ${u.target}: ${reason(error)}`);
        ended(c);
      },
      error(_socket, error) {
        log(`${u.target}: ${reason(error)}`);
      },
    },
  }).catch(() => {
    // connectError has logged it and scheduled the retry.
  });
}

/** Moves `c` into `phase`: every deadline, counter and log line of the lifecycle is set here. */
function enter(c: Connection, phase: Phase, why = ""): void {
  const now = performance.now();
  const u = c.upstream;
  c.phase = phase;
  switch (phase) {
    case "connecting":
      c.setupDeadline = now + options.handshakeTimeout * 1000;
      log(`connecting to ${u.target}`);
      return;
    case "handshaking":
      return; // TCP is up; the deadline from dialling still holds
    case "resuming":
      c.authorizedAt = now;
      if (u.counters.connects++ > 0) u.counters.reconnects++;
      log(`connected to ${u.target}`);
      return;
    case "streaming": {
      c.heardAt = now;
      c.resumedAfter = u.following!.next - 1;
      const only = u.filter ? `, only ${describeFilter(u.filter)}` : "";
      log(`${u.target}: following server ${c.serverId} from #${u.following!.next}${only}`);
      if (c.progressEvery !== undefined) c.progressTimer = setInterval(() => sendProgress(c), c.progressEvery);
      updateReading();
      return;
    }
    case "closing":
      clearInterval(c.progressTimer);
      if (why) log(`${u.target}: ${why}; closing the connection`);
      // Still dialling: Bun cannot cancel a TCP connect, so the attempt is abandoned instead.
      if (!c.socket) return ended(c);
      c.socket.terminate();
      return;
  }
}

/** A connection is gone: say so, and dial again after a while. */
function ended(c: Connection, error?: Error): void {
  const u = c.upstream;
  clearInterval(c.progressTimer);
  if (u.connection !== c) return; // an abandoned attempt that connected or failed after all
  u.connection = undefined;
  if (c.authorizedAt !== undefined && !stopping) {
    const seconds = (performance.now() - c.authorizedAt) / 1000;
    if (seconds >= STAYED_UP_SECONDS) u.failures = 0;
    // TLS 1.3 ends on this side before the server has checked our certificate: a refusal looks like this.
    const hint =
      c.serverId === undefined
        ? ", before the server's hello: does the server refuse this certificate? (its log says)"
        : "";
    log(`disconnected from ${u.target} after ${seconds.toFixed(1)} s${error ? `: ${reason(error)}` : ""}${hint}`);
  } else if (c.phase === "handshaking" && !stopping) {
    // The network or the peer ended it, not a certificate check: say which.
    log(
      error
        ? `${u.target}: connection lost during the TLS handshake: ${reason(error)}`
        : `${u.target}: the server closed the connection during the TLS handshake`,
    );
  }
  retryLater(u);
}

function retryLater(u: Upstream): void {
  if (stopping || u.retryTimer) return;
  const seconds = nextBackoff(u.failures++, options.retryMin, options.retryMax);
  log(`${u.target}: retrying in ${seconds.toFixed(1)} s`);
  u.retryTimer = setTimeout(
    () => {
      u.retryTimer = undefined;
      connect(u);
    },
    Math.min(seconds * 1000, MAX_TIMER_MS),
  );
}

/** Why the server's certificate is not the one we want, or undefined when it is. */
function serverRefusal(
  u: Upstream,
  socket: Socket<Connection>,
  success: boolean,
  error: Error | null,
): string | undefined {
  if (!success || !socket.authorized) return `server certificate refused: ${error ? reason(error) : "not authorized"}`;
  const mismatch = checkServerIdentity(u.serverName, socket.getPeerCertificate());
  return mismatch ? `server certificate refused: ${mismatch.message}` : undefined;
}

function onData(c: Connection, chunk: Uint8Array): void {
  c.heardAt = performance.now();
  try {
    deliverFrames(c, chunk);
  } finally {
    handOnPending();
  }
}

function deliverFrames(c: Connection, chunk: Uint8Array): void {
  const u = c.upstream;
  for (const frame of c.deframer.push(chunk)) {
    if (!frame.control) {
      if (c.phase !== "streaming") return enter(c, "closing", "protocol error: data before start");
      const following = u.following!;
      // A number past the protocol's bound could not be resumed from: refuse it rather than lose count.
      if (following.next > MAX_SEQ) return enter(c, "closing", `protocol error: message number beyond ${MAX_SEQ}`);
      u.counters.received++;
      u.counters.receivedBytes += frame.body.length;
      u.inbox.push({ message: frame.body, from: u, server: following.server, seq: following.next++ });
      continue;
    }
    let message: ControlMessage;
    try {
      message = parseControl(frame.body);
    } catch (error) {
      return enter(c, "closing", `protocol error: ${reason(error)}`);
    }
    onControlMessage(c, message);
    if (c.phase === "closing") return;
  }
  if (c.deframer.error) enter(c, "closing", c.deframer.error);
}

/** hello, then start (possibly again later), heartbeat and error, in the order the protocol allows. */
function onControlMessage(c: Connection, message: ControlMessage): void {
  const u = c.upstream;
  switch (message.type) {
    case "hello": {
      if (!speaksVersion(message.version)) {
        const versions = `server speaks protocol version ${message.version}, this slpc speaks ${VERSIONS}`;
        return enter(c, "closing", `${versions}; upgrade the older one`);
      }
      if (c.serverId !== undefined) return enter(c, "closing", "protocol error: second hello");
      // Never follow unfiltered what was asked for filtered: hang up, and try again later (it may be upgraded).
      if (u.filter && message.filters !== true) {
        return enter(c, "closing", "the server does not offer filters (an slps before protocol version 2)");
      }
      // One server under two names (localhost and 127.0.0.1, say) would deliver everything twice.
      const id = message.server;
      const twin = upstreams.find((v) => v !== u && v.connection?.serverId === id);
      if (twin) return enter(c, "closing", `this is ${twin.target} under another name (server ${id})`);
      c.serverId = message.server;
      // Only a server that offers it gets progress: an older one refuses messages it does not know.
      if ("progress" in message && message.progress === true) {
        c.progressEvery = Math.min(Math.max(message.heartbeat * 1000, MIN_PROGRESS_MS), MAX_PROGRESS_MS);
      }
      if (message.heartbeat >= options.deadAfter) {
        const heartbeat = `server heartbeat ${message.heartbeat} s`;
        const dropped = "idle connections will be dropped";
        log(`${u.target}: warning: ${heartbeat} is not below --dead-after ${options.deadAfter} s; ${dropped}`);
      }
      // Messages still waiting will be handed on: resume after them, not before.
      const held = newestHeld(u);
      const point = held ? { server: held.server, last: held.seq } : resumePoint(u);
      const resume = point ? { server: point.server, last: point.last } : { replay: options.replay };
      // A resume without a filter stays version 1, which every server speaks.
      if (!u.wireFilter) return send(c, { type: "resume", version: BASE_VERSION, ...resume });
      return send(c, { type: "resume", version: PROTOCOL_VERSION, ...resume, filter: u.wireFilter });
    }
    case "start": {
      if (c.serverId === undefined) return enter(c, "closing", "protocol error: start before hello");
      if (u.stateUnreadable && message.lost === undefined) {
        message = { ...message, lost: null, reason: "the --state file was unreadable" };
      }
      u.stateUnreadable = false;
      reportGap(u, message);
      if (message.lost === null) u.counters.unknownGaps++;
      else u.counters.lost += message.lost ?? 0;
      u.following = { server: c.serverId, next: message.seq };
      if (c.phase === "resuming") enter(c, "streaming");
      return;
    }
    case "heartbeat": {
      const second = Math.floor(performance.now() / 1000);
      if (second !== c.heartbeatSecond) [c.heartbeatSecond, c.heartbeats] = [second, 0];
      if (++c.heartbeats > MAX_HEARTBEATS_PER_SECOND) {
        return enter(c, "closing", `protocol error: heartbeat flood, over ${MAX_HEARTBEATS_PER_SECOND} in a second`);
      }
      return;
    }
    case "error":
      return enter(c, "closing", `server says: ${message.message}`);
    default:
      return enter(c, "closing", `protocol error: unexpected ${message.type} message`);
  }
}

/**
 * Says a gap of `u`'s: the first at once, then at most one line a second, summing the gaps that
 * came meanwhile, so that one server far behind cannot flood the log and hide the others' lines.
 */
function reportGap(u: Upstream, start: Extract<ControlMessage, { type: "start" }>): void {
  const gap = gapNotice(start);
  if (!gap) return;
  const lines = u.gapLines;
  const now = performance.now();
  if (!lines.unsaid && now - lines.saidAt >= GAP_LINE_MS) {
    log(`${u.target}: ${gap}`);
    lines.saidAt = now;
    return;
  }
  lines.unsaid ??= { gaps: 0, lost: 0, unknown: 0 };
  const unsaid = lines.unsaid;
  unsaid.gaps++;
  if (start.lost === null) unsaid.unknown++;
  else unsaid.lost += start.lost ?? 0;
  lines.timer ??= setTimeout(() => sayGaps(u), Math.max(0, GAP_LINE_MS - (now - lines.saidAt)));
}

/** The gaps of `u` not said yet, in one line. */
function sayGaps(u: Upstream): void {
  const lines = u.gapLines;
  clearTimeout(lines.timer);
  lines.timer = undefined;
  if (!lines.unsaid) return;
  log(`${u.target}: ${gapsSummary(lines.unsaid, u.following?.next ?? 1)}`);
  lines.unsaid = undefined;
  lines.saidAt = performance.now();
}

function send(c: Connection, message: ControlMessage): void {
  const frame = encodeControl(message);
  c.outbox = c.outbox ? Buffer.concat([c.outbox, frame]) : frame;
  flushOutbox(c);
}

/**
 * Tells a server that offered `progress` how far delivery got, also while reading is paused: so
 * that the server counts a client that is slow to hand on, but alive, as alive (its --stall).
 */
function sendProgress(c: Connection): void {
  if (c.progressEvery === undefined || c.phase !== "streaming" || c.outbox) return; // the last one is not out yet
  const point = resumePoint(c.upstream);
  const last = point?.server === c.serverId ? point!.last : c.resumedAfter!;
  send(c, { type: "progress", last });
}

function flushOutbox(c: Connection): void {
  if (!c.outbox || !c.socket || c.phase === "closing") return;
  const taken = c.socket.write(c.outbox);
  c.outbox = taken >= c.outbox.length ? undefined : c.outbox.subarray(Math.max(taken, 0));
}

/**
 * Pauses or resumes reading from each server, so that it holds what this side cannot take yet:
 * every server while the output takes nothing, one server while too much of its own waits.
 */
function updateReading(): void {
  const outputFull = forwardFailing || forwardPushesBack() || stdoutFull || unheard.weight >= UNHEARD_HIGH_BYTES;
  for (const u of upstreams) {
    const c = u.connection;
    if (!c?.socket || c.phase !== "streaming") continue;
    const wait = outputFull || u.inbox.length >= inboxHigh || u.inbox.weight >= inboxHighBytes;
    if (wait === c.paused) continue;
    c.paused = wait;
    if (wait) {
      c.socket.pause();
      continue;
    }
    // The silence while paused was our own doing: --dead-after counts from now.
    c.heardAt = performance.now();
    c.socket.resume();
  }
}

// The deadlines of every phase, checked by one clock. A half-open connection (the home address
// changed under it) delivers nothing and never fails by itself: the server's heartbeats are what
// make silence mean death.
setInterval(() => {
  const now = performance.now();
  // A tick this late means the process did not run (SIGSTOP, a laptop asleep). The bytes the
  // servers sent meanwhile wait unread in the sockets: read first, judge at a later tick.
  const frozen = now - lastTick > 2 * TICK_MS + 100;
  lastTick = now;
  for (const u of upstreams) {
    const c = u.connection;
    if (!c || c.phase === "closing") continue;
    if (frozen) restartClocks(c, now);
    else if (c.phase !== "streaming") {
      if (now >= c.setupDeadline) {
        const timeout = `${options.handshakeTimeout} s (--handshake-timeout)`;
        enter(c, "closing", `no TLS handshake, hello and start within ${timeout}`);
      }
    } else if (!c.paused && now - c.heardAt >= options.deadAfter * 1000) {
      enter(c, "closing", `no bytes for ${options.deadAfter} s (--dead-after), the connection is presumed dead`);
    }
  }
}, TICK_MS).unref();

/**
 * After the process was frozen: each phase's time starts again from now. A progress message
 * goes out at once, so that a connection that died meanwhile fails fast.
 */
function restartClocks(c: Connection, now: number): void {
  c.heardAt = now;
  if (c.phase !== "streaming") c.setupDeadline = now + options.handshakeTimeout * 1000;
  sendProgress(c);
}

// ---- Handing on: to the local syslog daemon (over UDP, TCP, RELP or a local datagram socket), or to stdout.

// A syslog daemon that is not running answers with ICMP "port unreachable": an error event, or
// an exception from the next send. Say so at once, then at most once a minute with the count.
function forwardFailed(error: unknown): void {
  forwardErrors++;
  if (performance.now() - forwardErrorLogged < 60_000) return;
  const times = forwardErrors > 1 ? ` (${forwardErrors} times since the last report)` : "";
  log(`forward to ${forwardName}: ${error ? reason(error) : "not reachable"}${times}; is the syslog daemon listening?`);
  forwardFailureSaid = true;
  forwardErrorLogged = performance.now();
  forwardErrors = 0;
}

/**
 * The daemon refused a datagram (ICMP port unreachable): the datagrams sent lately may not have
 * arrived either. They go back to the head of the queue, in order, and are tried again later.
 */
function refused(error: Error | undefined): void {
  forwardFailed(error);
  pending.unshift(...unheard.shiftMany(unheard.length));
  forwardFailing = true;
  clearTimeout(sendTimer);
  sendTimer = undefined;
  sendLater(FORWARD_RETRY_MS);
  updateReading();
}

/** Datagrams that went unanswered for UDP_SILENCE_MS are handed on; a timer comes back for the rest. */
function settleUnheard(): void {
  const now = performance.now();
  let count = 0;
  while (count < unheard.length && now - unheard.at(count)!.sentAt >= UDP_SILENCE_MS) count++;
  if (count > 0) {
    handOn(unheard.shiftMany(count));
    updateReading();
  }
  if (unheard.length > 0 && !heardTimer) {
    const wait = Math.max(1, UDP_SILENCE_MS - (now - unheard.at(0)!.sentAt));
    heardTimer = setTimeout(() => {
      heardTimer = undefined;
      settleUnheard();
    }, wait);
  }
}

/** `handed` are with the daemon or on stdout (as far as the transport tells): each server's point moves past them. */
function handOn(handed: readonly Waiting[]): void {
  const moved = new Set<Upstream>();
  for (let i = handed.length - 1; i >= 0; i--) {
    const { from, server, seq } = handed[i]!;
    from.counters.delivered++;
    if (moved.has(from)) continue;
    from.handedOn = { server, last: seq };
    moved.add(from);
  }
  // Only an acknowledgement proves a daemon took a message; a kernel taking bytes does not.
  if (relp && daemonFailures > 0) daemonRecovered();
}

function sendLater(ms: number): void {
  if (sendTimer) return;
  sendTimer = setTimeout(() => {
    sendTimer = undefined;
    sendPending();
  }, ms);
}

/**
 * Tops `pending` up to `count` messages from the servers' inboxes, one from each in turn: a
 * server with a backlog gets its share of the output, and of --forward-rate, and no more.
 */
function refill(count: number): boolean {
  for (let empty = 0; pending.length < count && empty < upstreams.length; ) {
    const entry = upstreams[nextInbox]!.inbox.shift();
    nextInbox = (nextInbox + 1) % upstreams.length;
    if (entry) pending.push(entry);
    empty = entry ? 0 : empty + 1;
  }
  return pending.length > 0;
}

/** Sends what waits by --forward's transport, as far as the rate and the daemon allow. */
function sendPending(): void {
  if (udp) sendDatagrams();
  else if (forward.transport === "tcp") sendFrames();
  else if (relp) sendRelp();
  else if (unixSender) sendToUnixSocket();
  updateReading();
}

function sendDatagrams(): void {
  while (refill(SEND_BATCH) && udp) {
    const now = performance.now();
    let count = 0;
    while (count < Math.min(SEND_BATCH, pending.length) && (!forwardBucket || forwardBucket.take(now))) count++;
    if (count === 0) {
      sendLater(Math.max(1, forwardBucket!.wait()));
      break;
    }
    const packets: (Uint8Array | number | string)[] = [];
    for (let i = 0; i < count; i++) packets.push(pending[i]!.message, forwardTo.port, forwardTo.host);
    let sent: number;
    try {
      sent = udp.sendMany(packets);
    } catch (error) {
      // The messages stay, in order, and the servers hold the rest until the daemon takes them.
      forwardFailed(error);
      forwardFailing = true;
      sendLater(FORWARD_RETRY_MS);
      break;
    }
    forwardFailing = false;
    for (const entry of pending.splice(0, sent)) unheard.push(Object.assign(entry, { sentAt: now }));
    settleUnheard();
    if (sent < count) break; // the kernel is full: `drain` calls again
  }
}

/** Hands on the first `count` messages of `pending`: the daemon has them (as far as its transport tells). */
function handOnFirst(count: number): void {
  if (count > 0) handOn(pending.splice(0, count));
}

/** Whether the daemon pushes back: its socket took not all that was written, or RELP's window is full. */
function forwardPushesBack(): boolean {
  if (relp) return daemonOutbox.length > 0 || relp.inFlight >= RELP_WINDOW;
  return daemonFull || unixFull;
}

/**
 * tcp://: octet-counted frames (RFC 6587), a batch to a write. A message counts as handed on once
 * the kernel took all of its frame. TCP says nothing more: what the kernels' and the daemon's
 * buffers hold when the daemon dies is lost (docs/setup.md). A frame cut by a break goes again whole.
 */
function sendFrames(): void {
  while (refill(SEND_BATCH) && daemonSocket && !daemonFull) {
    const now = performance.now();
    // A frame begun on this connection goes on without waiting for --forward-rate again.
    let count = frameTaken > 0 ? 1 : 0;
    while (count < Math.min(SEND_BATCH, pending.length) && (!forwardBucket || forwardBucket.take(now))) count++;
    if (count === 0) {
      sendLater(Math.max(1, forwardBucket!.wait()));
      break;
    }
    const frames = pending.slice(0, count).map((entry) => encodeFrame(entry.message));
    const bytes = Buffer.concat(frames).subarray(frameTaken);
    const wrote = Math.max(0, daemonSocket.write(bytes));
    let taken = frameTaken + wrote;
    let whole = 0;
    while (whole < count && taken >= frames[whole]!.length) taken -= frames[whole++]!.length;
    frameTaken = taken;
    handOnFirst(whole);
    if (wrote < bytes.length) daemonFull = true; // `drain` clears it and calls again
  }
}

/**
 * relp://: up to RELP_WINDOW messages in flight; one counts as handed on only when the daemon
 * acknowledged it (onRelpData). A broken connection sends the unacknowledged again on the next.
 */
function sendRelp(): void {
  while (refill(SEND_BATCH) && daemonSocket && relp!.phase === "open" && !forwardPushesBack()) {
    if (forwardBucket && !forwardBucket.take(performance.now())) {
      sendLater(Math.max(1, forwardBucket.wait()));
      break;
    }
    const entry = pending[0]!;
    const frame = relp!.send(entry.message, entry);
    if (!frame) break;
    pending.shift();
    unacknowledged.push(entry);
    writeToDaemon(frame);
  }
}

function onRelpData(chunk: Uint8Array): void {
  for (const event of relp!.receive(chunk)) {
    if (event.type === "opened") {
      daemonUp();
      writeToDaemon(event.resend);
    } else if (event.type === "acknowledged") {
      // Acknowledgements come in the order the messages were sent, which is the order of `unacknowledged`.
      handOn([unacknowledged.shift()!]);
    } else {
      // A renewing close is routine; anything else is worth a line.
      if (event.reason !== "the RELP session was closed") forwardFailed(new Error(event.reason));
      daemonSocket?.end();
    }
  }
  sendPending();
}

/** Bytes for the daemon's connection, in order: what its socket does not take now waits for `drain`. */
function writeToDaemon(bytes: Uint8Array): void {
  if (bytes.length > 0) daemonOutbox.push(Buffer.from(bytes));
  while (daemonSocket && daemonOutbox.length > 0) {
    const chunk = daemonOutbox[0]!;
    const taken = Math.max(0, daemonSocket.write(chunk));
    if (taken < chunk.length) {
      daemonOutbox[0] = chunk.subarray(taken);
      return;
    }
    daemonOutbox.shift();
  }
}

/**
 * unix:PATH: one datagram a message, addressed by path, so a daemon that made its socket anew is
 * found without more ado. A local socket does not drop: a full queue says so, and slpc waits.
 */
function sendToUnixSocket(): void {
  unixFull = false;
  while (refill(SEND_BATCH) && unixSender) {
    if (forwardBucket && !forwardBucket.take(performance.now())) {
      sendLater(Math.max(1, forwardBucket.wait()));
      break;
    }
    let result: "sent" | "full";
    try {
      result = unixSender.send(pending[0]!.message);
    } catch (error) {
      // No daemon there (ENOENT, ECONNREFUSED) or not allowed: the messages stay, and the servers hold the rest.
      forwardFailed(error);
      forwardFailing = true;
      sendLater(FORWARD_RETRY_MS);
      return;
    }
    forwardFailing = false;
    if (result === "full") {
      unixFull = true;
      sendLater(UNIX_FULL_RETRY_MS);
      return;
    }
    handOnFirst(1);
  }
}

// The connection to the daemon for tcp:// and relp://: dialled at start, and again with backoff
// whenever it breaks (the daemon restarted). Meanwhile no server is read: each holds the rest.

function connectDaemon(): void {
  if (stopping) return;
  const link = {};
  daemonLink = link;
  Bun.connect({
    hostname: forwardTo.host,
    port: forwardTo.port,
    socket: {
      open(socket) {
        if (daemonLink !== link) return void socket.terminate();
        daemonSocket = socket;
        daemonSince = performance.now();
        daemonFull = false;
        frameTaken = 0;
        daemonOutbox = [];
        if (relp) writeToDaemon(relp.open());
        else daemonUp();
        sendPending();
      },
      data(_socket, chunk) {
        if (daemonLink === link && relp) onRelpData(chunk);
      },
      drain() {
        if (daemonLink !== link) return;
        daemonFull = false;
        writeToDaemon(new Uint8Array(0));
        sendPending();
      },
      close: (_socket, error) => daemonLost(link, error),
      connectError: (_socket, error) => daemonLost(link, error),
    },
  }).catch(() => {
    // connectError has it.
  });
}

/**
 * The daemon took the connection (TCP) or the RELP session: try again. Only a message it takes
 * counts as recovery (see `handOn`): a daemon that opens and then closes or refuses at once must
 * not reset the backoff or the once-a-minute log line, or slpc would dial and log in a loop.
 */
function daemonUp(): void {
  forwardFailing = false;
  // Said after a failure that was said: so at most as often as the failures themselves.
  if (forwardFailureSaid) log(`forward to ${forwardName}: connected`);
  forwardFailureSaid = false;
}

/** The daemon took a message after failures: the backoff and the log limit start afresh. */
function daemonRecovered(): void {
  daemonFailures = 0;
  forwardErrorLogged = -Infinity; // the next failure is news, not a repeat
}

function daemonLost(link: object, error?: Error): void {
  if (daemonLink !== link) return;
  daemonLink = undefined;
  daemonSocket = undefined;
  relp?.lost();
  frameTaken = 0; // a frame cut here goes again whole on the next connection
  daemonOutbox = [];
  // A connection that stayed up was a working daemon: its loss is news, and the retry is quick.
  if (daemonSince !== undefined && performance.now() - daemonSince >= STAYED_UP_SECONDS * 1000) daemonRecovered();
  daemonSince = undefined;
  forwardFailed(error ?? new Error("the daemon closed the connection"));
  forwardFailing = true;
  updateReading();
  if (stopping) return;
  const seconds = nextBackoff(daemonFailures++, DAEMON_RETRY_MIN, DAEMON_RETRY_MAX);
  setTimeout(connectDaemon, seconds * 1000);
}

/** How stdout shows a message: as --format says, or for whoever reads it with --stdout alone. */
const outputFormat: OutputFormat = options.format ?? (process.stdout.isTTY ? "pretty" : "raw");
const outputColor = colorChoice(options.color, process.stdout.isTTY === true, process.env);
/** Set once a formatter failed on a message: said once, not once a message. */
let formatFailed = false;

/** --prefix: each server's, padded to the longest, so that the columns after it line up. */
const prefixes = new Map(
  upstreams.map((u) => [
    u,
    options.prefix ? `${u.target.padEnd(Math.max(...upstreams.map((v) => v.target.length)))} ` : "",
  ]),
);

/** The messages as stdout shows them; raw is the bytes as they came, which needs no parsing. */
function asLines(messages: readonly Waiting[]): Buffer {
  if (outputFormat === "raw" && !options.prefix) return messagesAsLines(messages.map(({ message }) => message));
  const received = new Date();
  // A terminal may have been resized since the last write.
  const width = (process.stdout.columns || 80) - (prefixes.get(upstreams[0]!)?.length ?? 0);
  const lines: Buffer[] = [];
  for (const { message, from, server, seq } of messages) {
    const prefix = prefixes.get(from)!;
    if (outputFormat === "raw") {
      lines.push(prefix ? Buffer.concat([Buffer.from(prefix), formatRaw(message)]) : formatRaw(message));
      continue;
    }
    try {
      const parsed = parseSyslog(message);
      const pretty = { server: from.address.host, now: received, color: outputColor, width };
      const line =
        outputFormat === "json"
          ? formatJson(parsed, { from: from.target, server, seq, received })
          : formatPretty(parsed, pretty).replace(/^(?=.)/gm, prefix);
      lines.push(Buffer.from(line));
    } catch (error) {
      // A bug must not stop the stream at the message that shows it: that message goes out raw.
      if (!formatFailed) log(`--format ${outputFormat}: ${reason(error)}; printing such messages raw`);
      formatFailed = true;
      lines.push(Buffer.concat([Buffer.from(prefix), formatRaw(message)]));
    }
  }
  return Buffer.concat(lines);
}

/**
 * The lines of one read, as one write. They count as handed on once stdout says it took them:
 * until then a SIGTERM could lose them, and the resume point must not pass them.
 */
function writeLines(): void {
  if (!refill(Number.POSITIVE_INFINITY)) return;
  const write = pending.splice(0);
  unconfirmed.push(write);
  const taken = process.stdout.write(asLines(write), (error) => {
    const written = unconfirmed.shift()!;
    if (!error) handOn(written);
  });
  // A full pipe: stop reading the servers until stdout drains.
  if (!taken) stdoutFull = true;
  updateReading();
}

/** After a read: the messages it brought go out. */
function handOnPending(): void {
  if (options.stdout) writeLines();
  else sendPending();
}

// ---- Sockets and timers: the UDP socket to --forward, stdout, the state file and the expiry warning.

async function openForwardSocket(): Promise<import("bun").udp.Socket<"buffer">> {
  try {
    return await Bun.udpSocket({
      hostname: forwardTo.family === 6 ? "::" : "0.0.0.0",
      socket: { drain: () => sendPending(), error: (_socket, error) => refused(error) },
    });
  } catch (error) {
    log(`--forward ${forwardName}: cannot open a UDP socket for IPv${forwardTo.family}: ${reason(error)}`);
    process.exit(2);
  }
}
const udp = options.stdout || forward.transport !== "udp" ? undefined : await openForwardSocket();

/** The connection to the daemon (tcp://, relp://) being dialled or used; undefined while waiting to dial again. */
let daemonLink: object | undefined;
let daemonSocket: Socket | undefined;
/** Connections to the daemon in a row that broke before it took one: the wait before the next grows with them. */
let daemonFailures = 0;
/** When the current connection to the daemon opened (tcp://, relp://). */
let daemonSince: number | undefined;
/** tcp://: the daemon's socket did not take all of the last write; `drain` clears it. */
let daemonFull = false;
/** tcp://: the bytes of the frame of pending[0] the current connection took. */
let frameTaken = 0;
/** relp://: bytes for the daemon that its socket has not taken yet, in order. */
let daemonOutbox: Buffer[] = [];
/** unix:: the daemon's queue was full at the last send; the next try clears it. */
let unixFull = false;
const relp =
  options.stdout || forward.transport !== "relp" ? undefined : new RelpSession<Waiting>({ window: RELP_WINDOW });
const unixSender = options.stdout || forward.transport !== "unix" ? undefined : openUnixSender(forward.path);
if (!options.stdout && (forward.transport === "tcp" || forward.transport === "relp")) connectDaemon();
if (relp) {
  // A daemon that stops answering without closing the connection: give up on it and dial again.
  setInterval(() => {
    const overdue = relp.overdue(performance.now());
    if (!overdue) return;
    log(`forward to ${forwardName}: ${overdue}`);
    daemonSocket?.terminate();
  }, 1000).unref();
}

function openUnixSender(path: string): UnixDatagramSender {
  try {
    return new UnixDatagramSender(path);
  } catch (error) {
    log(`--forward unix:${path}: cannot open a datagram socket: ${reason(error)}`);
    process.exit(2);
  }
}

if (options.stdout) {
  // One listener for the life of the process, not one per pause.
  process.stdout.on("drain", () => {
    stdoutFull = false;
    updateReading();
  });
  process.stdout.on("error", (error) => {
    log(`stdout: ${reason(error)}; exiting`);
    stop(1);
  });
}

if (stateStore) {
  // Whenever a point moved, at most every STATE_WRITE_MS, and at once after the run's first
  // delivery: after a SIGKILL only what was handed on since the last write comes again, and a
  // third time only if the next run dies as soon after handing it on (see docs/behaviour.md).
  let lastFailure = "";
  const save = () => {
    try {
      saveState();
      lastFailure = "";
    } catch (error) {
      // Once per kind of failure, not ten times a second while the disk stays full.
      if (reason(error) !== lastFailure) log(reason(error));
      lastFailure = reason(error);
    }
  };
  setInterval(save, STATE_WRITE_MS).unref();
  // What a run delivers first is what the run before it delivered and did not record.
  const firstDelivery = setInterval(() => {
    const delivered = upstreams.some((u) => u.counters.delivered > 0);
    if (delivered || performance.now() > FIRST_DELIVERY_WATCH_MS) clearInterval(firstDelivery);
    if (delivered) save();
  }, FIRST_DELIVERY_POLL_MS);
  firstDelivery.unref();
}

function warnIfExpiring(): void {
  const warning = expiryWarning("cert", tls.leaf, new Date());
  if (warning) log(warning);
}
warnIfExpiring();
setInterval(warnIfExpiring, 86_400_000).unref();

// ---- Signals: SIGHUP rereads the certificates, SIGUSR1 prints the numbers, SIGINT and SIGTERM stop.

/** SIGHUP: reread the certificate, key and CA for the next connection; the current one stays. */
process.on("SIGHUP", () => {
  try {
    tls = loadTls();
  } catch (error) {
    log(`SIGHUP: ${reason(error)}; keeping the certificates in force`);
    return;
  }
  const files = `--cert ${options.cert}, --key ${options.key}, --ca ${options.ca}`;
  log(`SIGHUP: reloaded ${files}${options.crl ? ` and --crl ${options.crl}` : ""}; the next connection uses them`);
  warnIfExpiring();
});

/** SIGUSR1: one JSON line, the totals and then each server. */
process.on("SIGUSR1", () => {
  const servers = upstreams.map((u) => ({
    server: u.target,
    connected: u.connection?.phase === "streaming",
    ...u.counters,
    pending: heldCount(u),
    position: resumePoint(u) ?? null,
  }));
  const total = (key: keyof Upstream["counters"] | "pending") => servers.reduce((sum, each) => sum + each[key], 0);
  const totals = Object.fromEntries(
    [...(Object.keys(upstreams[0]!.counters) as (keyof Upstream["counters"])[]), "pending" as const].map((key) => [
      key,
      total(key),
    ]),
  );
  const snapshot = { program: "slpc", uptime: Math.round((Date.now() - startedAt) / 1000), ...totals, servers };
  process.stderr.write(`${JSON.stringify(snapshot)}\n`);
});

/**
 * SIGTERM, SIGINT: stop reading, let stdout take what it was given (for a while), and record
 * in --state only what really went out, so that the next start delivers the rest once.
 */
function shutdown(signal: string): void {
  if (stopping) return stop(0); // a second signal: at once
  stopping = true;
  log(`${signal}: exiting`);
  for (const u of upstreams) {
    clearTimeout(u.retryTimer);
    u.connection?.socket?.terminate();
  }
  sendPending(); // what --forward-rate allows now; the rest comes again on the next start, with --state
  const deadline = performance.now() + STOP_WAIT_MS;
  const waitForOutput = () => {
    if (unconfirmed.length === 0 && unheard.length === 0 && unacknowledged.length === 0) return stop(0);
    if (performance.now() < deadline) return void setTimeout(waitForOutput, 10);
    if (unacknowledged.length > 0) {
      const within = `${unacknowledged.length} messages within ${STOP_WAIT_MS / 1000} s`;
      log(`${forwardName} did not acknowledge ${within}; --state records only what it acknowledged`);
      return stop(0);
    }
    const lines = unconfirmed.reduce((sum, write) => sum + write.length, 0);
    log(`stdout did not take ${lines} lines within ${STOP_WAIT_MS / 1000} s; --state records only what it took`);
    stop(0);
  };
  waitForOutput();
}

function stop(code: number): void {
  for (const u of upstreams) sayGaps(u);
  try {
    saveState();
  } catch (error) {
    log(reason(error));
  }
  stateStore?.close();
  udp?.close();
  process.exit(code);
}

process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));

for (const u of upstreams) connect(u);
