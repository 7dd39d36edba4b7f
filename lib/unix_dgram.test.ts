// Tests of the Unix datagram sender against a real socket: a Python reader (test/unix_dgram_sink.py),
// since Bun cannot read one either. The real daemons are in test/forward.test.ts.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { Child, ROOT, removeDir, tempDir, until } from "../test/kit.ts";
import { reason } from "./log.ts";
import { DATAGRAM_OVERHEAD, surelyRead, UnixDatagramConnection, UnixDatagramSender } from "./unix_dgram.ts";

let dir = "";
const started: (Child | UnixDatagramSender | UnixDatagramConnection)[] = [];
beforeAll(() => {
  dir = tempDir();
});
afterEach(() => {
  for (const thing of started.splice(0)) thing instanceof Child ? thing.kill("SIGKILL") : thing.close();
});
afterAll(() => removeDir(dir));

/** A reader bound to `name` in the test folder; `datagrams()` are what it has received so far. */
async function sink(name: string, hold = false) {
  const path = join(dir, name);
  const child = new Child(
    ["python3", join(ROOT, "test/unix_dgram_sink.py"), path, ...(hold ? ["--hold"] : [])],
    {},
    "pipe",
  );
  started.push(child);
  await until("the reader to bind", () => child.stdout.toString().startsWith("ready\n"));
  const lines = () => child.stdout.toString().split("\n").slice(1, -1);
  const datagrams = () => lines().map((line) => Buffer.from(line, "hex"));
  const read = () => {
    child.proc.stdin!.write("read now\n");
    child.proc.stdin!.flush();
  };
  return { path, child, lines, datagrams, read };
}

function sender(path: string): UnixDatagramSender {
  const created = new UnixDatagramSender(path);
  started.push(created);
  return created;
}

/** What `send` threw, as the caller would log it. */
function failure(send: () => unknown): string {
  try {
    send();
  } catch (error) {
    return reason(error);
  }
  return "nothing thrown";
}

describe("UnixDatagramSender", () => {
  test("each message arrives as one datagram, byte for byte: line breaks, NUL, empty, 65,507 bytes", async () => {
    const reader = await sink("bytes.sock");
    const messages = [
      Buffer.from("<13>app: two\nlines"),
      Buffer.alloc(0),
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.alloc(65507, 0x41),
    ];
    const log = sender(reader.path);
    expect(messages.map((message) => log.send(message))).toEqual(["sent", "sent", "sent", "sent"]);
    await until("4 datagrams", () => reader.datagrams().length === 4);
    expect(reader.datagrams()).toEqual(messages);
  });

  test("a reader that falls behind makes send say full, and nothing sent is lost", async () => {
    const reader = await sink("held.sock", true);
    const log = sender(reader.path);
    const sent: string[] = [];
    while (sent.length < 100_000 && log.send(Buffer.from(`m ${sent.length}`)) === "sent") sent.push(`m ${sent.length}`);
    expect(sent.length).toBeLessThan(100_000);
    reader.read();
    const refused = Buffer.from(`m ${sent.length}`);
    await until("room in the reader's queue", () => log.send(refused) === "sent");
    sent.push(refused.toString());
    await until(
      () => `${sent.length} datagrams`,
      () => reader.datagrams().length === sent.length,
    );
    expect(reader.datagrams().map(String)).toEqual(sent);
  });

  test("no socket at the path is an error naming it, ENOENT", () => {
    const path = join(dir, "absent.sock");
    expect(failure(() => sender(path).send(Buffer.from("x")))).toBe(`${path}: No such file or directory (ENOENT)`);
  });

  test("a reader gone is ECONNREFUSED; a new one at the same path is found without reopening", async () => {
    const first = await sink("restart.sock");
    const log = sender(first.path);
    expect(log.send(Buffer.from("one"))).toBe("sent");
    first.child.kill("SIGKILL");
    await first.child.proc.exited;
    expect(existsSync(first.path)).toBe(true);
    expect(failure(() => log.send(Buffer.from("lost")))).toBe(`${first.path}: Connection refused (ECONNREFUSED)`);
    rmSync(first.path); // what a daemon does before it binds its socket again
    const second = await sink("restart.sock");
    expect(log.send(Buffer.from("two"))).toBe("sent");
    await until("the datagram", () => second.datagrams().length === 1);
    expect(second.datagrams().map(String)).toEqual(["two"]);
  });

  test("a datagram larger than the socket can carry is EMSGSIZE, not a truncation", async () => {
    const reader = await sink("large.sock");
    const log = sender(reader.path);
    expect(failure(() => log.send(Buffer.alloc(1 << 20)))).toBe(`${reader.path}: Message too long (EMSGSIZE)`);
    expect(log.send(Buffer.from("after"))).toBe("sent");
  });

  test("a path too long for a socket address is refused when the sender is made; a closed one sends nothing", () => {
    expect(() => new UnixDatagramSender(`/${"a".repeat(107)}`)).toThrow(RangeError);
    const log = new UnixDatagramSender(join(dir, "closed.sock"));
    log.close();
    expect(failure(() => log.send(Buffer.from("x")))).toBe(`${join(dir, "closed.sock")}: socket closed`);
  });
});

