// One slpc following several slps (issue 11), end to end: real slps processes, real TLS and UDP on
// loopback. Each server's messages carry its name, a number and the time they were sent, so the
// sink can tell what arrived from where, exactly once or not, and how late.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { encodeControl, encodeFrame } from "../lib.ts";
import { BUN, Child, type ServerHandle, savedPoint, sendUdp, sleep, testBed, udpDrops, until } from "./kit.ts";

setDefaultTimeout(90_000);

const bed = testBed();
const server = (args: string[] = [], opts = {}) => bed.server(["--heartbeat", "0.3", ...args], opts);
const target = (s: ServerHandle | number) => `localhost:${typeof s === "number" ? s : s.tlsPort}`;

/**
 * A UDP sink that notes when each datagram came (this process's clock, the one the senders stamp
 * with), with a receive buffer large enough for a replay's bursts: what it drops, `drops` says.
 */
async function timedSink() {
  const arrived: { text: string; at: number }[] = [];
  const socket = createSocket({ type: "udp4", recvBufferSize: 4 * 1024 * 1024 });
  socket.on("message", (data) => void arrived.push({ text: data.toString(), at: performance.now() }));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  bed.defer(() => socket.close());
  const port = socket.address().port;
  return { port, arrived, drops: () => udpDrops(port) };
}

/** `count` messages for server `name`: `<13>NAME N at=MS`, stamped when sent. */
const stamped = (name: string, first: number, count: number) =>
  Array.from({ length: count }, (_, i) => Buffer.from(`<13>msg ${name} ${first + i} at=${performance.now()}`));

/** Sends `perSecond` stamped messages for `name` to `s` until stopped. */
function steady(s: ServerHandle, name: string, perSecond: number) {
  let sent = 0;
  const timer = setInterval(() => {
    const batch = stamped(name, sent + 1, Math.max(1, Math.round(perSecond / 50)));
    sent += batch.length;
    void sendUdp(s.udpPort, batch);
  }, 20);
  bed.defer(() => clearInterval(timer));
  return {
    get sent() {
      return sent;
    },
    stop: () => clearInterval(timer),
  };
}

/** The numbers of `name`'s messages that arrived, in order of arrival, and the worst delay of any. */
function tally(arrived: { text: string; at: number }[], name: string) {
  const mine = arrived.filter(({ text }) => text.includes(` ${name} `));
  const numbers = mine.map(({ text }) => Number(/ (\d+) at=/.exec(text)![1]));
  const delays = mine.map(({ text, at }) => at - Number(/at=([\d.]+)/.exec(text)![1]));
  return { numbers, worst: Math.max(0, ...delays) };
}

const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** slpc following every port in `ports`, forwarding to `sinkPort`, with `args` after the servers. */
function slpcFollowing(ports: number[], sinkPort: number, args: string[] = []): Child {
  const rest = ports.slice(1).flatMap((port) => ["--server", target(port)]);
  return bed.slpc(ports[0]!, [...rest, "--forward", `127.0.0.1:${sinkPort}`, "--dead-after", "2", ...args]);
}

/** Waits until slpc follows each of `ports` (a "following" line naming it) `times` times or more. */
async function following(c: Child, ports: number[], times = 1): Promise<void> {
  for (const port of ports) {
    const pattern = new RegExp(`${target(port)}: following server`, "g");
    await until(`slpc to follow ${target(port)}\n${c.stderr}`, () => (c.stderr.match(pattern)?.length ?? 0) >= times);
  }
}

