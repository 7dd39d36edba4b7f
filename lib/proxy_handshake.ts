// The exchange that opens a tunnel through a proxy, sans I/O: HTTP CONNECT (RFC 9110 9.3.6, with
// Basic authentication, RFC 7617) or SOCKS5 (RFC 1928, with RFC 1929's user name and password).
// The caller writes what `start` and `receive` say to write, and puts TLS on the socket once the
// tunnel is open. A proxy's reply is an outsider's input: it is read up to a bound, and what it
// says reaches a log line escaped and cut.

import type { Address } from "./address.ts";
import type { ProxyUrl } from "./proxy.ts";
import { ipBytes } from "./proxy.ts";
import { peerText } from "./terminal_text.ts";

/** The longest HTTP reply head read (status line and headers): proxies send a few hundred bytes. */
export const MAX_CONNECT_REPLY = 8192;
/** How much of a proxy's reason phrase a log line shows. */
const REASON_MAX = 80;

/**
 * What to do after `start` or `receive`: write bytes and wait for more, begin TLS, or hang up. A
 * failure's reason says what the proxy did, to follow its name: "proxy http://p:3128 refused ...".
 */
export type TunnelStep =
  | { type: "send"; bytes: Uint8Array }
  | { type: "wait" }
  | { type: "open" }
  | { type: "failed"; reason: string };

/** SOCKS5 reply codes (RFC 1928 section 6), by name. */
export const SOCKS5_REPLIES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by ruleset",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

const NO_AUTHENTICATION = 0x00;
const USER_PASSWORD = 0x02;
const NO_ACCEPTABLE_METHOD = 0xff;

/**
 * One tunnel's opening, to `target` through `proxy`. For socks5 the target's host must be an
 * address (slpc resolved the name); http and socks5h send the name for the proxy to resolve.
 *
 * @example
 * const proxy = { kind: "http", host: "proxy", port: 3128 } as const;
 * const tunnel = new ProxyHandshake(proxy, { host: "logs.example.org", port: 6514 });
 * write(tunnel.start()); // CONNECT logs.example.org:6514 HTTP/1.1 ...
 * tunnel.receive(Buffer.from("HTTP/1.1 200 Connection established\r\n\r\n")); // { type: "open" }
 */
export class ProxyHandshake {
  readonly #proxy: ProxyUrl;
  readonly #target: Address;
  #state: "new" | "connect-reply" | "socks-method" | "socks-auth" | "socks-reply" | "open" | "failed" = "new";
  /** What the proxy sent that is not a whole reply yet, never more than MAX_CONNECT_REPLY bytes. */
  #received = Buffer.alloc(0);

  constructor(proxy: ProxyUrl, target: Address) {
    this.#proxy = proxy;
    this.#target = target;
  }

