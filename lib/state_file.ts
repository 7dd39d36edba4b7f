// slpc's --state file: the resume point of every server it follows, keyed by the server's
// address, so that a restarted slpc resumes each one where it stopped. The file of an slpc
// that followed one server (a bare resume point) is read as the first server's. An entry that
// cannot be read costs its own server its point, never the others theirs.

import { type Address, addressKey } from "./address.ts";
import { reason } from "./log.ts";
import { parseResumePoint, type ResumePoint } from "./protocol.ts";

/** Resume points by server address (addressKey). */
export type ResumePoints = Map<string, ResumePoint>;

/**
 * Reads the state file; throws an Error saying what is wrong with it. `servers` are the
 * --server addresses, in order: a file in the single-server format belongs to the first.
 * Points of servers not in the list are kept, so that leaving one out for a while loses nothing.
 * An entry that is not a resume point is left out of `points` and named in `unreadable`, with why.
 *
 * @example
 * readStateFile('{"server":"5f2c","last":9}', [{ host: "web", port: 6514 }]);
 * // { points: Map { "web:6514" => { server: "5f2c", last: 9 } }, converted: true, unreadable: Map {} }
 */
export function readStateFile(
  text: string,
  servers: readonly Address[],
): { points: ResumePoints; converted: boolean; unreadable: Map<string, string> } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined; // parseResumePoint names it
  }
  if (typeof value !== "object" || value === null || !("servers" in value)) {
    const point = parseResumePoint(text);
    if (servers.length === 0) throw new Error("no server to give its resume point to");
    return { points: new Map([[addressKey(servers[0]!), point]]), converted: true, unreadable: new Map() };
  }
  const entries = (value as { servers: unknown }).servers;
  if (typeof entries !== "object" || entries === null || Array.isArray(entries))
    throw new Error('not an slpc state file (expected {"servers": {ADDRESS: {"server": ID, "last": N}, ...}})');
  const points: ResumePoints = new Map();
  const unreadable = new Map<string, string>();
  for (const [address, point] of Object.entries(entries)) {
    try {
      points.set(address, parseResumePoint(JSON.stringify(point)));
    } catch (error) {
      unreadable.set(address, reason(error));
    }
  }
  return { points, converted: false, unreadable };
}

/** The state file's text for `points`, one line, in the order given. */
export function formatStateFile(points: ResumePoints): string {
  return `${JSON.stringify({ servers: Object.fromEntries(points) })}\n`;
}