function connection(path: string, options?: { sendBuffer?: number }): UnixDatagramConnection {
  const created = new UnixDatagramConnection(path, options);
  started.push(created);
  return created;
}

/** Datagrams until the reader's queue is full. */
function fill(socket: UnixDatagramConnection): string[] {
  const sent: string[] = [];
  while (sent.length < 100_000 && socket.send(Buffer.from(`m ${sent.length}`)) === "sent")
    sent.push(`m ${sent.length}`);
  expect(sent.length).toBeLessThan(100_000);
  return sent;
}

describe("UnixDatagramConnection", () => {
  test("each datagram arrives whole, and unread counts what the reader has not read until it has", async () => {
    const reader = await sink("connected.sock", true);
    const socket = connection(reader.path);
    socket.connect();
    const messages = [Buffer.from("one\ntwo"), Buffer.from(Array.from({ length: 256 }, (_, i) => i))];
    expect(messages.map((message) => socket.send(message))).toEqual(["sent", "sent"]);
    expect(socket.unread()).toBeGreaterThan(0);
    reader.read();
    await until("the reader to read both", () => reader.datagrams().length === 2);
    expect(reader.datagrams()).toEqual(messages);
    expect(socket.unread()).toBe(0);
  });

  test("a full queue: send says full, and waitWritable waits for the reader to make room", async () => {
    const reader = await sink("full.sock", true);
    const socket = connection(reader.path);
    socket.connect();
    const sent = fill(socket);
    expect(socket.waitWritable(0)).toBe(false);
    reader.read();
    expect(socket.waitWritable(5000)).toBe(true);
    expect(socket.send(Buffer.from("after"))).toBe("sent");
    await until("every datagram", () => reader.datagrams().length === sent.length + 1);
    expect(reader.datagrams().map(String)).toEqual([...sent, "after"]);
  });

  test("a reader gone takes what it had not read, so unread is 0; then an empty datagram is ECONNREFUSED", async () => {
    const reader = await sink("gone.sock", true);
    const socket = connection(reader.path);
    socket.connect();
    fill(socket);
    expect(socket.unread()).toBeGreaterThan(0);
    reader.child.kill("SIGKILL");
    await reader.child.proc.exited;
    expect(socket.unread()).toBe(0);
    expect(failure(() => socket.send(new Uint8Array(0)))).toBe(`${reader.path}: Connection refused (ECONNREFUSED)`);
  });

  test("connect: no socket is ENOENT, a socket nobody reads is ECONNREFUSED, and a new reader is found", async () => {
    const path = join(dir, "later.sock");
    const socket = connection(path);
    expect(failure(() => socket.connect())).toBe(`${path}: No such file or directory (ENOENT)`);
    expect(socket.connected).toBe(false);
    const first = await sink("later.sock");
    first.child.kill("SIGKILL");
    await first.child.proc.exited;
    expect(failure(() => socket.connect())).toBe(`${path}: Connection refused (ECONNREFUSED)`);
    rmSync(path);
    const second = await sink("later.sock");
    socket.connect();
    expect(socket.send(Buffer.from("found"))).toBe("sent");
    await until("the datagram", () => second.datagrams().length === 1);
  });

  test("a datagram over the send buffer is EMSGSIZE; sent sealed, the reader gets a memfd, four seals", async () => {
    const reader = await sink("sealed.sock");
    const socket = connection(reader.path, { sendBuffer: 8192 });
    socket.connect();
    const large = Buffer.alloc(65_536, 0x61);
    large.write("MESSAGE\n", 0);
    expect(failure(() => socket.send(large))).toBe(`${reader.path}: Message too long (EMSGSIZE)`);
    expect(socket.sendSealed(large)).toBe("sent");
    await until("the descriptor", () => reader.lines().length === 1);
    // F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
    expect(reader.lines()[0]).toBe(`fd 15 ${large.toString("hex")}`);
  });

  test(`unread charges a datagram its size and ${DATAGRAM_OVERHEAD} bytes at least, as surelyRead does`, async () => {
    const reader = await sink("charged.sock", true);
    const socket = connection(reader.path);
    socket.connect();
    let before = socket.unread();
    for (const size of [0, 1, 100, 190, 1000, 3800, 20_000, 65_507, 150_000]) {
      expect(socket.send(Buffer.alloc(size))).toBe("sent");
      const charged = socket.unread() - before;
      expect(charged).toBeGreaterThanOrEqual(size + DATAGRAM_OVERHEAD);
      before += charged;
    }
  });

  test("a closed or never connected socket sends nothing", () => {
    const socket = connection(join(dir, "never.sock"));
    expect(failure(() => socket.send(Buffer.from("x")))).toBe(`${join(dir, "never.sock")}: not connected`);
  });
});

