// The journal row's way back to the sink: follows a namespaced journald's journal with
// `journalctl --namespace NS -f -o cat` and sends each MESSAGE it prints, one line, as one UDP
// datagram to the sink, so the journal row is measured as the rows through rsyslog are.
// Prints journalctl's pid first, so that the bench can stop it even if this relay is killed.
// Usage: bun bench/journal_relay.ts NAMESPACE SINK_PORT
// The bench's messages hold no newline, so a line is a message.

export {}; // a module, for its top-level await

const [namespace, port] = [process.argv[2]!, Number(process.argv[3])];
const socket = await Bun.udpSocket({ connect: { hostname: "127.0.0.1", port } });
const follower = Bun.spawn(["journalctl", `--namespace=${namespace}`, "--follow", "--lines=all", "--output=cat"], {
  stdout: "pipe",
  stderr: "inherit",
});
process.stdout.write(`${follower.pid}\n`);
process.on("SIGTERM", () => {
  follower.kill("SIGKILL");
  process.exit(0);
});

const LF = 0x0a;
let rest = Buffer.alloc(0);
for await (const chunk of follower.stdout) {
  const bytes = rest.length > 0 ? Buffer.concat([rest, chunk]) : Buffer.from(chunk);
  let start = 0;
  for (let end = bytes.indexOf(LF); end !== -1; end = bytes.indexOf(LF, start)) {
    socket.send(bytes.subarray(start, end));
    start = end + 1;
  }
  rest = Buffer.from(bytes.subarray(start));
}
console.error(`journal_relay: journalctl ended with ${await follower.exited}`);
process.exit(1);
