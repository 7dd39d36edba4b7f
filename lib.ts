// What slps and slpc share: option parsing, certificate loading, issuer matching, framing, the
// protocol's messages, the resume buffer and per-client streams, backoff and logging. No sockets
// and no timers live here (the time comes in as an argument), so all of it is unit-tested on
// plain values.

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
  /** The flag may be given more than once; the values reach `parse` joined by commas, as in the variable. */
  repeatable?: boolean;
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
    const earlier = given.get(key);
    if (earlier && spec.repeatable) text = `${earlier.text},${text}`;
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

/** A comma-separated list, empty entries dropped. */
export function parseList(text: string): string[] {
  return text.split(",").map((item) => item.trim()).filter((item) => item !== "");
}

/** SHA-256 fingerprints as `openssl x509 -fingerprint -sha256` prints them, colons optional. */
export function parsePins(text: string): Set<string> {
  const pins = parseList(text).map((pin) => pin.replace(/^sha256(\s+fingerprint)?=/i, "").replace(/:/g, "").toUpperCase());
  const bad = pins.find((pin) => !/^[0-9A-F]{64}$/.test(pin));
  if (bad !== undefined) throw new Error(`'${bad}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)`);
  return new Set(pins);
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
  // JavaScript reads a few hundred digits as Infinity, which JSON cannot carry and no timer can wait.
  if (!Number.isFinite(Number(text))) throw new Error("too large");
  return Number(text);
}

/** Seconds, at least `min`: `why` says what a shorter time would break. */
export function parseSecondsFrom(min: number, why: string) {
  return (text: string): number => {
    const seconds = parseSeconds(text);
    if (seconds < min) throw new Error(`must be at least ${min}: ${why}`);
    return seconds;
  };
}

const UNITS: Record<string, number> = { "": 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** A byte count: `8388608`, `8MiB`, `512KiB`, `1GB`. */
export function parseBytes(text: string, max = Number.MAX_SAFE_INTEGER): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new Error("expected a byte count like 8388608, 512KiB or 8MiB");
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new Error("too large");
  if (bytes > max) throw new Error(`must be at most ${max / 1024 ** 3}GiB`);
  return bytes;
}

/** A byte count up to `gib` GiB: what a buffer in memory, or the kernel, can be given. */
export const parseBytesUpTo = (gib: number) => (text: string) => parseBytes(text, gib * 1024 ** 3);

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
  /**
   * Revocation lists the peer's certificate is checked against (--crl), one PEM CRL each: Bun,
   * like Node, reads only the first CRL of a PEM string.
   */
  crl?: string[];
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
export function loadTlsFiles(paths: { cert: string; key: string; ca?: string; crl?: string }): TlsFiles {
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
  const crl = paths.crl ? loadCrl(paths.crl) : undefined;
  if (paths.ca === undefined) return { cert, key, crl, leaf };
  const ca = readPem("ca", paths.ca);
  certificatesIn("ca", paths.ca, ca);
  return { cert, key, ca, crl, leaf };
}

/** A warning when `certificate` expires within `days` (or has expired), else undefined. */
export function expiryWarning(flag: string, certificate: X509Certificate, now: Date, days = 14): string | undefined {
  const left = (Date.parse(certificate.validTo) - now.getTime()) / 86_400_000;
  if (left > days) return undefined;
  const subject = dnOfCertificate(certificate.subject);
  const name = subject.findLast(([type]) => type === "CN")?.[1] ?? formatDN(subject);
  if (left <= 0) return `warning: --${flag} certificate ${name} expired on ${certificate.validTo}`;
  return `warning: --${flag} certificate ${name} expires in ${Math.floor(left)} days (${certificate.validTo}); renew it and send SIGHUP`;
}

/** Reads a PEM file of certificate revocation lists for --crl: each CRL on its own, each one checked. */
function loadCrl(path: string): string[] {
  const pem = readPem("crl", path);
  const blocks = pem.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g);
  if (!blocks) throw new UsageError(`--crl ${path}: holds no CRL (-----BEGIN X509 CRL-----)`);
  blocks.forEach((block, i) => {
    try {
      readCrl(block);
    } catch (error) {
      throw new UsageError(`--crl ${path}: CRL number ${i + 1} cannot be read (${reason(error)})`);
    }
  });
  return blocks;
}

// ---------------------------------------------------------------------------------------------
// Revocation, read by slps itself. A --pin certificate need not chain to --ca, so the TLS layer
// lets it through unverified, CRLs unchecked; and at start slps checks that --crl holds a CRL
// from each CA in --ca. A small DER reader is enough: a CRL's issuer and its revoked serials,
// a certificate's serial, issuer and subject.

/** One DER element: its tag, and where it starts, where its contents start, and where it ends. */
interface DerElement {
  tag: number;
  start: number;
  body: number;
  end: number;
}

