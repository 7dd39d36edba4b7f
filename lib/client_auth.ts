// Whether a client certificate may receive logs, and how the client is named in log lines: slps's
// checks after the TLS handshake, on plain values (the certificate, the TLS layer's verdict, the
// time, the number of clients), so that each rule is tested without a socket.

import type { X509Certificate } from "node:crypto";
import { isRevoked, type RevocationList } from "./crl.ts";
import { type DistinguishedName, dnOfCertificate, formatDN, sameDN } from "./dn.ts";
import { reason } from "./log.ts";
import { peerText } from "./terminal_text.ts";
import { certificateNames, fingerprintOf } from "./tls.ts";

/** Who may receive logs, beyond a certificate that chains to --ca. */
export interface ClientPolicy {
  /** --pin: SHA-256 fingerprints; when there are any, a certificate need not chain to --ca. */
  pins: ReadonlySet<string>;
  /** --allow: names one of which the certificate's CN or a DNS or email name must be. */
  allow: readonly string[];
  /** --issuer: the DN the certificate's issuer must be. */
  issuer?: DistinguishedName;
  /** --max-clients: authorized clients at once. */
  maxClients: number;
  /** --crl, read by slps itself: the TLS layer checks it only for certificates it verified, not pinned ones. */
  crls: readonly RevocationList[];
}

/** What the TLS handshake left: the peer's certificate, and the TLS layer's verdict on it. */
export interface Handshake {
  certificate: X509Certificate | undefined;
  /** Bun's handshake `success`, and the socket's `authorized`: Bun may report one without the other. */
  success: boolean;
  authorized: boolean;
  /** Why the TLS layer refused it, if it did. */
  error: Error | null;
}

/**
 * Why this client may not receive logs, or undefined if it may. `clients` is the number already
 * authorized, `now` the time in milliseconds since the epoch. Names and the issuer in the answer
 * are the peer's, escaped: a CA that signs what it is asked to may let anything through.
 */
export function refusal(handshake: Handshake, policy: ClientPolicy, clients: number, now: number): string | undefined {
  const { certificate, success, authorized } = handshake;
  const why = handshake.error ? reason(handshake.error) : "not authorized";
  if (!certificate) return `no client certificate${success ? "" : ` (${why})`}`;
  // Each field read of the peer's certificate costs memory for as long as the client stays (1,000
  // idle clients: about 2 KB each for the serial and the issuer): read only what is needed.
  const serialOf = () => `serial ${certificate.serialNumber}`;
  if (policy.pins.size > 0) {
    // Pinned certificates need not chain to --ca, so the TLS layer let them all through: pin and dates
    // are checked here.
    if (!policy.pins.has(fingerprintOf(certificate))) return `certificate ${serialOf()} is not pinned (--pin)`;
    if (now < Date.parse(certificate.validFrom) || now > Date.parse(certificate.validTo))
      return `certificate ${serialOf()} is outside its validity (${certificate.validFrom} to ${certificate.validTo})`;
    if (isRevoked(certificate, policy.crls)) return `certificate ${serialOf()} is revoked (--crl)`;
  } else if (!success || !authorized) {
    return `certificate ${serialOf()} refused: ${why}`;
  }
  if (policy.allow.length > 0) {
    const names = certificateNames(certificate);
    if (!names.some((name) => policy.allow.includes(name)))
      return `certificate ${serialOf()} names ${peerText(names.join(", ")) || "nothing"}, none of them in --allow`;
  }
  if (policy.issuer) {
    const issuer = dnOfCertificate(certificate.issuer);
    if (!sameDN(issuer, policy.issuer))
      return `issuer ${peerText(formatDN(issuer))} is not --issuer ${formatDN(policy.issuer)}`;
  }
  if (clients >= policy.maxClients) return `already ${clients} clients (--max-clients ${policy.maxClients})`;
  return undefined;
}

/**
 * How an authorized client is named in log lines and counters: its address, and its certificate's
 * CN or else its subject, escaped and capped as peer text (the CA signed them, but whoever asked
 * for the certificate chose them).
 */
export function clientIdentity(remote: string, certificate: X509Certificate | undefined) {
  const subject = dnOfCertificate(certificate?.subject ?? "");
  const cn = subject.findLast(([type]) => type === "CN");
  const shown = peerText(formatDN(subject));
  // Copies: the text as built is a tree of some 28 strings and slices of the certificate's, kept
  // for as long as the client stays.
  const own = (text: string) => Buffer.from(text).toString();
  return { name: own(`${remote} (${cn ? peerText(cn[1]) : shown})`), subject: own(shown) };
}
