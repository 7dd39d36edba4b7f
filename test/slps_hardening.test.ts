// Issue 9, the server's side: odd moments thrown at a real slps. Connections reset before the
// first callback, empty and oversized datagrams, refused peers that never close, revoked pinned
// certificates, CRLs of a CA hierarchy, and clients that are slow rather than dead.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { testBed, sendUdp, sleep, until, type Child } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const { server, client, sink } = bed;

/** The first JSON line slps writes to stderr on SIGUSR1 after now. */
async function snapshotOf(child: Child): Promise<Record<string, any>> {
  const from = child.stderr.length;
  child.kill("SIGUSR1");
  let found: Record<string, any> | undefined;
  await until("slps's SIGUSR1 line", () => {
    const line = child.stderr.slice(from).split("\n").find((text) => text.startsWith("{") && text.endsWith("}"));
    if (line) found = JSON.parse(line);
    return found !== undefined;
  });
  return found!;
}

/**
 * Opens `count` TCP connections to 127.0.0.1:port and resets each at once (SO_LINGER 0), from
 * Python since Bun's sockets offer no way to send a reset.
 */
function resetConnections(port: number, count: number): void {
  const script = [
    "import socket, struct, sys",
    "for _ in range(int(sys.argv[2])):",
    "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
    "    s.close()",
  ].join("\n");
  const result = Bun.spawnSync(["python3", "-c", script, String(port), String(count)], { stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`resetting connections: ${result.stderr}`);
}

describe("connections reset before slps serves them (defect 1)", () => {
  test("40 connections reset while slps is busy take no handshake slot: a client connects and gets its messages", async () => {
    const s = await server();
    // Stopped, slps cannot accept: the connections wait in the kernel's queue and are reset
    // there, so that open() finds them gone, as happens to a busy slps under a scan.
    s.kill("SIGSTOP");
    bed.defer(() => s.kill("SIGCONT"));
    resetConnections(s.tlsPort, 40);
    s.kill("SIGCONT");
    const out = await sink();
    await client(s, { forwardPort: out.port });
    await sendUdp(s.udpPort, [Buffer.from("<13>still served")]);
    await until("the message", () => out.messages.length === 1);
    expect(out.messages.map(String)).toEqual(["<13>still served"]);
    expect(s.stderr).not.toContain("handshakes already pending");
    expect(s.stderr).not.toContain("host.includes");
    await s.waitFor(/closed \d+ connections that were reset before they could be served/);
  });
});
