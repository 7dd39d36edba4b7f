// What an operator running slp for months relies on: certificate renewal with SIGHUP, expiry
// warnings, counters on SIGUSR1 and at /metrics, and the systemd units in deploy/.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Child, freePort, makeCert, ROOT, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed((dir) => {
  makeCert(dir, "server-renewed", {
    subject: "/O=Example/CN=renewed",
    issuer: "root",
    san: "DNS:localhost,IP:127.0.0.1",
    usage: "server",
  });
  makeCert(bed.dir, "client-renewed", { subject: "/O=Example/CN=home-renewed", issuer: "root", usage: "client" });
  makeCert(bed.dir, "server-soon", {
    subject: "/O=Example/CN=soon",
    issuer: "root",
    san: "DNS:localhost",
    usage: "server",
    days: 5,
  });
});
const { server, client, sink, proxy } = bed;

/** The first line of stderr after `from` that parses as a JSON object. */
function jsonLineAfter(child: Child, from: number): Record<string, any> | undefined {
  for (const line of child.stderr.slice(from).split("\n")) {
    if (line.startsWith("{")) return JSON.parse(line);
  }
  return undefined;
}

/** The subject CN of the certificate a TLS server presents now, seen by a fresh connection. */
async function presentedName(port: number, creds = bed.pki.cert("client")): Promise<string> {
  return await new Promise((resolve, reject) => {
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      tls: { cert: Bun.file(creds.cert), key: Bun.file(creds.key), ca: Bun.file(bed.pki.ca), serverName: "localhost" },
      socket: {
        handshake(socket) {
          resolve(String(socket.getPeerCertificate().subject.CN));
          socket.end();
        },
        data() {},
        connectError: (_socket, error) => reject(error),
      },
    });
  });
}

describe("counters", () => {
  test("SIGUSR1 makes each program write one JSON line of counters", async () => {
    const s = await server();
    const out = await sink();
    const c = await client(s, { forwardPort: out.port });
    await sendUdp(s.udpPort, [Buffer.from("<13>one"), Buffer.from("<13>two"), Buffer.from("<13>three")]);
    await until("delivery", () => out.messages.length === 3);
    // A datagram counts as handed on once UDP_SILENCE_MS (100 ms) pass without a refusal from the daemon.
    await sleep(500);
    const [serverFrom, clientFrom] = [s.stderr.length, c.stderr.length];
    s.kill("SIGUSR1");
    c.kill("SIGUSR1");
    await until("the server's line", () => jsonLineAfter(s, serverFrom) !== undefined);
    await until("the client's line", () => jsonLineAfter(c, clientFrom) !== undefined);
    const fromServer = jsonLineAfter(s, serverFrom)!;
    expect(fromServer).toMatchObject({
      program: "slps",
      received: 3,
      receivedBytes: 23,
      buffer: { messages: 3, first: 1, next: 4 },
    });
    expect(fromServer.clients).toHaveLength(1);
    expect(fromServer.clients[0]).toMatchObject({ subject: "/O=Example/CN=home", sent: 3, dropped: 0, behind: 0 });
    expect(fromServer.clients[0].address).toMatch(/^127\.0\.0\.1:\d+$/);
    const fromClient = jsonLineAfter(c, clientFrom)!;
    // The totals, then each server.
    expect(fromClient).toMatchObject({
      program: "slpc",
      received: 3,
      delivered: 3,
      lost: 0,
      reconnects: 0,
      pending: 0,
    });
    expect(fromClient.servers).toHaveLength(1);
    expect(fromClient.servers[0]).toMatchObject({
      server: `localhost:${s.tlsPort}`,
      connected: true,
      received: 3,
      delivered: 3,
      lost: 0,
      reconnects: 0,
      pending: 0,
      position: { last: 3 },
    });
    expect(fromClient.servers[0].position.server).toBe(fromServer.server);
  });

  test("--metrics serves the counters in Prometheus text format at /metrics", async () => {
    const port = await freePort();
    const s = await server(["--metrics", `127.0.0.1:${port}`]);
    const out = await sink();
    await client(s, { forwardPort: out.port });
    await sendUdp(s.udpPort, [Buffer.from("<13>counted")]);
    await until("delivery", () => out.messages.length === 1);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4");
    const text = await response.text();
    expect(text).toContain("# TYPE slps_received_messages_total counter\nslps_received_messages_total 1\n");
    expect(text).toContain("slps_clients 1\n");
    expect(text).toMatch(
      /slps_client_sent_messages_total\{subject="\/O=Example\/CN=home",address="127\.0\.0\.1:\d+"\} 1\n/,
    );
    expect((await fetch(`http://127.0.0.1:${port}/elsewhere`)).status).toBe(404);
  });
});

