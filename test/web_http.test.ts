// slpc --web over HTTP, without a browser: real slps and slpc processes, real TLS and UDP, and the
// view's port spoken to with exact bytes. Who gets in (the token, the cookie it becomes, Host,
// Origin, Sec-Fetch-Site, GET only), the bounds on what a viewer controls (its request head, idle
// and slow connections, how many at once, how fast, a viewer that stops reading), resume with
// Last-Event-ID, the JSON lines for curl as docs/web.md shows them, the flags, and the compiled
// binary. What a browser does with the page is test/web.test.ts.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, Child, cpuSeconds, freePort, ROOT, sendUdp, sleep, testBed, until } from "./kit.ts";
import {
  get,
  numbersOf,
  oneToN,
  raw,
  rawConnection,
  sseEvents,
  sseMessages,
  startView,
  steadyStamped,
  timedSink,
} from "./web_kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
const server = () => bed.server(["--heartbeat", "1"]);
const SSE = { Accept: "text/event-stream" };

describe("who gets in", () => {
  test("no token, or a wrong one, is 401 for every path; the view says how to get in", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    for (const path of ["/", "/page.js", "/page.css", "/events", "/nothing"]) {
      const answer = await raw(view.port, get(view.port, path));
      expect([path, answer.status]).toEqual([path, 401]);
      expect(answer.body).toContain("open the address slpc printed at start");
      expect(answer.closed).toBe(true);
    }
    for (const headers of [
      { Cookie: `slpc_web_${view.port}=${view.token}x` } as Record<string, string>,
      { Authorization: `Bearer ${view.token.slice(1)}` },
      { Cookie: `slpc_web_${view.port + 1}=${view.token}` },
    ]) {
      expect((await raw(view.port, get(view.port, "/", headers))).status).toBe(401);
    }
    expect((await raw(view.port, get(view.port, "/?token=wrong"))).status).toBe(401);
    // The token in the address is for the page alone: the stream takes it from the cookie or the header.
    expect((await raw(view.port, get(view.port, `/events?token=${view.token}`))).status).toBe(401);
  });

  test("the token in the address becomes a cookie (HttpOnly, SameSite=Strict) and leaves the address", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const first = await raw(view.port, get(view.port, `/?q=sshd&token=${view.token}&severity=err`));
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe("/?q=sshd&severity=err");
    expect(first.headers.get("set-cookie")).toBe(
      `slpc_web_${view.port}=${view.token}; HttpOnly; SameSite=Strict; Path=/`,
    );
    const page = await raw(view.port, get(view.port, "/?q=sshd", { Cookie: `slpc_web_${view.port}=${view.token}` }));
    expect(page.status).toBe(200);
    expect(page.body).toBe(readFileSync(join(ROOT, "slpc/web/page/index.html"), "utf8"));
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    const script = await raw(view.port, get(view.port, "/page.js", { Authorization: `Bearer ${view.token}` }));
    expect([script.status, script.headers.get("content-type")]).toEqual([200, "text/javascript; charset=utf-8"]);
    // The token is printed once, in the start line, and nowhere else.
    expect(view.slpc.stderr.split(view.token)).toHaveLength(2);
  });

  test("a Host that is not the view's address is refused (DNS rebinding), and so is another origin", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const auth = { Authorization: `Bearer ${view.token}` };
    for (const host of [
      "evil.example",
      `evil.example:${view.port}`,
      `localhost:${view.port}`,
      `127.0.0.1:${view.port + 1}`,
    ]) {
      const answer = await raw(view.port, get(view.port, "/events", { ...auth, Host: host }));
      expect([host, answer.status]).toEqual([host, 421]);
      expect(answer.body).not.toContain("{");
    }
    for (const origin of [`http://127.0.0.1:${view.port + 1}`, "http://evil.example", "null"]) {
      expect((await raw(view.port, get(view.port, "/events", { ...auth, Origin: origin }))).status).toBe(403);
    }
    for (const site of ["same-site", "cross-site"]) {
      expect((await raw(view.port, get(view.port, "/events", { ...auth, "Sec-Fetch-Site": site }))).status).toBe(403);
    }
    const missing = `GET /events HTTP/1.1\r\nAuthorization: Bearer ${view.token}\r\n\r\n`;
    expect((await raw(view.port, missing)).status).toBe(421);
  });

  test("only GET and HEAD are served; HEAD gets no body", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const auth = `Authorization: Bearer ${view.token}\r\nHost: 127.0.0.1:${view.port}`;
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT"]) {
      const answer = await raw(view.port, `${method} / HTTP/1.1\r\n${auth}\r\nContent-Length: 0\r\n\r\n`);
      expect([method, answer.status, answer.headers.get("allow")]).toEqual([method, 405, "GET, HEAD"]);
    }
    const head = await raw(view.port, `HEAD / HTTP/1.1\r\n${auth}\r\n\r\n`);
    expect([head.status, head.body]).toEqual([200, ""]);
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(500);
  });
});

