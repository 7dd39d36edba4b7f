// Which proxy slpc dials a server through: --proxy's URL (http://, socks5:// or socks5h://, with a
// user name and password or without), or without --proxy the variables curl reads for an https://
// URL: https_proxy, then all_proxy, unless no_proxy lists the server. A URL's user name and
// password are a secret: the text this module makes for a log line or an error shows them as ***.

import { type Address, formatAddress, parseHostPort } from "./address.ts";
import { reason } from "./log.ts";
import { UsageError } from "./options.ts";

/** http: HTTP CONNECT; socks5: SOCKS5 with the server's name resolved by slpc; socks5h: by the proxy. */
export type ProxyKind = "http" | "socks5" | "socks5h";

export interface ProxyUrl extends Address {
  kind: ProxyKind;
  /** The user name and password, decoded from the URL's %-escapes. */
  credentials?: { user: string; password: string };
}

const FORMS = "http://, socks5:// or socks5h://[USER:PASSWORD@]HOST:PORT";
/** RFC 1929 carries each of the user name and password in 1 to 255 bytes. */
const SOCKS_CREDENTIAL_MAX = 255;

/**
 * A proxy URL: `http://[USER:PASSWORD@]HOST:PORT`, or the same with `socks5://` or `socks5h://`;
 * without a scheme, http:// as curl takes it. A user name or password with `@`, `:` or `/` in it is
 * written %-escaped. Throws one line naming the problem, never showing the credentials.
 *
 * @example
 * parseProxyUrl("socks5h://me:p%40ss@[::1]:1080");
 * // { kind: "socks5h", host: "::1", port: 1080, credentials: { user: "me", password: "p@ss" } }
 */
export function parseProxyUrl(text: string): ProxyUrl {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  const kind = (scheme?.[1] ?? "http").toLowerCase();
  if (kind === "https") throw new Error(`a proxy reached over TLS (https://) is not supported; expected ${FORMS}`);
  if (kind === "socks4" || kind === "socks4a") throw new Error(`SOCKS4 is not supported; expected ${FORMS}`);
  if (kind !== "http" && kind !== "socks5" && kind !== "socks5h")
    throw new Error(`unknown scheme "${scheme![1]}"; expected ${FORMS}`);
  // The last @ ends the credentials, as curl and browsers read it: a password may hold an unescaped @.
  const rest = scheme ? text.slice(scheme[0].length) : text;
  const at = rest.lastIndexOf("@");
  const authority = rest.slice(at + 1).replace(/\/$/, "");
  if (/[/?#]/.test(authority)) throw new Error(`a proxy URL has no path; expected ${FORMS}`);
  if (authority === "") throw new Error(`the proxy's host and port are missing; expected ${FORMS}`);
  let address: Address;
  try {
    address = parseHostPort(authority);
  } catch (error) {
    throw new Error(`${reason(error)}; expected ${FORMS}`);
  }
  const proxy: ProxyUrl = { kind, ...address };
  if (at >= 0) proxy.credentials = credentialsOf(kind, rest.slice(0, at));
  return proxy;
}

/** The user name and password of a URL's `USER[:PASSWORD]`, checked for what its protocol can carry. */
function credentialsOf(kind: ProxyKind, userinfo: string): { user: string; password: string } {
  const colon = userinfo.indexOf(":");
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new Error("the user name or password has a bad %-escape (write % as %25)");
    }
  };
  const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon));
  const password = colon < 0 ? "" : decode(userinfo.slice(colon + 1));
  if (user === "") throw new Error("the user name before @ is empty");
  if (kind === "http") {
    // Basic authentication joins them with a colon: one in the user name would move the boundary.
    if (user.includes(":")) throw new Error("a user name for an http:// proxy cannot hold ':'");
    return { user, password };
  }
  const bytes = (part: string) => Buffer.byteLength(part);
  if (bytes(user) > SOCKS_CREDENTIAL_MAX || bytes(password) < 1 || bytes(password) > SOCKS_CREDENTIAL_MAX)
    throw new Error(`SOCKS5 takes a user name and a password of 1 to ${SOCKS_CREDENTIAL_MAX} bytes each`);
  return { user, password };
}

/** What --proxy takes: a proxy URL, or nothing (`--proxy ''`), which turns every proxy off. */
export function parseProxySetting(text: string): ProxyUrl | null {
  return text === "" ? null : parseProxyUrl(text);
}

/** A proxy as log lines show it: its credentials as ***, so that they show they are there and nothing more. */
export function formatProxy(proxy: ProxyUrl): string {
  return `${proxy.kind}://${proxy.credentials ? "***@" : ""}${formatAddress(proxy)}`;
}

/**
 * The text of a proxy URL as an error may show it, however malformed: whatever stands between
 * the scheme and the last @ is the credentials, and shows as ***.
 */
export function redactProxyText(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return text;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text)?.[0] ?? "";
  return `${scheme}***${text.slice(at)}`;
}

/** The variables that name a proxy for an https:// URL, in curl's order: the lower-case one first. */
export const PROXY_VARIABLES = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] as const;
/** The variables that list hosts reached without a proxy, in curl's order. */
export const NO_PROXY_VARIABLES = ["no_proxy", "NO_PROXY"] as const;

