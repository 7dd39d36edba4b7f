// The TLS profile and the files behind it: the certificate chain, its key, the CA bundle and the
// CRLs, each read and checked before any socket opens, so that a wrong path or a key that does
// not belong is one clear line. Also what slps reads from a client certificate for --allow and --pin.

import { constants, createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { readCrl } from "./crl.ts";
import { dnOfCertificate, formatDN } from "./dn.ts";
import { reason } from "./log.ts";
import { UsageError } from "./options.ts";

/** TLS 1.3 only: Bun takes no minVersion string, but these OpenSSL flags refuse everything older. */
export const TLS13_ONLY = constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1 | constants.SSL_OP_NO_TLSv1_2;

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
    throw new UsageError(`--${flag} ${path}: ${why ?? reason(error)}`);
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
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(`--key ${paths.key}: not a private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(privateKey))
    throw new UsageError(`--key ${paths.key}: does not belong to --cert ${paths.cert}`);
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
  const expires = `expires in ${Math.floor(left)} days (${certificate.validTo})`;
  return `warning: --${flag} certificate ${name} ${expires}; renew it and send SIGHUP`;
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

/** TLS 1.3 with the client's certificate, to a server whose certificate must chain to the CA and carry `serverName`. */
export function clientTls(files: TlsFiles, serverName: string) {
  const { cert, key, ca, crl } = files;
  return { cert, key, ca, crl, serverName, rejectUnauthorized: true, secureOptions: TLS13_ONLY };
}
