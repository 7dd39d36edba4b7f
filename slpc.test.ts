// slpc end to end: real slps and slpc processes, or a TLS server of the test's own playing slps
// badly; real TLS and UDP on loopback, certificates made by this run. What slpc delivers and
// where (--forward in every form it accepts, --stdout), which servers it refuses, how it comes
// back, its command line, and the odd moments: a daemon that is down, peers that never answer,
// slow outputs and signals. Each test asserts on the bytes that arrived. (--state has a file of
// its own, test/state.test.ts.)

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import { createServer, type Socket as NetSocket } from "node:net";
import type { Socket } from "bun";
import { Deframer, encodeControl, encodeFrame, TLS13_ONLY } from "./lib.ts";
import packageJson from "./package.json" with { type: "json" };
import {
  BUN,
  Child,
  feed,
  ROOT,
  type ServerHandle,
  sendUdp,
  sleep,
  steadySender,
  streamStarted,
  testBed,
  udpDrops,
  until,
} from "./test/kit.ts";

// These start real processes and wait on real sockets: more than bun's default 5 s on a busy machine.
setDefaultTimeout(30_000);

const bed = testBed();
const { server, sink, track, slpc, slpcCommand, fifo, slpcInto } = bed;
const client = (s: ServerHandle, forwardPort?: number, args: string[] = []) => bed.client(s, { forwardPort, args });

const numbered = (n: number, prefix = "msg") => Array.from({ length: n }, (_, i) => Buffer.from(`<13>${prefix} ${i}`));
const texts = (messages: Buffer[]) => messages.map(String);

describe("delivery", () => {
  test("--stdout prints one line per message with its own LF escaped", async () => {
    const s = await server();
    const c = await client(s);
    await sendUdp(s.udpPort, [Buffer.from("<13>one\ntwo"), Buffer.from("<13>three")]);
    await until("two lines", () => c.stdout.toString().split("\n").length >= 3);
    expect(c.stdout.toString()).toBe("<13>one\\ntwo\n<13>three\n");
  });
});

describe("refusal", () => {
  test("slpc refuses a server whose certificate does not carry the expected name", async () => {
    const s = await server();
    const c = track(
      new Child([
        BUN,
        "slpc.ts",
        "--server",
        `127.0.0.1:${s.tlsPort}`,
        "--servername",
        "elsewhere.example",
        "--ca",
        bed.pki.ca,
        ...Object.values(bed.pki.cert("client")).flatMap((f, i) => [i ? "--key" : "--cert", f]),
        "--stdout",
        "--retry-min",
        "0.2",
      ]),
    );
    await c.waitFor(/server certificate refused: .*elsewhere\.example/);
    await sendUdp(s.udpPort, [Buffer.from("<13>not for you")]);
    await sleep(300);
    expect(c.stdout.length).toBe(0);
    expect(s.stderr).not.toMatch(/client .* connected/);
  });
});

