// slpc through real proxies (issue 21): tinyproxy for HTTP CONNECT, with Basic authentication and
// without, and microsocks for SOCKS5 with a user name and password, each started by the test on a
// loopback high port with files it writes; and a silent proxy of the test's own. Real slps, real
// TLS end to end through the tunnel. In every case, slpc's output must not hold the credentials.
// Where a proxy is missing these tests are skipped with the reason, except under CI
// (SLP_REQUIRE_DAEMONS=1), where it fails the run.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { type ProxyDaemon, startMicrosocks, startTinyproxy } from "./daemons.ts";
import {
  Child,
  freePort,
  type ServerHandle,
  sendUdp,
  sleep,
  steadySender,
  testBed,
  testEnvironment,
  until,
} from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const missing = ["tinyproxy", "microsocks"].filter((program) => !Bun.which(program));
const required = process.env.SLP_REQUIRE_DAEMONS === "1";
if (missing.length > 0 && !required)
  console.warn(`proxy.test.ts: skipping: ${missing.join(" and ")} not installed (bash .ci/install-daemons)`);

const USER = "slp-proxy-user";
const PASSWORD = "Pw-7c1e-secret";
const credentials = { user: USER, password: PASSWORD };
/** Every form the credentials could leak in: as written, %-escaped, and as Basic authentication sends them. */
const SECRETS = [USER, PASSWORD, encodeURIComponent(PASSWORD), btoa(`${USER}:${PASSWORD}`)];
/** No proxy from the test's own environment: each test sets the variables it is about. */
const NO_PROXY_ENV = { https_proxy: "", HTTPS_PROXY: "", all_proxy: "", ALL_PROXY: "", no_proxy: "", NO_PROXY: "" };

async function tinyproxy(opts: Parameters<typeof startTinyproxy>[2] = {}): Promise<ProxyDaemon> {
  return tracked(await startTinyproxy(bed.dir, await freePort(), opts));
}

async function microsocks(withCredentials = true): Promise<ProxyDaemon> {
  return tracked(await startMicrosocks(await freePort(), withCredentials ? credentials : undefined));
}

/** The proxy is killed after the test, and so is each one its restart starts. */
function tracked(proxy: ProxyDaemon): ProxyDaemon {
  bed.track(proxy.child);
  const restart = proxy.restart;
  proxy.restart = async () => {
    await restart();
    bed.track(proxy.child);
  };
  return proxy;
}

const url = (scheme: string, proxy: ProxyDaemon, withCredentials = true) =>
  `${scheme}://${withCredentials ? `${USER}:${PASSWORD}@` : ""}127.0.0.1:${proxy.port}`;

/** slpc printing what `server` sends, with `args` and `env`; killed after the test. */
function slpc(server: ServerHandle | number, args: string[], env: Record<string, string> = {}): Child {
  const port = typeof server === "number" ? server : server.tlsPort;
  return bed.track(new Child(bed.slpcCommand(port, ["--stdout", ...args]), { ...NO_PROXY_ENV, ...env }));
}

