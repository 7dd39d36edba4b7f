// The chain end to end with the real daemons and slps's buffer on disk (--buffer-dir): the
// server's rsyslog (omrelp, with the disk-assisted queue of deploy/rsyslog-server-relp.conf) or
// syslog-ng (syslog(transport(tcp)), deploy/syslog-ng-server-tcp.conf) into slps, slps SIGKILLed
// and restarted mid-stream several times, with slpc streaming throughout or stopped across each
// restart; and the whole chain acknowledged, rsyslog -> RELP -> slps (disk) -> TLS -> slpc
// (--state) -> RELP -> a home rsyslog writing a file, under random SIGKILLs of slps, slpc and the
// home rsyslog. Messages are numbered in their text; the tests count each number where it lands.
// SLP_CHAIN_SECONDS sets how long the chaos lasts (75 s unless told). Where a daemon is missing the
// tests are skipped with the reason, except under CI (SLP_REQUIRE_DAEMONS=1), where that fails the
// run. Lines starting "chain:" record the counts, for docs/behaviour.md.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type DaemonKind, findDaemon, linesOf, type ServerOutput, startDaemon } from "./daemons.ts";
import {
  type Child,
  freePort,
  runs,
  type ServerHandle,
  sleep,
  startClient,
  startServer,
  testBed,
  until,
} from "./kit.ts";

const CHAOS_SECONDS = Number(process.env.SLP_CHAIN_SECONDS ?? 75);
const RATE = 1000;
/** rsyslog's RELP window: what a RELP sender may have sent and not yet had acknowledged. */
const WINDOW = 128;

setDefaultTimeout(120_000 + 2 * CHAOS_SECONDS * 1000);

const bed = testBed();
const required = process.env.SLP_REQUIRE_DAEMONS === "1";

/** Why `kind` with `module` cannot run here, or undefined. */
function missingDaemon(kind: DaemonKind, module?: string): string | undefined {
  const found = findDaemon(kind);
  if (typeof found === "string") return found;
  const modules = found.cmd[found.cmd.indexOf("-M") + 1];
  if (module && modules && !existsSync(join(modules, module))) {
    return `rsyslog's ${module} is not installed (bash .ci/install-daemons installs rsyslog-relp)`;
  }
  return undefined;
}

/** Message `i` as the program on the server logs it. */
const line = (i: number) => `chain ${String(i).padStart(6, "0")}`;

/** How often each number 0..logged-1 landed in `text`, those missing, and how many came more than once. */
function arrivals(text: string, logged: number) {
  const counts = new Map<number, number>();
  for (const [, n] of text.matchAll(/chain (\d{6})/g)) counts.set(Number(n), (counts.get(Number(n)) ?? 0) + 1);
  const missing = Array.from({ length: logged }, (_, i) => i).filter((i) => !counts.has(i));
  const duplicated = [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
  const most = Math.max(0, ...counts.values());
  return { counts, missing, duplicated, most };
}

/**
 * One logger(1) writing numbered lines into the server daemon's socket at `rate` a second, paced
 * by the clock, as a busy program would, until stopped. `logged` is how many it has written.
 */
function steadyLogger(socket: string, rate = RATE) {
  const logger = Bun.spawn(["logger", "-u", socket, "--socket-errors=on", "-t", "chain"], {
    stdin: "pipe",
    stderr: "pipe",
  });
  const state = { logged: 0, stopped: false };
  const start = performance.now();
  const done = (async () => {
    while (!state.stopped) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      if (due > state.logged) {
        const lines = Array.from({ length: due - state.logged }, (_, i) => line(state.logged + i));
        logger.stdin.write(`${lines.join("\n")}\n`);
        await logger.stdin.flush();
        state.logged = due;
      }
      await sleep(10);
    }
    await logger.stdin.end();
    if ((await logger.exited) !== 0) throw new Error(`logger: ${await new Response(logger.stderr).text()}`);
  })();
  bed.defer(() => {
    state.stopped = true;
    logger.kill("SIGKILL");
  });
  return Object.assign(state, {
    /** Stops logging; resolves once logger has handed the daemon every line. */
    async stop(): Promise<number> {
      state.stopped = true;
      await done;
      return state.logged;
    },
  });
}

/** A folder of the test's own under the bed's, short: syslog-ng names a socket's state by its path's start. */
function folder(name: string): string {
  const dir = join(bed.dir, name);
  mkdirSync(dir);
  return dir;
}

/**
 * slps with an acknowledged input for `output` and its buffer in a folder, and the server's daemon
 * sending to it. `restartSlps` SIGKILLs slps, leaves it down `down` ms and starts it again on the
 * same ports, folder and flags, the daemon left alone.
 */