describe("what a viewer's requests cost", () => {
  test("a head over 8 KiB is 431, and a malformed one 400; both close the connection", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const long = await raw(view.port, `GET / HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`);
    expect([long.status, long.closed]).toEqual([431, true]);
    const bad = await raw(view.port, "GET / HTTP/1.1\r\n folded\r\n\r\n");
    expect([bad.status, bad.closed]).toEqual([400, true]);
    const filter = await raw(
      view.port,
      get(view.port, `/events?q=${"x".repeat(300)}`, { Authorization: `Bearer ${view.token}` }),
    );
    expect([filter.status, filter.body]).toEqual([400, "slpc --web: q: 300 bytes long; at most 256\n"]);
  });

  test("a header of 8 KiB with blanks inside costs slpc no more than a plain one: no backtracking", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    // Blanks between two letters: a pattern that trims them by backtracking takes time quadratic in
    // the blanks, before any token is asked for (88 ms a head on this machine, when it did).
    const hostile = `GET / HTTP/1.1\r\nX: a${" ".repeat(8000)}a\r\n\r\n`;
    const before = cpuSeconds(view.slpc.proc.pid);
    for (let i = 0; i < 20; i++) expect((await raw(view.port, hostile)).status).toBe(421);
    // 20 heads: under 25 ms of CPU each, a generous bound for a noisy shared machine.
    expect(cpuSeconds(view.slpc.proc.pid) - before).toBeLessThan(0.5);
  });

  test("a connection that sends no request, or one a byte at a time, is closed 10 s after it opened", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const idle = await rawConnection(view.port);
    const slow = await rawConnection(view.port);
    const opened = performance.now();
    const trickle = setInterval(() => slow.send("G"), 500);
    bed.defer(() => clearInterval(trickle));
    await until("both to be closed", () => idle.closed && slow.closed, 15_000);
    expect(performance.now() - opened).toBeGreaterThan(9000);
    expect(idle.text).toBe("");
  });

  test("32 connections waiting: the oldest is closed for a new one, so idle ones cannot keep anyone out", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const viewer = await rawConnection(view.port);
    viewer.send(get(view.port, "/events", { ...SSE, Authorization: `Bearer ${view.token}` }));
    await until("the viewer's stream", () => viewer.text.includes("retry:"));
    // Anyone who reaches the port, token or none: 32 connections that send nothing, renewed as each
    // is closed after 10 s, three a second, well within 600 a minute.
    const waiting: Awaited<ReturnType<typeof rawConnection>>[] = [];
    for (let i = 0; i < 32; i++) waiting.push(await rawConnection(view.port));
    await sleep(200);
    expect(waiting.filter((c) => c.closed)).toHaveLength(0);
    const answer = await raw(view.port, get(view.port, "/page.css", { Authorization: `Bearer ${view.token}` }));
    expect(answer.status).toBe(200);
    await until("the oldest waiting to be closed", () => waiting[0]!.closed, 2000);
    expect(waiting[0]!.text).toBe("");
    expect(waiting.slice(1).filter((c) => c.closed)).toHaveLength(0);

    for (const c of waiting) c.close();
    await sendUdp(s.udpPort, [Buffer.from("<13>still here")]);
    await until("the viewer to get the message", () => viewer.text.includes("still here"));
    expect(viewer.closed).toBe(false);
    viewer.close();
    await until("the line about it", () => /closed 1 connections before their request/.test(view.slpc.stderr));
  });

  test("--web-viewers: one more stream is 503 with Retry-After, until one leaves", async () => {
    const s = await server();
    const view = await startView(bed, [s], undefined, ["--web-viewers", "2"]);
    const stream = () =>
      rawConnection(view.port).then((c) => {
        c.send(get(view.port, "/events", { Authorization: `Bearer ${view.token}` }));
        return c;
      });
    const [a, b] = [await stream(), await stream()];
    await until("two streams", () => a.text.startsWith("HTTP/1.1 200") && b.text.startsWith("HTTP/1.1 200"));
    const third = await stream();
    await until("the third to be refused", () => third.closed);
    expect(third.response().status).toBe(503);
    expect(third.response().headers.get("retry-after")).toBe("10");
    expect(third.response().body).toContain("2 viewers follow it already (--web-viewers)");
    a.close();
    await sleep(200);
    const fourth = await stream();
    await until("the fourth to stream", () => fourth.text.startsWith("HTTP/1.1 200"));
    b.close();
    fourth.close();
  });

  test("a viewer that sends more than 16 KiB after its request is cut", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const viewer = await rawConnection(view.port);
    viewer.send(get(view.port, "/events", { Authorization: `Bearer ${view.token}` }));
    await until("its stream", () => viewer.text.startsWith("HTTP/1.1 200"));
    viewer.send("x".repeat(10_000));
    await sleep(200);
    expect(viewer.closed).toBe(false);
    viewer.send("x".repeat(10_000));
    await until("it to be cut", () => viewer.closed);
    await view.slpc.waitFor(/--web: viewer 127\.0\.0\.1:\d+ sent 20000 bytes after its request: cut/);
  });

  test("one address may open 600 connections a minute; the next are closed before any work", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const auth = { Authorization: `Bearer ${view.token}` };
    let served = 0;
    for (let i = 0; i < 600; i += 20) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => raw(view.port, get(view.port, "/page.css", auth))),
      );
      served += answers.filter((answer) => answer.status === 200).length;
    }
    expect(served).toBe(600);
    const over = await raw(view.port, get(view.port, "/page.css", auth));
    expect([over.status, over.closed]).toEqual([0, true]);
    await view.slpc.waitFor(/--web: closed 1 connections before their request: over 600 a minute from one address/);
  });
});

