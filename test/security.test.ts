// Hostile peers and lost laptops: revocation (--crl on both ends, pinned certificates, a two-level
// CA, a CRL past its nextUpdate), who may connect (--allow, --pin, --issuer, what a refused slpc
// is told), limits before authentication (resets, refused peers that never close), the TLS
// profile, and a hostile server against slpc. Real sockets on loopback, certificates made by this run.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeControl, encodeFrame } from "../lib.ts";
import {
  BUN,
  Child,
  chain,
  makeCert,
  openssl,
  protocolClient,
  ROOT,
  rawTlsClient,
  rss,
  sendUdp,
  serverSideConnections,
  sleep,
  snapshotOf,
  testBed,
  until,
} from "./kit.ts";

setDefaultTimeout(30_000);

/** A CA, server and clients made by the project's own scripts, as an operator would. */
let ops = "";
const bed = testBed((dir) => {
  makeCert(dir, "selfsigned", { subject: "/CN=laptop", usage: "client" });
  makeCert(bed.dir, "selfsigned2", { subject: "/CN=laptop2", usage: "client" });
  makeCert(dir, "clientA2_0", { subject: "/O=Example/CN=home-a2", issuer: "interA", usage: "client" });
  chain(dir, "clientA2", "clientA2_0", "interA");
  // A CA whose subject has O and CN in one RDN, and a client under it.
  openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "30",
    "-keyout",
    "multica.key",
    "-out",
    "multica.pem",
    "-multivalue-rdn",
    "-subj",
    "/C=US/O=Example+CN=Multi CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  makeCert(dir, "multiclient", { subject: "/O=Example/CN=home-multi", issuer: "multica", usage: "client" });
  // A client certificate whose CN holds ESC, OSC, a C1 control and a bidi override, signed by the test's CA.
  const cn = "ev\x1b]0;owned\x07il\u009b2J\u202ex";
  for (const args of [
    ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-utf8", "-subj", `/O=Example/CN=${cn}`],
    ["x509", "-req", "-in", "forger.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-days", "30"],
  ]) {
    const [command, ...rest] = args;
    const files = command === "req" ? ["-keyout", "forger.key", "-out", "forger.csr"] : ["-out", "forger.pem"];
    const made = Bun.spawnSync(["openssl", command!, ...rest, ...files], { cwd: dir, stderr: "pipe" });
    if (made.exitCode !== 0) throw new Error(made.stderr.toString());
  }
  ops = join(bed.dir, "ops");
  const made = Bun.spawnSync(["bash", join(ROOT, "certs/make-certs.sh"), "-d", ops, "localhost", "home", "laptop"], {
    stderr: "pipe",
  });
  if (made.exitCode !== 0) throw new Error(made.stderr.toString());
});
const { server, client, sink, track } = bed;

function revoke(...names: string[]): string {
  const result = Bun.spawnSync(["bash", join(ROOT, "certs/revoke.sh"), "-d", ops, ...names], {
    stderr: "pipe",
    stdout: "pipe",
  });
  if (result.exitCode !== 0) throw new Error(result.stderr.toString());
  return result.stdout.toString();
}

const serial = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;
const opsFiles = (name: string) => ({ cert: join(ops, `${name}.pem`), key: join(ops, `${name}.key`) });
const opsServerArgs = () => [
  "--cert",
  join(ops, "server.pem"),
  "--key",
  join(ops, "server.key"),
  "--ca",
  join(ops, "ca.pem"),
];

/** slpc with the operator's certificates from `ops`, forwarding to `port`. */
function opsClient(tlsPort: number, name: string, forwardPort: number, extra: string[] = []): Child {
  const { cert, key } = opsFiles(name);
  return track(
    new Child([
      BUN,
      "slpc.ts",
      "--server",
      `localhost:${tlsPort}`,
      "--ca",
      join(ops, "ca.pem"),
      "--cert",
      cert,
      "--key",
      key,
      "--forward",
      `127.0.0.1:${forwardPort}`,
      "--retry-min",
      "0.2",
      "--retry-max",
      "0.5",
      ...extra,
    ]),
  );
}

