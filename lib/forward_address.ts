// Where slpc hands messages to the home syslog daemon: the value of `--forward`. A bare
// HOST:PORT keeps meaning UDP, as it did before the other transports existed; a scheme picks
// octet-counted TCP (RFC 6587), RELP, or a local datagram socket such as /dev/log.

import { parseHostPort } from "./address.ts";
import { reason } from "./log.ts";

export type ForwardAddress =
  | { transport: "udp" | "tcp" | "relp"; host: string; port: number }
  | { transport: "unix"; path: string };

/** The longest path a Unix socket address holds: sun_path is 108 bytes with its NUL. */
export const MAX_UNIX_PATH = 107;

const FORMS = "udp://HOST:PORT, tcp://HOST:PORT, relp://HOST:PORT, unix:/PATH or HOST:PORT";

/**
 * `udp://HOST:PORT` or `HOST:PORT`, `tcp://HOST:PORT`, `relp://HOST:PORT` (`[::1]:PORT` for an IPv6
 * literal), or `unix:/PATH` (also `unix:///PATH`). Throws one line naming the problem otherwise.
 *
 * @example
 * parseForwardAddress("relp://[::1]:2514"); // { transport: "relp", host: "::1", port: 2514 }
 * parseForwardAddress("unix:/dev/log"); // { transport: "unix", path: "/dev/log" }
 */
export function parseForwardAddress(text: string): ForwardAddress {
  if (text === "") throw new Error(`required: ${FORMS}`);
  if (text.startsWith("unix:")) return { transport: "unix", path: unixPath(text.slice("unix:".length)) };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) return { transport: "udp", ...hostPort(text, "") };
  const name = scheme[1]!.toLowerCase();
  if (name !== "udp" && name !== "tcp" && name !== "relp")
    throw new Error(`unknown scheme "${scheme[1]}"; expected ${FORMS}`);
  return { transport: name, ...hostPort(text.slice(scheme[0].length), `${name}://`) };
}

/** The address as `--forward` takes it, for log lines. */
export function formatForwardAddress(address: ForwardAddress): string {
  if (address.transport === "unix") return `unix:${address.path}`;
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `${address.transport}://${host}:${address.port}`;
}

function hostPort(text: string, prefix: string): { host: string; port: number } {
  try {
    return parseHostPort(text);
  } catch (error) {
    // parseHostPort names the form HOST:PORT; here it has the scheme in front.
    const message = reason(error);
    if (prefix === "" && message === "expected HOST:PORT") throw new Error(`expected ${FORMS}`);
    if (message === "required") throw new Error(`expected ${prefix}HOST:PORT`);
    throw new Error(message.replace("HOST:PORT", `${prefix}HOST:PORT`));
  }
}

function unixPath(text: string): string {
  // unix:///dev/log is the URL spelling (Docker's, for one); unix://dev/log would name a host.
  const path = text.startsWith("///") ? text.slice(2) : text;
  if (!path.startsWith("/") || path.startsWith("//")) {
    throw new Error("a unix socket's path must be absolute, as in unix:/dev/log");
  }
  if (path.includes("\0")) throw new Error("a unix socket's path cannot hold a NUL byte");
  const length = Buffer.byteLength(path);
  if (length > MAX_UNIX_PATH) throw new Error(`a unix socket's path is ${MAX_UNIX_PATH} bytes at most, not ${length}`);
  return path;
}
