// The first hop with the real daemons: the server's rsyslog sending over RELP (omrelp) and
// syslog-ng over TCP (its syslog() driver, octet-counted, and network(), LF-framed) into slps's
// inputs, each with its snippet from deploy/ as docs/setup.md shows it, through slps to slpc.
// Every message arrives once and in order; with no client to take them, slps takes what its
// buffer holds and the daemon queues the rest; and slps SIGKILLed and restarted mid-stream costs
// what docs/behaviour.md says, measured here. Where a daemon is missing these tests are skipped
// with the reason, except under CI (SLP_REQUIRE_DAEMONS=1), where that fails the run. Lines
// starting "first_hop:" record what a restart cost, for the docs.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type DaemonKind, findDaemon, type ServerOutput, startDaemon } from "./daemons.ts";
import {
  type Child,
  freePort,
  runs,
  type ServerHandle,
  sleep,
  snapshotOf,
  startServer,
  testBed,
  until,
} from "./kit.ts";

setDefaultTimeout(120_000);

const bed = testBed();
const required = process.env.SLP_REQUIRE_DAEMONS === "1";
const COUNT = 10_000;

/** Line `i` as a program on the server logs it. */
const line = (i: number) => `hop ${String(i).padStart(5, "0")}`;

/** How often each message reached slpc's stdout, in arrival order, and those that did not. */
function arrivals(stdout: Buffer, count = COUNT) {
  const order = [...stdout.toString().matchAll(/hop (\d{5})/g)].map((match) => Number(match[1]));
  const counts = new Map<number, number>();
  for (const i of order) counts.set(i, (counts.get(i) ?? 0) + 1);
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !counts.has(i));
  const duplicated = order.length - counts.size;
  return { order, counts, missing, duplicated };
}

/** Why `kind` cannot send over `output` here, or undefined. */
function missingDaemon(kind: DaemonKind, output: ServerOutput): string | undefined {
  const found = findDaemon(kind);
  if (typeof found === "string") return found;
  const modules = found.cmd[found.cmd.indexOf("-M") + 1];
  if (output === "relp" && modules && !existsSync(join(modules, "omrelp.so"))) {
    return "rsyslog's omrelp is not installed (bash .ci/install-daemons installs rsyslog-relp)";
  }
  return undefined;
}

/**
 * slps with an input for `output` (and its usual UDP one), the server's daemon sending to it over
 * `output`, each in its folder. `send` logs lines `from` to `to` (exclusive) on the server, as a
 * program would, with logger(1).
 */
async function firstHop(
  kind: DaemonKind,
  output: ServerOutput,
  name: string,
  slpsArgs: string[] = [],
  edit?: (snippet: string) => string,
) {
  // Short: syslog-ng names each socket's state by the start of its path, and two long paths collide.
  const dir = join(bed.dir, `${kind === "rsyslog" ? "rs" : "ng"}-${output}-${name}`);
  mkdirSync(dir);
  const port = await freePort("tcp");
  const input = `${output === "relp" ? "relp" : "tcp"}://127.0.0.1:${port}`;
  const args = ["--input", input, ...slpsArgs];
  const hop = {
    slps: await bed.server(args),
    daemon: await startDaemon(kind, "server", dir, port, { output, edit }),
    /** Logs lines `from` to `to` (exclusive), in batches of `batch` with `pause` ms between. */
    async send(from: number, to: number, batch = to - from, pause = 0) {
      for (let at = from; at < to; at += batch) {
        const lines = Array.from({ length: Math.min(batch, to - at) }, (_, i) => line(at + i));
        const logger = Bun.spawn(["logger", "-u", hop.daemon.socket, "--socket-errors=on", "-t", "hop"], {
          stdin: Buffer.from(`${lines.join("\n")}\n`),
          stderr: "pipe",
        });
        if ((await logger.exited) !== 0) throw new Error(`logger: ${await new Response(logger.stderr).text()}`);
        if (pause > 0) await sleep(pause);
      }
    },
    /** Logs lines `from` to `to` (exclusive) through one logger, `perTick` every 10 ms: a steady stream. */
    async stream(from: number, to: number, perTick = 10) {
      const logger = Bun.spawn(["logger", "-u", hop.daemon.socket, "--socket-errors=on", "-t", "hop"], {
        stdin: "pipe",
        stderr: "pipe",
      });
      for (let at = from; at < to; at += perTick) {
        const lines = Array.from({ length: Math.min(perTick, to - at) }, (_, i) => line(at + i));
        logger.stdin.write(`${lines.join("\n")}\n`);
        await logger.stdin.flush();
        await sleep(10);
      }
      await logger.stdin.end();
      if ((await logger.exited) !== 0) {
        throw new Error(`logger: ${await new Response(logger.stderr).text()}; the daemon: ${hop.daemon.child.stderr}`);
      }
    },
    /** SIGKILLs slps and starts it again on the same ports with the same flags; the daemon is left alone. */
    async restartSlps(down: number): Promise<ServerHandle> {
      hop.slps.kill("SIGKILL");
      await hop.slps.proc.exited;
      await sleep(down);
      const { udpPort, tlsPort } = hop.slps;
      hop.slps = bed.track(await startServer(bed.pki, args, { udpPort, tlsPort }));
      return hop.slps;
    },
  };
  bed.track(hop.daemon.child);
  return hop;
}

