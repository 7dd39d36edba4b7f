// Property-based fuzzing with fast-check, shared by the unit tests beside the modules that parse
// bytes or text from outside. Whatever comes in, the result is a value or one clear error: never
// an exception of another kind, a hang, or more memory than a limit. `npm test` runs 1,000 cases
// of each property; `npm run fuzz` runs 20,000 (FUZZ_RUNS sets how many).

import { expect } from "bun:test";
import fc from "fast-check";

export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 1000);

/** Many cases take longer than bun's 5 s default: a test file that fuzzes sets this as its default timeout. */
export const FUZZ_TIMEOUT = FUZZ_RUNS > 1000 ? 600_000 : 30_000;

/** Checks that `check` holds for FUZZ_RUNS values drawn from the arbitraries. */
export const property = <T extends unknown[]>(
  ...args: [...{ [K in keyof T]: fc.Arbitrary<T[K]> }, (...values: T) => void]
) => fc.assert(fc.property(...(args as unknown as Parameters<typeof fc.property>)), { numRuns: FUZZ_RUNS });

/** Runs `parse` and requires that it returns, or throws an error of the kinds the programs catch. */
export function returnsOrRefuses(parse: () => unknown, kind: new (...args: never[]) => Error = Error): void {
  try {
    parse();
  } catch (error) {
    expect((error as Error).constructor).toBe(kind);
    expect((error as Error).message.length).toBeGreaterThan(0);
  }
}