describe("one slpc, several servers", () => {
  test("three servers at once: every message of each arrives exactly once; SIGUSR1 and --state list them", async () => {
    const servers = [await server(), await server(), await server()];
    const out = await timedSink();
    const state = join(bed.dir, "three.json");
    const c = slpcFollowing(
      servers.map((s) => s.tlsPort),
      out.port,
      ["--state", state],
    );
    await following(
      c,
      servers.map((s) => s.tlsPort),
    );
    for (let round = 0; round < 5; round++) {
      for (const [i, s] of servers.entries()) await sendUdp(s.udpPort, stamped(`s${i}`, round * 100 + 1, 100));
    }
    await until(
      () => `1,500 messages at the sink, ${out.arrived.length} so far, ${out.drops()} dropped by the sink\n${c.stderr}`,
      () => out.arrived.length >= 1500,
    );
    await sleep(500); // anything more would be a duplicate
    for (const i of [0, 1, 2]) expect(tally(out.arrived, `s${i}`).numbers).toEqual(oneToN(500));
    expect(out.arrived).toHaveLength(1500);

    const from = c.stderr.length;
    c.kill("SIGUSR1");
    await until("the SIGUSR1 line", () => c.stderr.slice(from).includes("}\n"));
    const snapshot = JSON.parse(
      c.stderr
        .slice(from)
        .split("\n")
        .find((line) => line.startsWith("{"))!,
    );
    expect(snapshot).toMatchObject({ received: 1500, delivered: 1500, pending: 0 });
    expect(snapshot.servers.map((each: any) => [each.server, each.connected, each.delivered])).toEqual(
      servers.map((s) => [target(s), true, 500]),
    );
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    for (const s of servers) expect(savedPoint(state, target(s))).toMatchObject({ last: 500 });
  });

  test("filter flags after a --server are that server's alone; servers without take the common ones", async () => {
    const [a, b, d] = [await server(), await server(), await server()];
    const out = await timedSink();
    const c = bed.slpc(a.tlsPort, [
      "--severity",
      "err",
      "--server",
      target(b),
      "--program",
      "cron",
      "--server",
      target(d),
      "--host",
      "web",
      "--forward",
      `127.0.0.1:${out.port}`,
    ]);
    await following(c, [a.tlsPort, b.tlsPort, d.tlsPort]);
    expect(c.stderr).toContain(`${target(a)}: following server`);
    expect(c.stderr).toMatch(new RegExp(`${target(a)}: following server \\w+ from #1, only severity err or worse\n`));
    expect(c.stderr).toMatch(new RegExp(`${target(b)}: following server \\w+ from #1, only program cron\n`));
    expect(c.stderr).toMatch(new RegExp(`${target(d)}: following server \\w+ from #1, only host web\n`));
    const mix = (name: string) =>
      [
        `<11>Jan  5 10:11:12 web app: ${name} err`,
        `<14>Jan  5 10:11:12 web cron[3]: ${name} info cron`,
        `<14>Jan  5 10:11:12 db app: ${name} info db`,
        "\xff\xfe not syslog at all",
        `<14>${name} no header`,
      ].map((text) => Buffer.from(text, "latin1"));
    for (const [s, name] of [
      [a, "A"],
      [b, "B"],
      [d, "D"],
    ] as const)
      await sendUdp(s.udpPort, mix(name));
    await until(
      () => `4 messages, ${out.arrived.length} so far, ${out.drops()} dropped by the sink`,
      () => out.arrived.length >= 4,
    );
    await sleep(700);
    expect(out.arrived.map(({ text }) => text).sort()).toEqual([
      "<11>Jan  5 10:11:12 web app: A err",
      "<11>Jan  5 10:11:12 web app: D err",
      "<14>Jan  5 10:11:12 web cron[3]: B info cron",
      "<14>Jan  5 10:11:12 web cron[3]: D info cron",
    ]);
  });

  test("a blackholed server delays no other, and resumes with its filter exactly once, dialled again", async () => {
    const servers = [await server(), await server(), await server()];
    const proxy = bed.proxy(servers[2]!.tlsPort);
    const out = await timedSink();
    // The blackholed server's filter (the flag after the last --server) leaves out its debug messages.
    const c = slpcFollowing([servers[0]!.tlsPort, servers[1]!.tlsPort, proxy.port], out.port, ["--severity", "info"]);
    await following(c, [servers[0]!.tlsPort, servers[1]!.tlsPort, proxy.port]);
    expect(c.stderr).toMatch(new RegExp(`${target(proxy.port)}: following server \\w+ from #1, only severity info`));
    const senders = servers.map((s, i) => steady(s, `s${i}`, 200));
    const debug = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`<15>debug s2x ${i}`));
    await sendUdp(servers[2]!.udpPort, debug(50));
    await sleep(500);
    proxy.blackhole();
    await sendUdp(servers[2]!.udpPort, debug(50));
    // --dead-after 2: the blackholed connection is given up and dialled again meanwhile.
    await until(`a new connection to the blackholed server\n${c.stderr}`, () => c.stderr.includes("presumed dead"));
    await following(c, [proxy.port], 2);
    await sleep(500);
    for (const sender of senders) sender.stop();
    const sent = senders.map((sender) => sender.sent);
    const total = sent.reduce((sum, n) => sum + n, 0);
    await until(
      () => `${total} messages, ${out.arrived.length} so far, ${out.drops()} dropped by the sink`,
      () => out.arrived.length >= total,
    );
    await sleep(500);
    // Each in order and once, the blackholed one's too: it resumed where it stopped, past what its filter left out.
    for (const i of [0, 1, 2]) expect(tally(out.arrived, `s${i}`).numbers).toEqual(oneToN(sent[i]!));
    expect(out.arrived.filter(({ text }) => text.includes("debug"))).toEqual([]);
    // The healthy two were never held back: over 2 s of silence on the third would show here.
    for (const i of [0, 1]) expect(tally(out.arrived, `s${i}`).worst).toBeLessThan(1000);
    expect(tally(out.arrived, "s2").worst).toBeGreaterThan(1500);
    expect(c.stderr).not.toContain("gap");
  });

  test("a restarted server delays no other; its gap is its own", async () => {
    const servers = [await server(), await server(), await server()];
    const out = await timedSink();
    const c = slpcFollowing(
      servers.map((s) => s.tlsPort),
      out.port,
    );
    await following(
      c,
      servers.map((s) => s.tlsPort),
    );
    const healthy = [steady(servers[0]!, "s0", 200), steady(servers[1]!, "s1", 200)];
    await sleep(500);
    const restarting = servers[2]!;
    restarting.kill("SIGTERM");
    await restarting.exit();
    await sleep(1500);
    const again = await server([], { udpPort: restarting.udpPort, tlsPort: restarting.tlsPort });
    await following(c, [again.tlsPort], 2);
    await sendUdp(again.udpPort, stamped("s2", 1, 10));
    for (const sender of healthy) sender.stop();
    const total = healthy[0]!.sent + healthy[1]!.sent + 10;
    await until(
      () => `${total} messages, ${out.arrived.length} so far, ${out.drops()} dropped by the sink`,
      () => out.arrived.length >= total,
    );
    await sleep(500);
    for (const i of [0, 1]) {
      expect(tally(out.arrived, `s${i}`).numbers).toEqual(oneToN(healthy[i]!.sent));
      expect(tally(out.arrived, `s${i}`).worst).toBeLessThan(1000);
    }
    expect(tally(out.arrived, "s2").numbers).toEqual(oneToN(10));
    expect(c.stderr).toMatch(new RegExp(`${target(again)}: gap: an unknown number of messages lost, server restarted`));
    expect(c.stderr).not.toMatch(new RegExp(`${target(servers[0]!)}: gap|${target(servers[1]!)}: gap`));
  });

  test("a hostile server (a heartbeat flood, then garbage) delays no other", async () => {
    const servers = [await server(), await server()];
    const flood = Buffer.concat([
      encodeControl({ type: "hello", version: 1, server: "evil", heartbeat: 0.3, first: 1, next: 1 }),
      ...Array.from({ length: 200 }, () => encodeControl({ type: "heartbeat" })),
      Buffer.from("garbage that is no frame at all ".repeat(1000)),
    ]);
    const hostile = bed.fakeServer(flood);
    const out = await timedSink();
    const c = slpcFollowing([servers[0]!.tlsPort, hostile, servers[1]!.tlsPort], out.port);
    await following(c, [servers[0]!.tlsPort, servers[1]!.tlsPort]);
    const senders = [steady(servers[0]!, "s0", 200), steady(servers[1]!, "s1", 200)];
    await sleep(3000);
    for (const sender of senders) sender.stop();
    const total = senders[0]!.sent + senders[1]!.sent;
    await until(
      () => `${total} messages, ${out.arrived.length} so far, ${out.drops()} dropped by the sink`,
      () => out.arrived.length >= total,
    );
    for (const i of [0, 1]) {
      expect(tally(out.arrived, `s${i}`).numbers).toEqual(oneToN(senders[i]!.sent));
      expect(tally(out.arrived, `s${i}`).worst).toBeLessThan(1000);
    }
    expect(c.stderr).toMatch(new RegExp(`localhost:${hostile}: [^\\n]*(heartbeat flood|protocol error)`));
    expect(c.stderr.match(new RegExp(`localhost:${hostile}: retrying`, "g"))!.length).toBeGreaterThan(1);
  });

  test("a server replaying a backlog gets its share of --forward-rate; live ones are not held behind it", async () => {
    const [live, replaying] = [await server(), await server(["--buffer", "8MiB"])];
    await sendUdp(replaying.udpPort, stamped("backlog", 1, 5000));
    await sleep(300);
    const out = await timedSink();
    const c = slpcFollowing([replaying.tlsPort, live.tlsPort], out.port, ["--replay", "--forward-rate", "1000"]);
    await following(c, [replaying.tlsPort, live.tlsPort]);
    const sender = steady(live, "live", 100);
    await sleep(3000);
    sender.stop();
    await until(
      () => `5,000 + ${sender.sent} messages, ${out.arrived.length} so far, ${out.drops()} dropped by the sink`,
      () => {
        return out.arrived.length >= 5000 + sender.sent;
      },
    );
    await sleep(300);
    expect(tally(out.arrived, "backlog").numbers).toEqual(oneToN(5000));
    expect(tally(out.arrived, "live").numbers).toEqual(oneToN(sender.sent));
    // Behind one queue, the live messages would wait for up to 4,096 of the backlog's: 4 s at 1,000/s.
    expect(tally(out.arrived, "live").worst).toBeLessThan(1000);
    expect(tally(out.arrived, "backlog").worst).toBeGreaterThan(3000);
  });

  test("one server under two names is followed once", async () => {
    const s = await server();
    const out = await timedSink();
    const c = bed.slpc(s.tlsPort, ["--server", `127.0.0.1:${s.tlsPort}`, "--forward", `127.0.0.1:${out.port}`]);
    await c.waitFor(/under another name \(server [0-9a-f]+\); closing the connection/);
    await sendUdp(s.udpPort, stamped("once", 1, 20));
    await until(
      () => `20 messages, ${out.arrived.length} so far`,
      () => out.arrived.length >= 20,
    );
    await sleep(1500); // the second name is dialled again meanwhile, and refused again
    expect(tally(out.arrived, "once").numbers).toEqual(oneToN(20));
  });

  test("a server reporting a gap a write gets a gap line a second, summing, not a line a gap", async () => {
    // Each gap before a message, as slps sends them: 2,000 starts with nothing between would be a flood.
    const starts = Array.from({ length: 2000 }, (_, i) =>
      Buffer.concat([encodeControl({ type: "start", seq: 6 * i + 6, lost: 5 }), encodeFrame(Buffer.from("<13>m"))]),
    );
    const port = bed.fakeServer(
      Buffer.concat([
        encodeControl({ type: "hello", version: 1, server: "far", heartbeat: 15, first: 1, next: 12_001 }),
        ...starts,
      ]),
    );
    const c = bed.slpc(port, ["--stdout"]);
    await c.waitFor(/gap: 9995 messages lost in 1999 more gaps within a second; continuing from #12001\n/);
    expect(c.stderr.match(/gap:/g)).toHaveLength(2);
    expect(c.stderr).toContain(`localhost:${port}: gap: 5 messages lost, no reason given; continuing from #6\n`);
    const from = c.stderr.length;
    c.kill("SIGUSR1");
    await until("the SIGUSR1 line", () => c.stderr.slice(from).includes("}\n"));
    expect(
      JSON.parse(
        c.stderr
          .slice(from)
          .split("\n")
          .find((line) => line.startsWith("{"))!,
      ).lost,
    ).toBe(10_000);
  });

  test("--stdout --prefix begins each line with its server; JSON carries it as 'from'", async () => {
    const [a, b] = [await server(), await server()];
    const c = bed.slpc(a.tlsPort, ["--server", target(b), "--stdout", "--prefix"]);
    await following(c, [a.tlsPort, b.tlsPort]);
    await sendUdp(a.udpPort, [Buffer.from("<13>from a")]);
    await sendUdp(b.udpPort, [Buffer.from("<13>from b")]);
    await until("two lines", () => c.stdout.toString().split("\n").length > 2);
    const lines = c.stdout.toString().split("\n");
    expect(lines.sort()).toEqual(["", `${target(a)} <13>from a`, `${target(b)} <13>from b`].sort());

    const json = bed.slpc(a.tlsPort, ["--server", target(b), "--format", "json", "--replay"]);
    await until("two JSON lines", () => json.stdout.toString().split("\n").length > 2);
    const records = json.stdout
      .toString()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    const fromAndText = records.map((record) => `${record.from} ${record.message}`);
    expect(fromAndText.sort()).toEqual([`${target(a)} from a`, `${target(b)} from b`].sort());
  });

  test.each([
    [["--server", "localhost:1", "--server", "LOCALHOST:1"], /^slpc: --server LOCALHOST:1: named twice\n$/],
    [["--server", "a:1,b:1", "--servername", "x"], /^slpc: --servername x: only with a single --server; /],
    [["--server", "a:1", "--server", ""], /^slpc: --server "": expected HOST\[:PORT\]\n$/],
    [["--server", "a:1", "--severity", "loud"], /^slpc: --server a:1: --severity "loud": no severity "loud"/],
    [["--server", "a:1", "--prefix"], /^slpc: --prefix: only with --stdout or --format, not --forward\n$/],
    [["--server", "a:1,:2"], /^slpc: --server "a:1,:2": ':2': expected HOST or HOST:PORT\n$/],
    [
      ["--server", "--stdout"],
      /^slpc: --server "--stdout": expected HOST or HOST:PORT, not a flag: is the value missing\?\n$/,
    ],
  ])("%p exits 2 with one line naming the problem", async (args, expected) => {
    const c = new Child([BUN, "slpc.ts", ...args]);
    expect(await c.exit()).toBe(2);
    expect(c.stderr).toMatch(expected);
  });
});

