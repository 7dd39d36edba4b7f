// A fresh review of one slpc following several servers (issue 11), against the running
// programs: what one server's trouble does to the others. Each test is one finding; it fails on
// the code it was written against.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import { encodeControl, encodeFrame, TLS13_ONLY } from "../lib.ts";
import { rss, savedPoint, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
const server = () => bed.server(["--heartbeat", "0.3"]);
const numbered = (name: string, count: number) =>
  Array.from({ length: count }, (_, i) => Buffer.from(`<13>${name} ${i + 1}`));
/** The numbers of `name`'s messages that arrived, in order of arrival. */
const numbersOf = (messages: Buffer[], name: string) =>
  messages.map(String).flatMap((text) => (text.startsWith(`<13>${name} `) ? [Number(text.split(" ")[1])] : []));

describe("--state with several servers", () => {
  test("one unreadable entry costs that server its point alone; the others resume where they were", async () => {
    const [kept, broken] = [await server(), await server()];
    await sendUdp(kept.udpPort, numbered("kept", 3));
    await sendUdp(broken.udpPort, numbered("broken", 3));
    await sleep(300);
    const id = /server id ([0-9a-f]+)/.exec(kept.stderr)![1]!;
    const state = join(bed.dir, "one-bad-entry.json");
    const servers = {
      [`localhost:${kept.tlsPort}`]: { server: id, last: 1 },
      [`localhost:${broken.tlsPort}`]: { server: "x", last: -5 },
    };
    writeFileSync(state, `${JSON.stringify({ servers })}\n`);
    const out = await bed.sink();
    const c = bed.slpc(kept.tlsPort, [
      "--server",
      `localhost:${broken.tlsPort}`,
      "--forward",
      `127.0.0.1:${out.port}`,
      "--state",
      state,
      "--replay",
    ]);
    await until(`5 messages, ${out.messages.length} so far\n${c.stderr}`, () => out.messages.length >= 5);
    await sleep(500); // anything more would be a duplicate
    expect(numbersOf(out.messages, "kept")).toEqual([2, 3]);
    expect(numbersOf(out.messages, "broken")).toEqual([1, 2, 3]);
    expect(c.stderr).toMatch(
      new RegExp(
        `--state ${state}: server localhost:${broken.tlsPort}: [^\\n]*; copied the file to ${state}\\.bad-\\d+`,
      ),
    );
    expect(c.stderr).toMatch(new RegExp(`localhost:${broken.tlsPort}: gap: an unknown number of messages lost`));
    expect(c.stderr).not.toMatch(new RegExp(`localhost:${kept.tlsPort}: gap`));
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(savedPoint(state, `localhost:${kept.tlsPort}`)).toEqual({ server: id, last: 3 });
    expect(savedPoint(state, `localhost:${broken.tlsPort}`)).toMatchObject({ last: 3 });
  });
});

/**
 * A server of the test's own that greets like slps and, once slpc has said where to resume,
 * sends messages of 60,000 bytes as fast as slpc reads them, for as long as the test runs. Each is
 * a server run of its own (`flood0`, `flood1`...): slpc follows one run once.
 */
function floodingServer(_: unknown, index: number): number {
  type Pump = { rest?: Buffer; timer?: Timer };
  const frames = Buffer.concat(Array.from({ length: 16 }, () => encodeFrame(Buffer.alloc(60_000, 0x78))));
  const pump = (socket: Socket<Pump>) => {
    for (;;) {
      const chunk = socket.data.rest ?? frames;
      const taken = socket.write(chunk);
      socket.data.rest = taken < chunk.length ? chunk.subarray(Math.max(taken, 0)) : undefined;
      if (socket.data.rest) return;
    }
  };
  const listener = Bun.listen<Pump>({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: Bun.file(bed.pki.server.cert), key: Bun.file(bed.pki.server.key), secureOptions: TLS13_ONLY },
    socket: {
      open(socket) {
        socket.data = {};
        socket.write(
          encodeControl({ type: "hello", version: 1, server: `flood${index}`, heartbeat: 15, first: 1, next: 1 }),
        );
      },
      data(socket) {
        if (socket.data.timer) return;
        socket.write(encodeControl({ type: "start", seq: 1 }));
        socket.data.timer = setInterval(() => pump(socket), 5);
      },
      close: (socket) => clearInterval(socket.data.timer),
    },
  });
  bed.defer(() => listener.stop(true));
  return listener.port;
}

describe("many servers", () => {
  test("forty servers flooding a slow output leave slpc's memory bounded by the total, not by the number", async () => {
    const out = await bed.sink();
    const ports = Array.from({ length: 40 }, floodingServer);
    const servers = ports.slice(1).flatMap((port) => ["--server", `localhost:${port}`]);
    const c = bed.slpc(ports[0]!, [...servers, "--forward", `127.0.0.1:${out.port}`, "--forward-rate", "100"]);
    await until(
      () => `slpc to follow all 40\n${c.stderr}`,
      () => (c.stderr.match(/following server flood/g)?.length ?? 0) >= 40,
    );
    let peak = 0;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      peak = Math.max(peak, rss(c.pid));
      await sleep(20);
    }
    // 4 MiB waiting for each of forty would be 160 MiB on top of what slpc needs anyway.
    expect(peak).toBeLessThan(200 * 1024 * 1024);
  });
});
