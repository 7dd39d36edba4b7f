// Senders of datagrams to a local socket such as /dev/log or journald's, and the socket slps's
// unix: input reads, through libc (bun:ffi). Neither Bun nor Node can do it: node:dgram knows udp4
// and udp6 only, Bun.udpSocket wants a port, and Bun.connect / node:net open a stream socket, which
// a datagram socket refuses (ECONNREFUSED). So this module holds sockets, the one exception among
// lib/'s modules.
//
// A local datagram socket does not drop: when the reader's queue is full the kernel answers
// EAGAIN, which `send` reports as "full", so the caller keeps the message and tries again later.
// UnixDatagramSender addresses each datagram by path (sendto), so a daemon that restarts and makes
// its socket anew is found again without reconnecting. UnixDatagramConnection is connected to one
// reader's socket instead, which tells more: how much of what it sent the reader has not read yet,
// when there is room again (poll), and that the reader went away, taking what it had not read.

import { ptr as addressOf, CString, dlopen, FFIType, read } from "bun:ffi";
import { lstatSync, unlinkSync } from "node:fs";
import { MAX_UNIX_PATH } from "./forward_address.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SCM_RIGHTS = 1;
const SIOCOUTQ = 0x5411;
const POLLOUT = 4;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
/** F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE: all four, which journald checks for. */
const ALL_SEALS = 1 | 2 | 4 | 8;
const EINTR = 4;
const EAGAIN = 11;
/** Names of the errors a caller may meet, for `error.code`; the text comes from strerror. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  20: "ENOTDIR",
  22: "EINVAL",
  24: "EMFILE",
  27: "EFBIG",
  32: "EPIPE",
  38: "ENOSYS",
  88: "ENOTSOCK",
  98: "EADDRINUSE",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  104: "ECONNRESET",
  105: "ENOBUFS",
  107: "ENOTCONN",
  111: "ECONNREFUSED",
};

let libc: ReturnType<typeof openLibc> | undefined;

// fcntl and ioctl are variadic in C; their third argument is passed as the one fixed argument it
// is, which the x86-64 and AArch64 calling conventions allow for integer and pointer arguments.
function openLibc() {
  const { i32, u32, u64, i64, ptr } = FFIType;
  return dlopen("libc.so.6", {
    socket: { args: [i32, i32, i32], returns: i32 },
    connect: { args: [i32, ptr, u32], returns: i32 },
    bind: { args: [i32, ptr, u32], returns: i32 },
    recv: { args: [i32, ptr, u64, i32], returns: i64 },
    setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
    send: { args: [i32, ptr, u64, i32], returns: i64 },
    sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64 },
    sendmsg: { args: [i32, ptr, i32], returns: i64 },
    poll: { args: [ptr, u64, i32], returns: i32 },
    ioctl: { args: [i32, u64, ptr], returns: i32 },
    memfd_create: { args: [ptr, u32], returns: i32 },
    write: { args: [i32, ptr, u64], returns: i64 },
    fcntl: { args: [i32, i32, i32], returns: i32 },
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
    libc ??= openLibc();
    this.path = path;
    this.#address = socketAddress(path);
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

/**
 * The least the kernel charges a datagram, in what SIOCOUTQ counts, beyond its own bytes: its
 * sk_buff and the rest. Linux 6.18 charged 576 bytes and more; half of that leaves room for others.
 */
export const DATAGRAM_OVERHEAD = 256;

/**
 * How many of the oldest datagrams the reader has surely read, of those whose sizes `sent` lists
 * oldest first, when `unread` bytes of them are unread (SIOCOUTQ). What is unread is the newest,
 * and each is charged its size and DATAGRAM_OVERHEAD at least: the newest that add up to `unread`
 * so reckoned are all that can be unread. (Only while the reader is there: one that went away
 * dropped what it had not read, and leaves `unread` at 0 too.)
 *
 * @example
 * surelyRead([100, 100, 100], 0); // 3
 * surelyRead([100, 100, 100], 768); // 1: the newest two may be what is unread
 */
export function surelyRead(sent: { readonly length: number; at(index: number): number | undefined }, unread: number) {
  let newest = 0;
  for (let bytes = 0; newest < sent.length && bytes < unread; newest++) {
    bytes += sent.at(sent.length - 1 - newest)! + DATAGRAM_OVERHEAD;
  }
  return sent.length - newest;
}

