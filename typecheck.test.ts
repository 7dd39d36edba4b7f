// The TypeScript compiler in strict mode over every file: Bun runs TypeScript without checking it.

import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "./test/kit.ts";

test("npm run check (tsc --strict) finds no type errors", () => {
  const tsc = Bun.spawnSync([join(ROOT, "node_modules/.bin/tsc"), "-p", join(ROOT, "tsconfig.json")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  expect(tsc.stdout.toString() + tsc.stderr.toString()).toBe("");
  expect(tsc.exitCode).toBe(0);
}, 60_000);