const DER_INTEGER = 0x02;
const DER_SEQUENCE = 0x30;
const DER_UTC_TIME = 0x17;
const DER_GENERALIZED_TIME = 0x18;
/** `[0] EXPLICIT`: a certificate's version. */
const DER_CONTEXT_0 = 0xa0;

/** The element at `at`, which must end by `limit`. X.509 uses one-byte tags and lengths of at most 4 bytes. */
function derElement(der: Uint8Array, at: number, limit = der.length): DerElement {
  if (at + 2 > limit) throw new Error("DER truncated");
  const tag = der[at]!;
  let length = der[at + 1]!;
  let body = at + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || body + octets > limit) throw new Error("DER length malformed");
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[body++]!;
  }
  if (body + length > limit) throw new Error("DER truncated");
  return { tag, start: at, body, end: body + length };
}

/** The elements inside `parent`, which must be a SEQUENCE (or another constructed element). */
function derChildren(der: Uint8Array, parent: DerElement | undefined, what: string): DerElement[] {
  if (parent === undefined || (parent.tag & 0x20) === 0) throw new Error(`${what} missing`);
  const children: DerElement[] = [];
  for (let at = parent.body; at < parent.end; at = children.at(-1)!.end) children.push(derElement(der, at, parent.end));
  return children;
}

/** An element of the given tag, or an Error naming what was expected. */
function derExpect(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element?.tag !== tag) throw new Error(`${what} missing`);
  return element;
}

/** A serial number as hex digits, upper case, without leading zeros: the form both sides compare in. */
function serialOf(der: Uint8Array, integer: DerElement): string {
  return Buffer.from(der.subarray(integer.body, integer.end)).toString("hex").toUpperCase().replace(/^0+(?=.)/, "");
}

const derBytes = (der: Uint8Array, element: DerElement) => Buffer.from(der.subarray(element.start, element.end));

/** A certificate revocation list, as far as deciding "revoked" needs it. */
export interface RevocationList {
  /** The CRL issuer's name as DER, compared byte for byte with a certificate's issuer name. */
  issuer: Buffer;
  /** The serial numbers of the certificates it revokes, as hex without leading zeros. */
  revoked: Set<string>;
  /** When it runs out: past it, OpenSSL refuses every certificate under its issuer. */
  nextUpdate?: Date;
}

/** A DER UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`). */
function derTime(der: Uint8Array, element: DerElement): Date | undefined {
  const text = Buffer.from(der.subarray(element.body, element.end)).toString("latin1");
  const match = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) return undefined;
  let year = Number(match[1]);
  if (match[1]!.length === 2) year += year < 50 ? 2000 : 1900;
  const [month, day, hour, minute, second] = match.slice(2).map(Number) as [number, number, number, number, number];
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
}

const isDerTime = (element: DerElement | undefined) =>
  element?.tag === DER_UTC_TIME || element?.tag === DER_GENERALIZED_TIME;

/**
 * Reads one PEM CRL: its issuer and the serials it revokes. Its signature and dates are not
 * checked: the file is the operator's own (--crl), read from local disk like the key beside it.
 */
export function readCrl(pem: string): RevocationList {
  const der = Buffer.from(pem.replace(/-----(BEGIN|END) X509 CRL-----/g, ""), "base64");
  // CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signature }
  const tbs = derChildren(der, derChildren(der, derElement(der, 0), "CertificateList")[0], "TBSCertList");
  // TBSCertList ::= SEQUENCE { version OPTIONAL, signature, issuer, thisUpdate, nextUpdate OPTIONAL,
  //                            revokedCertificates OPTIONAL, crlExtensions [0] OPTIONAL }
  let i = tbs[0]?.tag === DER_INTEGER ? 1 : 0;
  const issuer = derExpect(tbs[i + 1], DER_SEQUENCE, "CRL issuer");
  i += 3;
  const nextUpdate = isDerTime(tbs[i]) ? derTime(der, tbs[i++]!) : undefined;
  const revoked = new Set<string>();
  if (tbs[i]?.tag === DER_SEQUENCE) {
    for (const entry of derChildren(der, tbs[i], "revokedCertificates")) {
      revoked.add(serialOf(der, derExpect(derChildren(der, entry, "CRL entry")[0], DER_INTEGER, "revoked serial")));
    }
  }
  return { issuer: derBytes(der, issuer), revoked, nextUpdate };
}

/**
 * Warnings for the CRLs in `crlPems` that have run out, or will within `days`: OpenSSL then
 * refuses every certificate under their issuer. Each names the issuer when `caPem` holds it.
 */
