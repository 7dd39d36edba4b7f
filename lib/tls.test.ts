import { describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeCert, removeDir, tempDir } from "../test/kit.ts";
import { parsePins } from "./options.ts";
import { certificateNames, expiryWarning, fingerprintOf } from "./tls.ts";

describe("certificateNames and fingerprints", () => {
  test("a certificate's names for --allow are its CN and its DNS and email subjectAltNames", () => {
    const dir = tempDir();
    makeCert(dir, "named", {
      subject: "/O=Example/CN=laptop",
      san: "DNS:laptop.example.com,email:ann@example.com,IP:192.0.2.1",
    });
    const certificate = new X509Certificate(readFileSync(join(dir, "named.pem")));
    removeDir(dir);
    expect(certificateNames(certificate)).toEqual(["laptop", "laptop.example.com", "ann@example.com"]);
    expect(fingerprintOf(certificate)).toMatch(/^[0-9A-F]{64}$/);
    expect(parsePins(certificate.fingerprint256.toLowerCase())).toEqual(new Set([fingerprintOf(certificate)]));
  });
});

describe("expiryWarning", () => {
  // A real certificate, made with openssl for this run, valid for 30 days.
  const dir = tempDir();
  makeCert(dir, "expiring", { subject: "/CN=expiring", days: 30 });
  const certificate = new X509Certificate(readFileSync(join(dir, "expiring.pem")));
  removeDir(dir);
  const expires = Date.parse(certificate.validTo);
  const daysBefore = (days: number) => new Date(expires - days * 86_400_000);

  test("says nothing while more than 14 days are left", () => {
    expect(expiryWarning("cert", certificate, daysBefore(20))).toBeUndefined();
  });

  test("warns within 14 days, and after expiry", () => {
    expect(expiryWarning("cert", certificate, daysBefore(5.5))).toBe(
      `warning: --cert certificate expiring expires in 5 days (${certificate.validTo}); renew it and send SIGHUP`,
    );
    expect(expiryWarning("cert", certificate, daysBefore(-1))).toBe(
      `warning: --cert certificate expiring expired on ${certificate.validTo}`,
    );
  });
});
