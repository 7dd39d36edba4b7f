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
import {
  type Address,
  addressKey,
  colorChoice,
  environmentProxy,
  expiryWarning,
  type Filter,
  type ForwardAddress,
  filterToWire,
  formatAddress,
  formatForwardAddress,
  formatProxy,
  helpText,
  Ledger,
  loadTlsFiles,
  logger,
  MAX_MESSAGE,
  type Options,
  optional,
  originOf,
  type ProxyUrl,
  parseColorFlag,
  parseCount,
  parseFacilities,
  parseForwardAddress,
  parseGroupedOptions,
  parseHostPortList,
  parseHosts,
  parseMatch,
  parseOutputFormat,
  parsePrograms,
  parseProxySetting,
  parseRequired,
  parseSeconds,
  parseSeverity,
  parseSwitch,
  parseText,
  type ResumePoints,
  reason,
  redactProxyText,
  type TlsFiles,
  TokenBucket,
  UsageError,
  type Values,
} from "./lib.ts";
import packageJson from "./package.json" with { type: "json" };
import { JournalOutput } from "./slpc/outputs/journal.ts";
import type { Output } from "./slpc/outputs/output.ts";
import { RelpOutput } from "./slpc/outputs/relp.ts";
import { StdoutOutput } from "./slpc/outputs/stdout.ts";
import { TcpOutput } from "./slpc/outputs/tcp.ts";
import { UdpOutput } from "./slpc/outputs/udp.ts";
import { UnixOutput } from "./slpc/outputs/unix.ts";
import { FIRST_DELIVERY_POLL_MS, FIRST_DELIVERY_WATCH_MS, STATE_WRITE_MS, StateStore } from "./slpc/state.ts";
import { type ServerChoice, Upstream, type UpstreamHost } from "./slpc/upstream.ts";
import { WEB_OPTIONS, webSettings } from "./slpc/web/options.ts";
import { WebView } from "./slpc/web/view.ts";

// ---- Constants. Defaults first: each has a flag and an environment variable, named after its key
// in OPTIONS below: deadAfter is --dead-after and SLPC_DEAD_AFTER (see --help).

const SERVER = ""; // HOST[:PORT] of slps, or several, comma-separated; required
const PORT = 6514;
const CERT = "certs/client.pem";
const KEY = "certs/client.key";
const CA = "certs/ca.pem"; // the server certificate must chain to this; "system" for the system trust store
const CRL = ""; // if set, PEM revocation lists: a server certificate listed there is refused
const SERVERNAME = ""; // name the server certificate must carry; empty: the host of --server (one server only)
const PROXY = ""; // http://, socks5:// or socks5h:// URL to dial through; unset: HTTPS_PROXY, ALL_PROXY, NO_PROXY
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

/** While this many messages, or bytes of them, from one server wait for the output, that server is not read. */
const INBOX_HIGH = 4096;
const INBOX_HIGH_BYTES = 4 * 1024 * 1024;
/**
 * What all the servers' inboxes hold at most together: each server's bound is its share of this,
 * at most the one above, so that memory does not grow with the number of servers; and at least a
 * batch of the output's.
 */
const INBOXES_HIGH = 4 * INBOX_HIGH;
const INBOXES_HIGH_BYTES = 4 * INBOX_HIGH_BYTES;
const INBOX_LEAST = 64;

/** How long SIGTERM waits for the output to confirm what it was given. */
const STOP_WAIT_MS = 5000;

// ---- Options, and what they name: certificates, the resume point on disk and the forward address.
// Anything wrong with them is one line and exit 2, before a socket opens.

