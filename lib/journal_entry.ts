// One syslog message as one entry of journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL),
// for `--forward journal`. The syslog fields get the names journald's own syslog input gives them,
// so that `journalctl SYSLOG_IDENTIFIER=sshd PRIORITY=3` finds remote messages as it finds local
// ones; what journald has no name for (the sender's host, MSGID, structured data, where slpc got
// the message) gets a name of ours, SLP_*. docs/output.md has the rule for the reader.
//
// Whoever reaches the server's syslog port chooses the SD-IDs and parameter names, and each
// distinct field name costs every journal file a slot in a small fixed table (journald rotates a
// file when it is three-quarters full): the names a run of slpc makes are capped, and so are the
// fields of one entry, and what is over either cap is kept, whole, in SLP_SD_OTHER.

import { isUtf8 } from "node:buffer";
import type { SyslogMessage } from "./syslog_message.ts";

/** The longest field name journald takes. */
export const MAX_FIELD_NAME = 64;
/** Structured-data parameters of one message that get fields of their own; the others go into SLP_SD_OTHER. */
export const MAX_SD_FIELDS = 64;
/** Distinct structured-data field names one run of slpc writes; parameters with new names then go into SLP_SD_OTHER. */
export const MAX_SD_NAMES = 64;

/** Where the message came from, as slpc knows it. */
export interface JournalContext {
  /** The --server it was received from, HOST:PORT: SLP_FROM. */
  from: string;
  /** The server run that numbered it (its hello's `server`): SLP_SERVER. */
  server: string;
  /** Its sequence number in that run: SLP_SEQ. */
  seq: number;
}

/** The prefix of a structured-data parameter's field; `SLP_SD_OTHER` holds the parameters that have none. */
const SD_PREFIX = "SLP_SD_";
export const SD_OTHER = "SLP_SD_OTHER";

/**
 * Whether journald takes `name` as a field a client may set: A-Z, 0-9 and _, at most 64, not
 * beginning with a digit or with _ (those are the fields journald sets itself).
 */
export function isJournalFieldName(name: string): boolean {
  return name.length <= MAX_FIELD_NAME && /^[A-Z][A-Z0-9_]*$/.test(name);
}

/**
 * The field of structured-data parameter `name` of element `id`: `SLP_SD_<ID>_<NAME>`, each
 * upper-cased, and every character other than A-Z and 0-9 written `_`. Undefined when that is
 * longer than journald takes (an SD-ID and a name of 32 characters each can be).
 *
 * @example
 * sdFieldName("exampleSDID@32473", "eventSource"); // "SLP_SD_EXAMPLESDID_32473_EVENTSOURCE"
 */
export function sdFieldName(id: string, name: string): string | undefined {
  const field = `${SD_PREFIX}${fieldPart(id)}_${fieldPart(name)}`;
  return field.length <= MAX_FIELD_NAME ? field : undefined;
}

const fieldPart = (text: string) => text.toUpperCase().replace(/[^A-Z0-9]/g, "_");

/**
 * The structured-data field names in use, up to a limit: a sender who invents names cannot make
 * more than `limit` of them, however long slpc runs.
 */
export class SdFieldNames {
  readonly limit: number;
  readonly #names = new Set<string>();

  constructor(limit = MAX_SD_NAMES) {
    this.limit = limit;
  }

