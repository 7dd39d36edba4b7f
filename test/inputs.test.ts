// slps's --input in every form it accepts, through real slps and slpc processes, with senders of
// the test's own where a real daemon cannot be made to misbehave (test/first_hop.test.ts has the
// daemons). First a table: each form accepted carries a message to a client and is counted as its
// kind; each form refused is one line and exit 2 at start; a socket that cannot be had, one line
// and exit 1. Then each kind's own: RFC 6587 framing from a raw socket, RELP as a client of the
// test's own speaks it, logger into the unix socket; the backpressure of each acknowledged input
// while no client takes anything; and the bound on every cost a peer controls.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_FRAME, MAX_MESSAGE, MAX_RELP_DATA, RelpSession, UnixDatagramSender } from "../lib.ts";
import { RelpInput } from "../slps/inputs/relp.ts";
import { BUN, Child, freePort, rssAnon, type ServerHandle, sleep, snapshotOf, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
/** Room for the runtime's garbage (the chunks Bun reads into until the collector runs), as in datagrams.test.ts. */
const RUNTIME_SLACK = 96 * 2 ** 20;
const { server, client, sink, track } = bed;

/** Whether this machine has the IPv6 loopback address ::1. */
const ipv6Loopback = /^0{31}1 /m.test(readFileSync("/proc/net/if_inet6", "utf8"));

/** slps with `args` on loopback, not waited for: it may refuse them. */
async function slpsWith(args: string[]): Promise<Child> {
  const { cert, key } = bed.pki.server;
  const listen = ["--listen", `127.0.0.1:${await freePort()}`];
  return track(new Child([BUN, "slps.ts", ...listen, "--cert", cert, "--key", key, "--ca", bed.pki.ca, ...args]));
}

/** Polls `check` until it is true, as `until` does, for checks that ask slps (SIGUSR1). */
async function untilAsync(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** A TCP connection of the test's own: what it was sent, and whether it was closed. */
async function rawTcp(port: number, host = "127.0.0.1") {
  const state = { received: Buffer.alloc(0), closed: false };
  const socket = await Bun.connect({
    hostname: host,
    port,
    socket: {
      data(_socket, chunk) {
        state.received = Buffer.concat([state.received, chunk]);
      },
      close() {
        state.closed = true;
      },
      error: () => {},
    },
  });
  bed.defer(() => socket.terminate());
  /** Writes all of `bytes`, waiting while the socket takes no more; false if it took none for `ms`. */
  const writeAll = async (bytes: Uint8Array, ms = 2000): Promise<boolean> => {
    for (let at = 0, idle = performance.now(); at < bytes.length; ) {
      const wrote = socket.write(bytes.subarray(at));
      if (wrote > 0) [at, idle] = [at + wrote, performance.now()];
      else if (state.closed || performance.now() - idle > ms) return false;
      else await sleep(5);
    }
    return true;
  };
  return Object.assign(state, { socket, writeAll });
}

/** A RELP client of the test's own (lib/relp.ts), opened: it sends when asked and keeps the acknowledgements. */
async function relpClient(port: number, window = 128) {
  const session = new RelpSession<number>({ window });
  const state = { acknowledged: [] as number[], events: [] as string[], raw: "", closed: false };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_socket, chunk) {
        state.raw += Buffer.from(chunk).toString("latin1");
        for (const event of session.receive(chunk)) {
          if (event.type === "acknowledged") state.acknowledged.push(event.tag);
          else state.events.push(event.type === "opened" ? "opened" : `${event.type}: ${event.reason}`);
        }
      },
      close() {
        state.closed = true;
      },
      error: () => {},
    },
  });
  bed.defer(() => socket.terminate());
  socket.write(session.open());
  await until("the RELP session to open", () => state.events.includes("opened"));
  return Object.assign(state, {
    socket,
    session,
    /** Sends what the window lets go of `messages`, tagged from `first` on; how many it sent. */
    send(messages: Uint8Array[], first = 0): number {
      let sent = 0;
      for (const message of messages) {
        const frame = session.send(message, first + sent);
        if (!frame) break;
        socket.write(frame);
        sent++;
      }
      return sent;
    },
  });
}

const numbered = (n: number, prefix = "m", from = 0) =>
  Array.from({ length: n }, (_, i) => Buffer.from(`<13>${prefix} ${String(from + i).padStart(5, "0")}`));

/** The numbers slps prints for one input, by its --input text. */
async function inputNumbers(s: ServerHandle | Child, input: string) {
  const numbers = await snapshotOf(s);
  return numbers.inputs.find((entry: { input: string }) => entry.input === input);
}

