// slps end to end: real slps and slpc processes, real TLS and UDP on loopback, certificates made by
// this run. What the server delivers and to whom, whom it refuses, how it bears a slow client,
// its command line, and the compiled executables. slpc's own behaviour is in slpc.test.ts; the
// suites that span both (resume, security, operations, interop) are under test/.
// Each test asserts on the bytes that arrived.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import packageJson from "./package.json" with { type: "json" };
import {
  BUN,
  Child,
  freePort,
  ROOT,
  rawTlsClient,
  removeDir,
  rss,
  type ServerHandle,
  sendUdp,
  sleep,
  snapshotOf,
  stalledClient,
  tempDir,
  testBed,
  until,
} from "./test/kit.ts";

// These start real processes and wait on real sockets: more than bun's default 5 s on a busy machine.
setDefaultTimeout(30_000);

const bed = testBed();
const { server, sink, track } = bed;
const client = (s: ServerHandle, forwardPort?: number, args: string[] = [], certName = "client", cmd?: string[]) =>
  bed.client(s, { forwardPort, args, certName, cmd });

const numbered = (n: number, prefix = "msg") => Array.from({ length: n }, (_, i) => Buffer.from(`<13>${prefix} ${i}`));

describe("delivery", () => {
  test("awkward messages arrive byte for byte and in order", async () => {
    const s = await server();
    const out = await sink();
    await client(s, out.port);
    const messages = [
      Buffer.from("<13>plain"),
      Buffer.from("<13>line one\nline two\n"),
      Buffer.from("<13>nul\0inside\0"),
      Buffer.from([0x3c, 0x31, 0x33, 0x3e, 0xff, 0xfe, 0xc3, 0x28, 0x80]), // not UTF-8
      Buffer.from("12 looks like a frame header"),
      Buffer.alloc(65507, 0x61),
      Buffer.from("<13>after the big one"),
    ];
    await sendUdp(s.udpPort, messages);
    await until("all messages", () => out.messages.length >= messages.length);
    expect(out.messages).toEqual(messages);
  });

  test("three clients each get every message", async () => {
    const s = await server();
    const outs = await Promise.all([sink(), sink(), sink()]);
    for (const out of outs) await client(s, out.port);
    const messages = numbered(300);
    for (let i = 0; i < messages.length; i += 50) {
      await sendUdp(s.udpPort, messages.slice(i, i + 50));
      await until("batch", () => outs.every((out) => out.messages.length >= i + 50));
    }
    for (const out of outs) expect(out.messages).toEqual(messages);
  });

  test("an --issuer in either form admits a certificate from that intermediate", async () => {
    for (const issuer of ["/C=US/O=Example/CN=Example CA A", "CN=Example CA A,O=Example,C=US"]) {
      const s = await server(["--issuer", issuer]);
      const out = await sink();
      await client(s, out.port, [], "clientA");
      await sendUdp(s.udpPort, [Buffer.from("<13>for A")]);
      await until("message", () => out.messages.length === 1);
      expect(out.messages[0]!.toString()).toBe("<13>for A");
    }
  });
});

