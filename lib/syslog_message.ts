// Parses one syslog message, as one UDP datagram carries it, into its header fields and its text,
// so slps can filter on them and slpc can print them. Senders are many and sloppy, and any host
// that reaches the UDP port can send anything, so the parser takes what it can and never throws:
// - RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`), NILVALUEs, escaped SD values,
//   a BOM before MSG. Structured data that is not well formed is text: the header before it
//   stays, and MSG is the rest from where the SD should be, as it came (rsyslog keeps the header
//   too): `<165>1 2003-10-11T22:14:15.003Z host evntslog - ID47 [id a= "b"] text`.
// - RFC 3164 and what daemons and devices really send in its name,
//   `<PRI>Mmm dd hh:mm:ss host tag[pid]: msg`, read as syslog-ng and rsyslog read it:
//   - an ISO timestamp in its place (rsyslog's RSYSLOG_ForwardFormat);
//   - a month's name in capitals, `NOV` as well as `Nov`: `<190>NOV 22 00:00:33 fw1 CMDLOGGER[1]: ...`;
//   - a year before the time, and Cisco PIX/ASA's colon after it, left out of the timestamp:
//     `<167>Mar 7 2008 19:06:53: %ASA-4-106023: Deny udp ...`;
//   - a year after the time (Linksys): `<190>Apr 15 21:28:13 2007 linksys app: msg`, so a host
//     named with four digits alone is read as the year, as syslog-ng does;
//   - up to 16 spaces after the PRI (HP ProCurve, some embedded stacks), before a timestamp or
//     a tag: `<167> Mar  7 19:06:53 switch3 tag: text`, `<15> openvpn[2499]: PTHREAD ...`;
//   - Cisco IOS's sequence number (up to 10 digits) and its mark of a clock not (`*`) or no longer
//     (`.`) in sync before the timestamp, neither kept: `<0>91: *Oct 07 03:10:04: mydevice.com %X: ...`;
//   - no hostname (local sockets), a tag without pid or without colon, or no timestamp at all.
// - anything else, such as no PRI or a PRI above 191: format "unknown", the whole input as the
//   message and no header field, so a filter on a header field never matches it.
// A valid PRI always gives facility and severity, even if what follows is not a header (RFC 3164
// section 4.3.3 treats all of that as the message). One LF ending a parsed message is dropped, as
// rsyslog does on reception: rsyslog's RSYSLOG_SyslogProtocol23Format and syslog-ng's network()
// both end each datagram with one.
//
// No pattern runs over the body: each is anchored and reads at most HEAD (80) bytes after the PRI.
// The rest is read once, byte by byte: the fields, structured data, and the check that MSG is UTF-8.

import { isUtf8 } from "node:buffer";

