// What a server slpc follows can do to it, when that server is hostile: the text it chooses reaches
// no log line raw, a flood of control frames is cut at once, delaying no other server, and many
// servers flooding messages at once hold slpc's memory to its total bound, not one per server.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { encodeControl, encodeFrame, TLS13_ONLY } from "../lib.ts";
import { cpuSeconds, rss, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();

/** A line a hostile server hopes to see in slpc's log as slpc's own, with a terminal title change after it. */
const FORGED = "\nslpc: SIGTERM: exiting\x1b]0;owned\x07\u009b2J\u202e";
/** FORGED as slpc must show it: one line, every control visible. */
const SHOWN = "\\nslpc: SIGTERM: exiting\\x1b]0;owned\\x07\\u009b2J\\u202e";

/** ESC, BEL, C1 controls and bidi overrides: what a terminal obeys or reorders by. */
const actsOnTerminal = (char: string) => {
  const code = char.codePointAt(0)!;
  return code === 0x1b || code === 0x07 || (code >= 0x80 && code <= 0x9f) || (code >= 0x202a && code <= 0x202e);
};

const hello = (server: string) =>
  encodeControl({ type: "hello", version: 1, server, heartbeat: 15, first: 1, next: 1 });

describe("a hostile server's text in slpc's log", () => {
  test.each([
    [
      "its server id",
      [hello(`run${FORGED}`), encodeControl({ type: "start", seq: 1 })],
      `following server run${SHOWN}`,
    ],
    [
      "a gap's reason",
      [hello("run"), encodeControl({ type: "start", seq: 5, lost: 999, reason: FORGED })],
      `gap: 999 messages lost, ${SHOWN}; continuing from #5`,
    ],
    ["an error message", [hello("run"), encodeControl({ type: "error", message: FORGED })], `server says: ${SHOWN}`],
    [
      "an unknown message type",
      [hello("run"), encodeControl({ type: FORGED } as never)],
      `unknown control message type "\\nslpc: SIGTERM`,
    ],
  ])("%s is escaped and stays on its line", async (_what, frames, shown) => {
    const [greeting, ...rest] = frames;
    const port = bed.fakeServer(greeting!, (socket) => void socket.write(Buffer.concat(rest)));
    const c = bed.slpc(port, ["--stdout"]);
    await until(`the line ${shown}\n${c.stderr}`, () => c.stderr.includes(shown));
    for (const line of c.stderr.split("\n").filter(Boolean)) expect(line).toMatch(/^slpc: localhost:\d+: |^slpc: \w/);
    expect([...c.stderr].filter(actsOnTerminal)).toEqual([]);
    expect(c.stderr.split("\n").filter((line) => line.startsWith("slpc: SIGTERM"))).toEqual([]);
  });

  test("a megabyte-long reason is cut to a line a person can read", async () => {
    const reason = "x".repeat(3000);
    const port = bed.fakeServer(
      hello("run"),
      (socket) => void socket.write(encodeControl({ type: "start", seq: 5, lost: 1, reason })),
    );
    const c = bed.slpc(port, ["--stdout"]);
    await c.waitFor(/gap: 1 messages lost/);
    const line = c.stderr.split("\n").find((each) => each.includes("gap:"))!;
    expect(line.length).toBeLessThan(400);
    expect(line).toContain("x…; continuing from #5");
  });
});

describe("a hostile server's control frames", () => {
  test("a flood of start frames is cut at once with one line; the other server's messages keep flowing", async () => {
    // 100,000 starts a write, as fast as slpc reads: what cost 7 CPU seconds in 7 s before it was bounded.
    const starts = Buffer.concat(
      Array.from({ length: 100_000 }, (_, i) => encodeControl({ type: "start", seq: i + 1 })),
    );
    const flooding = bed.fakeServer(hello("flood"), (socket) => void socket.write(starts));
    const good = await bed.server(["--heartbeat", "0.3"]);
    const out = await bed.sink();
    const c = bed.slpc(good.tlsPort, ["--server", `localhost:${flooding}`, "--forward", `127.0.0.1:${out.port}`]);
    await c.waitFor(new RegExp(`localhost:${flooding}: protocol error: a flood of control messages, over 50 in a sec`));
    await c.waitFor(new RegExp(`localhost:${good.tlsPort}: following server`));
    const cpuBefore = cpuSeconds(c.pid);
    const sent = Array.from({ length: 200 }, (_, i) => Buffer.from(`<13>good ${i}`));
    for (let i = 0; i < sent.length; i += 20) {
      await sendUdp(good.udpPort, sent.slice(i, i + 20));
      await sleep(20);
    }
    await until(`200 messages, ${out.messages.length} so far`, () => out.messages.length >= 200);
    await sleep(1500); // the flooding server is dialled again meanwhile, and cut again
    expect(out.messages.map(String)).toEqual(sent.map(String));
    // Each cut costs a handshake and 51 frames: far below a second of CPU a second.
    expect(cpuSeconds(c.pid) - cpuBefore).toBeLessThan(1);
    const floods = c.stderr.match(/a flood of control messages/g)?.length ?? 0;
    const dials = c.stderr.match(new RegExp(`connecting to localhost:${flooding}`, "g"))?.length ?? 0;
    expect(floods).toBeGreaterThanOrEqual(1);
    expect(floods).toBeLessThanOrEqual(dials); // one line a connection, not one a frame
  });

  test("a filtered stream's start before each message is no flood", async () => {
    // 500 messages, each after a start that skips one: 1,000 control frames and messages in well under a second.
    const frames = [encodeControl({ type: "start", seq: 1 })];
    for (let seq = 1; seq <= 1000; seq += 2) {
      frames.push(encodeControl({ type: "start", seq }), encodeFrame(Buffer.from(`<13>kept ${seq}`)));
    }
    // In writes of 50 pairs, well within what a TLS socket takes at once: Bun's write keeps no rest.
    const port = bed.fakeServer(hello("filtered"), (socket) => {
      frames.forEach((frame, i) => void setTimeout(() => socket.write(frame), Math.floor(i / 100) * 10));
    });
    const out = await bed.sink();
    const c = bed.slpc(port, ["--forward", `127.0.0.1:${out.port}`, "--forward-rate", "0"]);
    await until(
      () => `500 messages, ${out.messages.length} so far\n${c.stderr}`,
      () => out.messages.length >= 500,
    );
    expect(c.stderr).not.toContain("flood");
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
        socket.write(hello(`flood${index}`));
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

describe("a flood of messages from many servers", () => {
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

describe("a server whose hello slpc refuses", () => {
  test.each([
    ["a protocol version slpc does not speak", 3, [], "server speaks protocol version 3"],
    ["a hello without filters, to a filtering slpc", 1, ["--program", "sshd"], "the server does not offer filters"],
  ])(
    "%s: slpc says why it hung up, and the disconnect line blames no certificate",
    async (_what, version, args, why) => {
      const port = bed.fakeServer(
        encodeControl({ type: "hello", version, server: "run", heartbeat: 15, first: 1, next: 1 }),
      );
      const c = bed.slpc(port, ["--stdout", ...args]);
      await c.waitFor(new RegExp(`${why}.*; closing the connection\\n[^]*retrying in`));
      expect(c.stderr).toMatch(new RegExp(`disconnected from localhost:${port} after \\d+\\.\\d s\\n`));
      expect(c.stderr).not.toContain("does the server refuse this certificate");
    },
  );
});
