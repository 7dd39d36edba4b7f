// A fresh review of the --forward transports (issue 12), the output formats and the filters
// (issue 11) against the running programs: a hostile RELP daemon, a filtering client that makes
// slps scan its whole buffer at once, and terminal control that --format raw lets through. Each
// test is one finding; it fails on the code it was written against.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { BUN, Child, freePort, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();

/**
 * A RELP daemon of the test's own: it accepts the open offer as imrelp does and answers each
 * `syslog` command with `answer(txnr, data)`; returns its port and what it was sent.
 */
function fakeRelp(answer: (txnr: number, data: string) => string) {
  const received: string[] = [];
  let opens = 0;
  const listener = Bun.listen<{ buffered: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buffered: "" };
      },
      data(socket: Socket<{ buffered: string }>, chunk) {
        socket.data.buffered += chunk.toString("latin1");
        for (;;) {
          const header = /^(\d+) (\w+) (\d+)[ \n]/.exec(socket.data.buffered);
          if (!header) return;
          const length = Number(header[3]);
          const end = length === 0 ? header[0].length : header[0].length + length + 1;
          if (socket.data.buffered.length < end) return;
          const data = socket.data.buffered.slice(header[0].length, header[0].length + length);
          socket.data.buffered = socket.data.buffered.slice(end);
          const txnr = Number(header[1]);
          if (header[2] === "open") {
            opens++;
            const offers = "200 OK\nrelp_version=0\nrelp_software=fake\ncommands=syslog";
            socket.write(`${txnr} rsp ${offers.length} ${offers}\n`);
          } else if (header[2] === "syslog") {
            received.push(data);
            socket.write(answer(txnr, data));
          }
        }
      },
    },
  });
  bed.defer(() => listener.stop(true));
  return {
    port: listener.port,
    received,
    get opens() {
      return opens;
    },
  };
}

describe("relp:// against a daemon that refuses a message", () => {
  // The daemon answers one message with a 500 (imrelp does so for a message its ruleset cannot
  // take). slpc drops the connection, reconnects at once (daemonUp resets the backoff on the open
  // answer), sends the same message again, and logs the refusal each time: a line every 0.1 s,
  // for ever, while the stream stands still.
  test("a message the daemon refuses does not flood the log with a line per retry", async () => {
    const relp = fakeRelp((txnr, data) =>
      data.includes("poison") ? `${txnr} rsp 18 500 cannot take it\n` : `${txnr} rsp 6 200 OK\n`,
    );
    const server = await bed.server();
    const client = await bed.client(server, { forward: `relp://127.0.0.1:${relp.port}` });
    await sendUdp(server.udpPort, [Buffer.from("<13>app: poison")]);
    await sleep(5000);
    // One line, then at most one a minute with the count, as for every other forward failure.
    const lines = client.stderr.split("\n").filter((line) => line.includes("forward to"));
    expect(relp.opens).toBeGreaterThan(1); // it does try again
    expect(lines.length).toBeLessThanOrEqual(3);
  });
});

describe("tcp:// against a daemon that hangs up at once", () => {
  // imtcp at its session limit, a TLS-only port, a TCP wrapper: the connection opens and closes
  // at once. daemonUp() on open resets the backoff and the log's rate limit, so slpc dials every
  // 0.1 s and writes two lines each time, for ever.
  test("a daemon that accepts and closes at once does not flood the log", async () => {
    let accepted = 0;
    const rude = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(socket) {
          accepted++;
          socket.end();
        },
        data() {},
      },
    });
    bed.defer(() => rude.stop(true));
    const server = await bed.server();
    const client = await bed.client(server, { forward: `tcp://127.0.0.1:${rude.port}` });
    await sendUdp(server.udpPort, [Buffer.from("<13>app: hello")]);
    await sleep(5000);
    const lines = client.stderr.split("\n").filter((line) => line.includes("forward to"));
    expect(accepted).toBeGreaterThan(1); // it does try again
    expect(lines.length).toBeLessThanOrEqual(3);
  });
});

/** slps's count of messages received, from its /metrics. */
async function receivedCount(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(/^slps_received_messages_total (\d+)/m.exec(text)?.[1] ?? 0);
}

describe("a filtering client far behind", () => {
  // On resume, keepWithinLimit skips a client more than --queue behind to its catch-up point,
  // and for a filtering client it parses every skipped message, synchronously, to count which
  // of them its filter would have left out. With a large --buffer that is the whole buffer in
  // one turn of the event loop: every other client waits for it.
  test("a filtering client resuming far behind does not hold up a live client", async () => {
    const metricsPort = await freePort("tcp");
    const server = await bed.server([
      "--buffer",
      "256MiB",
      "--queue",
      "64KiB",
      "--metrics",
      `127.0.0.1:${metricsPort}`,
    ]);
    const total = 600_000;
    const padding = "x".repeat(60);
    for (let sent = 0; sent < total; sent += 5000) {
      const batch = Array.from({ length: 5000 }, (_, i) =>
        Buffer.from(`<13>Nov 27 09:14:02 web app[1]: ${sent + i} ${padding}`),
      );
      await sendUdp(server.udpPort, batch);
      // Not faster than slps reads, so its UDP buffer drops none.
      while ((await receivedCount(metricsPort)) < sent + 5000 - 20_000) await sleep(5);
    }
    while ((await receivedCount(metricsPort)) < total * 0.9) await sleep(20);
    const live = await bed.client(server);
    const { cert, key } = bed.pki.cert("client");
    const filtering = bed.track(
      new Child([
        BUN,
        "slpc.ts",
        "--server",
        `localhost:${server.tlsPort}`,
        "--ca",
        bed.pki.ca,
        "--cert",
        cert,
        "--key",
        key,
        "--stdout",
        "--replay",
        "--match",
        "never there",
      ]),
    );
    await filtering.waitFor(/connected to/);
    // How long a new message takes to reach the live client while the filtering one resumes:
    // a few milliseconds otherwise; 2.8 s with 600,000 messages held, measured.
    let worst = 0;
    for (let i = 0; i < 20; i++) {
      const marker = `marker-${i}`;
      const t = performance.now();
      await sendUdp(server.udpPort, [Buffer.from(`<13>Nov 27 09:14:02 web app[1]: ${marker}`)]);
      await until(`the live client to print ${marker}`, () => live.stdout.includes(marker), 30_000);
      worst = Math.max(worst, performance.now() - t);
    }
    expect(worst).toBeLessThan(1000);
  });
});

describe("--format raw and terminal control", () => {
  // raw escapes C0 control bytes, but C1 controls encoded as UTF-8 (U+009B is CSI: xterm acts on
  // it in UTF-8 mode) and bidi overrides pass as they came; raw is what --format raw prints to a
  // terminal, too. pretty shows both as \u escapes.
  test("--format raw prints no C1 control or bidi override as it came", async () => {
    const server = await bed.server();
    const client = await bed.client(server, { args: ["--format", "raw"] });
    await sendUdp(server.udpPort, [Buffer.from("<13>app: a\u009b2Jb\u202ec\u2066d")]);
    await until("the line", () => client.stdout.includes("\n"));
    const line = client.stdout.toString("utf8");
    expect(line).not.toMatch(/[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/);
  });
});