/** struct sockaddr_un for `path`: the family, then the path and its NUL. */
function socketAddress(path: string): Buffer {
  const length = Buffer.byteLength(path);
  if (length > MAX_UNIX_PATH || path.includes("\0")) throw new RangeError(`not a unix socket path: ${path}`);
  const address = Buffer.alloc(2 + length + 1);
  address.writeUInt16LE(AF_UNIX, 0);
  address.write(path, 2);
  return address;
}

/** What `send` returns, or throws for errno; EINTR is tried again, EAGAIN is "full". */
function outcome(call: () => number | bigint, what: string): "sent" | "full" {
  for (;;) {
    if (Number(call()) >= 0) return "sent";
    const error = lastError(what);
    if (error.errno === EAGAIN) return "full";
    if (error.errno !== EINTR) throw error;
  }
}

/**
 * @example
 * const journal = new UnixDatagramConnection("/run/systemd/journal/socket");
 * journal.connect(); // throws ENOENT or ECONNREFUSED while journald is not there
 * journal.send(Buffer.from("MESSAGE=hello\n")); // "sent", or "full" while journald is behind
 * journal.unread(); // 0 once journald read it
 * journal.close();
 */
export class UnixDatagramConnection {
  readonly path: string;
  readonly #address: Buffer;
  readonly #sendBuffer: number | undefined;
  #fd = -1;
  /** struct pollfd {fd, events, revents} for `waitWritable`, and the int `unread` reads into. */
  readonly #pollFd = Buffer.alloc(8);
  readonly #count = Buffer.alloc(4);

  /**
   * Opens nothing yet: `connect` does. Throws for a path no socket address holds.
   * @param options.sendBuffer SO_SNDBUF, which bounds a datagram's size; default net.core.wmem_default
   */
  constructor(path: string, options: { sendBuffer?: number } = {}) {
    libc ??= openLibc();
    this.path = path;
    this.#address = socketAddress(path);
    this.#sendBuffer = options.sendBuffer;
  }

  get connected(): boolean {
    return this.#fd >= 0;
  }

