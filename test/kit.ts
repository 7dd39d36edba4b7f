// Test helpers: certificates made with openssl for this run, slps and slpc as real child
// processes, UDP senders and sinks, and raw TLS clients. Everything stays on loopback.

import { afterAll, afterEach, beforeAll } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, Subprocess } from "bun";
import { type ControlMessage, Deframer, encodeControl, MAX_MESSAGE, TLS13_ONLY } from "../lib.ts";

export const ROOT = join(import.meta.dir, "..");
export const BUN = process.execPath;

export function tempDir(prefix = "slp-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs openssl in `cwd`; throws with its stderr when it fails. */
export function openssl(cwd: string, ...args: string[]): void {
  const result = Bun.spawnSync(["openssl", ...args], { cwd, stderr: "pipe", stdout: "pipe" });
  if (result.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr.toString()}`);
}

/** A key and certificate `name.key`/`name.pem` in `dir`, signed by `issuer` (self-signed when absent). */
export function makeCert(
  dir: string,
  name: string,
  opts: { subject: string; issuer?: string; ca?: boolean; san?: string; days?: number; usage?: "server" | "client" },
): void {
  openssl(
    dir,
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    opts.subject,
  );
  const ext = [
    opts.ca ? "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign" : "basicConstraints=CA:FALSE",
    opts.san ? `subjectAltName=${opts.san}` : "",
    opts.usage === "server"
      ? "extendedKeyUsage=serverAuth"
      : opts.usage === "client"
        ? "extendedKeyUsage=clientAuth"
        : "",
  ].join("\n");
  writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
  const days = String(opts.days ?? 30);
  if (opts.issuer) {
    openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${opts.issuer}.pem`,
      "-CAkey",
      `${opts.issuer}.key`,
      "-CAcreateserial",
      "-days",
      days,
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    );
  } else {
    openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-key",
      `${name}.key`,
      "-days",
      days,
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    );
  }
}

/** `name.pem`: the certificate `leaf` followed by its intermediates; `name.key`: the leaf's key. */
export function chain(dir: string, name: string, leaf: string, ...intermediates: string[]): void {
  const text = [leaf, ...intermediates].map((part) => readFileSync(join(dir, `${part}.pem`), "utf8")).join("");
  writeFileSync(join(dir, `${name}.pem`), text);
  writeFileSync(join(dir, `${name}.key`), readFileSync(join(dir, `${leaf}.key`)));
}

/**
 * Everything the tests need: a root CA with two intermediates, a server certificate for
 * localhost and 127.0.0.1, good and bad client certificates.
 */
export function makePki(dir: string) {
  makeCert(dir, "root", { subject: "/C=US/O=Example/CN=Example Root CA", ca: true });
  makeCert(dir, "interA", { subject: "/C=US/O=Example/CN=Example CA A", issuer: "root", ca: true });
  makeCert(dir, "interB", { subject: "/C=US/O=Example/CN=Example CA B", issuer: "root", ca: true });
  makeCert(dir, "server", {
    subject: "/O=Example/CN=localhost",
    issuer: "root",
    san: "DNS:localhost,IP:127.0.0.1",
    usage: "server",
  });
  makeCert(dir, "client", { subject: "/O=Example/CN=home", issuer: "root", usage: "client" });
  makeCert(dir, "clientA0", { subject: "/O=Example/CN=home-a", issuer: "interA", usage: "client" });
  chain(dir, "clientA", "clientA0", "interA");
  makeCert(dir, "clientB0", { subject: "/O=Example/CN=home-b", issuer: "interB", usage: "client" });
  chain(dir, "clientB", "clientB0", "interB");
  makeCert(dir, "expired", { subject: "/O=Example/CN=old", issuer: "root", usage: "client", days: -1 });
  makeCert(dir, "otherca", { subject: "/O=Mallory/CN=Other CA", ca: true });
  makeCert(dir, "stranger", { subject: "/O=Mallory/CN=stranger", issuer: "otherca", usage: "client" });
  const file = (name: string) => join(dir, name);
  return {
    dir,
    ca: file("root.pem"),
    server: { cert: file("server.pem"), key: file("server.key") },
    cert: (name: string) => ({ cert: file(`${name}.pem`), key: file(`${name}.key`) }),
  };
}
export type Pki = ReturnType<typeof makePki>;

