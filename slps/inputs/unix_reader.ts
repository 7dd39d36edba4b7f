// The thread that reads the socket of slps's unix: input. Neither Bun nor node receives unix
// datagrams, and libc's recv through bun:ffi blocks: here it blocks this thread alone. Polling a
// non-blocking socket from the main thread instead would wake it for nothing while the daemon is
// quiet, or add its interval to each message's way. What this thread reads goes to the main
// thread in batches, as many at once as `credits` allow: while the main thread holds them all
// (its intake has no room), this thread reads nothing, and the kernel makes the senders wait.

import { MAX_MESSAGE } from "../../lib/framing.ts";
import { receiveDatagram } from "../../lib/unix_dgram.ts";

/**
 * What the main thread sends, once: the socket, and how many batches it may hold at once (an
 * Int32Array of one). The reader answers `ready`, then sends batches.
 */
export interface ReaderStart {
  fd: number;
  credits: Int32Array;
}

/** One batch: the datagrams' bytes one after the other, and each one's length (over MAX_MESSAGE: not kept). */
export interface Batch {
  bytes: ArrayBuffer;
  lengths: number[];
}

/** Room for this many of the longest datagrams in one batch. */
const BATCH_DATAGRAMS = 8;
/** A datagram one byte over the longest is enough to tell one that is too long. */
const SLOT = MAX_MESSAGE + 1;

declare const self: Worker;

self.onmessage = (event: MessageEvent<ReaderStart>) => {
  const { fd, credits } = event.data;
  const bytes = new ArrayBuffer(BATCH_DATAGRAMS * SLOT);
  self.postMessage("ready");
  try {
    for (;;) {
      while (Atomics.load(credits, 0) <= 0) Atomics.wait(credits, 0, Atomics.load(credits, 0));
      Atomics.sub(credits, 0, 1);
      const lengths: number[] = [];
      let used = 0;
      // The first datagram is waited for; then what is there already joins it, while it fits.
      while (bytes.byteLength - used >= SLOT) {
        const length = receiveDatagram(fd, new Uint8Array(bytes, used, SLOT), lengths.length === 0);
        if (length === undefined) break;
        lengths.push(length);
        if (length <= MAX_MESSAGE) used += length;
      }
      // A copy of what was read: the buffer is read into again at once.
      self.postMessage({ bytes: bytes.slice(0, used), lengths } satisfies Batch);
    }
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
};