describe("one server under two names, one of them cut off", () => {
  test("the other name does not take over from where the server is now: nothing sent meanwhile is lost", async () => {
    // Each name through a path of its own, so that the one that follows can be cut off alone.
    const s = await server();
    const paths = [bed.proxy(s.tlsPort), bed.proxy(s.tlsPort)];
    const names = [`localhost:${paths[0]!.port}`, `127.0.0.1:${paths[1]!.port}`];
    const out = await timedSink();
    const c = bed.slpc(paths[0]!.port, ["--server", names[1]!, "--forward", `127.0.0.1:${out.port}`]);
    await c.waitFor(/under another name \(server [0-9a-f]+\); closing the connection/);
    await c.waitFor(/following server/);
    const first = names.findIndex((name) => c.stderr.includes(`${name}: following server`));
    const [followed, other] = [paths[first]!, names[1 - first]!];
    await sendUdp(s.udpPort, stamped("twin", 1, 10));
    await until(
      () => `10 messages, ${out.arrived.length} so far`,
      () => out.arrived.length >= 10,
    );
    followed.cut();
    await sendUdp(s.udpPort, stamped("twin", 11, 10));
    // The other name is dialled again meanwhile: refused again, or (the defect) followed from #21.
    const refused = new RegExp(`${other}: this is .* under another name`, "g");
    const taken = new RegExp(`${other}: following server`);
    const from = c.stderr.length;
    await until(
      () => `the other name to be dialled again\n${c.stderr}`,
      () => refused.test(c.stderr.slice(from)) || taken.test(c.stderr.slice(from)),
    );
    await sendUdp(s.udpPort, stamped("twin", 21, 10));
    followed.restore();
    await until(
      () => `30 messages, ${out.arrived.length} so far\n${c.stderr}`,
      () => out.arrived.length >= 30,
      5_000,
    ).catch(() => {});
    await sleep(500); // anything more would be a duplicate
    expect(tally(out.arrived, "twin").numbers).toEqual(oneToN(30));
  });

  test("a name --state has a point for keeps its server run: the other, dialled first, is refused", async () => {
    const s = await server();
    const paths = [bed.proxy(s.tlsPort), bed.proxy(s.tlsPort)];
    const state = join(bed.dir, "twins.json");
    const out = await timedSink();
    const alone = bed.slpc(paths[0]!.port, ["--forward", `127.0.0.1:${out.port}`, "--state", state]);
    await alone.waitFor(/following server/);
    await sendUdp(s.udpPort, stamped("kept", 1, 10));
    await until(
      () => `10 messages, ${out.arrived.length} so far`,
      () => out.arrived.length >= 10,
    );
    alone.kill("SIGTERM");
    expect(await alone.exit()).toBe(0);
    await sendUdp(s.udpPort, stamped("kept", 11, 10)); // while no slpc runs: --state's point is before them
    paths[0]!.cut();
    const c = bed.slpc(paths[0]!.port, [
      "--server",
      `127.0.0.1:${paths[1]!.port}`,
      "--forward",
      `127.0.0.1:${out.port}`,
      "--state",
      state,
    ]);
    await c.waitFor(/ \(server [0-9a-f]+\); closing the connection|127\.0\.0\.1:\d+: following server/);
    paths[0]!.restore();
    await until(
      () => `20 messages, ${out.arrived.length} so far\n${c.stderr}`,
      () => out.arrived.length >= 20,
      5_000,
    ).catch(() => {});
    await sleep(500); // anything more would be a duplicate
    expect(tally(out.arrived, "kept").numbers).toEqual(oneToN(20));
  });
});