describe("resilience", () => {
  test("a client reconnects after the server restarts", async () => {
    const first = await server();
    const out = await sink();
    const c = await client(first, out.port);
    await sendUdp(first.udpPort, [Buffer.from("<13>before")]);
    await until("first", () => out.messages.length === 1);
    first.kill("SIGTERM");
    expect(await first.exit()).toBe(0);
    const second = await server([], { udpPort: first.udpPort, tlsPort: first.tlsPort });
    await second.waitFor(/client .* starts at #1/);
    await sendUdp(second.udpPort, [Buffer.from("<13>after")]);
    await until("second", () => out.messages.length === 2);
    expect(out.messages.map(String)).toEqual(["<13>before", "<13>after"]);
    expect(c.stderr).toMatch(/disconnected from[\s\S]*retrying[\s\S]*connected to/);
  });
});

describe("command line", () => {
  async function run(cmd: string[]) {
    const child = new Child(cmd);
    const code = await child.exit();
    await sleep(20);
    return { code, stderr: child.stderr, stdout: child.stdout.toString() };
  }

  test.each([
    [["slpc.ts"], /^slpc: --server: required: the slps server to follow \(see --help\)\n$/],
    [["slpc.ts", "--server", "example.com:99999"], /^slpc: --server "example.com:99999": port must be 1 to 65535\n$/],
    [["slpc.ts", "--server", "localhost", "--retry-min", "-1"], /^slpc: --retry-min "-1": expected seconds above zero/],
    [
      ["slpc.ts", "--server", "localhost", "--severity", "loud"],
      /^slpc: --server localhost: --severity "loud": no severity "loud": use emerg/,
    ],
    [
      ["slpc.ts", "--server", "localhost", "--facility", "auth,kernal"],
      /^slpc: --server localhost: --facility "auth,kernal": no facility/,
    ],
    [
      ["slpc.ts", "--server", "localhost", "--program", "a b"],
      /^slpc: --server localhost: --program "a b": program name "a b": messages/,
    ],
    [
      [
        "slpc.ts",
        "--server",
        "localhost",
        "--host",
        Array.from({ length: 32 }, (_, i) => `h${i}`.padEnd(70, "x")).join(),
      ],
      /^slpc: --server localhost:6514: the filter is too large: the filter takes \d+ bytes; at most 2048 fit\n$/,
    ],
    [
      ["slpc.ts", "--server", "localhost", "--format", "json", "--forward", "tcp://127.0.0.1:514"],
      /^slpc: --forward tcp:\/\/127.0.0.1:514: not with --format json, which prints the messages instead of /,
    ],
    [
      ["slpc.ts", "--server", "localhost", "--stdout", "--forward=unix:/dev/log"],
      /^slpc: --forward unix:\/dev\/log: not with --stdout, which prints the messages instead of forwarding them; /,
    ],
  ])("%p exits 2 with one line naming the problem", async (args, expected) => {
    const result = await run([BUN, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(expected);
  });

  test("a file that is not PEM is named", async () => {
    const result = await run([BUN, "slpc.ts", "--server", "localhost", "--cert", `${ROOT}/package.json`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`slpc: --cert ${ROOT}/package.json: not a PEM file\n`);
  });

  test("--help lists every option with its environment variable and default", async () => {
    const result = await run([BUN, "slpc.ts", "--help"]);
    expect(result.code).toBe(0);
    for (const text of [
      "--server HOST[:PORT]",
      "SLPC_SERVER",
      "--forward ADDRESS",
      "127.0.0.1:514",
      "relp://HOST:PORT",
      "SLPC_STDOUT=1",
    ])
      expect(result.stdout).toContain(text);
  });

  test("--version prints the program's name and the version in package.json", async () => {
    const result = await run([BUN, "slpc.ts", "--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`slpc ${packageJson.version}\n`);
  });
});

describe("a UDP daemon that restarts", () => {
  test("the datagrams sent again after its refusal are counted in the line, and no more come twice", async () => {
    const s = await server();
    const arrived: string[] = [];
    // A daemon with room for slpc's catch-up after its restart: a default buffer would drop some of it.
    const listen = async (port = 0) => {
      const socket = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
      socket.on("message", (data) => void arrived.push(data.toString()));
      await new Promise<void>((resolve) => socket.bind(port, "127.0.0.1", resolve));
      return socket;
    };
    let daemon = await listen();
    const port = daemon.address().port;
    const c = slpc(s.tlsPort, ["--forward", `127.0.0.1:${port}`]);
    await streamStarted(s);
    const sender = steadySender(s.udpPort, 2000, "r");
    await sleep(700);
    daemon.close(); // the daemon restarts: what it took in its last moments, slpc cannot know
    await sleep(300);
    daemon = await listen(port);
    bed.defer(() => daemon.close());
    expect(udpDrops(port)).toBe(0);
    await sleep(700);
    sender.stop();
    const last = sender.sent.at(-1)!;
    await until(
      () => `the last message, ${arrived.length} of ${sender.sent.length} so far\n${c.stderr}`,
      () => arrived.includes(last),
    );
    await sleep(1500);
    expect(udpDrops(port)).toBe(0);
    expect(new Set(arrived)).toEqual(new Set(sender.sent)); // nothing lost
    const twice = arrived.length - new Set(arrived).size;
    const said = [...c.stderr.matchAll(/; (\d+) datagrams sent again, which come twice where the daemon took them/g)];
    const resent = said.reduce((sum, match) => sum + Number(match[1]), 0);
    expect(said.length).toBeGreaterThan(0);
    expect(twice).toBeLessThanOrEqual(resent);
  });
});

describe("--handshake-timeout", () => {
  test("a peer that takes TCP and never answers is dropped after --handshake-timeout and dialled again", async () => {
    let accepted = 0;
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => void accepted++, data() {} } });
    bed.defer(() => silent.stop(true));
    const c = slpc(silent.port, ["--stdout", "--handshake-timeout", "1"]);
    await c.waitFor(/connecting to/);
    const dialled = performance.now();
    await c.waitFor(/no TLS handshake, hello and start within 1 s \(--handshake-timeout\); closing the connection/);
    const after = performance.now() - dialled;
    await c.waitFor(/retrying in [\d.]+ s\nslpc: connecting to/);
    await until(
      () => `a second connection (${accepted})`,
      () => accepted >= 2,
    );
    expect(after).toBeGreaterThanOrEqual(900);
    expect(c.proc.exitCode).toBeNull();
  });

  test("--handshake-timeout refuses a value that is not seconds", async () => {
    const c = slpc(1, ["--stdout", "--handshake-timeout", "0"]);
    expect(await c.exit()).toBe(2);
    expect(c.stderr).toBe('slpc: --handshake-timeout "0": expected seconds above zero, like 15 or 0.5\n');
  });
});

describe("odd moments", () => {
  test("a pause longer than --dead-after (SIGSTOP, a laptop asleep) is not taken for a dead connection", async () => {
    const s = await server(["--heartbeat", "0.5"]);
    const out = await sink();
    const c = slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--dead-after", "2"]);
    await streamStarted(s);
    const sent: Buffer[] = [];
    for (let pause = 1; pause <= 2; pause++) {
      c.kill("SIGSTOP");
      const during = numbered(10, `pause${pause}`);
      await sendUdp(s.udpPort, during.slice(0, 5));
      await sleep(3000); // heartbeats and messages wait in the socket meanwhile
      await sendUdp(s.udpPort, during.slice(5));
      sent.push(...during);
      c.kill("SIGCONT");
      await until(
        () => `the messages of pause ${pause}:\n${c.stderr}`,
        () => out.messages.length === sent.length,
      );
      await sleep(500);
    }
    await sleep(2500); // longer than --dead-after, awake: heartbeats keep it alive
    expect(c.stderr).not.toContain("presumed dead");
    expect(c.stderr).not.toContain("disconnected");
    expect(s.stderr.match(/ starts at #/g)).toHaveLength(1);
    expect(texts(out.messages)).toEqual(texts(sent));
  });

  /** A TCP listener that reads slpc's ClientHello and then does `act` to the connection. */
  function afterClientHello(act: (socket: NetSocket) => void): number {
    const listener = createServer((socket) => socket.once("data", () => act(socket)));
    listener.listen(0, "127.0.0.1");
    bed.defer(() => listener.close());
    return (listener.address() as { port: number }).port;
  }

  test("a connection reset during the TLS handshake is called that, not a certificate refusal", async () => {
    const port = afterClientHello((socket) => socket.resetAndDestroy());
    const c = slpc(port, ["--stdout"]);
    await c.waitFor(
      /localhost:\d+: connection lost during the TLS handshake: [^\n]*ECONNRESET[^\n]*\nslpc: localhost:\d+: retrying/,
    );
    expect(c.stderr).not.toContain("certificate");
  });

  test("a connection closed during the TLS handshake is called that, not a certificate refusal", async () => {
    const port = afterClientHello((socket) => socket.end());
    const c = slpc(port, ["--stdout"]);
    await c.waitFor(
      /localhost:\d+: the server closed the connection during the TLS handshake\nslpc: localhost:\d+: retrying in/,
    );
    expect(c.stderr).not.toContain("certificate");
  });
});

describe("backpressure is not death", () => {
  /**
   * A TLS server of the test's own with the real server certificate: it greets each connection
   * with `hello`, answers slpc's resume with `stream` (written as fast as slpc takes it), and
   * keeps every control message slpc sends, with the time it came.
   */
  function scriptedServer(hello: Record<string, unknown>, stream: Buffer) {
    type Peer = { deframer: Deframer; unsent?: Buffer };
    const received: { at: number; message: Record<string, any> }[] = [];
    const pump = (socket: Socket<Peer>) => {
      const rest = socket.data.unsent;
      if (!rest) return;
      const taken = socket.write(rest);
      socket.data.unsent = taken >= rest.length ? undefined : rest.subarray(Math.max(taken, 0));
    };
    const listener = Bun.listen<Peer>({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: Bun.file(bed.pki.server.cert), key: Bun.file(bed.pki.server.key), secureOptions: TLS13_ONLY },
      socket: {
        open(socket) {
          socket.data = { deframer: new Deframer(1) };
          socket.write(
            encodeControl({ type: "hello", version: 1, server: "scripted", first: 1, next: 1, ...hello } as never),
          );
        },
        data(socket, chunk) {
          for (const frame of socket.data.deframer.push(chunk)) {
            const message = JSON.parse(Buffer.from(frame.body).toString());
            received.push({ at: performance.now(), message });
            if (message.type === "resume") {
              socket.data.unsent = stream;
              pump(socket);
            }
          }
        },
        drain: pump,
      },
    });
    bed.defer(() => listener.stop(true));
    const progress = () => received.filter(({ message }) => message.type === "progress");
    return { port: listener.port, received, progress };
  }

  const stream = (count: number) =>
    Buffer.concat([
      encodeControl({ type: "start", seq: 1 }),
      ...numbered(count).map((message) => encodeFrame(message)),
    ]);

  test("a server whose hello offers progress gets {type: progress, last} every heartbeat", async () => {
    const fake = scriptedServer({ heartbeat: 0.2, progress: true }, stream(3));
    const out = await sink();
    const c = slpc(fake.port, ["--forward", `127.0.0.1:${out.port}`]);
    await until("3 messages", () => out.messages.length === 3);
    await sleep(1500);
    expect(fake.received[0]!.message).toMatchObject({ type: "resume" });
    const progress = fake.progress();
    expect(progress.length).toBeGreaterThanOrEqual(4);
    expect(progress.length).toBeLessThanOrEqual(10);
    expect(progress.at(-1)!.message).toEqual({ type: "progress", last: 3 });
    expect(c.stderr).not.toContain("closing");
  });

  test("a server whose hello does not offer progress never gets one", async () => {
    const fake = scriptedServer({ heartbeat: 0.2 }, stream(3));
    const out = await sink();
    slpc(fake.port, ["--forward", `127.0.0.1:${out.port}`]);
    await until("3 messages", () => out.messages.length === 3);
    await sleep(1500);
    expect(fake.received.map(({ message }) => message.type)).toEqual(["resume"]);
  });

  test("progress goes on while slpc has stopped reading, and says how far delivery got", async () => {
    const count = 8000; // more than slpc keeps waiting: it stops reading, and the server holds the rest
    const fake = scriptedServer({ heartbeat: 0.2, progress: true }, stream(count));
    const out = await sink();
    slpc(fake.port, ["--forward", `127.0.0.1:${out.port}`, "--forward-rate", "1000"]);
    await until("delivery under way", () => out.messages.length > 0);
    await sleep(2000);
    expect(out.messages.length).toBeLessThan(count);
    const lasts = fake.progress().map(({ message }) => message.last as number);
    expect(lasts.length).toBeGreaterThanOrEqual(5);
    expect(lasts).toEqual([...lasts].sort((a, b) => a - b));
    expect(lasts.at(-1)!).toBeGreaterThan(lasts[0]!);
    expect(lasts.at(-1)!).toBeLessThanOrEqual(out.messages.length);
  });

  test("stdout that takes nothing for longer than --dead-after is not a dead connection", async () => {
    const s = await server(["--heartbeat", "0.5"]);
    const out = fifo("slow-reader.fifo");
    const c = slpcInto(out, slpcCommand(s.tlsPort, ["--stdout", "--dead-after", "1.5"]));
    await streamStarted(s);
    const messages = Array.from({ length: 3000 }, (_, i) => Buffer.from(`<13>slow ${i + 1} ${"y".repeat(300)}`));
    await feed(s, messages);
    await sleep(3500); // the reader is away: stdout is full and slpc has stopped reading
    const everyLine = () => {
      out.drain();
      return out.lines().length >= messages.length;
    };
    await until(() => `every line (${out.lines().length}):\n${c.stderr}`, everyLine);
    await sleep(200);
    out.drain();
    expect(c.stderr).not.toContain("presumed dead");
    expect(s.stderr.match(/ starts at #/g)).toHaveLength(1);
    expect(out.lines()).toEqual(texts(messages));
  });

  // Needs slps to offer `progress` in its hello and count progress as life against --stall (the
  // server half of issue 9): until then slps closes the stalled-looking connection after 2 s.
  test("a reader away past --stall and --dead-after: no reconnect, every message once (slps progress)", async () => {
    const s = await server(["--stall", "2", "--heartbeat", "1", "--queue", "64MiB", "--buffer", "64MiB"]);
    const out = fifo("away-reader.fifo");
    const c = slpcInto(out, slpcCommand(s.tlsPort, ["--stdout", "--dead-after", "2"]));
    await streamStarted(s);
    // Far more than the TCP buffers between the two hold, so slps has bytes waiting the whole time.
    const messages = Array.from({ length: 12_000 }, (_, i) => Buffer.from(`<13>backlog ${i + 1} ${"z".repeat(1000)}`));
    await feed(s, messages);
    await sleep(3500);
    const everyLine = () => {
      out.drain();
      return out.lines().length >= messages.length;
    };
    await until(() => `every line (${out.lines().length}):\n${c.stderr}\n${s.stderr}`, everyLine, 30_000);
    await sleep(200);
    out.drain();
    expect(s.stderr).not.toContain("--stall");
    expect(c.stderr).not.toContain("presumed dead");
    expect(s.stderr.match(/ starts at #/g)).toHaveLength(1);
    expect(out.lines()).toEqual(texts(messages));
  });
});

describe("stdout's reader goes away", () => {
  test("one line, exit 1, and no line after it that says slpc goes on", async () => {
    const s = await server();
    // The reader takes 100 bytes and leaves: slpc's next write to the pipe fails (EPIPE).
    const command = slpcCommand(s.tlsPort, ["--stdout"]);
    const c = track(new Child(["bash", "-c", 'set -o pipefail; "$@" | head -c 100 > /dev/null', "bash", ...command]));
    await streamStarted(s);
    await feed(s, numbered(2000));
    expect(await c.exit()).toBe(1);
    expect(c.stderr).toMatch(/\nslpc: stdout: EPIPE: broken pipe, write; exiting\n$/);
  });
});