describe("refusal", () => {
  /** Starts a server and a legitimate client, connects `intruder`, and lets messages flow past both. */
  async function intruderGetsNothing(
    intruder: (port: number) => Child,
    serverArgs: string[] = [],
    refusedLog?: RegExp,
  ) {
    const s = await server(serverArgs);
    const out = await sink();
    await client(s, out.port, [], serverArgs.length ? "clientA" : "client");
    const bad = track(intruder(s.tlsPort));
    if (refusedLog) await s.waitFor(refusedLog);
    const messages = numbered(20, "secret");
    for (let round = 0; round < 5; round++) {
      await sendUdp(s.udpPort, messages.slice(round * 4, round * 4 + 4));
      await sleep(50);
    }
    await until("legitimate client got all", () => out.messages.length === messages.length);
    await sleep(200);
    expect(bad.stdout.length).toBe(0);
    expect(s.stderr).toContain("refused 127.0.0.1:");
    return s;
  }

  test("a client certificate from another CA receives no log data", async () => {
    const s = await intruderGetsNothing(
      (port) => rawTlsClient(port, bed.pki.ca, bed.pki.cert("stranger")),
      [],
      /refused/,
    );
    expect(s.stderr).toMatch(
      /refused .*: certificate serial [0-9A-F]+ refused: unable to verify the first certificate/,
    );
  });

  test("a client without a certificate receives no log data", async () => {
    await intruderGetsNothing((port) => rawTlsClient(port, bed.pki.ca), [], /refused/);
  });

  test("an expired client certificate receives no log data", async () => {
    const s = await intruderGetsNothing(
      (port) => rawTlsClient(port, bed.pki.ca, bed.pki.cert("expired")),
      [],
      /refused/,
    );
    expect(s.stderr).toMatch(/expired/i);
  });

  test("a certificate from another intermediate of the same root is refused by --issuer", async () => {
    const s = await intruderGetsNothing(
      // -cert_chain: s_client sends the intermediate too, so the chain verifies and only --issuer refuses it.
      (port) => rawTlsClient(port, bed.pki.ca, bed.pki.cert("clientB0"), ["-cert_chain", `${bed.pki.dir}/interB.pem`]),
      ["--issuer", "/C=US/O=Example/CN=Example CA A"],
      /refused/,
    );
    expect(s.stderr).toContain(
      "issuer /C=US/O=Example/CN=Example CA B is not --issuer /C=US/O=Example/CN=Example CA A",
    );
  });

  test("a TLS 1.2 client receives no log data", async () => {
    await intruderGetsNothing(
      (port) => rawTlsClient(port, bed.pki.ca, bed.pki.cert("client"), ["-tls1_2"]),
      [],
      /refused/,
    );
  });

  test("one client over --max-clients is refused with the reason", async () => {
    const s = await server(["--max-clients", "1"]);
    const out = await sink();
    await client(s, out.port);
    const extra = track(rawTlsClient(s.tlsPort, bed.pki.ca, bed.pki.cert("client")));
    await s.waitFor(/refused .*already 1 clients \(--max-clients 1\)/);
    await sendUdp(s.udpPort, [Buffer.from("<13>only one")]);
    await until("message", () => out.messages.length === 1);
    await sleep(200);
    expect(extra.stdout.length).toBe(0);
  });

  test("a connection that never starts its handshake is closed after --handshake-timeout", async () => {
    const s = await server(["--handshake-timeout", "0.5"]);
    let closed = false;
    await Bun.connect({
      hostname: "127.0.0.1",
      port: s.tlsPort,
      socket: {
        data() {},
        close: () => {
          closed = true;
        },
      },
    });
    await s.waitFor(/no TLS handshake and resume request within 0.5 s/, 3000);
    await until("close", () => closed, 2000);
  });
});

/**
 * A client of the test's own that reads slps's hello, asks to start live and never reads again,
 * with a 4 KiB receive buffer so that slps feels it at once. With `progress` it then sends a
 * `progress` message every half second, as a client whose own output is slow does. It prints the
 * hello it got and its own port, so that the test can find its lines in slps's log.
 */
function unreadingClient(port: number, progress: boolean): Child {
  const script = `
import json, socket, ssl, sys, time
port, ca, cert, key, progress = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", port))
connection = context.wrap_socket(raw, server_hostname="localhost")
def frame(message):
    body = json.dumps(message).encode()
    return b"!%d %s" % (len(body), body)
received = b""
while b" " not in received:
    received += connection.recv(1)
length = int(received[1:received.index(b" ")])
body = b""
while len(body) < length:
    body += connection.recv(length - len(body))
connection.sendall(frame({"type": "resume", "version": 1}))
print(json.dumps({"port": connection.getsockname()[1], "hello": json.loads(body)}), flush=True)
while True:
    time.sleep(0.5)
    if progress:
        connection.sendall(frame({"type": "progress", "last": 0}))
`;
  const { cert, key } = bed.pki.cert("client");
  return bed.track(new Child(["python3", "-c", script, String(port), bed.pki.ca, cert, key, progress ? "1" : "0"]));
}

