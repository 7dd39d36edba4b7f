// --forward in every form it accepts. First a table: each form (udp://, tcp://, relp://, unix:)
// with the real daemons that read it, each with its snippet from deploy/, and the same cases for
// every row, through real slps and slpc processes: every message arrives whole and once, the
// longest message slp carries is filed whole (or cut, where the daemon cuts it), and the daemon
// SIGKILLed and restarted mid-stream costs no more than its transport promises (docs/setup.md's
// table). Then each transport's own tests: address forms, sinks and daemons of the test's own
// where a real daemon cannot be made to misbehave, RELP's renewal. Where a daemon is missing its
// tests are skipped with the reason, except under CI (SLP_REQUIRE_DAEMONS=1), where that fails
// the run. Lines starting "forward_daemons:" record what a daemon restart cost, for the docs.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { Ledger, MAX_MESSAGE, RelpSession } from "../lib.ts";
import { RelpOutput } from "../slpc/outputs/relp.ts";
import { type DaemonKind, findDaemon, type HomeInput, SERVER_HOST, startDaemon } from "./daemons.ts";
import { Child, freePort, ROOT, runs, type ServerHandle, sendUdp, sleep, testBed, udpDrops, until } from "./kit.ts";

setDefaultTimeout(120_000);

const bed = testBed();
const required = process.env.SLP_REQUIRE_DAEMONS === "1";
const COUNT = 10_000;
/** RELP messages in flight at most, slpc's window: what a broken connection may send twice. */
const RELP_WINDOW = 128;

/** Message `i` as the server's rsyslog forwards it; every tenth holds a line break. */
function message(i: number): Buffer {
  const seq = String(i).padStart(5, "0");
  const text = i % 10 === 9 ? `seq ${seq} first line\nsecond line of ${seq}` : `seq ${seq}`;
  return Buffer.from(`<13>Nov 27 05:00:00 ${SERVER_HOST} fwdtest: ${text}`);
}
const messages = Array.from({ length: COUNT }, (_, i) => message(i));

/** The longest message slp carries, and a short one after it: rsyslog cuts at 8 KB unless told otherwise. */
const BIG_PREFIX = `<13>Nov 27 05:00:00 ${SERVER_HOST} fwdtest: big `;
const longest = [Buffer.from(BIG_PREFIX.padEnd(MAX_MESSAGE, "x")), message(0)];
/** Whether the daemon filed the longest message whole, and the one after it. */
function filedWhole(file: string): boolean {
  const text = existsSync(file) ? readFileSync(file, "latin1") : "";
  return text.includes(` big ${"x".repeat(MAX_MESSAGE - BIG_PREFIX.length)}\n`) && text.includes("seq 00000\n");
}
/** The line the daemon filed for the longest message. */
function filedLongest(file: string): string | undefined {
  return readFileSync(file, "latin1")
    .split("\n")
    .find((line) => line.includes(" big "));
}

/**
 * How often each message is in the daemon's file, by number, and the numbers that arrived
 * broken (a message with a line break cut at it). rsyslog files a line break as #012.
 */
