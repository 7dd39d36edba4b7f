// --forward tcp://HOST:PORT: octet-counted frames (RFC 6587), a batch to a write. A message is
// confirmed once the kernel took all of its frame. TCP says nothing more: what the kernels' and
// the daemon's buffers hold when the daemon dies is lost (docs/setup.md). A frame cut by a break
// goes again whole on the next connection.

import { type Address, encodeFrame } from "../../lib.ts";
import { DaemonLink } from "./daemon_link.ts";
import { Output, type OutputOptions } from "./output.ts";

/**
 * Frames in one write at most, and about the bytes: what one read from a server carries (up to
 * 64 KiB, over 300 frames of 200 bytes) goes to the daemon in one system call.
 */
const SEND_BATCH = 1024;
const SEND_BYTES = 256 * 1024;

export class TcpOutput<S> extends Output<S> {
  readonly #link: DaemonLink;
  /** The socket did not take all of the last write; `drain` clears it. */
  #socketFull = false;
  /** Bytes of the frame of the first message in line that this connection took. */
  #frameTaken = 0;

  constructor(options: OutputOptions<S>, to: Address, stopping: () => boolean) {
    super(options);
    this.#link = new DaemonLink(
      to,
      {
        opened: () => {
          [this.#socketFull, this.#frameTaken] = [false, 0];
          this.up();
          this.send();
        },
        data: () => {}, // a syslog daemon says nothing over TCP
        drained: () => {
          this.#socketFull = false;
          this.send();
        },
        lost: (error, stayedUp) => {
          this.#frameTaken = 0; // a frame cut here goes again whole on the next connection
          if (stayedUp) this.recovered();
          this.failed(error);
          this.changed();
        },
      },
      stopping,
    );
    this.#link.dial();
  }

  override get full(): boolean {
    return this.failing || this.#socketFull;
  }

  override close(): void {
    super.close();
    this.#link.close();
  }

  unconfirmed(count: number, seconds: number): string {
    return `${this.name} did not take ${count} messages within ${seconds} s; --state records only what it took`;
  }

  protected sendWaiting(): void {
    const socket = this.#link.socket;
    while (socket && !this.#socketFull) {
      const waiting = this.ledger.next(SEND_BATCH);
      if (waiting.length === 0) return;
      // A frame begun on this connection goes on without waiting for --forward-rate again.
      const begun = this.#frameTaken > 0 ? 1 : 0;
      const frames: Uint8Array[] = [];
      for (let size = 0; frames.length < waiting.length && (frames.length === 0 || size < SEND_BYTES); ) {
        frames.push(encodeFrame(waiting[frames.length]!.message));
        size += frames.at(-1)!.length;
      }
      const count = begun + (frames.length > begun ? this.allowed(frames.length - begun) : 0);
      if (count === 0) return;
      frames.length = count;
      const bytes = Buffer.concat(frames).subarray(this.#frameTaken);
      const wrote = Math.max(0, socket.write(bytes));
      let taken = this.#frameTaken + wrote;
      let whole = 0;
      while (whole < frames.length && taken >= frames[whole]!.length) taken -= frames[whole++]!.length;
      this.#frameTaken = taken;
      this.ledger.give(whole);
      this.ledger.confirm(whole);
      if (wrote < bytes.length) this.#socketFull = true; // `drain` clears it and calls again
    }
  }
}
