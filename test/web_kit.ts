// What the tests of slpc --web share: slpc with the view on a loopback port and its token read
// from the start line, a raw HTTP client (exact bytes, any Host header, a socket that stops
// reading), a UDP sink that notes when each message came, and a steady sender at a given rate.

import { createSocket } from "node:dgram";
import type { Socket } from "bun";
import { type Child, freePort, type ServerHandle, sendUdp, type testBed, udpDrops, until } from "./kit.ts";

type Bed = ReturnType<typeof testBed>;

export interface View {
  slpc: Child;
  port: number;
  token: string;
  /** http://127.0.0.1:PORT */
  base: string;
}

/**
 * slpc following `servers` with the view on 127.0.0.1 (a free port), forwarding to `sinkPort`
 * (or printing, when none), `args` last; waits until it follows every server.
 */
export async function startView(bed: Bed, servers: ServerHandle[], sinkPort?: number, args: string[] = []) {
  const port = await freePort();
  const more = servers.slice(1).flatMap((s) => ["--server", `localhost:${s.tlsPort}`]);
  const output = sinkPort === undefined ? ["--format", "json"] : ["--forward", `127.0.0.1:${sinkPort}`];
  const slpc = bed.slpc(servers[0]!.tlsPort, [...more, ...output, "--web", `127.0.0.1:${port}`, ...args]);
  await slpc.waitFor(/--web: the live view is at/);
  const token = /\?token=([A-Za-z0-9._~-]+)/.exec(slpc.stderr)?.[1] ?? "";
  await until(
    () => `slpc to follow ${servers.length} servers:\n${slpc.stderr}`,
    () => (slpc.stderr.match(/following server/g)?.length ?? 0) >= servers.length,
  );
  return { slpc, port, token, base: `http://127.0.0.1:${port}` } satisfies View;
}

export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  body: string;
}

/** Reads an HTTP response from its text: status, headers, body. */
export function parseResponse(text: string): RawResponse {
  const end = text.indexOf("\r\n\r\n");
  const [statusLine, ...lines] = text.slice(0, end === -1 ? text.length : end).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1] ?? 0), headers, body: text.slice(end + 4) };
}

/**
 * A TCP connection of the test's own to the view: what it sends is exact, and it reads only while
 * `reading` (a paused socket leaves the kernel's buffers to fill, as a viewer that stops reading).
 */
export async function rawConnection(port: number) {
  const chunks: Buffer[] = [];
  const state = {
    closed: false,
    /** What came so far, as UTF-8. */
    get text() {
      return Buffer.concat(chunks).toString();
    },
  };
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_socket, chunk) => {
        chunks.push(Buffer.from(chunk));
      },
      close: () => {
        state.closed = true;
      },
      error: () => {
        state.closed = true;
      },
    },
  });
  return Object.assign(state, {
    socket,
    send: (text: string | Uint8Array) => socket.write(text),
    /** Stops reading: the kernel's buffers fill, then the view's writes find no room. */
    stopReading: () => socket.pause(),
    close: () => socket.terminate(),
    response: () => parseResponse(state.text),
  });
}

/** Sends `request` and reads until the view closes the connection (or `ms`); the response as text. */
export async function raw(port: number, request: string, ms = 5000): Promise<RawResponse & { closed: boolean }> {
  // A connection the view closes as it opens may fail to connect at all (ECONNRESET): closed, with nothing.
  const connection = await rawConnection(port).catch(() => undefined);
  if (!connection) return { ...parseResponse(""), closed: true };
  connection.send(request);
  await until("the view to close the connection", () => connection.closed, ms).catch(() => {});
  connection.close();
  return { ...connection.response(), closed: connection.closed };
}

/** A GET request as curl would send it: `headers` added, Host 127.0.0.1:PORT unless they set one. */
export function get(port: number, path: string, headers: Record<string, string> = {}): string {
  const all = { Host: `127.0.0.1:${port}`, "User-Agent": "test", ...headers };
  return `GET ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("")}\r\n`;
}

/** The SSE events of a stream's text so far: each one's id, type, and its data lines as parsed JSON. */
export function sseEvents(text: string) {
  const body = text.includes("\r\n\r\n") ? text.slice(text.indexOf("\r\n\r\n") + 4) : text;
  return body
    .split("\n\n")
    .slice(0, -1) // the last is not complete yet
    .map((block) => {
      const lines = block.split("\n");
      const field = (name: string) => lines.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
      const data = lines.filter((line) => line.startsWith("data: ")).map((line) => JSON.parse(line.slice(6)));
      return { id: field("id"), event: field("event"), data };
    })
    .filter((event) => event.data.length > 0);
}

/** The messages of a stream's text so far (not its notices), in order. */
export const sseMessages = (text: string) =>
  sseEvents(text).flatMap((event) => (event.event === undefined ? event.data : []));

/** A UDP sink that notes when each datagram came, with a receive buffer large enough for 10,000 a second. */
export async function timedSink(bed: Bed) {
  const arrived: { text: string; at: number }[] = [];
  const socket = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
  socket.on("message", (data) => void arrived.push({ text: data.toString("latin1"), at: performance.now() }));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  bed.defer(() => socket.close());
  const port = socket.address().port;
  return { port, arrived, drops: () => udpDrops(port) };
}

/**
 * Sends `perSecond` messages `<13>NAME N at=MS` to `s` until stopped (or `total` were sent),
 * stamped with the time they were sent.
 */
export function steadyStamped(bed: Bed, s: ServerHandle, name: string, perSecond: number, total = Infinity) {
  let sent = 0;
  const started = performance.now();
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * perSecond));
    const batch: Buffer[] = [];
    while (sent < due) batch.push(Buffer.from(`<13>msg ${name} ${++sent} at=${performance.now().toFixed(1)}`));
    if (batch.length > 0) void sendUdp(s.udpPort, batch);
    if (sent >= total) clearInterval(timer);
  }, 10);
  bed.defer(() => clearInterval(timer));
  return {
    get sent() {
      return sent;
    },
    stop: () => clearInterval(timer),
  };
}

/** The numbers of `name`'s messages in `texts`, in their order. */
export const numbersOf = (texts: string[], name: string) =>
  texts.filter((text) => text.includes(` ${name} `)).map((text) => Number(/ (\d+) at=/.exec(text)![1]));

export const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
