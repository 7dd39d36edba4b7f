// Who may see the live view: whoever presents its token (in the address once, then in a cookie),
// from a page of the view's own origin, addressed by a name the operator chose. The token keeps
// out whoever reaches the port; the Host check keeps out a page whose own name was made to
// resolve to this address (DNS rebinding), and the Origin and Sec-Fetch-Site checks a page of
// another origin that the browser would hand the cookie to (a cookie is not kept apart by port).

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Address } from "../../lib.ts";
import type { RequestHead } from "./http.ts";

/** The characters a token may have: safe in a URL's query and in a cookie as they are. */
const TOKEN = /^[A-Za-z0-9._~-]{16,256}$/;

/** A new random token: 256 bits, base64url. */
export function makeToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The token of a --web-token-file's text, without its final line break; throws an Error saying what is wrong. */
export function tokenFromFile(text: string): string {
  const token = text.replace(/\r?\n$/, "");
  if (token.length < 16) throw new Error("the token must be at least 16 characters (openssl rand -hex 32 makes one)");
  if (!TOKEN.test(token)) {
    throw new Error("the token must be one line of at most 256 letters, digits and . _ ~ - (openssl rand -hex 32)");
  }
  return token;
}

/** Whether `given` is `token`, in time that does not depend on where they differ, nor on their lengths. */
export function sameToken(given: string, token: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}

export interface Access {
  token: string;
  /** --web: the address the view listens on, which a Host header may name with its port. */
  listen: Address;
  /** --web-host: names a Host header may carry, with any port or none, as `canonicalHost` writes them. */
  names: readonly string[];
}

/** The cookie's name: one a port, since browsers send a host's cookies to all its ports. */
export const cookieName = (access: Access) => `slpc_web_${access.listen.port}`;

/** The Set-Cookie value that keeps the token after its first use. */
export function tokenCookie(access: Access): string {
  return `${cookieName(access)}=${access.token}; HttpOnly; SameSite=Strict; Path=/`;
}

/**
 * A host name or address as URLs write it (IPv6 in brackets), or undefined when no URL can hold it.
 * A browser sends the Host of the address it was given in this form: `127.1` as `127.0.0.1`,
 * `[0:0::1]` as `[::1]`, capitals in lower case; so every spelling of one address compares equal.
 */
export function canonicalHost(name: string): string | undefined {
  try {
    return new URL(`http://${name}/`).hostname || undefined;
  } catch {
    return undefined;
  }
}

/** `name` (canonical) and `port` of a Host header or of an origin's authority (`[::1]:8514`, `web`), or undefined. */
function authority(text: string): { name: string; port?: number } | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/.exec(text.toLowerCase());
  const name = match && canonicalHost(match[1]!);
  if (!name) return undefined;
  return { name, port: match[2] === undefined ? undefined : Number(match[2]) };
}

/** How the listening address appears in a Host header. */
const hostName = (address: Address) => canonicalHost(address.host.includes(":") ? `[${address.host}]` : address.host);

/**
 * Whether a Host header (or an origin's authority, whose port `defaultPort` stands in for when it
 * has none) names the view: its listening address and port, or a --web-host name with any port.
 */
export function hostAllowed(access: Access, host: string | undefined, defaultPort = 80): boolean {
  const found = host === undefined ? undefined : authority(host);
  if (!found) return false;
  if (access.names.includes(found.name)) return true;
  return found.name === hostName(access.listen) && (found.port ?? defaultPort) === access.listen.port;
}

/**
 * Why a request is refused, or undefined when its Host, Origin and Sec-Fetch-Site let it through.
 * The token is checked apart (see `authorized`): a refusal here needs no secret to say.
 */
export function refusal(access: Access, head: RequestHead): { status: number; why: string } | undefined {
  if (!hostAllowed(access, head.headers.get("host"))) {
    return { status: 421, why: "this Host is not the view's address nor a --web-host name" };
  }
  const origin = head.headers.get("origin");
  if (origin !== undefined) {
    const match = /^(https?):\/\/(.+)$/.exec(origin);
    if (!match || !hostAllowed(access, match[2], match[1] === "https" ? 443 : 80))
      return { status: 403, why: "a request from another origin" };
  }
  // Sent by browsers with every request, and not forged by a page: none of another site's pages
  // (another port on this host included) gets past it, even with a request that has no Origin.
  const site = head.headers.get("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return { status: 403, why: `a request from another origin (Sec-Fetch-Site: ${site.slice(0, 20)})` };
  }
  return undefined;
}

/** How a request may present the token. */
export type Presented = "cookie" | "bearer" | "query";
/** Cookies of the view's name looked at: a browser sends one, and each costs a hash. */
const MAX_COOKIES = 4;

/**
 * The tokens a request presents, and how: the view's cookie, `Authorization: Bearer` (curl), or
 * `?token=` in the address of the page (the URL slpc prints).
 */
export function tokensOf(access: Access, head: RequestHead): { token: string; via: Presented }[] {
  const found: { token: string; via: Presented }[] = [];
  const name = cookieName(access);
  for (const pair of (head.headers.get("cookie") ?? "").split(";")) {
    const equals = pair.indexOf("=");
    if (equals === -1 || pair.slice(0, equals).trim() !== name || found.length >= MAX_COOKIES) continue;
    found.push({ token: pair.slice(equals + 1).trim(), via: "cookie" });
  }
  const bearer = /^Bearer +(\S+)$/i.exec(head.headers.get("authorization") ?? "");
  if (bearer) found.push({ token: bearer[1]!, via: "bearer" });
  const query = head.query.get("token");
  if (query !== null) found.push({ token: query, via: "query" });
  return found;
}

/** How a request proves itself: the way its token came, or undefined when none it presents is the token. */
export function authorized(access: Access, head: RequestHead): Presented | undefined {
  // Each presented token is compared, so the time taken does not say which one was close.
  let via: Presented | undefined;
  for (const presented of tokensOf(access, head)) if (sameToken(presented.token, access.token)) via ??= presented.via;
  return via;
}