describe("every --input form", () => {
  test("each form accepted carries a message to a client, counted under its input and kind", async () => {
    const unixDir = join(bed.dir, "table");
    mkdirSync(unixDir);
    const [udp, bare, tcp, tcpUpper, relp, relpName] = [
      await freePort("udp"),
      await freePort("udp"),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const forms = [
      [`udp://127.0.0.1:${udp}`, "udp"],
      [`127.0.0.1:${bare}`, "udp"],
      [`tcp://127.0.0.1:${tcp}`, "tcp"],
      [`TCP://127.0.0.1:${tcpUpper}`, "tcp"],
      [`relp://127.0.0.1:${relp}`, "relp"],
      [`relp://localhost:${relpName}`, "relp"],
      [`unix:${unixDir}/a.sock`, "unix"],
      [`unix://${unixDir}/b.sock`, "unix"],
    ];
    if (ipv6Loopback) {
      const [udp6, tcp6] = [await freePort("udp"), await freePort()];
      forms.push([`udp://[::1]:${udp6}`, "udp"], [`tcp://[::1]:${tcp6}`, "tcp"]);
    }
    const s = await server(forms.flatMap(([form]) => ["--input", form!]));
    const out = await sink();
    await client(s, { forwardPort: out.port });
    const sendOne = async (form: string, text: string) => {
      const kind = /^(udp|tcp|relp|unix)/i.exec(form)?.[1]?.toLowerCase() ?? "udp";
      const message = Buffer.from(`<13>${text}`);
      if (kind === "unix") {
        const path = form.replace(/^unix:(\/\/)?/, "");
        expect(Bun.spawnSync(["logger", "-u", path, "-d", "--socket-errors=on", text]).exitCode).toBe(0);
        return;
      }
      const [, host, port] = /^(?:\w+:\/\/)?\[?([^\]]+?)\]?:(\d+)$/.exec(form)!;
      if (kind === "udp") {
        const socket = await Bun.udpSocket({ hostname: host!.includes(":") ? "::1" : "127.0.0.1" });
        socket.send(message, Number(port), host!);
        socket.close();
      } else if (kind === "tcp") {
        const peer = await rawTcp(Number(port), host);
        await peer.writeAll(Buffer.concat([Buffer.from(`${message.length} `), message]));
      } else {
        const peer = await relpClient(Number(port));
        peer.send([message]);
        await until("the acknowledgement", () => peer.acknowledged.length === 1);
      }
    };
    for (const [index, [form]] of forms.entries()) {
      await sendOne(form!, `form ${index}`);
      await until(`form ${index}'s message (${form})`, () =>
        out.messages.some((m) => m.toString().endsWith(`form ${index}`)),
      );
    }
    const numbers = await snapshotOf(s);
    for (const [index, [form, kind]] of forms.entries()) {
      const shown = form!.replace(/^TCP:/, "tcp:").replace(/^127/, "udp://127").replace("unix://", "unix:");
      const entry = numbers.inputs.find((input: { input: string }) => input.input === shown);
      expect({ form, entry: entry && { kind: entry.kind, received: entry.received } }).toEqual({
        form,
        entry: { kind, received: 1 },
      });
      expect(out.messages.filter((m) => m.toString().endsWith(`form ${index}`))).toHaveLength(1);
    }
    expect(numbers.received).toBe(forms.length);
    expect(s.stderr).toMatch(/receiving syslog on udp 127\.0\.0\.1:\d+, udp 127\.0\.0\.1:\d+, udp 127.*, tcp 127/);
  });

  const refused: [string, string[], string][] = [
    ["an unknown scheme", ["--input", "tls://127.0.0.1:6514"], 'unknown scheme "tls"'],
    ["no port", ["--input", "tcp://127.0.0.1"], "expected tcp://HOST:PORT (the port is missing)"],
    ["port 0", ["--input", "relp://127.0.0.1:0"], "port must be 1 to 65535"],
    ["a relative unix path", ["--input", "unix:run/slps.sock"], "a unix socket's path must be absolute"],
    ["a unix path too long", ["--input", `unix:/${"a".repeat(108)}`], "a unix socket's path is 107 bytes at most"],
    ["a flag as value", ["--input", "--buffer"], "not a flag: is the value missing?"],
    [
      "a name that does not resolve",
      ["--input", "tcp://nosuch.invalid:514"],
      "--input tcp://nosuch.invalid:514: cannot resolve nosuch.invalid",
    ],
    [
      "tcp and relp on one port",
      ["--input", "tcp://127.0.0.1:5514", "--input", "relp://127.0.0.1:5514"],
      "are the same address",
    ],
    ["one address twice", ["--input", "unix:/run/x.sock,unix:///run/x.sock"], "unix:/run/x.sock is named twice"],
    [
      "two names of one address",
      ["--input", "tcp://localhost:5514,tcp://127.0.0.1:5514"],
      "--input: tcp://localhost:5514 and tcp://127.0.0.1:5514 are the same address",
    ],
    [
      "an IPv4 address and its IPv6-mapped spelling",
      ["--input", "tcp://127.0.0.1:5514,relp://[::ffff:127.0.0.1]:5514"],
      "tcp://127.0.0.1:5514 and relp://[::ffff:127.0.0.1]:5514 are the same address",
    ],
    [
      "an address and the wildcard after it, on one port",
      ["--input", "udp://127.0.0.1:5514", "--input", "udp://0.0.0.0:5514"],
      "udp://127.0.0.1:5514 and udp://0.0.0.0:5514 cannot both listen: 0.0.0.0 takes port 5514 on every IPv4",
    ],
    [
      "--udp and --input on one port",
      ["--udp", "127.0.0.1:5514", "--input", "udp://127.0.0.1:5514"],
      "--input: udp://127.0.0.1:5514 is named twice",
    ],
    [
      "--udp-buffer with no UDP input",
      ["--input", "relp://127.0.0.1:2514", "--udp-buffer", "1MiB"],
      "--udp-buffer sizes a UDP input's buffer, and there is none",
    ],
    ["--input-connections 0", ["--input-connections", "0"], '--input-connections "0": must be 1 to'],
    ["--input-timeout 0", ["--input-timeout", "0"], '--input-timeout "0": expected seconds above zero'],
  ];
  for (const [what, args, why] of refused) {
    test(`${what} is refused at start: one line, exit 2`, async () => {
      const s = await slpsWith(args);
      expect(await s.exit(10_000)).toBe(2);
      expect(s.stderr.trim().split("\n")).toHaveLength(1);
      expect(s.stderr).toContain(why);
    });
  }

  test("a socket slps cannot have is one line, exit 1: a port in use, no folder, a file, a live reader", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    bed.defer(() => taken.stop(true));
    const file = join(bed.dir, "not-a-socket");
    writeFileSync(file, "mine\n");
    const held = join(bed.dir, "held.sock");
    const holder = await slpsWith(["--input", `unix:${held}`, "--udp", `127.0.0.1:${await freePort("udp")}`]);
    await holder.waitFor(/serving clients/);
    const cases: [string, string][] = [
      [
        `tcp://127.0.0.1:${taken.port}`,
        `cannot listen on tcp://127.0.0.1:${taken.port} (--input): the address is already in use`,
      ],
      [`unix:${bed.dir}/no/such/folder.sock`, "(--input): "],
      [`unix:${file}`, `${file}: not a socket; slps replaces only a socket of its own`],
      [`unix:${held}`, `${held}: another program reads this socket`],
    ];
    for (const [input, why] of cases) {
      const s = await slpsWith(["--input", input]);
      expect(await s.exit(10_000)).toBe(1);
      expect(s.stderr.trim().split("\n")).toHaveLength(1);
      expect(s.stderr).toContain(why);
    }
    expect(readFileSync(file, "utf8")).toBe("mine\n");
  });

  test("a unix socket left by a slps that was SIGKILLed is taken over by the next", async () => {
    const path = join(bed.dir, "stale.sock");
    const first = await slpsWith(["--input", `unix:${path}`]);
    await first.waitFor(/serving clients/);
    first.kill("SIGKILL");
    await first.proc.exited;
    const s = await server(["--input", `unix:${path}`]);
    expect(Bun.spawnSync(["logger", "-u", path, "-d", "--socket-errors=on", "after"]).exitCode).toBe(0);
    await untilAsync("the message", async () => (await inputNumbers(s, `unix:${path}`)).received === 1);
  });
});

