// What slps and slpc share: option parsing, certificate loading, issuer matching, framing,
// the per-client send queue, backoff and logging. No sockets and no timers live here, so all of
// it is unit-tested on plain values.

import { X509Certificate, createPrivateKey, constants } from "node:crypto";
import { readFileSync } from "node:fs";

/** TLS 1.3 only: Bun takes no minVersion string, but these OpenSSL flags refuse everything older. */
export const TLS13_ONLY = constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1 | constants.SSL_OP_NO_TLSv1_2;

/** The largest payload of one UDP datagram over IPv4, and so the largest syslog message we carry. */
export const MAX_MESSAGE = 65507;

// ---------------------------------------------------------------------------------------------
// Options: every constant of a program can be set by a flag or an environment variable.

/** Bad flags, environment variables or files: the program prints the message and exits 2. */
export class UsageError extends Error {}

export interface Option<T> {
  /** Long flag name without dashes: `listen` for `--listen`. */
  flag: string;
  /** Environment variable that sets it when the flag is absent. */
  env: string;
  /** Default, written as the user would write it. An empty string means "not set". */
  default: string;
  /** Placeholder shown in --help (`HOST:PORT`); absent for a switch that takes no value. */
  arg?: string;
  help: string;
  /** Turns the text into a value, or throws an Error whose message says what is wrong. */
  parse: (text: string) => T;
}

export type Values<S extends Record<string, Option<unknown>>> = { [K in keyof S]: ReturnType<S[K]["parse"]> };

