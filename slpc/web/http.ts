// The little of HTTP/1.1 the live view speaks: one request head per connection, read to its blank
// line and no further, and one response, after which the connection closes (or streams). Whoever
// reaches the port writes the head, so it is bounded in bytes, and anything unusual about it is
// refused rather than guessed at: folded or repeated headers that matter, a body, a bad target.

/** The most bytes of a request head: a browser's are about 1 KiB, cookies included. */
export const MAX_HEAD = 8192;
/** Headers in one head. */
export const MAX_HEADERS = 64;

export interface RequestHead {
  method: string;
  /** The path, from `/`, without the query. */
  path: string;
  query: URLSearchParams;
  /** Header names in lower case; a repeated header's values joined by ", " (Host may not repeat). */
  headers: ReadonlyMap<string, string>;
}

/** A request that cannot be served, with the status and one line saying why. */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const CRLF_CRLF = Buffer.from("\r\n\r\n");
const LF_LF = Buffer.from("\n\n");

/**
 * Collects a request head from the chunks a socket reads. `push` returns the head once its blank
 * line came, undefined while it has not; throws HttpError for a head too long or malformed.
 *
 * @example
 * ```ts
 * const reader = new HeadReader();
 * reader.push(Buffer.from("GET /?q=x HTTP/1.1\r\nHo")); // undefined
 * reader.push(Buffer.from("st: 127.0.0.1:8514\r\n\r\n")); // { method: "GET", path: "/", ... }
 * ```
 */
export class HeadReader {
  #held = Buffer.alloc(0);

  push(chunk: Uint8Array): RequestHead | undefined {
    // Only what fits in a head is kept: a peer that sends more is refused before it costs more.
    const room = MAX_HEAD + 4 - this.#held.length;
    this.#held = Buffer.concat([this.#held, chunk.subarray(0, Math.max(0, room))]);
    const crlf = this.#held.indexOf(CRLF_CRLF);
    const lf = this.#held.indexOf(LF_LF);
    const end = crlf === -1 ? lf : lf === -1 ? crlf : Math.min(crlf, lf);
    if (end === -1 || end > MAX_HEAD) {
      if (this.#held.length > MAX_HEAD) throw new HttpError(431, `request head over ${MAX_HEAD} bytes`);
      return undefined;
    }
    return parseHead(this.#held.subarray(0, end).toString("latin1"));
  }
}

/** The request line and headers, checked; `text` is the head without its blank line. */
export function parseHead(text: string): RequestHead {
  const lines = text.split(/\r?\n/);
  const requestLine = /^([A-Z]{1,16}) (\S{1,8000}) HTTP\/1\.([01])$/.exec(lines[0]!);
  if (!requestLine) throw new HttpError(400, "not an HTTP/1.x request line");
  const [, method, target] = requestLine;
  if (!target!.startsWith("/")) throw new HttpError(400, "the target must be a path from /");
  const headers = new Map<string, string>();
  if (lines.length - 1 > MAX_HEADERS) throw new HttpError(431, `over ${MAX_HEADERS} headers`);
  for (const line of lines.slice(1)) {
    // A folded line (obs-fold) could hide a header from one reader and not another: refused.
    const header = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):(.*)$/.exec(line);
    if (!header) throw new HttpError(400, "a malformed header line");
    const name = header[1]!.toLowerCase();
    const value = trimBlanks(header[2]!);
    const earlier = headers.get(name);
    if (earlier !== undefined && ONCE.has(name)) throw new HttpError(400, `the ${name} header twice`);
    headers.set(name, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  // A body would be the next request's bytes to a reader that did not expect one: none is taken.
  if (headers.has("transfer-encoding") || (headers.get("content-length") ?? "0") !== "0")
    throw new HttpError(400, "a request with a body");
  const question = target!.indexOf("?");
  const path = question === -1 ? target! : target!.slice(0, question);
  const query = new URLSearchParams(question === -1 ? "" : target!.slice(question + 1));
  return { method: method!, path, query, headers };
}

/**
 * Text without the spaces and tabs around it. Not a pattern: `[ \t]*$` after a value, or `[ \t]+$`
 * alone, backtracks over blanks inside it, quadratic in a head that anyone reaching the port writes.
 */
function trimBlanks(text: string): string {
  const blank = (at: number) => text[at] === " " || text[at] === "\t";
  let start = 0;
  let end = text.length;
  while (start < end && blank(start)) start++;
  while (end > start && blank(end - 1)) end--;
  return text.slice(start, end);
}

/** Headers whose second copy would leave open which one counts. */
const ONCE = new Set(["host", "origin", "cookie", "authorization", "content-length", "last-event-id"]);

const REASONS: Record<number, string> = {
  200: "OK",
  303: "See Other",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/**
 * A response head, and its body when it has one, as one buffer to write. Without a body it is the
 * head of a stream, which ends when the connection does; `headOnly` answers HEAD: GET's length, no body.
 */
export function response(
  status: number,
  headers: Record<string, string>,
  body?: string | Buffer,
  headOnly = false,
): Buffer {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  const bytes = body === undefined ? undefined : typeof body === "string" ? Buffer.from(body) : body;
  if (bytes) lines.push(`Content-Length: ${bytes.length}`);
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  return bytes && !headOnly ? Buffer.concat([head, bytes]) : head;
}
