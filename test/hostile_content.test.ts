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
import { HOSTILE, type HostileKind } from "../bench/hostile_datagrams.ts";
import { encodeControl } from "../lib.ts";
import { cpuSeconds, protocolClient, rssAnon, sleep, snapshotOf, testBed, until } from "./kit.ts";

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
        `hostile_content: ${kind}: ${cpu.toFixed(0)} µs CPU a message, RssAnon ${mb(peak)} MB at most ` +
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
