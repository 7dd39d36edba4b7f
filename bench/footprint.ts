// Memory of slps and slpc as built with each `bun build --compile` option worth trying (issue 13):
// idle, and at its peak under a steady load through the relay. Usage:
//
//   bun bench/footprint.ts [RATE] [SECONDS] [N]  (default 10000 messages/s for 3 s; the first N builds, all)
//
// Each variant is built into a temporary folder, run on loopback with throwaway certificates,
// and measured from /proc once both are connected and idle, and at its peak under the load
// (sampled every 250 ms): private memory (RssAnon), file-backed pages (RssFile, the executable's
// above all), USS and VmRSS, each labelled (bench/memory.ts says what each counts). The script
// itself (`bun slps.ts`) is the baseline. Prints a Markdown table.

import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { BUN, Child, freePort, ROOT, removeDir, sleep, tempDir, until } from "../test/kit.ts";
import { type Memory, memoryOf, PeakMemory } from "./memory.ts";

const [RATE, SECONDS, BUILDS] = [10_000, 3, Number.POSITIVE_INFINITY].map((fallback, i) =>
  Number(process.argv[i + 2] ?? fallback),
) as [number, number, number];

/** Each variant: the build flags, or none for the script run by bun itself. */
const VARIANTS: [name: string, flags: string[] | undefined][] = [
  ["script (bun slps.ts)", undefined],
  ["--compile", []],
  ["--compile --minify", ["--minify"]],
  ["--compile --bytecode", ["--bytecode", "--format=esm"]],
  ["--compile --minify --bytecode", ["--minify", "--bytecode", "--format=esm"]],
  ["--compile --compile-exec-argv=--smol", ["--compile-exec-argv=--smol"]],
  [
    "--compile --minify --bytecode --compile-exec-argv=--smol",
    ["--minify", "--bytecode", "--format=esm", "--compile-exec-argv=--smol"],
  ],
];

const dir = tempDir("slp-footprint-");
const certs = join(dir, "certs");
const made = Bun.spawnSync(["bash", join(ROOT, "certs/make-certs.sh"), "-d", certs, "localhost", "client"]);
if (made.exitCode !== 0) throw new Error(made.stderr.toString());

function build(name: string, flags: string[], program: string): string[] {
  const out = join(dir, name.replace(/[^a-z0-9]+/gi, "-"), program);
  mkdirSync(join(out, ".."), { recursive: true });
  const built = Bun.spawnSync([BUN, "build", "--compile", ...flags, join(ROOT, `${program}.ts`), "--outfile", out]);
  if (built.exitCode !== 0) throw new Error(`${name}: ${built.stderr.toString()}`);
  return [out];
}

async function measure(name: string, flags: string[] | undefined) {
  const [slpsCmd, slpcCmd] = flags
    ? [build(name, flags, "slps"), build(name, flags, "slpc")]
    : [
        [BUN, "slps.ts"],
        [BUN, "slpc.ts"],
      ];
  const [udpPort, tlsPort, sinkPort] = [await freePort("udp"), await freePort("tcp"), await freePort("udp")];
  let received = 0;
  const sink = await Bun.udpSocket({ hostname: "127.0.0.1", port: sinkPort, socket: { data: () => void received++ } });
  const files = (who: string) => ["--cert", join(certs, `${who}.pem`), "--key", join(certs, `${who}.key`)];
  const slps = new Child([
    ...slpsCmd,
    "--udp",
    `127.0.0.1:${udpPort}`,
    "--listen",
    `127.0.0.1:${tlsPort}`,
    ...files("server"),
    "--ca",
    join(certs, "ca.pem"),
  ]);
  const slpc = new Child([
    ...slpcCmd,
    "--server",
    `localhost:${tlsPort}`,
    ...files("client"),
    "--ca",
    join(certs, "ca.pem"),
    "--forward",
    `127.0.0.1:${sinkPort}`,
    "--forward-rate",
    "0",
  ]);
  try {
    await until("slps to start the client's stream", () => / starts at #/.test(slps.stderr), 20_000);
    await sleep(1000);
    const idle = [memoryOf(slps.pid), memoryOf(slpc.pid)];
    const peaks = new PeakMemory([slps.pid, slpc.pid]);
    // Not spawnSync: the sink reads in this process, and a blocked event loop would drop the load.
    const load = Bun.spawn([BUN, join(ROOT, "bench/load.ts"), String(udpPort), String(RATE), String(SECONDS)], {
      stdout: "pipe",
    });
    const sent = JSON.parse(await new Response(load.stdout).text()).sent as number;
    await until(
      () => `delivery (${received} of ${sent})`,
      () => received >= sent,
      10_000,
    ).catch(() => {});
    const peaked = peaks.stop();
    const peak = [peaked.get(slps.pid)!, peaked.get(slpc.pid)!];
    const size = flags ? (statSync(slpsCmd[0]!).size + statSync(slpcCmd[0]!).size) / 2 / 1024 / 1024 : undefined;
    return { name, size, idle, peak, delivered: received / sent };
  } finally {
    slps.kill("SIGKILL");
    slpc.kill("SIGKILL");
    await Promise.all([slps.proc.exited, slpc.proc.exited]);
    sink.close();
  }
}

const f = (n: number) => n.toFixed(1);
/** One figure of slps's and slpc's memory, "slps / slpc". */
const both = (pair: Memory[], figure: keyof Memory) => pair.map((memory) => f(memory[figure])).join(" / ");
console.log(
  `Memory in MB, slps / slpc: idle once connected, and at its peak under ${RATE}/s for ${SECONDS} s. Private is ` +
    "RssAnon, what each process alone holds; file is RssFile, pages mapped from files (the executable's, " +
    "shared and reclaimable); VmRSS is both; USS adds to private the file pages no other process maps.\n",
);
console.log(
  "| build | binary MB (mean) | idle private | idle file | idle USS | idle VmRSS | peak private | peak file | " +
    "peak USS | peak VmRSS | delivered |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
try {
  for (const [name, flags] of VARIANTS.slice(0, BUILDS)) {
    const row = await measure(name, flags);
    const size = row.size === undefined ? "" : f(row.size);
    const delivered = `${(row.delivered * 100).toFixed(2)}%`;
    const figures = (pair: Memory[]) =>
      (["anonMB", "fileMB", "ussMB", "vmRssMB"] as const).map((figure) => both(pair, figure)).join(" | ");
    console.log(`| ${name} | ${size} | ${figures(row.idle)} | ${figures(row.peak)} | ${delivered} |`);
  }
} finally {
  removeDir(dir);
}
