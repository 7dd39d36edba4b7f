// slpc's --state file end to end: real slps and slpc processes, real TLS and UDP on loopback.
// Every behaviour of the file is here: what a restart resumes from and what SIGTERM records,
// files that are not state files, the server run a point names, the lock that keeps a second
// slpc off the file, odd paths (symlinks, FIFOs, folders, devices), and how often it is written,
// which bounds what a crash loop delivers twice. (lib/state_file.test.ts tests the file's format.)

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import {
  chmodSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { encodeControl, encodeFrame, MAX_SEQ } from "../lib.ts";
import {
  Child,
  feed,
  type ServerHandle,
  savedPoint,
  sendUdp,
  sleep,
  steadySender,
  streamStarted,
  testBed,
  udpDrops,
  udpSink,
  until,
} from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
const { server, sink, slpc, slpcCommand, fifo, slpcInto } = bed;

const numbered = (n: number, prefix = "msg") => Array.from({ length: n }, (_, i) => Buffer.from(`<13>${prefix} ${i}`));
const texts = (messages: Buffer[]) => messages.map(String);
/** `count` messages of `name`, numbered from `first`: `<13>NAME N`. */
const named = (name: string, count: number, first = 1) =>
  Array.from({ length: count }, (_, i) => Buffer.from(`<13>${name} ${first + i}`));
/** The numbers of `name`'s messages that arrived, in order of arrival. */
const numbersOf = (messages: Buffer[], name: string) =>
  messages.map(String).flatMap((text) => (text.startsWith(`<13>${name} `) ? [Number(text.split(" ")[1])] : []));
/** slpc's stderr as lines, without the last newline. */
const lines = (c: { stderr: string }) => c.stderr.split("\n").slice(0, -1);
const target = (s: ServerHandle | number) => `localhost:${typeof s === "number" ? s : s.tlsPort}`;

/** A UDP sink with a receive buffer large enough for a replay's bursts: what it drops, `drops` says. */
async function roomySink() {
  const messages: Buffer[] = [];
  const socket = createSocket({ type: "udp4", recvBufferSize: 4 * 1024 * 1024 });
  socket.on("message", (data) => void messages.push(data));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  bed.defer(() => socket.close());
  const port = socket.address().port;
  return { port, messages, drops: () => udpDrops(port) };
}

describe("--state across a restart", () => {
  test("a client killed and restarted with --state loses nothing and duplicates nothing", async () => {
    const s = await server(["--heartbeat", "0.3"]);
    const out = await sink();
    const state = join(bed.dir, "resume-state.json");
    // --forward-rate: the sink lives in this test process, and a replay at full speed can overflow it.
    const opts = { forwardPort: out.port, args: ["--dead-after", "1.5", "--forward-rate", "5000", "--state", state] };
    const first = await bed.client(s, opts);
    const sender = steadySender(s.udpPort, 200);
    await sleep(600);
    first.kill("SIGTERM");
    expect(await first.exit()).toBe(0);
    const saved = savedPoint(state)!;
    expect(saved.last).toBe(out.messages.length);
    await sleep(700);
    const second = await bed.client(s, opts);
    await sleep(600);
    sender.stop();
    await until("everything", () => out.messages.length >= sender.sent.length);
    await sleep(200);
    expect(texts(out.messages)).toEqual(sender.sent);
    expect(s.stderr).toContain(`starts at #${saved.last + 1}`);
    expect(second.stderr).not.toContain("gap");
  });

  test("--format json's server and seq are the resume point's: SIGTERM, a restart: each message once", async () => {
    const s = await bed.server();
    const state = join(bed.dir, "json-state.json");
    const batch = (from: number) => Array.from({ length: 50 }, (_, i) => Buffer.from(`<14>message ${from + i}`));
    const jsonLines = (c: Child) =>
      c.stdout
        .toString()
        .split("\n")
        .slice(0, -1)
        .map((line) => JSON.parse(line));
    const first = await bed.client(s, { args: ["--format", "json", "--state", state] });
    await sendUdp(s.udpPort, batch(1));
    await until("50 lines", () => jsonLines(first).length === 50);
    first.kill("SIGTERM");
    expect(await first.exit()).toBe(0);
    const saved = savedPoint(state)!;
    expect(saved).toEqual({ server: jsonLines(first)[0].server, last: 50 });
    await sendUdp(s.udpPort, batch(51)); // while no client is connected: slps holds them
    const second = await bed.client(s, { args: ["--format", "json", "--state", state] });
    await until("50 more lines", () => jsonLines(second).length >= 50);
    const all = [...jsonLines(first), ...jsonLines(second)];
    expect(all.map((line) => [line.server, line.seq, line.message])).toEqual(
      Array.from({ length: 100 }, (_, i) => [saved.server, i + 1, `message ${i + 1}`]),
    );
  });
  // A new slpc writes its resume point only when nothing waits (resumePoint() is `handedOn`,
  // undefined for a new client, while messages wait) or once the daemon took one. When messages
  // come before the first state tick and the daemon takes none of them, SIGTERM leaves no
  // --state; the next start is a new client, starts live, and the messages are gone without a
  // gap line.
  test("a restart delivers what the first run received but could not hand on", async () => {
    const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    bed.defer(() => mute.stop(true));
    const s = await server();
    const state = join(bed.dir, "state-mute");
    const slpcTo = (forward: string) =>
      bed.track(new Child(bed.slpcCommand(s.tlsPort, ["--forward", forward, "--state", state])));
    const first = slpcTo(`relp://127.0.0.1:${mute.port}`);
    await first.waitFor(/following server/);
    await sendUdp(s.udpPort, [Buffer.from("<13>app: kept 1"), Buffer.from("<13>app: kept 2")]);
    await sleep(1500);
    first.kill("SIGTERM");
    await first.exit(10_000);
    const sink = await udpSink();
    bed.defer(() => sink.close());
    const second = slpcTo(`127.0.0.1:${sink.port}`);
    await second.waitFor(/following server/);
    await until(
      () => `the restarted slpc to deliver both messages; got ${sink.messages.length}\n${second.stderr}`,
      () => sink.messages.length >= 2,
      5_000,
    );
    expect(sink.messages.map(String)).toEqual(["<13>app: kept 1", "<13>app: kept 2"]);
  });
  test("relp:// SIGTERM: acknowledgements get 5 s, then --state records only what the daemon took", async () => {
    // A RELP daemon that takes the session and acknowledges the first three messages, then no more.
    let received = "";
    const syslogCommands = () => [...received.matchAll(/(\d+) syslog \d+ /g)].map((match) => Number(match[1]));
    const answered = new Set<number>();
    const daemon = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, chunk) {
          received += Buffer.from(chunk).toString("latin1");
          if (/^1 open /.test(received) && !answered.has(1)) {
            answered.add(1);
            const offers = "200 OK\nrelp_version=0\nrelp_software=test\ncommands=syslog";
            socket.write(`1 rsp ${offers.length} ${offers}\n`);
          }
          for (const txnr of syslogCommands().filter((n) => n <= 4 && !answered.has(n))) {
            answered.add(txnr);
            socket.write(`${txnr} rsp 6 200 OK\n`);
          }
        },
      },
    });
    bed.defer(() => daemon.stop(true));
    const s = await server();
    const state = join(bed.dir, "relp-sigterm.json");
    const c = slpc(s.tlsPort, ["--forward", `relp://127.0.0.1:${daemon.port}`, "--state", state]);
    await streamStarted(s);
    await sendUdp(s.udpPort, numbered(10));
    await until(
      () => `10 messages at the daemon, have ${syslogCommands().length}`,
      () => syslogCommands().length === 10,
    );
    const signalled = performance.now();
    c.proc.kill("SIGTERM");
    expect(await c.proc.exited).toBe(0);
    expect(performance.now() - signalled).toBeGreaterThanOrEqual(4500);
    expect(c.stderr).toMatch(/did not acknowledge 7 messages within 5 s; --state records only what it acknowledged\n$/);
    expect(savedPoint(state)!.last).toBe(3);
  });
});

