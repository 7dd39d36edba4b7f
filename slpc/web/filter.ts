// The view's filter, from the query string a viewer sends (`/events?q=ssh&severity=warning`), so
// that a filtered page is a bookmark and `curl` gets only what it asks for. A viewer writes it, so
// every part is bounded, and applying it costs set lookups and one substring search of the
// message's bytes, whatever the viewer wrote (no pattern: see lib/filter.ts for why).

import { FILTER_LIMITS, parseHosts, parsePrograms, parseSeverity } from "../../lib.ts";
import type { Held, Prepared } from "./history.ts";

/** Bytes of the text filter, as UTF-8. */
export const MAX_TEXT = 256;

export interface ViewFilter {
  /** Text the message (header included) contains, ASCII capitals not counting: lower case UTF-8. */
  text?: Buffer;
  /** This severity and every more severe one. */
  severity?: number;
  /** HOSTNAMEs and programs, lower case; `servers`, the --server each came from, as HOST:PORT. */
  hosts?: ReadonlySet<string>;
  programs?: ReadonlySet<string>;
  servers?: ReadonlySet<string>;
}

/** The parameters the view reads; any other is refused, so that a typo does not silently show everything. */
const KNOWN = new Set(["q", "severity", "host", "program", "server"]);

/**
 * The filter a query string asks for; throws an Error naming the parameter and what is wrong.
 * An empty parameter is no filter. `skip` names parameters that are not the filter's (the token).
 */
export function parseViewFilter(query: URLSearchParams, skip: readonly string[] = []): ViewFilter {
  const filter: ViewFilter = {};
  const seen = new Set<string>();
  for (const [name, value] of query) {
    if (skip.includes(name)) continue;
    if (!KNOWN.has(name))
      throw new Error(`unknown parameter '${name.slice(0, 40)}' (q, severity, host, program, server)`);
    if (seen.has(name)) throw new Error(`${name}: given twice`);
    seen.add(name);
    if (value === "") continue;
    try {
      if (name === "q") filter.text = parseText(value);
      else if (name === "severity") filter.severity = parseSeverity(value);
      else if (name === "host") filter.hosts = parseHosts(value);
      else if (name === "program") filter.programs = parsePrograms(value);
      else filter.servers = parseServers(value);
    } catch (error) {
      throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return filter;
}

function parseText(value: string): Buffer {
  if (!value.isWellFormed()) throw new Error("not valid Unicode text");
  const bytes = Buffer.from(value.replace(/[A-Z]/g, (letter) => letter.toLowerCase()));
  if (bytes.length > MAX_TEXT) throw new Error(`${bytes.length} bytes long; at most ${MAX_TEXT}`);
  return bytes;
}

function parseServers(value: string): ReadonlySet<string> {
  const items = value.split(",").map((item) => item.trim());
  if (items.length > FILTER_LIMITS.items) throw new Error(`${items.length} servers; at most ${FILTER_LIMITS.items}`);
  const bad = items.find((item) => item === "" || item.length > FILTER_LIMITS.name + 6);
  if (bad !== undefined) throw new Error(`'${bad.slice(0, 40)}' is not a HOST:PORT`);
  return new Set(items);
}

/** Whether a message passes: every criterion set, with one of a list's values. */
export function viewMatches(filter: ViewFilter, held: Held, prepared: Prepared): boolean {
  if (filter.servers && !filter.servers.has(held.from)) return false;
  if (filter.severity !== undefined && (prepared.severity === undefined || prepared.severity > filter.severity))
    return false;
  if (filter.hosts && (prepared.host === undefined || !filter.hosts.has(prepared.host))) return false;
  if (filter.programs && (prepared.app === undefined || !filter.programs.has(prepared.app))) return false;
  return filter.text === undefined || prepared.lower.includes(filter.text);
}
