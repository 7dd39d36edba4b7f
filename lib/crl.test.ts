import { describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeCert, removeDir, tempDir } from "../test/kit.ts";
import { casWithoutCrl, crlExpiryWarnings, isRevoked, readCrl } from "./crl.ts";

describe("CRLs read by slps itself", () => {
  const dir = tempDir();
  makeCert(dir, "root", { subject: "/O=Example/CN=Root", ca: true });
  makeCert(dir, "inter", { subject: "/O=Example/CN=Inter", issuer: "root", ca: true });
  makeCert(dir, "kept", { subject: "/CN=kept", issuer: "inter" });
  makeCert(dir, "lost", { subject: "/CN=lost", issuer: "inter" });
  makeCert(dir, "direct", { subject: "/CN=direct", issuer: "root" });
  /** A CRL from `ca` revoking `names`, by `openssl ca`, as an operator makes one. */
  const crl = (ca: string, names: string[]) => {
    writeFileSync(join(dir, `${ca}.index`), "");
    const config = `[ca]\ndefault_ca = t\n[t]\ndatabase = ${dir}/${ca}.index\ndefault_md = sha256\ndefault_crl_days=9`;
    writeFileSync(join(dir, `${ca}.cnf`), config);
    const run = (...args: string[]) => {
      const command = ["openssl", "ca", "-config", `${ca}.cnf`, "-keyfile", `${ca}.key`, "-cert", `${ca}.pem`, ...args];
      const result = Bun.spawnSync(command, { cwd: dir, stderr: "pipe" });
      if (result.exitCode !== 0) throw new Error(result.stderr.toString());
    };
    for (const name of names) run("-revoke", `${name}.pem`);
    run("-gencrl", "-out", `${ca}.crl`);
    return readFileSync(join(dir, `${ca}.crl`), "utf8");
  };
  const read = (name: string) => new X509Certificate(readFileSync(join(dir, `${name}.pem`)));
  const certificates = new Map(["root", "inter", "kept", "lost", "direct"].map((name) => [name, read(name)]));
  const certificate = (name: string) => certificates.get(name)!;
  const fromInter = crl("inter", ["lost"]);
  const fromRoot = crl("root", []);
  const rootPem = readFileSync(join(dir, "root.pem"), "utf8");
  removeDir(dir);

  test("readCrl reads the issuer and the revoked serial numbers", () => {
    const list = readCrl(fromInter);
    expect(list.revoked).toEqual(new Set([certificate("lost").serialNumber.replace(/^0+/, "")]));
    expect(readCrl(fromRoot).revoked.size).toBe(0);
    expect(list.issuer.equals(readCrl(fromRoot).issuer)).toBe(false);
  });

  test("readCrl reads when a CRL runs out, and crlExpiryWarnings names it, its CA and the fix", () => {
    const nextUpdate = readCrl(fromInter).nextUpdate!;
    const days = (nextUpdate.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(8); // made with default_crl_days=9
    expect(days).toBeLessThanOrEqual(9);
    const at = (offsetDays: number) => new Date(nextUpdate.getTime() + offsetDays * 86_400_000);
    expect(crlExpiryWarnings("crl", "c.pem", [fromRoot, fromInter], rootPem, at(-30))).toEqual([]);
    const soon = crlExpiryWarnings("crl", "c.pem", [fromRoot], rootPem, at(-3.5));
    expect(soon).toEqual([
      expect.stringMatching(/^warning: --crl c\.pem: the CRL from \/O=Example\/CN=Root expires in 3 days/),
    ]);
    const late = crlExpiryWarnings("crl", "c.pem", [fromRoot, fromInter], rootPem, at(1));
    expect(late).toHaveLength(2);
    expect(late[0]).toContain("the CRL from /O=Example/CN=Root expired on ");
    expect(late[1]).toContain("the CRL number 2 expired on "); // its CA is not in the bundle given
    expect(late[1]).toContain("until it is renewed (bash certs/revoke.sh, then SIGHUP)");
  });

  test("isRevoked needs both the issuer and the serial to match", () => {
    expect(isRevoked(certificate("lost"), [readCrl(fromInter)])).toBe(true);
    expect(isRevoked(certificate("kept"), [readCrl(fromInter)])).toBe(false);
    expect(isRevoked(certificate("lost"), [readCrl(fromRoot)])).toBe(false);
    expect(isRevoked(certificate("lost"), [])).toBe(false);
    expect(isRevoked(certificate("direct"), [readCrl(fromRoot), readCrl(fromInter)])).toBe(false);
  });

  test("casWithoutCrl names each CA in a bundle that no CRL comes from", () => {
    const bundle = [certificate("root").toString(), certificate("inter").toString()].join("");
    expect(casWithoutCrl(bundle, [fromRoot, fromInter])).toEqual([]);
    expect(casWithoutCrl(bundle, [fromInter])).toEqual(["/O=Example/CN=Root"]);
    expect(casWithoutCrl(bundle, [])).toEqual(["/O=Example/CN=Root", "/O=Example/CN=Inter"]);
  });

  test("a CRL that is not DER, or cut short, is refused with a reason", () => {
    expect(() => readCrl("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----")).toThrow();
    const body = fromInter.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    const cut = Buffer.from(body, "base64").subarray(0, 40).toString("base64");
    expect(() => readCrl(`-----BEGIN X509 CRL-----\n${cut}\n-----END X509 CRL-----`)).toThrow("DER truncated");
  });
});