// biome-ignore format: a table, one option a row (its help on a second line when it is long)
const OPTIONS = {
  server: { default: SERVER, arg: "HOST[:PORT]", parse: optional((text: string) => parseHostPortList(text, PORT)),
    help: `an slps server to follow, port ${PORT} when omitted (required). Repeat it to follow several ` +
      "(comma-separated in the variable). Filter flags and --proxy after a --server are that server's alone; " +
      "those before the first --server apply to every server without its own" },
  cert: { default: CERT, arg: "FILE", parse: parseRequired, help: "client certificate chain, PEM" },
  key: { default: KEY, arg: "FILE", parse: parseRequired, help: "private key of --cert, PEM" },
  ca: { default: CA, arg: "FILE", parse: parseRequired,
    help: "CA that the server certificate must chain to, PEM; 'system' for the system trust store" },
  crl: { default: CRL, arg: "FILE", parse: optional(parseText),
    help: "PEM file of CRLs; a server certificate listed there is refused" },
  servername: { default: SERVERNAME, arg: "NAME", parse: parseText,
    help: "name the server certificate must carry (default: the host of --server); only with a single server" },
  proxy: { default: PROXY, arg: "URL", parse: parseProxySetting, redact: redactProxyText,
    help: "dial the servers through this proxy: http://[USER:PASSWORD@]HOST:PORT (CONNECT), socks5://... " +
      "(slpc resolves the server's name) or socks5h://... (the proxy does); TLS runs end to end through it. " +
      "Unset: https_proxy, HTTPS_PROXY, all_proxy or ALL_PROXY, except for hosts in NO_PROXY; '' for none" },
  forward: { default: FORWARD, arg: "ADDRESS", parse: parseForwardAddress,
    help: "local syslog daemon to send each message to: HOST:PORT or udp://HOST:PORT (one datagram each), " +
      "tcp://HOST:PORT (octet-counted), relp://HOST:PORT (acknowledged), unix:PATH (a datagram socket, /dev/log), " +
      "journal or journal:PATH (journald's native protocol, each field its own)" },
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
  ...WEB_OPTIONS, // --web and its company: the live view in a browser (slpc/web/options.ts)
} satisfies Options;

/** The filter flags: after a --server, they apply to that server alone. */
const FILTER_KEYS = ["facility", "severity", "program", "host", "match"] as const;
/** The flags that, after a --server, apply to that server alone: the filter's and --proxy. */
const SERVER_KEYS = [...FILTER_KEYS, "proxy"] as const;

const log = logger("slpc");
/** The options as parsed, with their defaults. */
type SlpcOptions = Values<typeof OPTIONS>;

/**
 * The options and what they name, checked: the servers and their filters, the certificates, the
 * --state file (locked from here on) and --forward's address. Anything wrong is a UsageError.
 */
async function configure() {
  const argv = process.argv.slice(2);
  const parsed = parseGroupedOptions("slpc", OPTIONS, argv, process.env, "server", SERVER_KEYS);
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
  const options = parsed.values;
  if (options.format) options.stdout = true;
  const forwardGiven = originOf(options, "forward");
  if (options.stdout && forwardGiven) {
    const printing = options.format ? `--format ${options.format}` : "--stdout";
    const why = "prints the messages instead of forwarding them; leave one of the two out";
    throw new UsageError(
      `${forwardGiven} ${formatForwardAddress(options.forward)}: not with ${printing}, which ${why}`,
    );
  }
  if (options.prefix && !options.stdout)
    throw new UsageError("--prefix: only with --stdout or --format, not --forward");
  if (options.retryMax < options.retryMin)
    throw new UsageError(`--retry-max ${options.retryMax}: must not be below --retry-min ${options.retryMin}`);
  const choices = chooseServers(options, parsed.groups);
  const tls = loadTls(options);
  // Locked for slpc's life; exit 2 now if the file cannot be written, and one in the old format is converted.
  const state = options.state
    ? StateStore.open(options.state, {
        servers: choices.map((choice) => choice.address),
        newClientStart: options.replay ? "with everything the server holds (--replay)" : "live",
        log,
        now: Date.now,
      })
    : undefined;
  // sendmmsg takes no names, and the UDP socket is bound for the address's family: a name is looked up once.
  const forwardTo =
    options.stdout || !("host" in options.forward)
      ? { host: "", port: 0, family: 4 as const }
      : await resolveForward(options.forward);
  const web = await webSettings(options, (host) => lookup(host, { all: true }));
  return { options, choices, tls, state, forwardTo, web };
}

const setup = await configure().catch((error) => {
  if (!(error instanceof UsageError)) throw error;
  log(error.message);
  process.exit(2);
});
const { options, choices, state: stateStore, forwardTo } = setup;
const { forward } = options;
/** --forward in log lines: as the operator wrote it, and the address it resolved to when that differs. */
const forwardName =
  "path" in forward
    ? formatForwardAddress(forward)
    : (forward.transport === "udp" ? formatAddress(forward) : formatForwardAddress(forward)) +
      (forward.host === forwardTo.host ? "" : ` (${forwardTo.host})`);

/** How often the phase deadlines are checked (see the clock below): well within the shortest of them. */
const TICK_MS = Math.max(1, Math.min(1000, options.deadAfter * 250, options.handshakeTimeout * 250));