/** A port that was free a moment ago, on 127.0.0.1, for TCP or UDP. */
export async function freePort(kind: "tcp" | "udp" = "tcp"): Promise<number> {
  if (kind === "udp") {
    const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const port = socket.port;
    socket.close();
    return port;
  }
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** The sockets bound to 127.0.0.1:port, as lines of /proc/net/udp or /proc/net/tcp. */
function loopbackSockets(kind: "udp" | "tcp", port: number): string[][] {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync(`/proc/net/${kind}`, "utf8")
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[1] === local);
}

/** Whether something listens on 127.0.0.1:port over UDP. */
export function udpListening(port: number): boolean {
  return loopbackSockets("udp", port).length > 0;
}

/** Whether something listens on 127.0.0.1:port over TCP (state 0A). */
export function tcpListening(port: number): boolean {
  return loopbackSockets("tcp", port).some((fields) => fields[3] === "0A");
}

/** The client ports of slps's open TCP connections on 127.0.0.1:port, from the kernel's table. */
export function serverSideConnections(port: number): number[] {
  return (
    loopbackSockets("tcp", port)
      // Not the listener (state 0A), nor what the kernel finishes alone after slps let go (inode 0).
      .filter((fields) => fields[3] !== "0A" && fields[9] !== "0")
      .map((fields) => parseInt(fields[2]!.split(":")[1]!, 16))
  );
}

/** Datagrams the kernel dropped at 127.0.0.1:port because the socket's receive buffer was full. */
export function udpDrops(port: number): number {
  return loopbackSockets("udp", port).reduce((sum, fields) => sum + Number(fields.at(-1)), 0);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it is true; fails after `ms`, saying `what` it waited for. A function for
 * `what` is called only then, so the message shows the state at the timeout, not at the start.
 */
export async function until(what: string | (() => string), check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(2);
  }
}

/** A child process whose stderr lines and stdout bytes are collected as they come. */
/**
 * The environment a test's process starts with: this one's, less what would change slps or slpc
 * behind the test's back (an operator's SLPS_*, SLPC_* or proxy variables in the shell that runs
 * the tests). A test that wants one passes it.
 */
export function testEnvironment(): Record<string, string | undefined> {
  const kept = Object.entries(process.env).filter(
    ([name]) => !/^(SLPS_|SLPC_)/.test(name) && !/^(https?|all|no)_proxy$/i.test(name),
  );
  return Object.fromEntries(kept);
}

export class Child {
  readonly proc: Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  stderr = "";
  #stdout: Buffer[] = [];

  constructor(cmd: string[], env: Record<string, string> = {}, stdin: "ignore" | "pipe" = "ignore") {
    const spawnEnv = { ...testEnvironment(), ...env };
    this.proc = Bun.spawn(cmd, { cwd: ROOT, env: spawnEnv, stdin, stdout: "pipe", stderr: "pipe" });
    void this.#collect(this.proc.stderr, (chunk) => (this.stderr += chunk.toString()));
    void this.#collect(this.proc.stdout, (chunk) => void this.#stdout.push(chunk));
  }

  /** Everything written to stdout so far. */
  get stdout(): Buffer {
    if (this.#stdout.length > 1) this.#stdout = [Buffer.concat(this.#stdout)];
    return this.#stdout[0] ?? Buffer.alloc(0);
  }

  async #collect(stream: ReadableStream<Uint8Array>, take: (chunk: Buffer) => void): Promise<void> {
    for await (const chunk of stream) take(Buffer.from(chunk));
  }

  /** Waits until stderr matches. */
  async waitFor(pattern: RegExp, ms = 10_000): Promise<void> {
    await until(
      () => `${pattern} in stderr:\n${this.stderr}`,
      () => pattern.test(this.stderr),
      ms,
    );
  }

  async exit(ms = 5_000): Promise<number> {
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    const code = await this.proc.exited;
    clearTimeout(timer);
    return code;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }

  get pid(): number {
    return this.proc.pid;
  }
}