/** slps with one input of `kind` (and its usual UDP one) on a free port or a path of the test's own. */
async function withInput(kind: "tcp" | "relp" | "unix", args: string[] = []) {
  const input =
    kind === "unix"
      ? `unix:${join(bed.dir, `${kind}-${await freePort()}.sock`)}`
      : `${kind}://127.0.0.1:${await freePort()}`;
  const s = await server(["--input", input, ...args]);
  const port = kind === "unix" ? 0 : Number(input.split(":").at(-1));
  return { s, input, port, path: input.slice("unix:".length) };
}

/** What a client printed, one message a line (slpc --stdout). */
const printed = (slpc: Child) => slpc.stdout.toString().split("\n").slice(0, -1);

/** The lines slps said matching `pattern`. */
const said = (s: Child, pattern: RegExp) => s.stderr.split("\n").filter((line) => pattern.test(line));

describe("tcp://, from a raw socket", () => {
  test("octet-counted and LF-framed messages mixed, cut anywhere, arrive whole, once, in order", async () => {
    const { s, port } = await withInput("tcp");
    const slpc = await client(s);
    const counted = (text: string) => `${Buffer.byteLength(text)} ${text}`;
    const texts = [
      "<13>counted, with a\nline break",
      "<14>a line",
      "<15>another line",
      "<16>counted again",
      "<17>last",
    ];
    const stream = Buffer.from(`${counted(texts[0]!)}${texts[1]}\n${texts[2]}\n${counted(texts[3]!)}${texts[4]}\n`);
    const peer = await rawTcp(port);
    for (let at = 0; at < stream.length; at += 3) {
      peer.socket.write(stream.subarray(at, at + 3));
      await sleep(2);
    }
    await until("five messages", () => printed(slpc).length >= 5);
    expect(printed(slpc)).toEqual(texts.map((text) => text.replace("\n", "\\n")));
  });

  test("a message over 65,507 bytes is read through, skipped, counted, said once a second", async () => {
    const { s, input, port } = await withInput("tcp");
    const slpc = await client(s);
    const long = "x".repeat(MAX_MESSAGE + 1);
    const peer = await rawTcp(port);
    const burst = `${long.length} ${long}<13>after counted\n${long}\n<13>after a line\n`;
    for (let i = 0; i < 3; i++) await peer.writeAll(Buffer.from(burst));
    await until("the six short ones", () => printed(slpc).length >= 6);
    expect(printed(slpc)).toEqual(Array(3).fill(["<13>after counted", "<13>after a line"]).flat());
    expect((await inputNumbers(s, input)).skipped).toEqual({ empty: 0, oversize: 6 });
    await s.waitFor(/skipped 6 frames over 65507 bytes, too long for a frame \(6 in all\)/);
    await sleep(1500);
    expect(said(s, /skipped \d+ frames over/)).toHaveLength(1);
  });

  test("a frame in neither form closes the connection with one line; what came before it arrives", async () => {
    const { s, port } = await withInput("tcp");
    const slpc = await client(s);
    const peer = await rawTcp(port);
    peer.socket.write("6 <13>ok12x <13>never\n");
    await until("the connection closed", () => peer.closed);
    await s.waitFor(
      /input tcp:\/\/127\.0\.0\.1:\d+: closed a connection: 127\.0\.0\.1:\d+: an octet count followed by byte 0x78/,
    );
    await until("the message before it", () => printed(slpc).length === 1);
    expect(printed(slpc)).toEqual(["<13>ok"]);
  });

  test("at the end of a connection a line without its LF is a message; a counted frame cut short is said", async () => {
    const { s, port } = await withInput("tcp");
    const slpc = await client(s);
    const line = await rawTcp(port);
    line.socket.write("<13>no LF at the end");
    line.socket.end();
    await until("the line", () => printed(slpc).length === 1);
    const counted = await rawTcp(port);
    counted.socket.write("20 <13>short");
    counted.socket.end();
    await s.waitFor(
      /lost a message: 127\.0\.0\.1:\d+: the connection ended inside an octet-counted frame, after 9 of its 20 bytes/,
    );
    expect(printed(slpc)).toEqual(["<13>no LF at the end"]);
  });
});

