// slpc --web: the live view. One more consumer of what slpc receives, beside the output and never
// in its way: each message is copied into the view's history (slpc/web/history.ts) as it comes,
// and from there each viewer is sent what it has not had yet, as its socket takes it. Nothing here
// touches the ledger: the output alone decides what is delivered and where each server resumes.
//
// HTTP is spoken by hand on a plain TCP listener (slpc/web/http.ts), so that every cost a viewer
// controls has a bound this file can name: one request head of 8 KiB per connection, within
// REQUEST_MS; a few connections waiting at once (the oldest makes room), and so many a minute
// from one address; at most --web-viewers streams, each holding one unsent write and its place in
// the history, cut when its socket takes nothing for STALL_MS.

import type { Socket, TCPSocketListener } from "bun";
import { bindFailure, formatAddress, HandshakeLimiter, reason } from "../../lib.ts";

import { authorized, refusal, tokenCookie } from "./access.ts";
import { parseViewFilter, type ViewFilter } from "./filter.ts";
import { type Arrival, History } from "./history.ts";
import { HeadReader, HttpError, type RequestHead, response } from "./http.ts";
import type { WebSettings } from "./options.ts";
import { PAGE } from "./page.ts";
import { type StreamFormat, startOf, ViewerStream } from "./stream.ts";

/** From a connection's first byte to its request head's blank line. */
const REQUEST_MS = 10_000;
/** For a response (the page, a refusal) to be taken whole, and for a closed connection's peer to close too. */
const RESPONSE_MS = 30_000;
const CLOSE_MS = 2000;
/** A viewer whose socket takes nothing for this long, while bytes wait for it, is cut. */
const STALL_MS = 10_000;
/** A viewer that hears nothing for this long gets a comment line, so that proxies keep the stream open. */
const KEEPALIVE_MS = 15_000;
/**
 * Connections that have not been answered yet, at once: one more closes the oldest that has not
 * sent its request (or has had its answer), so that 32 connections sending nothing, renewed as
 * each times out, do not keep every browser out; when none of those is left, the new one is closed.
 */
const MAX_WAITING = 32;
/** Connections a minute from one address: a page and its reconnects take a few. */
const CONNECTIONS_PER_MINUTE = 600;
/** Bytes a viewer may send after its request: none are expected, and these are read and dropped. */
const MAX_AFTER_HEAD = 16 * 1024;
/** What one write to a viewer holds at most, and the most messages looked at for it in one turn. */
const WRITE_BYTES = 64 * 1024;
const WRITE_LOOKS = 2048;
/** Writes to one viewer in one turn of the event loop, before the others' and slpc's own turn. */
const WRITES_A_TURN = 4;
/** New messages wait this long for more, so that a viewer gets them in one write, not one each. */
const BATCH_MS = 20;
/** The line saying how many connections were refused, at most this often. */
const REFUSED_LINE_MS = 60_000;

/** Every response's headers: no script but the page's own, no framing, no sniffing, no referrer. */
const SECURITY = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'none'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; " +
    "trusted-types 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-store",
  Connection: "close",
};

type Phase = "request" | "responding" | "streaming" | "closing";

/** One connection to the view, in one phase at a time, each with its deadline. */
interface Peer {
  /** ADDRESS:PORT, for log lines. */
  name: string;
  phase: Phase;
  /** When the phase began (performance.now()). */
  since: number;
  reader: HeadReader;
  /** Bytes written and not taken by the socket yet: the rest of one write. */
  unsent?: Buffer;
  /** When the socket last took bytes, or when there was nothing to send. */
  tookAt: number;
  /** Bytes it sent after its request head. */
  extra: number;
  stream?: ViewerStream;
  /** When a viewer was last sent anything. */
  sentAt: number;
}

export class WebView {
  readonly #settings: WebSettings;
  readonly #log: (line: string) => void;
  readonly #history: History;
  /** This run of slpc, in each event's id: an id from another run resumes nothing. */
  readonly #run = crypto.getRandomValues(new Uint32Array(2)).reduce((text, n) => text + n.toString(16), "");
  readonly #peers = new Set<Socket<Peer>>();
  readonly #rate = new HandshakeLimiter(CONNECTIONS_PER_MINUTE, 60_000, 10_000);
  readonly #listener: TCPSocketListener<Peer>;
  readonly #clock: Timer;
  #batch?: Timer;
  #refused = { count: 0, saidAt: Number.NEGATIVE_INFINITY };
  /** Set once a handler threw: said once. */
  #bugSaid = false;