describe("surelyRead", () => {
  const sizes = (...values: number[]) => values;
  test("nothing unread: every datagram was read", () => {
    expect(surelyRead(sizes(10, 20, 30), 0)).toBe(3);
    expect(surelyRead(sizes(), 0)).toBe(0);
  });

  test("the newest datagrams that can make up what is unread are not counted as read", () => {
    const one = 100 + DATAGRAM_OVERHEAD;
    expect(surelyRead(sizes(100, 100, 100), 1)).toBe(2);
    expect(surelyRead(sizes(100, 100, 100), one)).toBe(2);
    expect(surelyRead(sizes(100, 100, 100), one + 1)).toBe(1);
    expect(surelyRead(sizes(100, 100, 100), 3 * one + 1)).toBe(0);
    expect(surelyRead(sizes(100, 60_000), 768)).toBe(1);
    expect(surelyRead(sizes(60_000, 100), 768)).toBe(0);
  });

  test("for any sizes and any unread suffix charged at least so, the count never passes an unread datagram", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 70_000 }), { maxLength: 40 }),
        fc.nat(),
        fc.array(fc.nat({ max: 4096 }), { maxLength: 40 }),
        (sent, unreadCount, extra) => {
          const unread = Math.min(unreadCount, sent.length);
          // The kernel's charge: each size, the overhead and whatever more it takes.
          const charged = sent
            .slice(sent.length - unread)
            .reduce((sum, size, i) => sum + size + DATAGRAM_OVERHEAD + (extra[i] ?? 0), 0);
          expect(surelyRead(sent, charged)).toBeLessThanOrEqual(sent.length - unread);
        },
      ),
    );
  });
});
