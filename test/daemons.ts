// rsyslogd and syslog-ng for the interop tests: found on the system or unpacked by
// .ci/install-daemons into .daemons/, started in the foreground with their own configuration,
// pid and work files under a temporary folder, on high ports, writing to files there. The
// configuration around each snippet from deploy/ plays the rest of the machine: a local log
// socket for `logger` on the server side, a file with the fields under test at home.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Child, ROOT, tcpListening, udpListening, until } from "./kit.ts";

export type DaemonKind = "rsyslog" | "syslog-ng";

/** How the home daemon takes what slpc forwards: `--forward`'s transports. */
export type HomeInput = "udp" | "tcp" | "relp" | "unix";

/**
 * How the server's daemon sends to slps: over UDP (deploy/*-server.conf), RELP (rsyslog's omrelp,
 * deploy/rsyslog-server-relp.conf), or TCP (syslog-ng's syslog() driver, octet-counted,
 * deploy/syslog-ng-server-tcp.conf; "tcp-lf" is the same with its network() driver, LF-framed).
 */
export type ServerOutput = "udp" | "relp" | "tcp" | "tcp-lf";

interface Installed {
  cmd: string[];
  env: Record<string, string>;
}

/** Where a daemon is, or why it cannot be used. */
export function findDaemon(kind: DaemonKind): Installed | string {
  const unpacked = join(ROOT, ".daemons", kind);
  if (kind === "rsyslog") {
    for (const [binary, modules] of [
      ["/usr/sbin/rsyslogd", "/usr/lib/x86_64-linux-gnu/rsyslog"],
      [join(unpacked, "usr/sbin/rsyslogd"), join(unpacked, "usr/lib/x86_64-linux-gnu/rsyslog")],
    ] as const) {
      if (existsSync(binary)) return { cmd: [binary, "-n", "-M", modules], env: {} };
    }
  } else {
    if (existsSync("/usr/sbin/syslog-ng")) return { cmd: ["/usr/sbin/syslog-ng", "-F", "--no-caps"], env: {} };
    const binary = join(unpacked, "usr/sbin/syslog-ng");
    if (existsSync(binary)) {
      return {
        cmd: [binary, "-F", "--no-caps", `--module-path=${join(unpacked, "usr/lib/syslog-ng/3.38")}`],
        env: {
          LD_LIBRARY_PATH: [join(unpacked, "usr/lib/x86_64-linux-gnu"), join(unpacked, "usr/lib/syslog-ng")].join(":"),
        },
      };
    }
  }
  return `${kind} is not installed (bash .ci/install-daemons installs it)`;
}

/**
 * A snippet from deploy/ with its port (514, or 2514 for RELP) moved to `port`, and a disk
 * buffer's folder into `dir`, as the docs show it otherwise.
 */