describe("--stdout and SIGTERM", () => {
  test("SIGTERM with stdout full loses no line: --state holds what was written, a restart sends the rest", async () => {
    const s = await server();
    const state = join(bed.dir, "stdout-sigterm.json");
    // stdout is a FIFO that the test leaves unread until after the signal: a pipe, and a full one.
    const out = fifo("sigterm.fifo");
    const first = slpcInto(out, slpcCommand(s.tlsPort, ["--stdout", "--state", state]));
    await streamStarted(s);
    const messages = Array.from({ length: 5000 }, (_, i) => Buffer.from(`<13>line ${i + 1} ${"x".repeat(300)}`));
    await feed(s, messages);
    await sleep(500);
    first.proc.kill("SIGTERM");
    await sleep(1000); // then the reader comes back, within slpc's 5 s
    const written = await out.readAll();
    expect(await first.proc.exited).toBe(0);
    const saved = savedPoint(state)!;
    const lines = written.split("\n").slice(0, -1);
    expect(lines.length).toBe(saved.last); // every line --state claims is there, and no other
    expect(lines).toEqual(texts(messages.slice(0, saved.last)));
    expect(saved.last).toBeGreaterThan(0);
    expect(saved.last).toBeLessThan(messages.length); // stdout was full: slpc had stopped reading
    expect(first.stderr).toContain("SIGTERM: exiting");

    const second = slpc(s.tlsPort, ["--stdout", "--state", state]);
    const rest = () => second.stdout.toString().split("\n").slice(0, -1);
    const missing = messages.length - saved.last;
    await until(
      () => `the rest (${rest().length} of ${missing}):\n${second.stderr}`,
      () => rest().length >= missing,
    );
    await sleep(200);
    expect([...lines, ...rest()]).toEqual(texts(messages));
    expect(second.stderr).not.toContain("gap");
  });
});

