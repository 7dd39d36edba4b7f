// A fresh review of issue 9 against the running programs: a refused client, a daemon that is
// down and a CRL past its nextUpdate (flag values the runtime cannot use are in test/flags.test.ts,
// a resume point slpc keeps but slps refused in test/state.test.ts). Each test is one finding; it
// fails on the code it was written against.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, Child, type ServerHandle, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const { server, sink, track, slpc } = bed;

const streams = (s: ServerHandle) => s.stderr.match(/ starts at #/g)?.length ?? 0;

describe("a refused client", () => {
  // TLS 1.3 finishes on the client's side before the server has checked the client certificate,
  // so slpc sees "connected" and then a close: it should point at the likely cause.
  test("slpc says a close before the server's hello may be its certificate being refused", async () => {
    const s = await server();
    const { cert, key } = bed.pki.cert("stranger");
    const c = track(
      new Child([
        BUN,
        "slpc.ts",
        "--server",
        `localhost:${s.tlsPort}`,
        "--ca",
        bed.pki.ca,
        "--cert",
        cert,
        "--key",
        key,
        "--retry-min",
        "5",
        "--retry-max",
        "5",
        "--stdout",
      ]),
    );
    await c.waitFor(/before the server's hello: does the server refuse this certificate\? \(its log says\)/);
    expect(s.stderr).toMatch(/refused 127\.0\.0\.1:\d+: certificate serial [0-9A-F]+ refused/);
  });
});

describe("the local daemon is down", () => {
  // The docs: "When sends to --forward fail, slpc says so ..., keeps the messages, stops reading
  // the server, and tries again every second." Sends to a closed local port do not throw: the
  // kernel's ICMP reply comes back as an error event, and each message is counted delivered.
  test("messages sent while the daemon is down are kept and arrive once it is up", async () => {
    const s = await server();
    const out = await sink();
    const port = out.port;
    out.close();
    const c = slpc(s.tlsPort, ["--forward", `127.0.0.1:${port}`]);
    await until(
      () => `a stream:\n${s.stderr}`,
      () => streams(s) > 0,
    );
    for (let i = 0; i < 20; i++) {
      await sendUdp(s.udpPort, [Buffer.from(`<13>down ${i}`)]);
      await sleep(50);
    }
    await c.waitFor(/is the syslog daemon listening\?/);
    const arrived: string[] = [];
    const up = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port,
      socket: { data: (_socket, data) => void arrived.push(Buffer.from(data).toString()) },
    });
    bed.defer(() => up.close());
    await sendUdp(s.udpPort, [Buffer.from("<13>after")]);
    await until(
      () => `the last message:\n${arrived.join("\n")}`,
      () => arrived.includes("<13>after"),
    );
    await sleep(1500); // anything kept is tried again every second
    const down = arrived.filter((text) => text.startsWith("<13>down"));
    expect(down).toEqual(Array.from({ length: 20 }, (_, i) => `<13>down ${i}`));
  });
});

describe("--crl", () => {
  /** A CRL from the test's root CA whose nextUpdate passed in 2020: what a CRL nobody renewed becomes. */
  function expiredRootCrl(): string {
    const dir = join(bed.dir, "expired-crl");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "index.txt"), "");
    writeFileSync(join(dir, "crlnumber"), "01\n");
    writeFileSync(
      join(dir, "ca.cnf"),
      `[ca]\ndefault_ca = d\n[d]\ndatabase = ${dir}/index.txt\n` +
        `crlnumber = ${dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 1\n`,
    );
    const crl = join(dir, "crl.pem");
    const made = Bun.spawnSync(
      [
        "openssl",
        "ca",
        "-config",
        join(dir, "ca.cnf"),
        "-keyfile",
        join(bed.dir, "root.key"),
        "-cert",
        bed.pki.ca,
        "-gencrl",
        "-crl_lastupdate",
        "20200101000000Z",
        "-crl_nextupdate",
        "20200201000000Z",
        "-out",
        crl,
      ],
      { stderr: "pipe" },
    );
    expect(made.exitCode).toBe(0);
    return crl;
  }

  // certs/revoke.sh writes CRLs good for 365 days. Once one is past its nextUpdate, OpenSSL
  // refuses every client under that CA (CRL_HAS_EXPIRED), and slps, which warns 14 days before
  // its own certificate expires, says nothing at start: a lockout that arrives a year later.
  test("a --crl past its nextUpdate is named at start, before it refuses every client", async () => {
    const s = await server(["--crl", expiredRootCrl()]);
    await sleep(500); // the start's warnings follow the line that says it serves
    expect(s.stderr).toMatch(/--crl[^\n]*(expired|out of date|nextUpdate)/i);
  });
});