export function snippet(name: string, port: number, dir?: string): string {
  const text = readFileSync(join(ROOT, "deploy", name), "utf8");
  const moved = text.replace(/port\("?2?514"?\)/g, `port(${port})`).replace(/port="2?514"/g, `port="${port}"`);
  if (moved === text) throw new Error(`deploy/${name} names no port 514 or 2514`);
  return dir === undefined ? moved : moved.replace(/dir\("[^"]*"\)/g, `dir("${dir}")`);
}

/** The server's snippet for `output`, as the test runs it. */
function serverSnippet(kind: DaemonKind, output: ServerOutput, port: number, dir: string): string {
  if (output === "udp") return snippet(`${kind}-server.conf`, port);
  if (kind === "rsyslog" && output === "relp") return snippet("rsyslog-server-relp.conf", port);
  if (kind === "syslog-ng" && output !== "relp") {
    const text = snippet("syslog-ng-server-tcp.conf", port, dir);
    return output === "tcp" ? text : text.replace('syslog("127.0.0.1"', 'network("127.0.0.1"');
  }
  throw new Error(`no snippet for ${kind} sending over ${output}`);
}

/** The host name the server-side daemon stamps on its messages: not this machine's, so it shows if it is kept. */
export const SERVER_HOST = "web-server";

/** Lines of the home daemon's file: `HOST PROGRAM FACILITY SEVERITY MESSAGE`. */
const RSYSLOG_FIELDS = [
  'template(name="fields" type="string"',
  'string="%hostname% %programname% %syslogfacility-text% %syslogseverity-text% %msg:2:$%\\n")',
].join(" ");
const SYSLOG_NG_FIELDS = `template("\${HOST} \${PROGRAM} \${FACILITY} \${LEVEL} \${MSG}\\n")`;

export interface Daemon {
  child: Child;
  /** server side: the socket `logger -u` writes to; RFC 5424 messages go to `socket5424`. home side with
   * input "unix": the datagram socket the daemon reads, as it would /dev/log. */
  socket: string;
  socket5424: string;
  /** home side: the file messages land in. */
  file: string;
}

/**
 * Starts a daemon in `dir`: role "server" reads a local log socket and forwards to slps at
 * `port`, over `opts.output` (UDP unless told); role "home" listens on `port` for slpc and writes
 * the fields to a file. At home, `opts.input` picks the transport and its snippet from deploy/
 * (UDP unless told; "unix" reads `socket` instead of a port), and `opts.harness` adds
 * configuration lines before it; `opts.edit` changes the server's snippet. Starting a daemon
 * again in the same folder restarts it: same port or socket, same file, and on the server side
 * the same queue on disk.
 */
export async function startDaemon(
  kind: DaemonKind,
  role: "server" | "home",
  dir: string,
  port: number,
  opts: { input?: HomeInput; harness?: string[]; output?: ServerOutput; edit?: (snippet: string) => string } = {},
): Promise<Daemon> {
  const input = opts.input ?? "udp";
  /** The server's snippet as a test changed it, where it needs another value than the docs show. */
  const edited = (text: string) => (opts.edit ? opts.edit(text) : text);
  const homeSnippet = (daemon: DaemonKind) => snippet(`${daemon}-home${input === "udp" ? "" : `-${input}`}.conf`, port);
  const installed = findDaemon(kind);
  if (typeof installed === "string") throw new Error(installed);
  const socket = join(dir, "log.sock");
  const socket5424 = join(dir, "log5424.sock");
  const file = join(dir, "messages.log");
  const config = join(dir, kind === "rsyslog" ? "rsyslog.conf" : "syslog-ng.conf");
  let args: string[];
  if (kind === "rsyslog") {
    const harness =
      role === "server"
        ? [
            `global(workDirectory="${dir}" localHostname="${SERVER_HOST}")`,
            `module(load="imuxsock" SysSock.Use="off")`,
            // imuxsock limits each process to 200 messages in 5 s by default; the burst test sends 10,000.
            `input(type="imuxsock" Socket="${socket}" RateLimit.Interval="0")`,
            // A socket for programs that log RFC 5424: the regular parsers read its structured data.
            `input(type="imuxsock" Socket="${socket5424}" RateLimit.Interval="0" UseSpecialParser="off")`,
            edited(serverSnippet(kind, opts.output ?? "udp", port, dir)),
          ]
        : [
            // Another name than the server's and this machine's, so a host name it stamped itself would show.
            `global(workDirectory="${dir}" localHostname="home-machine")`,
            RSYSLOG_FIELDS,
            ...(opts.harness ?? []),
            ...(input === "unix"
              ? // Debian's `module(load="imuxsock")`, the reader of /dev/log, with the socket at a path of
                // the test's own.
                [`module(load="imuxsock" SysSock.Name="${socket}")`]
              : [homeSnippet("rsyslog")]),
            `*.* action(type="omfile" file="${file}" template="fields")`,
          ];
    writeFileSync(config, `${harness.join("\n")}\n`);
    args = ["-f", config, "-i", join(dir, "rsyslogd.pid")];
  } else {
    const harness =
      role === "server"
        ? [
            "@version: 3.38",
            `options { use-dns(no); };`,
            `source s_src {`,
            `  unix-dgram("${socket}" host-override("${SERVER_HOST}"));`,
            `  unix-dgram("${socket5424}" host-override("${SERVER_HOST}") flags(syslog-protocol));`,
            `};`,
            edited(serverSnippet(kind, opts.output ?? "udp", port, dir)),
          ]
        : [
            "@version: 3.38",
            `options { use-dns(no); };`,
            `destination d_syslog { file("${file}" ${SYSLOG_NG_FIELDS}); };`,
            ...(opts.harness ?? []),
            ...(input === "unix"
              ? // What the system() source makes of /dev/log, at a path of the test's own.
                [`source s_local { unix-dgram("${socket}"); };`, `log { source(s_local); destination(d_syslog); };`]
              : [homeSnippet("syslog-ng")]),
          ];
    writeFileSync(config, `${harness.join("\n")}\n`);
    args = [
      "-f",
      config,
      "-p",
      join(dir, "syslog-ng.pid"),
      "-R",
      join(dir, "syslog-ng.persist"),
      "-c",
      join(dir, "syslog-ng.ctl"),
    ];
  }
  const child = new Child([...installed.cmd, ...args], installed.env);
  if (role === "server")
    await until(
      () => `${kind} to create its sockets:\n${child.stderr}`,
      () => existsSync(socket) && existsSync(socket5424),
      10_000,
    );
  else if (input === "unix") {
    await until(
      () => `${kind} to make ${socket}:\n${child.stderr}`,
      () => existsSync(socket),
      10_000,
    );
  } else {
    const listening = input === "udp" ? udpListening : tcpListening;
    await until(
      () => `${kind} to listen on ${input} ${port}:\n${child.stderr}`,
      () => listening(port),
      10_000,
    );
  }
  return { child, socket, socket5424, file };
}

/** The lines written so far to a file that may not exist yet. */
export function linesOf(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "");
}

