// slpc's UDP output (--forward HOST:PORT) against refusals: ICMP "port unreachable" from the
// kernel, however late it comes and whatever caused it. Real slps and slpc on loopback; the
// refusal is forged with a raw socket (test/icmp_unreachable.py), which needs root.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSocket } from "node:dgram";
import { ROOT, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();

/** Whether a raw ICMP socket may be opened here (root, or CAP_NET_RAW), which forging a refusal takes. */
const mayForge =
  Bun.spawnSync(["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"])
    .exitCode === 0;

/** A UDP daemon on loopback that keeps each datagram and the port it came from. */
async function daemon() {
  const arrived: { text: string; from: number }[] = [];
  const socket = createSocket("udp4");
  socket.on("message", (data, from) => void arrived.push({ text: data.toString(), from: from.port }));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  bed.defer(() => socket.close());
  return { port: socket.address().port, arrived };
}

describe("a refusal of datagrams already counted as taken", () => {
  test.skipIf(!mayForge)("a late or stray ICMP refusal pauses slpc for a second, not for good", async () => {
    const s = await bed.server(["--heartbeat", "0.3"]);
    const home = await daemon();
    const c = await bed.client(s, { forwardPort: home.port });
    const batch = (name: string) => Array.from({ length: 5 }, (_, i) => Buffer.from(`<13>${name} ${i + 1}`));
    await sendUdp(s.udpPort, batch("before"));
    await until(
      () => `5 messages at the daemon, ${home.arrived.length} so far`,
      () => home.arrived.length >= 5,
    );
    await sleep(300); // past the 100 ms after which a datagram counts as taken
    // The daemon never went away: the refusal comes over a slow link, or from nobody's datagram.
    const forged = Bun.spawnSync([
      "python3",
      `${ROOT}/test/icmp_unreachable.py`,
      `${home.arrived[0]!.from}`,
      `${home.port}`,
    ]);
    expect(forged.exitCode).toBe(0);
    await c.waitFor(/not reachable; is the syslog daemon listening\?/);
    await sendUdp(s.udpPort, batch("after"));
    await until(
      () => `the 5 messages sent after the refusal, ${home.arrived.length - 5} so far\n${c.stderr}`,
      () => home.arrived.length >= 10,
      5_000,
    );
    expect(home.arrived.map((each) => each.text)).toEqual([...batch("before"), ...batch("after")].map(String));
  });
});
