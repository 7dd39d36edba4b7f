// What hostile datagrams cost a real slps while clients filter (issue 17): CPU per message, the
// peak of its anonymous memory, and what arrived. Usage:
//
//   bun bench/hostile_slps.ts [COMMIT] [COUNT]     (default: this tree (or ""); 1,000 datagrams of each kind)
//
// With COMMIT, that commit's slps runs instead (git archive into a temporary folder), so that a
// change can be measured before and after on one machine. slps runs with its default --buffer and
// --queue, one slpc with `--program legit` and one client of the bench's own that filters the same,
// reads nothing after its start and says `progress` every half second: slow, not dead. Each kind
// is sent at about 2,000 datagrams a second, one `legit` message in every 100. Prints a Markdown table.

import { execFileSync } from "node:child_process";
import { join } from "node:path";
import {
  BUN,
  cpuSeconds,
  makePki,
  protocolClient,
  ROOT,
  removeDir,
  rssAnon,
  sendUdp,
  sleep,
  startClient,
  startServer,
  tempDir,
  udpDrops,
  udpSink,
  until,
} from "../test/kit.ts";
import { HOSTILE } from "./hostile_datagrams.ts";

const [COMMIT, COUNT] = [process.argv[2] || undefined, Number(process.argv[3] ?? 1000)];

const dir = tempDir("slp-hostile-");
let code = ROOT;
if (COMMIT) {
  code = join(dir, "code");
  execFileSync("mkdir", [code]);
  const archive = execFileSync("git", ["archive", COMMIT, "slps.ts", "lib.ts", "lib", "package.json"], { cwd: ROOT });
  execFileSync("tar", ["-x", "-C", code], { input: archive });
}
const pki = makePki(dir);
const slps = await startServer(pki, [], { cmd: [BUN, join(code, "slps.ts")] });
const sink = await udpSink();
const slpc = await startClient(pki, slps, { forwardPort: sink.port, args: ["--program", "legit"] });
const slow = await protocolClient(
  slps.tlsPort,
  { ...pki.cert("client"), ca: pki.ca },
  { resume: { type: "resume", version: 2, filter: { programs: ["legit"] } } },
);
const progress = setInterval(() => slow.send({ type: "progress", last: 0 }), 500);

let legit = 0;
const rows = [
  "| datagram | bytes | slps CPU µs a message | slps RssAnon peak, MB | arrived at slps | kernel drops | " +
    "legit delivered |",
];
rows.push("|---|---:|---:|---:|---:|---:|---:|");
for (const [kind, datagram] of Object.entries(HOSTILE)) {
  const [cpuBefore, dropsBefore, legitBefore] = [cpuSeconds(slps.pid), udpDrops(slps.udpPort), legit];
  let peak = rssAnon(slps.pid);
  for (let sent = 0; sent < COUNT; sent += 20) {
    const batch = Array.from({ length: 20 }, (_, i) =>
      (sent + i) % 100 === 99 ? Buffer.from(`<13>Jan  5 10:11:12 web legit: ${++legit}`) : datagram,
    );
    await sendUdp(slps.udpPort, batch);
    await sleep(10);
    peak = Math.max(peak, rssAnon(slps.pid));
  }
  // Until slps is idle again: its CPU time stands still for half a second.
  let cpu = cpuSeconds(slps.pid);
  for (;;) {
    await sleep(500);
    peak = Math.max(peak, rssAnon(slps.pid));
    const now = cpuSeconds(slps.pid);
    if (now - cpu < 0.02) break;
    cpu = now;
  }
  await until("the legit messages", () => sink.messages.length >= legit, 5000).catch(() => {});
  const drops = udpDrops(slps.udpPort) - dropsBefore;
  const perMessage = ((cpu - cpuBefore) / COUNT) * 1e6;
  const delivered = `${sink.messages.length - legitBefore} of ${legit - legitBefore}`;
  const mb = (peak / 2 ** 20).toFixed(0);
  rows.push(
    `| ${kind} | ${datagram.length} | ${perMessage.toFixed(0)} | ${mb} | ${COUNT - drops} | ${drops} | ${delivered} |`,
  );
}
clearInterval(progress);
console.log(`slps of ${COMMIT ?? "this tree"}; slpc ${slpc.proc.exitCode === null ? "ran throughout" : "exited"}`);
console.log(rows.join("\n"));
slow.close();
slpc.kill("SIGKILL");
slps.kill("SIGKILL");
sink.close();
removeDir(dir);
process.exit(0);
