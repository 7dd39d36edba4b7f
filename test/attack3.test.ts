// A fresh review of one slpc following several servers (issue 11), against the running
// programs: what one server's trouble does to the others. Each test is one finding; it fails on
// the code it was written against.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { savedPoint, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(60_000);

const bed = testBed();
const server = () => bed.server(["--heartbeat", "0.3"]);
const numbered = (name: string, count: number) =>
  Array.from({ length: count }, (_, i) => Buffer.from(`<13>${name} ${i + 1}`));
/** The numbers of `name`'s messages that arrived, in order of arrival. */
const numbersOf = (messages: Buffer[], name: string) =>
  messages.map(String).flatMap((text) => (text.startsWith(`<13>${name} `) ? [Number(text.split(" ")[1])] : []));

describe("--state with several servers", () => {
  test("one unreadable entry costs that server its point alone; the others resume where they were", async () => {
    const [kept, broken] = [await server(), await server()];
    await sendUdp(kept.udpPort, numbered("kept", 3));
    await sendUdp(broken.udpPort, numbered("broken", 3));
    await sleep(300);
    const id = /server id ([0-9a-f]+)/.exec(kept.stderr)![1]!;
    const state = join(bed.dir, "one-bad-entry.json");
    const servers = {
      [`localhost:${kept.tlsPort}`]: { server: id, last: 1 },
      [`localhost:${broken.tlsPort}`]: { server: "x", last: -5 },
    };
    writeFileSync(state, `${JSON.stringify({ servers })}\n`);
    const out = await bed.sink();
    const c = bed.slpc(kept.tlsPort, [
      "--server",
      `localhost:${broken.tlsPort}`,
      "--forward",
      `127.0.0.1:${out.port}`,
      "--state",
      state,
      "--replay",
    ]);
    await until(`5 messages, ${out.messages.length} so far\n${c.stderr}`, () => out.messages.length >= 5);
    await sleep(500); // anything more would be a duplicate
    expect(numbersOf(out.messages, "kept")).toEqual([2, 3]);
    expect(numbersOf(out.messages, "broken")).toEqual([1, 2, 3]);
    expect(c.stderr).toMatch(
      new RegExp(
        `--state ${state}: server localhost:${broken.tlsPort}: [^\\n]*; copied the file to ${state}\\.bad-\\d+`,
      ),
    );
    expect(c.stderr).toMatch(new RegExp(`localhost:${broken.tlsPort}: gap: an unknown number of messages lost`));
    expect(c.stderr).not.toMatch(new RegExp(`localhost:${kept.tlsPort}: gap`));
    c.kill("SIGTERM");
    expect(await c.exit()).toBe(0);
    expect(savedPoint(state, `localhost:${kept.tlsPort}`)).toEqual({ server: id, last: 3 });
    expect(savedPoint(state, `localhost:${broken.tlsPort}`)).toMatchObject({ last: 3 });
  });
});
