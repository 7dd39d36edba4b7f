// The pure code slps and slpc are built from, one idea per module under lib/, each with its
// tests beside it (lib/x.ts and lib/x.test.ts). No sockets and no timers live there: the time and
// the I/O come in as arguments, so all of it is unit-tested on plain values. (lib/unix_dgram.ts,
// a datagram socket through libc, and the stderr of lib/log.ts are the exceptions, by design.)
// This file is the index: import from it, or from the module itself.

// Start: options, addresses, certificate files.
export * from "./lib/address.ts";
// slps: the resume buffer, each client's stream, numbers for operators.
export * from "./lib/client_stream.ts";
export * from "./lib/crl.ts";
export * from "./lib/dn.ts";
// slpc: the message, its filters and formats, and where it goes.
export * from "./lib/filter.ts";
export * from "./lib/format.ts";
export * from "./lib/forward_address.ts";
// Between slps and slpc: frames and the protocol's messages.
export * from "./lib/framing.ts";
// Both: limits in time, logging.
export * from "./lib/limits.ts";
export * from "./lib/log.ts";
export * from "./lib/metrics.ts";
export * from "./lib/options.ts";
export * from "./lib/protocol.ts";
export * from "./lib/relp.ts";
export * from "./lib/resume_buffer.ts";
export * from "./lib/syslog_message.ts";
export * from "./lib/terminal_text.ts";
export * from "./lib/tls.ts";
export * from "./lib/unix_dgram.ts";