export function crlExpiryWarnings(flag: string, path: string, crlPems: readonly string[], caPem: string | undefined,
  now: Date, days = 14): string[] {
  const cas = (caPem?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [])
    .map((block) => new X509Certificate(block));
  const warnings: string[] = [];
  crlPems.forEach((pem, index) => {
    const crl = readCrl(pem);
    if (!crl.nextUpdate) return;
    const left = (crl.nextUpdate.getTime() - now.getTime()) / 86_400_000;
    if (left > days) return;
    const ca = cas.find((certificate) => certificateIdentity(certificate).subject.equals(crl.issuer));
    const from = ca ? `from ${formatDN(dnOfCertificate(ca.subject))}` : `number ${index + 1}`;
    const when = crl.nextUpdate.toISOString();
    warnings.push(left <= 0
      ? `warning: --${flag} ${path}: the CRL ${from} expired on ${when}: every certificate under that CA is refused `
        + "(CRL has expired) until it is renewed (bash certs/revoke.sh, then SIGHUP)"
      : `warning: --${flag} ${path}: the CRL ${from} expires in ${Math.floor(left)} days (${when}); renew it `
        + "before then (bash certs/revoke.sh, then SIGHUP), or every certificate under that CA will be refused");
  });
  return warnings;
}

/** A certificate's serial, and its issuer and subject names as DER, from its TBSCertificate. */
function certificateIdentity(certificate: X509Certificate): { serial: string; issuer: Buffer; subject: Buffer } {
  const der = certificate.raw;
  const tbs = derChildren(der, derChildren(der, derElement(der, 0), "Certificate")[0], "TBSCertificate");
  // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject, ... }
  const i = tbs[0]?.tag === DER_CONTEXT_0 ? 1 : 0;
  return {
    serial: serialOf(der, derExpect(tbs[i], DER_INTEGER, "serial number")),
    issuer: derBytes(der, derExpect(tbs[i + 2], DER_SEQUENCE, "issuer")),
    subject: derBytes(der, derExpect(tbs[i + 4], DER_SEQUENCE, "subject")),
  };
}

/** Whether a CRL from the certificate's issuer lists its serial number. */
export function isRevoked(certificate: X509Certificate, crls: readonly RevocationList[]): boolean {
  const { serial, issuer } = certificateIdentity(certificate);
  return crls.some((crl) => crl.issuer.equals(issuer) && crl.revoked.has(serial));
}

/**
 * The CA certificates in `caPem` that no CRL in `crlPems` comes from, as one-line DNs. OpenSSL
 * checks the CRLs of the whole chain, so it refuses every certificate under such a CA.
 */
export function casWithoutCrl(caPem: string, crlPems: readonly string[]): string[] {
  const issuers = crlPems.map((pem) => readCrl(pem).issuer);
  const blocks = caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks
    .map((block) => new X509Certificate(block))
    .filter((ca) => !issuers.some((issuer) => issuer.equals(certificateIdentity(ca).subject)))
    .map((ca) => formatDN(dnOfCertificate(ca.subject)));
}

/** The names a client certificate carries, for --allow: its subject CN and its DNS and email subjectAltNames. */
export function certificateNames(certificate: X509Certificate): string[] {
  const names = dnOfCertificate(certificate.subject)
    .filter(([type]) => type === "CN")
    .map(([, value]) => value);
  for (const entry of (certificate.subjectAltName ?? "").split(", ")) {
    const match = /^(DNS|email):(.*)$/.exec(entry);
    if (match) names.push(match[2]!);
  }
  return names;
}

/** The SHA-256 fingerprint in the form parsePins keeps: 64 hex digits, upper case. */
export function fingerprintOf(certificate: X509Certificate): string {
  return certificate.fingerprint256.replace(/:/g, "").toUpperCase();
}

/** Addresses the handshake-rate table holds at once (--handshake-rate). */
export const MAX_KEYS = 50_000;

/**
 * At most `limit` events per key in any `windowMs`, counted in fixed windows. slps counts TLS
 * handshakes per source address with it, so one address cannot keep it busy with handshakes.
 */
export class RateLimitByKey {
  #limit: number;
  #windowMs: number;
  #maxKeys: number;
  #counts = new Map<string, { since: number; count: number }>();

  /** @param maxKeys the most keys counted at once: what a scan from many addresses may cost */
  constructor(limit: number, windowMs: number, maxKeys = MAX_KEYS) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#maxKeys = maxKeys;
  }

  /**
   * Counts one event for `key`: "allowed", or why not: "rate" when the key is over its limit,
   * "full" when the table of keys is full, so that a new key cannot be counted at all.
   */
  allow(key: string, now: number): "allowed" | "rate" | "full" {
    let entry = this.#counts.get(key);
    if (!entry || now - entry.since >= this.#windowMs) {
      // A scan from many addresses costs bounded memory: finished windows are forgotten, and
      // while too many are still open, new addresses are refused until some finish.
      if (this.#counts.size >= this.#maxKeys) {
        for (const [k, e] of this.#counts) if (now - e.since >= this.#windowMs) this.#counts.delete(k);
        if (this.#counts.size >= this.#maxKeys) return "full";
      }
      entry = { since: now, count: 0 };
      this.#counts.set(key, entry);
    }
    return ++entry.count <= this.#limit ? "allowed" : "rate";
  }

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
    return splitUnescaped(trimmed.slice(1), "/").flatMap((rdn) => rdnAttributes(rdn, text, false));
  }
  return splitUnescaped(trimmed, ",").reverse().flatMap((rdn) => rdnAttributes(rdn, text, true));
}

