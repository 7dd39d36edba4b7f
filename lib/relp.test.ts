// Unit tests of the RELP client session: bytes in, bytes and events out. The daemon's answers are
// the bytes rsyslog 8.2302's imrelp (librelp 1.11.0) sent in a capture.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { MAX_RELP_RESPONSE, type RelpEvent, RelpSession } from "./relp.ts";

const bytes = (text: string) => Buffer.from(text, "latin1");
const text = (data: Uint8Array | undefined) => (data === undefined ? undefined : Buffer.from(data).toString("latin1"));
const OPEN_ANSWER =
  "1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n";
const ok = (txnr: number) => `${txnr} rsp 6 200 OK\n`;
/** An answer to `txnr` carrying `data`, its length counted here. */
const rsp = (txnr: number, data: string) => `${txnr} rsp ${data.length} ${data}\n`;

/** A session that has sent `open` and read the daemon's answer. */
function opened(options: ConstructorParameters<typeof RelpSession>[0] = {}) {
  const session = new RelpSession<number>(options);
  session.open();
  expect(session.receive(bytes(OPEN_ANSWER))).toEqual([{ type: "opened", resend: Buffer.alloc(0) }]);
  return session;
}

/** Sends messages tagged `tags`, each `<13>m TAG`, and returns the frames as text. */
function sendAll(session: RelpSession<number>, tags: number[]): (string | undefined)[] {
  return tags.map((tag) => text(session.send(bytes(`<13>m ${tag}`), tag)));
}

/** The events, each acknowledgement as just its tag. */
const acknowledged = (events: RelpEvent<number>[]) =>
  events.map((event) => (event.type === "acknowledged" ? event.tag : event));