let crls = 0;
/**
 * A CRL (PEM) from the test CA `ca` that revokes the test certificates `revoked`, made with `openssl ca`;
 * `gencrl` adds flags to its -gencrl, such as dates.
 */
function makeCrl(ca: string, revoked: string[] = [], gencrl: string[] = []): string {
  const dir = join(bed.dir, `crl${++crls}`);
  mkdirSync(dir);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "crlnumber"), "1000\n");
  const database = `database = ${dir}/index.txt\ncrlnumber = ${dir}/crlnumber`;
  const config = `[ca]\ndefault_ca = test\n[test]\n${database}\ndefault_md = sha256\ndefault_crl_days = 30\n`;
  writeFileSync(join(dir, "ca.cnf"), config);
  const key = join(bed.dir, `${ca}.key`);
  const caFiles = ["-config", join(dir, "ca.cnf"), "-keyfile", key, "-cert", join(bed.dir, `${ca}.pem`)];
  for (const name of revoked) openssl(dir, "ca", ...caFiles, "-revoke", join(bed.dir, `${name}.pem`));
  openssl(dir, "ca", ...caFiles, "-gencrl", ...gencrl, "-out", join(dir, "crl.pem"));
  return readFileSync(join(dir, "crl.pem"), "utf8");
}

/** Writes `pems` into one file for --crl; returns its path. */
function crlFile(...pems: string[]): string {
  const path = join(bed.dir, `crls${++crls}.pem`);
  writeFileSync(path, pems.join(""));
  return path;
}

const serialOf = (name: string) => serial(join(bed.dir, `${name}.pem`));
const fingerprintOf = (name: string) => new X509Certificate(readFileSync(join(bed.dir, `${name}.pem`))).fingerprint256;

