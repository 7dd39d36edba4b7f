// Unit tests of the proxy settings: --proxy's forms, what an error or a log line shows of them
// (never the credentials), the environment's variables as curl reads them, and NO_PROXY.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../test/fuzz.ts";
import { UsageError } from "./options.ts";
import {
  bypassesProxy,
  environmentProxy,
  formatProxy,
  ipBytes,
  parseNoProxy,
  parseProxySetting,
  parseProxyUrl,
  redactProxyText,
} from "./proxy.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

describe("parseProxyUrl", () => {
  test.each([
    ["http://proxy.example.org:3128", { kind: "http", host: "proxy.example.org", port: 3128 }],
    ["http://proxy:3128/", { kind: "http", host: "proxy", port: 3128 }],
    ["HTTP://proxy:3128", { kind: "http", host: "proxy", port: 3128 }],
    ["proxy:3128", { kind: "http", host: "proxy", port: 3128 }],
    ["socks5://127.0.0.1:1080", { kind: "socks5", host: "127.0.0.1", port: 1080 }],
    ["socks5h://[::1]:1080", { kind: "socks5h", host: "::1", port: 1080 }],
    [
      "http://alice:s3cret@proxy:3128",
      { kind: "http", host: "proxy", port: 3128, credentials: { user: "alice", password: "s3cret" } },
    ],
    [
      "http://alice@proxy:3128",
      { kind: "http", host: "proxy", port: 3128, credentials: { user: "alice", password: "" } },
    ],
    [
      "socks5h://me%40home:p%3Ass%2Fw@proxy:1080",
      { kind: "socks5h", host: "proxy", port: 1080, credentials: { user: "me@home", password: "p:ss/w" } },
    ],
    // The last @ ends the credentials, so an unescaped @ in a password still works, as in curl.
    [
      "socks5://bob:p@ss@proxy:1080",
      { kind: "socks5", host: "proxy", port: 1080, credentials: { user: "bob", password: "p@ss" } },
    ],
  ])("%s is accepted", (text, proxy) => {
    expect(parseProxyUrl(text)).toEqual(proxy as ReturnType<typeof parseProxyUrl>);
  });

  const forms = "http://, socks5:// or socks5h://[USER:PASSWORD@]HOST:PORT";
  test.each([
    ["https://proxy:3128", `a proxy reached over TLS (https://) is not supported; expected ${forms}`],
    ["socks4://proxy:1080", `SOCKS4 is not supported; expected ${forms}`],
    ["ftp://proxy:21", `unknown scheme "ftp"; expected ${forms}`],
    ["http://proxy", `expected HOST:PORT (the port is missing); expected ${forms}`],
    ["http://proxy:0", `port must be 1 to 65535; expected ${forms}`],
    ["http://proxy:3128/path", `a proxy URL has no path; expected ${forms}`],
    ["http://proxy:3128?x", `a proxy URL has no path; expected ${forms}`],
    ["http://", `the proxy's host and port are missing; expected ${forms}`],
    ["http://:pw@proxy:3128", "the user name before @ is empty"],
    ["http://a%3Ab:pw@proxy:3128", "a user name for an http:// proxy cannot hold ':'"],
    ["http://al%ZZ:pw@proxy:3128", "the user name or password has a bad %-escape (write % as %25)"],
    ["socks5://bob@proxy:1080", "SOCKS5 takes a user name and a password of 1 to 255 bytes each"],
    [`socks5://${"u".repeat(256)}:pw@proxy:1080`, "SOCKS5 takes a user name and a password of 1 to 255 bytes each"],
    [`socks5h://bob:${"é".repeat(128)}@proxy:1080`, "SOCKS5 takes a user name and a password of 1 to 255 bytes each"],
  ])("%s is refused", (text, message) => {
    expect(() => parseProxyUrl(text)).toThrow(message);
  });

  test("an empty --proxy is no proxy at all", () => {
    expect(parseProxySetting("")).toBeNull();
    expect(parseProxySetting("socks5://h:1")).toEqual({ kind: "socks5", host: "h", port: 1 });
  });

  test("no text makes it throw anything but a one-line Error", () => {
    property(fc.string(), (text: string) => returnsOrRefuses(() => parseProxyUrl(text)));
    property(fc.webUrl(), (text: string) => returnsOrRefuses(() => parseProxyUrl(text)));
  });
});