  /** Whether `name` may be written: it is in use already, or there is room for it. */
  admit(name: string): boolean {
    if (this.#names.has(name)) return true;
    if (this.#names.size >= this.limit) return false;
    this.#names.add(name);
    return true;
  }

  /** Whether no new name is admitted any more. */
  get full(): boolean {
    return this.#names.size >= this.limit;
  }
}

const encoder = new TextEncoder();
const LF = 0x0a;

/**
 * The bytes of one native-protocol entry for `parsed`. A message slpc could not parse (no PRI)
 * is its raw bytes in MESSAGE, and no PRIORITY: journald's input would guess 6 (info), and a
 * guess would pass for the sender's word.
 *
 * @example
 * ```ts
 * import { parseSyslog } from "./lib/syslog_message.ts";
 * import { journalEntry, SdFieldNames } from "./lib/journal_entry.ts";
 * const parsed = parseSyslog(new TextEncoder().encode("<38>Jan  5 10:11:12 web sshd[42]: Accepted key"));
 * journalEntry(parsed, { from: "web.example.com:6514", server: "5f2c9a7e01b4d3c8", seq: 7 }, new SdFieldNames());
 * // PRIORITY=6, SYSLOG_FACILITY=4, SYSLOG_IDENTIFIER=sshd, SYSLOG_PID=42, SYSLOG_TIMESTAMP=Jan  5 10:11:12,
 * // SLP_HOST=web, SLP_FROM=web.example.com:6514, SLP_SERVER=5f2c9a7e01b4d3c8, SLP_SEQ=7, MESSAGE=Accepted key
 * ```
 */
export function journalEntry(parsed: SyslogMessage, context: JournalContext, names: SdFieldNames): Uint8Array {
  const fields: [string, Uint8Array][] = [];
  const text = (name: string, value: string | number | undefined) => {
    if (value !== undefined) fields.push([name, encoder.encode(String(value))]);
  };
  text("PRIORITY", parsed.severity);
  text("SYSLOG_FACILITY", parsed.facility);
  text("SYSLOG_IDENTIFIER", parsed.app);
  text("SYSLOG_PID", parsed.procid);
  text("SYSLOG_TIMESTAMP", parsed.timestamp);
  text("SLP_HOST", parsed.hostname);
  text("SLP_MSGID", parsed.msgid);
  if (parsed.structuredData) {
    const { own, other } = sdFields(parsed.structuredData, names);
    for (const [name, value] of own) text(name, value);
    if (other) text(SD_OTHER, other);
  }
  text("SLP_FROM", context.from);
  text("SLP_SERVER", context.server);
  text("SLP_SEQ", context.seq);
  fields.push(["MESSAGE", parsed.message]);
  return serialize(fields);
}

/**
 * Each parameter's field, while it has a name that fits, the entry has room and the run has the
 * name or room for it; the others in RFC 5424's own form, `[ID name="value"]`, for SLP_SD_OTHER.
 */
function sdFields(structuredData: Record<string, Record<string, string>>, names: SdFieldNames) {
  const own: [string, string][] = [];
  let other = "";
  for (const [id, params] of Object.entries(structuredData)) {
    let element = "";
    for (const [param, value] of Object.entries(params)) {
      const name = own.length < MAX_SD_FIELDS ? sdFieldName(id, param) : undefined;
      if (name !== undefined && names.admit(name)) own.push([name, value]);
      else element += ` ${param}="${value.replace(/["\\\]]/g, "\\$&")}"`;
    }
    if (element) other += `[${id}${element}]`;
  }
  return { own, other };
}

/**
 * Fields as the protocol has them: `NAME=value\n`, or for a value with a line break or bytes that
 * are not text, the binary-safe form `NAME\n`, its length as 64-bit little-endian, the value, `\n`.
 */
function serialize(fields: readonly [string, Uint8Array][]): Uint8Array {
  let size = 0;
  const binary = fields.map(([name, value]) => {
    const safe = !isText(value);
    size += name.length + 1 + (safe ? 8 : 0) + value.length + 1;
    return safe;
  });
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  fields.forEach(([name, value], i) => {
    at += out.write(name, at, "latin1");
    if (binary[i]) {
      out[at++] = LF;
      out.writeBigUInt64LE(BigInt(value.length), at);
      at += 8;
    } else out[at++] = 0x3d; // =
    out.set(value, at);
    at += value.length;
    out[at++] = LF;
  });
  return out;
}

/** UTF-8 without control characters but TAB: what journalctl shows as a string rather than as bytes. */
function isText(value: Uint8Array): boolean {
  for (const byte of value) if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) return false;
  return isUtf8(value);
}