describe("revocation", () => {
  test("a revoked client certificate is refused by serial, the others served; SIGHUP rereads the CRL", async () => {
    expect(revoke("laptop")).toContain(`revoked laptop (serial ${serial(join(ops, "laptop.pem"))})`);
    const crl = join(ops, "crl.pem");
    const s = await server([...opsServerArgs(), "--crl", crl]);
    const good = await sink();
    const lost = await sink();
    opsClient(s.tlsPort, "home", good.port);
    await s.waitFor(/\(home\) starts at/);
    const thief = opsClient(s.tlsPort, "laptop", lost.port);
    const laptop = serial(join(ops, "laptop.pem"));
    await s.waitFor(
      new RegExp(`refused 127\\.0\\.0\\.1:\\d+: certificate serial ${laptop} refused: certificate revoked`),
    );
    await sendUdp(s.udpPort, [Buffer.from("<13>for home only")]);
    await until("home's message", () => good.messages.length === 1);
    await sleep(300);
    expect(lost.messages).toEqual([]);
    expect(thief.stderr).not.toContain("following server");

    revoke("home");
    s.kill("SIGHUP");
    await s.waitFor(/SIGHUP: reloaded .* and --crl /);
    const again = opsClient(s.tlsPort, "home", (await sink()).port);
    await s.waitFor(new RegExp(`certificate serial ${serial(join(ops, "home.pem"))} refused: certificate revoked`));
    void again;
  });

  test("slpc --crl refuses a revoked server certificate", async () => {
    revoke("server");
    const s = await server(opsServerArgs());
    const c = opsClient(s.tlsPort, "home", (await sink()).port, ["--crl", join(ops, "crl.pem")]);
    await c.waitFor(/server certificate refused: certificate revoked/);
    expect(s.stderr).not.toMatch(/ starts at #/);
  });

  test("--crl with a file that holds no CRL is one clear line and exit 2", async () => {
    const child = new Child([BUN, "slps.ts", ...opsServerArgs(), "--crl", join(ops, "ca.pem")]);
    expect(await child.exit()).toBe(2);
    expect(child.stderr).toBe(`slps: --crl ${join(ops, "ca.pem")}: holds no CRL (-----BEGIN X509 CRL-----)\n`);
  });

  test("a pinned certificate that --crl revokes is refused; a pinned one it does not revoke is served", async () => {
    const crl = crlFile(makeCrl("root", ["client"]));
    const s = await server(["--pin", fingerprintOf("client"), "--pin", fingerprintOf("selfsigned"), "--crl", crl]);
    const out = await sink();
    await client(s, { forwardPort: out.port, certName: "selfsigned" });
    const revoked = bed.track(rawTlsClient(s.tlsPort, bed.pki.ca, bed.pki.cert("client")));
    await s.waitFor(new RegExp(`refused [\\d.:]+: certificate serial ${serialOf("client")} is revoked \\(--crl\\)`));
    await sendUdp(s.udpPort, [Buffer.from("<13>for the unrevoked pin")]);
    await until("delivery", () => out.messages.length === 1);
    await sleep(200);
    expect(revoked.stdout.length).toBe(0);
    expect(s.stderr).not.toContain("warning: --crl");
  });

  test("CRLs of root and intermediate in one --crl file: a good client is served, a revoked one not", async () => {
    const crl = crlFile(makeCrl("root"), makeCrl("interA", ["clientA2_0"]));
    const s = await server(["--crl", crl]);
    const out = await sink();
    await client(s, { forwardPort: out.port, certName: "clientA" });
    const withChain = ["-cert_chain", join(bed.dir, "interA.pem")];
    const revoked = bed.track(rawTlsClient(s.tlsPort, bed.pki.ca, bed.pki.cert("clientA2"), withChain));
    await s.waitFor(new RegExp(`certificate serial ${serialOf("clientA2_0")} refused: certificate revoked`));
    await sendUdp(s.udpPort, [Buffer.from("<13>for home-a")]);
    await until("delivery", () => out.messages.length === 1);
    await sleep(200);
    expect(revoked.stdout.length).toBe(0);
    expect(s.stderr).not.toContain("warning: --crl");
  });

  test("a --crl without a CRL from a CA in --ca is one warning at start, naming that CA", async () => {
    const crl = crlFile(makeCrl("interA"));
    const s = await server(["--crl", crl]);
    await s.waitFor(/warning: --crl/);
    const consequence = "every client certificate under it will be refused (unable to get certificate CRL)";
    const root = "/C=US/O=Example/CN=Example Root CA";
    expect(s.stderr).toContain(`slps: warning: --crl ${crl} holds no CRL from ${root} (in --ca): ${consequence}\n`);
  });

  test("make-certs.sh -i and revoke.sh run a two-level CA: one crl.pem refuses the revoked client only", async () => {
    const ops = join(bed.dir, "ops-two-level");
    const script = (name: string, ...args: string[]) => {
      const result = Bun.spawnSync(["bash", join(ROOT, "certs", name), "-d", ops, ...args], { stderr: "pipe" });
      if (result.exitCode !== 0) throw new Error(`${name}: ${result.stderr}`);
      return result.stdout.toString();
    };
    expect(script("make-certs.sh", "-i", "site", "localhost", "home", "laptop")).toContain(
      "issuer of the client certificates (slps --issuer): /O=slp/CN=slp site CA",
    );
    const revoked = script("revoke.sh", "laptop");
    expect(revoked).toContain("CRL from /O=slp/CN=slp private CA: 0 revoked");
    expect(revoked).toContain("CRL from /O=slp/CN=slp site CA: 1 revoked");
    const files = (name: string) => ({ cert: join(ops, `${name}.pem`), key: join(ops, `${name}.key`) });
    const ca = join(ops, "ca.pem");
    const s = await server([
      "--cert",
      join(ops, "server.pem"),
      "--key",
      join(ops, "server.key"),
      "--ca",
      ca,
      "--crl",
      join(ops, "crl.pem"),
      "--issuer",
      "/O=slp/CN=slp site CA",
    ]);
    const out = await sink();
    const home = files("home");
    await client(s, { forwardPort: out.port, args: ["--ca", ca, "--cert", home.cert, "--key", home.key] });
    const thief = bed.track(rawTlsClient(s.tlsPort, ca, files("laptop"), ["-cert_chain", join(ops, "ca-site.pem")]));
    await s.waitFor(/refused 127\.0\.0\.1:\d+: certificate serial [0-9A-F]+ refused: certificate revoked/);
    await sendUdp(s.udpPort, [Buffer.from("<13>for home")]);
    await until("delivery", () => out.messages.length === 1);
    await sleep(200);
    expect(thief.stdout.length).toBe(0);
    expect(s.stderr).not.toContain("warning: --crl");
  });

  /** A --crl file from the test's root CA whose nextUpdate passed in 2020: what a CRL nobody renewed becomes. */
  const expiredRootCrl = () =>
    crlFile(makeCrl("root", [], ["-crl_lastupdate", "20200101000000Z", "-crl_nextupdate", "20200201000000Z"]));

  // certs/revoke.sh writes CRLs good for 365 days. Once one is past its nextUpdate, OpenSSL
  // refuses every client under that CA (CRL_HAS_EXPIRED), and slps, which warns 14 days before
  // its own certificate expires, says nothing at start: a lockout that arrives a year later.
  test("a --crl past its nextUpdate is named at start, before it refuses every client", async () => {
    const s = await server(["--crl", expiredRootCrl()]);
    await sleep(500); // the start's warnings follow the line that says it serves
    expect(s.stderr).toMatch(/--crl[^\n]*(expired|out of date|nextUpdate)/i);
  });
});

describe("who may connect", () => {
  test("--allow admits the named clients and refuses the rest, saying which rule refused", async () => {
    const s = await server(["--allow", "home-a", "--allow", "someone-else"]);
    const out = await sink();
    await client(s, { forwardPort: out.port, certName: "clientA" });
    const other = track(rawTlsClient(s.tlsPort, bed.pki.ca, bed.pki.cert("client")));
    await s.waitFor(/refused .*: certificate serial [0-9A-F]+ names home, none of them in --allow/);
    await sendUdp(s.udpPort, [Buffer.from("<13>allowed")]);
    await until("delivery", () => out.messages.length === 1);
    await sleep(200);
    expect(other.stdout.length).toBe(0);
  });

  test("--pin admits a pinned self-signed certificate without a CA and refuses an unpinned one", async () => {
    const fingerprint = new X509Certificate(readFileSync(join(bed.dir, "selfsigned.pem"))).fingerprint256;
    const s = await server(["--pin", fingerprint]);
    const out = await sink();
    await client(s, { forwardPort: out.port, certName: "selfsigned" });
    const unpinned = track(rawTlsClient(s.tlsPort, bed.pki.ca, bed.pki.cert("selfsigned2")));
    await s.waitFor(/refused .*: certificate serial [0-9A-F]+ is not pinned \(--pin\)/);
    const fromCa = track(rawTlsClient(s.tlsPort, bed.pki.ca, bed.pki.cert("client")));
    await until("two refusals", () => (s.stderr.match(/is not pinned/g) ?? []).length === 2);
    await sendUdp(s.udpPort, [Buffer.from("<13>pinned")]);
    await until("delivery", () => out.messages.length === 1);
    await sleep(200);
    expect(unpinned.stdout.length + fromCa.stdout.length).toBe(0);
  });

  test("a --pin that is not a fingerprint is named", async () => {
    const child = new Child([BUN, "slps.ts", "--pin", "AB:CD"]);
    expect(await child.exit()).toBe(2);
    expect(child.stderr).toBe(
      `slps: --pin "AB:CD": 'ABCD' is not a SHA-256 fingerprint (64 hex digits, colons allowed)\n`,
    );
  });

  test("an --issuer whose RDN holds O and CN together admits that CA's clients, written in either order", async () => {
    for (const issuer of ["/C=US/CN=Multi CA+O=Example", "CN=Multi CA + O=Example,C=US"]) {
      const s = await server(["--ca", join(bed.dir, "multica.pem"), "--issuer", issuer]);
      const out = await sink();
      await client(s, { forwardPort: out.port, certName: "multiclient" });
      await sendUdp(s.udpPort, [Buffer.from("<13>for the multi CA")]);
      await until("delivery", () => out.messages.length === 1);
      expect(s.stderr).not.toContain("is not --issuer");
    }
  });

  // TLS 1.3 finishes on the client's side before the server has checked the client certificate,
  // so slpc sees "connected" and then a close: it should point at the likely cause.
  test("slpc says a close before the server's hello may be its certificate being refused", async () => {
    const s = await server();
    // Later flags win: a long wait between attempts, so that the test sees one.
    const args = ["--retry-min", "5", "--retry-max", "5", "--stdout"];
    const c = track(new Child(bed.slpcCommand(s.tlsPort, args, "stranger")));
    await c.waitFor(/before the server's hello: does the server refuse this certificate\? \(its log says\)/);
    expect(s.stderr).toMatch(/refused 127\.0\.0\.1:\d+: certificate serial [0-9A-F]+ refused/);
  });
});

/** Opens `count` TCP connections to 127.0.0.1:port and resets each as soon as it is open. */
async function resetConnections(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    // terminate() closes with SO_LINGER 0: a reset, not a FIN.
    await Bun.connect({ hostname: "127.0.0.1", port, socket: { open: (socket) => socket.terminate(), data() {} } });
  }
}

/**
 * A TLS client that completes its handshake and then neither reads, writes nor closes, until it
 * is killed: a peer that ignores the server's goodbye.
 */
function silentTlsClient(port: number, creds: { cert: string; key: string }): Child {
  const script = [
    "import socket, ssl, sys, time",
    "context = ssl.create_default_context(cafile=sys.argv[2])",
    "context.load_cert_chain(sys.argv[3], sys.argv[4])",
    "raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
    "connection = context.wrap_socket(raw, server_hostname='localhost')",
    "print('handshake done', flush=True)",
    "time.sleep(600)",
  ].join("\n");
  return bed.track(new Child(["python3", "-c", script, String(port), bed.pki.ca, creds.cert, creds.key]));
}

describe("before authentication", () => {
  test("hundreds of idle and garbage connections cost a real client nothing", async () => {
    const s = await server(["--handshake-timeout", "1"]);
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const attackers: { end(): void }[] = [];
    bed.defer(() => {
      for (const socket of attackers) socket.end();
    });
    const garbage = [
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      // A ClientHello header that lies about its length.
      Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb]),
      Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7919) % 256)),
    ];
    const sender = (async () => {
      for (let i = 0; i < 200; i++) {
        await sendUdp(s.udpPort, [Buffer.from(`<13>during the attack ${i}`)]);
        await sleep(5);
      }
    })();
    for (let i = 0; i < 300; i++) {
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: s.tlsPort,
        socket: { data() {}, error() {} },
      }).catch(() => undefined);
      if (!socket) continue;
      attackers.push(socket);
      if (i % 3 === 0) socket.write(garbage[i % garbage.length]!);
    }
    await sender;
    await until("every message", () => out.messages.length === 200, 15_000);
    expect(out.messages.map(String)).toEqual(Array.from({ length: 200 }, (_, i) => `<13>during the attack ${i}`));
    expect(s.stderr).toMatch(
      /refused \d+ connections: (32 handshakes already pending \(--max-pending\)|over 60 a minute from one address)/,
    );
    await s.waitFor(/no TLS handshake and resume request within 1 s/, 5000);
  });

  test("--handshake-rate closes the connections over the limit from one address at once", async () => {
    const s = await server(["--handshake-rate", "3"]);
    const closed: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await Bun.connect({
        hostname: "127.0.0.1",
        port: s.tlsPort,
        socket: { data() {}, close: () => void closed.push(performance.now() - started) },
      });
    }
    await s.waitFor(/refused 2 connections: over 3 a minute from one address \(--handshake-rate\)/, 3000);
    expect(closed.length).toBe(2);
  });

  test("40 connections reset while slps is busy take no handshake slot: a client still gets its messages", async () => {
    const s = await server();
    // Stopped, slps cannot accept: the connections wait in the kernel's queue and are reset
    // there, so that open() finds them gone, as happens to a busy slps under a scan.
    s.kill("SIGSTOP");
    bed.defer(() => s.kill("SIGCONT"));
    await resetConnections(s.tlsPort, 40);
    s.kill("SIGCONT");
    const out = await sink();
    await client(s, { forwardPort: out.port });
    await sendUdp(s.udpPort, [Buffer.from("<13>still served")]);
    await until("the message", () => out.messages.length === 1);
    expect(out.messages.map(String)).toEqual(["<13>still served"]);
    expect(s.stderr).not.toContain("handshakes already pending");
    expect(s.stderr).not.toContain("host.includes");
    expect((await snapshotOf(s)).phases).toEqual({ handshaking: 0, resuming: 0, streaming: 1, closing: 0 });
    await s.waitFor(/closed \d+ connections that were reset before they could be served/);
  });

  test.each([
    ["--pin", () => ["--pin", fingerprintOf("selfsigned")], /is not pinned \(--pin\)/],
    ["--allow", () => ["--allow", "someone-else"], /none of them in --allow/],
    ["--issuer", () => ["--issuer", "/C=US/O=Example/CN=Example CA B"], /is not --issuer/],
    ["--max-clients", () => ["--max-clients", "1"], /already 1 clients \(--max-clients 1\)/],
  ] as const)("a connection refused by %s is gone within --handshake-timeout", async (flag, args, refused) => {
    const s = await server([...args(), "--handshake-timeout", "2"]);
    const served = flag === "--max-clients" ? 1 : 0;
    if (served) await client(s, { forwardPort: (await sink()).port });
    const peer = silentTlsClient(s.tlsPort, bed.pki.cert("client"));
    await s.waitFor(refused);
    const refusedAt = performance.now();
    expect(peer.proc.exitCode).toBeNull();
    await until(
      () => `slps to let go of the refused connection (${serverSideConnections(s.tlsPort).length} open)`,
      () => serverSideConnections(s.tlsPort).length === served,
      10_000,
    );
    // The closing deadline is min(--handshake-timeout, 2 s); the rest is room for a busy machine.
    expect(performance.now() - refusedAt).toBeLessThan(2000 + 3000);
    const phases = (await snapshotOf(s)).phases;
    expect(phases).toEqual({ handshaking: 0, resuming: 0, streaming: served, closing: 0 });
  });
});

