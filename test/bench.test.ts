// The benchmark's own parts: its clock is one clock across processes, its tally counts what it
// should, the fan-out client checks every sequence number on every connection, and a smoke run
// (npm run bench -- --smoke) prints every section and writes whole results. Speed is not judged
// here; the full `npm run bench` measures it.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { nowNs } from "../bench/clock.ts";
import { Tally } from "../bench/tally.ts";
import {
  BUN,
  Child,
  freePort,
  ROOT,
  removeDir,
  sendUdp,
  sleep,
  tcpListening,
  tempDir,
  udpListening,
  until,
} from "./kit.ts";

const message = (seq: number, sentNs: number, header = "") => Buffer.from(`${header}<13>bench ${seq} ${sentNs} xxxx`);

describe("the bench's clock", () => {
  test("reads the same clock in another process", () => {
    const before = nowNs();
    const child = Bun.spawnSync([BUN, "-e", 'import { nowNs } from "./bench/clock.ts"; console.log(nowNs())'], {
      cwd: ROOT,
    });
    const after = nowNs();
    const inChild = Number(child.stdout.toString());
    expect(inChild).toBeGreaterThan(before);
    expect(inChild).toBeLessThan(after);
  });
});

describe("Tally", () => {
  test("counts missing, duplicate, out-of-order and foreign messages, and the latency of each", () => {
    const tally = new Tally();
    for (const seq of [1, 2, 2, 4, 3, 6]) tally.record(message(seq, 1_000_000), 3_000_000);
    tally.record(Buffer.from("<13>not the bench's"), 3_000_000);
    tally.record(message(7, 1_000_000, "<13>Nov 27 06:00:00 host "), 2_000_000);
    const report = tally.report(7);
    expect(report).toMatchObject({ received: 8, distinct: 6, missing: 1, duplicates: 1, outOfOrder: 1, foreign: 1 });
    expect(report.p50).toBe(2);
    expect(report.max).toBe(2);
    expect(tally.report(0)).toMatchObject({ received: 0, distinct: 0, p99: 0 });
  });

  test("reads a message inside a larger buffer and never past its end", () => {
    const tally = new Tally();
    const whole = message(5, 1_000);
    const bytes = Buffer.concat([Buffer.from("21 "), whole, Buffer.from("<13>bench 9 1 ")]);
    tally.record(bytes, 2_000, 3, 3 + whole.length);
    // Cut right after its sequence number, a message has no stamp, whatever follows in the buffer.
    tally.record(bytes, 2_000, 3, 3 + "<13>bench 5".length);
    expect(tally.report(0)).toMatchObject({ received: 2, distinct: 1, foreign: 1, max: 0.001 });
  });
});

describe("the fan-out client against the floor server", () => {
  test("checks every sequence number on every connection, over mutual TLS", async () => {
    const dir = tempDir("slp-bench-fanout-");
    const children: Child[] = [];
    try {
      const made = Bun.spawnSync(["bash", join(ROOT, "certs/make-certs.sh"), "-d", dir, "localhost", "client"]);
      expect(made.exitCode).toBe(0);
      const udpPort = await freePort("udp");
      const tlsPort = await freePort();
      const floor = new Child([BUN, join(ROOT, "bench/fanout_floor.ts"), String(udpPort), String(tlsPort), dir]);
      children.push(floor);
      await until("the floor server", () => udpListening(udpPort) && tcpListening(tlsPort));
      const client = new Child([BUN, join(ROOT, "bench/fanout_client.ts"), String(tlsPort), "3", dir], {}, "pipe");
      children.push(client);
      await until(
        () => `the client to be ready: ${client.stderr}`,
        () => client.stdout.toString() === "ready 3\n",
      );
      // 1, 2, 2 again, 4, 3 late, 6: 5 never comes.
      await sendUdp(
        udpPort,
        [1, 2, 2, 4, 3, 6].map((seq) => message(seq, nowNs())),
      );
      for (let asked = 0; !client.stdout.toString().split("\n").includes("18"); asked++) {
        if (asked > 200) throw new Error(`not all 18 arrived: ${client.stdout.toString()}`);
        client.proc.stdin!.write("count\n");
        await sleep(50);
      }
      client.proc.stdin!.write("report 6\n");
      await until("the report", () => client.stdout.toString().includes("{"));
      const report = JSON.parse(
        client.stdout
          .toString()
          .split("\n")
          .find((line) => line.startsWith("{"))!,
      );
      expect(report.streams).toHaveLength(3);
      for (const stream of report.streams) {
        expect(stream).toMatchObject({
          received: 6,
          distinct: 5,
          missing: 1,
          duplicates: 1,
          outOfOrder: 1,
          foreign: 0,
          skipped: 0,
        });
        expect(stream.p99).toBeGreaterThan(0);
      }
      expect(report.pooled.p99).toBeGreaterThan(0);
    } finally {
      for (const child of children) child.kill("SIGKILL");
      removeDir(dir);
    }
  }, 30_000);
});

