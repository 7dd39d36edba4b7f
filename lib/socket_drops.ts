// The datagrams the kernel dropped at one of this process's sockets, asked of the socket itself:
// getsockopt(SO_MEMINFO) through libc (bun:ffi), since neither node:dgram nor Bun offers it. It costs
// the same whatever else the host has open, where /proc/net/udp costs the kernel a row for every UDP
// socket on the host (4.8 s a read at 60,000 of them, which any local user can open). Like
// lib/unix_dgram.ts, an exception among lib's modules: it calls the system.

import { dlopen, FFIType, ptr } from "bun:ffi";

const SOL_SOCKET = 1;
/** Linux's SO_MEMINFO: an array of SK_MEMINFO_VARS counters, the last of them SK_MEMINFO_DROPS. */
const SO_MEMINFO = 55;
const SK_MEMINFO_VARS = 9;
const SK_MEMINFO_DROPS = 8;

let libc: ReturnType<typeof openLibc> | undefined;

function openLibc() {
  const { i32, ptr: pointer } = FFIType;
  return dlopen("libc.so.6", {
    getsockopt: { args: [i32, i32, i32, pointer, pointer], returns: i32 },
  }).symbols;
}

/**
 * The kernel's count of datagrams dropped at socket `fd` since it was made, or undefined when the
 * socket cannot say (not a socket, closed, a kernel before 4.6).
 *
 * @example
 * ```ts
 * import { socketDrops } from "./lib/socket_drops.ts";
 * socketDrops(7); // 0, for a fresh UDP socket on descriptor 7
 * ```
 */
export function socketDrops(fd: number): number | undefined {
  libc ??= openLibc();
  const counters = new Uint32Array(SK_MEMINFO_VARS);
  const length = new Uint32Array([counters.byteLength]);
  const result = libc.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, ptr(counters), ptr(length));
  if (result !== 0 || length[0]! < (SK_MEMINFO_DROPS + 1) * 4) return undefined;
  return counters[SK_MEMINFO_DROPS];
}
