// Unit tests of the server's side of RELP: what librelp's client sends, split at every byte, the
// numbering it must keep, long messages read through, and every frame that ends a session.

import { describe, expect, test } from "bun:test";
import { MAX_MESSAGE } from "./framing.ts";
import { RelpSession } from "./relp.ts";
import { MAX_RELP_DATA, openAnswer, type RelpRequest, RelpServerSession, relpAnswer } from "./relp_server.ts";

/** The requests as plain values: a message as its text. */
const shown = (requests: RelpRequest[]) =>
  requests.map((request) =>
    "message" in request ? { ...request, message: Buffer.from(request.message).toString() } : request,
  );

/** Feeds `bytes` cut into pieces of `size`; the requests they made, and the session. */
function read(bytes: Uint8Array, size = bytes.length, max = MAX_MESSAGE) {
  const session = new RelpServerSession({ max });
  const requests: RelpRequest[] = [];
  for (let at = 0; at < bytes.length && session.error === undefined; at += size) {
    requests.push(...session.push(bytes.subarray(at, at + size)));
  }
  return { requests: shown(requests), session };
}

/** What rsyslog's omrelp (librelp 1.11) offers. */
const OFFERS = "relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog";
const OPEN = `1 open ${OFFERS.length} ${OFFERS}\n`;

