import { describe, expect, test } from "bun:test";
import {
  type Access,
  authorized,
  hostAllowed,
  makeToken,
  refusal,
  sameToken,
  tokenCookie,
  tokenFromFile,
} from "./access.ts";
import { parseHead } from "./http.ts";

const TOKEN = "k3B9-x_Fq.TqW~2mZ7vR0pLs";
const access: Access = { token: TOKEN, listen: { host: "127.0.0.1", port: 8514 }, names: ["logs.example.com"] };
const head = (...lines: string[]) => parseHead(["GET /events HTTP/1.1", ...lines].join("\r\n"));

describe("the token", () => {
  test("a made token is 256 bits, base64url, new each time", () => {
    const [a, b] = [makeToken(), makeToken()];
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });

  test("a token file holds one line of 16 to 256 safe characters; its final line break is not part of it", () => {
    expect(tokenFromFile(`${TOKEN}\n`)).toBe(TOKEN);
    expect(tokenFromFile(`${"a".repeat(16)}\r\n`)).toBe("a".repeat(16));
    expect(() => tokenFromFile("short\n")).toThrow("at least 16 characters");
    expect(() => tokenFromFile(`${TOKEN}\n\n`)).toThrow("one line");
    expect(() => tokenFromFile("a+b/c=d".repeat(4))).toThrow("letters, digits and . _ ~ -");
    expect(() => tokenFromFile("a".repeat(257))).toThrow("at most 256");
    expect(() => tokenFromFile(`${TOKEN}; Path=/`)).toThrow();
  });

  test("compared whole: a prefix, a longer text or another case is not the token", () => {
    expect(sameToken(TOKEN, TOKEN)).toBe(true);
    for (const other of ["", TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()])
      expect(sameToken(other, TOKEN)).toBe(false);
  });

  test("it is taken from the view's cookie, Authorization: Bearer or ?token=, and from nothing else", () => {
    expect(authorized(access, head(`Cookie: other=1; slpc_web_8514=${TOKEN}`))).toBe("cookie");
    expect(authorized(access, head(`Authorization: Bearer ${TOKEN}`))).toBe("bearer");
    expect(authorized(access, parseHead(`GET /?token=${TOKEN} HTTP/1.1`))).toBe("query");
    expect(authorized(access, head(`Cookie: slpc_web_9999=${TOKEN}`))).toBeUndefined(); // another port's view
    expect(authorized(access, head(`Authorization: Basic ${btoa(`x:${TOKEN}`)}`))).toBeUndefined();
    expect(authorized(access, head(`Cookie: slpc_web_8514=${TOKEN}x`))).toBeUndefined();
    expect(authorized(access, head(`X-Token: ${TOKEN}`))).toBeUndefined();
    // Only the first few cookies of its name cost a hash each.
    const many = Array.from({ length: 500 }, () => "slpc_web_8514=x").join("; ");
    expect(authorized(access, head(`Cookie: ${many}; slpc_web_8514=${TOKEN}`))).toBeUndefined();
  });

  test("its cookie: HttpOnly, SameSite=Strict, for the whole view, named after the port", () => {
    expect(tokenCookie(access)).toBe(`slpc_web_8514=${TOKEN}; HttpOnly; SameSite=Strict; Path=/`);
  });
});

describe("Host, Origin and Sec-Fetch-Site", () => {
  test("Host must name the listening address and port, or a --web-host name with any port", () => {
    for (const host of ["127.0.0.1:8514", "logs.example.com", "LOGS.example.com:443", "logs.example.com:8514"])
      expect(hostAllowed(access, host)).toBe(true);
    for (const host of [
      undefined,
      "",
      "127.0.0.1",
      "127.0.0.1:8515",
      "localhost:8514",
      "evil.example:8514",
      "127.0.0.1:8514.evil",
      "logs.example.com.evil",
      "127.0.0.1:8514@evil",
      "[::1]:8514",
    ])
      expect(hostAllowed(access, host)).toBe(false);
    const six: Access = { ...access, listen: { host: "::1", port: 8514 }, names: [] };
    expect(hostAllowed(six, "[::1]:8514")).toBe(true);
    expect(hostAllowed(six, "::1:8514")).toBe(false);
  });

  test("each spelling of the address is the address, as a URL writes it; a name is never taken for one", () => {
    for (const [listen, host] of [
      ["127.1", "127.0.0.1:8514"],
      ["127.0.0.1", "127.1:8514"],
      ["127.0.0.1", "2130706433:8514"],
      ["0:0:0:0:0:0:0:1", "[::1]:8514"],
      ["::1", "[0:0::1]:8514"],
      ["::ffff:127.0.0.1", "[::ffff:7f00:1]:8514"],
      ["LOCALHOST", "localhost:8514"],
    ])
      expect([listen, host, hostAllowed({ ...access, listen: { host: listen!, port: 8514 } }, host)]).toEqual([
        listen,
        host,
        true,
      ]);
    // A last label of digits makes an address or nothing: evil.1 is no host at all, and no name becomes 127.0.0.1.
    for (const host of ["evil.1:8514", "evil.127.0.0.1:8514", "localhost.:8514", "0x7f.evil:8514"])
      expect([host, hostAllowed(access, host)]).toEqual([host, false]);
  });

  test("a request from another origin is refused: another port, another name, a sandbox, another site", () => {
    const ok = "Host: 127.0.0.1:8514";
    expect(refusal(access, head(ok))).toBeUndefined();
    expect(refusal(access, head(ok, "Origin: http://127.0.0.1:8514", "Sec-Fetch-Site: same-origin"))).toBeUndefined();
    expect(refusal(access, head(ok, "Sec-Fetch-Site: none"))).toBeUndefined();
    expect(refusal(access, head(ok, "Origin: https://logs.example.com"))).toBeUndefined();
    for (const origin of ["http://127.0.0.1:9999", "http://127.0.0.1", "null", "http://evil.example:8514", "file://"])
      expect(refusal(access, head(ok, `Origin: ${origin}`))?.status).toBe(403);
    for (const site of ["same-site", "cross-site", "bogus"])
      expect(refusal(access, head(ok, `Sec-Fetch-Site: ${site}`))?.status).toBe(403);
    expect(refusal(access, head("Host: evil.example:8514"))).toEqual({
      status: 421,
      why: "this Host is not the view's address nor a --web-host name",
    });
  });
});