describe("relp://, from a RELP client of the test's own", () => {
  test("each message is acknowledged once, in order, and delivered once, in order", async () => {
    const { s, port } = await withInput("relp");
    const slpc = await client(s);
    const peer = await relpClient(port);
    const messages = numbered(1000, "relp");
    for (let sent = 0; sent < messages.length; ) {
      sent += peer.send(messages.slice(sent), sent);
      await sleep(1);
    }
    await until("1,000 acknowledgements", () => peer.acknowledged.length === 1000);
    expect(peer.acknowledged).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    await until("1,000 messages", () => printed(slpc).length === 1000);
    expect(printed(slpc)).toEqual(messages.map(String));
  });

  test("open is answered with slps's offers; close is answered and the connection closed", async () => {
    const { port } = await withInput("relp");
    const peer = await rawTcp(port);
    const offers = "relp_version=0\nrelp_software=x\ncommands=syslog";
    peer.socket.write(`1 open ${offers.length} ${offers}\n2 close 0\n`);
    await until("the connection closed", () => peer.closed);
    expect(peer.received.toString()).toMatch(
      /^1 rsp \d+ 200 OK\nrelp_version=0\nrelp_software=slps,[\d.]+\ncommands=syslog\n2 rsp 0\n$/,
    );
  });

  test("SIGTERM tells each RELP client serverclose before slps exits", async () => {
    const { s, port } = await withInput("relp");
    const peer = await relpClient(port);
    s.kill("SIGTERM");
    expect(await s.exit()).toBe(0);
    await until("the serverclose", () => peer.raw.endsWith("0 serverclose 0\n"));
    expect(peer.events).toContain("closed: the daemon closed the RELP session");
  });

  test.each([
    ["a frame that is not RELP", "GET / HTTP/1.1\r\n\r\n", /malformed RELP header "GET/],
    ["a txnr out of turn", "7 open 14 relp_version=0\n", /RELP txnr 7 where 1 was due/],
    ["syslog before open", "1 syslog 6 <13>hi\n", /RELP syslog before open/],
  ])("%s: one line, and the connection is closed", async (_what, bytes, why) => {
    const { s, port } = await withInput("relp");
    const peer = await rawTcp(port);
    peer.socket.write(bytes);
    await until("the connection closed", () => peer.closed);
    await s.waitFor(new RegExp(`closed a connection: 127\\.0\\.0\\.1:\\d+: ${why.source}`));
    expect(peer.received.toString()).toBe("");
  });

  test("an open without the syslog command is refused in librelp's words", async () => {
    const { s, port } = await withInput("relp");
    const peer = await rawTcp(port);
    const offers = "relp_version=0\ncommands=other";
    peer.socket.write(`1 open ${offers.length} ${offers}\n`);
    await until("the connection closed", () => peer.closed);
    expect(peer.received.toString()).toBe("1 rsp 44 500 required command not supported by client\n");
    await s.waitFor(/refused a RELP session: 127\.0\.0\.1:\d+: the client does not offer syslog/);
  });

  test("a message over 65,507 bytes is acknowledged, skipped, counted; one over 128 KiB ends the session", async () => {
    const { s, input, port } = await withInput("relp");
    const slpc = await client(s);
    const peer = await relpClient(port);
    peer.send([Buffer.alloc(MAX_MESSAGE + 1, 0x78), Buffer.from("<13>after"), Buffer.alloc(MAX_RELP_DATA, 0x79)]);
    await until("three acknowledgements", () => peer.acknowledged.length === 3);
    await until("the short one", () => printed(slpc).length === 1);
    expect(printed(slpc)).toEqual(["<13>after"]);
    expect((await inputNumbers(s, input)).skipped).toEqual({ empty: 0, oversize: 2 });
    await s.waitFor(/skipped 2 messages over 65507 bytes/);
    peer.socket.write(`5 syslog ${MAX_RELP_DATA + 1} `);
    await until("the connection closed", () => peer.closed);
    await s.waitFor(new RegExp(`RELP frame of ${MAX_RELP_DATA + 1} bytes, over ${MAX_RELP_DATA}`));
  });
});

describe("unix:, with logger", () => {
  test("logger's datagrams arrive whole, each once, in order", async () => {
    const { s, path } = await withInput("unix");
    const slpc = await client(s);
    const lines = Array.from({ length: 2000 }, (_, i) => `unix ${String(i).padStart(5, "0")}`);
    const logger = Bun.spawnSync(["logger", "-u", path, "-d", "--socket-errors=on", "-t", "t"], {
      stdin: Buffer.from(`${lines.join("\n")}\n`),
    });
    expect(logger.exitCode).toBe(0);
    await until("2,000 messages", () => printed(slpc).length >= 2000);
    expect(printed(slpc).map((line) => line.slice(line.indexOf("unix ")))).toEqual(lines);
  });

  test("an empty datagram and one over 65,507 bytes are skipped, counted, said once a second", async () => {
    const { s, input, path } = await withInput("unix");
    const slpc = await client(s);
    const sender = new UnixDatagramSender(path);
    bed.defer(() => sender.close());
    for (const datagram of [new Uint8Array(0), Buffer.alloc(MAX_MESSAGE + 1, 0x78), Buffer.from("<13>after")]) {
      expect(sender.send(datagram)).toBe("sent");
    }
    await until("the short one", () => printed(slpc).length === 1);
    expect(printed(slpc)).toEqual(["<13>after"]);
    expect((await inputNumbers(s, input)).skipped).toEqual({ empty: 1, oversize: 1 });
    await s.waitFor(/skipped 1 empty datagrams: an empty message cannot be relayed \(1 in all\)/);
    await s.waitFor(/skipped 1 datagrams over 65507 bytes, too long for a frame \(1 in all\)/);
  });
});

describe("backpressure: with no client, an acknowledged input takes what --buffer holds and no more", () => {
  /** Room for what nobody was sent: a message of the longest size must fit beside it. */
  const BUFFER = 128 * 1024;
  const COUNT = 5000;
  const messages = numbered(COUNT, "held");

  /** Waits until slps's count for `input` stops moving for a second; returns it. */
  async function settled(s: ServerHandle, input: string): Promise<number> {
    let received = -1;
    for (let since = performance.now(); performance.now() - since < 1500; await sleep(100)) {
      const now = (await inputNumbers(s, input)).received;
      if (now !== received) [received, since] = [now, performance.now()];
    }
    return received;
  }

  /**
   * What a client that comes with --replay gets: all, once, in order; and meanwhile slps held what
   * --buffer holds, forgot nothing, and stopped where the longest message would not have fitted.
   */
  async function thenAll(s: ServerHandle, held: number, text: (line: string) => string = (line) => line) {
    const { buffer } = await snapshotOf(s);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(COUNT);
    expect(buffer.first).toBe(1);
    const holds = buffer.bytes + 16 * buffer.messages;
    expect(holds).toBeLessThanOrEqual(BUFFER);
    expect(holds + MAX_FRAME + 16).toBeGreaterThan(BUFFER);
    const slpc = await client(s, { args: ["--replay"] });
    await until(
      () => `${COUNT} messages (have ${printed(slpc).length})`,
      () => printed(slpc).length >= COUNT,
      30_000,
    );
    await sleep(300);
    expect(printed(slpc).map(text)).toEqual(messages.map(String));
  }

  // --input-timeout 1: a connection not read while slps holds back is not cut for the frame it left half read.
  const args = ["--buffer", String(BUFFER), "--input-timeout", "1"];

  test("tcp://: the sender's socket fills and waits", async () => {
    const { s, input, port } = await withInput("tcp", args);
    const peer = await rawTcp(port);
    const bytes = Buffer.concat(messages.map((m) => Buffer.from(`${m.length} ${m}`)));
    const writing = peer.writeAll(bytes, 60_000);
    const held = await settled(s, input);
    await sleep(1500);
    expect(said(s, /closed a connection/)).toEqual([]);
    expect(peer.closed).toBe(false);
    await thenAll(s, held);
    expect(await writing).toBe(true);
  });

  test("relp://: acknowledged only as far as held; the rest once a client takes them", async () => {
    const { s, input, port } = await withInput("relp", args);
    const peer = await relpClient(port);
    let sent = 0;
    const sending = setInterval(() => {
      sent += peer.send(messages.slice(sent), sent);
    }, 5);
    bed.defer(() => clearInterval(sending));
    const held = await settled(s, input);
    await sleep(1500);
    expect(said(s, /closed a connection/)).toEqual([]);
    expect(peer.acknowledged.length).toBe(held);
    expect(sent - held).toBeLessThanOrEqual(128); // the window waits unacknowledged
    expect(peer.closed).toBe(false);
    await thenAll(s, held);
    await until("every acknowledgement", () => peer.acknowledged.length === COUNT);
    expect(peer.acknowledged).toEqual(Array.from({ length: COUNT }, (_, i) => i));
  });

  test("tcp://: what a connection read waits as its bytes, not an object a frame each", async () => {
    const { s, input, port } = await withInput("tcp", args);
    const filler = await rawTcp(port);
    void filler.writeAll(Buffer.concat(messages.map((m) => Buffer.from(`${m}\n`))), 60_000);
    await settled(s, input);
    const before = rssAnon(s.pid);
    // Each of 15 more connections is read once before slps stops reading it: a chunk of empty lines.
    const lines = Buffer.alloc(4 * 2 ** 20, 0x0a);
    const peers = await Promise.all(Array.from({ length: 15 }, () => rawTcp(port)));
    await Promise.all(peers.map((peer) => peer.writeAll(lines, 1000)));
    await sleep(1000);
    expect(peers.filter((peer) => peer.closed)).toEqual([]);
    // Held as objects, a frame each, this was 219 MiB; as bytes, 15 reads of 64 KiB.
    expect(rssAnon(s.pid) - before).toBeLessThan(RUNTIME_SLACK);
  });

  test("tcp://: a frame in neither form read while slps held back closes the connection when room comes", async () => {
    const { s, input, port } = await withInput("tcp", args);
    const filler = await rawTcp(port);
    void filler.writeAll(Buffer.concat(messages.map((m) => Buffer.from(`${m}\n`))), 60_000);
    await settled(s, input);
    const late = await rawTcp(port);
    await late.writeAll(Buffer.from("<13>late\n0 <13>bad\n"));
    await sleep(500);
    expect(late.closed).toBe(false);
    const slpc = await client(s, { args: ["--replay"] });
    await until("the late connection closed", () => late.closed);
    await until("the late message", () => printed(slpc).includes("<13>late"));
    await sleep(1500);
    expect(said(s, /closed a connection/)).toEqual([
      expect.stringMatching(/closed a connection: 127\.0\.0\.1:\d+: an octet count starts with 0$/),
    ]);
  });

  test("unix:: logger blocks in its send until slps reads again", async () => {
    const { s, input, path } = await withInput("unix", args);
    const logger = Bun.spawn(["logger", "-u", path, "-d", "--socket-errors=on", "--prio-prefix"], {
      stdin: Buffer.from(`${messages.join("\n")}\n`),
    });
    bed.defer(() => logger.kill());
    const held = await settled(s, input);
    expect(logger.exitCode).toBeNull(); // blocked in send(2): the kernel holds it, nothing is dropped
    // logger puts its header after the PRI: `<13>Dec  3 08:00:00 root: held 00000`.
    await thenAll(s, held, (line) => `<13>${line.slice(line.indexOf("held "))}`);
    expect(await logger.exited).toBe(0);
  });
});

describe("the bound on each cost a peer of a tcp:// or relp:// input controls", () => {
  test("connections: --input-connections at once; more are closed at once, counted, said once a second", async () => {
    const { s, input, port } = await withInput("tcp", ["--input-connections", "4"]);
    const slpc = await client(s);
    const peers: Awaited<ReturnType<typeof rawTcp>>[] = [];
    let failed = 0; // a connection slps closes at once may fail before Bun calls it made
    for (let i = 0; i < 50; i++)
      await rawTcp(port).then(
        (peer) => peers.push(peer),
        () => failed++,
      );
    await until("46 of them closed", () => failed + peers.filter((peer) => peer.closed).length === 46);
    const open = peers.filter((peer) => !peer.closed);
    expect(open).toHaveLength(4);
    for (const [i, peer] of open.entries()) peer.socket.write(`<13>still served ${i}\n`);
    await until("the four messages", () => printed(slpc).length === 4);
    expect(await inputNumbers(s, input)).toMatchObject({ connections: 4, refusedConnections: 46 });
    await sleep(1500);
    // One line a second at most for the whole flood, with the count.
    const lines = said(s, /refused a connection/);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines[0]).toMatch(/4 open already \(--input-connections\)/);
  });

  test("a connection reset while slps holds what it read keeps its slot till that is handed on", async () => {
    const { s, input, port } = await withInput("tcp", ["--input-connections", "2", "--buffer", String(128 * 1024)]);
    // Each sends more than --buffer takes with no client, and resets the connection: slps keeps what
    // it read, and the slot with it, or a peer that sends and leaves could make it hold without end.
    const sent = (n: number) => numbered(3000, `leaver${n}`).map(String);
    let served = 0;
    for (let n = 0; n < 5; n++) {
      const peer = await rawTcp(port).catch(() => undefined);
      if (!peer) continue;
      await peer.writeAll(Buffer.from(`${sent(n).join("\n")}\n`), 3000);
      await sleep(300);
      if (!peer.closed) served++;
      peer.socket.terminate();
    }
    await sleep(1500);
    expect(served).toBe(2);
    expect(await inputNumbers(s, input)).toMatchObject({ connections: 2 });
    expect((await inputNumbers(s, input)).refusedConnections).toBeGreaterThanOrEqual(3);
    const slpc = await client(s, { args: ["--replay"] });
    await untilAsync("the slots given back", async () => (await inputNumbers(s, input)).connections === 0);
    // What each served peer sent before the reset arrives in order, as far as slps had read it.
    for (const n of [0, 1]) {
      const got = printed(slpc).filter((line) => line.startsWith(`<13>leaver${n} `));
      expect(got.length).toBeGreaterThan(0);
      expect(got).toEqual(sent(n).slice(0, got.length));
    }
  });

  test("a frame begun and not finished within --input-timeout closes the connection; an idle one stays", async () => {
    const tcp = await withInput("tcp", ["--input-timeout", "1"]);
    const idle = await rawTcp(tcp.port);
    const partial = await rawTcp(tcp.port);
    partial.socket.write("100 <13>the rest never comes");
    // One byte every half second is no progress: the frame must end within the timeout of its start.
    const dribble = setInterval(() => partial.socket.write("x"), 500);
    bed.defer(() => clearInterval(dribble));
    await until("the partial one closed", () => partial.closed, 5000);
    await tcp.s.waitFor(/closed a connection: 127\.0\.0\.1:\d+: the rest of a frame did not come within 1 s/);
    expect(idle.closed).toBe(false);
    const relp = await withInput("relp", ["--input-timeout", "1"]);
    const silent = await rawTcp(relp.port);
    await until("the RELP peer that never opens closed", () => silent.closed, 5000);
    await relp.s.waitFor(/closed a connection: 127\.0\.0\.1:\d+: RELP's open did not come within 1 s/);
  });

  test("bytes: a frame that says it is 999,999,999 bytes long, and an endless line, cost no memory", async () => {
    const { s, input, port } = await withInput("tcp");
    const before = rssAnon(s.pid);
    const counted = await rawTcp(port);
    const line = await rawTcp(port);
    counted.socket.write("999999999 ");
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 256; i++) {
      expect(await counted.writeAll(chunk, 10_000)).toBe(true);
      expect(await line.writeAll(chunk, 10_000)).toBe(true);
    }
    line.socket.end();
    await untilAsync("the endless line skipped", async () => (await inputNumbers(s, input)).skipped.oversize === 1);
    // 512 MiB went in; what slps holds of them is a message at most, beside the runtime's garbage.
    expect(rssAnon(s.pid) - before).toBeLessThan(RUNTIME_SLACK);
  });

  test("answers: a RELP peer that never reads them is not read either; it costs 64 KiB of them at most", async () => {
    // More answers than the kernels' buffers on loopback hold (several MiB): 20 bytes each.
    const COUNT_ANSWERS = 500_000;
    const { s, input, port } = await withInput("relp");
    const slpc = await client(s);
    const peer = await rawTcp(port);
    const offers = "relp_version=0\ncommands=syslog";
    peer.socket.write(`1 open ${offers.length} ${offers}\n`);
    await until("the open answered", () => peer.received.length > 0);
    peer.socket.pause(); // reads nothing more: slps's answers pile up in its kernel, then in slps
    const frames = Array.from(
      { length: COUNT_ANSWERS },
      (_, i) => `${i + 2} syslog 11 <13>m${String(i).padStart(6, "0")}\n`,
    );
    const writing = peer.writeAll(Buffer.from(frames.join("")), 60_000);
    let held = -1;
    for (let since = performance.now(); performance.now() - since < 1500; await sleep(100)) {
      const now = (await inputNumbers(s, input)).received;
      if (now !== held) [held, since] = [now, performance.now()];
    }
    // The kernels hold some answers, slps 64 KiB more (about 3,000); then it reads no more.
    expect(held).toBeLessThan(COUNT_ANSWERS);
    expect(printed(slpc).length).toBe(held);
    peer.socket.resume();
    await until("all of them", () => printed(slpc).length === COUNT_ANSWERS, 30_000);
    expect(await writing).toBe(true);
    await until(
      "every answer",
      () => (peer.received.toString().match(/ rsp 6 200 OK\n/g)?.length ?? 0) === COUNT_ANSWERS,
    );
  });
});

describe("what a connection that waits for room leaves behind once it is gone", () => {
  test("relp://: peers that connect, send and leave while slps holds back leave one waiter, however many", async () => {
    // An intake of the test's own that never has room, so that what waits for it can be counted.
    const waiters: (() => void)[] = [];
    const intake = {
      receive: () => undefined,
      whenStored() {},
      hasRoom: () => false,
      onRoom: (w: () => void) => void waiters.push(w),
    };
    const port = await freePort();
    const options = { intake, log() {}, maxConnections: 4, timeoutMs: 30_000, software: "test" };
    const input = new RelpInput({ kind: "relp", host: "127.0.0.1", port }, options);
    await input.open();
    bed.defer(() => input.close());
    const offers = "relp_version=0\ncommands=syslog";
    for (let i = 0; i < 100; i++) {
      const peer = await rawTcp(port);
      peer.socket.write(`1 open ${offers.length} ${offers}\n2 syslog 6 <13>hi\n`);
      await until("the open answered", () => peer.received.length > 0);
      await sleep(20);
      peer.socket.terminate();
      await until("the connection gone", () => input.numbers().connections === 0);
    }
    expect(waiters.length).toBeLessThanOrEqual(1);
  });
});