describe("what an error or a log line shows of a proxy", () => {
  test("formatProxy shows the kind and address, and *** where credentials are", () => {
    expect(formatProxy(parseProxyUrl("http://alice:s3cret@proxy:3128"))).toBe("http://***@proxy:3128");
    expect(formatProxy(parseProxyUrl("socks5h://[::1]:1080"))).toBe("socks5h://[::1]:1080");
  });

  test.each([
    ["http://alice:s3cret@proxy:3128", "http://***@proxy:3128"],
    ["alice:s3cret@proxy", "***@proxy"],
    ["socks5://bob:p@ss/w@proxy:x", "socks5://***@proxy:x"],
    ["http://proxy:3128", "http://proxy:3128"],
  ])("redactProxyText(%s) is %s", (text, shown) => {
    expect(redactProxyText(text)).toBe(shown);
  });

  test("neither a user name nor a password reaches an error or formatProxy, whatever they are", () => {
    const secret = fc.string({ minLength: 4, maxLength: 40 }).map((text) => `Zq${text}`);
    const escaped = (text: string) => encodeURIComponent(text);
    property(
      fc.constantFrom("http", "socks5", "socks5h", "https", "gopher"),
      secret,
      secret,
      fc.constantFrom("proxy:3128", "proxy", "[::1]:1080", "proxy:3128/x", ""),
      (scheme: string, user: string, password: string, address: string) => {
        for (const [u, p] of [
          [user, password],
          [escaped(user), escaped(password)],
        ]) {
          const text = `${scheme}://${u}:${p}@${address}`;
          let shown: string;
          try {
            shown = formatProxy(parseProxyUrl(text));
          } catch (error) {
            shown = `${redactProxyText(text)} ${(error as Error).message}`;
          }
          for (const part of [user, password, u, p]) expect(shown).not.toContain(part);
        }
      },
    );
  });
});

describe("environmentProxy", () => {
  const server = { host: "logs.example.org", port: 6514 };

  test("https_proxy, HTTPS_PROXY, all_proxy and ALL_PROXY, in that order; empty counts as unset", () => {
    const all = {
      https_proxy: "http://a:1",
      HTTPS_PROXY: "http://b:1",
      all_proxy: "socks5://c:1",
      ALL_PROXY: "socks5h://d:1",
    };
    expect(environmentProxy(all, server)).toEqual({
      proxy: { kind: "http", host: "a", port: 1 },
      variable: "https_proxy",
    });
    expect(environmentProxy({ ...all, https_proxy: "" }, server)?.variable).toBe("HTTPS_PROXY");
    expect(environmentProxy({ ...all, https_proxy: undefined, HTTPS_PROXY: undefined }, server)?.variable).toBe(
      "all_proxy",
    );
    expect(environmentProxy({ ALL_PROXY: "socks5h://d:1" }, server)?.proxy.kind).toBe("socks5h");
    expect(environmentProxy({ HTTP_PROXY: "http://e:1", http_proxy: "http://e:1" }, server)).toBeUndefined();
    expect(environmentProxy({}, server)).toBeUndefined();
  });

  test("NO_PROXY (or no_proxy, first) sends a listed server around the proxy", () => {
    const env = { HTTPS_PROXY: "http://proxy:3128" };
    expect(environmentProxy({ ...env, NO_PROXY: "example.org" }, server)).toBeUndefined();
    expect(environmentProxy({ ...env, no_proxy: "other.org", NO_PROXY: "example.org" }, server)).toBeDefined();
    expect(environmentProxy({ ...env, NO_PROXY: "*" }, server)).toBeUndefined();
    expect(environmentProxy({ ...env, NO_PROXY: "example.org:514" }, server)).toBeDefined();
  });

  test("a malformed URL names its variable, without the credentials", () => {
    const env = { ALL_PROXY: "socks5://bob:hunter2@proxy" };
    expect(() => environmentProxy(env, server)).toThrow(UsageError);
    expect(() => environmentProxy(env, server)).toThrow(
      'ALL_PROXY "socks5://***@proxy": expected HOST:PORT (the port is missing)',
    );
  });
});

