// --forward journal against a real systemd-journald, end to end: real slps, TLS and UDP on loopback,
// and what `journalctl -o json` reads back. Each test starts a journald of its own, in a namespace
// (`systemd-journald NAMESPACE`, as systemd-journald@.service runs it): its socket is
// /run/systemd/journal.NAMESPACE/socket and its journal a volatile one under /run/log/journal, so
// the machine's own journal, if it has one, is not touched; all of it is removed after the test.
// journald needs root. Where it cannot run these tests are skipped with the reason, except
// under CI (SLP_REQUIRE_DAEMONS=1), where that fails the run.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ledger, MAX_MESSAGE, MAX_SD_NAMES, UnixDatagramConnection } from "../lib.ts";
import { JournalOutput } from "../slpc/outputs/journal.ts";
import { Child, type ServerHandle, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
const JOURNALD = "/lib/systemd/systemd-journald";
const required = process.env.SLP_REQUIRE_DAEMONS === "1";
const COUNT = 10_000;

/** Why journald cannot run here, or undefined when it can. */
function unavailable(): string | undefined {
  if (!existsSync(JOURNALD)) return `${JOURNALD} is missing (bash .ci/install-daemons installs systemd)`;
  if (process.getuid?.() !== 0) return "systemd-journald runs as root only";
  if (!existsSync("/etc/machine-id")) return "/etc/machine-id is missing: journald names its journal after it";
  return undefined;
}
const missing = unavailable();
if (missing && required) throw new Error(`journal tests: ${missing}`);
const journalTest = missing ? test.skip : test;
if (missing) console.warn(`journal tests skipped: ${missing}`);

let namespaces = 0;

/**
 * Where this process's cgroup v2 hierarchy is mounted, to place slpc in a unit's cgroup as systemd
 * would; or why that cannot be done here. Never beside a running systemd: its cgroups are its own.
 */
function cgroupRoot(): { root: string } | { why: string } {
  if (missing) return { why: missing };
  if (readFileSync("/proc/1/comm", "utf8").trim() === "systemd")
    return { why: "systemd is PID 1 and owns the cgroups" };
  const mount = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .find((line) => line.includes(" - cgroup2 "));
  const own = readFileSync("/proc/self/cgroup", "utf8").includes("0::/\n");
  if (!mount || !own) return { why: "no cgroup v2 hierarchy with this process at its root" };
  return { root: mount.split(" ")[4]! };
}
const cgroups = cgroupRoot();

/**
 * A journald of the test's own, in namespace `slptest<pid>x<n>`: a drop-in under /run sets its
 * journal volatile and turns its rate limit off (the test runner's own unit would be counted);
 * `stop` and `start` again keep the namespace, its socket and journal.
 */
async function journald(options: { started?: boolean; rateLimit?: string[] } = {}) {
  const namespace = `slptest${process.pid}x${++namespaces}`;
  const socket = `/run/systemd/journal.${namespace}/socket`;
  const machineId = readFileSync("/etc/machine-id", "utf8").trim();
  const directory = `/run/log/journal/${machineId}.${namespace}`;
  const dropIns = `/run/systemd/journald@${namespace}.conf.d`;
  mkdirSync(dropIns, { recursive: true });
  const conf = [
    "[Journal]",
    "Storage=volatile",
    "RuntimeMaxUse=64M",
    ...(options.rateLimit ?? ["RateLimitIntervalSec=0"]),
  ];
  writeFileSync(join(dropIns, "slp-test.conf"), `${conf.join("\n")}\n`);
  let child: Child | undefined;
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    child?.kill(signal);
    await child?.proc.exited;
  };
  const signal = (name: NodeJS.Signals) => child?.kill(name);
  bed.defer(async () => {
    await stop("SIGKILL");
    for (const path of [
      dropIns,
      directory,
      `/run/systemd/journal.${namespace}`,
      `/var/log/journal/${machineId}.${namespace}`,
    ])
      rmSync(path, { recursive: true, force: true });
  });
  const start = async () => {
    child = new Child([JOURNALD, namespace], { SYSTEMD_LOG_TARGET: "console" });
    const probe = new UnixDatagramConnection(socket);
    await until(
      () => `journald to take datagrams at ${socket}: ${child?.stderr}`,
      () => {
        try {
          probe.connect();
          return true;
        } catch {
          return false;
        } finally {
          probe.close();
        }
      },
    );
  };
  if (options.started ?? true) await start();
  return {
    namespace,
    socket,
    start,
    stop,
    signal,
    /**
     * Every entry slpc wrote (those with SLP_SEQ) that `matches` select, as `journalctl -o json --all`
     * prints them, in order; with `fields`, only those fields of each.
     */
    entries(matches: string[] = [], fields: string[] = []): Record<string, any>[] {
      const only = fields.length > 0 ? [`--output-fields=${[...fields, "SLP_SEQ"].join(",")}`] : [];
      const args = ["journalctl", `--directory=${directory}`, "-o", "json", "--all", "--no-pager", ...only];
      const run = Bun.spawnSync([...args, ...matches]);
      if (run.exitCode !== 0) throw new Error(`journalctl: ${run.stderr.toString()}`);
      return run.stdout
        .toString()
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line))
        .filter((entry) => entry.SLP_SEQ !== undefined);
    },
    /** Waits until `count` entries that `matches` select are in the journal; polls journalctl twice a second. */
    async wait(count: number, matches: string[] = [], what = () => "", ms = 30_000): Promise<void> {
      const deadline = Date.now() + ms;
      for (;;) {
        const have = this.entries(matches, ["SLP_FROM"]).length;
        if (have >= count) return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} entries, have ${have}\n${what()}`);
        await sleep(500);
      }
    },
  };
}

/** The fields a client sets, as journalctl shows them: journald's own (_PID, __CURSOR and so on) left out. */
const clientFields = (entry: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(entry).filter(([name]) => !name.startsWith("_")));

const target = (s: ServerHandle) => `localhost:${s.tlsPort}`;

/** slpc following `servers`, writing into journald's socket at `socket`. */
function slpcInto(socket: string, servers: ServerHandle[], args: string[] = []): Child {
  const more = servers.slice(1).flatMap((s) => ["--server", target(s)]);
  return bed.slpc(servers[0]!.tlsPort, [...more, "--forward", `journal:${socket}`, ...args]);
}

async function following(c: Child, servers: ServerHandle[]): Promise<void> {
  for (const s of servers) await c.waitFor(new RegExp(`${target(s)}: following server`));
}

describe("--forward journal", () => {
  journalTest("each kind of message arrives with the fields docs/output.md names, byte for byte", async () => {
    const journal = await journald();
    const s = await bed.server();
    const c = slpcInto(journal.socket, [s]);
    await following(c, [s]);
    const big = "<13>Nov 27 05:32:12 web-server big: ";
    const sent = [
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" ' +
        'eventSource="Application"][origin ip="192.0.2.1"] An application event',
      "<38>Nov 27 05:32:09 web-server sshd[8119]: Failed password for root from 192.0.2.1",
      "no PRI, no header: kept as it came",
      Buffer.concat([Buffer.from("<13>Nov 27 05:32:10 web-server app: "), Buffer.from([0xff, 0xfe, 0x41])]),
      "<13>Nov 27 05:32:11 web-server app: first line\nsecond line",
      big.padEnd(MAX_MESSAGE, "x"),
    ];
    await sendUdp(
      s.udpPort,
      sent.map((message) => Buffer.from(message)),
    );
    await journal.wait(6, [], () => c.stderr);
    const entries = journal.entries();
    const server = entries[0]!.SLP_SERVER;
    expect(server).toMatch(/^[0-9a-f]{16}$/);
    const slp = (seq: number) => ({ SLP_FROM: target(s), SLP_SERVER: server, SLP_SEQ: String(seq) });
    const bsd = (seq: number, time: string, app: string) => ({
      PRIORITY: "5",
      SYSLOG_FACILITY: "1",
      SYSLOG_IDENTIFIER: app,
      SYSLOG_TIMESTAMP: `Nov 27 05:32:${time}`,
      SLP_HOST: "web-server",
      ...slp(seq),
    });
    expect(entries.map(clientFields)).toEqual([
      {
        PRIORITY: "5",
        SYSLOG_FACILITY: "20",
        SYSLOG_IDENTIFIER: "evntslog",
        SYSLOG_PID: "1234",
        SYSLOG_TIMESTAMP: "2003-10-11T22:14:15.003Z",
        SLP_HOST: "mymachine.example.com",
        SLP_MSGID: "ID47",
        SLP_SD_EXAMPLESDID_32473_IUT: "3",
        SLP_SD_EXAMPLESDID_32473_EVENTSOURCE: "Application",
        SLP_SD_ORIGIN_IP: "192.0.2.1",
        ...slp(1),
        MESSAGE: "An application event",
      },
      {
        PRIORITY: "6",
        SYSLOG_FACILITY: "4",
        SYSLOG_IDENTIFIER: "sshd",
        SYSLOG_PID: "8119",
        SYSLOG_TIMESTAMP: "Nov 27 05:32:09",
        SLP_HOST: "web-server",
        ...slp(2),
        MESSAGE: "Failed password for root from 192.0.2.1",
      },
      { ...slp(3), MESSAGE: "no PRI, no header: kept as it came" },
      { ...bsd(4, "10", "app"), MESSAGE: [0xff, 0xfe, 0x41] },
      { ...bsd(5, "11", "app"), MESSAGE: "first line\nsecond line" },
      { ...bsd(6, "12", "big"), MESSAGE: "".padEnd(MAX_MESSAGE - big.length, "x") },
    ]);
    expect(c.stderr).not.toMatch(/forward to/);
  });

  journalTest("10,000 messages through slps and slpc: each in the journal once, by SLP_SEQ", async () => {
    const journal = await journald();
    const s = await bed.server();
    const c = slpcInto(journal.socket, [s]);
    await following(c, [s]);
    const text = (i: number) => (i % 10 === 9 ? `seq ${i} first line\nsecond line of ${i}` : `seq ${i}`);
    const messages = Array.from({ length: COUNT }, (_, i) =>
      Buffer.from(`<13>Nov 27 05:00:00 web fwdtest: ${text(i)}`),
    );
    for (let i = 0; i < COUNT; i += 500) {
      await sendUdp(s.udpPort, messages.slice(i, i + 500));
      await sleep(10);
    }
    await journal.wait(COUNT, [], () => c.stderr);
    await sleep(500); // anything more would be a duplicate
    const entries = journal.entries([], ["MESSAGE"]);
    expect(entries).toHaveLength(COUNT);
    const bySeq = new Map(entries.map((entry) => [Number(entry.SLP_SEQ), entry.MESSAGE]));
    expect([...bySeq.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: COUNT }, (_, i) => i + 1));
    for (const [seq, message] of bySeq) expect(message).toBe(text(seq - 1));
    expect(c.stderr).not.toMatch(/forward to/);
  });

  journalTest(
    "journald stopped mid-stream, or killed with its queue full, and started again: nothing lost, one line",
    async () => {
      const journal = await journald();
      const s = await bed.server();
      const c = slpcInto(journal.socket, [s]);
      await following(c, [s]);
      let sent = 0;
      const feed = async (until: number) => {
        for (; sent < until; sent += 100) {
          await sendUdp(
            s.udpPort,
            Array.from({ length: 100 }, (_, i) => Buffer.from(`<13>app: n ${sent + i + 1}`)),
          );
          await sleep(50); // 2,000 a second
        }
      };
      await feed(2000);
      await journal.stop(); // SIGTERM, as systemctl stop sends it
      await feed(4000); // a second without journald, and slpc's retries
      await journal.start();
      await feed(6000);
      // Frozen, journald reads nothing: its queue fills with what its socket took, and slpc waits.
      journal.signal("SIGSTOP");
      await feed(7000);
      // Killed so, it takes that queue with it: a resume point moved when the socket took them would lose it.
      await journal.stop("SIGKILL");
      await feed(8000);
      await journal.start();
      await feed(10_000);
      await journal.wait(10_000, [], () => c.stderr);
      await sleep(500);
      const numbers = journal.entries([], ["MESSAGE"]).map((entry) => Number(/n (\d+)/.exec(entry.MESSAGE)![1]));
      const seen = new Set(numbers);
      const missing = Array.from({ length: 10_000 }, (_, i) => i + 1).filter((n) => !seen.has(n));
      expect(missing).toEqual([]);
      const lines = c.stderr.split("\n").filter((line) => line.includes("forward to"));
      console.log(
        `journal: stopped twice mid-stream, ${numbers.length - 10_000} messages came twice; slpc said: ${lines}`,
      );
      // The second failure came within a minute of the first: counted, not said.
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`forward to journal:${journal.socket}: `);
      expect(lines[0]).toContain("is systemd-journald running?");
    },
  );

  journalTest(
    "no journald at first: the messages wait, slpc says so in one line, and all arrive once it runs",
    async () => {
      const journal = await journald({ started: false });
      const s = await bed.server();
      const c = slpcInto(journal.socket, [s]);
      await following(c, [s]);
      await sendUdp(
        s.udpPort,
        Array.from({ length: 100 }, (_, i) => Buffer.from(`<13>app: early ${i}`)),
      );
      await c.waitFor(/forward to journal:/);
      await sleep(2500); // retries, each counted and none said
      await journal.start();
      await journal.wait(100, [], () => c.stderr);
      expect(journal.entries([], ["MESSAGE"]).map((entry) => entry.MESSAGE)).toEqual(
        Array.from({ length: 100 }, (_, i) => `early ${i}`),
      );
      const lines = c.stderr.split("\n").filter((line) => line.includes("forward to"));
      expect(lines).toEqual([
        expect.stringContaining(
          `forward to journal:${journal.socket}: ${journal.socket}: No such file or directory (ENOENT); ` +
            "is systemd-journald running?",
        ),
      ]);
    },
  );

  journalTest("the output of a two-server slpc: each server's messages are told apart by SLP_FROM", async () => {
    const journal = await journald();
    const servers = [await bed.server(), await bed.server()];
    const c = slpcInto(journal.socket, servers);
    await following(c, servers);
    for (const [i, s] of servers.entries()) {
      await sendUdp(
        s.udpPort,
        Array.from({ length: 200 }, (_, n) => Buffer.from(`<13>app: from s${i} ${n}`)),
      );
    }
    await journal.wait(400, [], () => c.stderr);
    const runs = new Set<string>();
    for (const [i, s] of servers.entries()) {
      const entries = journal.entries([`SLP_FROM=${target(s)}`], ["MESSAGE", "SLP_SERVER"]);
      expect(entries.map((entry) => entry.MESSAGE)).toEqual(Array.from({ length: 200 }, (_, n) => `from s${i} ${n}`));
      runs.add(entries[0]!.SLP_SERVER);
    }
    expect(runs.size).toBe(2); // and each server's run has an SLP_SERVER of its own
  });
});

describe("the journal output, in this process", () => {
  /** A JournalOutput of one server "s" into `socket`, its ledger, and the lines it logged. */
  function output(socket: string, sendBuffer?: number) {
    const ledger = new Ledger<string>(["s"], new Map());
    const lines: string[] = [];
    const log = (line: string) => void lines.push(line);
    const name = `journal:${socket}`;
    const journal = new JournalOutput<string>({
      ledger,
      rate: undefined,
      name,
      log,
      changed: () => {},
      path: socket,
      from: (s) => s,
      sendBuffer,
    });
    bed.defer(() => journal.close());
    let seq = 0;
    const receive = (message: string | Buffer) =>
      ledger.receive({ message: Buffer.from(message), from: "s", server: "0123456789abcdef", seq: ++seq });
    return { ledger, lines, journal, receive };
  }

  journalTest("an entry larger than the socket's datagrams goes in a sealed memfd, and arrives whole", async () => {
    const journal = await journald();
    // SO_SNDBUF 16 KiB (the kernel doubles it): a 64 KB entry is EMSGSIZE as a datagram.
    const { ledger, lines, journal: out, receive } = output(journal.socket, 16_384);
    const big = `<13>app: ${"m".repeat(MAX_MESSAGE - 9)}`;
    receive(big);
    receive("<13>app: after it");
    out.send();
    await until("both confirmed", () => ledger.counts("s").delivered === 2);
    expect(journal.entries([], ["MESSAGE"]).map((entry) => entry.MESSAGE)).toEqual([big.slice(9), "after it"]);
    expect(lines).toEqual([]);
  });

  journalTest(
    `past ${MAX_SD_NAMES} structured-data names, new ones go into SLP_SD_OTHER, said in one line`,
    async () => {
      const journal = await journald();
      const { ledger, lines, journal: out, receive } = output(journal.socket);
      for (let i = 0; i < MAX_SD_NAMES + 2; i++) receive(`<13>1 - h app - - [x n${i}="v${i}"] m`);
      out.send();
      await until("all confirmed", () => ledger.counts("s").delivered === MAX_SD_NAMES + 2);
      const entries = journal.entries();
      expect(entries[MAX_SD_NAMES - 1]![`SLP_SD_X_N${MAX_SD_NAMES - 1}`]).toBe(`v${MAX_SD_NAMES - 1}`);
      expect(entries.slice(MAX_SD_NAMES).map((entry) => entry.SLP_SD_OTHER)).toEqual([
        `[x n${MAX_SD_NAMES}="v${MAX_SD_NAMES}"]`,
        `[x n${MAX_SD_NAMES + 1}="v${MAX_SD_NAMES + 1}"]`,
      ]);
      expect(lines).toEqual([expect.stringContaining(`${MAX_SD_NAMES} structured-data field names in use`)]);
    },
  );
});

describe("journald's rate limit", () => {
  const limitTest = "root" in cgroups ? test : test.skip;
  if ("why" in cgroups) console.warn(`journal rate-limit test skipped: ${cgroups.why}`);
  const root = "root" in cgroups ? cgroups.root : "";

  /**
   * Makes the folders of `path` that are missing, removed after the test (a cgroup takes rmdir
   * alone); one that cannot be is said, not thrown, so that the rest is cleaned up too.
   */
  function made(path: string): void {
    if (existsSync(path)) return;
    made(join(path, ".."));
    mkdirSync(path);
    bed.defer(() => {
      try {
        rmdirSync(path);
      } catch (error) {
        console.warn(`journal rate-limit test: cannot remove ${path}: ${error}`);
      }
    });
  }

  /** How many messages slpc says it handed on (SIGUSR1's `delivered`). */
  async function delivered(c: Child): Promise<number> {
    const from = c.stderr.length;
    c.kill("SIGUSR1");
    await until("the SIGUSR1 line", () => c.stderr.slice(from).includes("}\n"));
    const line = c.stderr
      .slice(from)
      .split("\n")
      .find((each) => each.startsWith("{"))!;
    return JSON.parse(line).delivered;
  }

  limitTest(
    "counts slpc's messages against the unit of its cgroup: none outside a unit, none over a unit's own burst",
    async () => {
      const journal = await journald({ rateLimit: ["RateLimitIntervalSec=60s", "RateLimitBurst=100"] });
      const s = await bed.server();
      /**
       * slpc in `unit`'s cgroup, as systemd places a service (none: where this process is), and what
       * of 1,000 arrived.
       */
      const run = async (tag: string, unit?: string) => {
        let cmd = bed.slpcCommand(s.tlsPort, ["--forward", `journal:${journal.socket}`]);
        if (unit) {
          const cgroup = join(root, "system.slice", unit);
          made(cgroup);
          cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...cmd];
        }
        const c = bed.track(new Child(cmd));
        await following(c, [s]);
        await sendUdp(
          s.udpPort,
          Array.from({ length: 1000 }, (_, i) => Buffer.from(`<14>app: ${tag} ${i}`)),
        );
        // journald read every one (slpc's count), whatever it then kept.
        for (let tries = 0; (await delivered(c)) < 1000; tries++) {
          if (tries > 100) throw new Error(`slpc did not hand on 1,000 messages\n${c.stderr}`);
          await sleep(100);
        }
        c.kill("SIGKILL");
        await c.proc.exited;
        return journal.entries([], ["MESSAGE"]).filter((entry) => entry.MESSAGE.startsWith(`${tag} `)).length;
      };
      const pid = process.pid;
      expect(await run("outside")).toBe(1000);
      const limited = await run("service", `slpc-test-${pid}.service`);
      expect(limited).toBeGreaterThan(0);
      expect(limited).toBeLessThan(1000);
      // A unit's LogRateLimitBurst=, as systemd hands it to journald.
      made("/run/systemd/units");
      const setting = `/run/systemd/units/log-rate-limit-burst:slpc-raised-${pid}.service`;
      symlinkSync("100000", setting);
      bed.defer(() => rmSync(setting, { force: true }));
      expect(await run("raised", `slpc-raised-${pid}.service`)).toBe(1000);
      console.log(`journal: journald kept ${limited} of 1,000 messages of slpc in a service, at RateLimitBurst=100`);
    },
  );
});
