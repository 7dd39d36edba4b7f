// A RELP client session, sans I/O: rsyslog's Reliable Event Logging Protocol as librelp and
// rsyslog's imrelp speak it (doc/relp.md and src/relpsess.c in rsyslog/librelp). The daemon
// answers every message, so a caller moves its resume point only on an acknowledgement, and
// whatever was in flight when a connection broke is sent again on the next one: a duplicate at
// worst, never a loss. The caller moves the bytes; this class only says what to write and what
// the answers meant.
//
// A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. Each connection starts with `open` as
// txnr 1 and counts up by one; imrelp ends the session on any other number, and it cannot read
// the txnr after 999,999,999 (ten digits) either, although the spec wraps to 1 there. So a
// session renews itself instead: it sends `close` as txnr 999,999,999, and the caller reconnects.

/** What the session makes of the daemon's bytes, in the order they happened. */
export type RelpEvent<Tag> =
  /** The daemon took the open offer. Write `resend` (the messages a broken connection left unacknowledged) first. */
  | { type: "opened"; resend: Uint8Array }
  /** The daemon has this message. Acknowledgements come in the order the messages were sent. */
  | { type: "acknowledged"; tag: Tag }
  /** The daemon ended the session (its `serverclose`, or the answer to `close`): drop the connection. */
  | { type: "closed"; reason: string }
  /** The daemon broke the protocol or refused a message: drop the connection and reconnect. */
  | { type: "error"; reason: string };

export interface RelpOptions {
  /** Messages sent and not yet acknowledged, at most. @default 128 (librelp's default) */
  window?: number;
  /** How this client names itself in its open offer (`relp_software`). @default "slp" */
  software?: string;
  /** Milliseconds a command may wait for an answer before `overdue` gives up. @default 90_000 (librelp's) */
  timeout?: number;
  /** The txnr of the `close` that renews a session; lower only to test renewal. @default 999_999_999 */
  lastTxnr?: number;
}

/** The longest answer accepted: an open answer with its offers is about 100 bytes, the rest 6. */
export const MAX_RELP_RESPONSE = 4096;
const MAX_TXNR = 999_999_999;
/** The longest header, `999999999 <32 letters> 999999999` and the byte after it. */
const MAX_HEADER = 9 + 1 + 32 + 1 + 9 + 1;
const LF = 0x0a;

type Entry<Tag> = { message: Uint8Array; tag: Tag; acknowledged: boolean };

/**
 * @example
 * const session = new RelpSession<number>();
 * write(session.open()); // "1 open 48 relp_version=0\nrelp_software=slp\ncommands=syslog\n"
 * session.receive(answer); // [{ type: "opened", resend: <empty> }]
 * write(session.send(Buffer.from("<13>hi"), 1)!); // "2 syslog 6 <13>hi\n"
 * session.receive(Buffer.from("2 rsp 6 200 OK\n")); // [{ type: "acknowledged", tag: 1 }]
 */
export class RelpSession<Tag> {
  #phase: "down" | "opening" | "open" | "closing" = "down";
  #window: number;
  #software: string;
  #timeout: number;
  #lastTxnr: number;
  /** Messages sent and not yet acknowledged, oldest first; an early acknowledgement waits here for the older ones. */
  #inFlight: Entry<Tag>[] = [];
  /** What each txnr of this connection still waiting for its answer carried. */
  #awaiting = new Map<number, Entry<Tag> | "open" | "close">();
  #nextTxnr = 1;
  #received: Buffer = Buffer.alloc(0);
  /** Frames read on this connection, and when `overdue` first saw that count with answers owed. */
  #answers = 0;
  #stall: { answers: number; since: number } | undefined;