/** Waits until `server` has started `count` streams in all: slpc is following it. */
async function following(server: ServerHandle, count = 1): Promise<void> {
  await until(
    () => `${count} streams started by the server:\n${server.stderr}`,
    () => (server.stderr.match(/ starts at #/g)?.length ?? 0) >= count,
  );
}

/** Sends `count` numbered messages to `server`, `<13>NAME N`. */
async function send(server: ServerHandle, name: string, first: number, count: number): Promise<string[]> {
  const texts = Array.from({ length: count }, (_, i) => `<13>${name} ${first + i}`);
  await sendUdp(
    server.udpPort,
    texts.map((text) => Buffer.from(text)),
  );
  return texts;
}

/** The lines slpc printed, each a message as it came. */
const printed = (client: Child) => client.stdout.toString().split("\n").filter(Boolean);

/** Waits until every one of `texts` is printed, then requires that each was printed exactly once. */
async function arrivedOnce(client: Child, texts: string[]): Promise<void> {
  await until(
    () => `${texts.length} messages, ${printed(client).length} printed; slpc said:\n${client.stderr}`,
    () => printed(client).length >= texts.length,
    20_000,
  );
  await sleep(200); // a duplicate would come now
  expect(printed(client)).toEqual(texts);
}

function expectNoCredentials(...outputs: string[]): void {
  for (const output of outputs) for (const secret of SECRETS) expect(output).not.toContain(secret);
}
const outputOf = (client: Child) => client.stderr + client.stdout.toString();

describe.skipIf(missing.length > 0 && !required)("slpc through a proxy", () => {
  test("through tinyproxy with Basic authentication every message arrives once; its log shows the tunnel", async () => {
    const proxy = await tinyproxy({ credentials });
    const server = await bed.server();
    const client = slpc(server, ["--proxy", url("http", proxy)]);
    await following(server);
    await arrivedOnce(client, await send(server, "basic", 1, 300));
    expect(proxy.log()).toContain(`Request (file descriptor`);
    expect(proxy.log()).toContain(`CONNECT localhost:${server.tlsPort} HTTP/1.1`);
    expect(proxy.log()).toContain(`Established connection to host "localhost"`);
    expect(client.stderr).toContain(`connecting to localhost:${server.tlsPort} through proxy http://***@127.0.0.1:`);
    // SIGUSR1's numbers name the server, never the proxy's credentials.
    client.kill("SIGUSR1");
    await client.waitFor(/"program":"slpc"/);
    expectNoCredentials(outputOf(client), server.stderr);
  });

  test("HTTPS_PROXY is honoured: through tinyproxy without authentication", async () => {
    const proxy = await tinyproxy();
    const server = await bed.server();
    const client = slpc(server, [], { HTTPS_PROXY: url("http", proxy, false) });
    await following(server);
    await arrivedOnce(client, await send(server, "env", 1, 200));
    expect(proxy.log()).toContain(`CONNECT localhost:${server.tlsPort} HTTP/1.1`);
    expect(client.stderr).toContain(`through proxy http://127.0.0.1:${proxy.port} from HTTPS_PROXY`);
  });

  test("socks5h through microsocks: the proxy is sent the name, and every message arrives once", async () => {
    const proxy = await microsocks();
    const server = await bed.server();
    const client = slpc(server, ["--proxy", url("socks5h", proxy)]);
    await following(server);
    await arrivedOnce(client, await send(server, "socks5h", 1, 300));
    expect(proxy.log()).toContain(`connected to localhost:${server.tlsPort}`);
    expect(proxy.log()).not.toContain(`connected to 127.0.0.1:${server.tlsPort}`);
    expectNoCredentials(outputOf(client));
  });

  test("ALL_PROXY is honoured: socks5 through microsocks sends the address slpc resolved", async () => {
    const proxy = await microsocks();
    const server = await bed.server();
    const client = slpc(server, [], { ALL_PROXY: url("socks5", proxy) });
    await following(server);
    await arrivedOnce(client, await send(server, "socks5", 1, 200));
    expect(proxy.log()).toContain(`connected to 127.0.0.1:${server.tlsPort}`);
    expect(proxy.log()).not.toContain(`connected to localhost:${server.tlsPort}`);
    expect(client.stderr).toContain(`through proxy socks5://***@127.0.0.1:${proxy.port} from ALL_PROXY`);
    expectNoCredentials(outputOf(client));
  });

  test.each([
    ["tinyproxy", "http", "refused the user name or password (HTTP 401 Unauthorized)"],
    ["microsocks", "socks5h", "refused the user name or password (SOCKS5 authentication status"],
  ] as const)("a wrong password for %s is one line an attempt, with backoff between", async (kind, scheme, said) => {
    const proxy = kind === "tinyproxy" ? await tinyproxy({ credentials }) : await microsocks();
    const server = await bed.server();
    const wrong = url(scheme, proxy).replace(PASSWORD, "Wrong-Pw-4d2a");
    const client = slpc(server, ["--proxy", wrong, "--retry-min", "0.2", "--retry-max", "0.8"]);
    // Four, so that three waits were said: the third is at least twice --retry-min, whatever the jitter.
    await until(`four refusals:\n${client.stderr}`, () => client.stderr.split(said).length - 1 >= 4, 10_000);
    const lines = client.stderr.split("\n").filter(Boolean);
    const refusals = lines.filter((line) => line.includes(said));
    // Each attempt: connecting, the refusal, the wait; nothing else, and the waits grow.
    expect(lines.filter((line) => line.includes("retrying in")).length).toBeGreaterThanOrEqual(refusals.length - 1);
    expect(lines.every((line) => /connecting to|refused the user name|retrying in|warning: --cert/.test(line))).toBe(
      true,
    );
    const waits = lines.flatMap((line) => /retrying in ([\d.]+) s/.exec(line)?.[1] ?? []).map(Number);
    expect(waits[0]).toBeLessThan(Math.max(...waits));
    expect(refusals[0]).toContain(`proxy ${scheme}://***@127.0.0.1:${proxy.port} refused`);
    expect(printed(client)).toEqual([]);
    expectNoCredentials(outputOf(client), "Wrong-Pw-4d2a");
    expect(outputOf(client)).not.toContain("Wrong-Pw-4d2a");
  });

  test.each([
    ["tinyproxy", "http"],
    ["microsocks", "socks5h"],
  ] as const)("%s killed and restarted mid-stream: slpc resumes, nothing lost, nothing twice", async (kind, scheme) => {
    const proxy = kind === "tinyproxy" ? await tinyproxy({ credentials }) : await microsocks();
    const server = await bed.server(["--heartbeat", "0.3"]);
    const client = slpc(server, ["--proxy", url(scheme, proxy), "--dead-after", "2"]);
    await following(server);
    const sender = steadySender(server.udpPort, 200, kind);
    bed.defer(() => sender.stop());
    await until("messages through the proxy", () => printed(client).length >= 100);
    proxy.child.kill("SIGKILL");
    await proxy.child.proc.exited;
    await client.waitFor(/disconnected from/);
    await client.waitFor(/cannot connect to proxy/); // and dials it again while it is down
    await proxy.restart();
    await following(server, 2);
    await sleep(500); // live messages through the new tunnel, after those it resumed with
    sender.stop();
    await arrivedOnce(client, sender.sent);
    expectNoCredentials(outputOf(client));
  });

  test("a proxy that accepts and says nothing is given up after --handshake-timeout and dialled again", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    bed.defer(() => silent.stop(true));
    const client = slpc(12345, [
      "--proxy",
      `http://${USER}:${PASSWORD}@127.0.0.1:${silent.port}`,
      "--handshake-timeout",
      "0.5",
    ]);
    const said = `proxy http://***@127.0.0.1:${silent.port} did not open the tunnel within 0.5 s (--handshake-timeout)`;
    await until(`two timeouts:\n${client.stderr}`, () => client.stderr.split(said).length - 1 >= 2, 10_000);
    expect(client.stderr).toContain("retrying in");
    expectNoCredentials(outputOf(client));
  });

  test("a proxy whose reply has no end is cut off at 8 KiB: one line, then backoff", async () => {
    const endless = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          // Headers without end (4 MiB), as fast as slpc takes them, until it hangs up.
          const header = Buffer.from(`X-Filler: ${"y".repeat(1000)}\r\n`.repeat(64));
          let sent = socket.write("HTTP/1.1 200 Connection established\r\n");
          const pump = () => {
            while (sent < 4 * 1024 * 1024) {
              const taken = socket.write(header);
              if (taken <= 0) return void setTimeout(pump, 5);
              sent += taken;
            }
          };
          pump();
        },
      },
    });
    bed.defer(() => endless.stop(true));
    const client = slpc(12345, ["--proxy", `http://${USER}:${PASSWORD}@127.0.0.1:${endless.port}`]);
    const said = `proxy http://***@127.0.0.1:${endless.port} sent a reply of over 8192 bytes`;
    await until(`two cut-offs:\n${client.stderr}`, () => client.stderr.split(said).length - 1 >= 2, 10_000);
    expect(client.stderr).toContain("retrying in");
    expectNoCredentials(outputOf(client));
  });

  test("a proxy that says 200, then sends HTTP, not the server's TLS, is named; no certificate is blamed", async () => {
    // What a proxy does that answers before it has reached the server and then reports the failure.
    const liar = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          socket.write("HTTP/1.1 200 Connection established\r\n\r\n");
          setTimeout(() => socket.write("HTTP/1.1 502 Bad Gateway\r\n\r\n"), 50);
        },
      },
    });
    bed.defer(() => liar.stop(true));
    const client = slpc(12345, ["--proxy", `http://${USER}:${PASSWORD}@127.0.0.1:${liar.port}`]);
    const proxy = `http://***@127.0.0.1:${liar.port}`;
    const said = `TLS handshake failed through proxy ${proxy}, which said it opened the tunnel`;
    await until(`two failures:\n${client.stderr}`, () => client.stderr.split(said).length - 1 >= 2, 10_000);
    expect(client.stderr).not.toContain("server certificate refused");
    expectNoCredentials(outputOf(client));
  });

  test.each([
    ["tinyproxy refuses a port it does not allow", "refused the tunnel (HTTP 403 Access violation)"],
    ["tinyproxy cannot reach the server", "could not open the tunnel to the server (HTTP 500 Unable to connect)"],
    ["microsocks cannot reach the server", "could not open the tunnel: SOCKS5 reply 5, connection refused"],
    ["nothing listens where the proxy should be", "cannot connect to proxy http://***@127.0.0.1:"],
  ] as const)("%s: one line naming why", async (what, said) => {
    const closed = await freePort();
    let proxyUrl: string;
    if (what.startsWith("microsocks")) proxyUrl = url("socks5h", await microsocks());
    else if (what.startsWith("nothing")) proxyUrl = `http://${USER}:${PASSWORD}@127.0.0.1:${await freePort()}`;
    else proxyUrl = url("http", await tinyproxy({ credentials, connectPorts: what.includes("refuses") ? [443] : [] }));
    const client = slpc(closed, ["--proxy", proxyUrl]);
    await until(`two refusals:\n${client.stderr}`, () => client.stderr.split(said).length - 1 >= 2, 10_000);
    expect(client.stderr).toContain("retrying in");
    expectNoCredentials(outputOf(client));
  });

  test("NO_PROXY and --proxy '' each send a server around the environment's proxy", async () => {
    const server = await bed.server();
    const nowhere = `http://${USER}:${PASSWORD}@127.0.0.1:${await freePort()}`;
    const cases: [string, string[], Record<string, string>][] = [
      ["NO_PROXY with the host", [], { HTTPS_PROXY: nowhere, NO_PROXY: "example.org,localhost" }],
      ["no_proxy with the host and port", [], { ALL_PROXY: nowhere, no_proxy: `localhost:${server.tlsPort}` }],
      ["--proxy ''", ["--proxy", ""], { HTTPS_PROXY: nowhere, ALL_PROXY: nowhere }],
      ["SLPC_PROXY=''", [], { SLPC_PROXY: "", HTTPS_PROXY: nowhere }],
    ];
    let streams = 0;
    for (const [what, args, env] of cases) {
      const client = slpc(server, args, env);
      await following(server, ++streams);
      const texts = await send(server, what.replace(/\W+/g, "-"), 1, 20);
      await arrivedOnce(client, texts);
      expect(client.stderr).not.toContain("through proxy");
      client.kill("SIGKILL");
      await client.proc.exited;
    }
    // And NO_PROXY for another host leaves the proxy in place: here, one that is not there.
    const client = slpc(server, [], { HTTPS_PROXY: nowhere, NO_PROXY: "example.org" });
    await client.waitFor(/cannot connect to proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+ for localhost:/);
  });

  test("two servers, one through the proxy (its --proxy follows it) and one direct", async () => {
    const proxy = await tinyproxy({ credentials });
    const proxied = await bed.server();
    const direct = await bed.server();
    const client = slpc(proxied, [
      "--proxy",
      url("http", proxy),
      "--server",
      `localhost:${direct.tlsPort}`,
      "--proxy",
      "",
    ]);
    await following(proxied);
    await following(direct);
    const texts = [...(await send(proxied, "proxied", 1, 100)), ...(await send(direct, "direct", 1, 100))];
    await until(`200 messages:\n${client.stderr}`, () => printed(client).length >= 200);
    await sleep(200);
    expect(printed(client).sort()).toEqual(texts.sort());
    expect(proxy.log()).toContain(`CONNECT localhost:${proxied.tlsPort} HTTP/1.1`);
    expect(proxy.log()).not.toContain(`CONNECT localhost:${direct.tlsPort}`);
    expect(client.stderr).toContain(`connecting to localhost:${direct.tlsPort}\n`);
    expectNoCredentials(outputOf(client));
  });

  test("through the tunnel the server's certificate gets the same checks: a wrong name is refused", async () => {
    const proxy = await tinyproxy({ credentials });
    const server = await bed.server();
    const client = slpc(server, ["--proxy", url("http", proxy), "--servername", "other.example"]);
    await client.waitFor(/server certificate refused: .*other\.example/);
    await send(server, "refused", 1, 10);
    await sleep(300);
    expect(printed(client)).toEqual([]);
    expect(proxy.log()).toContain(`CONNECT localhost:${server.tlsPort} HTTP/1.1`);
    expectNoCredentials(outputOf(client));
  });
});

