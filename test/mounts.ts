// Real file systems a test makes for itself, to meet a disk as an operator's machine does: a small
// tmpfs that fills up (ENOSPC), and a read-only view of a folder (EROFS) by a read-only bind mount.
// Both need root (or CAP_SYS_ADMIN), which CI has: a test that needs one and cannot have it
// fails under SLP_REQUIRE_DAEMONS=1, and is skipped, saying why, otherwise. chmod would not do:
// tests may run as root, whom permissions do not stop.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { removeDir, tempDir } from "./kit.ts";

function run(...cmd: string[]): void {
  const result = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${result.stderr.toString().trim()}`);
}

/** Why this process cannot mount, or undefined when it can: tried once, on a tmpfs of its own. */
export const cannotMount: string | undefined = (() => {
  const dir = tempDir("slp-mount-probe-");
  try {
    run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir);
    run("umount", dir);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    removeDir(dir);
  }
})();

/** A tmpfs of `bytes` at a new folder inside `parent`; `unmount` removes it, whatever is open in it. */
export function smallDisk(parent: string, bytes: number) {
  const dir = join(parent, `disk-${bytes}`);
  mkdirSync(dir, { recursive: true });
  run("mount", "-t", "tmpfs", "-o", `size=${bytes},mode=0700`, "tmpfs", dir);
  return { dir, unmount: () => run("umount", "-l", dir) };
}

/** `source` again at a new folder inside `parent`, read-only; `unmount` removes the view. */
export function readOnlyView(parent: string, source: string) {
  const dir = join(parent, "read-only");
  mkdirSync(dir, { recursive: true });
  run("mount", "--bind", source, dir);
  run("mount", "-o", "remount,ro,bind", dir);
  return { dir, unmount: () => run("umount", "-l", dir) };
}

/** Why this process cannot make a folder immutable (chattr +i), or undefined when it can. */
export const cannotChattr: string | undefined = (() => {
  const dir = tempDir("slp-chattr-probe-");
  try {
    run("chattr", "+i", dir);
    run("chattr", "-i", dir);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    removeDir(dir);
  }
})();

/**
 * Makes `dir` immutable, or lets it be changed again: while it is, no file can be made, renamed or
 * removed in it, even by root, as in a folder that turned read-only; files already open are still written.
 */
export function immutable(dir: string, on: boolean): void {
  run("chattr", on ? "+i" : "-i", dir);
}