/** Facility names by code (RFC 5424 table 1), as syslog-ng prints them; rsyslog's other names are aliases. */
// biome-ignore format: a table, read across
export const FACILITY_NAMES: readonly string[] = [
  "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
  "security", "console", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
/** Severity names by code (RFC 5424 table 2), most severe first. */
// biome-ignore format: a table, read across
export const SEVERITY_NAMES: readonly string[] = [
  "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/** Every facility name a person may write, with its code: the table's and the usual aliases (rsyslog's 13-15). */
export const FACILITY_CODES: ReadonlyMap<string, number> = new Map([
  ...FACILITY_NAMES.map((name, code) => [name, code] as const),
  ["kernel", 0],
  ["audit", 13],
  ["alert", 14],
  ["solaris-cron", 15],
]);
/** Every severity name a person may write, with its code. */
export const SEVERITY_CODES: ReadonlyMap<string, number> = new Map([
  ...SEVERITY_NAMES.map((name, code) => [name, code] as const),
  ["panic", 0],
  ["error", 3],
  ["warn", 4],
]);

export type SyslogFormat = "rfc5424" | "rfc3164" | "unknown";

export interface SyslogMessage {
  facility?: number;
  severity?: number;
  /** As the sender wrote it: RFC 3339, or BSD's `Mmm dd hh:mm:ss` without year or zone. */
  timestamp?: string;
  hostname?: string;
  /** RFC 5424 APP-NAME, or the RFC 3164 tag without its `[pid]`. */
  app?: string;
  procid?: string;
  msgid?: string;
  /** SD-ID -> parameter -> value; the first of repeated IDs or parameters wins. */
  structuredData?: Record<string, Record<string, string>>;
  /** MSG, bytes as they came (a view into the input), without a 5424 BOM or one final LF. */
  message: Uint8Array;
  /** Whether `message` is valid UTF-8. */
  utf8: boolean;
  format: SyslogFormat;
}

const SP = 0x20;
const LF = 0x0a;
const text = new TextDecoder(); // header fields are printable ASCII; SD values are UTF-8 by the RFC
/** One UTF-16 unit a byte (WHATWG reads "latin1" as windows-1252), so positions in the text are in the bytes. */
const bytewise = new TextDecoder("latin1");
const isPrintable = (byte: number | undefined) => byte !== undefined && byte > 0x20 && byte < 0x7f;

export interface ParseOptions {
  /**
   * Whether to decode STRUCTURED-DATA. Without it, it is checked and skipped, allocating nothing
   * per element, and `structuredData` is left out: a filter reads no SD, and a sender who packs
   * thousands of elements into one datagram must not cost slps more than its bytes (issue 17).
   * @default true
   */
  structuredData?: boolean;
}

/**
 * The fields of one syslog datagram. Never throws.
 *
 * @example
 * ```ts
 * import { parseSyslog } from "./lib/syslog_message.ts";
 * const parsed = parseSyslog(new TextEncoder().encode("<38>Jan  5 10:11:12 web sshd[42]: Accepted key"));
 * console.log(parsed.app, parsed.procid, new TextDecoder().decode(parsed.message)); // sshd 42 Accepted key
 * ```
 */
export function parseSyslog(input: Uint8Array, options: ParseOptions = {}): SyslogMessage {
  const pri = parsePri(input);
  if (pri === undefined) return { message: input, utf8: isUtf8(input), format: "unknown" };
  const fields = parse5424(input, pri.end, options.structuredData ?? true) ?? parse3164(input, pri.end);
  const { header, start, format } = fields;
  let end = input.length;
  if (end > start && input[end - 1] === LF) end--;
  const message = input.subarray(start, end);
  return { facility: pri.value >> 3, severity: pri.value & 7, ...header, message, utf8: isUtf8(message), format };
}

type Header = Omit<SyslogMessage, "facility" | "severity" | "message" | "utf8" | "format">;
interface Fields {
  header: Header;
  /** Where MSG starts, past a 5424 BOM. */
  start: number;
  format: "rfc5424" | "rfc3164";
}

/** `<0>` to `<191>`, one to three digits. */
function parsePri(input: Uint8Array): { value: number; end: number } | undefined {
  if (input[0] !== 0x3c) return undefined;
  let value = 0;
  let at = 1;
  for (; at <= 4 && input[at] !== 0x3e; at++) {
    const byte = input[at];
    if (byte === undefined || byte < 0x30 || byte > 0x39 || at === 4) return undefined;
    value = value * 10 + byte - 0x30;
  }
  return at === 1 || value > 191 ? undefined : { value, end: at + 1 };
}

/** The printable-ASCII run at `at` that ends at a space or the end of the input, or undefined. */
function token(input: Uint8Array, at: number): { value: string; end: number } | undefined {
  let end = at;
  while (isPrintable(input[end])) end++;
  if (end === at || (end < input.length && input[end] !== SP)) return undefined;
  return { value: text.decode(input.subarray(at, end)), end };
}

// RFC 3339 as RFC 5424 wants it, with room for what senders do anyway: up to 9 digits of
// fraction, and a missing offset (then it is the sender's wall time).
const ISO_TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)?$/;
const MONTHS = new Set(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]);
/**
 * BSD's `Mmm dd hh:mm:ss`, the month's first letter a capital (syslog-ng takes no other), its day
 * padded or not, a year before or after the time, fractions of a second. Checked in range apart.
 */
const BSD_TIME = /^([A-Z][A-Za-z]{2}) {1,2}(\d{1,2}) (?:\d{4} )?(\d\d):(\d\d):(\d\d)(?:\.\d{1,9})?(?: \d{4}(?= ))?/;
/** Spaces after the PRI read as padding (syslog-ng skips any number); more, and they and what follows are text. */
const MAX_SPACES = 16;
/** What may come between the PRI and a timestamp: Cisco IOS's sequence number, spaces, IOS's clock mark. */
const BEFORE_TIME = new RegExp(`^(?:\\d{1,10}: )? {0,${MAX_SPACES}}[*.]?`);
/** The word that may be an RFC 3339 time: the longest is 35 characters, and Cisco's colon may follow. */
const ISO_WORD = /^[^ ]{1,36}/;
/** Bytes after the PRI that hold the longest BEFORE_TIME (29), timestamp (36) and what must follow it. */
const HEAD = 80;

