// A process's memory as the kernel counts it, read from /proc, in the figures that say what it
// costs. VmRSS is every resident page, and most of a Bun process's are pages of its 100 MB
// executable, mapped from the file: shared with every other process that runs it, and dropped by
// the kernel under pressure at no cost but reading them again. What the process alone holds is its
// anonymous memory (RssAnon: its heaps, stacks and buffers). USS (smaps_rollup's Private_Clean +
// Private_Dirty) is what would be freed if it exited: RssAnon, plus the pages of files that no
// other process maps, which for a lone Bun process are most of its executable's.

import { readFileSync } from "node:fs";

/** Megabytes, each as /proc says; `ussMB` is NaN where smaps_rollup cannot be read. */
export interface Memory {
  /** Every resident page, file-backed ones included (VmRSS). */
  vmRssMB: number;
  /** Private memory: anonymous pages (RssAnon). */
  anonMB: number;
  /** Pages mapped from files, the executable's above all (RssFile). */
  fileMB: number;
  /** Pages no other process maps (Private_Clean + Private_Dirty). */
  ussMB: number;
}

const kB = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);

/** A process's memory now. */
export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  let ussKB = Number.NaN;
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    ussKB = kB(rollup, "Private_Clean") + kB(rollup, "Private_Dirty");
  } catch {} // an older kernel, or not ours to read
  return {
    vmRssMB: kB(status, "VmRSS") / 1024,
    anonMB: kB(status, "RssAnon") / 1024,
    fileMB: kB(status, "RssFile") / 1024,
    ussMB: ussKB / 1024,
  };
}

/** The largest of each figure, each on its own (they need not peak together). */
export function peakOf(a: Memory, b: Memory): Memory {
  return {
    vmRssMB: Math.max(a.vmRssMB, b.vmRssMB),
    anonMB: Math.max(a.anonMB, b.anonMB),
    fileMB: Math.max(a.fileMB, b.fileMB),
    ussMB: Math.max(a.ussMB, b.ussMB),
  };
}

/** Reads the memory of some processes every `ms` until stopped, keeping each one's peak. */
export class PeakMemory {
  readonly #peaks = new Map<number, Memory>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(
    readonly pids: number[],
    ms = 250,
  ) {
    this.#read();
    this.#timer = setInterval(() => this.#read(), ms);
  }

  /** Stops reading, after a last reading; each process's peaks. */
  stop(): Map<number, Memory> {
    clearInterval(this.#timer);
    this.#read();
    return this.#peaks;
  }

  #read(): void {
    for (const pid of this.pids) {
      try {
        const now = memoryOf(pid);
        const peak = this.#peaks.get(pid);
        this.#peaks.set(pid, peak ? peakOf(peak, now) : now);
      } catch {} // gone
    }
  }
}