/** The issuer or subject of a node:crypto X509Certificate: one `TYPE=value` a line, X.500 order. */
export function dnOfCertificate(name: string): DistinguishedName {
  return name
    .split("\n")
    .filter((line) => line !== "")
    .flatMap((line) => rdnAttributes(line, name, false));
}

/**
 * The attributes of one RDN. A multi-valued one (`O=Example + CN=CA`) is a set: its attributes
 * are trimmed around the `+`, and sorted, since DER stores them in an order people do not write.
 */
function rdnAttributes(rdn: string, source: string, trim: boolean): DistinguishedName {
  const parts = splitUnescaped(rdn, "+");
  const clean = trim || parts.length > 1 ? trimUnescaped : (part: string) => part;
  const attributes = parts
    .map((part) => attribute(clean(part), source))
    .map(([type, value]): [string, string] => [type, unescapeValue(clean(value))]);
  const key = ([type, value]: [string, string]) => `${type}\0${value}`;
  if (attributes.length > 1) attributes.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return attributes;
}

/** Trims spaces at both ends, but not one escaped with a backslash (`\ `). */
function trimUnescaped(text: string): string {
  return text.trimStart().replace(/(?<!\\)\s+$/, "");
}

export function sameDN(a: DistinguishedName, b: DistinguishedName): boolean {
  return a.length === b.length && a.every(([type, value], i) => type === b[i]![0] && value === b[i]![1]);
}

/** OpenSSL's one-line form, for log lines. */
export function formatDN(dn: DistinguishedName): string {
  return dn.map(([type, value]) => `/${type === "EMAILADDRESS" ? "emailAddress" : type}=${value.replace(/\//g, "\\/")}`).join("");
}

// ---------------------------------------------------------------------------------------------
// Framing. A log message travels as an octet-counted frame as in RFC 5425 section 4.3,
// `MSG-LEN SP SYSLOG-MSG`, so it may hold any byte, LF and NUL included. A control message
// (hello, resume, start, heartbeat, error) is framed the same way behind a `!`, as in
// `!27 {"type":"heartbeat"}`: a data frame always starts with a digit 1-9, so the two can never
// be mistaken for each other.

/** The frame for one log message: its length in decimal, a space, the message. */
export function encodeFrame(message: Uint8Array): Buffer {
  const header = `${message.length} `;
  const frame = Buffer.allocUnsafe(header.length + message.length);
  frame.write(header, 0, "latin1");
  frame.set(message, header.length);
  return frame;
}

/** The frame for one control message: `!`, the length of its JSON, a space, the JSON. */
export function encodeControl(message: ControlMessage): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  return Buffer.concat([Buffer.from(`!${json.length} `), json]);
}

export interface Frame {
  control: boolean;
  body: Uint8Array;
}

const SPACE = 0x20;
const BANG = 0x21;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** The longest control message accepted: they are small JSON objects. */
export const MAX_CONTROL = 4096;
const MAX_CONTROL_DIGITS = String(MAX_CONTROL).length;

/**
 * Turns a byte stream, cut anywhere, back into the frames that were sent.
 *
 * @example
 * const deframer = new Deframer(65507);
 * deframer.push(Buffer.from("5 hel")); // []
 * deframer.push(Buffer.from("lo3 abc")); // [{ control: false, body: "hello" }, { control: false, body: "abc" }]
 */
export class Deframer {
  /** Why the stream is unusable, once it is; nothing is decoded after that. */
  error: string | undefined;
  #maxLength: number;
  /** Digits of #maxLength and of MAX_CONTROL: a length with more is refused before its space. */
  #maxDigits: number;
  /** Whether the frame being read is a control frame. */
  #control = false;
  /** The length read so far; -1 while between frames. */
  #length = -1;
  #digits = 0;
  /** Parts of the body being collected, and how many bytes it still needs. */
  #parts: Uint8Array[] = [];
  #missing = 0;

  /** @param maxLength the longest log message accepted; a longer length is an error */
  constructor(maxLength: number) {
    this.#maxLength = maxLength;
    this.#maxDigits = String(maxLength).length;
  }

  /** Bytes held for the frame being received: never more than the longest frame allowed. */
  get buffered(): number {
    return this.#parts.reduce((sum, part) => sum + part.length, 0);
  }

  /** True while a frame is partly received. */
  get midFrame(): boolean {
    return this.#length !== -1 || this.#missing > 0 || this.#control;
  }

