// Unit tests of --forward's forms: every accepted spelling, and one clear line for each refusal.

import { describe, expect, test } from "bun:test";
import { formatForwardAddress, JOURNAL_SOCKET, MAX_UNIX_PATH, parseForwardAddress } from "./forward_address.ts";

describe("parseForwardAddress", () => {
  test.each([
    ["127.0.0.1:514", { transport: "udp", host: "127.0.0.1", port: 514 }],
    ["localhost:514", { transport: "udp", host: "localhost", port: 514 }],
    ["[::1]:514", { transport: "udp", host: "::1", port: 514 }],
    ["udp://127.0.0.1:514", { transport: "udp", host: "127.0.0.1", port: 514 }],
    ["udp://[::1]:514", { transport: "udp", host: "::1", port: 514 }],
    ["tcp://127.0.0.1:1514", { transport: "tcp", host: "127.0.0.1", port: 1514 }],
    ["tcp://logs.example.org:514", { transport: "tcp", host: "logs.example.org", port: 514 }],
    ["tcp://[fe80::1]:514", { transport: "tcp", host: "fe80::1", port: 514 }],
    ["relp://127.0.0.1:2514", { transport: "relp", host: "127.0.0.1", port: 2514 }],
    ["relp://[::1]:2514", { transport: "relp", host: "::1", port: 2514 }],
    ["RELP://127.0.0.1:2514", { transport: "relp", host: "127.0.0.1", port: 2514 }],
    ["unix:/dev/log", { transport: "unix", path: "/dev/log" }],
    ["unix:///dev/log", { transport: "unix", path: "/dev/log" }],
    ["unix:/run/systemd/journal/syslog", { transport: "unix", path: "/run/systemd/journal/syslog" }],
    [`unix:/${"a".repeat(MAX_UNIX_PATH - 1)}`, { transport: "unix", path: `/${"a".repeat(MAX_UNIX_PATH - 1)}` }],
    ["journal", { transport: "journal", path: "/run/systemd/journal/socket" }],
    ["journal:/run/systemd/journal.web/socket", { transport: "journal", path: "/run/systemd/journal.web/socket" }],
    ["journal:///tmp/journal.sock", { transport: "journal", path: "/tmp/journal.sock" }],
  ])("%s is accepted", (text, address) => {
    expect(parseForwardAddress(text)).toEqual(address as ReturnType<typeof parseForwardAddress>);
  });

  const forms = "udp://HOST:PORT, tcp://HOST:PORT, relp://HOST:PORT, unix:/PATH, journal[:/PATH] or HOST:PORT";
  test.each([
    ["", `required: ${forms}`],
    ["http://127.0.0.1:514", `unknown scheme "http"; expected ${forms}`],
    ["tls://127.0.0.1:6514", `unknown scheme "tls"; expected ${forms}`],
    ["127.0.0.1", "expected HOST:PORT (the port is missing)"],
    ["tcp://127.0.0.1", "expected tcp://HOST:PORT (the port is missing)"],
    ["relp://[::1]", "expected relp://HOST:PORT (the port is missing)"],
    ["udp://", "expected udp://HOST:PORT"],
    ["tcp://127.0.0.1:0", "port must be 1 to 65535"],
    ["relp://127.0.0.1:65536", "port must be 1 to 65535"],
    ["tcp://::1:514", "expected tcp://HOST:PORT"],
    ["udp:/127.0.0.1:514", `expected ${forms}`],
    ["unix:dev/log", "a unix socket's path must be absolute, as in unix:/dev/log"],
    ["unix:", "a unix socket's path must be absolute, as in unix:/dev/log"],
    ["unix://dev/log", "a unix socket's path must be absolute, as in unix:/dev/log"],
    ["unix:/dev/\0log", "a unix socket's path cannot hold a NUL byte"],
    [
      `unix:/${"a".repeat(MAX_UNIX_PATH)}`,
      `a unix socket's path is ${MAX_UNIX_PATH} bytes at most, not ${MAX_UNIX_PATH + 1}`,
    ],
    ["journal:", `a unix socket's path must be absolute, as in journal:${JOURNAL_SOCKET}`],
    ["journal:run/socket", `a unix socket's path must be absolute, as in journal:${JOURNAL_SOCKET}`],
    [
      `journal:/${"a".repeat(MAX_UNIX_PATH)}`,
      `a unix socket's path is ${MAX_UNIX_PATH} bytes at most, not ${MAX_UNIX_PATH + 1}`,
    ],
    ["journald", "expected HOST:PORT (the port is missing)"],
  ])("%j is refused", (text, message) => {
    expect(() => parseForwardAddress(text)).toThrow(new Error(message));
  });
});

describe("formatForwardAddress", () => {
  test.each([
    "udp://127.0.0.1:514",
    "tcp://[::1]:1514",
    "relp://logs.example.org:2514",
    "unix:/dev/log",
    "journal:/run/systemd/journal.web/socket",
  ])("%s reads back as it was written", (text) => {
    expect(formatForwardAddress(parseForwardAddress(text))).toBe(text);
  });

  test("a bare HOST:PORT is shown with its scheme, udp", () => {
    expect(formatForwardAddress(parseForwardAddress("[::1]:514"))).toBe("udp://[::1]:514");
  });

  test("a bare journal is shown with the socket it names", () => {
    expect(formatForwardAddress(parseForwardAddress("journal"))).toBe(`journal:${JOURNAL_SOCKET}`);
  });
});
