// A sender of datagrams to a local syslog socket such as /dev/log, through libc (bun:ffi).
// Neither Bun nor Node can do it: node:dgram knows udp4 and udp6 only, Bun.udpSocket wants a
// port, and Bun.connect / node:net open a stream socket, which a datagram socket refuses
// (ECONNREFUSED). So this module holds a socket, the one exception among lib/'s modules.
//
// A local datagram socket does not drop: when the daemon's queue is full the kernel answers
// EAGAIN, which `send` reports as "full", so the caller keeps the message and tries again later.
// Each datagram is addressed by path (sendto), so a daemon that restarts and makes its socket
// anew is found again without reconnecting.

import { CString, dlopen, FFIType, read } from "bun:ffi";
import { MAX_UNIX_PATH } from "./forward_address.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const EINTR = 4;
const EAGAIN = 11;
/** Names of the errors a caller may meet, for `error.code`; the text comes from strerror. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  11: "EAGAIN",
  13: "EACCES",
  20: "ENOTDIR",
  24: "EMFILE",
  88: "ENOTSOCK",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  105: "ENOBUFS",
  111: "ECONNREFUSED",
};

let libc: ReturnType<typeof openLibc> | undefined;

function openLibc() {
  const { i32, u32, u64, i64, ptr } = FFIType;
  return dlopen("libc.so.6", {
    socket: { args: [i32, i32, i32], returns: i32 },
    sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64 },
    close: { args: [i32], returns: i32 },
    strerror: { args: [i32], returns: ptr },
    __errno_location: { args: [], returns: ptr },
  }).symbols;
}

/** The error libc reported last, as `Error` with `code` (`ENOENT`) and strerror's text. */
function lastError(what: string): NodeJS.ErrnoException {
  const number = read.i32(libc!.__errno_location()!, 0);
  const code = ERRNO_NAMES[number] ?? `errno ${number}`;
  const text = new CString(libc!.strerror(number)!).toString();
  return Object.assign(new Error(`${what}: ${text}`), { code, errno: number });
}

/**
 * @example
 * const log = new UnixDatagramSender("/dev/log");
 * log.send(Buffer.from("<13>app: hello")); // "sent", or "full" while the daemon is behind
 * log.close();
 */
export class UnixDatagramSender {
  readonly path: string;
  #fd: number;
  /** struct sockaddr_un for `path`: the family, then the path and its NUL. */
  #address: Buffer;

  /** Opens the socket; the path is only looked up by each `send`. Throws if the system has no socket to give. */
  constructor(path: string) {
    const length = Buffer.byteLength(path);
    if (length > MAX_UNIX_PATH || path.includes("\0")) throw new RangeError(`not a unix socket path: ${path}`);
    libc ??= openLibc();
    this.path = path;
    this.#address = Buffer.alloc(2 + length + 1);
    this.#address.writeUInt16LE(AF_UNIX, 0);
    this.#address.write(path, 2);
    this.#fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (this.#fd < 0) throw lastError("socket");
  }

  /**
   * Sends one message as one datagram, whole or not at all: "sent" once the daemon's queue has
   * it, "full" while that queue has no room (try again later). Throws when the datagram cannot
   * go, with `code`: ENOENT (no socket there), ECONNREFUSED (nobody reads it), EMSGSIZE, EACCES.
   */
  send(message: Uint8Array): "sent" | "full" {
    if (this.#fd < 0) throw new Error(`${this.path}: socket closed`);
    // An empty buffer has no address to pass; a one-byte one with length 0 sends the empty datagram.
    const data = message.length > 0 ? message : new Uint8Array(1);
    for (;;) {
      const flags = MSG_DONTWAIT | MSG_NOSIGNAL;
      const sent = libc!.sendto(this.#fd, data, message.length, flags, this.#address, this.#address.length);
      if (Number(sent) >= 0) return "sent";
      const error = lastError(this.path);
      if (error.errno === EAGAIN) return "full";
      if (error.errno !== EINTR) throw error;
    }
  }

  /** Closes the socket; sending after that throws. */
  close(): void {
    if (this.#fd >= 0) libc!.close(this.#fd);
    this.#fd = -1;
  }
}
