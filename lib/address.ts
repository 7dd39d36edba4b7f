// Network addresses as people write them (`HOST:PORT`, `[::1]:PORT`), and why one could not be
// listened on, in the words an operator needs.

import { reason } from "./log.ts";
import { UsageError } from "./options.ts";

export interface Address {
  host: string;
  port: number;
}

/** `HOST:PORT`, `[::1]:PORT`, or with a default port also a bare `HOST` or `[::1]`. */
export function parseHostPort(text: string, defaultPort?: number): Address {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+))(?::(\d+))?$/.exec(text);
  if (!match) {
    if (text === "") throw new Error("required");
    throw new Error(defaultPort === undefined ? "expected HOST:PORT" : "expected HOST or HOST:PORT");
  }
  const host = match[1] ?? match[2]!;
  // No host name begins with a dash (RFC 1123): this is the next flag, taken as the value of one left empty.
  if (host.startsWith("-")) throw new Error("expected HOST or HOST:PORT, not a flag: is the value missing?");
  if (match[3] === undefined) {
    if (defaultPort === undefined) throw new Error("expected HOST:PORT (the port is missing)");
    return { host, port: defaultPort };
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65535) throw new Error("port must be 1 to 65535");
  return { host, port };
}

export function formatAddress({ host, port }: Address): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Why a listening socket could not be opened, in the words an operator needs; `shown` names it as the flag did. */
export function bindFailure(flag: string, address: Address, error: unknown, shown = formatAddress(address)): string {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `cannot listen on ${shown} (--${flag})`;
  if (code === "EADDRINUSE") return `${where}: the address is already in use; pick another with --${flag}`;
  if (code === "EACCES" && address.port < 1024)
    return `${where}: ports under 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024 up with --${flag}`;
  if (code === "EADDRNOTAVAIL") return `${where}: no such address on this machine`;
  return `${where}: ${reason(error)}`;
}

/** A comma-separated list of `HOST[:PORT]`, each address once (a host's case does not count). */
export function parseHostPortList(text: string, defaultPort: number): Address[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.every((item) => item === "")) throw new Error("required");
  const addresses = items
    .filter((item) => item !== "")
    .map((item) => {
      try {
        return parseHostPort(item, defaultPort);
      } catch (error) {
        throw items.length > 1 ? new Error(`'${item}': ${reason(error)}`) : error;
      }
    });
  const seen = new Set<string>();
  for (const address of addresses) {
    const key = addressKey(address);
    if (seen.has(key)) throw new Error(`${formatAddress(address)} is named twice`);
    seen.add(key);
  }
  return addresses;
}

/** One address, however its host was capitalised: what --state and duplicate checks key on. */
export function addressKey({ host, port }: Address): string {
  return formatAddress({ host: host.toLowerCase(), port });
}

/**
 * Refuses a host name that does not resolve with `lookup` (node:dns's), naming the flag: a typo is
 * one line at start, not a socket that fails later.
 */
export async function mustResolve(
  flag: string,
  address: Address,
  lookup: (host: string) => Promise<unknown>,
): Promise<void> {
  try {
    await lookup(address.host);
  } catch (error) {
    throw new UsageError(`--${flag} ${formatAddress(address)}: cannot resolve ${address.host}: ${reason(error)}`);
  }
}
