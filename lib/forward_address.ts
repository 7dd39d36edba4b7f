// Where slpc hands messages to the home syslog daemon: the value of `--forward`. A bare
// HOST:PORT keeps meaning UDP, as it did before the other transports existed; a scheme picks
// octet-counted TCP (RFC 6587), RELP, a local datagram socket such as /dev/log, or journald's
// native protocol (`journal`).

import { parseHostPort } from "./address.ts";
import { reason } from "./log.ts";

export type ForwardAddress =
  | { transport: "udp" | "tcp" | "relp"; host: string; port: number }
  | { transport: "unix" | "journal"; path: string };

/** The longest path a Unix socket address holds: sun_path is 108 bytes with its NUL. */
export const MAX_UNIX_PATH = 107;
/** Where journald takes entries of its native protocol: `--forward journal`. */
export const JOURNAL_SOCKET = "/run/systemd/journal/socket";

const FORMS = "udp://HOST:PORT, tcp://HOST:PORT, relp://HOST:PORT, unix:/PATH, journal[:/PATH] or HOST:PORT";

/**
 * `udp://HOST:PORT` or `HOST:PORT`, `tcp://HOST:PORT`, `relp://HOST:PORT` (`[::1]:PORT` for an IPv6
 * literal), `unix:/PATH` (also `unix:///PATH`), or `journal` (journald's socket) and `journal:/PATH`.
 * Throws one line naming the problem otherwise.
 *
 * @example
 * parseForwardAddress("relp://[::1]:2514"); // { transport: "relp", host: "::1", port: 2514 }
 * parseForwardAddress("unix:/dev/log"); // { transport: "unix", path: "/dev/log" }
 * parseForwardAddress("journal"); // { transport: "journal", path: "/run/systemd/journal/socket" }
 */
export function parseForwardAddress(text: string): ForwardAddress {
  if (text === "") throw new Error(`required: ${FORMS}`);
  if (text.startsWith("unix:")) return { transport: "unix", path: unixPath(text.slice("unix:".length), "unix") };
  if (text === "journal") return { transport: "journal", path: JOURNAL_SOCKET };
  if (text.startsWith("journal:")) {
    return { transport: "journal", path: unixPath(text.slice("journal:".length), "journal") };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) return { transport: "udp", ...hostPort(text, "") };
  const name = scheme[1]!.toLowerCase();
  if (name !== "udp" && name !== "tcp" && name !== "relp")
    throw new Error(`unknown scheme "${scheme[1]}"; expected ${FORMS}`);
  return { transport: name, ...hostPort(text.slice(scheme[0].length), `${name}://`) };
}

/** The address as `--forward` takes it, for log lines. */
export function formatForwardAddress(address: ForwardAddress): string {
  if ("path" in address) return `${address.transport}:${address.path}`;
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

/** The path of `unix:PATH` (also `unix:///PATH`), checked: absolute, no NUL, short enough for a socket address. */
export function unixPath(text: string, scheme: "unix" | "journal"): string {
  // unix:///dev/log is the URL spelling (Docker's, for one); unix://dev/log would name a host.
  const path = text.startsWith("///") ? text.slice(2) : text;
  if (!path.startsWith("/") || path.startsWith("//")) {
    const example = scheme === "unix" ? "unix:/dev/log" : `journal:${JOURNAL_SOCKET}`;
    throw new Error(`a unix socket's path must be absolute, as in ${example}`);
  }
  if (path.includes("\0")) throw new Error("a unix socket's path cannot hold a NUL byte");
  const length = Buffer.byteLength(path);
  if (length > MAX_UNIX_PATH) throw new Error(`a unix socket's path is ${MAX_UNIX_PATH} bytes at most, not ${length}`);
  return path;
}