async function serverSide(kind: DaemonKind, output: ServerOutput, name: string) {
  const dir = folder(`${kind === "rsyslog" ? "rs" : "ng"}-${name}`);
  const port = await freePort("tcp");
  const args = [
    "--input",
    `${output === "relp" ? "relp" : "tcp"}://127.0.0.1:${port}`,
    "--buffer-dir",
    folder(`${name}-buffer`),
  ];
  const side = {
    slps: await bed.server(args),
    daemon: await startDaemon(kind, "server", dir, port, { output }),
    async restartSlps(down: number, killed = () => {}): Promise<ServerHandle> {
      side.slps.kill("SIGKILL");
      await side.slps.proc.exited;
      killed();
      await sleep(down);
      const { udpPort, tlsPort } = side.slps;
      side.slps = bed.track(await startServer(bed.pki, args, { udpPort, tlsPort }));
      return side.slps;
    },
  };
  bed.track(side.daemon.child);
  return side;
}

/**
 * slpc printing what it gets, with --state in `state`; stopped and started again as a test says.
 * `stdout` and `stderr` are those of all its runs, in order.
 */
function printingClient(state: string) {
  const runs: Child[] = [];
  return {
    async start(slps: ServerHandle) {
      runs.push(await bed.client(slps, { args: ["--replay", "--state", state, "--dead-after", "2"] }));
    },
    /** SIGTERM: slpc hands on what it holds and records where it stopped. */
    async stop() {
      const last = runs.at(-1)!;
      last.kill("SIGTERM");
      expect(await last.exit()).toBe(0);
    },
    stdout: () => runs.map((run) => run.stdout.toString()).join(""),
    stderr: () => runs.map((run) => run.stderr).join(""),
  };
}

interface Kill {
  /** Lines logged when slps was killed and when it was started again. */
  at: number;
  back: number;
}

const firstHops: { kind: DaemonKind; output: ServerOutput; module?: string; via: string }[] = [
  { kind: "rsyslog", output: "relp", module: "omrelp.so", via: "rsyslog's omrelp into relp://" },
  { kind: "syslog-ng", output: "tcp", via: "syslog-ng's syslog(transport(tcp)) into tcp://" },
];

const KILLS = 3;

for (const { kind, output, module, via } of firstHops) {
  const missing = missingDaemon(kind, module);
  if (missing && !required) console.warn(`chain.test.ts: skipping "${via}": ${missing}`);

  describe.skipIf(missing !== undefined && !required)(`${via} with --buffer-dir`, () => {
    for (const away of [false, true]) {
      const client = away ? "slpc stopped across each restart" : "slpc streaming throughout";
      test(`slps SIGKILLed ${KILLS} times mid-stream, ${client}: what arrives, and no gap line`, async () => {
        if (missing) throw new Error(missing);
        const side = await serverSide(kind, output, `${output}-${away ? "away" : "on"}`);
        const slpc = printingClient(join(bed.dir, `state-${output}-${away}.json`));
        await slpc.start(side.slps);
        const logger = steadyLogger(side.daemon.socket);
        const kills: Kill[] = [];
        for (let k = 0; k < KILLS; k++) {
          await sleep(2000);
          if (away) await slpc.stop();
          let at = 0;
          await side.restartSlps(2000, () => (at = logger.logged));
          kills.push({ at, back: logger.logged });
          if (away) {
            await sleep(1000); // slps takes what the daemon queued while no client is there
            await slpc.start(side.slps);
          }
        }
        await sleep(2000);
        const logged = await logger.stop();
        const have = () => arrivals(slpc.stdout(), logged).counts;
        await until(
          () => `the last line at slpc`,
          () => have().has(logged - 1),
          60_000,
        );
        // Over RELP every line comes, some out of order (rsyslog's second worker sends what it spilled to disk).
        if (output === "relp")
          await until(
            () => `${logged} at slpc (have ${have().size})`,
            () => have().size >= logged,
          );
        await sleep(1500); // what the daemon still sends again arrives too
        const { missing: lost, duplicated, counts } = arrivals(slpc.stdout(), logged);
        const twice = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
        const queued = kills.reduce((sum, kill) => sum + kill.back - kill.at, 0);
        // A loss, or a message twice, lies about a kill: lines the daemon had sent when slps died, logged
        // within the 2 s before it, or its last write into the connection slps left (logger's count lags
        // a little too). After each restart everything comes, from the daemon's queue.
        const nearKill = (i: number, { at }: Kill) => i >= at - 2 * RATE && i < at + RATE / 2;
        const perKill = kills.map((kill) => lost.filter((i) => nearKill(i, kill)).length);
        const atKills = kills.map(({ at }) => at).join(", ");
        console.log(
          `chain: ${via}, --buffer-dir, ${client}, ${logged} logged, slps SIGKILLed ${KILLS} times, down 2 s ` +
            `at ${atKills} logged (${queued} logged while it was down): ` +
            `${lost.length} lost (${runs(lost)}; per kill ${perKill.join(", ")}), ` +
            `${duplicated} twice (${runs(twice)})`,
        );
        expect(slpc.stderr()).not.toContain("gap");
        const unexplained = (numbers: number[]) => numbers.filter((i) => !kills.some((kill) => nearKill(i, kill)));
        expect(unexplained(twice)).toEqual([]);
        expect(unexplained(lost)).toEqual([]);
        if (output === "relp") {
          // RELP loses nothing. slps acknowledges a message once it is on disk (written and synced), so
          // a kill between the two leaves it stored and not acknowledged, and rsyslog sends it again:
          // at most its window in flight, per kill.
          expect(lost).toEqual([]);
          expect(duplicated).toBeLessThanOrEqual(KILLS * WINDOW);
        } else {
          // TCP gives no receipt: what the kernels held when slps died is lost; syslog-ng sends nothing twice.
          expect(duplicated).toBe(0);
        }
      });
    }
  });
}