function arrivals(file: string) {
  const counts = new Map<number, number>();
  const broken: number[] = [];
  const text = existsSync(file) ? readFileSync(file, "latin1") : "";
  for (const [, seq, continued] of text.matchAll(/seq (\d{5})(?: first line(?:#012|\n)second line of (\d{5}))?/g)) {
    const i = Number(seq);
    if (i % 10 === 9 && continued !== seq) broken.push(i);
    else counts.set(i, (counts.get(i) ?? 0) + 1);
  }
  const missing = Array.from({ length: COUNT }, (_, i) => i).filter((i) => !counts.has(i));
  const duplicated = [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
  return { counts, broken, missing, duplicated };
}

/** Waits until the file has stopped growing for a second: the daemon has filed all it is going to. */
async function settled(file: string): Promise<void> {
  let size = -1;
  let since = performance.now();
  await until(
    () => `${file} to stop growing`,
    () => {
      const now = existsSync(file) ? readFileSync(file).length : 0;
      if (now !== size) [size, since] = [now, performance.now()];
      return performance.now() - since > 1000;
    },
    30_000,
  );
}

/** A home daemon reading `input`, in its own folder; `restart` starts it again there, same port, same file. */
async function home(kind: DaemonKind, input: HomeInput, name: string, harness: readonly string[] = []) {
  const dir = join(bed.dir, name);
  mkdirSync(dir);
  const port = input === "unix" ? 0 : await freePort(input === "udp" ? "udp" : "tcp");
  const start = async () => {
    const daemon = await startDaemon(kind, "home", dir, port, { input, harness: [...harness] });
    bed.track(daemon.child);
    return daemon;
  };
  let daemon = await start();
  return {
    port,
    file: daemon.file,
    socket: daemon.socket,
    /** SIGKILL, the daemon's worst case: nothing flushed, no serverclose, no FIN sent on purpose. */
    async kill() {
      daemon.child.kill("SIGKILL");
      await daemon.child.proc.exited;
    },
    async restart() {
      daemon = await start();
    },
  };
}
type Home = Awaited<ReturnType<typeof home>>;

/** Why `kind` cannot run here (with `module` when named), or undefined. Under CI that fails the tests instead. */
function missingDaemon(kind: DaemonKind, module?: string): string | undefined {
  const found = findDaemon(kind);
  if (typeof found === "string") return found;
  const modules = found.cmd[found.cmd.indexOf("-M") + 1];
  if (module && modules && !existsSync(join(modules, module))) {
    return `rsyslog's ${module} is not installed (bash .ci/install-daemons installs it)`;
  }
  return undefined;
}

/** A describe block that runs only where the daemon is, or fails under CI where it is not. */
function withDaemon(name: string, missing: string | undefined, body: (check: () => void) => void) {
  if (missing && !required) console.warn(`forward.test.ts: skipping "${name}": ${missing}`);
  describe.skipIf(missing !== undefined && !required)(name, () =>
    body(() => {
      if (missing) throw new Error(missing);
    }),
  );
}

/**
 * slps and slpc forwarding to `forward`; `send` feeds slps's UDP input `batch` messages every 10 ms
 * (500: up to 50,000 a second), and `fed` counts the messages handed to it so far.
 */
async function throughSlpc(forward: string, args: string[] = []) {
  const slps = await bed.server([], { udpPort: await freePort("udp") });
  const slpc: Child = await bed.client(slps, { forward, args });
  let fed = 0;
  return {
    slps,
    slpc,
    get fed() {
      return fed;
    },
    async send(list: Buffer[], batch = 500) {
      for (let i = 0; i < list.length; i += batch) {
        await sendUdp(slps.udpPort, list.slice(i, i + batch));
        fed = i + Math.min(batch, list.length - i);
        await sleep(10);
      }
    },
  };
}

/** slpc's SIGUSR1 line: what it delivered (its output confirmed), gave back to go again, and holds. */
async function counters(slpc: Child): Promise<{ delivered: number; resent: number; pending: number }> {
  const from = slpc.stderr.length;
  slpc.kill("SIGUSR1");
  await until(
    () => `slpc's counters:\n${slpc.stderr}`,
    () => slpc.stderr.slice(from).includes("}\n"),
  );
  const line = slpc.stderr
    .slice(from)
    .split("\n")
    .find((text) => text.startsWith("{"))!;
  return JSON.parse(line);
}

// ---- The table: every form through the same cases, slps -> slpc --forward -> daemon -> file.

/** What a daemon killed and restarted mid-stream may cost a form, as docs/setup.md's table promises it. */
interface Restart {
  /** Messages slpc had confirmed while the daemon was dead: the first this many, since it confirms in order. */
  confirmed: number;
  /** Messages fed to slps before slpc was connected again; those after it went to a live daemon. */
  atReconnect: number;
  missing: number[];
  duplicated: number;
  stderr: string;
  /** Datagrams the kernel dropped at the restarted daemon's UDP socket, its buffer full: no promise covers those. */
  drops: number;
}

interface Form {
  scheme: HomeInput;
  /** The daemons that read it, and the configuration around deploy/'s snippet. */
  readers: {
    kind: DaemonKind;
    reader: string;
    module?: string;
    harness?: string[];
    /** What the daemon files of the longest message: whole, or cut below this many bytes. */
    cutsBelow?: number;
    /** How the daemon files message 0, its fields: host, program, facility, severity, text. */
    fields: string;
  }[];
  /** Whether slpc holds a connection to the daemon, and says when it has one again. */
  connects: boolean;
  /** The promise, for the test's name. */
  promise: string;
  /** What the record line adds for this form. */
  note?(restart: Restart): string;
  /** The promise, checked. */
  kept(restart: Restart): void;
}

/** How many datagrams slpc's lines said it sent again after a refusal, or undefined when none said it. */
function sentAgain(stderr: string): number | undefined {
  const said = [...stderr.matchAll(/; (\d+) datagrams sent again, which come twice where the daemon took them/g)];
  return said.length === 0 ? undefined : said.reduce((sum, match) => sum + Number(match[1]), 0);
}

/** How the daemons file a message that names its host, as slpc forwards them. */
const keptHost = `${SERVER_HOST} fwdtest user notice seq 00000`;

const forms: Form[] = [
  {
    scheme: "udp",
    readers: [
      // deploy/rsyslog-home.conf leaves rsyslog's limit of 8 KB a message as it is.
      { kind: "rsyslog", reader: "imudp", cutsBelow: 8192, fields: keptHost },
      { kind: "syslog-ng", reader: 'network(transport("udp"))', fields: keptHost },
    ],
    connects: false,
    promise: "loses only what the daemon held when it died, and says how many may come twice",
    note: ({ stderr, drops }) => `; slpc said ${sentAgain(stderr) ?? 0} may come twice; ${drops} dropped by the kernel`,
    kept({ duplicated, stderr, drops }) {
      expect(drops).toBe(0);
      // Datagrams refused from the moment it died are kept and sent again; the last 100 ms before
      // the refusal too, which come twice where the daemon took them, and the line says how many.
      expect(sentAgain(stderr)).toBeDefined();
      expect(duplicated).toBeLessThanOrEqual(sentAgain(stderr)!);
    },
  },
  {
    scheme: "tcp",
    readers: [
      { kind: "rsyslog", reader: "imtcp", fields: keptHost },
      { kind: "syslog-ng", reader: 'syslog(transport("tcp"))', fields: keptHost },
    ],
    connects: true,
    promise: "loses only what the kernels and the daemon held before slpc reconnected",
    kept({ atReconnect, missing }) {
      // What TCP can lose is what the kernels and the dying daemon held: messages from before the reconnect.
      expect(missing.filter((i) => i >= atReconnect)).toEqual([]);
    },
  },
  {
    scheme: "relp",
    readers: [{ kind: "rsyslog", reader: "imrelp", module: "imrelp.so", fields: keptHost }],
    connects: true,
    promise: "loses nothing, and duplicates at most the window",
    note: () => ` (window ${RELP_WINDOW})`,
    kept({ missing, duplicated }) {
      expect(missing).toEqual([]);
      expect(duplicated).toBeLessThanOrEqual(RELP_WINDOW);
    },
  },
  {
    scheme: "unix",
    readers: [
      // Both take a message on /dev/log for a local program's: the host is their own, the server's name the program.
      {
        kind: "rsyslog",
        reader: "imuxsock",
        // rsyslog cuts messages at 8 KB unless told otherwise, /dev/log's too (unix:'s own tests show it).
        harness: [`global(maxMessageSize="64k")`],
        fields: `home-machine ${SERVER_HOST} user notice fwdtest: seq 00000`,
      },
      {
        kind: "syslog-ng",
        reader: "unix-dgram()",
        fields: `${hostname()} ${SERVER_HOST} user notice fwdtest: seq 00000`,
      },
    ],
    connects: false,
    promise: "loses only what the daemon's socket and memory held when it died, and nothing twice",
    kept({ duplicated }) {
      // A datagram counts as taken once the daemon's socket queue has it: none goes twice.
      expect(duplicated).toBe(0);
    },
  },
];

/** The address slpc forwards to, for a daemon reading `scheme`. */
function forwardTo(scheme: HomeInput, daemon: Home): string {
  return scheme === "unix" ? `unix:${daemon.socket}` : `${scheme}://127.0.0.1:${daemon.port}`;
}

for (const form of forms) {
  for (const { kind, reader, module, harness = [], cutsBelow, fields } of form.readers) {
    const { scheme } = form;
    const name = `${scheme}-${kind}`;
    withDaemon(`--forward ${scheme}: into ${kind}'s ${reader}`, missingDaemon(kind, module), (check) => {
      test("10,000 messages arrive whole, line breaks and all, each once, and slpc confirms each once", async () => {
        check();
        const daemon = await home(kind, scheme, `${name}-all`, harness);
        const relay = await throughSlpc(forwardTo(scheme, daemon));
        await relay.send(messages);
        await until(
          () => `${COUNT} messages in the file, missing ${arrivals(daemon.file).missing.length}`,
          () => arrivals(daemon.file).missing.length === 0,
          60_000,
        );
        await settled(daemon.file);
        const { broken, duplicated } = arrivals(daemon.file);
        expect({ broken, duplicated }).toEqual({ broken: [], duplicated: 0 });
        expect(relay.slpc.stderr).not.toContain("forward to");
        const { delivered, resent, pending } = await counters(relay.slpc);
        expect({ delivered, resent, pending }).toEqual({ delivered: COUNT, resent: 0, pending: 0 });
      });

      test("a message is filed with the host, program, facility and severity the daemon reads in it", async () => {
        check();
        const daemon = await home(kind, scheme, `${name}-fields`, harness);
        const relay = await throughSlpc(forwardTo(scheme, daemon));
        await relay.send([message(0)]);
        await until(`message 0 in ${daemon.file}`, () => arrivals(daemon.file).counts.has(0));
        expect(readFileSync(daemon.file, "latin1")).toBe(`${fields}\n`);
      });

      if (cutsBelow === undefined) {
        test("the longest message slp carries, 65,507 bytes, is filed whole", async () => {
          check();
          const daemon = await home(kind, scheme, `${name}-longest`, harness);
          const relay = await throughSlpc(forwardTo(scheme, daemon));
          await relay.send(longest);
          await until(
            () => `the longest message whole in ${daemon.file}`,
            () => filedWhole(daemon.file),
            30_000,
          );
        });
      } else {
        test(`the longest message slp carries, 65,507 bytes, is cut below ${cutsBelow} bytes by ${kind}`, async () => {
          check();
          const daemon = await home(kind, scheme, `${name}-longest`, harness);
          const relay = await throughSlpc(forwardTo(scheme, daemon));
          await relay.send(longest);
          await until("both filed", () => arrivals(daemon.file).counts.has(0), 30_000);
          expect(filedLongest(daemon.file)?.length).toBeLessThan(cutsBelow);
        });
      }

      test(`${kind} killed and restarted mid-stream: ${form.promise}`, async () => {
        check();
        const daemon = await home(kind, scheme, `${name}-kill`, harness);
        const relay = await throughSlpc(forwardTo(scheme, daemon));
        // The first half streams on while the daemon dies and slps holds what slpc cannot hand on; the
        // second half comes after the daemon is back (and slpc reconnected, where it connects).
        const feeding = relay.send(messages.slice(0, COUNT / 2), 200);
        // Killed halfway through a batch of 200, so that the rest of it is on its way.
        await until("2,100 messages in the file", () => arrivals(daemon.file).counts.size >= 2100, 60_000);
        await daemon.kill();
        const atKill = relay.fed;
        await sleep(300); // slpc meets the refusal or the reset and waits for the daemon, the server holding the rest
        const { delivered: confirmed } = await counters(relay.slpc);
        await daemon.restart();
        await feeding;
        if (form.connects)
          await relay.slpc.waitFor(new RegExp(`forward to ${scheme}://127\\.0\\.0\\.1:\\d+: connected`));
        const atReconnect = COUNT / 2;
        await relay.send(messages.slice(COUNT / 2), 200);
        await until(
          () => `message ${COUNT - 1} in the file`,
          () => arrivals(daemon.file).counts.has(COUNT - 1),
          60_000,
        );
        await settled(daemon.file);
        const { missing, broken, duplicated } = arrivals(daemon.file);
        const { delivered } = await counters(relay.slpc);
        const drops = scheme === "udp" ? udpDrops(daemon.port) : 0;
        const restart = { confirmed, atReconnect, missing, duplicated, stderr: relay.slpc.stderr, drops };
        const when = `SIGKILLed with ${atKill} fed to slps and ${confirmed} confirmed`;
        const back = form.connects ? `, reconnected at ${atReconnect}` : "";
        const record = `${missing.length} lost (${runs(missing)}), ${broken.length} broken, ${duplicated} duplicated`;
        console.log(
          `forward_daemons: slpc ${scheme} into ${kind}, ${when}${back}: ${record}${form.note?.(restart) ?? ""}`,
        );
        form.kept(restart);
        // What slpc had not confirmed it kept and sent again: only what it had confirmed can be lost.
        expect(missing.filter((i) => i >= confirmed)).toEqual([]);
        expect(broken).toEqual([]);
        expect(delivered).toBe(COUNT); // each confirmed once, even what went twice
      });
    });
  }
}

// ---- Each form's own tests: what only one transport does.

/** Waits until slps has started one more client stream than `before`. */
const streamStarted = (s: ServerHandle, before = 0) =>
  until(
    () => `a stream to start:\n${s.stderr}`,
    () => (s.stderr.match(/ starts at #/g)?.length ?? 0) > before,
  );

/** A UDP sink on ::1 that keeps every datagram. */
async function sink6() {
  const messages: Buffer[] = [];
  const keep = (_socket: unknown, data: Buffer) => void messages.push(Buffer.from(data));
  const socket = await Bun.udpSocket({ hostname: "::1", port: 0, socket: { data: keep } });
  bed.defer(() => socket.close());
  return { port: socket.port, messages };
}

const numbered = (n: number, prefix = "msg") => Array.from({ length: n }, (_, i) => Buffer.from(`<13>${prefix} ${i}`));
const texts = (messages: Buffer[]) => messages.map(String);

describe("--forward's address", () => {
  test("a --forward host that does not resolve exits 2 with one line", async () => {
    const c = bed.slpc(1, ["--forward", "no-such-host.invalid:514"]);
    expect(await c.exit()).toBe(2);
    expect(c.stderr).toMatch(
      /^slpc: --forward no-such-host\.invalid:514: cannot resolve no-such-host\.invalid: [^\n]+\n$/,
    );
  });

  test("a tcp:// or relp:// host that does not resolve, or an unknown scheme, exits 2 with one line", async () => {
    const cases = [
      [
        "tcp://no-such-host.invalid:514",
        /^slpc: --forward tcp:\/\/no-such-host\.invalid:514: cannot resolve [^\n]+\n$/,
      ],
      [
        "relp://no-such-host.invalid:2514",
        /^slpc: --forward relp:\/\/no-such-host\.invalid:2514: cannot resolve [^\n]+\n$/,
      ],
      ["ftp://127.0.0.1:21", /^slpc: --forward "ftp:\/\/127\.0\.0\.1:21": unknown scheme "ftp"[^\n]*\n$/],
      ["unix:dev/log", /^slpc: --forward "unix:dev\/log": a unix socket's path must be absolute[^\n]*\n$/],
    ] as const;
    for (const [address, line] of cases) {
      const c = bed.slpc(1, ["--forward", address]);
      expect(await c.exit()).toBe(2);
      expect(c.stderr).toMatch(line);
    }
  });
});

describe("--forward HOST:PORT, UDP, into sockets of the test's own", () => {
  test("--forward localhost:PORT delivers to a daemon on 127.0.0.1", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const c = bed.slpc(s.tlsPort, ["--forward", `localhost:${out.port}`]);
    await streamStarted(s);
    await sendUdp(s.udpPort, numbered(20));
    await until(
      () => `20 messages, got ${out.messages.length}:\n${c.stderr}`,
      () => out.messages.length === 20,
    );
    expect(texts(out.messages)).toEqual(texts(numbered(20)));
  });

  test("--forward [::1]:PORT delivers to a daemon on ::1", async () => {
    const s = await bed.server();
    const out = await sink6();
    const c = bed.slpc(s.tlsPort, ["--forward", `[::1]:${out.port}`]);
    await streamStarted(s);
    await sendUdp(s.udpPort, numbered(200));
    await until(
      () => `200 messages, got ${out.messages.length}:\n${c.stderr}`,
      () => out.messages.length === 200,
    );
    expect(texts(out.messages)).toEqual(texts(numbered(200)));
  });

  test("a forward address the kernel refuses every send to: one line naming it, reading paused, no crash", async () => {
    const s = await bed.server();
    // Without SO_BROADCAST, every send to the broadcast address fails with EACCES.
    const c = bed.slpc(s.tlsPort, ["--forward", "255.255.255.255:9", "--forward-rate", "1000"]);
    await streamStarted(s);
    const messages = numbered(20_000);
    for (let i = 0; i < messages.length; i += 500) await sendUdp(s.udpPort, messages.slice(i, i + 500));
    await c.waitFor(/forward to 255\.255\.255\.255:9: [^\n]*EACCES[^\n]*; is the syslog daemon listening\?/);
    await sleep(2000);
    const from = c.stderr.length;
    c.kill("SIGUSR1");
    await until(
      () => `counters:\n${c.stderr}`,
      () => c.stderr.slice(from).includes("{"),
    );
    const counters = JSON.parse(
      c.stderr
        .slice(from)
        .split("\n")
        .find((line) => line.startsWith("{"))!,
    );
    expect(counters.delivered).toBe(0);
    // Reading pauses at 4,096 waiting, after the read that crossed it (up to 64 KiB, some 3,800 of
    // these short frames): well short of the 20,000 sent, the rest of which the server holds.
    expect(counters.pending).toBeLessThan(10_000);
    expect(c.stderr.match(/EACCES/g)).toHaveLength(1); // once a minute at most
    expect(c.stderr).not.toMatch(new RegExp(`localhost:${s.tlsPort}: [^\\n]*EACCES`)); // not blamed on the server
    expect(c.stderr).not.toMatch(/^\s+at /m);
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
  });

  test("a daemon that is down: one line naming the forward address, no crash, and delivery once it is up", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const port = out.port;
    out.close(); // the daemon is down: the kernel refuses sends to its port
    // Paced one by one, so that sends fail whole (ECONNREFUSED) instead of partly.
    const c = bed.slpc(s.tlsPort, ["--forward", `127.0.0.1:${port}`, "--forward-rate", "100"]);
    await streamStarted(s);
    await sendUdp(s.udpPort, numbered(100));
    await c.waitFor(/forward to 127\.0\.0\.1:\d+: [^\n]*; is the syslog daemon listening\?/);
    await sleep(1500); // sends go on failing meanwhile
    expect(c.proc.exitCode).toBeNull();
    // Up again on the same port: what slpc kept, and what the server held meanwhile, arrives.
    const messagesUp: Buffer[] = [];
    const keep = (_socket: unknown, data: Buffer) => void messagesUp.push(Buffer.from(data));
    const up = await Bun.udpSocket({ hostname: "127.0.0.1", port, socket: { data: keep } });
    bed.defer(() => up.close());
    await sendUdp(s.udpPort, [Buffer.from("<13>after")]);
    await until(
      () => `the last message (${messagesUp.length} so far):\n${c.stderr}`,
      () => messagesUp.at(-1)?.toString() === "<13>after",
    );
    expect(c.proc.exitCode).toBeNull();
    expect(c.stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect(c.stderr.match(/is the syslog daemon listening/g)).toHaveLength(1);
    expect(c.stderr).not.toMatch(new RegExp(`localhost:${s.tlsPort}: [^\\n]*EACCES`)); // not blamed on the server
    expect(c.stderr).not.toContain("disconnected");
    const seen = texts(messagesUp);
    expect(new Set(seen).size).toBe(seen.length);
    const numbers = seen.slice(0, -1).map((text) => Number(text.split(" ")[1]));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });
});

/** Waits until slps has received `count` messages in all, by its SIGUSR1 line. */
async function received(slps: ServerHandle, count: number): Promise<void> {
  const said = () => [...slps.stderr.matchAll(/"received":(\d+)/g)].map((match) => Number(match[1])).at(-1) ?? 0;
  await until(
    () => `slps to have received ${count} messages, has ${said()}`,
    () => {
      if (said() >= count) return true;
      slps.kill("SIGUSR1");
      return false;
    },
  );
}

for (const kind of ["rsyslog", "syslog-ng"] as const) {
  const reader = kind === "rsyslog" ? "imtcp" : 'syslog(transport("tcp"))';
  withDaemon(`--forward tcp: a replay into ${kind}'s ${reader}`, missingDaemon(kind), (check) => {
    test(`${kind} killed mid-burst: loses only what the kernels held, nothing after the reconnect`, async () => {
      check();
      // A backlog that slps holds, handed on by slpc as fast as the kernel takes it (--replay, no
      // --forward-rate), as after an outage: the kernels' buffers fill, and what they hold is lost.
      const backlog = (COUNT * 4) / 5;
      const daemon = await home(kind, "tcp", `tcp-burst-${kind}`);
      const slps = await bed.server([], { udpPort: await freePort("udp") });
      for (let i = 0; i < backlog; i += 500) {
        await sendUdp(slps.udpPort, messages.slice(i, Math.min(i + 500, backlog)));
        await sleep(10);
      }
      await received(slps, backlog);
      const forward = `tcp://127.0.0.1:${daemon.port}`;
      const slpc = await bed.client(slps, { forward, args: ["--replay", "--forward-rate", "0"] });
      await until("2,000 messages in the file", () => arrivals(daemon.file).counts.size >= 2000, 60_000);
      await daemon.kill();
      await sleep(300);
      const { delivered: confirmed } = await counters(slpc);
      await daemon.restart();
      await slpc.waitFor(/forward to tcp:\/\/127\.0\.0\.1:\d+: connected/);
      await sendUdp(slps.udpPort, messages.slice(backlog));
      await until(
        () => `message ${COUNT - 1} in the file`,
        () => arrivals(daemon.file).counts.has(COUNT - 1),
        60_000,
      );
      await settled(daemon.file);
      const { missing, broken, duplicated } = arrivals(daemon.file);
      console.log(
        `forward_daemons: slpc tcp into ${kind}, a replay of ${backlog}, SIGKILLed with ${confirmed} confirmed, ` +
          `reconnected at ${backlog}: ${missing.length} lost (${runs(missing)}), ${broken.length} broken, ` +
          `${duplicated} duplicated`,
      );
      expect(missing.filter((i) => i >= confirmed)).toEqual([]);
      expect(broken).toEqual([]);
    });
  });
}

// relp:// SIGTERM, acknowledgements waited for 5 s and --state recording only what was acknowledged, is in
// test/state.test.ts, the file of --state.

withDaemon(
  "--forward relp: slpc's RELP output into rsyslog's imrelp",
  missingDaemon("rsyslog", "imrelp.so"),
  (check) => {
    test("a session renews itself before its txnrs run out, on a new connection: none lost or repeated", async () => {
      check();
      // imrelp cannot go past txnr 999,999,999; the session closes there and slpc reconnects. Every
      // 1,000 here instead, so 10,000 messages renew it nine times and close it once more. slpc's own
      // output runs in this process for it, with a session of the test's own and a ledger.
      const daemon = await home("rsyslog", "relp", "relp-renew");
      const session = new RelpSession<null>({ window: RELP_WINDOW, lastTxnr: 1000 });
      const closes: string[] = [];
      const receive = session.receive.bind(session);
      session.receive = (chunk) => {
        const events = receive(chunk);
        for (const event of events) if (event.type === "closed") closes.push(event.reason);
        return events;
      };
      const ledger = new Ledger(["home"], new Map());
      for (const [seq, message] of messages.entries()) ledger.receive({ message, from: "home", server: "run", seq });
      const lines: string[] = [];
      let stopping = false;
      const options = { ledger, rate: undefined, name: "relp", log: (line: string) => lines.push(line), changed() {} };
      const output = new RelpOutput(options, { host: "127.0.0.1", port: daemon.port }, () => stopping, session);
      bed.defer(() => {
        stopping = true;
        output.close();
      });
      const confirmed = () => ledger.counts("home").delivered;
      await until(
        () => `${COUNT} acknowledgements, have ${confirmed()}`,
        () => confirmed() === COUNT,
        60_000,
      );
      expect(ledger.counts("home")).toEqual({ delivered: COUNT, undeliverable: 0, givenBack: 0 });
      expect(ledger.resumePoint("home")).toEqual({ server: "run", last: COUNT - 1 });
      await until(
        () => `${COUNT} messages in the file`,
        () => arrivals(daemon.file).missing.length === 0,
        30_000,
      );
      const renewals = closes.filter((reason) => reason === "the RELP session was closed").length;
      expect({ renewals, duplicated: arrivals(daemon.file).duplicated }).toEqual({ renewals: 10, duplicated: 0 });
      // A renewal is routine: no line says the daemon went away, or came back.
      expect(lines).toEqual([]);
    });
  },
);

describe("--forward unix:PATH, into readers of the test's own", () => {
  test("no socket yet, then a reader that holds back: kept, retried, and all arrive once, in order", async () => {
    const s = await bed.server();
    const path = join(bed.dir, "dev-log.sock");
    const c = bed.slpc(s.tlsPort, ["--forward", `unix:${path}`]);
    await streamStarted(s);
    const messages = numbered(2000);
    await sendUdp(s.udpPort, messages.slice(0, 10));
    await c.waitFor(/forward to unix:\S+: [^\n]*No such file[^\n]*; is the syslog daemon listening\?/);
    // The daemon comes up and reads nothing at first, so its queue fills and slpc must wait.
    const reader = bed.track(new Child(["python3", join(ROOT, "test/unix_dgram_sink.py"), path, "--hold"], {}, "pipe"));
    await until("the reader's socket", () => reader.stdout.toString().includes("ready"));
    for (let i = 10; i < messages.length; i += 500) await sendUdp(s.udpPort, messages.slice(i, i + 500));
    await sleep(1500);
    reader.proc.stdin!.write("go\n");
    reader.proc.stdin!.flush();
    const arrived = () =>
      reader.stdout
        .toString()
        .split("\n")
        .slice(1)
        .filter((line) => line !== "")
        .map((hex) => Buffer.from(hex, "hex").toString());
    await until(
      () => `2000 datagrams, have ${arrived().length}`,
      () => arrived().length >= 2000,
      20_000,
    );
    await sleep(200);
    expect(arrived()).toEqual(texts(messages));
    expect(c.stderr.match(/No such file/g)).toHaveLength(1);
    expect(c.stderr).toMatch(/No such file[^\n]*\n(.*\n)*slpc: forward to unix:\S+: connected\n/);
  });

  test("a message larger than the socket takes is skipped and said, and the stream goes on", async () => {
    const s = await bed.server();
    const path = join(bed.dir, "small-log.sock");
    const reader = bed.track(new Child(["python3", join(ROOT, "test/unix_dgram_sink.py"), path], {}, "pipe"));
    await until("the reader's socket", () => reader.stdout.toString().includes("ready"));
    // A send buffer of 8 KiB, as a host with a small net.core.wmem_default gives every new socket.
    const wmem = "/proc/sys/net/core/wmem_default";
    const saved = readFileSync(wmem, "utf8");
    let c: Child;
    try {
      writeFileSync(wmem, "8192");
      c = bed.slpc(s.tlsPort, ["--forward", `unix:${path}`]);
      await c.waitFor(/connecting to/); // its socket is made before it dials
    } finally {
      writeFileSync(wmem, saved);
    }
    await streamStarted(s);
    await sendUdp(s.udpPort, [Buffer.from("<13>before"), Buffer.alloc(20_000, "x"), Buffer.from("<13>after")]);
    const arrived = () =>
      reader.stdout
        .toString()
        .split("\n")
        .slice(1)
        .filter((line) => line !== "")
        .map((hex) => Buffer.from(hex, "hex").toString());
    await until(
      () => `two datagrams, have ${arrived().length}\n${c.stderr}`,
      () => arrived().length >= 2,
    );
    expect(arrived()).toEqual(["<13>before", "<13>after"]);
    expect(c.stderr).toMatch(/forward to unix:\S+: skipped a message larger than the socket takes \(EMSGSIZE, 20000 /);
    c.kill("SIGUSR1");
    await c.waitFor(/"undeliverable":1/);
  });
});

withDaemon("--forward unix: into stock rsyslog's imuxsock", missingDaemon("rsyslog"), (check) => {
  test("stock rsyslog cuts a message longer than 8 KB, as it comes through /dev/log", async () => {
    check();
    const daemon = await home("rsyslog", "unix", "unix-longest-stock");
    const relay = await throughSlpc(forwardTo("unix", daemon));
    await relay.send(longest);
    await until("both filed", () => arrivals(daemon.file).counts.has(0), 30_000);
    expect(filedLongest(daemon.file)?.length).toBeLessThan(8192);
  });
});

// What slpc does with daemons that fail in odd ways: from the reviews that attacked the running programs.

/** How many streams slps has started: a client that resumed. */
const streams = (s: ServerHandle) => s.stderr.match(/ starts at #/g)?.length ?? 0;

describe("the local daemon is down", () => {
  // The docs: "When sends to --forward fail, slpc says so ..., keeps the messages, stops reading
  // the server, and tries again every second." Sends to a closed local port do not throw: the
  // kernel's ICMP reply comes back as an error event, and each message is counted delivered.
  test("messages sent while the daemon is down are kept and arrive once it is up", async () => {
    const s = await bed.server();
    const out = await bed.sink();
    const port = out.port;
    out.close();
    const c = bed.slpc(s.tlsPort, ["--forward", `127.0.0.1:${port}`]);
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

/**
 * A RELP daemon of the test's own: it accepts the open offer as imrelp does and answers each
 * `syslog` command with `answer(txnr, data)`; returns its port and what it was sent.
 */
function fakeRelp(answer: (txnr: number, data: string) => string) {
  const received: string[] = [];
  let opens = 0;
  const listener = Bun.listen<{ buffered: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buffered: "" };
      },
      data(socket: Socket<{ buffered: string }>, chunk) {
        socket.data.buffered += chunk.toString("latin1");
        for (;;) {
          const header = /^(\d+) (\w+) (\d+)[ \n]/.exec(socket.data.buffered);
          if (!header) return;
          const length = Number(header[3]);
          const end = length === 0 ? header[0].length : header[0].length + length + 1;
          if (socket.data.buffered.length < end) return;
          const data = socket.data.buffered.slice(header[0].length, header[0].length + length);
          socket.data.buffered = socket.data.buffered.slice(end);
          const txnr = Number(header[1]);
          if (header[2] === "open") {
            opens++;
            const offers = "200 OK\nrelp_version=0\nrelp_software=fake\ncommands=syslog";
            socket.write(`${txnr} rsp ${offers.length} ${offers}\n`);
          } else if (header[2] === "syslog") {
            received.push(data);
            socket.write(answer(txnr, data));
          }
        }
      },
    },
  });
  bed.defer(() => listener.stop(true));
  return {
    port: listener.port,
    received,
    get opens() {
      return opens;
    },
  };
}

describe("relp:// against a daemon that refuses a message", () => {
  // The daemon answers one message with a 500 (imrelp does so for a message its ruleset cannot
  // take). slpc drops the connection, reconnects at once (daemonUp resets the backoff on the open
  // answer), sends the same message again, and logs the refusal each time: a line every 0.1 s,
  // for ever, while the stream stands still.
  test("a message the daemon refuses does not flood the log with a line per retry", async () => {
    const relp = fakeRelp((txnr, data) =>
      data.includes("poison") ? `${txnr} rsp 18 500 cannot take it\n` : `${txnr} rsp 6 200 OK\n`,
    );
    const server = await bed.server();
    const client = await bed.client(server, { forward: `relp://127.0.0.1:${relp.port}` });
    await sendUdp(server.udpPort, [Buffer.from("<13>app: poison")]);
    await sleep(5000);
    // One line, then at most one a minute with the count, as for every other forward failure.
    const lines = client.stderr.split("\n").filter((line) => line.includes("forward to"));
    expect(relp.opens).toBeGreaterThan(1); // it does try again
    expect(lines.length).toBeLessThanOrEqual(3);
  });
});

describe("tcp:// against a daemon that hangs up at once", () => {
  // imtcp at its session limit, a TLS-only port, a TCP wrapper: the connection opens and closes
  // at once. daemonUp() on open resets the backoff and the log's rate limit, so slpc dials every
  // 0.1 s and writes two lines each time, for ever.
  test("a daemon that accepts and closes at once does not flood the log", async () => {
    let accepted = 0;
    const rude = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(socket) {
          accepted++;
          socket.end();
        },
        data() {},
      },
    });
    bed.defer(() => rude.stop(true));
    const server = await bed.server();
    const client = await bed.client(server, { forward: `tcp://127.0.0.1:${rude.port}` });
    await sendUdp(server.udpPort, [Buffer.from("<13>app: hello")]);
    await sleep(5000);
    const lines = client.stderr.split("\n").filter((line) => line.includes("forward to"));
    expect(accepted).toBeGreaterThan(1); // it does try again
    expect(lines.length).toBeLessThanOrEqual(3);
  });
});

// A UDP refusal of datagrams already counted as taken: the refusal is forged with a raw socket
// (test/icmp_unreachable.py).

/** Whether a raw ICMP socket may be opened here (root, or CAP_NET_RAW), which forging a refusal takes. */
const mayForge =
  Bun.spawnSync(["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"])
    .exitCode === 0;

/** A UDP daemon on loopback that keeps each datagram and the port it came from. */
async function keepingDaemon() {
  const arrived: { text: string; from: number }[] = [];
  const socket = createSocket("udp4");
  socket.on("message", (data, from) => void arrived.push({ text: data.toString(), from: from.port }));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  bed.defer(() => socket.close());
  return { port: socket.address().port, arrived };
}

describe("a refusal of datagrams already counted as taken", () => {
  // A raw socket forges the refusal: root, or CAP_NET_RAW; CI has it, and fails rather than skips without it.
  test.skipIf(!mayForge && !required)(
    "a late or stray ICMP refusal pauses slpc for a second, not for good",
    async () => {
      const s = await bed.server(["--heartbeat", "0.3"]);
      const home = await keepingDaemon();
      const c = await bed.client(s, { forwardPort: home.port });
      const batch = (name: string) => Array.from({ length: 5 }, (_, i) => Buffer.from(`<13>${name} ${i + 1}`));
      await sendUdp(s.udpPort, batch("before"));
      await until(
        () => `5 messages at the daemon, ${home.arrived.length} so far`,
        () => home.arrived.length >= 5,
      );
      await sleep(300); // past the 100 ms after which a datagram counts as taken
      // The daemon never went away: the refusal comes over a slow link, or from nobody's datagram.
      const forged = Bun.spawnSync([
        "python3",
        `${ROOT}/test/icmp_unreachable.py`,
        `${home.arrived[0]!.from}`,
        `${home.port}`,
      ]);
      expect(forged.exitCode).toBe(0);
      await c.waitFor(/not reachable; is the syslog daemon listening\?/);
      await sendUdp(s.udpPort, batch("after"));
      await until(
        () => `the 5 messages sent after the refusal, ${home.arrived.length - 5} so far\n${c.stderr}`,
        () => home.arrived.length >= 10,
        5_000,
      );
      expect(home.arrived.map((each) => each.text)).toEqual([...batch("before"), ...batch("after")].map(String));
    },
  );
});
