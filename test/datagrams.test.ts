// What any local process's datagrams can do to slps: an empty one or one too long for a frame is
// skipped and counted, the kernel's drops at a full socket are counted and said, and content whose
// cost the sender sizes stays within stated bounds.
//
// Hostile content (issue 17): datagrams whose cost any local process sizes, sent to a real slps
// while clients filter: maximal structured data, thousands of SD elements, maximal fields,
// invalid UTF-8, empty and maximal datagrams, and a client's flood of control messages. One slpc
// filters live (`--program legit`), and a client of the test's own filters `--program cron`, reads
// nothing after its start and says `progress` twice a second: slow but alive, it holds its place
// in the buffer for good. After each sequence:
// - CPU: slps's CPU time per message (utime + stime from /proc) is within CPU_FACTOR of a plain
//   datagram of the largest size, sent the same way. Before issue 17, 9,000 SD elements cost 13
//   times as much here (34 in bench/hostile_slps.ts), and the kernel dropped 941 of 1,500.
// - Memory: slps's RssAnon stays within its value at start plus twice what the buffer holds at
//   most, plus RUNTIME_SLACK for the runtime's garbage. Before, 9,000 SD elements took it to
//   508 MB here (744 MB in the bench).
// - No uncounted loss: received + skipped + what the kernel dropped at the socket = what was sent,
//   and every `legit` message arrived, less at most what the kernel dropped.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { HOSTILE, type HostileKind } from "../bench/hostile_datagrams.ts";
import { encodeControl, MAX_MESSAGE } from "../lib.ts";
import {
  Child,
  cpuSeconds,
  freePort,
  protocolClient,
  rssAnon,
  sendUdp,
  sleep,
  snapshotOf,
  testBed,
  udpDrops,
  until,
} from "./kit.ts";

setDefaultTimeout(90_000);

/** Datagrams of each kind: enough CPU time to read in ticks of 10 ms. */
const COUNT = 1500;
/**
 * A hostile kind may cost slps this many times what a plain datagram of the largest size costs:
 * generous, for a shared machine; measured 1.8 to 2.6 times (bench/hostile_slps.ts).
 */
const CPU_FACTOR = 5;
/** slps's --buffer and --queue: the defaults, under which issue 17 measured 240 MB and more. */
const BUFFER = 16 * 2 ** 20;
/** Room for the runtime's garbage (a Buffer per datagram until the collector runs), whatever the content. */
const RUNTIME_SLACK = 96 * 2 ** 20;

const bed = testBed();
const { server, client, sink } = bed;

/** Whether this machine has the IPv6 loopback address ::1 (its line in /proc/net/if_inet6). */
const ipv6Loopback = /^0{31}1 /m.test(readFileSync("/proc/net/if_inet6", "utf8"));
if (!ipv6Loopback) console.warn("datagrams.test.ts: skipping the IPv6 datagram test: this machine has no ::1");

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

