// The filters a client chooses and the server applies (issue 11): `--facility`, `--severity`,
// `--program`, `--host` and `--match`, so unwanted messages never cross the link. Criteria combine
// with AND, the values in one list with OR. A filter travels in the resume request, so a hostile
// client writes it: `filterFromWire` checks every field and bounds every size.
//
// `--match` is plain substring matching on the message's bytes, not a regular expression. slps has
// one thread for every client, so the cost of a match must not depend on what a client writes.
// Even a linear-time engine (re2js) costs time in proportion to the pattern's program size times
// the message: measured on Bun 1.4.5, 5 to 7 s for one 64 KB message against a 3000-instruction
// pattern, and still 10 to 15 ms with 150 instructions, on every message, for every such client.
// A substring search costs about the message's length whatever the pattern.

import {
  FACILITY_CODES,
  FACILITY_NAMES,
  SEVERITY_CODES,
  SEVERITY_NAMES,
  type SyslogMessage,
} from "./syslog_message.ts";
import { peerText } from "./terminal_text.ts";

/** What a filter reads of a message: no timestamp, ids or structured data. */
export type FilterFields = Pick<SyslogMessage, "facility" | "severity" | "hostname" | "app" | "message">;

export interface Filter {
  /** Facility codes; any of them matches. */
  facilities?: ReadonlySet<number>;
  /** The least severe level wanted: it and every more severe (lower) one match. */
  severity?: number;
  /** Program names (RFC 3164 tag, RFC 5424 APP-NAME), lower case; compared without case. */
  programs?: ReadonlySet<string>;
  /** HOSTNAMEs, lower case; compared without case. */
  hosts?: ReadonlySet<string>;
  /** Text the message (MSG, or the whole datagram if unparsable) contains, byte for byte as UTF-8. */
  match?: string;
}

/** The sizes a filter may have, so that one fits in a resume request and costs little to apply. */
export const FILTER_LIMITS = {
  /** Values in one list. */
  items: 32,
  /** Characters in one program or host name (the longest DNS name). */
  name: 255,
  /** Bytes of `--match` text as UTF-8. */
  match: 1024,
  /** Bytes of the filter's JSON wire form. */
  wire: 2048,
} as const;

/** `auth,authpriv,local0`: names (and rsyslog's aliases) or codes 0 to 23. */
export function parseFacilities(text: string): ReadonlySet<number> {
  return new Set(
    list(text, "facility").map((item) => {
      const code = /^\d+$/.test(item) ? Number(item) : FACILITY_CODES.get(item.toLowerCase());
      if (code === undefined || code > 23) {
        throw new Error(`no facility "${item}": use ${FACILITY_NAMES.join(", ")} or 0 to 23`);
      }
      return code;
    }),
  );
}

/** `warning` or `4`: that level and more severe. */
export function parseSeverity(text: string): number {
  const item = text.trim();
  const code = /^\d+$/.test(item) ? Number(item) : SEVERITY_CODES.get(item.toLowerCase());
  if (code === undefined || code > 7) {
    throw new Error(`no severity "${item}": use ${SEVERITY_NAMES.join(", ")} or 0 to 7`);
  }
  return code;
}

/** `sshd,sudo`: program names as messages carry them. */
export function parsePrograms(text: string): ReadonlySet<string> {
  return new Set(list(text, "program").map((item) => name(item, "program")));
}

/** `web1,db.example.com`: HOSTNAMEs as messages carry them. */
export function parseHosts(text: string): ReadonlySet<string> {
  return new Set(list(text, "host").map((item) => name(item, "host")));
}

/** Text to find in the message, as it is (spaces included). */
export function parseMatch(text: string): string {
  if (text === "") throw new Error("empty text matches every message: leave --match out instead");
  if (!text.isWellFormed()) throw new Error("not valid Unicode text");
  const bytes = Buffer.byteLength(text);
  if (bytes > FILTER_LIMITS.match) throw new Error(`${bytes} bytes long; at most ${FILTER_LIMITS.match}`);
  return text;
}

function list(text: string, what: string): string[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.some((item) => item === "")) throw new Error(`an empty ${what} name: separate names with single commas`);
  if (items.length > FILTER_LIMITS.items) throw new Error(`${items.length} names; at most ${FILTER_LIMITS.items}`);
  return items;
}

/** A name as the parser can produce it: printable ASCII (RFC 5424 PRINTUSASCII), no comma. */
function name(item: string, what: string): string {
  if (item.length > FILTER_LIMITS.name) {
    throw new Error(`${what} name of ${item.length} characters; at most ${FILTER_LIMITS.name}`);
  }
  if (!/^[\x21-\x7e]+$/.test(item) || item.includes(",")) {
    throw new Error(`${what} name ${JSON.stringify(item)}: messages carry only printable ASCII without spaces there`);
  }
  return item.toLowerCase();
}

/** The JSON form of a filter in the resume request; absent criteria are left out. */
export interface WireFilter {
  facilities?: number[];
  severity?: number;
  programs?: string[];
  hosts?: string[];
  match?: string;
}

