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
import type { Socket } from "bun";
import { MAX_MESSAGE, MAX_RELP_DATA, RelpSession } from "../lib.ts";
import { BUN, Child, freePort, rssAnon, type ServerHandle, sleep, snapshotOf, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
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
      data: (_socket, chunk) => void (state.received = Buffer.concat([state.received, chunk])),
      close: () => void (state.closed = true),
      error: () => {},
    },
  });
  bed.defer(() => socket.terminate());
  /** Writes all of `bytes`, waiting while the socket takes no more; false if it took none for `ms`. */
  const writeAll = async (bytes: Uint8Array, ms = 2000): Promise<boolean> => {
    for (let at = 0, idle = performance.now(); at < bytes.length; ) {
      const wrote = socket.write(bytes.subarray(at));
      if (wrote > 0) [at, idle] = [at + wrote, performance.now()];
      else if (performance.now() - idle > ms) return false;
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
      close: () => void (state.closed = true),
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

  test("a socket slps cannot have is one line naming it and exit 1: a port in use, a folder, a file, a live reader", async () => {
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