/**
 * Every --server with its filter and proxy: the flags that follow it, or when none do, those before
 * the first --server (or in the environment). Each server once; --servername only for a single one.
 */
function chooseServers(options: SlpcOptions, groups: Partial<SlpcOptions>[]): ServerChoice[] {
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
      chosen.push({ address, ...filter, ...proxyOf(options, group, address) });
    }
  }
  if (chosen.length === 0) throw new UsageError("--server: required: the slps server to follow (see --help)");
  if (chosen.length > 1 && options.servername) {
    const why = "with several servers, each server's certificate must carry the host --server names";
    throw new UsageError(`--servername ${options.servername}: only with a single --server; ${why}`);
  }
  return chosen;
}

/**
 * The proxy to dial `address` through: the --proxy after its --server, else the one before the
 * first (or SLPC_PROXY), else the environment's as curl reads it; `--proxy ''` is none.
 */
function proxyOf(options: SlpcOptions, group: Partial<SlpcOptions>, address: Address): { proxy?: ProxyUrl } {
  if (originOf(group, "proxy")) return group.proxy ? { proxy: group.proxy } : {};
  if (originOf(options, "proxy")) return options.proxy ? { proxy: options.proxy } : {};
  const found = environmentProxy(process.env, address);
  if (!found) return {};
  log(`--server ${formatAddress(address)}: through proxy ${formatProxy(found.proxy)} from ${found.variable}`);
  return { proxy: found.proxy };
}

/** What the filter flags in `values` ask a server for; nothing when none is set. */
function filterOf(values: SlpcOptions, where: string): Omit<ServerChoice, "address"> {
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

function loadTls({ cert, key, ca, crl }: SlpcOptions): TlsFiles {
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

// ---- State: the servers followed, the ledger of their messages, and the output they go to.

const startedAt = Date.now();
/** The certificates for the next connection: SIGHUP reads them again. */
let tls = setup.tls;
/** Set by SIGTERM and SIGINT. */
let stopping = false;
/** The resume points in --state at start, by server (addressKey); empty for a new client. */
const stored: ResumePoints = stateStore?.points ?? new Map();

const host: UpstreamHost = {
  settings: options,
  tls: () => tls,
  log,
  get ledger() {
    return ledger;
  },
  twinOf: (u, id) => upstreams.find((other) => other !== u && other.owns(id, u)),
  changed: () => output.send(),
  received: ({ message, from, server, seq }) => web?.add({ message, from: from.target, server, seq }),
  stopping: () => stopping,
};
const upstreams = choices.map(
  (choice) =>
    new Upstream(
      host,
      choice,
      options.servername || choice.address.host,
      stateStore?.unreadable.has(addressKey(choice.address)) ?? false,
    ),
);
const ledger = new Ledger<Upstream>(
  upstreams,
  new Map(upstreams.flatMap((u) => (stored.has(u.key) ? [[u, stored.get(u.key)!]] : []))),
  {
    total: { messages: INBOXES_HIGH, bytes: INBOXES_HIGH_BYTES },
    each: { messages: INBOX_HIGH, bytes: INBOX_HIGH_BYTES },
    least: { messages: INBOX_LEAST, bytes: MAX_MESSAGE },
  },
);
/** Resume points in --state of servers not followed now: kept, so that leaving one out for a while loses nothing. */
const otherPoints: ResumePoints = new Map([...stored].filter(([key]) => !upstreams.some((u) => u.key === key)));

const output = await openOutput();

/** The output --stdout, --format or --forward chose; a socket the system does not give is exit 2. */
async function openOutput(): Promise<Output<Upstream>> {
  // Paces the sends to --forward; stdout takes what it takes.
  const rate =
    options.forwardRate > 0
      ? new TokenBucket(options.forwardRate, Math.max(1, options.forwardRate / 100), performance.now())
      : undefined;
  const shared = { ledger, rate, name: forwardName, log, changed: updateReading };
  if (options.stdout) {
    return new StdoutOutput({
      ...shared,
      rate: undefined,
      name: "stdout",
      format: options.format ?? (process.stdout.isTTY ? "pretty" : "raw"),
      color: colorChoice(options.color, process.stdout.isTTY === true, process.env),
      prefix: options.prefix,
      servers: upstreams,
      describe: (u) => ({ target: u.target, host: u.address.host }),
    });
  }
  const stopped = () => stopping;
  try {
    switch (forward.transport) {
      case "udp":
        return await UdpOutput.open(shared, forwardTo);
      case "tcp":
        return new TcpOutput(shared, forwardTo, stopped);
      case "relp":
        return new RelpOutput(shared, forwardTo, stopped);
      case "unix":
        return new UnixOutput(shared, forward.path);
      case "journal":
        return new JournalOutput({ ...shared, path: forward.path, from: (u) => u.target });
    }
  } catch (error) {
    const socket = forward.transport === "udp" ? `a UDP socket for IPv${forwardTo.family}` : "a datagram socket";
    log(`--forward ${forwardName}: cannot open ${socket}: ${reason(error)}`);
    process.exit(2);
  }
}

/**
 * Pauses or resumes reading from each server, so that it holds what this side cannot take yet:
 * every server while the output takes nothing, one server while too much of its own waits.
 */
function updateReading(): void {
  const outputFull = output.full;
  for (const u of upstreams) u.read(!outputFull && !ledger.inboxFull(u));
}

/** Writes the resume points to --state when one moved since the last write. */
function saveState(): void {
  if (!stateStore) return;
  const points: ResumePoints = new Map();
  for (const u of upstreams) {
    const point = u.resumePoint();
    if (point) points.set(u.key, point);
  }
  for (const [key, point] of otherPoints) points.set(key, point);
  stateStore.save(points);
}

// ---- Timers: the phase deadlines, the state file and the expiry warning.

/** When the clock of the phase deadlines last ticked: a tick much later than due means slpc was frozen. */
let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const frozen = now - lastTick > 2 * TICK_MS + 100;
  lastTick = now;
  for (const u of upstreams) u.tick(now, frozen);
}, TICK_MS).unref();

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
    const delivered = upstreams.some((u) => ledger.counts(u).delivered > 0);
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
    tls = loadTls(options);
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
  const servers = upstreams.map((u) => {
    const { received, receivedBytes, lost, unknownGaps, connects, reconnects } = u.counters;
    const { delivered, undeliverable, givenBack: resent } = ledger.counts(u);
    const counts = { received, receivedBytes, delivered, undeliverable, lost, unknownGaps, connects, reconnects };
    const held = { resent, pending: ledger.heldCount(u) };
    return { server: u.target, connected: u.streaming, ...counts, ...held, position: u.resumePoint() ?? null };
  });
  type Count = Exclude<keyof (typeof servers)[number], "server" | "connected" | "position">;
  const keys = Object.keys(servers[0]!).filter((key) => typeof servers[0]![key as Count] === "number") as Count[];
  const totals = Object.fromEntries(keys.map((key) => [key, servers.reduce((sum, each) => sum + each[key], 0)]));
  const snapshot = { program: "slpc", uptime: Math.round((Date.now() - startedAt) / 1000), ...totals, servers };
  process.stderr.write(`${JSON.stringify(snapshot)}\n`);
});

