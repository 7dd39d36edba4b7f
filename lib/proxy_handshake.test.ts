// Unit tests of a tunnel's opening: the bytes of CONNECT and of SOCKS5's messages, every reply a
// proxy may give (split at awkward places), one line for each refusal, and the bound on what is read.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property } from "../test/fuzz.ts";
import { type ProxyUrl, parseProxyUrl } from "./proxy.ts";
import { MAX_CONNECT_REPLY, ProxyHandshake, SOCKS5_REPLIES, type TunnelStep } from "./proxy_handshake.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const target = { host: "logs.example.org", port: 6514 };
const bytes = (...values: number[]) => Uint8Array.from(values);
const text = (step: TunnelStep) => (step.type === "send" ? Buffer.from(step.bytes).toString("latin1") : step.type);

/** Feeds `reply` to `tunnel` one byte at a time: the harshest split; returns the last step. */
function byteByByte(tunnel: ProxyHandshake, reply: Uint8Array): TunnelStep {
  let step: TunnelStep = { type: "wait" };
  for (const [i, byte] of reply.entries()) {
    step = tunnel.receive(bytes(byte));
    if (step.type !== "wait" && i < reply.length - 1) throw new Error(`${step.type} before the reply's end at ${i}`);
  }
  return step;
}

describe("HTTP CONNECT", () => {
  const proxy = (url = "http://proxy:3128") => parseProxyUrl(url);

  test("the request names the server, and carries Basic credentials when the URL has them", () => {
    expect(text(new ProxyHandshake(proxy(), target).start())).toBe(
      "CONNECT logs.example.org:6514 HTTP/1.1\r\nHost: logs.example.org:6514\r\n\r\n",
    );
    expect(text(new ProxyHandshake(proxy("http://alice:s3cr%3At@proxy:3128"), target).start())).toBe(
      "CONNECT logs.example.org:6514 HTTP/1.1\r\nHost: logs.example.org:6514\r\n" +
        `Proxy-Authorization: Basic ${btoa("alice:s3cr:t")}\r\n\r\n`,
    );
    expect(text(new ProxyHandshake(proxy(), { host: "::1", port: 6514 }).start())).toStartWith(
      "CONNECT [::1]:6514 HTTP/1.1\r\nHost: [::1]:6514\r\n",
    );
  });

  test.each([
    "HTTP/1.1 200 Connection established\r\n\r\n",
    "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n",
    "HTTP/1.1 200\r\n\r\n",
    "HTTP/1.1 204 OK\n\n",
  ])("%j opens the tunnel, whole or a byte at a time", (reply) => {
    const whole = new ProxyHandshake(proxy(), target);
    whole.start();
    expect(whole.receive(Buffer.from(reply))).toEqual({ type: "open" });
    const split = new ProxyHandshake(proxy(), target);
    split.start();
    expect(byteByByte(split, Buffer.from(reply))).toEqual({ type: "open" });
  });

  test.each([
    [
      "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
      "http://proxy:3128",
      "asks for a user name and password (HTTP 407 Proxy Authentication Required): give them in the proxy URL",
    ],
    [
      "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
      "http://alice:bad@proxy:3128",
      "refused the user name or password (HTTP 407 Proxy Authentication Required)",
    ],
    [
      "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n<html>",
      "http://alice:bad@proxy:3128",
      "refused the user name or password (HTTP 401 Unauthorized)",
    ],
    ["HTTP/1.1 403 Forbidden\r\n\r\n", "http://proxy:3128", "refused the tunnel (HTTP 403 Forbidden)"],
    [
      "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\nnope.",
      "http://proxy:3128",
      "could not open the tunnel to the server (HTTP 502 Bad Gateway)",
    ],
    [
      "HTTP/1.1 500 Unable to connect\r\n\r\n",
      "http://proxy:3128",
      "could not open the tunnel to the server (HTTP 500 Unable to connect)",
    ],
    ["HTTP/1.1 302\r\n\r\n", "http://proxy:3128", "refused the tunnel (HTTP 302)"],
    ["SSH-2.0-OpenSSH_9.2\r\n\r\n", "http://proxy:3128", "answered in something other than HTTP: SSH-2.0-OpenSSH_9.2"],
    [
      "HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01",
      "http://proxy:3128",
      "sent 3 bytes after opening the tunnel, before TLS began",
    ],
  ] as const)("%j through %s: one line", (reply, url, reason) => {
    const tunnel = new ProxyHandshake(proxy(url), target);
    tunnel.start();
    expect(tunnel.receive(Buffer.from(reply, "latin1"))).toEqual({ type: "failed", reason });
  });

  test("a reason phrase reaches the line escaped and cut, so that a proxy cannot forge log lines", () => {
    const tunnel = new ProxyHandshake(proxy(), target);
    tunnel.start();
    const step = tunnel.receive(Buffer.from(`HTTP/1.1 403 no\x1b[2J\rslpc: fake ${"x".repeat(500)}\r\n\r\n`));
    expect(step.type).toBe("failed");
    const reason = (step as { reason: string }).reason;
    expect(reason).not.toMatch(/\p{Cc}/u);
    expect(reason.length).toBeLessThan(200);
  });

  test(`a reply head over ${MAX_CONNECT_REPLY} bytes is refused, however it is split`, () => {
    const tunnel = new ProxyHandshake(proxy(), target);
    tunnel.start();
    const header = Buffer.from(`X-Filler: ${"y".repeat(1000)}\r\n`);
    let step = tunnel.receive(Buffer.from("HTTP/1.1 200 OK\r\n"));
    for (let i = 0; i < 20 && step.type === "wait"; i++) step = tunnel.receive(header);
    expect(step).toEqual({ type: "failed", reason: `sent a reply of over ${MAX_CONNECT_REPLY} bytes` });
    expect(tunnel.receive(Buffer.from("\r\n")).type).toBe("failed");
  });
});