describe("resilience", () => {
  test("a client that stops reading slows nobody and the server's memory stays bounded", async () => {
    const s = await server(["--queue", "1MiB", "--buffer", "1MiB"]);
    const out = await sink();
    await client(s, out.port);
    track(await stalledClient(s.tlsPort, bed.pki.ca, bed.pki.cert("client")));
    await s.waitFor(/2 in all/);
    const before = rss(s.pid);
    const message = Buffer.alloc(16_000, 0x62);
    const total = 4_000; // 64 MB: far more than the stalled client's queue may hold
    // Sent in small batches, each waited for, so that no UDP buffer on the way overflows.
    for (let sent = 0; sent < total; sent += 10) {
      await sendUdp(s.udpPort, Array(10).fill(message));
      await until(
        () => `the reading client keeps up (${out.messages.length} of ${sent + 10})`,
        () => out.messages.length >= sent + 10,
        10_000,
      );
    }
    expect(out.messages.length).toBe(total);
    await s.waitFor(/skipped \d+ oldest messages/, 3000);
    const growth = rss(s.pid) - before;
    expect(growth).toBeLessThan(48 * 1024 * 1024);
  });

  test("a client that reads nothing but sends progress outlives --stall; one that sends nothing does not", async () => {
    const s = await server(["--stall", "2", "--queue", "1MiB"]);
    const started = () => s.stderr.match(/ starts at #/g)?.length ?? 0;
    const [slow, dead] = [unreadingClient(s.tlsPort, true), unreadingClient(s.tlsPort, false)];
    const ready = () => started() === 2 && [slow, dead].every((child) => child.stdout.includes("\n"));
    await until("both clients' start", ready);
    const [slowPort, deadPort] = [slow, dead].map((child) => JSON.parse(child.stdout.toString()).port as number);
    expect(JSON.parse(slow.stdout.toString()).hello).toMatchObject({ type: "hello", version: 1, progress: true });
    // Far more than the two sockets hold: slps's writes to both clients block.
    const message = Buffer.alloc(8000, 0x73);
    for (let i = 0; i < 40; i++) {
      await sendUdp(s.udpPort, Array(10).fill(message));
      await sleep(5);
    }
    await s.waitFor(new RegExp(`client 127\\.0\\.0\\.1:${deadPort} \\(home\\): took no bytes for 2 s`), 10_000);
    await sleep(6000); // three times --stall
    expect(s.stderr).not.toContain(`127.0.0.1:${slowPort} (home): took no bytes`);
    const numbers = await snapshotOf(s);
    expect(numbers.phases).toEqual({ handshaking: 0, resuming: 0, streaming: 1, closing: 0 });
    expect(numbers.clients).toHaveLength(1);
    expect(numbers.clients[0]).toMatchObject({ address: `127.0.0.1:${slowPort}`, delivered: 0 });
    expect(numbers.clients[0].behind).toBeGreaterThan(0);
  });

  test("SIGTERM and SIGINT end both programs with exit 0 within 2 s", async () => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const s = await server();
      const c = await client(s);
      const started = performance.now();
      c.kill(signal);
      s.kill(signal);
      expect(await c.exit(2000)).toBe(0);
      expect(await s.exit(2000)).toBe(0);
      expect(performance.now() - started).toBeLessThan(2000);
    }
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
    [["slps.ts", "--listen", "nowhere"], /^slps: --listen "nowhere": expected HOST:PORT \(the port is missing\)\n$/],
    [["slps.ts", "--max-clients", "lots"], /^slps: --max-clients "lots": expected a whole number\n$/],
    [["slps.ts", "--bogus"], /^slps: unknown flag --bogus \(see --help\)\n$/],
    [["slps.ts", "--queue"], /^slps: --queue needs a value \(BYTES\)\n$/],
    [["slps.ts", "--cert", "/nonexistent/server.pem"], /^slps: --cert \/nonexistent\/server.pem: no such file\n$/],
  ])("%p exits 2 with one line naming the problem", async (args, expected) => {
    const result = await run([BUN, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(expected);
  });

  test("an environment variable sets an option, and a bad one is named", async () => {
    const child = new Child([BUN, "slps.ts"], { SLPS_QUEUE: "eight" });
    expect(await child.exit()).toBe(2);
    expect(child.stderr).toBe('slps: SLPS_QUEUE "eight": expected a byte count like 8388608, 512KiB or 8MiB\n');
  });

  test("a key that does not belong to the certificate is named", async () => {
    const result = await run([
      BUN,
      "slps.ts",
      "--cert",
      bed.pki.server.cert,
      "--key",
      bed.pki.cert("client").key,
      "--ca",
      bed.pki.ca,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `slps: --key ${bed.pki.cert("client").key}: does not belong to --cert ${bed.pki.server.cert}\n`,
    );
  });

  test("--help lists every option with its environment variable and default", async () => {
    const result = await run([BUN, "slps.ts", "--help"]);
    expect(result.code).toBe(0);
    for (const text of [
      "--udp HOST:PORT",
      "SLPS_UDP",
      "127.0.0.1:514",
      "--listen",
      "0.0.0.0:6514",
      "--issuer DN",
      "--max-clients N",
      "(default 64)",
      "--queue BYTES",
      "8MiB",
    ])
      expect(result.stdout).toContain(text);
  });

  test("--version prints the program's name and the version in package.json", async () => {
    const result = await run([BUN, "slps.ts", "--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`slps ${packageJson.version}\n`);
  });

  test("a port in use exits 1 naming the address", async () => {
    const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const result = await run([
        BUN,
        "slps.ts",
        "--listen",
        `127.0.0.1:${busy.port}`,
        "--udp",
        `127.0.0.1:${await freePort("udp")}`,
        "--cert",
        bed.pki.server.cert,
        "--key",
        bed.pki.server.key,
        "--ca",
        bed.pki.ca,
      ]);
      expect(result.code).toBe(1);
      const why = "the address is already in use; pick another with --listen";
      expect(result.stderr).toBe(`slps: cannot listen on 127.0.0.1:${busy.port} (--listen): ${why}\n`);
    } finally {
      busy.stop(true);
    }
  });
});

describe("compiled executables", () => {
  /** `npm run build`, once for the tests that need it. */
  let build: { exitCode: number } | undefined;
  const built = () => {
    build ??= Bun.spawnSync([BUN, "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    return build;
  };

  test("dist/slps and dist/slpc deliver a message end to end", async () => {
    expect(built().exitCode).toBe(0);
    const s = await server([], { cmd: [`${ROOT}/dist/slps`] });
    const out = await sink();
    await client(s, out.port, [], "client", [`${ROOT}/dist/slpc`]);
    await sendUdp(s.udpPort, [Buffer.from("<13>compiled\nand whole")]);
    await until("message", () => out.messages.length === 1);
    expect(out.messages[0]!.toString()).toBe("<13>compiled\nand whole");
  }, 120_000);

  test("dist/slps and dist/slpc print their version run from another folder, no package.json beside them", () => {
    expect(built().exitCode).toBe(0);
    const elsewhere = tempDir();
    try {
      for (const program of ["slps", "slpc"]) {
        const run = Bun.spawnSync([`${ROOT}/dist/${program}`, "--version"], { cwd: elsewhere, stdout: "pipe" });
        expect(run.stdout.toString()).toBe(`${program} ${packageJson.version}\n`);
        expect(run.exitCode).toBe(0);
      }
    } finally {
      removeDir(elsewhere);
    }
  }, 120_000);
});