/**
 * The proxy the environment names for `server`, and the variable that named it; undefined when
 * none does, or NO_PROXY lists the server. An empty variable counts as unset, as in curl. A
 * malformed URL is a UsageError naming the variable.
 *
 * @example
 * const env = { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: ".lan" };
 * environmentProxy(env, { host: "db.lan", port: 6514 }); // undefined
 */
export function environmentProxy(
  env: Record<string, string | undefined>,
  server: Address,
): { proxy: ProxyUrl; variable: string } | undefined {
  const noProxy = NO_PROXY_VARIABLES.find((name) => env[name]);
  if (noProxy && bypassesProxy(parseNoProxy(env[noProxy]!), server)) return undefined;
  const variable = PROXY_VARIABLES.find((name) => env[name]);
  if (!variable) return undefined;
  const text = env[variable]!;
  try {
    return { proxy: parseProxyUrl(text), variable };
  } catch (error) {
    throw new UsageError(`${variable} ${JSON.stringify(redactProxyText(text))}: ${reason(error)}`);
  }
}

/** One entry of NO_PROXY: every host, a name and the names under it, or an address or network; any port or one. */
export type NoProxyEntry =
  | { all: true }
  | { name: string; port?: number }
  | { network: number[]; bits: number; port?: number };

/**
 * NO_PROXY as curl reads it: entries separated by commas or spaces, each `*` (every host), a name
 * (`example.com` or `.example.com`: that name and every name under it), an address (`10.1.2.3`,
 * `::1`), a network (`10.0.0.0/8`, `fd00::/8`), and any of these but `*` with a port
 * (`db.lan:6514`, `[::1]:6514`), which then matches that port alone. Case does not count.
 */
export function parseNoProxy(text: string): NoProxyEntry[] {
  return text
    .split(/[\s,]+/)
    .filter((entry) => entry !== "")
    .map((entry): NoProxyEntry => {
      if (entry === "*") return { all: true };
      const withPort = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry) ?? /^([^:]+)(?::(\d+))$/.exec(entry);
      const host = (withPort?.[1] ?? entry).toLowerCase();
      const port = withPort?.[2] === undefined ? undefined : Number(withPort[2]);
      const [ip = "", prefix, ...more] = host.split("/");
      const network = ipBytes(ip);
      const bits = prefix === undefined ? (network?.length ?? 0) * 8 : Number(prefix);
      if (
        network &&
        more.length === 0 &&
        (prefix === undefined || /^\d{1,3}$/.test(prefix)) &&
        bits <= network.length * 8
      )
        return { network, bits, port };
      // Anything else is a name, which matches only a host written the same: curl ignores nothing either.
      return { name: host.replace(/^\.+/, "").replace(/\.$/, ""), port };
    });
}

/** Whether NO_PROXY's `entries` send `server` around the proxy: a name matches itself and the names under it. */
export function bypassesProxy(entries: readonly NoProxyEntry[], server: Address): boolean {
  const host = server.host.toLowerCase().replace(/\.$/, "");
  const address = ipBytes(host);
  return entries.some((entry) => {
    if ("all" in entry) return true;
    if (entry.port !== undefined && entry.port !== server.port) return false;
    if ("name" in entry) return entry.name !== "" && (host === entry.name || host.endsWith(`.${entry.name}`));
    return address !== undefined && address.length === entry.network.length && inNetwork(address, entry);
  });
}

function inNetwork(address: number[], { network, bits }: { network: number[]; bits: number }): boolean {
  for (let bit = 0; bit < bits; bit += 8) {
    const mask = (0xff << (8 - Math.min(8, bits - bit))) & 0xff;
    if ((address[bit / 8]! & mask) !== (network[bit / 8]! & mask)) return false;
  }
  return true;
}

/** The bytes of an IPv4 (4) or IPv6 (16) address as text, or undefined when it is not one. */
export function ipBytes(text: string): number[] | undefined {
  // No leading zero: the resolver reads 010.0.0.1 as octal (8.0.0.1), and so must not we as decimal.
  const v4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    return bytes.every((byte) => byte <= 255) ? bytes : undefined;
  }
  if (!/^[0-9a-f:.]+$/i.test(text) || !text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string) => (half === "" ? [] : half.split(":"));
  const words = (parts: string[]): number[] | undefined => {
    const out: number[] = [];
    for (const [i, part] of parts.entries()) {
      // An IPv4 address may end an IPv6 one (::ffff:10.1.2.3).
      const tail = i === parts.length - 1 && part.includes(".") ? ipBytes(part) : undefined;
      if (tail?.length === 4) out.push((tail[0]! << 8) | tail[1]!, (tail[2]! << 8) | tail[3]!);
      else if (/^[0-9a-f]{1,4}$/i.test(part)) out.push(Number.parseInt(part, 16));
      else return undefined;
    }
    return out;
  };
  const head = words(groups(halves[0]!));
  const tail = words(groups(halves[1] ?? ""));
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  return [...head, ...Array(halves.length === 1 ? 0 : missing).fill(0), ...tail].flatMap((word) => [
    word >> 8,
    word & 0xff,
  ]);
}