describe("--stdout and a reader that never comes back", () => {
  test("SIGTERM gives stdout 5 s, then exits; --state claims no line that was not written", async () => {
    const s = await server();
    const state = join(bed.dir, "stdout-gone.json");
    const out = fifo("gone.fifo");
    const c = slpcInto(out, slpcCommand(s.tlsPort, ["--stdout", "--state", state]));
    await streamStarted(s);
    const messages = Array.from({ length: 3000 }, (_, i) => Buffer.from(`<13>gone ${i + 1} ${"x".repeat(300)}`));
    await feed(s, messages);
    await sleep(500);
    const signalled = performance.now();
    c.proc.kill("SIGTERM");
    expect(await c.proc.exited).toBe(0);
    const waited = performance.now() - signalled;
    expect(waited).toBeGreaterThanOrEqual(4500);
    expect(waited).toBeLessThan(9000);
    expect(c.stderr).toMatch(/stdout did not take \d+ lines within 5 s; --state records only what it took\n$/);
    const saved = savedPoint(state)!;
    const lines = (await out.readAll()).split("\n");
    expect(lines.slice(0, saved.last)).toEqual(texts(messages.slice(0, saved.last)));
  });
});

describe("a --state file that is not one", () => {
  test.each([
    ["empty", "", "empty \\(not an slpc state file\\)"],
    ["garbage", "\x00\x01 not json at all", "not an slpc state file \\(not JSON\\)"],
    ["truncated JSON", '{"server":"5f2c9a7e01b4d3c8","la', "not an slpc state file \\(not JSON\\)"],
  ])("%s: slpc moves it aside, says so, reports an unknown gap and delivers", async (name, content, why) => {
    const moved = new RegExp(`--state \\S+: ${why}; moved it to (\\S+) and starting as a new client, live`);
    const s = await server();
    const out = await sink();
    const state = join(bed.dir, `bad-${name.replace(/ /g, "-")}.json`);
    writeFileSync(state, content);
    const c = slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--state", state]);
    await c.waitFor(moved);
    const aside = moved.exec(c.stderr)![1]!;
    expect(aside).toMatch(new RegExp(`^${state.replace(/[.]/g, "\\.")}\\.bad-\\d+$`));
    expect(readFileSync(aside, "utf8")).toBe(content);
    await c.waitFor(/gap: an unknown number of messages lost, the --state file was unreadable; continuing from #1/);
    await sendUdp(s.udpPort, numbered(5));
    await until(
      () => `5 messages:\n${c.stderr}`,
      () => out.messages.length === 5,
    );
    expect(texts(out.messages)).toEqual(texts(numbered(5)));
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(savedPoint(state)!).toMatchObject({ last: 5 });
  });

  test("a file over 4 MiB is not a state file: it is moved aside, with one line", async () => {
    const s = await server();
    const state = join(bed.dir, "huge.json");
    writeFileSync(state, Buffer.alloc(5 * 1024 * 1024, " "));
    const c = slpc(s.tlsPort, ["--stdout", "--state", state]);
    await c.waitFor(/moved it to/);
    expect(lines(c)[0]).toMatch(
      new RegExp(`^slpc: --state ${state}: over 4 MiB \\(not an slpc state file\\); moved it to ${state}\\.bad-\\d+ `),
    );
    expect(readdirSync(bed.dir).filter((file) => file.startsWith("huge.json.bad-"))).toHaveLength(1);
  });

  test("with --replay, slpc starts over with everything the server holds", async () => {
    const s = await server();
    await sendUdp(s.udpPort, numbered(3, "held"));
    await sleep(100);
    const out = await sink();
    const state = join(bed.dir, "bad-replay.json");
    writeFileSync(state, "{");
    const c = slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--state", state, "--replay"]);
    await c.waitFor(/moved it to \S+ and starting as a new client, with everything the server holds \(--replay\)/);
    await until(
      () => `the held messages:\n${c.stderr}`,
      () => out.messages.length === 3,
    );
    expect(texts(out.messages)).toEqual(texts(numbered(3, "held")));
    expect(readdirSync(bed.dir).filter((file) => file.startsWith("bad-replay.json.bad-"))).toHaveLength(1);
  });
  test("one unreadable entry costs that server its point alone; the others resume where they were", async () => {
    const [kept, broken] = [await server(["--heartbeat", "0.3"]), await server(["--heartbeat", "0.3"])];
    await sendUdp(kept.udpPort, named("kept", 3));
    await sendUdp(broken.udpPort, named("broken", 3));
    await sleep(300);
    const id = /server id ([0-9a-f]+)/.exec(kept.stderr)![1]!;
    const state = join(bed.dir, "one-bad-entry.json");
    const servers = {
      [`localhost:${kept.tlsPort}`]: { server: id, last: 1 },
      [`localhost:${broken.tlsPort}`]: { server: "x", last: -5 },
    };
    writeFileSync(state, `${JSON.stringify({ servers })}\n`);
    const out = await bed.sink();
    const c = bed.slpc(kept.tlsPort, [
      "--server",
      `localhost:${broken.tlsPort}`,
      "--forward",
      `127.0.0.1:${out.port}`,
      "--state",
      state,
      "--replay",
    ]);
    await until(`5 messages, ${out.messages.length} so far\n${c.stderr}`, () => out.messages.length >= 5);
    await sleep(500); // anything more would be a duplicate
    expect(numbersOf(out.messages, "kept")).toEqual([2, 3]);
    expect(numbersOf(out.messages, "broken")).toEqual([1, 2, 3]);
    expect(c.stderr).toMatch(
      new RegExp(
        `--state ${state}: server localhost:${broken.tlsPort}: [^\\n]*; copied the file to ${state}\\.bad-\\d+`,
      ),
    );
    expect(c.stderr).toMatch(new RegExp(`localhost:${broken.tlsPort}: gap: an unknown number of messages lost`));
    expect(c.stderr).not.toMatch(new RegExp(`localhost:${kept.tlsPort}: gap`));
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(savedPoint(state, `localhost:${kept.tlsPort}`)).toEqual({ server: id, last: 3 });
    expect(savedPoint(state, `localhost:${broken.tlsPort}`)).toMatchObject({ last: 3 });
  });
  test("a single-server file is read as the first of several servers'; other servers' points are kept", async () => {
    const [first, second] = [await server(["--heartbeat", "0.3"]), await server(["--heartbeat", "0.3"])];
    await sendUdp(first.udpPort, named("first", 10));
    await sendUdp(second.udpPort, named("second", 3));
    await sleep(300);
    const id = /server id ([0-9a-f]+)/.exec(first.stderr)![1]!;
    const state = join(bed.dir, "old-format.json");
    writeFileSync(state, `${JSON.stringify({ server: id, last: 4 })}\n`);
    const out = await roomySink();
    const following = (ports: number[], args: string[]) =>
      slpc(ports[0]!, [...ports.slice(1).flatMap((port) => ["--server", target(port)]), ...args]);
    const forward = ["--forward", `127.0.0.1:${out.port}`, "--dead-after", "2"];
    const c = following([first.tlsPort, second.tlsPort], [...forward, "--state", state, "--replay"]);
    await c.waitFor(/a single server's resume point, read as localhost:\d+'s and kept in the new format/);
    await until(
      () => `9 messages, ${out.messages.length} so far, ${out.drops()} dropped by the sink`,
      () => out.messages.length >= 9,
    );
    await sleep(1500); // --state is written meanwhile, and anything more would be a duplicate
    expect(numbersOf(out.messages, "first")).toEqual([5, 6, 7, 8, 9, 10]);
    expect(numbersOf(out.messages, "second")).toEqual([1, 2, 3]);
    expect(c.stderr).not.toContain("gap");
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(savedPoint(state, target(first))).toEqual({ server: id, last: 10 });
    expect(savedPoint(state, target(second))).toMatchObject({ last: 3 });

    // Following only the second now: the first's point stays in the file for when it comes back.
    const again = following([second.tlsPort], [...forward, "--state", state]);
    await again.waitFor(new RegExp(`${target(second)}: following server`));
    again.kill("SIGTERM");
    expect(await again.exit()).toBe(0);
    expect(savedPoint(state, target(first))).toEqual({ server: id, last: 10 });
    expect(existsSync(`${state}.tmp`)).toBe(false);
    expect(readdirSync(bed.dir).filter((file) => file.startsWith("old-format.json.tmp"))).toEqual([]);
  });
});

describe("the resume point follows the server run each message came from", () => {
  const serverId = (s: ServerHandle) => /server id ([0-9a-f]+)/.exec(s.stderr)![1]!;
  const saved = (state: string) => savedPoint(state)!;

  test("messages of an old server run still waiting after a server restart are recorded under that run", async () => {
    const first = await server();
    const out = await sink();
    const state = join(bed.dir, "old-run.json");
    // 20 a second: the first run's messages are still waiting when the second run begins.
    const c = slpc(first.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--forward-rate", "20", "--state", state]);
    await streamStarted(first);
    const a = numbered(100, "a");
    await feed(first, a);
    await until(
      () => `delivery under way:\n${c.stderr}`,
      () => out.messages.length >= 5,
    );
    first.kill("SIGTERM");
    await first.exit();
    const second = await server([], { udpPort: first.udpPort, tlsPort: first.tlsPort });
    await c.waitFor(new RegExp(`following server ${serverId(second)}`));
    const b = numbered(10, "b");
    await feed(second, b);
    await sleep(1500); // --state is written within 100 ms of a move (later on a loaded machine)
    const midway = saved(state);
    expect(out.messages.length).toBeLessThan(a.length);
    expect(midway.server).toBe(serverId(first));
    expect(midway.last).toBeLessThanOrEqual(out.messages.length);
    const all = a.length + b.length;
    await until(
      () => `everything (${out.messages.length}):\n${c.stderr}`,
      () => out.messages.length === all,
      20_000,
    );
    await sleep(1500);
    expect(saved(state)).toEqual({ server: serverId(second), last: b.length });
    expect(texts(out.messages)).toEqual(texts([...a, ...b]));
  });

  test("after a server restart with no message since, --state names the new server", async () => {
    const first = await server();
    const out = await sink();
    const state = join(bed.dir, "restart-quiet.json");
    const c = slpc(first.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--state", state]);
    await streamStarted(first);
    await sendUdp(first.udpPort, numbered(3));
    await until("3 messages", () => out.messages.length === 3);
    await sleep(1200); // written, within 100 ms: nothing is left to write but the new server's id
    expect(saved(state)).toEqual({ server: serverId(first), last: 3 });
    first.kill("SIGTERM");
    await first.exit();
    const second = await server([], { udpPort: first.udpPort, tlsPort: first.tlsPort });
    await c.waitFor(new RegExp(`following server ${serverId(second)}`));
    // --state is written within 100 ms of a move, also while slpc runs (later on a loaded machine).
    await until("--state to name the new server", () => saved(state).server === serverId(second));
    expect(saved(state)).toEqual({ server: serverId(second), last: 0 });
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(saved(state)).toEqual({ server: serverId(second), last: 0 });
  });

  test("a stream past the largest sequence number (MAX_SEQ) cannot make the state file unreadable", async () => {
    const hello = encodeControl({ type: "hello", version: 1, server: "far", heartbeat: 15, first: 1, next: 1 });
    const start = encodeControl({ type: "start", seq: MAX_SEQ });
    const port = bed.fakeServer(
      hello,
      (socket) =>
        void socket.write(Buffer.concat([start, encodeFrame(Buffer.from("one")), encodeFrame(Buffer.from("two"))])),
    );
    const out = await sink();
    const state = join(bed.dir, "far.json");
    const c = slpc(port, [
      "--forward",
      `127.0.0.1:${out.port}`,
      "--state",
      state,
      "--retry-min",
      "30",
      "--retry-max",
      "30",
    ]);
    await c.waitFor(new RegExp(`protocol error: message number beyond ${MAX_SEQ}; closing the connection`));
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(texts(out.messages)).toEqual(["one"]);
    expect(saved(state)).toEqual({ server: "far", last: MAX_SEQ });
    const again = slpc(port, ["--stdout", "--state", state, "--retry-min", "30", "--retry-max", "30"]);
    await again.waitFor(/connected to/);
    expect(again.proc.exitCode).toBeNull();
  });
});

describe("a point slps must take", () => {
  // slpc numbers messages up to 2^53 - 1 and keeps such a point in --state; slps reads `last`
  // only up to 2^52 (MAX_SEQ). A server that ever started slpc near 2^52 (a broken or hostile one,
  // or a hand-edited file) leaves a point that the real server refuses on every reconnect.
  test("a --state point above 2^52 does not keep slpc in a reconnect loop against slps", async () => {
    const s = await server();
    const state = join(bed.dir, "beyond-max-seq.json");
    writeFileSync(state, `${JSON.stringify({ server: "0123456789abcdef", last: 2 ** 52 + 1 })}\n`);
    const c = slpc(s.tlsPort, ["--stdout", "--state", state]);
    await c.waitFor(/connected to/);
    await until(
      () => `a stream, or a refusal:\n${s.stderr}`,
      () => /starts at #/.test(s.stderr) || /bad 'last'/.test(s.stderr),
    );
    await sleep(1000);
    expect(s.stderr).not.toContain("resume message has a bad 'last'");
    await sendUdp(s.udpPort, [Buffer.from("<13>after")]);
    await until(
      () => `the message on stdout:\n${c.stderr}`,
      () => c.stdout.toString().includes("<13>after"),
    );
  });
});

describe("one slpc per --state file", () => {
  const point = (server: string, last: number) =>
    `${JSON.stringify({ servers: { [server]: { server: "a", last } } })}\n`;

  test("a second slpc on the same file exits 2 with one line naming it and the first's pid", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const state = join(bed.dir, "shared.json");
    const first = await bed.client(s, { forwardPort: out.port, args: ["--state", state] });
    await sendUdp(s.udpPort, numbered(3));
    await until("3 messages", () => out.messages.length === 3);
    await until("the first point on disk", () => existsSync(state) && savedPoint(state)?.last === 3);
    const before = readFileSync(state);
    const second = bed.slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--state", state]);
    expect(await second.exit()).toBe(2);
    expect(lines(second)).toEqual([
      `slpc: --state ${state}: in use by another slpc (pid ${first.pid}), which holds ${state}.lock; ` +
        "give each slpc a state file of its own",
    ]);
    expect(readFileSync(state)).toEqual(before);
    // The first goes on, and its file with it.
    await sendUdp(s.udpPort, numbered(2, "more"));
    await until("5 messages", () => out.messages.length === 5);
    first.kill("SIGTERM");
    expect(await first.exit()).toBe(0);
    expect(savedPoint(state)).toMatchObject({ last: 5 });
  });

  test("two started at the same moment, 10 times: one runs, the other exits 2, never a rename error", async () => {
    for (let round = 0; round < 10; round++) {
      const state = join(bed.dir, `race-${round}.json`);
      // A point to write back at start, as a converted or unchanged file is: the write the two raced on.
      writeFileSync(state, point("localhost:1", 7));
      const args = ["--stdout", "--state", state];
      const pair = [bed.slpc(1, args), bed.slpc(1, args)];
      await until("one of the two to exit", () => pair.some((c) => c.proc.exitCode !== null));
      const loser = pair.find((c) => c.proc.exitCode !== null)!;
      const winner = pair.find((c) => c !== loser)!;
      expect(await loser.exit()).toBe(2);
      // The pid only when the winner got to write it: the two took the lock microseconds apart.
      expect(lines(loser)).toEqual([expect.stringMatching(/: in use by another slpc( \(pid \d+\))?, which holds /)]);
      await winner.waitFor(/connecting to/);
      await sleep(100);
      expect(winner.proc.exitCode).toBeNull();
      expect(winner.stderr).not.toContain("--state");
      winner.kill("SIGTERM");
      expect(await winner.exit()).toBe(0);
      expect(savedPoint(state)).toEqual({ server: "a", last: 7 });
    }
  });

  test("two slpc on one file, each with its own server: the second never writes back a stale point", async () => {
    // The scenario: each wrote back the other's point as it read it at start, and after
    // SIGTERM of both one server's entry said "last":0, so a restart delivered all of it again.
    const [a, b] = [await bed.server(), await bed.server()];
    const out = await roomySink();
    const state = join(bed.dir, "one-per-ca.json");
    const first = await bed.client(a, { forwardPort: out.port, args: ["--state", state] });
    const second = bed.slpc(b.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--state", state]);
    expect(await second.exit()).toBe(2);
    await sendUdp(a.udpPort, numbered(1500));
    await until(
      () => `1,500 messages, ${out.messages.length} so far\n${first.stderr}\n${a.stderr}`,
      () => out.messages.length >= 1500,
    );
    first.kill("SIGTERM");
    expect(await first.exit()).toBe(0);
    expect(savedPoint(state, `localhost:${a.tlsPort}`)).toMatchObject({ last: 1500 });
    const again = await bed.client(a, { forwardPort: out.port, args: ["--state", state] });
    await sleep(500);
    expect(out.messages).toHaveLength(1500);
    again.kill("SIGTERM");
    expect(await again.exit()).toBe(0);
  });

  test("a second slpc naming the file through a symlink is refused too: the lock is beside the target", async () => {
    const state = join(bed.dir, "linked-twice.json");
    const link = join(bed.dir, "link-to-linked-twice.json");
    symlinkSync(state, link);
    const first = bed.slpc(1, ["--stdout", "--state", state]);
    await first.waitFor(/connecting to/);
    const second = bed.slpc(1, ["--stdout", "--state", link]);
    expect(await second.exit()).toBe(2);
    expect(lines(second)).toEqual([
      `slpc: --state ${link}: in use by another slpc (pid ${first.pid}), which holds ${state}.lock; ` +
        "give each slpc a state file of its own",
    ]);
  });

  test("a lock file that is a folder is exit 2 with one line", async () => {
    const state = join(bed.dir, "lock-folder.json");
    mkdirSync(`${state}.lock`);
    const c = bed.slpc(1, ["--stdout", "--state", state]);
    expect(await c.exit()).toBe(2);
    expect(lines(c)).toEqual([`slpc: --state ${state}: the lock file ${state}.lock is a folder, not a regular file`]);
  });

  test("a temporary file a crash left behind breaks nothing and is removed", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const state = join(bed.dir, "leftovers.json");
    writeFileSync(state, point(`localhost:${s.tlsPort}`, 0).replace('"a"', '"gone"'));
    const leftovers = [`${state}.tmp`, `${state}.tmp-4242-0123abcd`];
    for (const file of leftovers) writeFileSync(file, "half a state fi");
    const c = await bed.client(s, { forwardPort: out.port, args: ["--state", state] });
    await sendUdp(s.udpPort, numbered(2));
    await until("2 messages", () => out.messages.length === 2);
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(savedPoint(state)).toMatchObject({ last: 2 });
    for (const file of leftovers) expect(existsSync(file)).toBe(false);
  });
});

describe("odd --state paths", () => {
  test("a symlink is followed: its target is updated, and the link stays a link", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    mkdirSync(join(bed.dir, "real"));
    mkdirSync(join(bed.dir, "links"));
    const target = join(bed.dir, "real", "state.json");
    const link = join(bed.dir, "links", "state.json");
    writeFileSync(target, '{"servers":{}}\n');
    symlinkSync("../real/state.json", link);
    const c = await bed.client(s, { forwardPort: out.port, args: ["--state", link] });
    await sendUdp(s.udpPort, numbered(3));
    await until("3 messages", () => out.messages.length === 3);
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe("../real/state.json");
    expect(savedPoint(target)).toMatchObject({ last: 3 });
    expect(readdirSync(join(bed.dir, "links"))).toEqual(["state.json"]);
    expect(readdirSync(join(bed.dir, "real")).sort()).toEqual(["state.json", "state.json.lock"]);
  });

  test("a dangling symlink is followed: the first write makes its target", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const target = join(bed.dir, "dangling-target.json");
    const link = join(bed.dir, "dangling.json");
    symlinkSync(target, link);
    const c = await bed.client(s, { forwardPort: out.port, args: ["--state", link] });
    await sendUdp(s.udpPort, numbered(2));
    await until("2 messages", () => out.messages.length === 2);
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(savedPoint(target)).toMatchObject({ last: 2 });
  });

  test("a symlink another user made in a folder anyone may write (/tmp) is not followed", async () => {
    // Whoever made it could point it at any file slpc may replace: the kernel's protected_symlinks rule.
    const shared = join(bed.dir, "shared-tmp");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const victim = join(bed.dir, "victim");
    writeFileSync(victim, "not yours\n");
    const link = join(shared, "state.json");
    symlinkSync(victim, link);
    lchownSync(link, 65534, 65534); // nobody's; the test runs as root, as CI does
    const c = bed.slpc(1, ["--stdout", "--state", link]);
    expect(await c.exit()).toBe(2);
    expect(lines(c)).toEqual([
      `slpc: --state ${link}: ${link} is a symbolic link another user made in a folder anyone may write; not followed`,
    ]);
    expect(readFileSync(victim, "utf8")).toBe("not yours\n");
  });

  test("a dangling symlink into a folder that does not exist is exit 2 with one line", async () => {
    const link = join(bed.dir, "nowhere.json");
    symlinkSync(join(bed.dir, "no-such-folder", "state.json"), link);
    const c = bed.slpc(1, ["--stdout", "--state", link]);
    expect(await c.exit()).toBe(2);
    expect(lines(c)).toEqual([`slpc: --state ${link}: no folder ${join(bed.dir, "no-such-folder")} to keep it in`]);
  });

  test("a name too long for a temporary file beside it is exit 2 with one line, at start", async () => {
    const state = join(bed.dir, "s".repeat(245)); // 255 bytes at most a name: room for .lock, not for .tmp-PID-RANDOM
    writeFileSync(state, `${JSON.stringify({ servers: { "localhost:1": { server: "a", last: 5 } } })}\n`);
    const c = bed.slpc(1, ["--stdout", "--state", state]);
    expect(await c.exit()).toBe(2);
    expect(lines(c)).toEqual([`slpc: --state ${state}: cannot write: ENAMETOOLONG: name too long (open)`]);
    expect(savedPoint(state)).toEqual({ server: "a", last: 5 });
  });

  test("a symlink loop is exit 2 with one line", async () => {
    const loop = join(bed.dir, "loop.json");
    symlinkSync(`${loop}.other`, loop);
    symlinkSync(loop, `${loop}.other`);
    const c = bed.slpc(1, ["--stdout", "--state", loop]);
    expect(await c.exit()).toBe(2);
    expect(lines(c)).toEqual([`slpc: --state ${loop}: more than 40 symbolic links in a row (a loop?)`]);
  });

  test.each([
    ["a FIFO", "fifo", (path: string) => Bun.spawnSync(["mkfifo", path]).exitCode],
    [
      "a folder",
      "folder",
      (path: string) => {
        mkdirSync(path);
        return 0;
      },
    ],
    [
      "a character device",
      "character device",
      (path: string) => Bun.spawnSync(["mknod", path, "c", "1", "3"]).exitCode,
    ],
    [
      "a unix socket",
      "socket",
      (path: string) =>
        Bun.spawnSync(["python3", "-c", `import socket; socket.socket(socket.AF_UNIX).bind("${path}")`]).exitCode,
    ],
  ])("%s is exit 2 with one line at start, and stays as it was", async (_, kind, make) => {
    const path = join(bed.dir, `odd-${kind.replace(/ /g, "-")}`);
    expect(make(path)).toBe(0);
    const before = lstatSync(path);
    const c = bed.slpc(1, ["--stdout", "--state", path]);
    expect(await c.exit(5_000)).toBe(2);
    expect(lines(c)).toEqual([`slpc: --state ${path}: a ${kind}, not a regular file`]);
    const after = lstatSync(path);
    expect([after.ino, after.mode, after.rdev]).toEqual([before.ino, before.mode, before.rdev]);
    expect(readdirSync(bed.dir).filter((file) => file.startsWith(`odd-${kind.replace(/ /g, "-")}.`))).toEqual([]);
  });

  test("a symlink to a FIFO is exit 2 with one line naming both", async () => {
    const fifo = join(bed.dir, "linked-fifo");
    const link = join(bed.dir, "link-to-fifo.json");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    symlinkSync(fifo, link);
    const c = bed.slpc(1, ["--stdout", "--state", link]);
    expect(await c.exit(5_000)).toBe(2);
    expect(lines(c)).toEqual([`slpc: --state ${link}: its target ${fifo} is a fifo, not a regular file`]);
  });
});

