// The whole path with real syslog daemons: logger -> rsyslog or syslog-ng on the "server" ->
// slps -> slpc -> rsyslog or syslog-ng at "home" -> a file. The daemon configuration comes from
// deploy/, the snippets docs/setup.md shows. Where a daemon is missing these tests are skipped with
// the reason, except under CI (SLP_REQUIRE_DAEMONS=1), where a missing daemon fails the run.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type DaemonKind, findDaemon, linesOf, SERVER_HOST, startDaemon } from "./daemons.ts";
import { freePort, ROOT, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();

/** logger -> server daemon -> slps -> slpc -> home daemon, each in its own folder. */
async function relay(kind: DaemonKind, name: string) {
  const serverDir = join(bed.dir, `${name}-server`);
  const homeDir = join(bed.dir, `${name}-home`);
  mkdirSync(serverDir);
  mkdirSync(homeDir);
  const slpsUdp = await freePort("udp");
  const homeUdp = await freePort("udp");
  const home = await startDaemon(kind, "home", homeDir, homeUdp);
  bed.track(home.child);
  const slps = await bed.server([], { udpPort: slpsUdp });
  await bed.client(slps, { forwardPort: homeUdp });
  const server = await startDaemon(kind, "server", serverDir, slpsUdp);
  bed.track(server.child);
  /** Sends one message the way a program on the server would, with logger(1). */
  const log = (priority: string, tag: string, message: string, extra: string[] = []) => {
    const socket = extra.includes("--rfc5424") ? server.socket5424 : server.socket;
    const result = Bun.spawnSync(
      ["logger", "-u", socket, "--socket-errors=on", "-p", priority, "-t", tag, ...extra, message],
      { stderr: "pipe" },
    );
    if (result.exitCode !== 0) throw new Error(`logger: ${result.stderr.toString()}`);
  };
  return { home, server, log };
}

const messages = [
  ["auth.notice", "sshd", "Accepted publickey for ann from 192.0.2.7 port 50022", []],
  ["local3.warning", "backup", "disk almost full: 93%", []],
  ["user.err", "app", "grüße aus Köln, 世界 ✓", []],
  [
    "daemon.info",
    "cron",
    "rfc 5424 with structured data",
    ["--rfc5424", "--sd-id", "origin@32473", "--sd-param", 'ip="192.0.2.1"'],
  ],
  ["mail.crit", "postfix", "queue file write error", []],
] as const;

for (const kind of ["rsyslog", "syslog-ng"] as const) {
  const found = findDaemon(kind);
  const missing = typeof found === "string" ? found : undefined;
  const required = process.env.SLP_REQUIRE_DAEMONS === "1";
  if (missing && !required) console.warn(`interop.test.ts: skipping the ${kind} tests: ${missing}`);

  describe.skipIf(missing !== undefined && !required)(`${kind} on both ends`, () => {
    test("messages keep their host, program, facility, severity and text", async () => {
      if (missing) throw new Error(missing);
      const { home, log } = await relay(kind, `${kind}-fields`);
      for (const [priority, tag, text, extra] of messages) log(priority, tag, text, [...extra]);
      await until(
        `${messages.length} lines in ${home.file}`,
        () => linesOf(home.file).length >= messages.length,
        15_000,
      );
      const expected = messages.map(([priority, tag, text, extra]) => {
        const [facility, severity] = priority.split(".");
        // An RFC 5424 message names its host itself (logger puts this machine's name), and rsyslog keeps that name.
        const host = kind === "rsyslog" && extra.length > 0 ? hostname() : SERVER_HOST;
        return `${host} ${tag} ${facility} ${severity} ${text}`;
      });
      expect(linesOf(home.file)).toEqual(expected);
    });

    if (kind === "rsyslog") {
      test("a burst of 10,000 messages all land", async () => {
        if (missing) throw new Error(missing);
        const { home, server } = await relay(kind, "rsyslog-burst");
        const lines = Array.from({ length: 10_000 }, (_, i) => `burst ${String(i + 1).padStart(5, "0")}`);
        // One logger reading stdin sends each line as its own message, as fast as the socket takes them.
        const logger = Bun.spawnSync(
          ["logger", "-u", server.socket, "--socket-errors=on", "-p", "local0.info", "-t", "burst"],
          {
            stdin: Buffer.from(`${lines.join("\n")}\n`),
            stderr: "pipe",
          },
        );
        expect(logger.exitCode).toBe(0);
        await until(
          () => `10,000 lines in ${home.file} (have ${linesOf(home.file).length})`,
          () => linesOf(home.file).length >= 10_000,
          30_000,
        );
        expect(linesOf(home.file).map((line) => line.split(" ").slice(-2).join(" "))).toEqual(lines);
      });
    }
  });
}

test("the setup guide shows the daemon snippets that these tests use", () => {
  const guide = readFileSync(join(ROOT, "docs/setup.md"), "utf8");
  const snippets = [
    "rsyslog-server.conf",
    "rsyslog-home.conf",
    "syslog-ng-server.conf",
    "syslog-ng-home.conf",
    "rsyslog-home-tcp.conf",
    "syslog-ng-home-tcp.conf",
    "rsyslog-home-relp.conf",
    "rsyslog-server-relp.conf",
    "syslog-ng-server-tcp.conf",
  ];
  const missing = snippets.filter((name) => !guide.includes(readFileSync(join(ROOT, "deploy", name), "utf8")));
  expect(missing).toEqual([]);
});