  /** The first bytes to write: the CONNECT request, or SOCKS5's greeting. */
  start(): TunnelStep {
    if (this.#state !== "new") throw new Error("the tunnel's handshake has started already");
    if (this.#proxy.kind === "http") {
      this.#state = "connect-reply";
      return { type: "send", bytes: this.#connectRequest() };
    }
    const address = socksAddress(this.#target.host, this.#proxy.kind === "socks5h");
    if (typeof address === "string") return this.#fail(address);
    this.#state = "socks-method";
    const methods = this.#proxy.credentials ? [NO_AUTHENTICATION, USER_PASSWORD] : [NO_AUTHENTICATION];
    return { type: "send", bytes: Uint8Array.from([5, methods.length, ...methods]) };
  }

  /** What the proxy sent; the step after it. Bytes after the reply that opens the tunnel are refused. */
  receive(chunk: Uint8Array): TunnelStep {
    if (this.#state === "open" || this.#state === "failed" || this.#state === "new")
      return this.#fail("sent bytes out of turn");
    if (this.#received.length + chunk.length > MAX_CONNECT_REPLY)
      return this.#fail(`sent a reply of over ${MAX_CONNECT_REPLY} bytes`);
    const previous = this.#received.length;
    this.#received = Buffer.concat([this.#received, chunk]);
    if (this.#state === "connect-reply") return this.#connectReply(previous);
    return this.#socksReply();
  }

  #connectRequest(): Uint8Array {
    const { host, port } = this.#target;
    const authority = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
    const credentials = this.#proxy.credentials;
    if (credentials) {
      const basic = Buffer.from(`${credentials.user}:${credentials.password}`).toString("base64");
      lines.push(`Proxy-Authorization: Basic ${basic}`);
    }
    return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`);
  }

  /** The reply to CONNECT, once its head is whole: 2xx opens the tunnel, anything else says why not. */
  #connectReply(previous: number): TunnelStep {
    // Only the new bytes, and the three before them, can complete the blank line that ends the head.
    const from = Math.max(0, previous - 3);
    const crlf = this.#received.indexOf("\r\n\r\n", from);
    const lf = this.#received.indexOf("\n\n", from);
    const ends = [crlf < 0 ? -1 : crlf + 4, lf < 0 ? -1 : lf + 2].filter((end) => end >= 0);
    if (ends.length === 0) return { type: "wait" };
    const end = Math.min(...ends);
    const head = this.#received.subarray(0, end).toString("latin1");
    const status = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?\r?\n/.exec(head);
    if (!status)
      return this.#fail(`answered in something other than HTTP: ${peerText(head.split(/\r?\n/)[0]!, REASON_MAX)}`);
    const code = Number(status[1]);
    const said = `HTTP ${code}${status[2] ? ` ${peerText(status[2], REASON_MAX)}` : ""}`;
    if (code >= 200 && code < 300) return this.#open(end);
    // 401 is what tinyproxy answers a CONNECT with wrong credentials; 407 is what RFC 9110 says.
    if (code === 407 || code === 401) return this.#fail(this.#credentialsRefused(said));
    if (code >= 500) return this.#fail(`could not open the tunnel to the server (${said})`);
    return this.#fail(`refused the tunnel (${said})`);
  }

  #socksReply(): TunnelStep {
    const reply = this.#received;
    if (reply.length < 2) return { type: "wait" };
    switch (this.#state) {
      case "socks-method": {
        if (reply[0] !== 5) return this.#fail(notSocks5(reply[0]!));
        const method = reply[1];
        if (method === NO_ACCEPTABLE_METHOD) {
          return this.#fail(
            this.#proxy.credentials
              ? "takes neither no authentication nor a user name and password (SOCKS5)"
              : "asks for authentication (SOCKS5): give a user name and password in the proxy URL",
          );
        }
        const offered = method === NO_AUTHENTICATION || (method === USER_PASSWORD && this.#proxy.credentials);
        if (!offered) return this.#fail(`chose SOCKS5 method ${method}, which was not offered`);
        if (reply.length > 2) return this.#fail("sent bytes out of turn");
        this.#received = Buffer.alloc(0);
        if (method === NO_AUTHENTICATION) return this.#socksConnect();
        this.#state = "socks-auth";
        const { user, password } = this.#proxy.credentials!;
        const [name, secret] = [Buffer.from(user), Buffer.from(password)];
        return {
          type: "send",
          bytes: Buffer.concat([Uint8Array.of(1, name.length), name, Uint8Array.of(secret.length), secret]),
        };
      }
      case "socks-auth":
        // RFC 1929 says version 1; some servers answer with SOCKS's 5. The status is what counts.
        if (reply[1] !== 0) return this.#fail(this.#credentialsRefused(`SOCKS5 authentication status ${reply[1]}`));
        if (reply.length > 2) return this.#fail("sent bytes out of turn");
        this.#received = Buffer.alloc(0);
        return this.#socksConnect();
      default: {
        if (reply[0] !== 5) return this.#fail(notSocks5(reply[0]!));
        const code = reply[1]!;
        // A refusal may come short, and then the connection closes: the code is all that matters.
        if (code !== 0) {
          const name = SOCKS5_REPLIES[code] ?? `an unassigned code (0x${code.toString(16).padStart(2, "0")})`;
          return this.#fail(`could not open the tunnel: SOCKS5 reply ${code}, ${name}`);
        }
        if (reply.length < 5) return { type: "wait" };
        const length = { 1: 4, 4: 16, 3: 1 + reply[4]! }[reply[3]!];
        if (length === undefined) return this.#fail(`sent a SOCKS5 reply with an unknown address type ${reply[3]}`);
        if (reply.length < 4 + length + 2) return { type: "wait" };
        return this.#open(4 + length + 2);
      }
    }
  }

  /** The request to connect to the target, once the proxy has taken (or not asked for) the credentials. */
  #socksConnect(): TunnelStep {
    this.#state = "socks-reply";
    const address = socksAddress(this.#target.host, this.#proxy.kind === "socks5h") as Uint8Array;
    const port = this.#target.port;
    return { type: "send", bytes: Uint8Array.from([5, 1, 0, ...address, port >> 8, port & 0xff]) };
  }

  /** The reply ends at `end`: anything after it came before TLS began, so it is no part of TLS. */
  #open(end: number): TunnelStep {
    const extra = this.#received.length - end;
    if (extra > 0)
      return this.#fail(`sent ${extra} byte${extra === 1 ? "" : "s"} after opening the tunnel, before TLS began`);
    this.#state = "open";
    this.#received = Buffer.alloc(0);
    return { type: "open" };
  }

  #credentialsRefused(said: string): string {
    return this.#proxy.credentials
      ? `refused the user name or password (${said})`
      : `asks for a user name and password (${said}): give them in the proxy URL`;
  }

  #fail(reason: string): TunnelStep {
    this.#state = "failed";
    this.#received = Buffer.alloc(0);
    return { type: "failed", reason };
  }
}

/**
 * SOCKS5's DST.ADDR for `host`: an address as itself, a name as itself when the proxy resolves
 * (socks5h); or why it cannot be sent.
 */
function socksAddress(host: string, byName: boolean): Uint8Array | string {
  const bytes = ipBytes(host);
  if (bytes) return Uint8Array.from([bytes.length === 4 ? 1 : 4, ...bytes]);
  if (!byName)
    return `cannot be sent the name ${peerText(host)}: socks5:// sends an address (slpc resolves names first)`;
  const name = Buffer.from(host);
  if (name.length > 255) return "cannot be sent the server's name: it is over 255 bytes, more than SOCKS5 carries";
  return Uint8Array.from([3, name.length, ...name]);
}

/** Why a reply that should be SOCKS5's is not: an HTTP proxy answers a SOCKS greeting with "HTTP/1...". */
function notSocks5(first: number): string {
  const http = first === 0x48 ? ": it answers in HTTP; use http:// for it" : "";
  return `does not speak SOCKS5 (its reply begins with byte 0x${first.toString(16).padStart(2, "0")})${http}`;
}
