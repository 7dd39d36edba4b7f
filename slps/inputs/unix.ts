// --input unix:PATH: a local datagram socket, as /dev/log is, for rsyslog's omuxsock, syslog-ng's
// unix-dgram() destination or any program that logs to a socket (logger -u PATH). One datagram is
// one message. A Worker reads the socket (slps/inputs/unix_reader.ts says why); while the intake
// has no room it stops, the socket's queue fills (net.unix.max_dgram_qlen datagrams), and then
// the kernel makes each sender wait: a blocking send, as syslog(3) and logger make, blocks until
// there is room; a non-blocking one gets EAGAIN, and its sender decides. Nothing is dropped here.

import { unlinkSync } from "node:fs";
import { bindUnixDatagram, MAX_MESSAGE } from "../../lib.ts";
import { Handoff, Input, type InputOptions } from "./input.ts";
import type { Batch, ReaderStart } from "./unix_reader.ts";

/** Batches the reader may send before the main thread has handed them all on: reading ahead, bounded. */
const BATCHES_AHEAD = 2;

/** One datagram of a batch; the batch's last gives its credit back once handed on. */
type Datagram = { message: Uint8Array; last: boolean } | { oversize: number; last: boolean };

export class UnixInput extends Input {
  readonly #path: string;
  readonly #credits = new Int32Array(new SharedArrayBuffer(4));
  readonly #datagrams: Handoff<Datagram>;
  #fd = -1;

  /** Where the reader's code is (slps/inputs/unix_reader.ts), as the entry point names it: see open.ts. */
  readonly #reader: URL;

  constructor(address: { kind: "unix"; path: string }, options: InputOptions & { reader: URL }) {
    super(address, options);
    this.#path = address.path;
    this.#reader = options.reader;
    this.#datagrams = new Handoff<Datagram>(
      this.room,
      (datagram) => this.#hand(datagram),
      () => true,
      () => {},
    );
  }

  protected get unit(): string {
    return "datagrams";
  }

  async open(): Promise<void> {
    this.#fd = bindUnixDatagram(this.#path);
    Atomics.store(this.#credits, 0, BATCHES_AHEAD);
    const reader = new Worker(this.#reader.href);
    await new Promise<void>((resolve, reject) => {
      reader.onerror = (event) => reject(new Error(`its reader did not start: ${event.message}`));
      reader.onmessage = (event: MessageEvent<"ready" | Batch | { error: string }>) => {
        if (event.data === "ready") return resolve();
        if ("error" in event.data) return this.log(`cannot read the socket any more: ${event.data.error}`);
        this.#datagrams.offer(this.#split(event.data));
      };
      reader.postMessage({ fd: this.#fd, credits: this.#credits } satisfies ReaderStart);
    });
    reader.unref(); // it reads for as long as slps runs, and does not keep it running
  }

  /** Removes the socket, so that senders are refused (ECONNREFUSED, ENOENT) rather than queued for nobody. */
  close(): void {
    if (this.#fd < 0) return;
    try {
      unlinkSync(this.#path);
    } catch {
      // gone already
    }
  }

  *#split({ bytes, lengths }: Batch): Iterable<Datagram> {
    let at = 0;
    for (const [index, length] of lengths.entries()) {
      const last = index === lengths.length - 1;
      if (length > MAX_MESSAGE) yield { oversize: length, last };
      else yield { message: new Uint8Array(bytes, at, length), last };
      if (length <= MAX_MESSAGE) at += length;
    }
  }

  #hand(datagram: Datagram): void {
    if ("message" in datagram) this.take(datagram.message);
    else this.skipOversize();
    if (!datagram.last) return;
    Atomics.add(this.#credits, 0, 1);
    Atomics.notify(this.#credits, 0);
  }
}