/** The wire form, or an error if it is too large for a resume request. */
export function filterToWire(filter: Filter): WireFilter {
  const wire: WireFilter = {};
  if (filter.facilities !== undefined) wire.facilities = [...filter.facilities].sort((a, b) => a - b);
  if (filter.severity !== undefined) wire.severity = filter.severity;
  if (filter.programs !== undefined) wire.programs = [...filter.programs].sort();
  if (filter.hosts !== undefined) wire.hosts = [...filter.hosts].sort();
  if (filter.match !== undefined) wire.match = filter.match;
  const size = Buffer.byteLength(JSON.stringify(wire));
  if (size > FILTER_LIMITS.wire) throw new Error(`the filter takes ${size} bytes; at most ${FILTER_LIMITS.wire} fit`);
  return wire;
}

/** A filter from the wire, checked as strictly as the flags; throws an Error naming the bad field. */
export function filterFromWire(value: unknown): Filter {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("filter: not an object");
  const fields = value as Record<string, unknown>;
  const filter: Filter = {};
  for (const key of Object.keys(fields)) {
    const field = fields[key];
    const check = <T>(parse: () => T): T => {
      try {
        return parse();
      } catch (error) {
        throw new Error(`filter: ${key}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    if (key === "facilities") filter.facilities = check(() => wireSet(field, (item) => wireCode(item, 23)));
    else if (key === "severity") filter.severity = check(() => wireCode(field, 7));
    else if (key === "programs") filter.programs = check(() => wireSet(field, (item) => wireName(item, "program")));
    else if (key === "hosts") filter.hosts = check(() => wireSet(field, (item) => wireName(item, "host")));
    else if (key === "match") filter.match = check(() => parseMatch(wireString(field)));
    else throw new Error(`filter: unknown field ${JSON.stringify(key.slice(0, 64))}`);
  }
  filterToWire(filter);
  return filter;
}

function wireSet<T>(value: unknown, item: (value: unknown) => T): ReadonlySet<T> {
  if (!Array.isArray(value)) throw new Error("not a list");
  if (value.length === 0 || value.length > FILTER_LIMITS.items) {
    throw new Error(`${value.length} values; 1 to ${FILTER_LIMITS.items}`);
  }
  const set = new Set(value.map(item));
  if (set.size !== value.length) throw new Error("a value is repeated");
  return set;
}

function wireCode(value: unknown, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new Error(`not a whole number 0 to ${max}`);
  }
  return value;
}

function wireString(value: unknown): string {
  if (typeof value !== "string") throw new Error("not a string");
  return value;
}

const wireName = (value: unknown, what: string) => name(wireString(value), what);

const needles = new WeakMap<Filter, { text: string; bytes: Buffer }>();

/**
 * Whether a parsed message passes the filter. A header field the message lacks (all of them when
 * its format is "unknown") fails the criterion that asks for it.
 *
 * @example
 * ```ts
 * import { parseSyslog } from "./lib/syslog_message.ts";
 * import { matches, parseSeverity, parsePrograms } from "./lib/filter.ts";
 * const filter = { programs: parsePrograms("sshd,sudo"), severity: parseSeverity("warning") };
 * const message = parseSyslog(new TextEncoder().encode("<36>Jan  5 10:11:12 web sshd[7]: Failed password"));
 * console.log(matches(filter, message)); // true: auth.warning from sshd
 * ```
 */
export function matches(filter: Filter, message: FilterFields): boolean {
  const { facilities, severity, programs, hosts, match } = filter;
  const { facility, app, hostname } = message;
  if (facilities !== undefined && (facility === undefined || !facilities.has(facility))) return false;
  if (severity !== undefined && (message.severity === undefined || message.severity > severity)) return false;
  if (programs !== undefined && (app === undefined || !programs.has(app.toLowerCase()))) return false;
  if (hosts !== undefined && (hostname === undefined || !hosts.has(hostname.toLowerCase()))) return false;
  if (match === undefined) return true;
  let needle = needles.get(filter);
  if (needle?.text !== match) {
    needle = { text: match, bytes: Buffer.from(match) };
    needles.set(filter, needle);
  }
  const { buffer, byteOffset, byteLength } = message.message;
  return Buffer.from(buffer, byteOffset, byteLength).indexOf(needle.bytes) !== -1;
}

/** The filter in words for logs: `facility auth,authpriv; severity warning or worse; program sshd`. */
export function describeFilter(filter: Filter): string {
  const parts: string[] = [];
  const facilities = filter.facilities && [...filter.facilities].sort((a, b) => a - b);
  if (facilities) parts.push(`facility ${facilities.map((code) => FACILITY_NAMES[code]).join(",")}`);
  if (filter.severity !== undefined) parts.push(`severity ${SEVERITY_NAMES[filter.severity]} or worse`);
  if (filter.programs) parts.push(`program ${[...filter.programs].sort().join(",")}`);
  if (filter.hosts) parts.push(`host ${[...filter.hosts].sort().join(",")}`);
  // A client chose the text: escaped as a log line must show it (JSON leaves C1 controls and bidi raw).
  if (filter.match !== undefined) parts.push(`match ${peerText(JSON.stringify(filter.match))}`);
  return parts.length === 0 ? "everything" : parts.join("; ");
}
