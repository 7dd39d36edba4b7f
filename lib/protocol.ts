// The protocol. Right after it has authorized a client, slps sends `hello`; slpc answers with
// `resume`; slps sends `start`, then data frames, each numbered one more than the last, with
// `heartbeat` when idle and `start` again when it had to skip messages. A hello with
// `progress: true` lets the client send `progress` after `start`, with the last number it
// delivered, so that a client slowed by its own output counts as alive. A hello with
// `filters: true` lets the client send a `filter` in its `resume` (version 2): then slps sends only
// the messages that pass it, and a `start` without `lost` wherever the numbers jump over the others.
// See docs/protocol.md.

import { type Filter, filterFromWire, type WireFilter } from "./filter.ts";
import { peerText } from "./terminal_text.ts";

/**
 * The version of slps's hello, and of a resume without a filter. A version 1 peer wants exactly
 * this number, so the hello keeps it and offers filters with `filters: true` instead: an older
 * slpc still follows a newer slps, and a newer slpc without filters an older slps.
 */
export const BASE_VERSION = 1;
/** The newest version: a resume that carries a filter says 2, which an older slps refuses by name. */
export const PROTOCOL_VERSION = 2;
/** Whether a peer's version is one this side speaks. */
export const speaksVersion = (version: number) => version >= BASE_VERSION && version <= PROTOCOL_VERSION;
/** The versions this side speaks, for the line that names a mismatch. */
export const VERSIONS = `${BASE_VERSION} to ${PROTOCOL_VERSION}`;

export type ControlMessage =
  | {
      type: "hello";
      version: number;
      server: string;
      heartbeat: number;
      first: number;
      next: number;
      progress?: boolean;
      filters?: boolean;
    }
  | { type: "resume"; version: number; server?: string; last?: number; replay?: boolean; filter?: WireFilter }
  | { type: "start"; seq: number; lost?: number | null; reason?: string }
  | { type: "progress"; last: number }
  | { type: "heartbeat" }
  | { type: "error"; message: string };

const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

/**
 * The largest sequence number (or count of messages) a control message may carry. At a million
 * messages a second it lasts 142 years, and it leaves room to add to it (`last + 1`, a count of
 * messages since) without leaving the integers a double holds exactly, or a state file that says
 * 2^53 and cannot be read back.
 */
export const MAX_SEQ = 2 ** 52;
const isSeq = (value: unknown) => isCount(value) && (value as number) <= MAX_SEQ;

/** Reads a control frame's JSON; throws an Error saying what is wrong with it. */
export function parseControl(body: Uint8Array): ControlMessage {
  let message: Record<string, unknown>;
  try {
    message = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new Error("control message is not JSON");
  }
  if (typeof message !== "object" || message === null || Array.isArray(message))
    throw new Error("control message is not an object");
  const bad = (field: string) => new Error(`${String(message.type)} message has a bad '${field}'`);
  switch (message.type) {
    case "hello":
      if (!isCount(message.version)) throw bad("version");
      if (!speaksVersion(message.version as number)) return message as ControlMessage; // the caller names the mismatch
      if (typeof message.server !== "string" || message.server === "") throw bad("server");
      if (typeof message.heartbeat !== "number" || !(message.heartbeat > 0)) throw bad("heartbeat");
      if (!isSeq(message.first) || (message.first as number) < 1) throw bad("first");
      if (!isSeq(message.next) || (message.next as number) < (message.first as number)) throw bad("next");
      if (message.progress !== undefined && typeof message.progress !== "boolean") throw bad("progress");
      if (message.filters !== undefined && typeof message.filters !== "boolean") throw bad("filters");
      return message as ControlMessage;
    case "resume":
      if (!isCount(message.version)) throw bad("version");
      if (!speaksVersion(message.version as number)) return message as ControlMessage;
      if (message.server !== undefined && (typeof message.server !== "string" || message.server === ""))
        throw bad("server");
      if ((message.server === undefined) !== (message.last === undefined))
        throw bad(message.server === undefined ? "server" : "last");
      if (message.last !== undefined && !isSeq(message.last)) throw bad("last");
      if (message.replay !== undefined && typeof message.replay !== "boolean") throw bad("replay");
      // The filter's fields are the server's to check (filterFromWire); only where it may appear is checked here.
      if (message.filter !== undefined && message.version === BASE_VERSION) throw bad("filter");
      return message as ControlMessage;
    case "start":
      if (!isSeq(message.seq) || (message.seq as number) < 1) throw bad("seq");
      if (message.lost !== undefined && message.lost !== null && !isSeq(message.lost)) throw bad("lost");
      if (message.reason !== undefined && typeof message.reason !== "string") throw bad("reason");
      return message as ControlMessage;
    case "progress":
      if (!isSeq(message.last)) throw bad("last");
      return { type: "progress", last: message.last as number };
    case "heartbeat":
      return { type: "heartbeat" };
    case "error":
      if (typeof message.message !== "string") throw bad("message");
      return message as ControlMessage;
    default:
      throw new Error(`unknown control message type ${peerText(JSON.stringify(message.type) ?? "undefined")}`);
  }
}