  constructor(options: RelpOptions = {}) {
    this.#window = options.window ?? 128;
    this.#software = options.software ?? "slp";
    this.#timeout = options.timeout ?? 90_000;
    this.#lastTxnr = options.lastTxnr ?? MAX_TXNR;
    if (!Number.isInteger(this.#window) || this.#window < 1) throw new RangeError("RELP window must be 1 or more");
    if (!/^[\x21-\x7e]{1,255}$/.test(this.#software)) throw new RangeError("RELP software name: 1-255 printable ASCII");
    // A reconnect resends up to a window of messages from txnr 2 on; they must fit before the renewing close.
    if (!Number.isInteger(this.#lastTxnr) || this.#lastTxnr < this.#window + 3 || this.#lastTxnr > MAX_TXNR) {
      throw new RangeError(`RELP lastTxnr must be ${this.#window + 3} to ${MAX_TXNR}`);
    }
  }

  /** down: no usable connection; opening: `open` sent; open: messages flow; closing: `close` sent. */
  get phase(): "down" | "opening" | "open" | "closing" {
    return this.#phase;
  }

  /** Messages sent and not yet acknowledged; a full window (`inFlight === window`) refuses more. */
  get inFlight(): number {
    return this.#inFlight.length;
  }

  /** Bytes held of a frame partly received: never more than the longest header and answer. */
  get buffered(): number {
    return this.#received.length;
  }

  /** The tags of the messages not yet acknowledged, oldest first: what a reconnect sends again. */
  unacknowledged(): Tag[] {
    return this.#inFlight.filter((entry) => !entry.acknowledged).map((entry) => entry.tag);
  }

  /** Starts the session on a new connection: the `open` command to write. Answers owed on an old one are void. */
  open(): Uint8Array {
    this.#reset("opening");
    const offers = `relp_version=0\nrelp_software=${this.#software}\ncommands=syslog`;
    return this.#command("open", Buffer.from(offers), "open");
  }

  /** The connection is gone (closed, reset, timed out): what was in flight waits for the next `open`. */
  lost(): void {
    this.#reset("down");
  }

  /**
   * The frame to write for one message, or undefined while the session is not open or the window
   * is full. The frame that uses the last txnr but one carries the session's renewing `close` too.
   */
  send(message: Uint8Array, tag: Tag): Uint8Array | undefined {
    if (this.phase !== "open" || this.#inFlight.length >= this.#window) return undefined;
    if (message.length > 128 * 1024) throw new RangeError("RELP message over 128 KiB, imrelp's default limit");
    const entry = { message, tag, acknowledged: false };
    this.#inFlight.push(entry);
    const frame = this.#command("syslog", message, entry);
    if (this.#nextTxnr < this.#lastTxnr) return frame;
    return Buffer.concat([frame, this.close()]);
  }

  /** The `close` command that ends the session once every message before it is answered; empty if not open. */
  close(): Uint8Array {
    if (this.phase !== "open") return new Uint8Array(0);
    this.#phase = "closing";
    return this.#command("close", new Uint8Array(0), "close");
  }

  /** Reads the daemon's bytes. After a `closed` or `error` event the rest is ignored until the next `open`. */
  receive(chunk: Uint8Array): RelpEvent<Tag>[] {
    const events: RelpEvent<Tag>[] = [];
    if (this.phase === "down") return events;
    this.#received = this.#received.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#received, chunk]);
    // An event that ends the session also empties what was received, so the loop stops there.
    for (;;) {
      const frame = this.#nextFrame();
      if (frame === undefined) break;
      if (typeof frame === "string") {
        events.push(this.#end("error", frame));
      } else {
        this.#answers++;
        events.push(...this.#answer(frame.txnr, frame.command, frame.data));
      }
    }
    return events;
  }

  /**
   * Why to give up on this connection, when a command has waited `timeout` ms with no answer from
   * the daemon at all; undefined otherwise. Call it now and then with the current time in ms.
   */
  overdue(now: number): string | undefined {
    if (this.phase === "down" || this.#awaiting.size === 0) {
      this.#stall = undefined;
    } else if (this.#stall?.answers !== this.#answers) {
      this.#stall = { answers: this.#answers, since: now };
    }
    if (this.#stall === undefined || now - this.#stall.since < this.#timeout) return undefined;
    this.lost();
    return `no answer from the RELP daemon in ${this.#timeout / 1000} s`;
  }

  #reset(phase: RelpSession<Tag>["phase"]): void {
    this.#phase = phase;
    this.#awaiting.clear();
    this.#nextTxnr = 1;
    this.#received = Buffer.alloc(0);
    this.#answers = 0;
    this.#stall = undefined;
  }

  #command(command: string, data: Uint8Array, awaits: Entry<Tag> | "open" | "close"): Buffer {
    const txnr = this.#nextTxnr++;
    this.#awaiting.set(txnr, awaits);
    const header = data.length > 0 ? `${txnr} ${command} ${data.length} ` : `${txnr} ${command} 0`;
    const frame = Buffer.allocUnsafe(header.length + data.length + 1);
    frame.write(header, 0, "latin1");
    frame.set(data, header.length);
    frame[frame.length - 1] = LF;
    return frame;
  }

  /** The next whole frame received, undefined until one is complete, or why the bytes are not RELP. */
  #nextFrame(): { txnr: number; command: string; data: Buffer } | string | undefined {
    const received = this.#received;
    if (received.length === 0) return undefined;
    const head = received.toString("latin1", 0, Math.min(received.length, MAX_HEADER));
    const header = /^(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])/.exec(head);
    if (!header) {
      // The start of a header waits for the rest; it can be at most MAX_HEADER - 1 bytes long, so this ends.
      if (/^\d{1,9}( [A-Za-z]{0,32}( \d{0,9})?)?$/.test(head)) return undefined;
      return `malformed RELP frame from the daemon: ${JSON.stringify(head.slice(0, 20))}`;
    }
    const length = Number(header[3]);
    if (length > MAX_RELP_RESPONSE) return `RELP answer of ${length} bytes, over ${MAX_RELP_RESPONSE}`;
    if ((length === 0) !== (header[4] === "\n")) return `malformed RELP frame from the daemon: ${JSON.stringify(head)}`;
    const start = header[0].length;
    const end = length === 0 ? start : start + length + 1;
    if (received.length < end) return undefined;
    if (length > 0 && received[end - 1] !== LF) return "RELP frame from the daemon does not end in LF";
    this.#received = received.subarray(end);
    return { txnr: Number(header[1]), command: header[2]!, data: received.subarray(start, start + length) };
  }

  /** The events one answer makes: acknowledgements, `opened`, or the end of the session. */
  #answer(txnr: number, command: string, data: Buffer): RelpEvent<Tag>[] {
    if (command === "serverclose" && txnr === 0) return [this.#end("closed", "the daemon closed the RELP session")];
    const awaits = this.#awaiting.get(txnr);
    if (command !== "rsp" || awaits === undefined) {
      return [this.#end("error", `unexpected RELP command from the daemon: ${txnr} ${command}`)];
    }
    this.#awaiting.delete(txnr);
    if (awaits === "close") return [this.#end("closed", "the RELP session was closed")];
    const text = data.toString("latin1");
    const status = /^(\d{3})(?: [^\n]*)?(?:\n|$)/.exec(text);
    if (status?.[1] !== "200") {
      const what = awaits === "open" ? "the RELP open offer" : "a message";
      const answer = JSON.stringify(text.split("\n")[0]!.slice(0, 80));
      return [this.#end("error", `the daemon refused ${what}: ${answer}`)];
    }
    if (awaits === "open") return [this.#opened(text.slice(status[0].length))];
    awaits.acknowledged = true;
    const acknowledged: RelpEvent<Tag>[] = [];
    while (this.#inFlight[0]?.acknowledged)
      acknowledged.push({ type: "acknowledged", tag: this.#inFlight.shift()!.tag });
    return acknowledged;
  }

  /** Checks the daemon's offers (`relp_version`, `commands`), then resends what a broken connection left. */
  #opened(offerText: string): RelpEvent<Tag> {
    const offers = new Map(offerText.split("\n").map((line) => [line.split("=")[0]!, line.split("=")[1]]));
    const version = offers.get("relp_version");
    if (version !== "0") return this.#end("error", `the daemon offers RELP version ${version ?? "none"}, not 0`);
    if (!offers.get("commands")?.split(",").includes("syslog")) {
      return this.#end("error", "the daemon does not offer the RELP syslog command");
    }
    this.#phase = "open";
    const unacknowledged = this.#inFlight.filter((entry) => !entry.acknowledged);
    const resend = unacknowledged.map((entry) => this.#command("syslog", entry.message, entry));
    return { type: "opened", resend: Buffer.concat(resend) };
  }

  /** Ends the session on this connection; the caller drops it. */
  #end(type: "closed" | "error", reason: string): RelpEvent<Tag> {
    this.lost();
    return { type, reason };
  }
}