describe("how often --state is written", () => {
  test("a state file that cannot be written is one line, not ten a second; the next write that can, does", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const folder = join(bed.dir, "goes-away");
    mkdirSync(folder);
    const state = join(folder, "state.json");
    const c = await bed.client(s, { forwardPort: out.port, args: ["--state", state] });
    renameSync(folder, `${folder}.moved`); // the folder is gone: every write fails
    for (let i = 0; i < 15; i++) {
      await sendUdp(s.udpPort, numbered(1, `while-gone-${i}`));
      await sleep(100);
    }
    await until("15 messages", () => out.messages.length === 15);
    expect(c.stderr.match(/cannot write/g)).toHaveLength(1);
    expect(c.stderr).toContain(`slpc: --state ${state}: cannot write: ENOENT: no such file or directory (open)\n`);
    renameSync(`${folder}.moved`, folder);
    await sendUdp(s.udpPort, numbered(1, "back"));
    await until("the point after the folder came back", () => existsSync(state) && savedPoint(state)?.last === 16);
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
  });

  // A message handed on after the last write comes again after a SIGKILL. Written once a second
  // (the first time 1 s after start), runs killed 0.6 s apart never wrote, and each delivered
  // again everything since the point an earlier run left: some messages came 5 times.
  test("SIGKILL every 0.6 s, 1,000 messages a second flowing: no message more than twice, none missing", async () => {
    const s = await bed.server();
    const out = await roomySink();
    const state = join(bed.dir, "kill-loop.json");
    const args = ["--forward-rate", "20000", "--state", state];
    let run = await bed.client(s, { forwardPort: out.port, args });
    const sender = steadySender(s.udpPort, 1000);
    bed.defer(() => sender.stop());
    await sleep(1500); // the first run lives long enough to leave a point
    for (let kill = 0; kill < 5; kill++) {
      run.kill("SIGKILL");
      await run.proc.exited;
      run = bed.slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, ...args]);
      await sleep(600);
    }
    await run.waitFor(/following server/);
    await sleep(500);
    sender.stop();
    const seqs = (messages: Buffer[]) => messages.map((message) => Number(String(message).split(" ")[1]));
    const missing = () => {
      const got = new Set(seqs(out.messages));
      const gone = sender.sent.map((_, i) => i + 1).filter((seq) => !got.has(seq));
      return `${gone.length} missing (${gone.slice(0, 3)}...${gone.slice(-3)}), ${out.drops()} dropped by the sink`;
    };
    await until(
      () => `every message at least once: ${missing()}\n${run.stderr}`,
      () => new Set(seqs(out.messages)).size >= sender.sent.length,
    );
    await sleep(500);
    run.kill("SIGTERM");
    expect(await run.exit()).toBe(0);
    expect(out.drops()).toBe(0);
    const times = new Map<number, number>();
    for (const seq of seqs(out.messages)) times.set(seq, (times.get(seq) ?? 0) + 1);
    const thrice = [...times].filter(([, count]) => count > 2);
    expect(`${thrice.length} messages came more than twice, such as ${thrice.slice(0, 5).join(" ")}`).toBe(
      "0 messages came more than twice, such as ",
    );
    expect([...times.keys()].sort((x, y) => x - y)).toEqual(sender.sent.map((_, i) => i + 1));
    expect(readdirSync(bed.dir).filter((file) => file.startsWith("kill-loop.json.tmp"))).toEqual([]);
  });
});