/** The `start` that answers a `resume`, given the server's id and the sequence numbers its buffer holds. */
export function resumeStart(
  request: { server?: string; last?: number; replay?: boolean },
  server: { id: string; first: number; next: number },
): Extract<ControlMessage, { type: "start" }> {
  const { id, first, next } = server;
  if (request.server === undefined) return { type: "start", seq: request.replay ? first : next };
  if (request.server !== id) {
    return { type: "start", seq: first, lost: null, reason: `server restarted (was ${request.server}, now ${id})` };
  }
  const wanted = request.last! + 1;
  if (wanted > next)
    return {
      type: "start",
      seq: next,
      lost: null,
      reason: `resume point ${request.last} is ahead of the server (${next - 1})`,
    };
  if (wanted >= first) return { type: "start", seq: wanted };
  return { type: "start", seq: first, lost: first - wanted, reason: "server buffer overflowed" };
}

/** Where a client stands: the server run it follows and the last message it delivered. */
export interface ResumePoint {
  server: string;
  last: number;
}

/**
 * Reads slpc's state file; throws an Error saying what is wrong with it. It accepts exactly what
 * slpc writes: a non-empty server id and a `last` from 0 to MAX_SEQ, the largest number slpc delivers.
 */
export function parseResumePoint(text: string): ResumePoint {
  if (text.trim() === "") throw new Error("empty (not an slpc state file)");
  let value: { server?: unknown; last?: unknown } | null | undefined;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("not an slpc state file (not JSON)");
  }
  if (typeof value?.server !== "string" || value.server === "" || !isSeq(value.last))
    throw new Error('not an slpc state file (expected {"server": ID, "last": N})');
  return { server: value.server, last: value.last as number };
}

/** Gaps slpc has not logged yet, one line a second being enough: how many, and what they lost. */
export interface UnsaidGaps {
  gaps: number;
  /** Messages lost in those whose count is known. */
  lost: number;
  /** How many of them lost an unknown number. */
  unknown: number;
}

/** slpc's log line for gaps summed up since its last gap line, with the number it continues from. */
export function gapsSummary({ gaps, lost, unknown }: UnsaidGaps, next: number): string {
  const known = lost > 0 ? `${lost} messages` : "";
  const count = unknown === 0 ? known : known ? `${known} and an unknown number` : "an unknown number of messages";
  return `gap: ${count} lost in ${gaps} more gaps within a second; continuing from #${next}`;
}

/** slpc's log line for a `start` that skipped messages, or undefined when nothing was lost. */
export function gapNotice(start: Extract<ControlMessage, { type: "start" }>): string | undefined {
  if (start.lost === undefined || start.lost === 0) return undefined;
  const count = start.lost === null ? "an unknown number of messages" : `${start.lost} messages`;
  // The reason is the server's text: a hostile one could forge a line of its own with it.
  const why = start.reason === undefined ? "no reason given" : peerText(start.reason);
  return `gap: ${count} lost, ${why}; continuing from #${start.seq}`;
}

/** The `hello` slps sends an authorized client: its run, its heartbeat and what its buffer holds. */
export function serverHello(server: string, heartbeat: number, buffer: { first: number; next: number }) {
  return {
    type: "hello",
    version: BASE_VERSION,
    server,
    heartbeat,
    first: buffer.first,
    next: buffer.next,
    // The client may say how far it delivered, which counts as a sign of life.
    progress: true,
    // The client may send a filter in its resume request. The hello stays version 1, which a
    // version 1 client requires exactly: this field is how a newer one learns of filters.
    filters: true,
  } satisfies ControlMessage;
}

/**
 * The server's answer to a `resume`: the filter it asks for (none if it passes everything) and the
 * `start` that begins its stream; or why it is refused, for the `error` that ends the connection.
 */
export function answerResume(
  request: Extract<ControlMessage, { type: "resume" }>,
  server: { id: string; first: number; next: number },
): { filter?: Filter; start: Extract<ControlMessage, { type: "start" }> } | { refused: string } {
  if (!speaksVersion(request.version)) {
    return { refused: `client speaks protocol version ${request.version}, this server speaks ${VERSIONS}` };
  }
  let filter: Filter | undefined;
  try {
    if (request.filter !== undefined) filter = filterFromWire(request.filter);
  } catch (error) {
    return { refused: `bad filter: ${error instanceof Error ? error.message : String(error)}` };
  }
  // An empty filter passes everything: it costs nothing to follow it unfiltered.
  if (filter && Object.keys(filter).length === 0) filter = undefined;
  return { filter, start: resumeStart(request, server) };
}