  /**
   * A new socket, connected to the reader's. Throws ENOENT (no socket there), ECONNREFUSED (nobody
   * reads it), EACCES.
   */
  connect(): void {
    this.close();
    const fd = libc!.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw lastError("socket");
    try {
      if (this.#sendBuffer !== undefined) {
        const size = Buffer.alloc(4);
        size.writeInt32LE(this.#sendBuffer);
        if (libc!.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, size, 4) < 0) throw lastError("setsockopt SO_SNDBUF");
      }
      while (libc!.connect(fd, this.#address, this.#address.length) < 0) {
        const error = lastError(this.path);
        if (error.errno !== EINTR) throw error;
      }
    } catch (error) {
      libc!.close(fd);
      throw error;
    }
    this.#fd = fd;
    this.#pollFd.writeInt32LE(fd, 0);
    this.#pollFd.writeInt16LE(POLLOUT, 4);
  }

  /**
   * One datagram, whole or not at all: "sent" once the reader's queue has it, "full" while that
   * queue has no room. An empty one says only whether the reader is still there. Throws when it
   * cannot go, with `code`: ECONNREFUSED (the reader went away: connect again), EMSGSIZE.
   */
  send(datagram: Uint8Array): "sent" | "full" {
    const fd = this.#open();
    // An empty buffer has no address to pass; a one-byte one with length 0 sends the empty datagram.
    const data = datagram.length > 0 ? datagram : new Uint8Array(1);
    return outcome(() => libc!.send(fd, data, datagram.length, MSG_DONTWAIT | MSG_NOSIGNAL), this.path);
  }

  /**
   * `content` in a sealed memfd, passed with SCM_RIGHTS in an otherwise empty datagram: how
   * journald's native protocol takes an entry larger than a datagram can be. As `send` otherwise.
   */
  sendSealed(content: Uint8Array): "sent" | "full" {
    const fd = this.#open();
    const memfd = libc!.memfd_create(Buffer.from("slpc-journal\0"), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0) throw lastError("memfd_create");
    try {
      for (let at = 0; at < content.length; ) {
        const wrote = Number(libc!.write(memfd, content.subarray(at), content.length - at));
        if (wrote >= 0) {
          at += wrote;
          continue;
        }
        const error = lastError("memfd write");
        if (error.errno !== EINTR) throw error;
      }
      if (libc!.fcntl(memfd, F_ADD_SEALS, ALL_SEALS) < 0) throw lastError("memfd seals");
      // struct cmsghdr {size_t len; int level; int type;} and the descriptor: CMSG_SPACE(4) is 24.
      const control = Buffer.alloc(24);
      control.writeBigUInt64LE(20n, 0);
      control.writeInt32LE(SOL_SOCKET, 8);
      control.writeInt32LE(SCM_RIGHTS, 12);
      control.writeInt32LE(memfd, 16);
      // struct msghdr: no name (connected), no iovec (empty payload), then msg_control at 32 and its length at 40.
      const header = Buffer.alloc(56);
      header.writeBigUInt64LE(BigInt(addressOf(control)), 32);
      header.writeBigUInt64LE(BigInt(control.length), 40);
      return outcome(() => libc!.sendmsg(fd, header, MSG_DONTWAIT | MSG_NOSIGNAL), this.path);
    } finally {
      // The datagram holds its own reference to the file until the reader takes it.
      libc!.close(memfd);
    }
  }

  /** Bytes of datagrams sent and not read yet (SIOCOUTQ): 0 once the reader read all, or went away. */
  unread(): number {
    if (libc!.ioctl(this.#open(), SIOCOUTQ, this.#count) < 0) throw lastError("SIOCOUTQ");
    return this.#count.readInt32LE(0);
  }

  /** Waits up to `ms` for room in the reader's queue (poll); true when a send may go, or will fail at once. */
  waitWritable(ms: number): boolean {
    this.#open();
    return libc!.poll(this.#pollFd, 1, ms) > 0;
  }

  /** Closes the socket, if one is open; `connect` opens another. */
  close(): void {
    if (this.#fd >= 0) libc!.close(this.#fd);
    this.#fd = -1;
  }

  #open(): number {
    if (this.#fd < 0) throw new Error(`${this.path}: not connected`);
    return this.#fd;
  }
}

/**
 * A datagram socket bound at `path`, as a syslog daemon binds /dev/log: its descriptor, for
 * `receiveDatagram`. A socket left at `path` by a reader that is gone (a crash, a SIGKILL) is
 * replaced; one a live reader holds is not, nor anything that is not a socket. Throws with `code`:
 * EADDRINUSE, EEXIST (not a socket), ENOENT (no such folder), EACCES.
 */
export function bindUnixDatagram(path: string): number {
  libc ??= openLibc();
  const address = socketAddress(path);
  const existing = lstatSync(path, { throwIfNoEntry: false });
  if (existing && !existing.isSocket()) {
    throw Object.assign(new Error(`${path}: not a socket; slps replaces only a socket of its own`), { code: "EEXIST" });
  }
  if (existing) {
    const probe = new UnixDatagramConnection(path);
    try {
      probe.connect();
      throw Object.assign(new Error(`${path}: another program reads this socket`), { code: "EADDRINUSE" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ECONNREFUSED") throw error;
      unlinkSync(path); // nobody reads it: left by a reader that is gone
    } finally {
      probe.close();
    }
  }
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw lastError("socket");
  if (libc.bind(fd, address, address.length) < 0) {
    const error = lastError(path);
    libc.close(fd);
    throw error;
  }
  return fd;
}

/**
 * Reads one datagram from socket `fd` into `into`: its length, which is more than `into` holds when
 * it was cut to fit (MSG_TRUNC); or undefined when none waits and `wait` is false. With `wait`, it
 * blocks the thread until one comes: call it from a Worker. Throws for a socket that cannot be read.
 */
export function receiveDatagram(fd: number, into: Uint8Array, wait: boolean): number | undefined {
  libc ??= openLibc();
  const flags = MSG_TRUNC | (wait ? 0 : MSG_DONTWAIT);
  for (;;) {
    const length = Number(libc.recv(fd, into, into.length, flags));
    if (length >= 0) return length;
    const error = lastError("recv");
    if (error.errno === EAGAIN) return undefined;
    if (error.errno !== EINTR) throw error;
  }
}