describe("RelpSession", () => {
  test("open offers relp_version 0 and the syslog command, as txnr 1", () => {
    const session = new RelpSession<number>();
    expect(text(session.open())).toBe("1 open 48 relp_version=0\nrelp_software=slp\ncommands=syslog\n");
    expect(session.phase).toBe("opening");
  });

  test("nothing is sent before the daemon has answered the open offer", () => {
    const session = new RelpSession<number>();
    expect(session.send(bytes("x"), 1)).toBeUndefined();
    session.open();
    expect(session.send(bytes("x"), 1)).toBeUndefined();
    expect(session.inFlight).toBe(0);
  });

  test("a message is one syslog frame: any bytes, LF included, and an empty one with no data part", () => {
    const session = opened();
    expect(text(session.send(bytes("<13>two\nlines\x00\xff"), 1))).toBe("2 syslog 15 <13>two\nlines\x00\xff\n");
    expect(text(session.send(new Uint8Array(0), 2))).toBe("3 syslog 0\n");
  });

  test("each acknowledgement names the tag of its message, in order", () => {
    const session = opened();
    sendAll(session, [10, 11, 12]);
    expect(acknowledged(session.receive(bytes(ok(2) + ok(3))))).toEqual([10, 11]);
    expect(session.unacknowledged()).toEqual([12]);
    expect(acknowledged(session.receive(bytes(ok(4))))).toEqual([12]);
    expect(session.inFlight).toBe(0);
  });

  test("answers cut at every byte give the same events", () => {
    const session = opened();
    sendAll(session, [1, 2, 3]);
    const stream = bytes(`${ok(2) + ok(3) + ok(4)}0 serverclose 0\n`);
    const events = [...stream].flatMap((byte) => session.receive(Uint8Array.of(byte)));
    expect(acknowledged(events)).toEqual([1, 2, 3, { type: "closed", reason: "the daemon closed the RELP session" }]);
  });

  test("a full window refuses the next message until an acknowledgement frees a place", () => {
    const session = opened({ window: 3 });
    expect(sendAll(session, [1, 2, 3, 4])[3]).toBeUndefined();
    expect(session.inFlight).toBe(3);
    session.receive(bytes(ok(2)));
    expect(sendAll(session, [4])).toEqual(["5 syslog 7 <13>m 4\n"]);
  });

  test("an early answer waits for the older ones, so acknowledgements stay in order", () => {
    const session = opened();
    sendAll(session, [1, 2, 3]);
    expect(session.receive(bytes(ok(4) + ok(3)))).toEqual([]);
    expect(acknowledged(session.receive(bytes(ok(2))))).toEqual([1, 2, 3]);
  });

  test("after a lost connection the unacknowledged messages are sent again, renumbered after the new open", () => {
    const session = opened();
    sendAll(session, [1, 2, 3, 4]);
    session.receive(bytes(ok(2) + ok(4))); // 1 acknowledged; 3 answered early, so it is not sent again
    session.lost();
    expect(session.send(bytes("x"), 5)).toBeUndefined();
    expect(session.unacknowledged()).toEqual([2, 4]);
    expect(text(session.open())).toStartWith("1 open ");
    const [event] = session.receive(bytes(OPEN_ANSWER));
    expect(event?.type === "opened" && text(event.resend)).toBe("2 syslog 7 <13>m 2\n3 syslog 7 <13>m 4\n");
    expect(acknowledged(session.receive(bytes(ok(2) + ok(3))))).toEqual([2, 3, 4]);
    expect(text(session.send(bytes("<13>m 5"), 5))).toBe("4 syslog 7 <13>m 5\n");
  });

  test("answers that belong to the old connection are not taken on the new one", () => {
    const session = opened();
    sendAll(session, [1]);
    session.open();
    const events = session.receive(bytes(ok(2)));
    expect(events).toEqual([{ type: "error", reason: "unexpected RELP command from the daemon: 2 rsp" }]);
    expect(session.unacknowledged()).toEqual([1]);
  });

  test("a refused message is an error and stays unacknowledged", () => {
    const session = opened();
    sendAll(session, [1, 2]);
    const events = session.receive(bytes(ok(2) + rsp(3, "500 command disabled")));
    const refusal = { type: "error" as const, reason: 'the daemon refused a message: "500 command disabled"' };
    expect(acknowledged(events)).toEqual([1, refusal]);
    expect(session.phase).toBe("down");
    expect(session.unacknowledged()).toEqual([2]);
  });

  test.each([
    ["a refused offer", rsp(1, "500 protocol error: connection already open"), "refused the RELP open offer"],
    ["no syslog command", rsp(1, "200 OK\nrelp_version=0\ncommands="), "does not offer the RELP syslog command"],
    ["another version", rsp(1, "200 OK\nrelp_version=1\ncommands=syslog"), "offers RELP version 1, not 0"],
    ["no version", rsp(1, "200 OK\ncommands=syslog"), "offers RELP version none, not 0"],
  ])("an open answer with %s is an error", (_, answer, reason) => {
    const session = new RelpSession<number>();
    session.open();
    const events = session.receive(bytes(answer));
    expect(events).toHaveLength(1);
    expect(events[0]?.type === "error" && events[0].reason).toContain(reason);
    expect(session.phase).toBe("down");
  });

  test("close is answered with an empty rsp; then the session is closed and reads no more", () => {
    const session = opened();
    sendAll(session, [1]);
    expect(text(session.close())).toBe("3 close 0\n");
    expect(session.send(bytes("x"), 2)).toBeUndefined();
    const events = session.receive(bytes(`${ok(2)}3 rsp 0\n0 serverclose 0\n`));
    expect(acknowledged(events)).toEqual([1, { type: "closed", reason: "the RELP session was closed" }]);
    expect(session.receive(bytes("garbage"))).toEqual([]);
  });

  test("a session renews itself with close at its last txnr, and starts again from 1", () => {
    const session = opened({ window: 2, lastTxnr: 5 });
    expect(sendAll(session, [1, 2])).toEqual(["2 syslog 7 <13>m 1\n", "3 syslog 7 <13>m 2\n"]);
    session.receive(bytes(ok(2)));
    expect(sendAll(session, [3])).toEqual(["4 syslog 7 <13>m 3\n5 close 0\n"]);
    expect(session.phase).toBe("closing");
    expect(sendAll(session, [4])).toEqual([undefined]);
    const events = session.receive(bytes(`${ok(3)}${ok(4)}5 rsp 0\n`));
    expect(acknowledged(events)).toEqual([2, 3, { type: "closed", reason: "the RELP session was closed" }]);
    expect(text(session.open())).toStartWith("1 open ");
  });

  test.each([
    ["a frame that starts with a letter", "x rsp 6 200 OK\n"],
    ["a txnr of ten digits", "1234567890 rsp 6 200 OK\n"],
    ["a command of 33 letters", `2 ${"r".repeat(33)} 6 200 OK\n`],
    ["no LF after the data", "2 rsp 6 200 OKX"],
    ["a space after a zero length", "2 rsp 0 \n"],
    ["an answer to nothing sent", "7 rsp 6 200 OK\n"],
    ["a command other than rsp", "2 syslog 6 200 OK\n"],
    ["a txnr 0 other than serverclose", "0 abort 0\n"],
    ["an answer with no status", rsp(2, "OK")],
    ["an answer with a status other than 200", rsp(2, "201 OK")],
  ])("%s is an error, never an exception", (_, answer) => {
    const session = opened();
    sendAll(session, [1]);
    const events = session.receive(bytes(answer));
    expect(events.map((event) => event.type)).toEqual(["error"]);
    expect(session.unacknowledged()).toEqual([1]);
  });

  test("an answer longer than the limit is refused from its header, before its data arrives", () => {
    const session = opened();
    sendAll(session, [1]);
    const events = session.receive(bytes(`2 rsp ${MAX_RELP_RESPONSE + 1} `));
    const reason = `RELP answer of ${MAX_RELP_RESPONSE + 1} bytes, over ${MAX_RELP_RESPONSE}`;
    expect(events).toEqual([{ type: "error", reason }]);
    expect(session.buffered).toBe(0);
  });

  test("whatever the daemon sends, the session neither throws nor holds more than one frame", () => {
    const frameish = fc.oneof(
      fc.constantFrom(ok(2), ok(3), "0 serverclose 0\n", "3 rsp 0\n", `2 rsp ${MAX_RELP_RESPONSE} `),
      fc.string({ unit: "binary-ascii", maxLength: 80 }),
    );
    fc.assert(
      fc.property(fc.array(frameish, { maxLength: 20 }), (parts) => {
        const session = opened();
        sendAll(session, [1, 2]);
        for (const part of parts) {
          session.receive(bytes(part));
          expect(session.buffered).toBeLessThanOrEqual(53 + MAX_RELP_RESPONSE + 1);
        }
        expect(session.unacknowledged().length + session.inFlight).toBeLessThanOrEqual(4);
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 1000) }, // `npm run fuzz` runs many more
    );
  });

  test("a daemon that answers nothing for the timeout is given up on; any answer restarts the clock", () => {
    const session = opened({ timeout: 1000 });
    expect(session.overdue(0)).toBeUndefined(); // nothing awaited
    sendAll(session, [1, 2]);
    expect(session.overdue(5000)).toBeUndefined();
    expect(session.overdue(5999)).toBeUndefined();
    session.receive(bytes(ok(2)));
    expect(session.overdue(6500)).toBeUndefined();
    expect(session.overdue(7499)).toBeUndefined();
    expect(session.overdue(7500)).toBe("no answer from the RELP daemon in 1 s");
    expect(session.phase).toBe("down");
    expect(session.unacknowledged()).toEqual([2]);
  });

  test("options out of range are refused when the session is made", () => {
    expect(() => new RelpSession({ window: 0 })).toThrow("window");
    expect(() => new RelpSession({ software: "a\nb" })).toThrow("software");
    expect(() => new RelpSession({ window: 10, lastTxnr: 12 })).toThrow("lastTxnr must be 13 to 999999999");
    expect(() => new RelpSession({ lastTxnr: 1_000_000_000 })).toThrow("lastTxnr");
  });
});
