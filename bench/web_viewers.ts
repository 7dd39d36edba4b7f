// Viewers of slpc --web for the bench (bench/web_view.ts): N connections that follow /events as
// Server-Sent Events and read as fast as they can, as a page does, without a browser's own cost.
// Usage: bun bench/web_viewers.ts PORT TOKEN N
// Prints "ready" once every stream has begun. Each line "count" on stdin is answered with one line
// of JSON: the messages each viewer got (its data lines) and the messages slpc said it skipped.

import { sleep } from "../test/kit.ts";

const [port, token, count] = [Number(process.argv[2]), process.argv[3]!, Number(process.argv[4])];
const request =
  `GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n` +
  "Accept: text/event-stream\r\n\r\n";
const DATA = Buffer.from("\ndata: {");
const SKIPPED = Buffer.from('\ndata: {"skipped":');

interface Viewer {
  messages: number;
  skipped: number;
  started: boolean;
  /** The end of the last chunk, so that a mark cut between two chunks is still counted once. */
  tail: Buffer;
}

/** How often `mark` occurs in `bytes`. */
function occurrences(bytes: Buffer, mark: Buffer): number {
  let found = 0;
  for (let at = bytes.indexOf(mark); at !== -1; at = bytes.indexOf(mark, at + mark.length)) found++;
  return found;
}

/** The sum of the counts in the skipped notices in `bytes` (one cut at the end is counted with the next chunk). */
function skippedIn(bytes: Buffer): number {
  let sum = 0;
  for (let at = bytes.indexOf(SKIPPED); at !== -1; at = bytes.indexOf(SKIPPED, at + 1)) {
    sum += Number(/^\d*/.exec(bytes.subarray(at + SKIPPED.length, at + SKIPPED.length + 16).toString())![0]);
  }
  return sum;
}

const viewers: Viewer[] = [];
let open = 0;
for (let i = 0; i < count; i++) {
  const viewer: Viewer = { messages: 0, skipped: 0, started: false, tail: Buffer.alloc(0) };
  viewers.push(viewer);
  await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(socket) {
        open++;
        socket.write(request);
      },
      data(_socket, chunk) {
        if (!viewer.started && !chunk.subarray(0, 12).equals(Buffer.from("HTTP/1.1 200"))) {
          console.error(`web_viewers: the view refused a stream: ${chunk.toString().split("\r\n")[0]}`);
          process.exit(1);
        }
        viewer.started = true;

        const bytes = Buffer.concat([viewer.tail, chunk]);
        // What is counted here is not counted again with the next chunk: only a mark cut short is kept.
        const keep = Math.max(0, bytes.length - SKIPPED.length - 16);
        viewer.messages += occurrences(bytes.subarray(0, keep + DATA.length - 1), DATA);
        viewer.messages -= occurrences(bytes.subarray(0, keep + SKIPPED.length - 1), SKIPPED);
        viewer.skipped += skippedIn(bytes.subarray(0, keep + SKIPPED.length - 1));
        viewer.tail = bytes.subarray(keep);
      },
      close() {
        if (--open === 0) process.exit(0);
      },
    },
  });
}
while (!viewers.every((viewer) => viewer.started)) await sleep(5);

console.log("ready");
for await (const line of console) {
  if (line.trim() === "count")
    console.log(JSON.stringify(viewers.map(({ messages, skipped }) => ({ messages, skipped }))));
}