  /**
   * The view on --web, and the line that says where to open it; an address it cannot listen on is
   * one line and exit 1, as slps's --listen.
   */
  static open(settings: WebSettings, log: (line: string) => void): WebView {
    let view: WebView;
    try {
      view = new WebView(settings, log);
    } catch (error) {
      log(bindFailure("web", settings.listen, error));
      process.exit(1);
    }
    const { access, tokenFile } = settings;
    const where = `--web: the live view is at ${view.url}`;
    if (tokenFile) log(`${where}; its token is in ${tokenFile}: open ${view.url}?token=TOKEN once`);
    else log(`${where}?token=${access.token} (open it once: the token then lives in the browser's cookie)`);
    return view;
  }

  /** Listens on --web; throws what Bun.listen throws (an address in use). */
  constructor(settings: WebSettings, log: (line: string) => void) {
    this.#settings = settings;
    this.#log = log;
    this.#history = new History(settings.historyBytes);
    this.#listener = Bun.listen<Peer>({
      hostname: settings.listen.host,
      port: settings.listen.port,
      socket: {
        open: (socket) => this.#open(socket),
        data: (socket, chunk) => this.#guarded(socket, () => this.#data(socket, chunk)),
        drain: (socket) => this.#guarded(socket, () => this.#feed(socket)),
        close: (socket) => this.#closed(socket),
        error: () => {}, // the close that follows says it
      },
    });
    this.#clock = setInterval(() => this.#tick(performance.now()), 1000);
    this.#clock.unref();
  }

  /** The port it listens on: --web's, or the one the system chose for port 0. */
  get port(): number {
    return this.#listener.port;
  }

  /** The address to open, as the start line says it. */
  get url(): string {
    const { listen, access } = this.#settings;
    const host = /^(0\.0\.0\.0|::)$/.test(listen.host) ? access.names[0]! : formatAddress(listen).replace(/:\d+$/, "");
    return `http://${host}:${this.port}/`;
  }

  /** Streams open now. */
  get viewers(): number {
    return this.#count("streaming");
  }

  /** A message slpc received: kept, and sent to the viewers with the next batch. */
  add(arrival: Arrival): void {
    this.#history.add(arrival, Date.now());
    if (this.#batch === undefined && this.viewers > 0) {
      this.#batch = setTimeout(() => {
        this.#batch = undefined;
        for (const socket of this.#peers) {
          if (socket.data.phase === "streaming") this.#guarded(socket, () => this.#feed(socket));
        }
      }, BATCH_MS);
    }
  }

  close(): void {
    clearInterval(this.#clock);
    clearTimeout(this.#batch);
    this.#listener.stop(true);
  }

  /**
   * Runs a handler: a bug that throws in it costs that connection, with one line, and never slpc
   * (an exception out of a socket's handler would end the process, and delivery with it).
   */
  #guarded(socket: Socket<Peer>, handler: () => void): void {
    try {
      handler();
    } catch (error) {
      if (!this.#bugSaid) this.#log(`--web: ${reason(error)}; closing that connection (this is a bug)`);
      this.#bugSaid = true;
      this.#peers.delete(socket);
      socket.terminate();
    }
  }

  #count(phase: Phase): number {
    let count = 0;
    for (const socket of this.#peers) if (socket.data.phase === phase) count++;
    return count;
  }

  #open(socket: Socket<Peer>): void {
    const now = performance.now();
    const address = socket.remoteAddress ?? "";
    if (this.#rate.allow(address, now) !== "allowed") {
      this.#refuseConnection(now);
      return void socket.terminate();
    }
    if (this.#peers.size - this.viewers >= MAX_WAITING) {
      const idle = this.#oldestIdle();
      this.#refuseConnection(now);
      if (!idle) return void socket.terminate();
      this.#peers.delete(idle);
      idle.terminate();
    }
    const name = address.includes(":") ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
    socket.data = { name, phase: "request", since: now, reader: new HeadReader(), tookAt: now, extra: 0, sentAt: now };
    this.#peers.add(socket);
  }

  /** The connection that waits the longest without a request, or after its answer: undefined if none does. */
  #oldestIdle(): Socket<Peer> | undefined {
    let oldest: Socket<Peer> | undefined;
    for (const socket of this.#peers) {
      const { phase, since } = socket.data;
      if ((phase === "request" || phase === "closing") && (!oldest || since < oldest.data.since)) oldest = socket;
    }
    return oldest;
  }

  /** Connections closed before their request, summed into one line a minute at most. */
  #refuseConnection(now: number): void {
    this.#refused.count++;
    if (now - this.#refused.saidAt < REFUSED_LINE_MS) return;
    const why = `over ${CONNECTIONS_PER_MINUTE} a minute from one address, or the oldest of ${MAX_WAITING} waiting`;
    this.#log(`--web: closed ${this.#refused.count} connections before their request: ${why}`);
    this.#refused = { count: 0, saidAt: now };
  }

  #data(socket: Socket<Peer>, chunk: Buffer): void {
    const peer = socket.data;
    if (!peer) return; // closed on open
    if (peer.phase !== "request") {
      peer.extra += chunk.length;
      if (peer.extra > MAX_AFTER_HEAD) this.#cut(socket, `sent ${peer.extra} bytes after its request`);
      return;
    }
    let head: RequestHead | undefined;
    try {
      head = peer.reader.push(chunk);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return this.#answer(socket, error.status, error.message);
    }
    if (head) this.#serve(socket, head);
  }

  #serve(socket: Socket<Peer>, head: RequestHead): void {
    if (head.method !== "GET" && head.method !== "HEAD") {
      return this.#answer(socket, 405, "the view serves GET (and HEAD) only", { Allow: "GET, HEAD" });
    }
    const headOnly = head.method === "HEAD";
    const refused = refusal(this.#settings.access, head);
    if (refused) return this.#answer(socket, refused.status, refused.why, {}, headOnly);
    const via = authorized(this.#settings.access, head);
    if (head.path === "/" && via === "query") {
      // The token leaves the address bar (and the history) for a cookie that scripts cannot read.
      const rest = new URLSearchParams(head.query);
      rest.delete("token");
      const location = `/${rest.size > 0 ? `?${rest}` : ""}`;
      const cookie = tokenCookie(this.#settings.access);
      return this.#answer(socket, 303, "", { Location: location, "Set-Cookie": cookie }, headOnly);
    }
    if (via === undefined || via === "query") {
      const how = "open the address slpc printed at start (with ?token=), or send Authorization: Bearer TOKEN";
      return this.#answer(socket, 401, `this view needs its token: ${how}`, { "WWW-Authenticate": "Bearer" }, headOnly);
    }
    const asset = PAGE.get(head.path);
    if (asset) {
      const headers = { ...SECURITY, "Content-Type": asset.type };
      return this.#respond(socket, response(200, headers, asset.body, headOnly));
    }
    if (head.path !== "/events") return this.#answer(socket, 404, "no such page", {}, headOnly);
    this.#startStream(socket, head, headOnly);
  }

  #startStream(socket: Socket<Peer>, head: RequestHead, headOnly: boolean): void {
    let filter: ViewFilter;
    try {
      filter = parseViewFilter(head.query, ["lastEventId"]);
    } catch (error) {
      return this.#answer(socket, 400, `${error instanceof Error ? error.message : String(error)}`, {}, headOnly);
    }
    if (this.viewers >= this.#settings.viewers) {
      const why = `${this.#settings.viewers} viewers follow it already (--web-viewers); try again later`;
      return this.#answer(socket, 503, why, { "Retry-After": "10" }, headOnly);
    }
    // EventSource asks for SSE; anything else, curl's */* included, gets JSON lines.
    const format: StreamFormat = (head.headers.get("accept") ?? "").includes("text/event-stream") ? "sse" : "jsonl";
    const type = format === "sse" ? "text/event-stream; charset=utf-8" : "application/x-ndjson; charset=utf-8";
    const headers = { ...SECURITY, "Content-Type": type, "X-Accel-Buffering": "no" };
    if (headOnly) return this.#respond(socket, response(200, headers));
    // After a reload the page passes its last id in the address: a new EventSource cannot set the header.
    const last = head.headers.get("last-event-id") ?? head.query.get("lastEventId") ?? undefined;
    const start = startOf(this.#history, this.#run, last);
    const peer = socket.data;
    peer.stream = new ViewerStream(this.#history, filter, format, this.#run, start.next, start.known);
    this.#enter(socket, "streaming");
    // A page that reconnects waits `retry` milliseconds first.
    const intro = format === "sse" ? "retry: 2000\n\n" : "";
    this.#write(socket, Buffer.concat([response(200, headers), Buffer.from(intro)]));
    this.#feed(socket);
  }

  /** A short text answer, then close. */
  #answer(socket: Socket<Peer>, status: number, text: string, headers: Record<string, string> = {}, headOnly = false) {
    const body = text === "" ? "" : `slpc --web: ${text}\n`;
    const all = { ...SECURITY, "Content-Type": "text/plain; charset=utf-8", ...headers };
    this.#respond(socket, response(status, all, body, headOnly));
  }

  /** A whole response: written, then the connection closes once the socket took it. */
  #respond(socket: Socket<Peer>, bytes: Buffer): void {
    this.#enter(socket, "responding");
    if (this.#write(socket, bytes)) this.#close(socket);
  }

  /** Writes, keeping what the socket did not take for its drain; true when it took everything. */
  #write(socket: Socket<Peer>, bytes: Buffer): boolean {
    const peer = socket.data;
    const taken = socket.write(bytes);
    const now = performance.now();
    if (taken > 0) peer.tookAt = now;
    peer.sentAt = now;
    peer.unsent = taken >= bytes.length ? undefined : bytes.subarray(Math.max(0, taken));
    return peer.unsent === undefined;
  }

  /** Sends a viewer what waits for it, a few writes a turn; the socket's drain brings it back for more. */
  #feed(socket: Socket<Peer>): void {
    const peer = socket.data;
    if (!peer || !this.#peers.has(socket)) return;
    if (peer.unsent && !this.#write(socket, peer.unsent)) return;
    if (peer.phase === "responding") return this.#close(socket);
    if (peer.phase !== "streaming") return;
    peer.tookAt = performance.now();
    const stream = peer.stream!;
    for (let writes = 0; writes < WRITES_A_TURN; writes++) {
      const bytes = stream.take(WRITE_BYTES, WRITE_LOOKS);
      if (!bytes) return;
      if (!this.#write(socket, bytes)) return;
    }
    // Still behind after a turn's share: the rest after the others had theirs.
    if (stream.behind) setImmediate(() => this.#guarded(socket, () => this.#feed(socket)));
  }

  #enter(socket: Socket<Peer>, phase: Phase): void {
    socket.data.phase = phase;
    socket.data.since = performance.now();
  }

  /** Ends the connection once its last bytes are out; its peer has CLOSE_MS to close its side. */
  #close(socket: Socket<Peer>): void {
    this.#enter(socket, "closing");
    socket.end();
  }

  /** Cuts a connection at once, with a line when it was a viewer. */
  #cut(socket: Socket<Peer>, why: string): void {
    const peer = socket.data;
    if (peer.phase === "streaming") this.#log(`--web: viewer ${peer.name} ${why}: cut${skippedText(peer)}`);
    this.#peers.delete(socket);
    socket.terminate();
  }

  #closed(socket: Socket<Peer>): void {
    const peer = socket.data;
    if (!peer || !this.#peers.delete(socket)) return;
    if (peer.phase === "streaming" && peer.stream!.skipped > 0) {
      this.#log(`--web: viewer ${peer.name} left${skippedText(peer)}`);
    }
  }

  /** Each phase's deadline, and the keepalive of quiet streams. */
  #tick(now: number): void {
    for (const socket of this.#peers) this.#guarded(socket, () => this.#deadline(socket, now));
  }

  #deadline(socket: Socket<Peer>, now: number): void {
    const peer = socket.data;
    const age = now - peer.since;
    if (peer.phase === "request" && age > REQUEST_MS) this.#cut(socket, "sent no request");
    else if (peer.phase === "responding" && age > RESPONSE_MS) this.#cut(socket, "took no response");
    else if (peer.phase === "closing" && age > CLOSE_MS) this.#cut(socket, "did not close");
    else if (peer.phase === "streaming" && peer.unsent && now - peer.tookAt > STALL_MS)
      this.#cut(socket, `took nothing for ${STALL_MS / 1000} s`);
    else if (peer.phase === "streaming" && !peer.unsent && now - peer.sentAt > KEEPALIVE_MS) {
      if (peer.stream!.format === "sse") this.#write(socket, Buffer.from(":\n\n"));
      else peer.sentAt = now; // JSON lines have no comment: a quiet line would be one more line to parse
    }
  }
}

/** What a viewer missed, for its line: how many messages it skipped, if any. */
function skippedText(peer: Peer): string {
  const skipped = peer.stream?.skipped ?? 0;
  return skipped > 0 ? `; it was too slow for ${skipped} messages, which it skipped` : "";
}
