// Memory of slps and slpc as built with each `bun build --compile` option worth trying (issue 13):
// idle, and at its peak under a steady load through the relay. Usage:
//
//   bun bench/footprint.ts [RATE] [SECONDS]      (default 10000 messages/s for 3 s)
//
// Each variant is built into a temporary folder, run on loopback with throwaway certificates,
// and measured from /proc: VmRSS once both are connected and idle, VmHWM (the peak) after the
// load. The script itself (`bun slps.ts`) is the baseline. Prints a Markdown table.

import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { BUN, Child, freePort, ROOT, removeDir, sleep, tempDir, until } from "../test/kit.ts";

const [RATE, SECONDS] = [Number(process.argv[2] ?? 10_000), Number(process.argv[3] ?? 3)];

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

const megabytes = (pid: number, field: "VmRSS" | "VmHWM") => {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match![1]) / 1024;
};

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
    const idle = [megabytes(slps.pid, "VmRSS"), megabytes(slpc.pid, "VmRSS")];
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
    const peak = [megabytes(slps.pid, "VmHWM"), megabytes(slpc.pid, "VmHWM")];
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
console.log(`Memory in MB, slps / slpc: idle once connected, and the peak (VmHWM) after ${RATE}/s for ${SECONDS} s.\n`);
console.log("| build | binary MB (mean) | idle RSS | peak RSS under load | delivered |");
console.log("|---|---|---|---|---|");
try {
  for (const [name, flags] of VARIANTS) {
    const row = await measure(name, flags);
    const size = row.size === undefined ? "" : f(row.size);
    const delivered = `${(row.delivered * 100).toFixed(2)}%`;
    console.log(
      `| ${name} | ${size} | ${row.idle.map(f).join(" / ")} | ${row.peak.map(f).join(" / ")} | ${delivered} |`,
    );
  }
} finally {
  removeDir(dir);
}
