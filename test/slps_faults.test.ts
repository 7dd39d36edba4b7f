// Fault injection: random sequences of network events, made by fast-check from a seed, against
// one real slps while a real slpc receives. Connections reset at every phase, half a ClientHello,
// a handshake and then silence, certificates refused by the TLS layer or by --allow from peers
// that never close, a client that stops reading, one that resumes twice, garbage, connections
// reset while slps is too busy to accept them, empty and maximal datagrams. After each sequence:
// no connection that is not streaming outlived its phase's deadline, by the kernel's table; slps
// counts none left in any phase but streaming; a new client is served; the real client got every
// message; slps's memory stays bounded. FAULT_SEED reproduces a run, FAULT_RUNS sets how many.

import { expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import type { Socket } from "bun";
import fc from "fast-check";
import { Deframer, encodeControl, MAX_MESSAGE } from "../lib.ts";
import { makeCert, rss, serverSideConnections, sleep, snapshotOf, testBed, until } from "./kit.ts";

const seed = Number(process.env.FAULT_SEED ?? 20261127);
const runs = Number(process.env.FAULT_RUNS ?? 25);
setDefaultTimeout(Math.max(90_000, runs * 10_000));

const HANDSHAKE_TIMEOUT = 1; // seconds; slps's closing deadline is min(this, 2 s)
/** The longest a connection that never streams may live: its handshake and resume, then its goodbye. */
const DEADLINE_MS = (HANDSHAKE_TIMEOUT + Math.min(HANDSHAKE_TIMEOUT, 2)) * 1000;
/** Room for a busy machine on top of the deadlines. */
const SLACK_MS = 3000;

const bed = testBed((dir) => {
  makeCert(dir, "stranger2", { subject: "/O=Mallory/CN=stranger2", issuer: "otherca", usage: "client" });
});

/** What a sequence is made of. `at` names the moment a connection is reset, or falls silent. */
type Event =
  | { kind: "reset"; at: "connect" | "client hello" | "handshake" | "hello" | "resume" }
  | { kind: "silent"; at: "client hello" | "handshake" }
  | { kind: "stranger" }
  | { kind: "not allowed" }
  | { kind: "stops reading" }
  | { kind: "resumes twice" }
  | { kind: "garbage" }
  | { kind: "busy resets"; count: number }
  | { kind: "datagrams"; sizes: ("empty" | "small" | "maximal")[] };

const resetAt = fc.constantFrom("connect", "client hello", "handshake", "hello", "resume") as fc.Arbitrary<"connect">;
const silentAt = fc.constantFrom("client hello", "handshake") as fc.Arbitrary<"handshake">;
const size = fc.constantFrom("empty", "small", "maximal") as fc.Arbitrary<"small">;
const sizes = fc.array(size, { minLength: 1, maxLength: 4 });
const eventArbitrary: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant("reset" as const), at: resetAt }),
  fc.record({ kind: fc.constant("silent" as const), at: silentAt }),
  fc.constant({ kind: "stranger" as const }),
  fc.constant({ kind: "not allowed" as const }),
  fc.constant({ kind: "stops reading" as const }),
  fc.constant({ kind: "resumes twice" as const }),
  fc.constant({ kind: "garbage" as const }),
  fc.record({ kind: fc.constant("busy resets" as const), count: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("datagrams" as const), sizes }),
);

/** A TLS record header announcing a 512-byte ClientHello, and fewer bytes of it. */
const HALF_CLIENT_HELLO = Buffer.concat([
  Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
  Buffer.alloc(100, 0x2a),
]);
const RESUME = encodeControl({ type: "resume", version: 1 });

/** A connection of the test's own. */
interface Peer {
  socket?: Socket<undefined>;
  openedAt: number;
  closed: boolean;
  /** It reached streaming on purpose, where no handshake or closing deadline applies. */
  streams?: boolean;
  /** The event that made it, for messages. */
  event?: string;
}

interface Handlers {
  open?: (socket: Socket<undefined>) => void;
  handshake?: (socket: Socket<undefined>) => void;
  /** Each control message slps sends, by its type. */
  control?: (socket: Socket<undefined>, type: string) => void;
}