/** slpc printing what it gets, from the start of the server's buffer. */
const follow = (slps: ServerHandle): Promise<Child> => bed.client(slps, { args: ["--replay"] });

/**
 * Each daemon and how it sends, and whether it keeps the order of what it queued: rsyslog sends
 * what its disk-assisted queue spilled to disk from a second worker, on a second RELP session.
 */
const forms: { kind: DaemonKind; output: ServerOutput; via: string; keepsOrder: boolean }[] = [
  { kind: "rsyslog", output: "relp", via: "rsyslog's omrelp into relp://", keepsOrder: false },
  { kind: "syslog-ng", output: "tcp", via: "syslog-ng's syslog(transport(tcp)) into tcp://", keepsOrder: true },
  { kind: "syslog-ng", output: "tcp-lf", via: "syslog-ng's network(transport(tcp)) into tcp://", keepsOrder: true },
];

for (const { kind, output, via, keepsOrder } of forms) {
  const missing = missingDaemon(kind, output);
  if (missing && !required) console.warn(`first_hop.test.ts: skipping "${via}": ${missing}`);
  const check = () => {
    if (missing) throw new Error(missing);
  };

  describe.skipIf(missing !== undefined && !required)(via, () => {
    test(`${COUNT} messages arrive at slpc, each once, in order`, async () => {
      check();
      const hop = await firstHop(kind, output, "all");
      const slpc = await follow(hop.slps);
      await hop.send(0, COUNT);
      await until(
        () => `${COUNT} messages at slpc (have ${arrivals(slpc.stdout).counts.size})`,
        () => arrivals(slpc.stdout).counts.size >= COUNT,
        60_000,
      );
      await sleep(500);
      const { order } = arrivals(slpc.stdout);
      expect(order).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    });

    test("with no client, slps takes what --buffer holds, the daemon queues the rest, a client gets all", async () => {
      check();
      // More than the daemon keeps in memory: rsyslog's queue spills to disk past 10,000 (deploy/).
      const count = 3 * COUNT;
      const buffer = 256 * 1024;
      const hop = await firstHop(kind, output, "full", ["--buffer", String(buffer)]);
      await hop.send(0, count);
      // slps stops reading once what nobody was sent fills --buffer: the count stops short, and stays.
      let held = await snapshotOf(hop.slps);
      for (let since = performance.now(); performance.now() - since < 1500; await sleep(100)) {
        const now = await snapshotOf(hop.slps);
        if (now.received !== held.received) since = performance.now();
        held = now;
      }
      expect(held.received).toBeLessThan(count);
      expect(held.buffer.first).toBe(1); // nothing forgotten
      expect(held.buffer.bytes + 16 * held.buffer.messages).toBeLessThanOrEqual(buffer);
      const slpc = await follow(hop.slps);
      await until(
        () => `${count} messages at slpc (have ${arrivals(slpc.stdout, count).counts.size})`,
        () => arrivals(slpc.stdout, count).counts.size >= count,
        60_000,
      );
      await sleep(500);
      const { order, missing, duplicated } = arrivals(slpc.stdout, count);
      expect({ missing, duplicated }).toEqual({ missing: [], duplicated: 0 });
      if (keepsOrder) expect(order).toEqual(Array.from({ length: count }, (_, i) => i));
      console.log(`first_hop: ${via}, no client, --buffer ${buffer}: slps held ${held.received}, the daemon the rest`);
    });

    for (const away of [false, true]) {
      const client = away ? "no client connected" : "a client streaming";
      test(`slps SIGKILLed and restarted mid-stream, ${client}: what was sent again, what was lost`, async () => {
        check();
        const hop = await firstHop(kind, output, away ? "away" : "kill");
        let slpc = away ? undefined : await follow(hop.slps);
        // About 1,000 a second: slps dies halfway, stays down for 2 s while the daemon queues, and
        // comes back on the same ports; slpc follows its new run from its first message.
        const feeding = hop.stream(0, COUNT);
        const at = async () => (await snapshotOf(hop.slps)).received;
        for (let received = 0; received < COUNT / 2; received = await at()) await sleep(100);
        const atKill = slpc ? arrivals(slpc.stdout).counts.size : 0;
        await hop.restartSlps(2000);
        slpc ??= await follow(hop.slps);
        await feeding;
        await until(
          () => `message ${COUNT - 1} at slpc (have ${arrivals(slpc!.stdout).counts.size})`,
          () => arrivals(slpc!.stdout).counts.has(COUNT - 1),
          60_000,
        );
        await sleep(2000); // what the daemon still sends again arrives too
        const { missing, duplicated, counts } = arrivals(slpc.stdout);
        const twice = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
        const record = `${missing.length} lost (${runs(missing)}), ${duplicated} duplicated (${runs(twice)})`;
        console.log(`first_hop: ${via}, ${client}, slps SIGKILLed at ${atKill} at slpc, down 2 s: ${record}`);
        // A loss lies before the kill: from a little after it on, all is there, from the daemon's queue.
        expect(missing.filter((i) => i > COUNT / 2 + 1000)).toEqual([]);
        if (!away) expect(slpc.stderr).toMatch(/gap: an unknown number of messages lost, server restarted/);
      });
    }
  });
}

