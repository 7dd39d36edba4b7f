// Revocation, read by slps itself. A --pin certificate need not chain to --ca, so the TLS layer
// lets it through unverified, CRLs unchecked; and at start slps checks that --crl holds a CRL
// from each CA in --ca. A small DER reader is enough: a CRL's issuer and its revoked serials,
// a certificate's serial, issuer and subject.

import { X509Certificate } from "node:crypto";
import { dnOfCertificate, formatDN } from "./dn.ts";

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
  return Buffer.from(der.subarray(integer.body, integer.end))
    .toString("hex")
    .toUpperCase()
    .replace(/^0+(?=.)/, "");
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

/**
 * A warning when a CA in `caPem` (--ca) has no CRL in `crlPems` (--crl at `path`): OpenSSL checks the
 * CRLs of the whole chain, so it refuses every client certificate under that CA.
 */
export function missingCrlWarning(path: string, caPem: string, crlPems: readonly string[]): string | undefined {
  const missing = casWithoutCrl(caPem, crlPems);
  if (missing.length === 0) return undefined;
  const consequence = "every client certificate under it will be refused (unable to get certificate CRL)";
  return `warning: --crl ${path} holds no CRL from ${missing.join(", ")} (in --ca): ${consequence}`;
}

/**
 * Warnings for the CRLs in `crlPems` that have run out, or will within `days`: OpenSSL then
 * refuses every certificate under their issuer. Each names the issuer when `caPem` holds it.
 */
export function crlExpiryWarnings(
  flag: string,
  path: string,
  crlPems: readonly string[],
  caPem: string | undefined,
  now: Date,
  days = 14,
): string[] {
  const cas = (caPem?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new X509Certificate(block),
  );
  const warnings: string[] = [];
  crlPems.forEach((pem, index) => {
    const crl = readCrl(pem);
    if (!crl.nextUpdate) return;
    const left = (crl.nextUpdate.getTime() - now.getTime()) / 86_400_000;
    if (left > days) return;
    const ca = cas.find((certificate) => certificateIdentity(certificate).subject.equals(crl.issuer));
    const from = ca ? `from ${formatDN(dnOfCertificate(ca.subject))}` : `number ${index + 1}`;
    const when = crl.nextUpdate.toISOString();
    warnings.push(
      left <= 0
        ? `warning: --${flag} ${path}: the CRL ${from} expired on ${when}: ` +
            "every certificate under that CA is refused (CRL has expired) until it is renewed " +
            "(bash certs/revoke.sh, then SIGHUP)"
        : `warning: --${flag} ${path}: the CRL ${from} expires in ${Math.floor(left)} days (${when}); renew it ` +
            "before then (bash certs/revoke.sh, then SIGHUP), or every certificate under that CA will be refused",
    );
  });
  return warnings;
}