/** An HTTP CONNECT proxy (tinyproxy) or a SOCKS5 proxy (microsocks) on 127.0.0.1, and its log. */
export interface ProxyDaemon {
  child: Child;
  port: number;
  /** What the proxy logged so far: each tunnel and where it led. */
  log(): string;
  /** Starts it again on the same port, with the same configuration and log. */
  restart(): Promise<void>;
}

/**
 * tinyproxy in the foreground on 127.0.0.1:port with a configuration file in `dir`: Basic
 * authentication when `credentials` are given, CONNECT only to `connectPorts` when given.
 */
export async function startTinyproxy(
  dir: string,
  port: number,
  opts: { credentials?: { user: string; password: string }; connectPorts?: number[] } = {},
): Promise<ProxyDaemon> {
  const log = join(dir, `tinyproxy-${port}.log`);
  const config = join(dir, `tinyproxy-${port}.conf`);
  const lines = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Allow 127.0.0.1",
    "Timeout 600",
    "MaxClients 50",
    "LogLevel Info",
    `LogFile "${log}"`,
    `PidFile "${join(dir, `tinyproxy-${port}.pid`)}"`,
    ...(opts.credentials ? [`BasicAuth ${opts.credentials.user} ${opts.credentials.password}`] : []),
    ...(opts.connectPorts ?? []).map((allowed) => `ConnectPort ${allowed}`),
  ];
  writeFileSync(config, `${lines.join("\n")}\n`);
  const start = async () => {
    const child = new Child(["tinyproxy", "-d", "-c", config]);
    await until(
      () => `tinyproxy to listen on ${port}:\n${child.stderr}`,
      () => tcpListening(port),
      10_000,
    );
    return child;
  };
  const daemon: ProxyDaemon = {
    child: await start(),
    port,
    log: () => (existsSync(log) ? readFileSync(log, "utf8") : ""),
    restart: async () => {
      daemon.child = await start();
    },
  };
  return daemon;
}

/** microsocks on 127.0.0.1:port, with a user name and password when given; its log is its output. */
export async function startMicrosocks(
  port: number,
  credentials?: { user: string; password: string },
): Promise<ProxyDaemon> {
  const auth = credentials ? ["-u", credentials.user, "-P", credentials.password] : [];
  const children: Child[] = [];
  const start = async () => {
    const child = new Child(["microsocks", "-i", "127.0.0.1", "-p", String(port), ...auth]);
    children.push(child);
    await until(
      () => `microsocks to listen on ${port}:\n${child.stderr}`,
      () => tcpListening(port),
      10_000,
    );
    return child;
  };
  const daemon: ProxyDaemon = {
    child: await start(),
    port,
    log: () => children.map((child) => child.stderr + child.stdout.toString()).join(""),
    restart: async () => {
      daemon.child = await start();
    },
  };
  return daemon;
}