describe.skipIf(missingDaemon("rsyslog", "relp") !== undefined && !required)("rsyslog's omrelp held back", () => {
  test("omrelp gives up on a session slps holds back past its timeout, and opens another: none lost", async () => {
    const missing = missingDaemon("rsyslog", "relp");
    if (missing) throw new Error(missing);
    // omrelp waits 90 s for an answer by default; 2 s here, so that it gives up a few times.
    const timeout = (snippet: string) => snippet.replace('type="omrelp"', 'type="omrelp" timeout="2"');
    const buffer = ["--buffer", String(256 * 1024)];
    const hop = await firstHop("rsyslog", "relp", "timeout", buffer, timeout);
    const count = 2 * COUNT;
    await hop.send(0, count);
    await hop.daemon.child.waitFor(/session broken/, 20_000);
    await sleep(5000);
    const slpc = await follow(hop.slps);
    // Alone this takes about 9 s; once in a full CI run 4,919 of 20,000 had come after 60 s, so the
    // wait is longer, and a timeout shows what slps and rsyslog said last.
    const tail = (text: string) => text.split("\n").slice(-12).join("\n");
    await until(
      () =>
        `${count} messages at slpc (have ${arrivals(slpc.stdout, count).counts.size})\n` +
        `slps said:\n${tail(hop.slps.stderr)}\nrsyslog said:\n${tail(hop.daemon.child.stderr)}`,
      () => arrivals(slpc.stdout, count).counts.size >= count,
      150_000,
    );
    await sleep(1000);
    const { missing: lost, duplicated } = arrivals(slpc.stdout, count);
    const broken = hop.daemon.child.stderr.match(/session broken/g)?.length;
    const record = `its session broke ${broken} times; ${lost.length} lost, ${duplicated} twice`;
    console.log(`first_hop: omrelp with timeout 2 s, held back 7 s: ${record}`);
    expect(lost).toEqual([]);
    // When rsyslog gives up a session as slps takes again, it can send its window again, and the
    // message in hand: 129 came twice in 1 run of 4, none in the others.
    expect(duplicated).toBeLessThanOrEqual(129);
  }, 240_000);
});
