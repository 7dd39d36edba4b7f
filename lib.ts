// The pure code slps and slpc are built from, one idea per module under lib/, each with its
// tests beside it (lib/x.ts and lib/x.test.ts). No sockets and no timers live there: the time and
// the I/O come in as arguments, so all of it is unit-tested on plain values. (lib/unix_dgram.ts,
// a datagram socket through libc, and the stderr of lib/log.ts are the exceptions, by design.)
// This file is the index: import from it, or from the module itself.

export * from "./lib/address.ts"; // HOST:PORT, and why a port could not be listened on
export * from "./lib/buffer_files.ts"; // slps's --buffer-dir as bytes: records, segments, the run file, --fsync
export * from "./lib/client_auth.ts"; // slps's checks of a client certificate after the handshake, and its name
export * from "./lib/client_stream.ts"; // what slps still has to send one client
export * from "./lib/crl.ts"; // revocation lists, read by slps itself for pinned certificates
export * from "./lib/dn.ts"; // distinguished names, for --issuer
export * from "./lib/fifo.ts"; // a queue with an O(1) shift, for slpc's messages per server
export * from "./lib/filter.ts"; // the filters a client chooses and slps applies
export * from "./lib/format.ts"; // slpc's output formats: raw (--stdout), JSON, pretty
export * from "./lib/forward_address.ts"; // the address --forward takes
export * from "./lib/framing.ts"; // octet-counted frames and the deframer
export * from "./lib/input_address.ts"; // the addresses slps's --input takes
export * from "./lib/journal_entry.ts"; // a syslog message as an entry of journald's native protocol
export * from "./lib/ledger.ts"; // where each message slpc received stands, and each server's resume point
export * from "./lib/limits.ts"; // the handshake limiter, the token bucket, backoff
export * from "./lib/log.ts"; // log lines, reason(error), network errors
export * from "./lib/metrics.ts"; // the Prometheus text format
export * from "./lib/options.ts"; // flags and variables named after each option's key, --help, the value parsers
export * from "./lib/parse_cache.ts"; // what slps's filters read of recent messages, parsed once for all clients
export * from "./lib/phases.ts"; // a connection's phases in slps, and how long it may stay in each
export * from "./lib/protocol.ts"; // the control messages and the resume decision
export * from "./lib/proxy.ts"; // which proxy slpc dials a server through: --proxy, HTTPS_PROXY, NO_PROXY
export * from "./lib/proxy_handshake.ts"; // the exchange that opens a tunnel: HTTP CONNECT or SOCKS5
export * from "./lib/relp.ts"; // a RELP client session, sans I/O
export * from "./lib/relp_server.ts"; // the server's side of a RELP session, sans I/O, for slps's relp:// input
export * from "./lib/resume_buffer.ts"; // slps's ring of recent messages, every client's queue; ResumeStore
export * from "./lib/server_numbers.ts"; // slps's numbers for SIGUSR1 and /metrics, from its state
export * from "./lib/socket_drops.ts"; // a socket's own count of what the kernel dropped, through libc
export * from "./lib/state_file.ts"; // slpc's --state file, a resume point per server
export * from "./lib/syslog_message.ts"; // a syslog message's header, RFC 5424 or 3164
export * from "./lib/syslog_tcp_framing.ts"; // syslog over TCP as daemons send it: octet-counted or LF-framed
export * from "./lib/terminal_text.ts"; // a message's text made safe and measured for a terminal
export * from "./lib/tls.ts"; // the TLS profile, and the certificate files, checked before a socket opens
export * from "./lib/udp_drops.ts"; // the kernel's count of datagrams dropped at one UDP socket
export * from "./lib/unix_dgram.ts"; // a local datagram socket such as /dev/log, through libc
