// --input relp://HOST:PORT: a RELP server for rsyslog's omrelp (lib/relp_server.ts has the
// protocol). A message is acknowledged only once the intake says it is stored, and in the order
// the daemon sent them; while the intake has no room nothing is read, and the daemon keeps what it
// has not had acknowledged (its window, then its queue). When a connection ends, whatever was read
// and not acknowledged is dropped here, since the daemon sends it again: a duplicate at worst.

import {
  Fifo,
  MAX_MESSAGE,
  openAnswer,
  RELP_SERVERCLOSE,
  type RelpRequest,
  RelpServerSession,
  relpAnswer,
} from "../../lib.ts";
import type { Intake } from "../intake.ts";
import { Handoff, type RoomLine } from "./input.ts";
import { type Link, type Session, StreamInput, type StreamOptions } from "./stream.ts";

/**
 * Bytes of answers the daemon has not taken that stop the reading of its requests: about 3,000
 * acknowledgements, past any window a daemon uses; a peer that never reads its answers cannot
 * make slps hold more.
 */
const MAX_UNSENT_ANSWERS = 64 * 1024;

/** An answer owed, in the order of the requests; `ready` once it may go. */
type Answer = { bytes: Uint8Array; ready: boolean; last: boolean };

export class RelpInput extends StreamInput {
  /** How slps names itself in its answer to `open`. */
  readonly #software: string;

  constructor(address: { kind: "relp"; host: string; port: number }, options: StreamOptions & { software: string }) {
    super(address, options);
    this.#software = options.software;
  }

  protected get unit(): string {
    return "messages";
  }

  protected session(link: Link): Session {
    return new RelpConnection(link, {
      software: this.#software,
      intake: this.intake,
      room: this.room,
      take: (message) => this.take(message),
      skipOversize: () => this.skipOversize(),
      refused: (why) => this.note("refused a RELP session", `${link.remote}: ${why}`),
      cut: (why) => this.cut(link, why),
    });
  }
}

/** What a connection needs of its input. */
interface ConnectionOptions {
  software: string;
  intake: Intake;
  /** Where a connection waits for room in the intake. */
  room: RoomLine;
  /** Hands a message on and counts it: its sequence number, or undefined when it was skipped. */
  take(message: Uint8Array): number | undefined;
  /** Counts a message over MAX_MESSAGE that was read through. */
  skipOversize(): void;
  /** Says why a session was refused at its open. */
  refused(why: string): void;
  /** Closes the connection at once, and says why. */
  cut(why: string): void;
}

/** One RELP connection: its requests handed on in order, and its answers written in the same order. */
class RelpConnection implements Session {
  readonly #link: Link;
  readonly #input: ConnectionOptions;
  readonly #session = new RelpServerSession({ max: MAX_MESSAGE });
  readonly #requests: Handoff<RelpRequest>;
  readonly #answers = new Fifo<Answer>();
  #read = 0;
  #closing = false;
  #failed = false;

  constructor(link: Link, input: ConnectionOptions) {
    this.#link = link;
    this.#input = input;
    this.#requests = new Handoff<RelpRequest>(
      input.room,
      (request) => this.#hand(request),
      (request) => "message" in request,
      () => this.#flow(),
    );
  }

  read(chunk: Uint8Array): void {
    this.#requests.offer(this.#session.requests(chunk));
  }

  get owing(): string | undefined {
    if (this.#closing) return "the close of the connection";
    if (!this.#session.opened) return "RELP's open";
    return this.#session.midFrame ? "the rest of a frame" : undefined;
  }

  get frames(): number {
    return this.#read;
  }

  /** Nothing, once closed: what was not acknowledged the daemon sends again. */
  get holding(): boolean {
    return this.#requests.waiting;
  }

  ended(): void {
    this.#requests.drop();
  }

  drained(): void {
    this.#flow();
  }

  farewell(): void {
    this.#link.write(RELP_SERVERCLOSE);
  }

  #hand(request: RelpRequest): void {
    this.#read++;
    const { txnr } = request;
    if (request.command === "open") {
      const { text, refused } = openAnswer(request.offers, this.#input.software);
      if (refused) this.#input.refused(refused);
      this.#answers.push({ bytes: relpAnswer(txnr, text), ready: true, last: refused !== undefined });
    } else if (request.command === "close") {
      this.#answers.push({ bytes: relpAnswer(txnr, ""), ready: true, last: true });
    } else {
      const answer = { bytes: relpAnswer(txnr, "200 OK"), ready: false, last: false };
      this.#answers.push(answer);
      const seq = "message" in request ? this.#input.take(request.message) : this.#input.skipOversize();
      // A message skipped (empty, or too long) is answered all the same: refused, the daemon would
      // send it again on a new session for ever. It is counted and said, as over UDP.
      if (seq === undefined) answer.ready = true;
      else
        this.#input.intake.whenStored(seq, () => {
          answer.ready = true;
          this.#answer();
        });
    }
    this.#answer();
  }

  /** Writes the answers that may go, in order: one not stored yet holds back those after it. */
  #answer(): void {
    while (this.#answers.at(0)?.ready) {
      const { bytes, last } = this.#answers.shift()!;
      this.#link.write(bytes);
      if (last) {
        this.#closing = true;
        this.#requests.drop();
        this.#link.end();
        return;
      }
    }
    this.#flow();
  }

  /** Reads on while the intake has room and the daemon takes its answers. */
  #flow(): void {
    // Requests are read as they are handed on: a malformed one may be found only once there is room.
    const error = this.#session.error;
    if (error === undefined) this.#link.reading(!this.#requests.waiting && this.#link.unsent < MAX_UNSENT_ANSWERS);
    else if (!this.#failed) {
      this.#failed = true;
      this.#input.cut(error);
    }
  }
}
