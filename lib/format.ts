// How slpc writes a message on its standard output (issue 12, `--format`): `raw` as today's
// `--stdout`, one JSON object a line for tools, and aligned, coloured columns for a person.
// Each function returns the text to write, final newline included; none of them drops a
// message: one that cannot be parsed keeps all its bytes in each format.

import { FACILITY_NAMES, isIsoTimestamp, SEVERITY_NAMES, type SyslogMessage } from "./syslog_message.ts";
import { type Cell, fitCells, terminalCells, terminalLines, widthOf, wrapCells } from "./terminal_text.ts";

/**
 * One message a line, as its bytes, with LF, CR and the other control bytes but TAB escaped
 * (`\n`, `\r`, `\x1b`), and so are the characters that act on a terminal without being control
 * bytes: C1 controls written in UTF-8 (U+009B is CSI to xterm), the bidi overrides and isolates
 * and the line and paragraph separators (`\u009b`, `\u202e`). Each message is one line, and
 * none moves the cursor or turns the text around. All other bytes pass as they came.
 */
export function formatRaw(message: Uint8Array): Buffer {
  return messagesAsLines([message]);
}

const HEX = "0123456789abcdef";

/**
 * The code point of a character at `message[i]` that raw output escapes though it is no control
 * byte (see formatRaw), and the bytes it takes; or undefined.
 */
function terminalCharacterAt(message: Uint8Array, i: number): [codePoint: number, length: number] | undefined {
  const lead = message[i];
  const next = message[i + 1] ?? 0;
  if (lead === 0xc2 && next >= 0x80 && next <= 0x9f) return [next, 2]; // U+0080-U+009F
  if (lead !== 0xe2) return undefined;
  const last = message[i + 2] ?? 0;
  // U+2028-U+202E (separators, embeddings, overrides) and U+2066-U+2069 (isolates)
  if ((next === 0x80 && last >= 0xa8 && last <= 0xae) || (next === 0x81 && last >= 0xa6 && last <= 0xa9)) {
    return [0x2000 + ((next & 0x3f) << 6) + (last & 0x3f), 3];
  }
  return undefined;
}

/**
 * Messages as formatRaw writes them, all in one buffer: slpc writes what one read brought with
 * one write. An escape takes at most four bytes a byte (`\xHH`), so one buffer of that bound is
 * filled in one pass.
 */
export function messagesAsLines(messages: readonly Uint8Array[]): Buffer {
  let bound = 0;
  for (const message of messages) bound += 4 * message.length + 1;
  const out = Buffer.allocUnsafe(bound);
  let at = 0;
  const put = (text: string) => {
    at += out.write(text, at, "latin1");
  };
  for (const message of messages) {
    for (let i = 0; i < message.length; i++) {
      const byte = message[i]!;
      if (byte === 0x0a) put("\\n");
      else if (byte === 0x0d) put("\\r");
      else if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) put(`\\x${HEX[byte >> 4]}${HEX[byte & 0xf]}`);
      else if (byte === 0xc2 || byte === 0xe2) {
        const found = terminalCharacterAt(message, i);
        if (!found) out[at++] = byte;
        else {
          put(`\\u${found[0].toString(16).padStart(4, "0")}`);
          i += found[1] - 1;
        }
      } else out[at++] = byte;
    }
    out[at++] = 0x0a;
  }
  return out.subarray(0, at);
}

/** Keeps a BOM inside the text: the parser already dropped the one RFC 5424 puts before MSG. */
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

export interface JsonContext {
  /** The --server it came from, HOST:PORT: what tells one slpc's servers apart. */
  from: string;
  /**
   * The server run that numbered the message (the `server` of its hello, as in the resume point):
   * with `seq` it names one message, also across a server restart, which numbers from 1 again.
   */
  server: string;
  /** The message's sequence number in that run. */
  seq: number;
  /** When slpc received it. */
  received: Date;
}

/**
 * One JSON object on one line. Every field is always there, null when the message lacks it,
 * except the text: `message` when it is valid UTF-8, else `message_base64` with its bytes.
 *
 * @example
 * ```ts
 * import { parseSyslog } from "./lib/syslog_message.ts";
 * import { formatJson } from "./lib/format.ts";
 * const parsed = parseSyslog(new TextEncoder().encode("<38>Jan  5 10:11:12 web sshd[42]: Accepted key"));
 * const context = { from: "web.example.com:6514", server: "5f2c9a7e01b4d3c8", seq: 7, received: new Date() };
 * process.stdout.write(formatJson(parsed, context));
 * ```
 */