/** Lines the home rsyslog has filed so far. */
const filed = (file: string) => (existsSync(file) ? readFileSync(file, "latin1") : "");

describe.skipIf(missingDaemon("rsyslog", "omrelp.so") !== undefined && !required)(
  "the whole chain acknowledged",
  () => {
    const chain = "rsyslog -> RELP -> slps (disk) -> slpc (--state) -> RELP -> rsyslog";
    test(`${chain}, random SIGKILLs for ${CHAOS_SECONDS} s: none lost, duplicates within the docs`, async () => {
      const missing = missingDaemon("rsyslog", "omrelp.so") ?? missingDaemon("rsyslog", "imrelp.so");
      if (missing) throw new Error(missing);
      const homeDir = folder("home");
      const homePort = await freePort("tcp");
      const startHome = async () => {
        const daemon = await startDaemon("rsyslog", "home", homeDir, homePort, { input: "relp" });
        bed.track(daemon.child);
        return daemon;
      };
      let home = await startHome();
      const side = await serverSide("rsyslog", "relp", "chain");
      const state = join(bed.dir, "state-chain.json");
      const forward = `relp://127.0.0.1:${homePort}`;
      const startSlpc = () =>
        startClient(bed.pki, side.slps, { forward, args: ["--replay", "--state", state, "--dead-after", "2"] });
      const slpcRuns: Child[] = [bed.track(await startSlpc())];
      const logger = steadyLogger(side.daemon.socket);

      // One kill every 2 to 5 s, of one of the three, each down 0 to 2 s; what each may cost, as the docs say it.
      const kills = { slps: 0, slpc: 0, home: 0 };
      let allowed = 0;
      const end = performance.now() + CHAOS_SECONDS * 1000;
      while (performance.now() < end) {
        await sleep(2000 + Math.random() * 3000);
        const which = (["slps", "slpc", "home"] as const)[Math.floor(Math.random() * 3)]!;
        const down = Math.random() * 2000;
        kills[which]++;
        if (which === "slps") {
          // The server's rsyslog sends again what slps stored and had not acknowledged: its window, on
          // each of its sessions (a second one once its queue spills to disk).
          allowed += 2 * WINDOW;
          await side.restartSlps(down);
        } else if (which === "slpc") {
          // slpc sends again its window in flight, and what the home rsyslog acknowledged since
          // --state was last written (at most 100 ms before, plus one write): counted here as all the
          // home rsyslog filed in the 300 ms before the kill.
          const before = linesOf(home.file).length;
          await sleep(300);
          const slpc = slpcRuns.at(-1)!;
          slpc.kill("SIGKILL");
          await slpc.proc.exited;
          allowed += WINDOW + linesOf(home.file).length - before;
          await sleep(down);
          slpcRuns.push(bed.track(await startSlpc()));
        } else {
          // The home rsyslog filed what slpc had in flight and did not acknowledge it: slpc sends it again.
          allowed += WINDOW;
          home.child.kill("SIGKILL");
          await home.child.proc.exited;
          await sleep(down);
          home = await startHome();
        }
      }
      const logged = await logger.stop();
      await until(
        () => `${logged} filed at home (have ${arrivals(filed(home.file), logged).counts.size})`,
        () => arrivals(filed(home.file), logged).counts.size >= logged,
        180_000,
      );
      await sleep(2000); // what is still sent again lands too
      const { missing: lost, duplicated, most } = arrivals(filed(home.file), logged);
      const slpcStderr = slpcRuns.map((run) => run.stderr).join("");
      const total = kills.slps + kills.slpc + kills.home;
      console.log(
        `chain: the whole chain, ${CHAOS_SECONDS} s at ${RATE}/s, ${logged} logged; SIGKILLs: ${kills.slps} of slps, ` +
          `${kills.slpc} of slpc, ${kills.home} of the home rsyslog; ${lost.length} lost, ${duplicated} duplicates ` +
          `(the docs allow ${allowed}), none more than ${most} times`,
      );
      expect(lost).toEqual([]);
      expect(slpcStderr).not.toContain("gap");
      expect(duplicated).toBeLessThanOrEqual(allowed);
      expect(most).toBeLessThanOrEqual(1 + total);
    });
  },
);
