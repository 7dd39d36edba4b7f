// Losing nothing when the path drops: real slps and slpc with a TCP proxy of the test's own
// between them, so the path can be cut or blackholed. Short heartbeats keep each test quick.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { BASE_VERSION, Deframer, encodeControl } from "../lib.ts";
import {
  type ClientOptions,
  type ServerHandle,
  sendUdp,
  sleep,
  stalledClient,
  steadySender,
  testBed,
  until,
} from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const { sink, proxy } = bed;
const server = (args: string[] = [], opts = {}) => bed.server(["--heartbeat", "0.3", ...args], opts);

// The UDP sinks live in this test process, beside the proxy: a slow receiver whose kernel buffer
// a replay burst at full speed can overflow (the kernel's RcvbufErrors count rises when it
// does). --forward-rate paces slpc to what such a receiver takes.
const client = (s: ServerHandle, opts: ClientOptions = {}) =>
  bed.client(s, { ...opts, args: ["--dead-after", "1.5", "--forward-rate", "5000", ...(opts.args ?? [])] });

const texts = (messages: Buffer[]) => messages.map(String);

describe("resume", () => {
  test("the path is cut for 2 s: every message arrives exactly once, in order", async () => {
    const s = await server();
    const path = proxy(s.tlsPort);
    const out = await sink();
    const c = await client(s, { port: path.port, forwardPort: out.port });
    const sender = steadySender(s.udpPort, 200);
    await sleep(700);
    path.cut();
    await sleep(2000);
    path.restore();
    await sleep(1500);
    sender.stop();
    await until(
      () => `everything (${out.messages.length} of ${sender.sent.length})\n${c.stderr}${s.stderr}`,
      () => out.messages.length >= sender.sent.length,
    );
    await sleep(200);
    expect(texts(out.messages)).toEqual(sender.sent);
    expect(c.stderr).toMatch(/disconnected from[\s\S]*following server/);
  });

  test("a blackholed path is noticed within --dead-after plus a backoff step, and nothing held is lost", async () => {
    const s = await server();
    const path = proxy(s.tlsPort);
    const out = await sink();
    const c = await client(s, { port: path.port, forwardPort: out.port });
    const sender = steadySender(s.udpPort, 100);
    await sleep(500);
    const blackholedAt = performance.now();
    path.blackhole();
    await c.waitFor(/presumed dead/, 5000);
    const noticed = performance.now() - blackholedAt;
    await until("a new stream", () => (s.stderr.match(/ starts at #/g) ?? []).length === 2, 5000);
    const back = performance.now() - blackholedAt;
    await sleep(500);
    sender.stop();
    await until("everything", () => out.messages.length >= sender.sent.length);
    await sleep(200);
    expect(texts(out.messages)).toEqual(sender.sent);
    expect(noticed).toBeGreaterThanOrEqual(1400); // not before --dead-after 1.5 s...
    // ...and back within it plus one backoff step (--retry-max 1), with slack.
    expect(back).toBeLessThan(1500 + 1000 + 1500);
  });

  test("after a server restart the client notices the new id, says so, and continues", async () => {
    const first = await server();
    const out = await sink();
    const c = await client(first, { forwardPort: out.port });
    await sendUdp(first.udpPort, [Buffer.from("<13>to the first run")]);
    await until("first", () => out.messages.length === 1);
    first.kill("SIGTERM");
    await first.exit();
    const second = await server([], { udpPort: first.udpPort, tlsPort: first.tlsPort });
    // Sent before the client is back: the new server's buffer keeps them for it.
    await sendUdp(second.udpPort, [Buffer.from("<13>early in the second run")]);
    await c.waitFor(/gap: an unknown number of messages lost, server restarted \(was [0-9a-f]+, now [0-9a-f]+\)/);
    await sendUdp(second.udpPort, [Buffer.from("<13>later in the second run")]);
    await until("all three", () => out.messages.length === 3);
    expect(texts(out.messages)).toEqual([
      "<13>to the first run",
      "<13>early in the second run",
      "<13>later in the second run",
    ]);
  });

  test("an outage longer than the buffer holds: a gap of the right size, then everything after it", async () => {
    const s = await server(["--buffer", "2000"]);
    const path = proxy(s.tlsPort);
    const out = await sink();
    const c = await client(s, { port: path.port, forwardPort: out.port });
    await sendUdp(s.udpPort, [Buffer.from("<13>before 1"), Buffer.from("<13>before 2")]);
    await until("before", () => out.messages.length === 2);
    path.cut();
    await sleep(100);
    const during = Array.from({ length: 100 }, (_, i) =>
      Buffer.from(`<13>during ${String(i + 1).padStart(3, "0")} ${"x".repeat(80)}`),
    );
    for (let i = 0; i < during.length; i += 10) {
      await sendUdp(s.udpPort, during.slice(i, i + 10));
      await sleep(5);
    }
    await sleep(200);
    path.restore();
    await c.waitFor(/gap: \d+ messages lost, server buffer overflowed/, 5000);
    const lost = Number(/gap: (\d+) messages lost/.exec(c.stderr)![1]);
    await until("the rest", () => out.messages.length === 2 + during.length - lost, 5000);
    await sleep(200);
    expect(lost).toBeGreaterThan(50);
    expect(texts(out.messages)).toEqual(["<13>before 1", "<13>before 2", ...texts(during.slice(lost))]);
  });

  test("a new client starts live; with --replay it first gets everything held", async () => {
    const s = await server();
    await sendUdp(s.udpPort, [Buffer.from("<13>old 1"), Buffer.from("<13>old 2")]);
    await sleep(100);
    const liveOut = await sink();
    const replayOut = await sink();
    await client(s, { forwardPort: liveOut.port });
    await client(s, { forwardPort: replayOut.port, args: ["--replay"] });
    await sendUdp(s.udpPort, [Buffer.from("<13>new")]);
    await until("both", () => liveOut.messages.length === 1 && replayOut.messages.length === 3);
    expect(texts(liveOut.messages)).toEqual(["<13>new"]);
    expect(texts(replayOut.messages)).toEqual(["<13>old 1", "<13>old 2", "<13>new"]);
  });

  test("--forward-rate paces a replay burst, and everything still arrives", async () => {
    const s = await server();
    const held = Array.from({ length: 300 }, (_, i) => Buffer.from(`<13>held ${i}`));
    await sendUdp(s.udpPort, held.slice(0, 150));
    await sleep(50);
    await sendUdp(s.udpPort, held.slice(150));
    await sleep(100);
    const out = await sink();
    const started = performance.now();
    await client(s, { forwardPort: out.port, args: ["--replay", "--forward-rate", "1000"] });
    await until("all held messages", () => out.messages.length === held.length);
    expect(performance.now() - started).toBeGreaterThan(250); // 300 messages at 1,000 a second, 10 at once
    expect(texts(out.messages)).toEqual(texts(held));
  });

  test("a client that takes no bytes for --stall seconds is disconnected, and the others go on", async () => {
    const s = await server(["--stall", "1", "--queue", "64MiB"]);
    const out = await sink();
    await client(s, { forwardPort: out.port });
    bed.track(await stalledClient(s.tlsPort, bed.pki.ca, bed.pki.cert("client")));
    await s.waitFor(/2 in all/);
    const message = Buffer.alloc(8_000, 0x7a);
    for (let sent = 0; sent < 1_000; sent += 10) {
      await sendUdp(s.udpPort, Array(10).fill(message));
      await until("the reading client", () => out.messages.length >= sent + 10);
    }
    await s.waitFor(/took no bytes for 1 s \(--stall\); closing/, 5_000);
    await s.waitFor(/\(home\) disconnected/);
    await sendUdp(s.udpPort, [Buffer.from("<13>after")]);
    await until("the reading client still served", () => out.messages.at(-1)?.toString() === "<13>after");
    expect(s.stderr.match(/ connected \(/g)).toHaveLength(2);
  });

  test("an idle connection stays up on heartbeats alone", async () => {
    const s = await server();
    const out = await sink();
    const c = await client(s, { forwardPort: out.port });
    await sleep(3500); // more than twice --dead-after, with no messages at all
    expect(c.stderr).not.toContain("presumed dead");
    await sendUdp(s.udpPort, [Buffer.from("<13>still here")]);
    await until("message", () => out.messages.length === 1);
  });
});

describe("protocol versions", () => {
  test("slpc names a server that speaks another protocol version", async () => {
    const port = bed.fakeServer(encodeControl({ type: "hello", version: 99 } as never));
    // Slow to retry: the one attempt is what the test reads.
    const c = bed.slpc(port, ["--stdout", "--retry-min", "5", "--retry-max", "60"]);
    await c.waitFor(
      /server speaks protocol version 99, this slpc speaks 1 to 2; upgrade the older one; closing the connection/,
    );
    expect(c.stdout.length).toBe(0);
  });

  test("slps answers a client that speaks another protocol version with an error frame", async () => {
    const s = await server();
    const frames: { control: boolean; body: string }[] = [];
    const deframer = new Deframer(65507);
    let closed = false;
    const { cert, key } = bed.pki.cert("client");
    await Bun.connect({
      hostname: "127.0.0.1",
      port: s.tlsPort,
      tls: { cert: Bun.file(cert), key: Bun.file(key), ca: Bun.file(bed.pki.ca), serverName: "localhost" },
      socket: {
        data(socket, chunk) {
          for (const frame of deframer.push(chunk)) {
            frames.push({ control: frame.control, body: Buffer.from(frame.body).toString() });
            if (frames.length === 1) socket.write(encodeControl({ type: "resume", version: 7 } as never));
          }
        },
        close: () => {
          closed = true;
        },
      },
    });
    await until("the connection to close", () => closed);
    expect(frames.map((f) => JSON.parse(f.body).type)).toEqual(["hello", "error"]);
    expect(JSON.parse(frames[0]!.body).version).toBe(BASE_VERSION);
    expect(JSON.parse(frames[1]!.body).message).toBe("client speaks protocol version 7, this server speaks 1 to 2");
    expect(s.stderr).toMatch(/client speaks protocol version 7, this server speaks 1 to 2; closing/);
  });
});