if (options.stdout) {
  process.stdout.on("error", (error) => {
    log(`stdout: ${reason(error)}; exiting`);
    stop(1);
  });
}

/**
 * SIGTERM, SIGINT: stop reading, let the output confirm what it was given (for a while), and record
 * in --state only what it confirmed, so that the next start delivers the rest once.
 */
function shutdown(signal: string): void {
  if (stopping) return stop(0); // a second signal: at once
  stopping = true;
  log(`${signal}: exiting`);
  for (const u of upstreams) u.stop();
  output.finish(); // what --forward-rate allows now; the rest comes again on the next start, with --state
  const deadline = performance.now() + STOP_WAIT_MS;
  const waitForOutput = () => {
    if (ledger.given === 0) return stop(0);
    if (performance.now() < deadline) return void setTimeout(waitForOutput, 10);
    log(output.unconfirmed(ledger.given, STOP_WAIT_MS / 1000));
    stop(0);
  };
  waitForOutput();
}

function stop(code: number): void {
  stopping = true; // also when stdout failed: the disconnects that follow are no news, and nothing is dialled
  for (const u of upstreams) u.stop();
  try {
    saveState();
  } catch (error) {
    log(reason(error));
  }
  stateStore?.close();
  output.close();
  process.exit(code);
}

process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));

/**
 * --web: the live view, beside the output; it sees each message as it comes, and changes nothing of
 * its way. Opened once the signals have their handlers: whoever signals slpc on the line that says
 * where the view is finds them.
 */
const web = setup.web && WebView.open(setup.web, log);

for (const u of upstreams) u.connect();
