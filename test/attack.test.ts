// A fresh review of issue 9 against the running programs: a daemon that is down (flag values the
// runtime cannot use are in test/flags.test.ts, a refused client and a CRL past its nextUpdate in
// test/security.test.ts, a resume point slpc keeps but slps refused in test/state.test.ts). Each
// test is one finding; it fails on the code it was written against.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { type ServerHandle, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();
const { server, sink, slpc } = bed;

const streams = (s: ServerHandle) => s.stderr.match(/ starts at #/g)?.length ?? 0;

describe("the local daemon is down", () => {
  // The docs: "When sends to --forward fail, slpc says so ..., keeps the messages, stops reading
  // the server, and tries again every second." Sends to a closed local port do not throw: the
  // kernel's ICMP reply comes back as an error event, and each message is counted delivered.
  test("messages sent while the daemon is down are kept and arrive once it is up", async () => {
    const s = await server();
    const out = await sink();
    const port = out.port;
    out.close();
    const c = slpc(s.tlsPort, ["--forward", `127.0.0.1:${port}`]);
    await until(
      () => `a stream:\n${s.stderr}`,
      () => streams(s) > 0,
    );
    for (let i = 0; i < 20; i++) {
      await sendUdp(s.udpPort, [Buffer.from(`<13>down ${i}`)]);
      await sleep(50);
    }
    await c.waitFor(/is the syslog daemon listening\?/);
    const arrived: string[] = [];
    const up = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port,
      socket: { data: (_socket, data) => void arrived.push(Buffer.from(data).toString()) },
    });
    bed.defer(() => up.close());
    await sendUdp(s.udpPort, [Buffer.from("<13>after")]);
    await until(
      () => `the last message:\n${arrived.join("\n")}`,
      () => arrived.includes("<13>after"),
    );
    await sleep(1500); // anything kept is tried again every second
    const down = arrived.filter((text) => text.startsWith("<13>down"));
    expect(down).toEqual(Array.from({ length: 20 }, (_, i) => `<13>down ${i}`));
  });
});
