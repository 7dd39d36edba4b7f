// A fresh review of one slpc following several servers (issue 11), against the running
// programs: what one server's trouble does to the others. Each test is one finding; it fails on
// the code it was written against.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { encodeControl, encodeFrame, TLS13_ONLY } from "../lib.ts";
import { rss, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();

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