describe("a proxy URL's credentials at start", () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    Bun.spawnSync(bed.slpcCommand(12345, ["--stdout", ...args]), {
      env: { ...testEnvironment(), ...NO_PROXY_ENV, ...env },
    });

  test.each([
    ["--proxy without a port", ["--proxy", `http://${USER}:${PASSWORD}@127.0.0.1`], {}, "--proxy"],
    [
      "--proxy after a --server",
      ["--server", "localhost:1", "--proxy", `gopher://${USER}:${PASSWORD}@h:1`],
      {},
      "--proxy",
    ],
    ["SLPC_PROXY", [], { SLPC_PROXY: `socks5://${USER}:${PASSWORD}@h:1/x` }, "SLPC_PROXY"],
    ["HTTPS_PROXY", [], { HTTPS_PROXY: `https://${USER}:${PASSWORD}@h:1` }, "HTTPS_PROXY"],
  ] as const)("a malformed proxy URL in %s is exit 2, one line, without the credentials", (_what, args, env, name) => {
    const result = run([...args], env);
    const stderr = result.stderr.toString();
    expect(result.exitCode).toBe(2);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toContain(name);
    expect(stderr).toContain("***@");
    expectNoCredentials(stderr, result.stdout.toString());
  });

  test("--help does not show a proxy set in SLPC_PROXY", () => {
    const result = run(["--help"], { SLPC_PROXY: `http://${USER}:${PASSWORD}@127.0.0.1:3128` });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.toString()).toContain("--proxy URL");
    expectNoCredentials(result.stdout.toString(), result.stderr.toString());
  });
});