export function formatJson(parsed: SyslogMessage, { from, server, seq, received }: JsonContext): string {
  const { buffer, byteOffset, byteLength } = parsed.message;
  const text = parsed.utf8
    ? { message: utf8.decode(parsed.message) }
    : { message_base64: Buffer.from(buffer, byteOffset, byteLength).toString("base64") };
  const record = {
    from,
    server,
    seq,
    received: received.toISOString(),
    facility: parsed.facility === undefined ? null : FACILITY_NAMES[parsed.facility],
    severity: parsed.severity === undefined ? null : SEVERITY_NAMES[parsed.severity],
    timestamp: parsed.timestamp ?? null,
    hostname: parsed.hostname ?? null,
    app: parsed.app ?? null,
    procid: parsed.procid ?? null,
    msgid: parsed.msgid ?? null,
    structured_data: parsed.structuredData ?? null,
    ...text,
  };
  const asEscape = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
  return `${JSON.stringify(record).replace(TERMINAL_ACTIVE, asEscape)}\n`;
}

/**
 * What JSON.stringify leaves raw and a terminal acts on or reorders: C1 controls (U+009B is CSI to
 * xterm) and bidi overrides and isolates, as raw and pretty escape them. Only string values can hold
 * them, where `\uXXXX` means the same character to every JSON reader.
 */