/** Whether `value` is an RFC 3339 timestamp whose fields are in range. */
export function isIsoTimestamp(value: string): boolean {
  const m = ISO_TIME.exec(value);
  return (
    m !== null &&
    inRange(+m[2]!, 1, 12) &&
    inRange(+m[3]!, 1, 31) &&
    inRange(+m[4]!, 0, 23) &&
    inRange(+m[5]!, 0, 59) &&
    inRange(+m[6]!, 0, 60) &&
    (m[8] === undefined || m[8] === "Z" || +m[8].slice(4) <= 59)
  );
}
const inRange = (n: number, min: number, max: number) => n >= min && n <= max;

function parse5424(input: Uint8Array, at: number, decodeSd: boolean): Fields | undefined {
  const version = /^[1-9]\d{0,2} /.exec(text.decode(input.subarray(at, at + 4)));
  if (version === null) return undefined;
  at += version[0].length;
  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by a space, then STRUCTURED-DATA.
  const values: (string | undefined)[] = [];
  while (values.length < 5) {
    const field = token(input, at);
    if (field === undefined || field.end >= input.length) return undefined;
    values.push(field.value === "-" ? undefined : field.value);
    at = field.end + 1;
  }
  const [timestamp, hostname, app, procid, msgid] = values;
  if (timestamp !== undefined && !isIsoTimestamp(timestamp)) return undefined;
  const sd = input[at] === 0x2d ? { structuredData: undefined, end: at + 1 } : parseStructuredData(input, at, decodeSd);
  // Structured data that is not well formed is text; the header before it is still the sender's.
  if (sd === undefined || (sd.end < input.length && input[sd.end] !== SP)) {
    return { header: { timestamp, hostname, app, procid, msgid }, start: at, format: "rfc5424" };
  }
  let start = Math.min(sd.end + 1, input.length);
  if (input[start] === 0xef && input[start + 1] === 0xbb && input[start + 2] === 0xbf) start += 3;
  const { structuredData } = sd;
  return { header: { timestamp, hostname, app, procid, msgid, structuredData }, start, format: "rfc5424" };
}

/**
 * One or more `[ID name="value" ...]`, values unescaped (`\"`, `\\`, `\]`); undefined if malformed.
 * Without `decode` it is only checked, and `structuredData` is undefined.
 */
function parseStructuredData(input: Uint8Array, at: number, decode: boolean) {
  const structuredData: Record<string, Record<string, string>> | undefined = decode ? {} : undefined;
  const name = (start: number, end: number) => (decode ? text.decode(input.subarray(start, end)) : "");
  if (input[at] !== 0x5b) return undefined;
  while (input[at] === 0x5b) {
    const idEnd = nameEnd(input, ++at);
    if (idEnd === at) return undefined;
    const id = name(at, idEnd);
    at = idEnd;
    const params: Record<string, string> | undefined = decode ? {} : undefined;
    while (input[at] === SP) {
      const paramEnd = nameEnd(input, ++at);
      if (paramEnd === at || input[paramEnd] !== 0x3d || input[paramEnd + 1] !== 0x22) return undefined;
      const param = name(at, paramEnd);
      const bytes: number[] | undefined = params && [];
      for (at = paramEnd + 2; at < input.length && input[at] !== 0x22; at++) {
        if (input[at] === 0x5c) {
          const next = input[at + 1];
          if (next === 0x22 || next === 0x5c || next === 0x5d) at++;
        }
        bytes?.push(input[at]!);
      }
      if (at >= input.length) return undefined;
      at++;
      if (params && bytes && !Object.hasOwn(params, param)) {
        defineField(params, param, text.decode(Uint8Array.from(bytes)));
      }
    }
    if (input[at] !== 0x5d) return undefined;
    at++;
    if (structuredData && params && !Object.hasOwn(structuredData, id)) defineField(structuredData, id, params);
  }
  return { structuredData, end: at };
}

