import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../../test/fuzz.ts";
import { HeadReader, HttpError, MAX_HEAD, parseHead, response } from "./http.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const BROWSER =
  "GET /events?q=ssh&severity=warning HTTP/1.1\r\nHost: 127.0.0.1:8514\r\nAccept: text/event-stream\r\n" +
  "Cookie: a=b; slpc_web_8514=token\r\nLast-Event-ID: 5f2c-7\r\n\r\n";

const status = (text: string) => {
  try {
    new HeadReader().push(Buffer.from(text));
  } catch (error) {
    return (error as HttpError).status;
  }
  return 0;
};

describe("HeadReader", () => {
  test("a head split at every byte reads the same as whole: method, path, query, headers by lower-case name", () => {
    for (let cut = 0; cut <= BROWSER.length; cut++) {
      const reader = new HeadReader();
      const first = reader.push(Buffer.from(BROWSER.slice(0, cut)));
      const head = first ?? reader.push(Buffer.from(BROWSER.slice(cut)));
      expect(first === undefined || cut >= BROWSER.length - 1).toBe(true);
      expect(head?.method).toBe("GET");
      expect(head?.path).toBe("/events");
      expect(head?.query.get("severity")).toBe("warning");
      expect(head?.headers.get("last-event-id")).toBe("5f2c-7");
      expect(head?.headers.get("host")).toBe("127.0.0.1:8514");
    }
  });

  test("LF alone ends lines too; repeated headers that do not matter are joined", () => {
    const head = parseHead("GET / HTTP/1.0\nHost: a\nAccept: x\nAccept: y");
    expect(head.headers.get("accept")).toBe("x, y");
  });

  test("a head over 8 KiB is refused (431) as soon as its bytes pass the bound, however they come", () => {
    const reader = new HeadReader();
    expect(reader.push(Buffer.from(`GET / HTTP/1.1\r\nX: ${"a".repeat(MAX_HEAD - 30)}`))).toBeUndefined();
    expect(() => reader.push(Buffer.alloc(100, 0x61))).toThrow(HttpError);
    expect(status(`GET /${"a".repeat(MAX_HEAD)} HTTP/1.1\r\n\r\n`)).toBe(431);
    expect(status(`GET / HTTP/1.1\r\n${"X: y\r\n".repeat(65)}\r\n`)).toBe(431);
  });

  test("refused: no HTTP/1.x line, no path, folded or malformed lines, a body, a second Host", () => {
    expect(status("GET / HTTP/2\r\n\r\n")).toBe(400);
    expect(status("GET http://evil/ HTTP/1.1\r\n\r\n")).toBe(400);
    expect(status("get / HTTP/1.1\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nNo colon\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nCookie: a\r\nCookie: b\r\n\r\n")).toBe(400);
    expect(status("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")).toBe(0);
  });

  test("any bytes, cut anywhere: a head, nothing yet, or an HttpError; never more than the bound held", () => {
    property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 8 }), (chunks) => {
      const reader = new HeadReader();
      returnsOrRefuses(() => {
        for (const chunk of chunks) if (reader.push(chunk)) return;
      }, HttpError);
    });
  });
});

describe("response", () => {
  test("a head, and its body with its length; a stream's head has none; HEAD gets GET's length, no body", () => {
    expect(response(404, { A: "b" }, "gone\n").toString()).toBe(
      "HTTP/1.1 404 Not Found\r\nA: b\r\nContent-Length: 5\r\n\r\ngone\n",
    );
    expect(response(200, { "Content-Type": "text/event-stream" }).toString()).toBe(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
    );
    expect(response(200, {}, "page", true).toString()).toBe("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
  });
});