const TERMINAL_ACTIVE = /[\u0080-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export interface PrettyOptions {
  /** Shown as the host of a message that names none. */
  server?: string;
  /** When the message was received: its time when it carries none. */
  now?: Date;
  /** ANSI colours by severity. */
  color: boolean;
  /** Columns of the terminal; messages wrap to fit. */
  width: number;
  /** IANA time zone for times, such as "Europe/Paris" (an unknown one throws RangeError); default this machine's. */
  timeZone?: string;
}

/** Widths of the columns before the message: time, host, program[pid], severity. */
const COLUMNS = [15, 12, 16, 7] as const;
const MESSAGE_COLUMN = COLUMNS.reduce((sum, width) => sum + width + 1, 0);
/** Fewer columns than this for the message, and wrapping would help less than it hurts: lines run on. */
const NARROWEST_WRAP = 20;
const RESET = "\x1b[0m";
const DIM = "\x1b[2m";
/** Red for err and worse, yellow for warning, dim for debug. */
const SEVERITY_STYLE = ["\x1b[31m", "\x1b[31m", "\x1b[31m", "\x1b[31m", "\x1b[33m", "", "", DIM];

/**
 * Aligned columns for a person: local time, host, program[pid], severity, then the message and
 * its structured data. A line longer than the terminal wraps, continuing under the message
 * column; a message with LFs continues there too.
 *
 * @example
 * ```ts
 * import { parseSyslog } from "./lib/syslog_message.ts";
 * import { formatPretty } from "./lib/format.ts";
 * const parsed = parseSyslog(new TextEncoder().encode("<36>Jan  5 10:11:12 web sshd[42]: Failed password"));
 * process.stdout.write(formatPretty(parsed, { color: true, width: 100 }));
 * // Jan  5 10:11:12 web          sshd[42]         warning Failed password   (in yellow from "warning")
 * ```
 */
export function formatPretty(parsed: SyslogMessage, options: PrettyOptions): string {
  const style = options.color && parsed.severity !== undefined ? SEVERITY_STYLE[parsed.severity]! : "";
  const pid = parsed.procid === undefined ? "" : `[${parsed.procid}]`;
  const program = parsed.app === undefined ? "" : `${parsed.app}${pid}`;
  const columns = [
    displayTime(parsed.timestamp, options.now, options.timeZone),
    parsed.hostname ?? options.server ?? "",
    program,
    parsed.severity === undefined ? "" : SEVERITY_NAMES[parsed.severity]!,
  ].map((text, index) => fitCells(terminalCells(text), COLUMNS[index]!));
  // Structured data follows the text, dimmed: `dim` marks its cells through the wrapping.
  const lines: (Cell & { dim?: boolean })[][] = terminalLines(parsed.message);
  const sd = structuredDataCells(parsed.structuredData).map((cell) => ({ ...cell, dim: true }));
  const last = lines.at(-1)!;
  if (sd.length > 0) last.push(...(widthOf(last) > 0 ? [{ text: " ", width: 1, dim: true }] : []), ...sd);
  const room = options.width - MESSAGE_COLUMN;
  const rows = lines.flatMap((line) => (room < NARROWEST_WRAP ? [line] : wrapCells(line, room)));
  const paint = (text: string, dim = false) => {
    const code = dim && options.color ? style + DIM : style;
    return code === "" || text === "" ? text : `${code}${text}${RESET}`;
  };
  const out = rows.map((row, index) => {
    while (row.at(-1)?.text === " ") row.pop();
    const text = row
      .filter((cell) => !cell.dim)
      .map((cell) => cell.text)
      .join("");
    const dimmed = row
      .filter((cell) => cell.dim)
      .map((cell) => cell.text)
      .join("");
    const head = index === 0 ? `${columns.slice(0, 3).join(" ")} ${paint(columns[3]!)} ` : " ".repeat(MESSAGE_COLUMN);
    return (head + paint(text) + paint(dimmed, true)).trimEnd();
  });
  return `${out.join("\n")}\n`;
}

/** `[id k=v k2="v 2"]`, values quoted only when they need it. */
function structuredDataCells(sd: SyslogMessage["structuredData"]): Cell[] {
  if (sd === undefined) return [];
  const quote = (value: string) => (/^[^\s"\]=]+$/.test(value) ? value : JSON.stringify(value));
  const element = ([id, params]: [string, Record<string, string>]) =>
    `[${[id, ...Object.entries(params).map(([key, value]) => `${key}=${quote(value)}`)].join(" ")}]`;
  return terminalCells(Object.entries(sd).map(element).join(""));
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const ISO_PARTS = /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?(Z|([+-])(\d\d):(\d\d))?$/;
const formatters = new Map<string | undefined, Intl.DateTimeFormat>();

/**
 * `Mmm dd hh:mm:ss`: an RFC 3339 time with an offset in the given zone; a time without one (BSD's,
 * or ISO without offset) as the sender wrote it, since only the sender knows its zone; when there
 * is no time, the time received.
 */
function displayTime(timestamp: string | undefined, now: Date | undefined, timeZone: string | undefined): string {
  const bsd = timestamp && /^(\w{3}) +(\d{1,2}) (?:\d{4} )?(\d\d:\d\d:\d\d)/.exec(timestamp);
  if (bsd) return `${bsd[1]} ${bsd[2]!.padStart(2)} ${bsd[3]}`;
  const iso = timestamp && isIsoTimestamp(timestamp) ? ISO_PARTS.exec(timestamp) : null;
  const [, year, month, day, hour, minute, second, fraction, zone, sign, zoneHours, zoneMinutes] = iso ?? [];
  const clock = `${hour}:${minute}:${second}`;
  if (iso && zone === undefined) return `${MONTHS[+month! - 1]} ${String(+day!).padStart(2)} ${clock}`;
  let time = now;
  if (iso) {
    const offset = zone === "Z" ? 0 : (sign === "-" ? -1 : 1) * (+zoneHours! * 60 + +zoneMinutes!);
    time = new Date(Date.UTC(2000, 0, 1)); // setUTCFullYear, as Date.UTC reads years 0 to 99 as 1900 to 1999
    time.setUTCFullYear(+year!, +month! - 1, +day!);
    time.setUTCHours(+hour!, +minute! - offset, +second!, Math.floor(Number(fraction ?? 0) * 1000));
  }
  if (time === undefined || Number.isNaN(time.getTime())) return "";
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
    formatters.set(timeZone, formatter);
  }
  const part = Object.fromEntries(formatter.formatToParts(time).map(({ type, value }) => [type, value]));
  return `${part.month} ${part.day!.padStart(2)} ${part.hour}:${part.minute}:${part.second}`;
}

export type OutputFormat = "raw" | "json" | "pretty";

/** The value of `--format`. */
export function parseOutputFormat(text: string): OutputFormat {
  if (text === "raw" || text === "json" || text === "pretty") return text;
  throw new Error("expected raw, json or pretty");
}

export type ColorFlag = "always" | "never" | "auto";

/** The value of `--color`. */
export function parseColorFlag(text: string): ColorFlag {
  if (text === "always" || text === "never" || text === "auto") return text;
  throw new Error("expected always, never or auto");
}

/**
 * Whether to colour: `always` and `never` say so; `auto` colours a terminal unless NO_COLOR is set
 * and not empty (no-color.org) or TERM is dumb.
 */
export function colorChoice(flag: ColorFlag, isTTY: boolean, env: Record<string, string | undefined>): boolean {
  if (flag !== "auto") return flag === "always";
  return isTTY && !env.NO_COLOR && env.TERM !== "dumb";
}