/** Reads argv (after the script name) and env; returns "help" for --help. Throws UsageError. */
export function parseOptions<S extends Record<string, Option<unknown>>>(
  specs: S,
  argv: readonly string[],
  env: Record<string, string | undefined>,
): Values<S> | "help" {
  const byFlag = new Map(Object.entries(specs).map(([key, spec]) => [spec.flag, key]));
  const given = new Map<string, { text: string; origin: string }>();
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--help" || word === "-h") return "help";
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(word);
    if (!match) throw new UsageError(`unexpected argument '${word}' (see --help)`);
    const name = match[1]!;
    const key = byFlag.get(name);
    if (key === undefined) throw new UsageError(`unknown flag --${name} (see --help)`);
    const spec = specs[key]!;
    let text: string;
    if (spec.arg === undefined) {
      if (match[2] !== undefined) throw new UsageError(`--${name} takes no value`);
      text = "1";
    } else if (match[2] !== undefined) {
      text = match[2];
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value (${spec.arg})`);
      text = argv[++i]!;
    }
    given.set(key, { text, origin: `--${name}` });
  }
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const fromEnv = env[spec.env];
    const { text, origin } =
      given.get(key) ??
      (fromEnv !== undefined ? { text: fromEnv, origin: spec.env } : { text: spec.default, origin: `--${spec.flag}` });
    try {
      values[key] = spec.parse(text);
    } catch (error) {
      const shown = text === "" ? "" : ` ${JSON.stringify(text)}`;
      throw new UsageError(`${origin}${shown}: ${(error as Error).message}`);
    }
  }
  return values as Values<S>;
}

/** The --help text: one paragraph per option with its flag, environment variable and default. */
export function helpText(program: string, summary: string, specs: Record<string, Option<unknown>>): string {
  const lines = [`usage: ${program} [options]`, "", summary, "", "options (flag, environment variable, default):"];
  for (const spec of Object.values(specs)) {
    const flag = spec.arg ? `--${spec.flag} ${spec.arg}` : `--${spec.flag}`;
    const env = spec.arg ? spec.env : `${spec.env}=1`;
    const fallback = spec.default === "" ? "" : `  (default ${spec.default})`;
    lines.push(`  ${flag}   ${env}${fallback}`, `      ${spec.help}`);
  }
  lines.push("  --help", "      show this text");
  return lines.join("\n") + "\n";
}

export interface Address {
  host: string;
  port: number;
}

/** `HOST:PORT`, `[::1]:PORT`, or with a default port also a bare `HOST` or `[::1]`. */
export function parseHostPort(text: string, defaultPort?: number): Address {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+))(?::(\d+))?$/.exec(text);
  if (!match) {
    if (text === "") throw new Error("required");
    throw new Error(defaultPort === undefined ? "expected HOST:PORT" : "expected HOST or HOST:PORT");
  }
  const host = match[1] ?? match[2]!;
  if (match[3] === undefined) {
    if (defaultPort === undefined) throw new Error("expected HOST:PORT (the port is missing)");
    return { host, port: defaultPort };
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65535) throw new Error("port must be 1 to 65535");
  return { host, port };
}

export function formatAddress({ host, port }: Address): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A whole number within bounds. */
export function parseCount(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    if (!/^\d+$/.test(text)) throw new Error("expected a whole number");
    const n = Number(text);
    if (n < min || n > max) throw new Error(`must be ${min} to ${max}`);
    return n;
  };
}

/** Seconds, fractions allowed (`0.5`), above zero. */
export function parseSeconds(text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) throw new Error("expected seconds above zero, like 15 or 0.5");
  return Number(text);
}

const UNITS: Record<string, number> = { "": 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** A byte count: `8388608`, `8MiB`, `512KiB`, `1GB`. */
export function parseBytes(text: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new Error("expected a byte count like 8388608, 512KiB or 8MiB");
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new Error("too large");
  return bytes;
}

export function parseSwitch(text: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off|)$/i.test(text)) return false;
  throw new Error("expected 1 or 0");
}

export function parseRequired(text: string): string {
  if (text === "") throw new Error("required");
  return text;
}

// ---------------------------------------------------------------------------------------------
// Certificates

export interface TlsFiles {
  cert: string;
  key: string;
  /** Absent: the system trust store (slpc only). */
  ca?: string;
  /** The own certificate, for log lines and expiry checks. */
  leaf: X509Certificate;
}

function readPem(flag: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = { ENOENT: "no such file", EACCES: "permission denied", EISDIR: "is a folder" }[code ?? ""];
    throw new UsageError(`--${flag} ${path}: ${why ?? (error as Error).message}`);
  }
  if (!text.includes("-----BEGIN ")) throw new UsageError(`--${flag} ${path}: not a PEM file`);
  return text;
}

function certificatesIn(flag: string, path: string, pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new UsageError(`--${flag} ${path}: holds no certificate`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new UsageError(`--${flag} ${path}: holds a certificate that cannot be parsed`);
    }
  });
}

/**
 * Reads and checks the certificate chain, its key and the CA bundle before any socket opens, so
 * a wrong path or a mismatched key is one clear line instead of a failed handshake later.
 */
export function loadTlsFiles(paths: { cert: string; key: string; ca?: string }): TlsFiles {
  const cert = readPem("cert", paths.cert);
  const leaf = certificatesIn("cert", paths.cert, cert)[0]!;
  const key = readPem("key", paths.key);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(`--key ${paths.key}: not a private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new UsageError(`--key ${paths.key}: does not belong to --cert ${paths.cert}`);
  if (paths.ca === undefined) return { cert, key, leaf };
  const ca = readPem("ca", paths.ca);
  certificatesIn("ca", paths.ca, ca);
  return { cert, key, ca, leaf };
}

// ---------------------------------------------------------------------------------------------
// Issuer matching. A distinguished name is kept as its attributes in X.500 order (country
// first), each as [TYPE, value], so the two ways people write one compare equal.

export type DistinguishedName = [type: string, value: string][];

const TYPE_ALIASES: Record<string, string> = { E: "EMAILADDRESS", "1.2.840.113549.1.9.1": "EMAILADDRESS", S: "ST" };

function attribute(text: string, source: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new Error(`'${source}' is not a distinguished name: '${text}' lacks TYPE=`);
  const type = text.slice(0, eq).trim().toUpperCase();
  return [TYPE_ALIASES[type] ?? type, text.slice(eq + 1)];
}

/** Splits on `separator` where it is not escaped by a backslash; keeps the escapes. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts = [""];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\\" && i + 1 < text.length) parts[parts.length - 1] += ch + text[++i];
    else if (ch === separator) parts.push("");
    else parts[parts.length - 1] += ch;
  }
  return parts;
}

/** Undoes RFC 4514 escapes: `\,` and the like, and `\C3\A9` hex pairs (UTF-8). */
function unescapeValue(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === "\\" && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      if (value[i] === "\\") i++;
      bytes.push(...Buffer.from(value[i] ?? "", "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/**
 * Parses a DN in OpenSSL's one-line form (`/C=US/O=Example/CN=Example CA`) or in RFC 2253 /
 * RFC 4514 form (`CN=Example CA,O=Example,C=US`, which lists the attributes the other way round).
 */
export function parseDN(text: string): DistinguishedName {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error("empty distinguished name");
  if (trimmed.startsWith("/")) {
    return splitUnescaped(trimmed.slice(1), "/")
      .flatMap((rdn) => splitUnescaped(rdn, "+"))
      .map((part) => attribute(part, text))
      .map(([type, value]) => [type, unescapeValue(value)]);
  }
  return splitUnescaped(trimmed, ",")
    .reverse()
    .flatMap((rdn) => splitUnescaped(rdn, "+"))
    .map((part) => attribute(part.trim(), text))
    .map(([type, value]) => [type, unescapeValue(value.trim())]);
}

/** The issuer or subject of a node:crypto X509Certificate: one `TYPE=value` a line, X.500 order. */
export function dnOfCertificate(name: string): DistinguishedName {
  return name
    .split("\n")
    .filter((line) => line !== "")
    .flatMap((line) => splitUnescaped(line, "+"))
    .map((part) => attribute(part, name))
    .map(([type, value]) => [type, unescapeValue(value)]);
}

export function sameDN(a: DistinguishedName, b: DistinguishedName): boolean {
  return a.length === b.length && a.every(([type, value], i) => type === b[i]![0] && value === b[i]![1]);
}

/** OpenSSL's one-line form, for log lines. */
export function formatDN(dn: DistinguishedName): string {
  return dn.map(([type, value]) => `/${type === "EMAILADDRESS" ? "emailAddress" : type}=${value.replace(/\//g, "\\/")}`).join("");
}

// ---------------------------------------------------------------------------------------------
// Framing: octet counting as in RFC 5425 section 4.3, `MSG-LEN SP SYSLOG-MSG`, so a message may
// hold any byte, LF and NUL included.

/** The frame for one message: its length in decimal, a space, the message. */
export function encodeFrame(message: Uint8Array): Buffer {
  const header = `${message.length} `;
  const frame = Buffer.allocUnsafe(header.length + message.length);
  frame.write(header, 0, "latin1");
  frame.set(message, header.length);
  return frame;
}

const SPACE = 0x20;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * Turns a byte stream, cut anywhere, back into the messages that were framed.
 *
 * @example
 * const deframer = new Deframer(65507);
 * deframer.push(Buffer.from("5 hel")); // []
 * deframer.push(Buffer.from("lo3 abc")); // [hello, abc]
 */
export class Deframer {
  /** Why the stream is unusable, once it is; nothing is decoded after that. */
  error: string | undefined;
  #maxLength: number;
  #maxDigits: number;
  /** Digits of the length read so far; -1 while between frames. */
  #length = -1;
  #digits = 0;
  /** Parts of the message being collected, and how many bytes it still needs. */
  #parts: Uint8Array[] = [];
  #missing = 0;

  /** @param maxLength the longest message accepted; a longer length is an error */
  constructor(maxLength: number) {
    this.#maxLength = maxLength;
    this.#maxDigits = String(maxLength).length;
  }

  /** True while a frame is partly received. */
  get midFrame(): boolean {
    return this.#length !== -1 || this.#missing > 0;
  }

  /** Feeds the next bytes; returns the messages they complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const messages: Uint8Array[] = [];
    let i = 0;
    while (i < chunk.length && this.error === undefined) {
      if (this.#missing > 0) {
        const take = Math.min(this.#missing, chunk.length - i);
        this.#parts.push(chunk.subarray(i, i + take));
        this.#missing -= take;
        i += take;
        if (this.#missing === 0) messages.push(this.#takeMessage());
        continue;
      }
      const byte = chunk[i++]!;
      if (byte >= DIGIT_0 && byte <= DIGIT_9) {
        if (this.#length === -1 && byte === DIGIT_0) this.error = "frame length starts with 0";
        else if (++this.#digits > this.#maxDigits) this.error = `frame length over ${this.#maxLength} bytes`;
        else this.#length = Math.max(this.#length, 0) * 10 + (byte - DIGIT_0);
      } else if (byte === SPACE && this.#length > 0) {
        if (this.#length > this.#maxLength) this.error = `frame length ${this.#length} over ${this.#maxLength} bytes`;
        this.#missing = this.#length;
        this.#length = -1;
        this.#digits = 0;
      } else {
        this.error = `malformed frame: expected a length, got byte 0x${byte.toString(16).padStart(2, "0")}`;
      }
    }
    return messages;
  }

  #takeMessage(): Uint8Array {
    const parts = this.#parts;
    this.#parts = [];
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

// ---------------------------------------------------------------------------------------------
// The server's queue of frames waiting to be written to one client.

/**
 * Frames waiting for one client's socket. Bun's `write` takes what fits and buffers nothing, so
 * the rest waits here until `drain`. Over its limit it drops whole frames, oldest first, never
 * the one already partly written (that would corrupt the stream).
 */
export class SendQueue {
  /** Bytes waiting. */
  bytes = 0;
  /** Frames dropped because the queue was full, since the count was last taken. */
  dropped = 0;
  #frames: Uint8Array[] = [];
  /** How much of #frames[0] is already written. */
  #written = 0;
  #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get empty(): boolean {
    return this.#frames.length === 0;
  }

  push(frame: Uint8Array): void {
    this.#frames.push(frame);
    this.bytes += frame.length;
    while (this.bytes > this.#limit && this.#frames.length > 1) {
      const oldest = this.#written > 0 ? 1 : 0;
      this.bytes -= this.#frames[oldest]!.length;
      this.#frames.splice(oldest, 1);
      this.dropped++;
    }
  }

  /**
   * Writes as much as the socket takes, coalescing small frames so one write carries many.
   * `write` returns the bytes it took (fewer than given when the socket is full, or < 0 when
   * it is closed). Returns true when everything was written.
   */
  flush(write: (data: Uint8Array) => number, maxWrite = 256 * 1024): boolean {
    while (this.#frames.length > 0) {
      let data: Uint8Array;
      let count = 1;
      const first = this.#frames[0]!.subarray(this.#written);
      if (first.length >= maxWrite || this.#frames.length === 1) {
        data = first;
      } else {
        let size = first.length;
        while (count < this.#frames.length && size + this.#frames[count]!.length <= maxWrite) size += this.#frames[count++]!.length;
        data = count === 1 ? first : Buffer.concat([first, ...this.#frames.slice(1, count)], size);
      }
      const taken = write(data);
      if (taken <= 0) return false;
      this.#consume(taken);
      if (taken < data.length) return false;
    }
    return true;
  }

  /** Takes and resets the count of dropped frames. */
  takeDropped(): number {
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  #consume(bytes: number): void {
    this.bytes -= bytes;
    while (bytes > 0) {
      const rest = this.#frames[0]!.length - this.#written;
      if (bytes < rest) {
        this.#written += bytes;
        return;
      }
      bytes -= rest;
      this.#frames.shift();
      this.#written = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reconnecting

/**
 * Seconds to wait before reconnect attempt number `attempt` (0 for the first retry): doubling
 * from `min` up to `max`, with jitter so that many clients cut off together don't return in step.
 * The result lies between half the doubled value and the doubled value, never below `min`.
 */
export function nextBackoff(attempt: number, min: number, max: number, random: number = Math.random()): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.max(min, ceiling / 2 + (random * ceiling) / 2);
}

// ---------------------------------------------------------------------------------------------
// Output

/**
 * One message as one line for a terminal: LF, CR and other control bytes become escapes so
 * that a message never spans lines or moves the cursor; all other bytes pass unchanged.
 */
export function messageAsLine(message: Uint8Array): Buffer {
  const out: number[] = [];
  for (const byte of message) {
    if (byte === 0x0a) out.push(0x5c, 0x6e);
    else if (byte === 0x0d) out.push(0x5c, 0x72);
    else if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) out.push(...Buffer.from(`\\x${byte.toString(16).padStart(2, "0")}`));
    else out.push(byte);
  }
  out.push(0x0a);
  return Buffer.from(out);
}

/** `program: text` on stderr, one line per event. */
export function logger(program: string): (text: string) => void {
  return (text) => process.stderr.write(`${program}: ${text}\n`);
}

/** The text of an error from Bun or node, without a stack. */
export function reason(error: unknown): string {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ? `${error.message} (${(error as NodeJS.ErrnoException).code})` : error.message;
  return String(error);
}

/** Why a listening socket could not be opened, in the words an operator needs. */
export function bindFailure(flag: string, address: Address, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `cannot listen on ${formatAddress(address)} (--${flag})`;
  if (code === "EADDRINUSE") return `${where}: the address is already in use; pick another with --${flag}`;
  if (code === "EACCES" && address.port < 1024)
    return `${where}: ports under 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024 up with --${flag}`;
  if (code === "EADDRNOTAVAIL") return `${where}: no such address on this machine`;
  return `${where}: ${reason(error)}`;
}
