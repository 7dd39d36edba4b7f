// Every value a flag accepts works, or is refused at start with one line and exit 2: values a
// parser accepts that the runtime cannot use (huge sizes, a heartbeat too short or too long, names
// that do not resolve), durations past the longest timer, and the edges of --queue and --udp-buffer.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { MAX_FRAME, MAX_MESSAGE } from "../lib.ts";
import { BUN, Child, freePort, sendUdp, sleep, snapshotOf, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const { server, client, sink, track, slpc } = bed;

/** slps on loopback with `args`, not waited for: it may refuse them. */
async function slpsWith(args: string[]): Promise<Child & { tlsPort: number }> {
  const { cert, key } = bed.pki.server;
  const [udpPort, tlsPort] = [await freePort("udp"), await freePort("tcp")];
  const child = track(
    new Child([
      BUN,
      "slps.ts",
      "--udp",
      `127.0.0.1:${udpPort}`,
      "--listen",
      `127.0.0.1:${tlsPort}`,
      "--cert",
      cert,
      "--key",
      key,
      "--ca",
      bed.pki.ca,
      ...args,
    ]),
  );
  return Object.assign(child, { tlsPort });
}

/** 400 nines: a number of seconds JavaScript reads as Infinity. */
const NINES = "9".repeat(400);

describe("values a parser accepts that the runtime cannot use", () => {
  for (const [flag, value] of [
    ["--buffer", "100GiB"],
    ["--queue", "20GiB"],
    ["--udp-buffer", "4GiB"],
  ]) {
    test(`slps ${flag} ${value} is refused at start with one line and exit 2, not a stack trace`, async () => {
      const s = await slpsWith([flag!, value!]);
      const code = await s.exit(10_000);
      expect(s.stderr).not.toMatch(/^\s+at /m);
      expect(s.stderr).not.toContain("RangeError");
      expect(s.stderr.trim().split("\n")).toHaveLength(1);
      expect(s.stderr).toContain(flag!);
      expect(code).toBe(2);
    });
  }

  for (const flag of ["--listen", "--udp", "--metrics"]) {
    test(`slps ${flag} with a host name that does not resolve is one line naming it and exit 2`, async () => {
      const s = await slpsWith([flag, "nosuch.invalid:9999"]);
      expect(await s.exit(10_000)).toBe(2);
      expect(s.stderr).toBe(
        `slps: ${flag} nosuch.invalid:9999: cannot resolve nosuch.invalid: getaddrinfo ENOTFOUND\n`,
      );
    });
  }

  // A heartbeat is sent each --heartbeat, and slpc hangs up on more than 50 in a second.
  test("slps --heartbeat 0.005: refused at start, or a client stays connected and gets messages", async () => {
    const s = await slpsWith(["--heartbeat", "0.005"]);
    await until(
      () => `slps to serve or exit:\n${s.stderr}`,
      () => /serving clients/.test(s.stderr) || s.proc.exitCode !== null,
    );
    if (s.proc.exitCode !== null) return expect(s.proc.exitCode).toBe(2);
    const c = slpc(s.tlsPort, ["--stdout"]);
    await c.waitFor(/following server/);
    await sleep(2000);
    expect(c.stderr).not.toContain("heartbeat flood");
    expect(c.stderr.match(/connected to/g)).toHaveLength(1);
  });

  // JSON has no Infinity: the hello says "heartbeat":null, which every slpc refuses.
  test("slps --heartbeat of 400 digits: refused at start, or a client gets its stream", async () => {
    const s = await slpsWith(["--heartbeat", NINES]);
    await until(
      () => `slps to serve or exit:\n${s.stderr}`,
      () => /serving clients/.test(s.stderr) || s.proc.exitCode !== null,
    );
    if (s.proc.exitCode !== null) return expect(s.proc.exitCode).toBe(2);
    const c = slpc(s.tlsPort, ["--stdout"]);
    await c.waitFor(/connected to/);
    await sleep(1500);
    expect(c.stderr).not.toContain("bad 'heartbeat'");
    expect(c.stderr).toContain("following server");
  });
});

describe("every value a flag accepts works", () => {
  test("--udp-buffer sizes the UDP receive buffer; one over net.core.rmem_max is capped with a warning", async () => {
    const rmemMax = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
    /** The receive buffer `ss` reports for slps's UDP socket: twice what the kernel granted. */
    const reported = (port: number) =>
      Number(/rb(\d+)/.exec(Bun.spawnSync(["ss", "-uanm", `sport = :${port}`]).stdout.toString())![1]);
    const within = Math.min(1024 * 1024, rmemMax);
    const fits = await server(["--udp-buffer", String(within)]);
    expect(reported(fits.udpPort)).toBe(2 * within);
    expect(fits.stderr).not.toContain("warning: the UDP receive buffer");
    const over = await server(["--udp-buffer", String(rmemMax + 4096)]);
    expect(reported(over.udpPort)).toBe(2 * rmemMax);
    await over.waitFor(
      new RegExp(`warning: the UDP receive buffer is ${rmemMax} bytes, not --udp-buffer ${rmemMax + 4096}`),
    );
  });

  test("--handshake-timeout and --stall past the longest timer (24.8 days) wait, not fire at once", async () => {
    const s = await server(["--handshake-timeout", "3000000", "--stall", "3000000"]);
    let closed = false;
    const idle = await Bun.connect({
      hostname: "127.0.0.1",
      port: s.tlsPort,
      socket: {
        data() {},
        close: () => {
          closed = true;
        },
      },
    });
    bed.defer(() => idle.terminate());
    const out = await sink();
    await client(s, { forwardPort: out.port });
    await sendUdp(s.udpPort, [Buffer.from("<13>in time")]);
    await until("delivery", () => out.messages.length === 1);
    await sleep(500);
    expect(closed).toBe(false);
    expect(s.stderr).not.toContain("no TLS handshake");
    expect(s.stderr).not.toContain("TimeoutOverflowWarning");
    expect((await snapshotOf(s)).phases).toEqual({ handshaking: 1, resuming: 0, streaming: 1, closing: 0 });
  });

  test("a --queue below one frame is refused at start; one frame exactly carries the largest message", async () => {
    const small = new Child([BUN, "slps.ts", "--queue", "64000"]);
    expect(await small.exit()).toBe(2);
    const why = `must be at least ${MAX_FRAME} bytes, the frame of a message of ${MAX_MESSAGE}`;
    expect(small.stderr).toBe(`slps: --queue "64000": ${why}\n`);
    const s = await server(["--queue", String(MAX_FRAME)]);
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const largest = Buffer.alloc(MAX_MESSAGE, 0x71);
    await sendUdp(s.udpPort, [largest]);
    await until("the largest message", () => out.messages.length === 1);
    expect(out.messages[0]!.equals(largest)).toBe(true);
  });
});

describe("slps --batch-window", () => {
  for (const value of ["-1", "abc", "100.5", "1e3", "0.5ms", NINES]) {
    test(`--batch-window ${value.slice(0, 10)} is refused at start with one line and exit 2`, async () => {
      const s = await slpsWith(["--batch-window", value]);
      expect(await s.exit(10_000)).toBe(2);
      expect(s.stderr).toBe(`slps: --batch-window "${value}": expected milliseconds from 0 to 100, like 0.5\n`);
    });
  }

  test("SLPS_BATCH_WINDOW over 100 is refused at start with one line and exit 2", async () => {
    const s = track(new Child([BUN, "slps.ts"], { SLPS_BATCH_WINDOW: "200" }));
    expect(await s.exit(10_000)).toBe(2);
    expect(s.stderr).toBe('slps: SLPS_BATCH_WINDOW "200": expected milliseconds from 0 to 100, like 0.5\n');
  });

  for (const value of ["0", "0.25", "100"]) {
    test(`--batch-window ${value}: a burst and a message after it reach a client whole and in order`, async () => {
      const s = await server(["--batch-window", value]);
      const out = await sink();
      await client(s, { forwardPort: out.port });
      const burst = Array.from({ length: 50 }, (_, i) => Buffer.from(`<13>burst ${i}`));
      await sendUdp(s.udpPort, burst);
      await sleep(30);
      await sendUdp(s.udpPort, [Buffer.from("<13>after")]);
      await until("every message", () => out.messages.length === 51);
      expect(out.messages.map(String)).toEqual([...burst.map(String), "<13>after"]);
    });
  }
});