describe("certificate renewal", () => {
  test("slps rereads its certificate on SIGHUP: connected clients stay, new connections get the new one", async () => {
    const files = join(bed.dir, "slps-reload");
    mkdirSync(files);
    const cert = join(files, "server.pem");
    const key = join(files, "server.key");
    copyFileSync(bed.pki.server.cert, cert);
    copyFileSync(bed.pki.server.key, key);
    const s = await server(["--cert", cert, "--key", key]);
    const out = await sink();
    const c = await client(s, { forwardPort: out.port });
    expect(await presentedName(s.tlsPort)).toBe("localhost");

    copyFileSync(join(bed.dir, "server-renewed.pem"), cert);
    copyFileSync(join(bed.dir, "server-renewed.key"), key);
    s.kill("SIGHUP");
    await s.waitFor(/SIGHUP: reloaded --cert/);
    expect(await presentedName(s.tlsPort)).toBe("renewed");
    await sendUdp(s.udpPort, [Buffer.from("<13>after the reload")]);
    await until("delivery on the old connection", () => out.messages.length === 1);
    expect(c.stderr).not.toContain("disconnected");

    writeFileSync(key, "not a key\n");
    s.kill("SIGHUP");
    await s.waitFor(/SIGHUP: --key .*: not a PEM file; keeping the certificates in force/);
    expect(await presentedName(s.tlsPort)).toBe("renewed");
  });

  test("slpc rereads its certificate on SIGHUP and presents it on the next connection", async () => {
    const files = join(bed.dir, "slpc-reload");
    mkdirSync(files);
    copyFileSync(bed.pki.cert("client").cert, join(files, "client.pem"));
    copyFileSync(bed.pki.cert("client").key, join(files, "client.key"));
    const s = await server();
    const path = proxy(s.tlsPort);
    const c = await client(s, {
      port: path.port,
      args: ["--cert", join(files, "client.pem"), "--key", join(files, "client.key")],
    });
    await s.waitFor(/\(home\) starts at/);
    copyFileSync(join(bed.dir, "client-renewed.pem"), join(files, "client.pem"));
    copyFileSync(join(bed.dir, "client-renewed.key"), join(files, "client.key"));
    c.kill("SIGHUP");
    await c.waitFor(/SIGHUP: reloaded --cert .*; the next connection uses them/);
    path.cut();
    path.restore();
    await s.waitFor(/\(home-renewed\) starts at/);
  });

  test("a certificate that expires within 14 days is a warning at start", async () => {
    const s = await server(["--cert", join(bed.dir, "server-soon.pem"), "--key", join(bed.dir, "server-soon.key")]);
    await s.waitFor(/slps: warning: --cert certificate soon expires in [45] days \(.*\); renew it and send SIGHUP/);
  });
});

describe("systemd units", () => {
  const analyze = Bun.which("systemd-analyze");
  if (!analyze) console.warn("ops.test.ts: skipping the systemd unit check: systemd-analyze is not installed");

  test.skipIf(!analyze)("deploy/slps.service and deploy/slpc.service pass systemd-analyze verify", () => {
    const units = join(bed.dir, "units");
    mkdirSync(units);
    for (const name of ["slps", "slpc"]) {
      // verify checks that ExecStart names an executable: point it at one that exists here.
      const text = readFileSync(join(ROOT, "deploy", `${name}.service`), "utf8");
      expect(text).toContain(`ExecStart=/usr/local/bin/${name}\n`);
      writeFileSync(
        join(units, `${name}.service`),
        text.replace(`ExecStart=/usr/local/bin/${name}`, `ExecStart=${process.execPath}`),
      );
    }
    const result = Bun.spawnSync(
      [analyze!, "verify", "--man=no", join(units, "slps.service"), join(units, "slpc.service")],
      { stderr: "pipe", stdout: "pipe" },
    );
    expect(result.stderr.toString() + result.stdout.toString()).toBe("");
    expect(result.exitCode).toBe(0);
  });
});
