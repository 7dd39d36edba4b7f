// slps's --batch-window, on the bytes a client receives: the first message after a quiet spell
// goes out at once, and what comes within the window after a write goes in the next write, whole.

import { expect, setDefaultTimeout, test } from "bun:test";
import { Deframer, encodeControl, MAX_MESSAGE } from "../lib.ts";
import { sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();

/** A client of slps's protocol that keeps each read of its stream: when it came, and the messages in it. */
async function readingClient(port: number) {
  const { cert, key } = bed.pki.cert("client");
  const deframer = new Deframer(MAX_MESSAGE);
  const state = { started: false, reads: [] as { at: number; messages: string[] }[] };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    tls: { cert: Bun.file(cert), key: Bun.file(key), ca: Bun.file(bed.pki.ca), serverName: "localhost" },
    socket: {
      data(socket, chunk) {
        const at = performance.now();
        const messages: string[] = [];
        for (const frame of deframer.push(chunk)) {
          const body = Buffer.from(frame.body).toString();
          if (!frame.control) messages.push(body);
          else if (JSON.parse(body).type === "hello") socket.write(encodeControl({ type: "resume", version: 1 }));
          else if (JSON.parse(body).type === "start") state.started = true;
        }
        if (messages.length > 0) state.reads.push({ at, messages });
      },
      error() {},
    },
  });
  bed.defer(() => socket.terminate());
  await until("the stream to start", () => state.started);
  return state;
}

test("--batch-window 100: after quiet a message comes at once; two within the window come in one read", async () => {
  const s = await bed.server(["--batch-window", "100"]);
  const client = await readingClient(s.tlsPort);
  await sleep(300); // quiet: no write for longer than the window
  const sentAt = performance.now();
  await sendUdp(s.udpPort, [Buffer.from("<13>first")]);
  await until("the first message", () => client.reads.length === 1);
  // Waiting for the window would take 100 ms at the least.
  expect(client.reads[0]!.at - sentAt).toBeLessThan(100);

  await sendUdp(s.udpPort, [Buffer.from("<13>second")]);
  await sleep(20);
  await sendUdp(s.udpPort, [Buffer.from("<13>third")]);
  await until("the other two", () => client.reads.flatMap((read) => read.messages).length === 3);
  expect(client.reads.map((read) => read.messages)).toEqual([["<13>first"], ["<13>second", "<13>third"]]);
  // The first write went after `sentAt`, and the next no sooner than the window after it (Bun's
  // timers keep whole milliseconds, so a few less may be asked of them).
  expect(client.reads[1]!.at - sentAt).toBeGreaterThanOrEqual(95);
});

test("with --batch-window 0, each message that comes in a turn of its own is a write of its own", async () => {
  const s = await bed.server(["--batch-window", "0"]);
  const client = await readingClient(s.tlsPort);
  for (const text of ["<13>one", "<13>two", "<13>three"]) {
    await sendUdp(s.udpPort, [Buffer.from(text)]);
    await sleep(20);
  }
  await until("three messages", () => client.reads.flatMap((read) => read.messages).length === 3);
  expect(client.reads.map((read) => read.messages)).toEqual([["<13>one"], ["<13>two"], ["<13>three"]]);
});