describe("datagrams no client could take", () => {
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

describe("hostile content while clients filter", () => {
  test(`each kind: CPU within ${CPU_FACTOR}x a plain maximal datagram, memory bounded, nothing uncounted`, async () => {
    const s = await bed.server();
    const out = await bed.sink();
    await bed.client(s, { forwardPort: out.port, args: ["--program", "legit"] });
    const creds = { ...bed.pki.cert("client"), ca: bed.pki.ca };
    const filter = { programs: ["cron"] };
    const slow = await protocolClient(s.tlsPort, creds, { resume: { type: "resume", version: 2, filter } });
    bed.defer(() => slow.close());
    const progress = setInterval(() => slow.send({ type: "progress", last: 0 }), 500);
    bed.defer(() => clearInterval(progress));
    await until("the slow client's start", () => slow.controls.some((m) => m.type === "start"));

    const sender = createSocket("udp4");
    bed.defer(() => sender.close());
    const send = (datagram: Uint8Array) =>
      new Promise<void>((resolve, reject) =>
        sender.send(datagram, s.udpPort, "127.0.0.1", (error) => (error ? reject(error) : resolve())),
      );
    const start = rssAnon(s.pid);
    const bound = start + 2 * (BUFFER + 2 * 65_513) + RUNTIME_SLACK;
    let [sent, legit, peak] = [0, 0, start];
    const perMessage = new Map<string, number>();

    /** Sends COUNT of `datagram`, a `legit` message in every 100, about 2,000 a second, and checks the bounds. */
    async function sequence(kind: string, datagram: Uint8Array): Promise<void> {
      const cpuBefore = cpuSeconds(s.pid);
      for (let i = 1; i <= COUNT; i++) {
        await send(i % 100 ? datagram : Buffer.from(`<13>Jan  5 10:11:12 web legit: ${++legit}`));
        sent++;
        if (i % 20 === 0) {
          peak = Math.max(peak, rssAnon(s.pid));
          await sleep(10);
        }
      }
      // Nothing uncounted: what arrived, what was skipped and what the kernel dropped is what was sent.
      let numbers: Record<string, any> = {};
      const accounted = () =>
        numbers.received + numbers.skipped.empty + numbers.skipped.oversize + numbers.kernelDropped;
      for (const deadline = Date.now() + 10_000; ; await sleep(100)) {
        numbers = await snapshotOf(s);
        if (accounted() === sent) break;
        if (Date.now() > deadline) throw new Error(`after ${kind}, ${accounted()} of ${sent} datagrams accounted for`);
      }
      await sleep(200); // the filters' work after the last datagram
      peak = Math.max(peak, rssAnon(s.pid));
      const cpu = ((cpuSeconds(s.pid) - cpuBefore) / COUNT) * 1e6;
      perMessage.set(kind, cpu);
      const delivered = () => out.messages.length;
      await until(
        () => `the legit messages after ${kind}: ${delivered()} of ${legit}, ${numbers.kernelDropped} dropped`,
        () => delivered() >= legit - numbers.kernelDropped,
      );
      expect(delivered()).toBeLessThanOrEqual(legit);
      const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
      console.log(
        `datagrams: ${kind}: ${cpu.toFixed(0)} µs CPU a message, RssAnon ${mb(peak)} MB at most ` +
          `(bound ${mb(bound)}), ${numbers.kernelDropped} dropped by the kernel`,
      );
      expect(peak, `RssAnon after ${kind}`).toBeLessThan(bound);
    }

    await sequence("plain", HOSTILE.plain);
    await sequence("maximal", HOSTILE.maximal);
    const baseline = Math.max(perMessage.get("plain")!, perMessage.get("maximal")!);
    const hostile: HostileKind[] = ["9,000 SD elements", "maximal SD element", "maximal fields", "invalid UTF-8"];
    for (const kind of hostile) {
      await sequence(kind, HOSTILE[kind]);
      expect(perMessage.get(kind)!, `CPU a message of ${kind}`).toBeLessThan(CPU_FACTOR * baseline);
    }
    // Empty datagrams, skipped and counted.
    await sequence("empty", new Uint8Array(0));
    expect(perMessage.get("empty")!).toBeLessThan(CPU_FACTOR * baseline);

    // A client's flood of control messages, while the most costly datagrams go on: hung up on, once.
    const flooder = await protocolClient(s.tlsPort, creds, { reads: true });
    bed.defer(() => flooder.close());
    await until("the flooder's start", () => flooder.controls.some((m) => m.type === "start"));
    const frames = Buffer.concat(Array.from({ length: 20_000 }, () => encodeControl({ type: "progress", last: 0 })));
    flooder.send(frames);
    await sequence("9,000 SD elements with a control flood", HOSTILE["9,000 SD elements"]);
    expect(flooder.closed).toBe(true);
    expect(s.stderr.match(/over 50 control messages in a second; closing/g)).toHaveLength(1);
    expect(perMessage.get("9,000 SD elements with a control flood")!).toBeLessThan(CPU_FACTOR * baseline);

    // The slow client was never stalled out, and only told of what it lost, in a gap.
    expect(slow.closed).toBe(false);
    expect(s.stderr).not.toMatch(/took no bytes/);
  });
});

describe("other processes' sockets", () => {
  test("19,600 UDP sockets elsewhere on the host cost slps nothing: it asks its socket what it dropped", async () => {
    // /proc/net/udp costs the kernel a row for every UDP socket on the host, and any local user may
    // open thousands: read once a second, 20,000 of them cost slps a third of a core (measured).
    const s = await bed.server();
    const opener = (k: number) =>
      bed.track(
        new Child([
          "python3",
          "-c",
          "import resource, socket, sys, time\n" +
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n" +
            "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n" +
            "kept = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4900)]\n" +
            `for each in kept: each.bind(("127.0.0.${80 + k}", 0))\n` +
            "print('ready', flush=True)\n" +
            "time.sleep(30)\n",
        ]),
      );
    const openers = [0, 1, 2, 3].map(opener);
    await until(
      () => `the sockets to open\n${openers.map((o) => o.stderr).join("")}`,
      () => openers.every((o) => o.stdout.toString().includes("ready")),
      20_000,
    );
    const before = cpuSeconds(s.pid);
    await sleep(3000);
    // Before, three reads of the table took about 0.7 s here; asking the socket takes microseconds.
    expect(cpuSeconds(s.pid) - before).toBeLessThan(0.3);
    const numbers = await snapshotOf(s);
    expect(numbers.kernelDropped).toBe(0);
  });
});