  /** Feeds the next bytes; returns the frames they complete, in order. */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let i = 0;
    while (i < chunk.length && this.error === undefined) {
      if (this.#missing > 0) {
        const take = Math.min(this.#missing, chunk.length - i);
        this.#parts.push(chunk.subarray(i, i + take));
        this.#missing -= take;
        i += take;
        if (this.#missing === 0) frames.push(this.#takeFrame());
        continue;
      }
      const byte = chunk[i++]!;
      const limit = this.#control ? MAX_CONTROL : this.#maxLength;
      if (byte >= DIGIT_0 && byte <= DIGIT_9) {
        if (this.#length === -1 && byte === DIGIT_0) this.error = "frame length starts with 0";
        else if (++this.#digits > (this.#control ? MAX_CONTROL_DIGITS : this.#maxDigits)) this.error = `frame length over ${limit} bytes`;
        else this.#length = Math.max(this.#length, 0) * 10 + (byte - DIGIT_0);
      } else if (byte === SPACE && this.#length > 0) {
        if (this.#length > limit) this.error = `frame length ${this.#length} over ${limit} bytes`;
        this.#missing = this.#length;
        this.#length = -1;
        this.#digits = 0;
      } else if (byte === BANG && this.#length === -1 && !this.#control) {
        this.#control = true;
      } else {
        this.error = `malformed frame: expected a length, got byte 0x${byte.toString(16).padStart(2, "0")}`;
      }
    }
    return frames;
  }

  #takeFrame(): Frame {
    const parts = this.#parts;
    const frame = { control: this.#control, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
    this.#parts = [];
    this.#control = false;
    return frame;
  }
}

// ---------------------------------------------------------------------------------------------
// The protocol. Right after it has authorized a client, slps sends `hello`; slpc answers with
// `resume`; slps sends `start`, then data frames, each numbered one more than the last, with
// `heartbeat` when idle and `start` again when it had to skip messages. A hello with
// `progress: true` lets the client send `progress` after `start`, with the last number it
// delivered, so that a client slowed by its own output counts as alive. See PROTOCOL in the README.

export const PROTOCOL_VERSION = 1;

export type ControlMessage =
  | { type: "hello"; version: number; server: string; heartbeat: number; first: number; next: number;
      progress?: boolean }
  | { type: "resume"; version: number; server?: string; last?: number; replay?: boolean }
  | { type: "start"; seq: number; lost?: number | null; reason?: string }
  | { type: "progress"; last: number }
  | { type: "heartbeat" }
  | { type: "progress"; last: number }
  | { type: "error"; message: string };

const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

/**
 * The largest sequence number (or count of messages) a control message may carry. At a million
 * messages a second it lasts 142 years, and it leaves room to add to it (`last + 1`, a count of
 * messages since) without leaving the integers a double holds exactly, or a state file that says
 * 2^53 and cannot be read back.
 */
export const MAX_SEQ = 2 ** 52;
const isSeq = (value: unknown) => isCount(value) && (value as number) <= MAX_SEQ;

/** Reads a control frame's JSON; throws an Error saying what is wrong with it. */
export function parseControl(body: Uint8Array): ControlMessage {
  let message: Record<string, unknown>;
  try {
    message = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new Error("control message is not JSON");
  }
  if (typeof message !== "object" || message === null || Array.isArray(message)) throw new Error("control message is not an object");
  const bad = (field: string) => new Error(`${String(message.type)} message has a bad '${field}'`);
  switch (message.type) {
    case "hello":
      if (!isCount(message.version)) throw bad("version");
      if (message.version !== PROTOCOL_VERSION) return message as ControlMessage; // the caller names the mismatch
      if (typeof message.server !== "string" || message.server === "") throw bad("server");
      if (typeof message.heartbeat !== "number" || !(message.heartbeat > 0)) throw bad("heartbeat");
      if (!isSeq(message.first) || (message.first as number) < 1) throw bad("first");
      if (!isSeq(message.next) || (message.next as number) < (message.first as number)) throw bad("next");
      if (message.progress !== undefined && typeof message.progress !== "boolean") throw bad("progress");
      return message as ControlMessage;
    case "resume":
      if (!isCount(message.version)) throw bad("version");
      if (message.version !== PROTOCOL_VERSION) return message as ControlMessage;
      if (message.server !== undefined && (typeof message.server !== "string" || message.server === "")) throw bad("server");
      if ((message.server === undefined) !== (message.last === undefined)) throw bad(message.server === undefined ? "server" : "last");
      if (message.last !== undefined && !isSeq(message.last)) throw bad("last");
      if (message.replay !== undefined && typeof message.replay !== "boolean") throw bad("replay");
      return message as ControlMessage;
    case "start":
      if (!isSeq(message.seq) || (message.seq as number) < 1) throw bad("seq");
      if (message.lost !== undefined && message.lost !== null && !isSeq(message.lost)) throw bad("lost");
      if (message.reason !== undefined && typeof message.reason !== "string") throw bad("reason");
      return message as ControlMessage;
    case "progress":
      if (!isSeq(message.last)) throw bad("last");
      return { type: "progress", last: message.last as number };
    case "heartbeat":
      return { type: "heartbeat" };
    case "error":
      if (typeof message.message !== "string") throw bad("message");
      return message as ControlMessage;
    default:
      throw new Error(`unknown control message type ${JSON.stringify(message.type)}`);
  }
}

/** The `start` that answers a `resume`, given the server's id and the sequence numbers its buffer holds. */
export function resumeStart(
  request: { server?: string; last?: number; replay?: boolean },
  server: { id: string; first: number; next: number },
): Extract<ControlMessage, { type: "start" }> {
  const { id, first, next } = server;
  if (request.server === undefined) return { type: "start", seq: request.replay ? first : next };
  if (request.server !== id) {
    return { type: "start", seq: first, lost: null, reason: `server restarted (was ${request.server}, now ${id})` };
  }
  const wanted = request.last! + 1;
  if (wanted > next) return { type: "start", seq: next, lost: null, reason: `resume point ${request.last} is ahead of the server (${next - 1})` };
  if (wanted >= first) return { type: "start", seq: wanted };
  return { type: "start", seq: first, lost: first - wanted, reason: "server buffer overflowed" };
}

/** Where a client stands: the server run it follows and the last message it delivered. */
export interface ResumePoint {
  server: string;
  last: number;
}

/**
 * Reads slpc's state file; throws an Error saying what is wrong with it. It accepts exactly what
 * slpc writes: a non-empty server id and a `last` from 0 to MAX_SEQ, the largest number slpc delivers.
 */
export function parseResumePoint(text: string): ResumePoint {
  if (text.trim() === "") throw new Error("empty (not an slpc state file)");
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("not an slpc state file (not JSON)");
  }
  if (typeof value?.server !== "string" || value.server === "" || !isSeq(value.last))
    throw new Error('not an slpc state file (expected {"server": ID, "last": N})');
  return { server: value.server, last: value.last };
}

/** slpc's log line for a `start` that skipped messages, or undefined when nothing was lost. */
export function gapNotice(start: Extract<ControlMessage, { type: "start" }>): string | undefined {
  if (start.lost === undefined || start.lost === 0) return undefined;
  const count = start.lost === null ? "an unknown number of messages" : `${start.lost} messages`;
  return `gap: ${count} lost, ${start.reason ?? "no reason given"}; continuing from #${start.seq}`;
}

// ---------------------------------------------------------------------------------------------
// The server's memory of recent messages.

/** The most bytes one data frame takes: the longest message and its header. */
export const MAX_FRAME = MAX_MESSAGE + String(MAX_MESSAGE).length + 1;

/**
 * The most recent data frames, numbered from 1, bounded by bytes. It serves replays to clients
 * that come back, and is also every connected client's queue: each client is a cursor into it.
 *
 * The frames live in one ring of bytes, each written once as it arrives and never copied again
 * (a client's write is a view of the ring), and no frame is a JavaScript object of its own: at
 * tens of thousands of messages a second, a Buffer per message kept for minutes is what the
 * garbage collector would spend its time on.
 */
export class ResumeBuffer {
  /** Sequence number of the oldest frame held (equal to `next` when empty). */
  first = 1;
  /** Sequence number the next frame will get. */
  next = 1;
  /** Bytes held. */
  bytes = 0;
  /** Bytes ever appended: a frame's offset in this count tells how far behind a cursor is. */
  total = 0;
  #ring: Buffer;
  /** Per frame held, from index #head on: where it starts in the ring, and `total` before it. */
  #positions: number[] = [];
  #offsets: number[] = [];
  #head = 0;
  /** Where in the ring the next frame goes. */
  #tail = 0;

  /** @param capacity bytes of ring: what is held at most, plus room for the frame being added */
  constructor(capacity: number) {
    this.#ring = Buffer.allocUnsafe(Math.max(capacity, 2 * MAX_FRAME));
  }

  /** Frames `message` into the ring; forgets the oldest frames it would overwrite. Returns its number. */
  append(message: Uint8Array): number {
    const header = `${message.length} `;
    const size = header.length + message.length;
    // A frame never wraps around the end of the ring, so that each one is a single view.
    const at = this.#tail + size <= this.#ring.length ? this.#tail : 0;
    while (this.first < this.next && this.#overlaps(this.#positions[this.#head]!, this.#length(this.first), at, size)) this.#forgetOldest();
    this.#ring.write(header, at, "latin1");
    this.#ring.set(message, at + header.length);
    this.#positions.push(at);
    this.#offsets.push(this.total);
    this.#tail = at + size;
    this.bytes += size;
    this.total += size;
    return this.next++;
  }

  /** Forgets the oldest frames while over `limit` bytes, but none from `keepFrom` on. */
  trim(limit: number, keepFrom: number = this.next): void {
    while (this.bytes > limit && this.first < keepFrom) this.#forgetOldest();
    if (this.#head > 1024 && this.#head * 2 > this.#positions.length) {
      this.#positions.splice(0, this.#head);
      this.#offsets.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Frame `seq`, as a view of the ring: valid until the next append. */
  frame(seq: number): Uint8Array {
    const start = this.#positions[this.#index(seq)]!;
    return this.#ring.subarray(start, start + this.#length(seq));
  }

  /**
   * Frames from `seq` on that lie next to each other in the ring, up to `maxBytes` (at least
   * one), as one view valid until the next append; and the number of the frame after them.
   */
  run(seq: number, maxBytes: number): { data: Uint8Array; next: number } {
    const start = this.#positions[this.#index(seq)]!;
    let end = start + this.#length(seq);
    let next = seq + 1;
    while (next < this.next && this.#positions[this.#index(next)] === end && end - start + this.#length(next) <= maxBytes) {
      end += this.#length(next++);
    }
    return { data: this.#ring.subarray(start, end), next };
  }

  /** How many bytes lie between frame `seq` and the newest frame's end. */
  behind(seq: number): number {
    return seq >= this.next ? 0 : this.total - this.#offsets[this.#index(seq)]!;
  }

  /** The oldest sequence number whose frames, from it to the newest, fit in `bytes`. */
  catchUpPoint(bytes: number): number {
    let low = this.first;
    let high = this.next;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      if (this.behind(mid) <= bytes) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  #index(seq: number): number {
    return this.#head + seq - this.first;
  }

  #length(seq: number): number {
    const index = this.#index(seq);
    return (seq + 1 < this.next ? this.#offsets[index + 1]! : this.total) - this.#offsets[index]!;
  }

  #forgetOldest(): void {
    this.bytes -= this.#length(this.first);
    this.#head++;
    this.first++;
  }

  #overlaps(start: number, length: number, at: number, size: number): boolean {
    return start < at + size && at < start + length;
  }
}

/**
 * What one connected client still has to be sent: control frames, then data frames from its
 * cursor into the ResumeBuffer. Bun's `write` takes what fits and buffers nothing, so what it
 * did not take waits here until `drain`. A client that falls more than `limit` bytes behind
 * skips its oldest messages: they are counted, and it is told with a `start` frame.
 */
export class ClientStream {
  /** Sequence number of the next data frame to send; undefined until the client has resumed. */
  cursor: number | undefined;
  /** Messages skipped because the client fell behind, since the count was last taken. */
  dropped = 0;
  /** Data frames handed to the socket, and their bytes. */
  sent = 0;
  sentBytes = 0;
  /** When a write last left bytes unsent, if they are still waiting. */
  blockedSince: number | undefined;
  /** When bytes were last handed to the socket. */
  lastWrite: number;
  #buffer: ResumeBuffer;
  #limit: number;
  #controls: Uint8Array[] = [];
  /** Messages skipped and not yet announced to the client. */
  #unannounced = 0;
  /** Bytes built for the socket that it has not taken yet. */
  #unwritten: Uint8Array | undefined;

  constructor(buffer: ResumeBuffer, limit: number, now: number) {
    this.#buffer = buffer;
    this.#limit = limit;
    this.lastWrite = now;
  }

  /** Queues a control frame ahead of any further data. */
  control(message: ControlMessage): void {
    this.#controls.push(encodeControl(message));
  }

  /** Sends `start` and begins the data at its `seq`. */
  start(start: Extract<ControlMessage, { type: "start" }>): void {
    this.control(start);
    this.cursor = start.seq;
  }

  /**
   * After new frames arrived: skips the oldest unsent ones while more than the limit is waiting,
   * or when the buffer no longer holds them.
   */
  keepWithinLimit(): void {
    if (this.cursor === undefined) return;
    if (this.#buffer.behind(this.cursor) <= this.#limit && this.cursor >= this.#buffer.first) return;
    const skipTo = Math.max(this.#buffer.catchUpPoint(this.#limit), this.#buffer.first);
    this.dropped += skipTo - this.cursor;
    this.#unannounced += skipTo - this.cursor;
    this.cursor = skipTo;
  }

  /** True while a write is partly done: anything sent now would land inside a frame. */
  get midWrite(): boolean {
    return this.#unwritten !== undefined;
  }

  /** True when nothing is waiting to be written. */
  get idle(): boolean {
    return this.#unwritten === undefined && this.#controls.length === 0 && (this.cursor === undefined || this.cursor >= this.#buffer.next);
  }

  /**
   * Writes as much as the socket takes, coalescing frames so one write carries many. `write`
   * returns the bytes it took (fewer when the socket is full, or < 0 once it is closed).
   */
  flush(write: (data: Uint8Array) => number, now: number, maxWrite = 256 * 1024): void {
    for (;;) {
      this.#unwritten ??= this.#nextWrite(maxWrite);
      if (this.#unwritten === undefined) {
        this.blockedSince = undefined;
        return;
      }
      const taken = write(this.#unwritten);
      if (taken > 0) this.lastWrite = now;
      if (taken >= this.#unwritten.length) {
        this.#unwritten = undefined;
        continue;
      }
      // The rest waits for `drain`: a copy, since the ring under a view is overwritten in time.
      this.#unwritten = Buffer.from(this.#unwritten.subarray(Math.max(taken, 0)));
      this.blockedSince ??= now;
      return;
    }
  }

  /** Takes and resets the count of skipped messages. */
  takeDropped(): number {
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  #nextWrite(maxWrite: number): Uint8Array | undefined {
    const parts = this.#controls;
    this.#controls = [];
    if (this.#unannounced > 0 && this.cursor !== undefined) {
      const reason = `client too slow: more than ${this.#limit} bytes waiting`;
      parts.push(encodeControl({ type: "start", seq: this.cursor, lost: this.#unannounced, reason }));
      this.#unannounced = 0;
    }
    if (this.cursor !== undefined && this.cursor < this.#buffer.next) {
      const { data, next } = this.#buffer.run(this.cursor, maxWrite);
      this.sent += next - this.cursor;
      this.sentBytes += data.length;
      this.cursor = next;
      parts.push(data);
    }
    return parts.length <= 1 ? parts[0] : Buffer.concat(parts);
  }
}

// ---------------------------------------------------------------------------------------------
// Numbers for operators: SIGUSR1 prints them as one JSON line, --metrics serves them to Prometheus.

export interface Metric {
  name: string;
  help: string;
  type: "counter" | "gauge";
  /** One sample per label set; a metric without labels has one sample with `labels` empty. */
  samples: { labels: Record<string, string>; value: number }[];
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** The Prometheus text exposition format (version 0.0.4). */
export function prometheusText(metrics: Metric[]): string {
  const lines: string[] = [];
  for (const metric of metrics) {
    lines.push(`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} ${metric.type}`);
    for (const { labels, value } of metric.samples) {
      const pairs = Object.entries(labels).map(([key, text]) => `${key}="${escapeLabel(text)}"`);
      lines.push(`${metric.name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}`);
    }
  }
  return lines.join("\n") + "\n";
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

/**
 * A token bucket: at most `perSecond` events a second, in bursts of at most `burst`. slpc uses
 * it to pace what it sends to the local syslog daemon, since a UDP datagram that finds the
 * daemon's receive buffer full is dropped without a word to the sender.
 */
export class RateLimit {
  #perMs: number;
  #burst: number;
  #tokens: number;
  #since: number;

  constructor(perSecond: number, burst: number, now: number) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#since = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#since) * this.#perMs);
    this.#since = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** Milliseconds until the next token. */
  wait(): number {
    return Math.max(0, (1 - this.#tokens) / this.#perMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Output

/** Bytes a message byte takes in a line: LF and CR as `\n` and `\r`, other control bytes as `\xHH`. */
function lineBytes(byte: number): number {
  if (byte === 0x0a || byte === 0x0d) return 2;
  return (byte < 0x20 && byte !== 0x09) || byte === 0x7f ? 4 : 1;
}

const HEX = "0123456789abcdef";

/**
 * Messages as lines for a terminal, in one buffer: LF, CR and other control bytes become escapes
 * so that a message never spans lines or moves the cursor; all other bytes pass unchanged.
 */
export function messagesAsLines(messages: readonly Uint8Array[]): Buffer {
  let size = 0;
  for (const message of messages) {
    size += message.length + 1;
    for (const byte of message) if (byte < 0x20 || byte === 0x7f) size += lineBytes(byte) - 1;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const message of messages) {
    for (const byte of message) {
      const width = byte < 0x20 || byte === 0x7f ? lineBytes(byte) : 1;
      if (width === 1) out[at++] = byte;
      else if (width === 2) [out[at++], out[at++]] = [0x5c, byte === 0x0a ? 0x6e : 0x72];
      else {
        [out[at++], out[at++]] = [0x5c, 0x78];
        [out[at++], out[at++]] = [HEX.charCodeAt(byte >> 4), HEX.charCodeAt(byte & 0xf)];
      }
    }
    out[at++] = 0x0a;
  }
  return out;
}

/** One message as one line: see messagesAsLines. */
export function messageAsLine(message: Uint8Array): Buffer {
  return messagesAsLines([message]);
}

/** `program: text` on stderr, one line per event. */
export function logger(program: string): (text: string) => void {
  return (text) => process.stderr.write(`${program}: ${text}\n`);
}

/** The text of an error from Bun or node, without a stack. */
export function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
}

/** Failures of the network or of the peer's socket, as opposed to a refusal by TLS or a certificate check. */
const NETWORK_ERRORS = new Set([
  "ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNREFUSED", "ECONNABORTED",
  "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "EHOSTDOWN", "ENOTCONN",
]);

/** Whether `error` is a network failure (a reset, a timeout, an unreachable host) rather than a refusal. */
export function isNetworkError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
  return code !== undefined && NETWORK_ERRORS.has(code);
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