describe("RelpServerSession", () => {
  test("open, messages and close as librelp sends them, however the bytes are cut", () => {
    const bytes = Buffer.from(`${OPEN}2 syslog 6 <13>hi\n3 syslog 13 <13>two\nlines\n4 close 0\n`);
    const expected: ReturnType<typeof shown> = [
      { command: "open", txnr: 1, offers: OFFERS },
      { command: "syslog", txnr: 2, message: "<13>hi" },
      { command: "syslog", txnr: 3, message: "<13>two\nlines" },
      { command: "close", txnr: 4 },
    ];
    for (let size = 1; size <= bytes.length; size++) {
      const { requests, session } = read(bytes, size);
      expect(requests).toEqual(expected);
      expect(session.closed).toBe(true);
      expect(session.midFrame).toBe(false);
    }
  });

  test("what our own RELP client sends reads back as the messages it sent", () => {
    const client = new RelpSession<number>();
    const server = new RelpServerSession();
    const [open] = server.push(client.open());
    expect(open).toMatchObject({ command: "open", txnr: 1 });
    const answer = openAnswer((open as { offers: string }).offers, "slps");
    expect(client.receive(relpAnswer(1, answer.text))).toEqual([{ type: "opened", resend: Buffer.alloc(0) }]);
    const frames = [1, 2, 3].map((n) => client.send(Buffer.from(`<13>message ${n}`), n)!);
    const requests = server.push(Buffer.concat(frames));
    expect(shown(requests).map((request) => ("message" in request ? request.message : ""))).toEqual([
      "<13>message 1",
      "<13>message 2",
      "<13>message 3",
    ]);
    const acks = Buffer.concat(requests.map((request) => relpAnswer(request.txnr, "200 OK")));
    expect(client.receive(acks).map((event) => event.type === "acknowledged" && event.tag)).toEqual([1, 2, 3]);
  });

  test("a message of the longest size is kept; a longer one is read through, not kept, and its frame answered", () => {
    const longest = "x".repeat(MAX_MESSAGE);
    const over = "y".repeat(MAX_RELP_DATA);
    const bytes = Buffer.from(
      `${OPEN}2 syslog ${MAX_MESSAGE} ${longest}\n3 syslog ${MAX_RELP_DATA} ${over}\n4 close 0\n`,
    );
    for (const size of [1000, 65536, bytes.length]) {
      const { requests, session } = read(bytes, size);
      expect(requests.slice(1)).toEqual([
        { command: "syslog", txnr: 2, message: longest },
        { command: "syslog", txnr: 3, oversize: MAX_RELP_DATA },
        { command: "close", txnr: 4 },
      ]);
      expect(session.error).toBeUndefined();
    }
  });

  test("after 999,999,999 the numbers go on at 1, as the spec wraps them; any other number ends the session", () => {
    const session = new RelpServerSession({ opened: 999_999_998 });
    const requests = session.push(Buffer.from("999999998 syslog 1 a\n999999999 syslog 1 b\n1 syslog 1 c\n"));
    expect(requests.map((request) => request.txnr)).toEqual([999_999_998, 999_999_999, 1]);
    expect(session.push(Buffer.from("3 syslog 1 x\n"))).toEqual([]);
    expect(session.error).toBe("RELP txnr 3 where 2 was due");
  });

  test.each([
    ["2 syslog 6 <13>hi\n", "RELP txnr 2 where 1 was due"],
    ["1 syslog 6 <13>hi\n", "RELP syslog before open"],
    [`${OPEN}2 open 14 relp_version=0\n`, "RELP open sent twice"],
    [`${OPEN}2 starttls 0\n`, 'unknown RELP command "starttls"'],
    [`${OPEN}2 rsp 6 200 OK\n`, 'unknown RELP command "rsp"'],
    [`${OPEN}2 syslog ${MAX_RELP_DATA + 1} x`, `RELP frame of ${MAX_RELP_DATA + 1} bytes, over ${MAX_RELP_DATA}`],
    [`1 open 5000 ${"x".repeat(5000)}\n`, "RELP open of 5000 bytes, over 4096"],
    [`${OPEN}2 syslog 6 <13>hiX`, "RELP frame 2 does not end in LF"],
    [`${OPEN}2 syslog 0 \n`, "malformed RELP header"],
    [`${OPEN}2 syslog 6\n<13>hi\n`, "malformed RELP header"],
    ["GET / HTTP/1.1\r\n", "malformed RELP header"],
    ["1234567890 open 0\n", "malformed RELP header"],
    [`1 ${"a".repeat(33)} 0\n`, "malformed RELP header"],
  ])("%j ends the session: %s", (text, why) => {
    for (const size of [1, 7, text.length]) {
      const { session } = read(Buffer.from(text), size);
      // A malformed header is quoted as far as it was read.
      if (why === "malformed RELP header") expect(session.error).toStartWith(`${why} "`);
      else expect(session.error).toBe(why);
    }
  });

  test("requests() reads a chunk only as far as its requests are asked for", () => {
    const session = new RelpServerSession();
    const requests = session.requests(Buffer.from(`${OPEN}2 syslog 6 <13>hi\n2 syslog 6 <13>hi\n`));
    expect(requests.next().value).toMatchObject({ command: "open", txnr: 1 });
    expect(session.midFrame).toBe(false);
    expect(shown([requests.next().value as RelpRequest])).toEqual([{ command: "syslog", txnr: 2, message: "<13>hi" }]);
    expect(session.error).toBeUndefined(); // the repeated txnr after it is not read yet
    expect(requests.next().done).toBe(true);
    expect(session.error).toBe("RELP txnr 2 where 3 was due");
  });

  test("after close nothing more is read", () => {
    const { requests } = read(Buffer.from(`${OPEN}2 close 0\n3 syslog 1 x\n`));
    expect(requests.map((request) => request.command)).toEqual(["open", "close"]);
  });
});

describe("answers", () => {
  test("relpAnswer frames the text, and an empty one as librelp answers close", () => {
    expect(relpAnswer(7, "200 OK").toString()).toBe("7 rsp 6 200 OK\n");
    expect(relpAnswer(9, "").toString()).toBe("9 rsp 0\n");
  });

  test("openAnswer takes a client of version 0 that offers syslog, and refuses others in librelp's words", () => {
    expect(openAnswer("relp_version=0\nrelp_software=x\ncommands=syslog\n", "slps").text).toBe(
      "200 OK\nrelp_version=0\nrelp_software=slps\ncommands=syslog",
    );
    expect(openAnswer("relp_version=0\ncommands=other\n", "slps")).toEqual({
      text: "500 required command not supported by client",
      refused: "the client does not offer syslog",
    });
    expect(openAnswer("commands=syslog", "slps").refused).toBe("the client offers no RELP version");
  });
});