describe("TLS settings", () => {
  /** What openssl s_client negotiates with slps when offered only `flags`, or undefined when refused. */
  function negotiate(port: number, flags: string[]): string | undefined {
    const { cert, key } = bed.pki.cert("client");
    const result = Bun.spawnSync(
      [
        "openssl",
        "s_client",
        "-connect",
        `127.0.0.1:${port}`,
        "-CAfile",
        bed.pki.ca,
        "-cert",
        cert,
        "-key",
        key,
        ...flags,
      ],
      {
        stdin: Buffer.from(""),
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const out = result.stdout.toString();
    return (
      /^New, TLSv1\.3, Cipher is (\S+)/m.exec(out)?.[1] &&
      `${/Cipher is (\S+)/.exec(out)![1]} ${/Server Temp Key: (.*)/.exec(out)?.[1] ?? ""}`.trim()
    );
  }

  test("slps speaks Mozilla's modern profile: TLS 1.3, its three cipher suites, its three groups", async () => {
    const s = await server();
    for (const suite of ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]) {
      expect(negotiate(s.tlsPort, ["-tls1_3", "-ciphersuites", suite])).toStartWith(suite);
    }
    expect(negotiate(s.tlsPort, ["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"])).toBeUndefined();
    expect(negotiate(s.tlsPort, ["-tls1_3", "-groups", "X25519"])).toEndWith("X25519, 253 bits");
    expect(negotiate(s.tlsPort, ["-tls1_3", "-groups", "P-256"])).toEndWith("prime256v1, 256 bits");
    expect(negotiate(s.tlsPort, ["-tls1_3", "-groups", "P-384"])).toEndWith("secp384r1, 384 bits");
    expect(negotiate(s.tlsPort, ["-tls1_3", "-groups", "ffdhe2048"])).toBeUndefined();
    expect(negotiate(s.tlsPort, ["-tls1_2"])).toBeUndefined();
  });
});

describe("an authenticated client that misbehaves (issue 17)", () => {
  const creds = () => ({ ...bed.pki.cert("client"), ca: bed.pki.ca });
  const started = (c: { controls: { type: string }[] }) => c.controls.some((m) => m.type === "start");

  test("a flood of control messages ends in one line and a hang-up; progress every 100 ms does not", async () => {
    const s = await server();
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const steady = await protocolClient(s.tlsPort, creds(), { reads: true });
    const flooder = await protocolClient(s.tlsPort, creds(), { reads: true });
    await until("both clients' start", () => started(steady) && started(flooder));
    const timer = setInterval(() => steady.send({ type: "progress", last: 0 }), 100);
    bed.defer(() => clearInterval(timer));
    const progress = encodeControl({ type: "progress", last: 0 });
    flooder.send(Buffer.concat(Array.from({ length: 5000 }, () => progress)));
    await until("the flooder's hang-up", () => flooder.closed);
    expect(flooder.controls.at(-1)).toEqual({ type: "error", message: "over 50 control messages in a second" });
    const line = /client 127\.0\.0\.1:\d+ \(home\): over 50 control messages in a second; closing\n/g;
    expect(s.stderr.match(line)).toHaveLength(1);
    await sleep(2500);
    expect(steady.closed).toBe(false);
    await sendUdp(s.udpPort, [Buffer.from("<13>still served")]);
    await until("the message at both", () => out.messages.length === 1 && steady.data === 1);
    expect(s.stderr.match(/control messages in a second/g)).toHaveLength(1);
    steady.close();
    flooder.close();
  });

  test("what a client chose reaches slps's log escaped: no forged line, ESC, OSC, C1 or bidi control", async () => {
    const s = await server();
    const forged = "x\nslps: SIGTERM: closing 0 clients and exiting\x1b]0;owned\x07\u009b2J\u202e";
    const peers = [
      // The server id it says it followed, which slps quotes in its gap reason.
      await protocolClient(s.tlsPort, creds(), { resume: { type: "resume", version: 1, server: forged, last: 9 } }),
      // Its filter's match text, which slps describes.
      await protocolClient(s.tlsPort, creds(), { resume: { type: "resume", version: 2, filter: { match: forged } } }),
      // A message type slps does not know, which it names in its error.
      await protocolClient(s.tlsPort, creds(), { resume: { type: forged } as never, reads: true }),
      // A certificate whose CN holds it all, from a CA that signed what it was asked to.
      await protocolClient(s.tlsPort, { ...bed.pki.cert("forger"), ca: bed.pki.ca }),
    ];
    await until(
      () => `slps's lines about all four:\n${s.stderr}`,
      () =>
        ["starts at #1, unknown number", "filters: match", "unknown control message type", "(ev"].every((text) =>
          s.stderr.includes(text),
        ),
    );
    for (const peer of peers) peer.close();
    await s.waitFor(/disconnected[\s\S]*disconnected[\s\S]*disconnected/);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this test looks for
    expect(s.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    for (const line of s.stderr.split("\n")) expect(line).not.toMatch(/^slps: SIGTERM/);
    expect(s.stderr).toContain("x\\nslps: SIGTERM: closing 0 clients and exiting\\x1b]0;owned\\x07\\u009b2J\\u202e");
    expect(s.stderr).toMatch(/\(ev\\x1b\]0;owned\\x07il\\u009b2J\\u202ex\) connected/);
    // Refused by --allow, the certificate's names are quoted escaped too.
    const strict = await server(["--allow", "home"]);
    const refused = await protocolClient(strict.tlsPort, { ...bed.pki.cert("forger"), ca: bed.pki.ca });
    await strict.waitFor(/names ev\\x1b\]0;owned\\x07il\\u009b2J\\u202ex, none of them in --allow\n/);
    refused.close();
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this test looks for
    expect(strict.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
  });
});

describe("a hostile server", () => {
  /** A server that greets like slps and then does `act` once slpc says resume. */
  const hostileServer = (act: (socket: import("bun").Socket<undefined>) => void) =>
    bed.fakeServer(encodeControl({ type: "hello", version: 1, server: "evil", heartbeat: 15, first: 1, next: 1 }), act);

  const slpcAgainst = (port: number, forwardPort: number, extra: string[] = []) =>
    bed.slpc(port, ["--forward", `127.0.0.1:${forwardPort}`, "--retry-max", "0.5", ...extra]);

  test.each([
    [
      "garbage",
      (socket: import("bun").Socket<undefined>) => socket.write(Buffer.from("\x00\xffHELLO garbage\r\n")),
      /malformed frame: expected a length, got byte 0x00; closing the connection/,
    ],
    [
      "an endless frame length",
      (socket: import("bun").Socket<undefined>) => socket.write("9".repeat(100_000)),
      /frame length over 65507 bytes; closing the connection/,
    ],
    [
      "a control frame that is not JSON",
      (socket: import("bun").Socket<undefined>) => socket.write("!5 {{{{{"),
      /protocol error: control message is not JSON; closing/,
    ],
    [
      "data before start",
      (socket: import("bun").Socket<undefined>) => socket.write(encodeFrame(Buffer.from("sneaky"))),
      /protocol error: data before start; closing/,
    ],
  ])("%s ends in one clear line and a reconnect", async (_name, act, expected) => {
    const out = await sink();
    const c = slpcAgainst(hostileServer(act), out.port);
    await c.waitFor(expected);
    await c.waitFor(/retrying in[\s\S]*connecting to/);
    expect(out.messages).toEqual([]);
  });

  test("a flood of heartbeats ends in one clear line and a reconnect", async () => {
    const out = await sink();
    const heartbeats = Buffer.concat(Array.from({ length: 20_000 }, () => encodeControl({ type: "heartbeat" })));
    const c = slpcAgainst(
      hostileServer((socket) => socket.write(Buffer.concat([encodeControl({ type: "start", seq: 1 }), heartbeats]))),
      out.port,
    );
    await c.waitFor(/protocol error: a flood of control messages, over 50 in a second beyond one a message; closing/);
    await c.waitFor(/retrying in/);
  });

  test("a replay far larger than memory, faster than slpc can forward it, leaves slpc's memory bounded", async () => {
    const out = await sink();
    const message = Buffer.alloc(60_000, 0x78);
    const frames = Buffer.concat(Array.from({ length: 50 }, () => encodeFrame(message))); // 3 MB a write
    let written = 0;
    let rest: Buffer | undefined;
    const port = hostileServer((socket) => {
      socket.write(encodeControl({ type: "start", seq: 1 }));
      // 600 MB in all, as fast as slpc takes it: what a write did not take is written first next time.
      const pump = () => {
        while (written < 200) {
          const chunk = rest ?? frames;
          const taken = socket.write(chunk);
          if (taken < chunk.length) {
            rest = chunk.subarray(Math.max(taken, 0));
            return;
          }
          rest = undefined;
          written++;
        }
      };
      pump();
      const timer = setInterval(() => {
        if (written < 200) return pump();
        clearInterval(timer);
        socket.end();
      }, 5);
      bed.defer(() => clearInterval(timer));
    });
    // 200 messages a second: 12 MB/s out, while the server pushes as fast as loopback goes.
    const c = slpcAgainst(port, out.port, ["--forward-rate", "200"]);
    await c.waitFor(/following server evil/);
    let peak = 0;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      peak = Math.max(peak, rss(c.pid));
      await sleep(20);
    }
    expect(written).toBeLessThan(200); // slpc stopped reading, so the server could not push it all
    expect(peak).toBeLessThan(128 * 1024 * 1024);
  });
});