/** JSON a process printed, which tests index freely. */
// biome-ignore lint/suspicious/noExplicitAny: tests index it as they know it; a wrong guess fails their expect
type Printed = Record<string, any>;

/** The numbers slps writes to stderr as one JSON line on SIGUSR1: the first such line after now. */
export async function snapshotOf(child: Child): Promise<Printed> {
  const from = child.stderr.length;
  child.kill("SIGUSR1");
  let found: Printed | undefined;
  await until("slps's SIGUSR1 line", () => {
    const line = child.stderr
      .slice(from)
      .split("\n")
      .find((text) => text.startsWith("{") && text.endsWith("}"));
    if (line) found = JSON.parse(line);
    return found !== undefined;
  });
  return found!;
}

/** Resident memory of a process, in bytes. */
export function rss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Anonymous resident memory of a process (its heap and buffers, no shared code), in bytes. */
export function rssAnon(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** CPU seconds a process has used, user and system, from /proc/PID/stat (in clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * A client of the test's own speaking slp's protocol over TLS: it sends `resume` when the hello
 * comes, keeps every control message slps sends, and stops reading after the first `start` unless
 * `reads`. What it does after that is the test's: `send` a control message, or raw bytes.
 */
export async function protocolClient(
  port: number,
  creds: { cert: string; key: string; ca: string },
  opts: { resume?: ControlMessage; reads?: boolean } = {},
) {
  const resume = opts.resume ?? { type: "resume", version: 1 };
  const deframer = new Deframer(MAX_MESSAGE);
  const state = { controls: [] as ({ type: string } & Record<string, unknown>)[], data: 0, closed: false };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    tls: { cert: Bun.file(creds.cert), key: Bun.file(creds.key), ca: Bun.file(creds.ca), serverName: "localhost" },
    socket: {
      data(socket, chunk) {
        for (const frame of deframer.push(chunk)) {
          if (!frame.control) {
            state.data++;
            continue;
          }
          const message = JSON.parse(Buffer.from(frame.body).toString());
          state.controls.push(message);
          if (message.type === "hello") socket.write(encodeControl(resume));
          if (message.type === "start" && !opts.reads) socket.pause();
        }
      },
      close: () => {
        state.closed = true;
      },
      error: () => {},
    },
  });
  return Object.assign(state, {
    socket,
    send: (message: ControlMessage | Uint8Array) =>
      socket.write(message instanceof Uint8Array ? message : encodeControl(message)),
    close: () => socket.terminate(),
  });
}

export interface ServerHandle extends Child {
  udpPort: number;
  tlsPort: number;
}

/** Starts slps on loopback (or the given command, such as a compiled binary) and waits until it serves. */
export async function startServer(
  pki: Pki,
  args: string[] = [],
  opts: { udpPort?: number; tlsPort?: number; cmd?: string[] } = {},
) {
  const udpPort = opts.udpPort ?? (await freePort("udp"));
  const tlsPort = opts.tlsPort ?? (await freePort("tcp"));
  const cmd = opts.cmd ?? [BUN, "slps.ts"];
  const child = new Child([
    ...cmd,
    "--udp",
    `127.0.0.1:${udpPort}`,
    "--listen",
    `127.0.0.1:${tlsPort}`,
    "--cert",
    pki.server.cert,
    "--key",
    pki.server.key,
    "--ca",
    pki.ca,
    ...args,
  ]);
  try {
    await child.waitFor(/serving clients/);
  } catch (error) {
    child.kill("SIGKILL"); // not handed back, so no test bed could stop it
    throw error;
  }
  return Object.assign(child, { udpPort, tlsPort }) as ServerHandle;
}

export interface ClientOptions {
  /** Port to dial: the server's TLS port unless a proxy sits between. */
  port?: number;
  /** Forward to this UDP port on 127.0.0.1; print to stdout when absent. */
  forwardPort?: number;
  /** Forward to this --forward address instead (tcp://, relp://, unix:). */
  forward?: string;
  args?: string[];
  /** The command to run instead of `bun slpc.ts`, such as a compiled binary. */
  cmd?: string[];
  certName?: string;
  /** Wait for the server to start this client's stream (true), or only for the TLS connection. */
  waitForStart?: boolean;
}

