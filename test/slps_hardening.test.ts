// Issue 9, the server's side: odd moments thrown at a real slps. Connections reset before the
// first callback, empty and oversized datagrams, refused peers that never close, revoked pinned
// certificates, CRLs of a CA hierarchy, and clients that are slow rather than dead.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { MAX_MESSAGE } from "../lib.ts";
import { freePort, sendUdp, sleep, snapshotOf, testBed, udpDrops, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const { server, client, sink } = bed;

/** Whether this machine has the IPv6 loopback address ::1 (its line in /proc/net/if_inet6). */
const ipv6Loopback = /^0{31}1 /m.test(readFileSync("/proc/net/if_inet6", "utf8"));
if (!ipv6Loopback) console.warn("slps_hardening.test.ts: skipping the IPv6 datagram test: this machine has no ::1");

/** Sends each message as one datagram with node:dgram, which sends an empty one too. */
async function sendDatagrams(host: string, port: number, messages: Uint8Array[]): Promise<void> {
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  try {
    for (const message of messages) {
      await new Promise<void>((resolve, reject) =>
        socket.send(message, port, host, (error) => (error ? reject(error) : resolve())),
      );
    }
  } finally {
    socket.close();
  }
}

/** A UDP port free on ::1 a moment ago. */
async function freeIpv6Port(): Promise<number> {
  const socket = createSocket("udp6");
  await new Promise<void>((resolve) => socket.bind(0, "::1", resolve));
  const { port } = socket.address();
  socket.close();
  return port;
}

describe("datagrams no client could take (defect 2)", () => {
  test("an empty datagram is skipped and counted, and the messages after it arrive", async () => {
    const s = await server();
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const empty = Buffer.alloc(0);
    await sendDatagrams("127.0.0.1", s.udpPort, [empty, Buffer.from("<13>one"), empty, Buffer.from("<13>two")]);
    await until("both messages", () => out.messages.length === 2);
    expect(out.messages.map(String)).toEqual(["<13>one", "<13>two"]);
    await s.waitFor(/skipped 2 empty datagrams: an empty message cannot be relayed \(2 in all\)/);
    const numbers = await snapshotOf(s);
    expect(numbers).toMatchObject({ received: 2, skipped: { empty: 2, oversize: 0 }, buffer: { next: 3 } });
  });

  const overIpv6 = "a datagram over 65,507 bytes on --udp [::1] is skipped and counted; the largest that fits arrives";
  test.skipIf(!ipv6Loopback)(overIpv6, async () => {
    const udpPort = await freeIpv6Port();
    const s = await server(["--udp", `[::1]:${udpPort}`]);
    await s.waitFor(new RegExp(`receiving syslog on udp \\[::1\\]:${udpPort}`));
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const largest = Buffer.alloc(MAX_MESSAGE, 0x6d);
    await sendDatagrams("::1", udpPort, [Buffer.alloc(65_520, 0x78), largest, Buffer.from("<13>after")]);
    await until("the two that fit", () => out.messages.length === 2);
    expect(out.messages[0]!.equals(largest)).toBe(true);
    expect(out.messages[1]!.toString()).toBe("<13>after");
    await s.waitFor(/skipped 1 datagrams over 65507 bytes, too long for a frame \(1 in all\)/);
    const numbers = await snapshotOf(s);
    expect(numbers).toMatchObject({ received: 2, skipped: { empty: 0, oversize: 1 }, buffer: { next: 3 } });
  });
});

describe("loss at slps's own UDP socket is counted, not silent (issue 17)", () => {
  test("the kernel's drops while slps is frozen: counted in SIGUSR1 and /metrics, said with the fix", async () => {
    const metricsPort = await freePort();
    const s = await server(["--udp-buffer", "16KiB", "--metrics", `127.0.0.1:${metricsPort}`]);
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const sent = Array.from({ length: 300 }, (_, i) => Buffer.from(`<13>burst ${i} ${"x".repeat(1000)}`));
    // Frozen, slps reads nothing: the kernel keeps what fits in 16 KiB and drops the rest.
    s.kill("SIGSTOP");
    bed.defer(() => s.kill("SIGCONT"));
    await sendUdp(s.udpPort, [...sent, Buffer.alloc(0)]);
    const dropped = udpDrops(s.udpPort);
    expect(dropped).toBeGreaterThan(100);
    s.kill("SIGCONT");
    const counted = `the kernel dropped ${dropped} datagrams at the UDP socket \\(${dropped} in all\\)`;
    const fix = "its receive buffer of \\d+ bytes was full; raise --udp-buffer, and net.core.rmem_max with it";
    await s.waitFor(new RegExp(`${counted}: ${fix}`));
    const numbers = await snapshotOf(s);
    expect(numbers.kernelDropped).toBe(dropped);
    // Nothing uncounted: what arrived, what was skipped and what the kernel dropped is what was sent.
    expect(numbers.received + numbers.skipped.empty + numbers.skipped.oversize + dropped).toBe(sent.length + 1);
    await until("every message that arrived at the client", () => out.messages.length === numbers.received);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain(`\nslps_kernel_dropped_datagrams_total ${dropped}\n`);
    // Once a second at most, and only when there is something new to say.
    await sleep(2500);
    expect(s.stderr.match(/the kernel dropped/g)).toHaveLength(1);
  });
});