describe("NO_PROXY", () => {
  const at = (host: string, port = 6514) => ({ host, port });
  const bypasses = (text: string, host: string, port?: number) => bypassesProxy(parseNoProxy(text), at(host, port));

  test.each([
    ["*", "anything.example", true],
    ["example.org", "example.org", true],
    ["example.org", "logs.example.org", true],
    [".example.org", "logs.example.org", true],
    [".example.org", "example.org", true],
    ["example.org", "badexample.org", false],
    ["EXAMPLE.org", "Logs.Example.ORG.", true],
    ["a.lan, example.org b.lan", "logs.example.org", true],
    ["logs.example.org:6514", "logs.example.org", true],
    ["logs.example.org:514", "logs.example.org", false],
    ["10.1.2.3", "10.1.2.3", true],
    ["10.1.2.3", "10.1.2.4", false],
    ["10.1.2.3:6514", "10.1.2.3", true],
    ["10.1.2.3:514", "10.1.2.3", false],
    ["10.0.0.0/8", "10.200.3.4", true],
    ["10.0.0.0/8", "11.0.0.1", false],
    ["192.168.4.0/22", "192.168.7.255", true],
    ["192.168.4.0/22", "192.168.8.0", false],
    ["::1", "::1", true],
    ["::1", "0:0:0:0:0:0:0:1", true],
    ["[::1]:6514", "::1", true],
    ["[::1]:514", "::1", false],
    ["fd00::/8", "fd12:3456::1", true],
    ["fd00::/8", "fe80::1", false],
    ["::ffff:10.1.2.3", "::ffff:a01:203", true],
    ["10.0.0.0/8", "ten.example", false],
    ["localhost", "127.0.0.1", false],
    ["", "example.org", false],
    [",,", "example.org", false],
  ])("NO_PROXY=%s for %s: %p", (text, host, expected) => {
    expect(bypasses(text, host)).toBe(expected);
  });

  test("ipBytes reads addresses and refuses what is not one", () => {
    expect(ipBytes("10.1.2.3")).toEqual([10, 1, 2, 3]);
    expect(ipBytes("::")).toEqual(Array(16).fill(0));
    expect(ipBytes("1::")).toEqual([0, 1, ...Array(14).fill(0)]);
    for (const text of ["256.1.1.1", "1.2.3", "::1::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "g::1", "host"])
      expect(ipBytes(text)).toBeUndefined();
  });

  test("an IPv4 address with a leading zero is no address: the resolver reads 010.0.0.1 as octal, 8.0.0.1", () => {
    // Read as decimal, socks5:// would send the proxy 10.0.0.1 where a direct dial reaches 8.0.0.1.
    for (const text of ["010.0.0.1", "127.0.0.01", "00.0.0.0", "::ffff:010.0.0.1"])
      expect(ipBytes(text)).toBeUndefined();
    expect(bypasses("10.0.0.0/8", "010.0.0.1")).toBe(false);
    expect(ipBytes("0.0.0.0")).toEqual([0, 0, 0, 0]);
    expect(ipBytes("10.0.0.100")).toEqual([10, 0, 0, 100]);
  });

  test("any text parses, and matching it never throws", () => {
    property(fc.string(), fc.string(), (text: string, host: string) => {
      bypassesProxy(parseNoProxy(text), at(host));
    });
  });
});