/** Starts slpc and, by default, waits until the server has started its stream, so no message races its arrival. */
export async function startClient(pki: Pki, server: ServerHandle, opts: ClientOptions = {}): Promise<Child> {
  const { cert, key } = pki.cert(opts.certName ?? "client");
  const output =
    opts.forward !== undefined
      ? ["--forward", opts.forward]
      : opts.forwardPort === undefined
        ? ["--stdout"]
        : ["--forward", `127.0.0.1:${opts.forwardPort}`];
  const started = () => server.stderr.match(/ starts at #/g)?.length ?? 0;
  const before = started();
  const child = new Child([
    ...(opts.cmd ?? [BUN, "slpc.ts"]),
    "--server",
    `localhost:${opts.port ?? server.tlsPort}`,
    "--ca",
    pki.ca,
    "--cert",
    cert,
    "--key",
    key,
    "--retry-min",
    "0.2",
    "--retry-max",
    "1",
    ...output,
    ...(opts.args ?? []),
  ]);
  try {
    await child.waitFor(/connected to/);
    if (opts.waitForStart ?? true) await until("the server to start the client's stream", () => started() > before);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return child;
}

/** A UDP socket on loopback that keeps every datagram it receives. */
export async function udpSink() {
  const messages: Buffer[] = [];
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data: (_s, data) => void messages.push(Buffer.from(data)) },
  });
  return { port: socket.port, messages, close: () => socket.close() };
}

let sender: import("bun").udp.Socket<"buffer"> | undefined;

/** Sends each message as one datagram to 127.0.0.1:port. */
export async function sendUdp(port: number, messages: Uint8Array[]): Promise<void> {
  sender ??= await Bun.udpSocket({});
  for (const message of messages) {
    while (!sender.send(message, port, "127.0.0.1")) await sleep(1);
  }
}

/** A TLS client that finishes its handshake and then never reads (test/stalled_client.py). */
export async function stalledClient(port: number, ca: string, creds: { cert: string; key: string }): Promise<Child> {
  const child = new Child(["python3", `${ROOT}/test/stalled_client.py`, String(port), ca, creds.cert, creds.key]);
  await until("the stalled client's handshake", () => child.stdout.toString().includes("handshake done"));
  return child;
}

/**
 * An independent TLS client (openssl s_client) that records every byte of application data the
 * server sends it. `extra` adds s_client flags such as -tls1_2.
 */
export function rawTlsClient(
  port: number,
  ca: string,
  creds?: { cert: string; key: string },
  extra: string[] = [],
): Child {
  const auth = creds ? ["-cert", creds.cert, "-key", creds.key] : [];
  return new Child(
    ["openssl", "s_client", "-quiet", "-connect", `127.0.0.1:${port}`, "-CAfile", ca, ...auth, ...extra],
    {},
    "pipe",
  );
}

/**
 * A TCP proxy of the test's own between slpc and slps, so a test can cut the path (close both
 * sides, refuse new connections) or blackhole it (keep the sockets open, pass no more bytes).
 */