describe("SIGTERM with a backlog the output has not been given", () => {
  test("--forward-rate holding back a backlog: exit at once, no false refusal; a restart sends the rest", async () => {
    const s = await server();
    const out = await roomySink();
    const state = join(bed.dir, "backlog.json");
    const first = slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--forward-rate", "100", "--state", state]);
    await streamStarted(s);
    await feed(s, named("backlog", 1000));
    await until(
      () => `50 messages at the daemon, ${out.messages.length} so far`,
      () => out.messages.length >= 50,
    );
    const signalled = performance.now();
    first.kill("SIGTERM");
    expect(await first.exit(10_000)).toBe(0);
    // What was given goes out within UDP's 100 ms; what waits for --forward-rate is the next start's.
    expect(performance.now() - signalled).toBeLessThan(2000);
    expect(first.stderr).not.toMatch(/refused|did not/);
    const delivered = out.messages.length;
    expect(savedPoint(state)!.last).toBeGreaterThanOrEqual(delivered); // the first message is #1 or later
    const again = slpc(s.tlsPort, ["--forward", `127.0.0.1:${out.port}`, "--state", state]);
    await until(
      () => `1,000 messages, ${out.messages.length} so far\n${again.stderr}`,
      () => out.messages.length >= 1000,
    );
    await sleep(300); // anything more would be a duplicate
    expect(numbersOf(out.messages, "backlog")).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(delivered).toBeLessThan(1000);
  });

  test("relp:// to a slow daemon: SIGTERM waits for the window in flight, not for the backlog behind it", async () => {
    // A RELP daemon that acknowledges a message every 5 ms: 200 a second, the window of 128 in 0.64 s.
    let received = "";
    const acknowledged: number[] = [];
    const daemon = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          const timer = setInterval(() => {
            const owed = [...received.matchAll(/(\d+) syslog \d+ /g)].map((match) => Number(match[1]));
            const next = owed.find((txnr) => !acknowledged.includes(txnr));
            if (next !== undefined && socket.write(`${next} rsp 6 200 OK\n`) > 0) acknowledged.push(next);
          }, 5);
          bed.defer(() => clearInterval(timer));
        },
        data(socket, chunk) {
          received += Buffer.from(chunk).toString("latin1");
          if (/^1 open /.test(received) && !acknowledged.includes(1)) {
            acknowledged.push(1);
            const offers = "200 OK\nrelp_version=0\nrelp_software=test\ncommands=syslog";
            socket.write(`1 rsp ${offers.length} ${offers}\n`);
          }
        },
      },
    });
    bed.defer(() => daemon.stop(true));
    const s = await server();
    const state = join(bed.dir, "relp-backlog.json");
    const c = slpc(s.tlsPort, ["--forward", `relp://127.0.0.1:${daemon.port}`, "--state", state]);
    await streamStarted(s);
    await feed(s, named("slow", 2000));
    await until(
      () => `100 acknowledgements, ${acknowledged.length} so far`,
      () => acknowledged.length > 100,
    );
    const signalled = performance.now();
    c.kill("SIGTERM");
    expect(await c.exit(10_000)).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(3000);
    expect(c.stderr).not.toMatch(/did not acknowledge/);
    // The open took txnr 1: the message of txnr N is the (N - 1)th, all acknowledged in order.
    expect(savedPoint(state)!.last).toBe(acknowledged.length - 1);
  });
});
