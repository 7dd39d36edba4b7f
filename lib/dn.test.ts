import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../test/fuzz.ts";
import { dnOfCertificate, formatDN, parseDN, sameDN } from "./dn.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

describe("distinguished names", () => {
  const x509Issuer = "C=US\nO=Example\nCN=Example CA";

  test("OpenSSL's one-line form and RFC 2253 name the same issuer", () => {
    const oneLine = parseDN("/C=US/O=Example/CN=Example CA");
    const rfc2253 = parseDN("CN=Example CA,O=Example,C=US");
    expect(sameDN(oneLine, rfc2253)).toBe(true);
    expect(sameDN(oneLine, dnOfCertificate(x509Issuer))).toBe(true);
  });

  test("order, values and extra attributes all matter", () => {
    const issuer = dnOfCertificate(x509Issuer);
    expect(sameDN(parseDN("/O=Example/C=US/CN=Example CA"), issuer)).toBe(false);
    expect(sameDN(parseDN("/C=US/O=Example/CN=Example CA B"), issuer)).toBe(false);
    expect(sameDN(parseDN("/C=US/O=Example/OU=X/CN=Example CA"), issuer)).toBe(false);
    expect(sameDN(parseDN("/C=US/O=example/CN=Example CA"), issuer)).toBe(false);
  });

  test("attribute types compare without regard to case or alias", () => {
    expect(sameDN(parseDN("/c=US/emailAddress=ca@example.com"), parseDN("E=ca@example.com,C=US"))).toBe(true);
  });

  test("escaped separators and spaces after commas are understood", () => {
    expect(parseDN("CN=Example\\, Inc. CA, O=A\\+B, C=US")).toEqual([
      ["C", "US"],
      ["O", "A+B"],
      ["CN", "Example, Inc. CA"],
    ]);
    expect(parseDN("/O=a\\/b/CN=c")).toEqual([
      ["O", "a/b"],
      ["CN", "c"],
    ]);
    expect(parseDN("CN=caf\\C3\\A9")).toEqual([["CN", "café"]]);
  });

  test("text that is no DN is refused with its reason", () => {
    expect(() => parseDN("Example CA")).toThrow("lacks TYPE=");
    expect(() => parseDN("")).toThrow("empty");
  });

  test("formatDN writes the one-line form back", () => {
    expect(formatDN(parseDN("CN=Example CA,O=Example,C=US"))).toBe("/C=US/O=Example/CN=Example CA");
  });
});

describe("multi-valued RDNs", () => {
  test("an issuer with O and CN in one RDN matches --issuer in every way of writing it", () => {
    const issuer = dnOfCertificate("C=US\nO=Example + CN=Multi CA"); // as node:crypto prints it
    const forms = ["/C=US/O=Example+CN=Multi CA", "/C=US/CN=Multi CA+O=Example", "/C=US/O=Example + CN=Multi CA"];
    forms.push("CN=Multi CA+O=Example,C=US");
    for (const written of forms) expect(sameDN(parseDN(written), issuer)).toBe(true);
    expect(sameDN(parseDN("/C=US/O=Example+CN=Other CA"), issuer)).toBe(false);
  });

  test("a space escaped at the end of a value is kept", () => {
    expect(parseDN("/O=a\\ +CN=b")).toEqual([
      ["CN", "b"],
      ["O", "a "],
    ]);
    expect(dnOfCertificate("O=a\\  + CN=b")).toEqual([
      ["CN", "b"],
      ["O", "a "],
    ]);
  });
});

describe("distinguished names under arbitrary input", () => {
  test("arbitrary text is a distinguished name or a clear error", () => {
    property(fc.string({ maxLength: 200 }), (text) => returnsOrRefuses(() => parseDN(text)));
  });
});