describe("SOCKS5", () => {
  const socks = (url: string) => parseProxyUrl(url);
  const reply = (code: number, address = [1, 127, 0, 0, 1]) => bytes(5, code, 0, ...address, 0x19, 0x72);

  /** Runs a SOCKS5 exchange: the proxy's answers in turn; returns what the client sent and the last step. */
  function exchange(proxy: ProxyUrl, answers: Uint8Array[], to = target, split = true) {
    const tunnel = new ProxyHandshake(proxy, to);
    const sent: number[][] = [];
    let step = tunnel.start();
    for (const answer of [undefined, ...answers]) {
      if (answer) step = split ? byteByByte(tunnel, answer) : tunnel.receive(answer);
      if (step.type === "send") sent.push([...step.bytes]);
      if (step.type !== "send") break;
    }
    return { sent, step };
  }

  test("socks5h sends the name, with no authentication offered when the URL has no credentials", () => {
    const { sent, step } = exchange(socks("socks5h://proxy:1080"), [bytes(5, 0), reply(0)]);
    const name = [...Buffer.from("logs.example.org")];
    expect(sent).toEqual([
      [5, 1, 0],
      [5, 1, 0, 3, name.length, ...name, 0x19, 0x72],
    ]);
    expect(step).toEqual({ type: "open" });
  });

  test("socks5 sends the address slpc resolved: IPv4 and IPv6", () => {
    const v4 = exchange(socks("socks5://proxy:1080"), [bytes(5, 0), reply(0)], { host: "10.1.2.3", port: 6514 });
    expect(v4.sent[1]).toEqual([5, 1, 0, 1, 10, 1, 2, 3, 0x19, 0x72]);
    const v6 = exchange(socks("socks5://proxy:1080"), [bytes(5, 0), reply(0, [4, ...Array(16).fill(0)])], {
      host: "::1",
      port: 6514,
    });
    expect(v6.sent[1]).toEqual([5, 1, 0, 4, ...Array(15).fill(0), 1, 0x19, 0x72]);
    expect(v6.step).toEqual({ type: "open" });
  });

  test("a name given to socks5 (which sends addresses) is refused rather than leaked to the proxy", () => {
    const tunnel = new ProxyHandshake(socks("socks5://proxy:1080"), target);
    expect(tunnel.start()).toEqual({
      type: "failed",
      reason: "cannot be sent the name logs.example.org: socks5:// sends an address (slpc resolves names first)",
    });
  });

  test("with credentials: both methods offered, then RFC 1929's user name and password", () => {
    const { sent, step } = exchange(socks("socks5h://bob:pw@proxy:1080"), [bytes(5, 2), bytes(1, 0), reply(0)]);
    expect(sent.slice(0, 2)).toEqual([
      [5, 2, 0, 2],
      [1, 3, ...Buffer.from("bob"), 2, ...Buffer.from("pw")],
    ]);
    expect(step).toEqual({ type: "open" });
  });

  test("a proxy that takes no authentication is not sent the credentials", () => {
    const { sent, step } = exchange(socks("socks5h://bob:pw@proxy:1080"), [bytes(5, 0), reply(0)]);
    expect(sent.map((message) => message[0])).toEqual([5, 5]);
    expect(step).toEqual({ type: "open" });
  });

  test("a reply with a name as its bound address is read to its end", () => {
    const bound = [3, 5, ...Buffer.from("proxy")];
    expect(exchange(socks("socks5h://proxy:1080"), [bytes(5, 0), reply(0, bound)]).step).toEqual({ type: "open" });
  });

  test.each(Object.entries(SOCKS5_REPLIES).map(([code, name]) => [Number(code), name]))(
    "reply code %d is named: %s",
    (code, name) => {
      const { step } = exchange(socks("socks5h://proxy:1080"), [bytes(5, 0), bytes(5, code)]);
      expect(step).toEqual({
        type: "failed",
        reason: `could not open the tunnel: SOCKS5 reply ${code}, ${name}`,
      });
    },
  );

  test.each([
    [
      "an unassigned reply code",
      [bytes(5, 0), bytes(5, 0x2a)],
      "could not open the tunnel: SOCKS5 reply 42, an unassigned code (0x2a)",
    ],
    [
      "a wrong password",
      [bytes(5, 2), bytes(1, 1)],
      "refused the user name or password (SOCKS5 authentication status 1)",
    ],
    ["no acceptable method", [bytes(5, 0xff)], "takes neither no authentication nor a user name and password (SOCKS5)"],
    [
      "an HTTP proxy",
      [Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n")],
      "does not speak SOCKS5 (its reply begins with byte 0x48): it answers in HTTP; use http:// for it",
    ],
    ["SOCKS4's reply", [bytes(0, 0x5a)], "does not speak SOCKS5 (its reply begins with byte 0x00)"],
    ["a method not offered", [bytes(5, 1)], "chose SOCKS5 method 1, which was not offered"],
    [
      "an unknown address type",
      [bytes(5, 2), bytes(1, 0), bytes(5, 0, 0, 9, 0)],
      "sent a SOCKS5 reply with an unknown address type 9",
    ],
    [
      "bytes after the reply",
      [bytes(5, 2), bytes(1, 0), bytes(5, 0, 0, 1, 1, 2, 3, 4, 0, 1, 0x16)],
      "sent 1 byte after opening the tunnel, before TLS began",
    ],
  ] as const)("%s: one line", (_what, answers, reason) => {
    const { step } = exchange(socks("socks5h://bob:pw@proxy:1080"), [...answers], target, false);
    expect(step).toEqual({ type: "failed", reason });
  });

  test("without credentials, a proxy that wants some says so", () => {
    const { step } = exchange(socks("socks5h://proxy:1080"), [bytes(5, 0xff)]);
    expect(step).toEqual({
      type: "failed",
      reason: "asks for authentication (SOCKS5): give a user name and password in the proxy URL",
    });
  });
});

describe("whatever a proxy sends", () => {
  test("a tunnel opens, waits or fails with one line, and holds no more than the bound", () => {
    const kinds = fc.constantFrom("http://u:p@proxy:1", "socks5h://u:p@proxy:1", "socks5h://proxy:1");
    const chunks = fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 8 });
    property(kinds, chunks, (url: string, replies: Uint8Array[]) => {
      const tunnel = new ProxyHandshake(parseProxyUrl(url), target);
      tunnel.start();
      let received = 0;
      for (const chunk of replies) {
        const step = tunnel.receive(chunk);
        received += chunk.length;
        if (step.type === "failed") {
          expect(step.reason.length).toBeGreaterThan(0);
          expect(step.reason).not.toMatch(/\p{Cc}/u);
          return;
        }
        if (step.type === "wait") expect(received).toBeLessThanOrEqual(MAX_CONNECT_REPLY);
      }
    });
  });
});