export function pathProxy(targetPort: number) {
  type End = { peer?: Socket<End>; backlog: Buffer[]; blackholed: boolean };
  const pairs = new Set<Socket<End>>();
  let down = false;

  /** Forwards bytes to the other end; until that end is connected they wait in this end's backlog. */
  const pass = (from: Socket<End>, chunk: Buffer) => {
    if (from.data.blackholed) return;
    const to = from.data.peer;
    if (!to) return void from.data.backlog.push(Buffer.from(chunk));
    to.data.backlog.push(Buffer.from(chunk));
    flush(to);
  };
  const flush = (socket: Socket<End>) => {
    while (socket.data.backlog.length > 0) {
      const chunk = socket.data.backlog[0]!;
      const taken = socket.write(chunk);
      if (taken < 0) return;
      if (taken < chunk.length) {
        socket.data.backlog[0] = chunk.subarray(taken);
        return;
      }
      socket.data.backlog.shift();
    }
  };

  const listener = Bun.listen<End>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        if (down) return client.terminate();
        client.data = { backlog: [], blackholed: false };
        pairs.add(client);
        void Bun.connect<End>({
          hostname: "127.0.0.1",
          port: targetPort,
          data: { peer: client, backlog: [], blackholed: false },
          socket: {
            open(server) {
              client.data.peer = server;
              // What the client sent before the server side was up.
              server.data.backlog.push(...client.data.backlog);
              client.data.backlog = [];
              flush(server);
            },
            data: (server, chunk) => pass(server, chunk),
            drain: (server) => flush(server),
            close: () => client.terminate(),
            connectError: () => client.terminate(),
          },
        });
      },
      data: (client, chunk) => pass(client, chunk),
      drain: (client) => flush(client),
      close(client) {
        pairs.delete(client);
        client.data?.peer?.terminate();
      },
    },
  });

  return {
    port: listener.port,
    /** Closes every connection through the proxy and refuses new ones until `restore`. */
    cut() {
      down = true;
      for (const client of pairs) client.terminate();
    },
    restore() {
      down = false;
    },
    /** The connections open now stay open but carry nothing more; new ones pass as usual. */
    blackhole() {
      for (const client of pairs) {
        client.data.blackholed = true;
        if (client.data.peer) client.data.peer.data.blackholed = true;
      }
    },
    close() {
      listener.stop(true);
    },
  };
}

