import { afterAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeCert, removeDir, tempDir } from "../test/kit.ts";
import { type ClientPolicy, clientIdentity, type Handshake, refusal } from "./client_auth.ts";
import { parseDN } from "./dn.ts";
import { fingerprintOf } from "./tls.ts";

const dir = tempDir();
afterAll(() => removeDir(dir));
makeCert(dir, "root", { subject: "/O=Example/CN=Root", ca: true });
makeCert(dir, "other", { subject: "/O=Example/CN=Other", ca: true });
makeCert(dir, "home", { subject: "/O=Example/CN=home", issuer: "root", san: "DNS:home.example" });
makeCert(dir, "nocn", { subject: "/O=Example/OU=Laptops", issuer: "other" });
const read = (name: string) => new X509Certificate(readFileSync(join(dir, `${name}.pem`)));
const [home, nocn] = [read("home"), read("nocn")];

/** A handshake the TLS layer accepted. */
const accepted = (certificate: X509Certificate): Handshake => ({
  certificate,
  success: true,
  authorized: true,
  error: null,
});
const policy = (changes: Partial<ClientPolicy> = {}): ClientPolicy => ({
  pins: new Set(),
  allow: [],
  maxClients: 4,
  crls: [],
  ...changes,
});
const now = Date.now();

describe("refusal", () => {
  test("a certificate the TLS layer verified passes when no rule says otherwise", () => {
    expect(refusal(accepted(home), policy(), 0, now)).toBeUndefined();
  });

  test("no certificate, or one the TLS layer refused, is refused with the TLS layer's reason", () => {
    const none = {
      certificate: undefined,
      success: false,
      authorized: false,
      error: new Error("peer did not return a cert"),
    };
    expect(refusal(none, policy(), 0, now)).toBe("no client certificate (peer did not return a cert)");
    // Bun may say success for a certificate that failed verification: `authorized` decides.
    const unverified = {
      ...accepted(home),
      authorized: false,
      error: new Error("unable to get local issuer certificate"),
    };
    expect(refusal(unverified, policy(), 0, now)).toBe(
      `certificate serial ${home.serialNumber} refused: unable to get local issuer certificate`,
    );
  });

  test("--allow takes the CN or a DNS or email name, and names what the certificate has when it refuses", () => {
    expect(refusal(accepted(home), policy({ allow: ["home.example"] }), 0, now)).toBeUndefined();
    expect(refusal(accepted(home), policy({ allow: ["laptop"] }), 0, now)).toBe(
      `certificate serial ${home.serialNumber} names home, home.example, none of them in --allow`,
    );
    expect(refusal(accepted(nocn), policy({ allow: ["laptop"] }), 0, now)).toMatch(/names nothing, none/);
  });

  test("--issuer must be the certificate's issuer", () => {
    expect(refusal(accepted(home), policy({ issuer: parseDN("CN=Root,O=Example") }), 0, now)).toBeUndefined();
    expect(refusal(accepted(nocn), policy({ issuer: parseDN("/O=Example/CN=Root") }), 0, now)).toBe(
      "issuer /O=Example/CN=Other is not --issuer /O=Example/CN=Root",
    );
  });

  test("with pins the TLS layer's verdict does not count, the pin and the dates do", () => {
    const pins = new Set([fingerprintOf(home)]);
    const unverified = { ...accepted(home), success: false, authorized: false, error: new Error("self-signed") };
    expect(refusal(unverified, policy({ pins }), 0, now)).toBeUndefined();
    expect(refusal(accepted(nocn), policy({ pins }), 0, now)).toBe(
      `certificate serial ${nocn.serialNumber} is not pinned (--pin)`,
    );
    const later = Date.parse(home.validTo) + 1000;
    expect(refusal(accepted(home), policy({ pins }), 0, later)).toMatch(/is outside its validity \(.* to .*\)$/);
  });

  test("one client over --max-clients is refused, after every other check", () => {
    expect(refusal(accepted(home), policy({ maxClients: 2 }), 1, now)).toBeUndefined();
    expect(refusal(accepted(home), policy({ maxClients: 2 }), 2, now)).toBe("already 2 clients (--max-clients 2)");
    expect(refusal(accepted(home), policy({ maxClients: 2, allow: ["x"] }), 2, now)).toMatch(/none of them in --allow/);
  });
});

describe("clientIdentity", () => {
  test("the address and the CN, or the subject without one", () => {
    expect(clientIdentity("192.0.2.7:5000", home)).toEqual({
      name: "192.0.2.7:5000 (home)",
      subject: "/O=Example/CN=home",
    });
    expect(clientIdentity("[2001:db8::1]:5000", nocn)).toEqual({
      name: "[2001:db8::1]:5000 (/O=Example/OU=Laptops)",
      subject: "/O=Example/OU=Laptops",
    });
  });
});