describe("the stream", () => {
  test("Last-Event-ID resumes right after the last event a viewer had: no gap, no duplicate", async () => {
    const s = await server();
    const view = await startView(bed, [s]);
    const auth = { ...SSE, Authorization: `Bearer ${view.token}` };
    await sendUdp(
      s.udpPort,
      oneToN(50).map((n) => Buffer.from(`<13>msg resume ${n} at=0`)),
    );
    const first = await rawConnection(view.port);
    first.send(get(view.port, "/events", auth));
    await until("50 messages", () => sseMessages(first.text).length === 50);
    const lastId = sseEvents(first.text).at(-1)!.id!;
    expect(lastId).toMatch(/^[0-9a-f]{1,16}-50$/);
    first.close();
    await sendUdp(
      s.udpPort,
      oneToN(20).map((n) => Buffer.from(`<13>msg resume ${50 + n} at=0`)),
    );
    const messagesOf = (text: string) =>
      numbersOf(
        sseMessages(text).map((m) => m.message),
        "resume",
      );
    const again = await rawConnection(view.port);
    again.send(get(view.port, "/events", { ...auth, "Last-Event-ID": lastId }));
    await until("20 messages", () => sseMessages(again.text).length >= 20);
    await sleep(300);
    expect(messagesOf(again.text)).toEqual(oneToN(70).slice(50));
    // From the middle of an event too: each message's id is the run and its number.
    const middle = await rawConnection(view.port);
    middle.send(get(view.port, "/events", { ...auth, "Last-Event-ID": lastId.replace(/-50$/, "-30") }));
    await until("40 messages", () => sseMessages(middle.text).length >= 40);
    await sleep(300);
    expect(messagesOf(middle.text)).toEqual(oneToN(70).slice(30));
    // The page passes it in the address after a reload, since a new EventSource cannot set the header.
    const reloaded = await rawConnection(view.port);
    const latest = sseEvents(again.text).at(-1)!.id!;
    reloaded.send(get(view.port, `/events?lastEventId=${encodeURIComponent(latest)}`, auth));
    await sleep(500);
    expect(reloaded.response().status).toBe(200);
    expect(sseMessages(reloaded.text)).toEqual([]);
    // Another run's id, or nonsense, says that what came between is not known, then sends all it holds.
    const other = await rawConnection(view.port);
    other.send(get(view.port, "/events", { ...auth, "Last-Event-ID": "ffffffff-3" }));
    await until("every message", () => sseMessages(other.text).length >= 70);
    expect(sseEvents(other.text)[0]).toEqual({ id: undefined, event: "skipped", data: [{ skipped: null }] });
  });

  test("curl, as docs/web.md shows it, gets JSON lines of --format json's schema, filtered", async () => {
    const s = await server();
    const port = await freePort();
    const tokenFile = join(bed.dir, "web-token");
    writeFileSync(tokenFile, "0123456789abcdef0123456789abcdef\n");
    const slpc = bed.slpc(s.tlsPort, ["--format", "json", "--web", `127.0.0.1:${port}`, "--web-token-file", tokenFile]);
    await slpc.waitFor(/following server/);
    await sendUdp(s.udpPort, [
      Buffer.from("<36>Jan  5 10:11:12 web1 sshd[7]: Failed password for root"),
      Buffer.from("<38>Jan  5 10:11:13 web1 sshd[7]: Accepted key for alice"),
      Buffer.from("<35>Jan  5 10:11:14 web1 cron[9]: error"),
    ]);
    await until("slpc to print three", () => slpc.stdout.toString().split("\n").length > 3);
    const docs = readFileSync(join(ROOT, "docs/web.md"), "utf8");
    const example = /```sh\n(curl [^`]*?)\n```/.exec(docs)?.[1];
    expect(example).toBeDefined();
    const command = example!.replaceAll("8514", String(port)).replaceAll("/etc/slpc/web-token", tokenFile);
    const curl = bed.track(new Child(["bash", "-c", command]));
    await until("two lines from curl", () => curl.stdout.toString().split("\n").length > 2);
    const lines = curl.stdout.toString().trim().split("\n");
    const printed = slpc.stdout.toString().trim().split("\n");
    // The same objects as --format json prints, but for `received`, which each makes as it writes.
    const sameBut = (line: string) => ({ ...JSON.parse(line), received: undefined });
    expect(lines.map(sameBut)).toEqual([printed[0]!, printed[2]!].map(sameBut));
  });

  test("a viewer that stops reading delays nothing: --forward gets every message; the viewer is cut", async () => {
    const s = await server();
    const sink = await timedSink(bed);
    const view = await startView(bed, [s], sink.port, ["--web-history", "1MiB"]);
    const stalled = await rawConnection(view.port);
    stalled.send(get(view.port, "/events", { ...SSE, Authorization: `Bearer ${view.token}` }));
    await until("its stream", () => stalled.text.includes("retry:"));
    stalled.stopReading();
    const sender = steadyStamped(bed, s, "stall", 10_000, 30_000);
    await until(
      () => `30,000 at the sink (${sink.arrived.length})`,
      () => sink.arrived.length >= 30_000,
      20_000,
    );
    const numbers = numbersOf(
      sink.arrived.map((a) => a.text),
      "stall",
    );
    expect(numbers).toEqual(oneToN(sender.sent));
    const delays = sink.arrived.map(({ text, at }) => at - Number(/at=([\d.]+)/.exec(text)![1]));
    expect(Math.max(...delays)).toBeLessThan(1000);
    // Whether it was also told it skipped depends on how much the kernel's socket buffers took before
    // it stopped: once in a CI run none was skipped by the time it was cut.
    await view.slpc.waitFor(/--web: viewer 127\.0\.0\.1:\d+ took nothing for 10 s: cut/, 20_000);
    expect(sink.drops()).toBe(0);
  });
});

describe("the flags", () => {
  /** slpc with `args` after a server and --stdout, not waited for: it should refuse them. */
  const refused = async (args: string[], env: Record<string, string> = {}) => {
    const child = bed.track(new Child(bed.slpcCommand(1, ["--stdout", ...args]), env));
    const code = await child.exit(10_000);
    return { code, lines: child.stderr.trim().split("\n") };
  };

  test("each value that cannot work is one line and exit 2, before a socket opens", async () => {
    const dir = join(bed.dir, "flags");
    mkdirSync(dir, { recursive: true });
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const short = file("short", "abc\n");
    const signs = file("signs", "a+b/c=d".repeat(4));
    const big = file("big", "a".repeat(5000));
    const port = await freePort();
    const web = `127.0.0.1:${port}`;
    for (const [args, line] of [
      [["--web", "127.0.0.1"], '--web "127.0.0.1": expected HOST:PORT (the port is missing)'],
      [["--web", "127.0.0.1:0x1"], '--web "127.0.0.1:0x1": expected HOST:PORT'],
      [["--web", "nosuch.invalid:8514"], "--web nosuch.invalid:8514: cannot resolve nosuch.invalid"],
      [
        ["--web", "192.0.2.1:8514"],
        "--web 192.0.2.1:8514: not a loopback address: other machines reach it, so its token",
      ],
      [
        ["--web", "0.0.0.0:8514"],
        "--web 0.0.0.0:8514: every address of this machine: no browser's Host header names it",
      ],
      [["--web", "0.0.0.0:8514", "--web-host", "logs"], "--web 0.0.0.0:8514: not a loopback address"],
      [["--web", web, "--web-token-file", join(dir, "none")], `--web-token-file ${join(dir, "none")}: no such file`],
      [["--web", web, "--web-token-file", dir], `--web-token-file ${dir}: not a regular file`],
      [["--web", web, "--web-token-file", "/dev/zero"], "--web-token-file /dev/zero: not a regular file"],
      [
        ["--web", web, "--web-token-file", big],
        `--web-token-file ${big}: 5000 bytes; a token file holds one short line`,
      ],
      [
        ["--web", web, "--web-token-file", short],
        `--web-token-file ${short}: the token must be at least 16 characters`,
      ],
      [
        ["--web", web, "--web-token-file", signs],
        `--web-token-file ${signs}: the token must be one line of at most 256`,
      ],
      [["--web", web, "--web-history", "1KiB"], '--web-history "1KiB": must be at least 1MiB'],
      [["--web", web, "--web-history", "2GiB"], '--web-history "2GiB": must be at most 1GiB'],
      [["--web", web, "--web-history", "lots"], '--web-history "lots": expected a byte count'],
      [["--web", web, "--web-viewers", "0"], '--web-viewers "0": must be 1 to 1000'],
      [["--web", web, "--web-viewers", "1001"], '--web-viewers "1001": must be 1 to 1000'],
      [["--web", web, "--web-host", "a b"], "--web-host \"a b\": 'a b' is not a host name or address"],
      // Its last label is digits: an address or nothing to a browser, so no Host ever names it.
      [["--web", web, "--web-host", "logs.1"], "--web-host \"logs.1\": 'logs.1' is not a host name or address"],
      [
        ["--web", web, "--web-host", "logs:443"],
        "--web-host \"logs:443\": 'logs:443' is not a host name or address (no port",
      ],
      [["--web-token-file", short], "--web-token-file: only with --web HOST:PORT, which turns the live view on"],
      [["--web-viewers", "3"], "--web-viewers: only with --web HOST:PORT"],
    ] as [string[], string][]) {
      const { code, lines } = await refused(args);
      expect([args, code, lines]).toEqual([args, 2, [expect.stringContaining(`slpc: ${line}`)]]);
    }
    const { code, lines } = await refused([], { SLPC_WEB_HOST: "logs" });
    expect([code, lines]).toEqual([
      2,
      ["slpc: SLPC_WEB_HOST: only with --web HOST:PORT, which turns the live view on"],
    ]);
  });

  test("a port in use is one line and exit 1, as slps's --listen", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    bed.defer(() => taken.stop(true));
    const { code, lines } = await refused(["--web", `127.0.0.1:${taken.port}`]);
    expect([code, lines]).toEqual([
      1,
      [
        `slpc: cannot listen on 127.0.0.1:${taken.port} (--web): the address is already in use; ` +
          "pick another with --web",
      ],
    ]);
  });

  test("every value accepted works: the bounds of each flag, IPv6, a name, every address with --web-host", async () => {
    const s = await server();
    const tokenFile = join(bed.dir, "token-accepted");
    writeFileSync(tokenFile, `${"t".repeat(256)}\n`);
    const cases: [string, string[], (port: number) => string][] = [
      ["127.0.0.1", ["--web-history", "1MiB", "--web-viewers", "1"], (port) => `127.0.0.1:${port}`],
      ["127.0.0.1", ["--web-history", "1GiB", "--web-viewers", "1000"], (port) => `127.0.0.1:${port}`],
      [
        "127.0.0.1",
        ["--web-token-file", tokenFile, "--web-host", "::1,logs.example"],
        (port) => `logs.example:${port}`,
      ],
      ["127.0.0.1", ["--web-host", "view.example"], () => "view.example"],
      // Every address: with a token of the operator's, and the name browsers use.
      ["0.0.0.0", ["--web-token-file", tokenFile, "--web-host", "127.0.0.1"], (port) => `127.0.0.1:${port}`],
    ];
    for (const [listen, args, host] of cases) {
      const port = await freePort();
      const slpc = bed.slpc(s.tlsPort, ["--stdout", "--web", `${listen}:${port}`, ...args]);

      await slpc.waitFor(/--web: the live view is at/);
      const token = args.includes("--web-token-file") ? "t".repeat(256) : /token=(\S+)/.exec(slpc.stderr)![1]!;
      const answer = await raw(port, get(port, "/page.css", { Host: host(port), Authorization: `Bearer ${token}` }));
      expect([args, answer.status]).toEqual([args, 200]);
      slpc.kill();
    }
    for (const [listen, host] of [
      ["[::1]", (port: number) => `[::1]:${port}`],
      ["localhost", (port: number) => `localhost:${port}`],
    ] as const) {
      const port = await freePort();
      const child = bed.track(new Child(bed.slpcCommand(s.tlsPort, ["--stdout"]), { SLPC_WEB: `${listen}:${port}` }));
      await child.waitFor(/--web: the live view is at/);
      const token = /token=(\S+)/.exec(child.stderr)![1]!;
      const connect = listen === "[::1]" ? "::1" : "127.0.0.1";
      const answer = await rawOn(
        connect,
        port,
        get(port, "/page.css", { Host: host(port), Authorization: `Bearer ${token}` }),
      );
      expect([listen, answer]).toEqual([listen, expect.stringMatching(/^HTTP\/1\.1 200 OK/)]);
    }
  });
});

describe("the address slpc prints", () => {
  test("opens the view however --web spelled its address: the Host a browser sends for it is the view's", async () => {
    const s = await server();
    // Each spelling names a loopback address; a browser writes it the one way URLs do (127.0.0.1, [::1]).
    for (const [listen, connect] of [
      ["127.1", "127.0.0.1"],
      ["[0:0:0:0:0:0:0:1]", "::1"],
      ["[::ffff:127.0.0.1]", "127.0.0.1"],
    ]) {
      const port = await freePort();
      const slpc = bed.slpc(s.tlsPort, ["--stdout", "--web", `${listen}:${port}`]);
      await slpc.waitFor(/--web: the live view is at/);
      const printed = new URL(/--web: the live view is at (\S+)/.exec(slpc.stderr)![1]!);
      const token = printed.searchParams.get("token");
      const request = get(port, "/page.css", { Host: printed.host, Authorization: `Bearer ${token}` });
      const answer = await rawOn(connect!, port, request);
      expect([listen, printed.host, answer.split("\r\n")[0]]).toEqual([listen, printed.host, "HTTP/1.1 200 OK"]);
      slpc.kill();
    }
  });
});

/** A request to `hostname` (an IPv6 address too), and the response's text. */
async function rawOn(hostname: string, port: number, request: string): Promise<string> {
  let text = "";
  const { promise, resolve } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname,
    port,
    socket: {
      data: (_s, chunk) => {
        text += chunk.toString();
      },
      close: () => resolve(),
      error: () => resolve(),
    },
  });
  socket.write(request);
  await Promise.race([promise, sleep(5000)]);
  socket.terminate();
  return text;
}

describe("the compiled binary", () => {
  test("serves the page it was built with", async () => {
    const out = join(bed.dir, "slpc-web");
    const build = Bun.spawnSync([BUN, "build", "--compile", join(ROOT, "slpc.ts"), "--outfile", out], { cwd: ROOT });
    expect(build.exitCode).toBe(0);
    const s = await server();
    const port = await freePort();
    const args = bed.slpcCommand(s.tlsPort, ["--stdout", "--web", `127.0.0.1:${port}`]).slice(2);
    const child = bed.track(new Child([out, ...args]));
    await child.waitFor(/--web: the live view is at/);
    const token = /token=(\S+)/.exec(child.stderr)![1]!;
    for (const [path, file] of [
      ["/", "index.html"],
      ["/page.js", "page.js"],
      ["/page.css", "page.css"],
    ]) {
      const answer = await raw(port, get(port, path!, { Authorization: `Bearer ${token}` }));
      expect(answer.body).toBe(readFileSync(join(ROOT, "slpc/web/page", file!), "utf8"));
    }
  });
});