test("npm run bench -- --smoke prints the floor first, then every section, and writes whole results", () => {
  const out = tempDir("slp-bench-smoke-");
  try {
    const run = Bun.spawnSync([BUN, join(ROOT, "bench/run.ts"), "--smoke", "--out", out], {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
      timeout: 120_000,
    });
    if (run.exitCode !== 0) throw new Error(`exit ${run.exitCode}: ${run.stderr.toString()}`);
    const table = run.stdout.toString();
    const sections = [
      "### Harness floor",
      "### Sweep",
      "### Fan-out at",
      "### slps / floor server",
      "### Idle clients",
      "### One slpc following 3 servers",
    ];
    const at = sections.map((heading) => table.indexOf(heading));
    expect(at.every((index) => index >= 0)).toBe(true);
    expect(at).toEqual([...at].sort((a, b) => a - b));
    expect(table).toContain("CLOCK_MONOTONIC");

    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(results.floor.map((row: { offered: number }) => row.offered)).toEqual([10_000, 0]);
    expect(results.sweep.map((row: { relay: string; offered: number }) => [row.relay, row.offered])).toEqual([
      ["slp", 1_000],
      ["slp", 10_000],
    ]);
    expect(results.fanOut.map((row: { relay: string; clients: number }) => [row.relay, row.clients])).toEqual([
      ["slps", 1],
      ["floor", 1],
      ["slps", 2],
      ["floor", 2],
    ]);
    for (const row of [...results.floor, ...results.sweep, ...results.fanOut]) {
      expect(row.sent).toBeGreaterThan(0);
      expect(row.delivered).toBeGreaterThan(0);
      expect(row.p99).toBeGreaterThan(0);
      expect({ relay: row.relay, lostInside: row.lostInside, duplicates: row.duplicates }).toEqual({
        relay: row.relay,
        lostInside: 0,
        duplicates: 0,
      });
    }
    for (const row of [...results.sweep, ...results.fanOut]) {
      for (const process of Object.values(row.processes) as { rssMB: number }[])
        expect(process.rssMB).toBeGreaterThan(0);
    }
    expect(results.idle.map((row: { server: string; clients: number }) => [row.server, row.clients])).toEqual([
      ["slps", 20],
      ["floor", 20],
    ]);
    for (const row of results.idle) expect(row.withClientsMB).toBeGreaterThan(0);
    // One slpc, three servers, a load generator each: each stream by its own tag and count.
    const many = results.manyServers;
    expect(many.streams.map((stream: { tag: string }) => stream.tag)).toEqual(["s1", "s2", "s3"]);
    for (const stream of many.streams) {
      expect(stream.sent).toBeGreaterThan(0);
      expect(stream.distinct).toBeGreaterThan(0);
      expect([stream.duplicates, stream.foreign]).toEqual([0, 0]);
    }
    expect(many.lostInside).toBe(0);
    expect(readFileSync(join(out, "results.svg"), "utf8")).toStartWith("<svg");
    expect(`${readFileSync(join(out, "results.md"), "utf8")}\n`).toBe(table);
  } finally {
    removeDir(out);
  }
}, 150_000);