/** Waits until slps has started one more client stream than `before`. */
export const streamStarted = (s: ServerHandle, before = 0) =>
  until(
    () => `a stream to start:\n${s.stderr}`,
    () => (s.stderr.match(/ starts at #/g)?.length ?? 0) > before,
  );

/** Sends `messages` to slps in batches, pausing between them so its UDP buffer never overflows. */
export async function feed(s: ServerHandle, messages: Buffer[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 100) {
    await sendUdp(s.udpPort, messages.slice(i, i + 100));
    await sleep(2);
  }
}

/** A steady stream of numbered messages to slps, until stopped; `sent` lists what went out. */
export function steadySender(udpPort: number, perSecond: number, prefix = "seq") {
  const sent: string[] = [];
  let n = 0;
  const timer = setInterval(() => {
    const batch = Array.from({ length: Math.max(1, Math.round(perSecond / 50)) }, () => `<13>${prefix} ${++n}`);
    sent.push(...batch);
    void sendUdp(
      udpPort,
      batch.map((text) => Buffer.from(text)),
    );
  }, 20);
  return { sent, stop: () => clearInterval(timer) };
}

/**
 * The scaffolding every end-to-end file shares: a folder with certificates made for this file,
 * and things started by a test (processes, sinks, proxies) stopped after it, even when it fails.
 * Call it once at the top level of a test file.
 */
/**
 * The resume point slpc's --state file holds for a server (`localhost:PORT` as the test bed dials
 * it), or for its only server when none is named.
 */
export function savedPoint(state: string, server?: string): { server: string; last: number } | undefined {
  const { servers } = JSON.parse(readFileSync(state, "utf8")) as {
    servers: Record<string, { server: string; last: number }>;
  };
  if (server !== undefined) return servers[server];
  const points = Object.values(servers);
  if (points.length !== 1)
    throw new Error(`--state holds ${points.length} servers, not one: ${JSON.stringify(servers)}`);
  return points[0];
}

export function testBed(extraCertificates: (dir: string) => void = () => {}) {
  let dir = "";
  let pki: Pki | undefined;
  const cleanups: (() => unknown)[] = [];
  beforeAll(() => {
    dir = tempDir();
    pki = makePki(dir);
    extraCertificates(dir);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(() => removeDir(dir));

  const bed = {
    get dir() {
      return dir;
    },
    get pki() {
      return pki!;
    },
    /** Runs `cleanup` after the current test. */
    defer(cleanup: () => unknown): void {
      cleanups.push(cleanup);
    },
    /** Kills `child` after the current test. */
    track<T extends Child>(child: T): T {
      cleanups.push(() => {
        child.kill("SIGKILL");
        return child.proc.exited;
      });
      return child;
    },
    server: async (args: string[] = [], opts: Parameters<typeof startServer>[2] = {}) =>
      bed.track(await startServer(pki!, args, opts)),
    client: async (server: ServerHandle, opts: ClientOptions = {}) => bed.track(await startClient(pki!, server, opts)),
    /**
     * The command line of slpc dialling `port` on loopback (a real slps, a proxy or a fake server)
     * with the test's certificate `name` (the client's unless said), quick to retry, and `args`,
     * whose flags win over these; not waited for.
     */
    slpcCommand(port: number, args: string[] = [], name = "client"): string[] {
      const { cert, key } = pki!.cert(name);
      const identity = ["--ca", pki!.ca, "--cert", cert, "--key", key];
      return [
        BUN,
        "slpc.ts",
        "--server",
        `localhost:${port}`,
        ...identity,
        "--retry-min",
        "0.2",
        "--retry-max",
        "1",
        ...args,
      ];
    },
    /** slpc as slpcCommand runs it, killed after the test. */
    slpc: (port: number, args: string[] = []): Child => bed.track(new Child(bed.slpcCommand(port, args))),
    /**
     * A FIFO for a child's stdout that the test reads only when it wants to: until then it fills up
     * like a pipe whose reader is slow. `writeEnd` goes to Bun.spawn; `readAll` reads until the child exits.
     */
    fifo(name: string) {
      const path = join(dir, name);
      const made = Bun.spawnSync(["mkfifo", path]);
      if (made.exitCode !== 0) throw new Error(`mkfifo ${path}: ${made.stderr.toString()}`);
      const readEnd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      cleanups.push(() => closeSync(readEnd));
      const writeEnd = openSync(path, "w");
      const chunks: Buffer[] = [];
      const buffer = Buffer.alloc(1 << 16);
      return {
        writeEnd,
        /** Reads what is there now; true once the writer has closed its end. */
        drain(): boolean {
          for (;;) {
            let n: number;
            try {
              n = readSync(readEnd, buffer);
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code === "EAGAIN") return false;
              throw error;
            }
            if (n === 0) return true;
            chunks.push(Buffer.from(buffer.subarray(0, n)));
          }
        },
        async readAll(ms = 10_000): Promise<string> {
          for (const deadline = Date.now() + ms; !this.drain() && Date.now() < deadline; ) await sleep(5);
          return Buffer.concat(chunks).toString();
        },
        /** The lines read so far. */
        lines: () => Buffer.concat(chunks).toString().split("\n").slice(0, -1),
      };
    },
    /** slpc as a process of the test's own, its stdout into `out` (a `fifo`), its stderr collected. */
    slpcInto(out: { writeEnd: number }, command: string[]) {
      const proc = Bun.spawn(command, { cwd: ROOT, env: testEnvironment(), stdout: out.writeEnd, stderr: "pipe" });
      closeSync(out.writeEnd); // the child holds the only write end: its exit is the reader's end of file
      cleanups.push(() => {
        proc.kill("SIGKILL");
        return proc.exited;
      });
      const child = { proc, stderr: "" };
      void (async () => {
        for await (const chunk of proc.stderr) child.stderr += Buffer.from(chunk).toString();
      })();
      return child;
    },
    async sink() {
      const sink = await udpSink();
      cleanups.push(() => sink.close());
      return sink;
    },
    proxy(port: number) {
      const proxy = pathProxy(port);
      cleanups.push(() => proxy.close());
      return proxy;
    },
    /**
     * A TLS server of the test's own with the real server certificate, playing slps badly: it
     * sends `greeting` to each connection and calls `onData` for whatever slpc answers. Returns its port.
     */
    fakeServer(greeting: Uint8Array, onData: (socket: Socket<undefined>) => void = () => {}): number {
      const listener = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: Bun.file(pki!.server.cert), key: Bun.file(pki!.server.key), secureOptions: TLS13_ONLY },
        socket: { open: (socket) => void socket.write(greeting), data: (socket) => onData(socket) },
      });
      cleanups.push(() => listener.stop(true));
      return listener.port;
    },
  };
  return bed;
}

/** Numbers as runs, `3-7, 12`, for the record lines. */
export function runs(numbers: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < numbers.length; ) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j++;
    parts.push(i === j ? `${numbers[i]}` : `${numbers[i]}-${numbers[j]}`);
    i = j + 1;
  }
  return parts.join(", ") || "none";
}