/** Where the SD-NAME at `at` ends: printable ASCII but `=`, `]` and `"`. */
function nameEnd(input: Uint8Array, at: number): number {
  while (isPrintable(input[at]) && input[at] !== 0x3d && input[at] !== 0x5d && input[at] !== 0x22) at++;
  return at;
}

/** Sets a key that a sender chose, so that `__proto__` is a key like any other. */
function defineField<T>(record: Record<string, T>, key: string, value: T) {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

function parse3164(input: Uint8Array, at: number): Fields {
  const header: Header = {};
  const stamp = timestampAt(input, at);
  if (stamp === undefined) {
    // Only a tag may follow the spaces after the PRI; if none does, they are part of the text.
    const tag = parseTag(input, at + spacesAt(input, at), false);
    if (tag !== undefined) ({ app: header.app, procid: header.procid, end: at } = tag);
    return { header, start: at, format: "rfc3164" };
  }
  header.timestamp = stamp.value;
  at = stamp.end;
  if (input[at] === SP) at++;
  // A first word with `[` or a final `:` is a tag: local sockets and many devices send no hostname.
  const host = token(input, at);
  const hostLike =
    host !== undefined && !host.value.includes("[") && (!host.value.endsWith(":") || host.value.split(":").length > 2);
  if (hostLike) {
    header.hostname = host.value;
    at = host.end < input.length ? host.end + 1 : host.end;
  }
  const tag = parseTag(input, at, true);
  if (tag !== undefined) ({ app: header.app, procid: header.procid, end: at } = tag);
  return { header, start: at, format: "rfc3164" };
}

/** How many spaces, up to MAX_SPACES, stand at `at`. */
function spacesAt(input: Uint8Array, at: number): number {
  let count = 0;
  while (count < MAX_SPACES && input[at + count] === SP) count++;
  return count;
}

/**
 * The timestamp after what BEFORE_TIME allows, as the sender wrote it, and where it ends: past
 * one colon after it (Cisco's), at a space or the end of the input. Undefined if there is none.
 */
function timestampAt(input: Uint8Array, at: number): { value: string; end: number } | undefined {
  const head = bytewise.decode(input.subarray(at, at + HEAD));
  const start = BEFORE_TIME.exec(head)![0].length;
  const rest = head.slice(start);
  let value = ISO_WORD.exec(rest)?.[0];
  if (value?.endsWith(":")) value = value.slice(0, -1);
  if (value === undefined || !isIsoTimestamp(value)) {
    const bsd = BSD_TIME.exec(rest);
    const inRangeBsd =
      bsd !== null &&
      MONTHS.has(bsd[1]!.toLowerCase()) &&
      inRange(+bsd[2]!, 1, 31) &&
      +bsd[3]! <= 23 &&
      +bsd[4]! <= 59 &&
      +bsd[5]! <= 60;
    if (!inRangeBsd) return undefined;
    value = bsd[0];
  }
  let end = at + start + value.length;
  if (input[end] === 0x3a) end++;
  return end === input.length || input[end] === SP ? { value, end } : undefined;
}

/**
 * `tag[pid]: `, `tag: `, and after a timestamp also `tag:`, `tag[pid] text` and `tag text`
 * (rsyslog cuts tags at 32 characters, colon and all). Without a timestamp only `tag: ` and
 * `tag[pid]: ` count, or the first word of any text would be taken for a program.
 */
function parseTag(input: Uint8Array, at: number, stamped: boolean) {
  const start = at;
  while (isPrintable(input[at]) && input[at] !== 0x3a && input[at] !== 0x5b && input[at] !== 0x5d) at++;
  if (at === start) return undefined;
  const app = text.decode(input.subarray(start, at));
  let procid: string | undefined;
  if (input[at] === 0x5b) {
    const pidStart = at + 1;
    for (at = pidStart; isPrintable(input[at]) && input[at] !== 0x5d; at++);
    if (input[at] !== 0x5d || at === pidStart) return undefined;
    procid = text.decode(input.subarray(pidStart, at));
    at++;
  }
  const colon = input[at] === 0x3a;
  if (colon) at++;
  // Without a colon, only a word followed by more is a tag, or a message's one word would be.
  if (!colon && (!stamped || input[at] !== SP)) return undefined;
  // `tag:text` only after a timestamp: without one, `http://host/` is text, not a tag.
  if (colon && !stamped && input[at] !== SP && at < input.length) return undefined;
  if (input[at] === SP) at++;
  return { app, procid, end: at };
}