test(`random sequences of network faults leave slps clean and its client served (${runs} runs)`, async () => {
  console.log(`slps_faults: FAULT_SEED=${seed} FAULT_RUNS=${runs}`);
  const s = await bed.server([
    "--handshake-timeout",
    String(HANDSHAKE_TIMEOUT),
    "--stall",
    "2",
    "--allow",
    "home",
    "--handshake-rate",
    "1000000",
    "--buffer",
    "4MiB",
    "--queue",
    "1MiB",
  ]);

  // The client that must be served throughout, into a sink with room for bursts of maximal datagrams.
  const received: Buffer[] = [];
  const sink = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
  sink.on("message", (message) => void received.push(message));
  await new Promise<void>((resolve) => sink.bind(0, "127.0.0.1", resolve));
  bed.defer(() => sink.close());
  await bed.client(s, { forwardPort: sink.address().port });

  const sender = createSocket("udp4");
  bed.defer(() => sender.close());
  const sent: Buffer[] = [];
  const send = (message: Buffer, counted = true) => {
    if (counted) sent.push(message);
    return new Promise<void>((resolve, reject) =>
      sender.send(message, s.udpPort, "127.0.0.1", (error) => (error ? reject(error) : resolve())),
    );
  };

  const peers: Peer[] = [];
  const ca = Bun.file(bed.pki.ca);
  /** A TCP connection to slps, or a TLS one with the named certificate. */
  function connect(certificate: false | "client" | "clientA" | "stranger2", handlers: Handlers = {}): Peer {
    const peer: Peer = { openedAt: performance.now(), closed: false };
    peers.push(peer);
    const deframer = new Deframer(MAX_MESSAGE);
    const creds = certificate ? bed.pki.cert(certificate) : undefined;
    void Bun.connect({
      hostname: "127.0.0.1",
      port: s.tlsPort,
      tls: creds && { cert: Bun.file(creds.cert), key: Bun.file(creds.key), ca, serverName: "localhost" },
      socket: {
        open(socket) {
          peer.socket = socket;
          handlers.open?.(socket);
        },
        handshake: (socket) => handlers.handshake?.(socket),
        data(socket, chunk) {
          for (const frame of deframer.push(chunk)) {
            if (frame.control) handlers.control?.(socket, JSON.parse(Buffer.from(frame.body).toString()).type);
          }
        },
        close: () => {
          peer.closed = true;
        },
        error: () => {},
        connectError: () => {
          peer.closed = true;
        },
      },
    }).catch(() => {
      peer.closed = true;
    });
    return peer;
  }
  /** Waits until `check` holds, or 5 s: an event does not wait long on a peer that slps already closed. */
  const settle = (check: () => boolean) => until("an event", check, 5000).catch(() => {});

  async function play(event: Event): Promise<void> {
    let done = false;
    const reset = (socket: Socket<undefined>) => {
      done = true;
      socket.terminate();
    };
    const silence = (socket: Socket<undefined>) => {
      done = true;
      socket.pause();
    };
    const halfHello = (then: (socket: Socket<undefined>) => void) => (socket: Socket<undefined>) => {
      socket.write(HALF_CLIENT_HELLO);
      then(socket);
    };
    let peer: Peer;
    switch (event.kind) {
      case "reset":
        if (event.at === "connect") peer = connect(false, { open: reset });
        else if (event.at === "client hello") peer = connect(false, { open: halfHello(reset) });
        else if (event.at === "handshake") peer = connect("client", { handshake: reset });
        else {
          const at = event.at;
          peer = connect("client", {
            control: (socket, type) => (type === "hello" && at === "resume" ? socket.write(RESUME) : reset(socket)),
          });
        }
        return settle(() => done || peer.closed);
      case "silent":
        // Never answers and never closes: only slps's deadlines end it.
        if (event.at === "client hello") peer = connect(false, { open: halfHello(silence) });
        else peer = connect("client", { control: silence });
        return settle(() => done || peer.closed);
      case "stranger":
      case "not allowed":
        // Refused by the TLS layer, or by --allow; this side reads nothing more, so it never closes.
        peer = connect(event.kind === "stranger" ? "stranger2" : "clientA", { handshake: silence });
        return settle(() => done || peer.closed);
      case "stops reading":
        peer = connect("client", {
          control(socket, type) {
            if (type === "hello") socket.write(RESUME);
            if (type === "start") {
              peer.streams = true;
              silence(socket);
            }
          },
        });
        return settle(() => done || peer.closed);
      case "resumes twice":
        // And then reads nothing more: slps's goodbye must not wait for it.
        peer = connect("client", {
          control(socket, type) {
            if (type !== "hello") return;
            socket.write(Buffer.concat([RESUME, RESUME]));
            silence(socket);
          },
        });
        return settle(() => done || peer.closed);
      case "garbage":
        peer = connect("client", {
          control: (socket, type) => void (type === "hello" && socket.write("\x00\xffnot a frame\r\n")),
        });
        return settle(() => peer.closed);
      case "busy resets": {
        // Stopped, slps cannot accept: these wait in the kernel's queue and are reset there.
        s.kill("SIGSTOP");
        try {
          const resets = Array.from({ length: event.count }, () => connect(false, { open: reset }));
          await settle(() => resets.every((each) => each.closed || each.socket !== undefined));
          for (const each of resets) each.socket?.terminate();
        } finally {
          s.kill("SIGCONT");
        }
        return;
      }
      case "datagrams":
        for (const size of event.sizes) {
          if (size === "empty") await send(Buffer.alloc(0), false);
          else if (size === "maximal") await send(Buffer.alloc(MAX_MESSAGE, 0x30 + (sent.length % 10)));
          else await send(Buffer.from(`<13>small ${sent.length}`));
        }
    }
  }

  // The kernel's view, ten times a second: how long each connection of ours that should not
  // stream was seen open on slps's side, at most.
  let oldest = { ms: 0, event: "" };
  const watcher = setInterval(() => {
    const open = new Set(serverSideConnections(s.tlsPort));
    const now = performance.now();
    for (const peer of peers) {
      if (peer.streams || !peer.socket || !open.has(peer.socket.localPort)) continue;
      if (now - peer.openedAt > oldest.ms) oldest = { ms: now - peer.openedAt, event: peer.event ?? "?" };
    }
  }, 100);
  bed.defer(() => clearInterval(watcher));

  const baseline = rss(s.pid);
  let peak = baseline;
  const sequences = fc.array(eventArbitrary, { minLength: 1, maxLength: 6 });
  await fc.assert(
    fc.asyncProperty(sequences, async (events) => {
      const story = events.map((event) => Object.values(event).join(" ")).join(", ");
      oldest = { ms: 0, event: "" };
      for (const event of events) {
        const before = peers.length;
        await play(event);
        for (const peer of peers.slice(before)) peer.event = Object.values(event).join(" ");
        await send(Buffer.from(`<13>fault message ${sent.length}`));
      }
      // A client that stopped reading streams, which no deadline ends while nothing waits for it:
      // the test's own to close. The others stay open on this side: slps must end them.
      for (const peer of peers) if (peer.streams) peer.socket?.terminate();

      // slps's count: nothing left but the real client, streaming; and so in the kernel.
      const lastEventAt = performance.now();
      let phases: Record<string, number> = {};
      for (;;) {
        phases = (await snapshotOf(s)).phases;
        const { handshaking, resuming, streaming, closing } = phases;
        const inKernel = serverSideConnections(s.tlsPort).length;
        if (handshaking + resuming + closing === 0 && streaming === 1 && inKernel === 1) break;
        if (performance.now() - lastEventAt > DEADLINE_MS + SLACK_MS) {
          const lately = s.stderr.split("\n").slice(-15).join("\n");
          const state = `phases ${JSON.stringify(phases)}, ${inKernel} in the kernel`;
          throw new Error(`slps did not settle after ${story}: ${state}\n${lately}`);
        }
        await sleep(100);
      }
      const outlived = `a connection (${oldest.event}) outlived its deadline after ${story}`;
      expect(oldest.ms, outlived).toBeLessThan(DEADLINE_MS + SLACK_MS);
      for (const peer of peers.splice(0)) peer.socket?.terminate();

      // A new client is served as ever: greeted, and started when it asks.
      let started = false;
      connect("client", {
        control(socket, type) {
          if (type === "hello") return void socket.write(RESUME);
          started = true;
          socket.terminate();
        },
      });
      await until(
        () => `a new client's start after ${story}`,
        () => started,
        5000,
      );
      for (const peer of peers.splice(0)) peer.socket?.terminate();

      await until(
        () => `every message at the client (${received.length} of ${sent.length}) after ${story}`,
        () => received.length >= sent.length,
        10_000,
      );
      expect(received.length).toBe(sent.length);
      const wrong = sent.findIndex((message, i) => !received[i]!.equals(message));
      expect(wrong, `message ${wrong} arrived changed after ${story}`).toBe(-1);
      peak = Math.max(peak, rss(s.pid));
      expect(peak).toBeLessThan(baseline + 96 * 1024 * 1024);
      console.log(
        `slps_faults: ${story}: settled in ${Math.round(performance.now() - lastEventAt)} ms, ` +
          `oldest refused connection ${Math.round(oldest.ms)} ms`,
      );
    }),
    { seed, numRuns: runs, endOnFailure: true },
  );
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  console.log(`slps_faults: ${sent.length} messages; slps RSS ${mb(baseline)} MB at start, ${mb(peak)} MB at most`);
});
