// Options: every constant of a program can be set by a flag or an environment variable. The
// parsers turn the text a person wrote into a value, or throw an Error saying what is wrong with
// it; parseOptions puts the name of the flag or variable in front, as a UsageError.

import { reason } from "./log.ts";

/** Bad flags, environment variables or files: the program prints the message and exits 2. */
export class UsageError extends Error {}

/**
 * One option, keyed by its name in camelCase. The key gives the flag and the environment
 * variable (see flagOf and envOf), so a program's table of options holds what differs only.
 */
export interface Option<T> {
  /** Default, written as the user would write it. An empty string means "not set". */
  default: string;
  /** Placeholder shown in --help (`HOST:PORT`); absent for a switch, which takes no value. */
  arg?: string;
  help: string;
  /** Turns the text into a value, or throws an Error whose message says what is wrong. */
  parse: (text: string) => T;
  /** The flag may be given more than once; the values reach `parse` joined by commas, as in the variable. */
  repeatable?: boolean;
  /** The text as an error shows it, when it may hold a secret (a proxy URL's password); as written otherwise. */
  redact?: (text: string) => string;
}

export type Options = Record<string, Option<unknown>>;
export type Values<S extends Options> = { [K in keyof S]: ReturnType<S[K]["parse"]> };

/** The flag of an option, without its dashes: `maxClients` -> `max-clients`. */
export function flagOf(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** The environment variable of a program's option: `maxClients` of slps -> `SLPS_MAX_CLIENTS`. */
export function envOf(program: string, key: string): string {
  return `${program}_${flagOf(key)}`.replace(/-/g, "_").toUpperCase();
}

/**
 * Reads argv (after the script name) and env for `program`; returns "help" for --help and
 * "version" for --version. Throws a UsageError naming the flag or variable and what is wrong.
 *
 * @example
 * const specs = { maxClients: { default: "64", arg: "N", help: "clients at once", parse: parseCount(1) } };
 * parseOptions("slps", specs, ["--max-clients", "8"], {}); // { maxClients: 8 }
 * parseOptions("slps", specs, [], { SLPS_MAX_CLIENTS: "2" }); // { maxClients: 2 }
 */
export function parseOptions<S extends Options>(
  program: string,
  specs: S,
  argv: readonly string[],
  env: Record<string, string | undefined>,
): Values<S> | "help" | "version" {
  const byFlag = new Map(Object.keys(specs).map((key) => [flagOf(key), key]));
  const given = new Map<string, { text: string; origin: string }>();
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--help" || word === "-h") return "help";
    if (word === "--version") return "version";
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(word);
    if (!match) throw new UsageError(`unexpected argument '${word}' (see --help)`);
    const name = match[1]!;
    const key = byFlag.get(name);
    if (key === undefined) throw new UsageError(`unknown flag --${name} (see --help)`);
    const spec = specs[key]!;
    let text: string;
    if (spec.arg === undefined) {
      if (match[2] !== undefined) throw new UsageError(`--${name} takes no value`);
      text = "1";
    } else if (match[2] !== undefined) {
      text = match[2];
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value (${spec.arg})`);
      text = argv[++i]!;
    }
    const earlier = given.get(key);
    if (earlier && spec.repeatable) text = `${earlier.text},${text}`;
    given.set(key, { text, origin: `--${name}` });
  }
  const values: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  for (const [key, spec] of Object.entries(specs)) {
    const variable = envOf(program, key);
    const fromEnv = env[variable];
    const { text, origin } =
      given.get(key) ??
      (fromEnv !== undefined
        ? { text: fromEnv, origin: variable }
        : { text: spec.default, origin: `--${flagOf(key)}` });
    try {
      values[key] = spec.parse(text);
    } catch (error) {
      const shown = text === "" ? "" : ` ${JSON.stringify(spec.redact ? spec.redact(text) : text)}`;
      throw new UsageError(`${origin}${shown}: ${reason(error)}`);
    }
    if (given.has(key) || fromEnv !== undefined) origins.set(key, origin);
  }
  givenOrigins.set(values, origins);
  return values as Values<S>;
}

const givenOrigins = new WeakMap<object, ReadonlyMap<string, string>>();

/**
 * Where the person set option `key` of values that parseOptions returned: its flag (`--forward`)
 * or its variable (`SLPC_FORWARD`); undefined when it is the default. For options that only
 * matter together, so that one given in vain is refused rather than silently ignored.
 */
export function originOf(values: object, key: string): string | undefined {
  return givenOrigins.get(values)?.get(key);
}

/** The --help text: one paragraph per option with its flag, environment variable and default. */
export function helpText(program: string, summary: string, specs: Options): string {
  const lines = [`usage: ${program} [options]`, "", summary, "", "options (flag, environment variable, default):"];
  for (const [key, spec] of Object.entries(specs)) {
    const flag = spec.arg ? `--${flagOf(key)} ${spec.arg}` : `--${flagOf(key)}`;
    const env = spec.arg ? envOf(program, key) : `${envOf(program, key)}=1`;
    const fallback = spec.default === "" ? "" : `  (default ${spec.default})`;
    const repeatable = spec.repeatable ? " (repeatable; comma-separated in the variable)" : "";
    lines.push(`  ${flag}   ${env}${fallback}`, `      ${spec.help}${repeatable}`);
  }
  lines.push("  --help", "      show this text", "  --version", `      show the version of ${program}`);
  return `${lines.join("\n")}\n`;
}

/** Text taken as it is. */
export const parseText = (text: string): string => text;

/** A parser for an option that may be left empty: then its value is undefined. */
export function optional<T>(parse: (text: string) => T): (text: string) => T | undefined {
  return (text) => (text === "" ? undefined : parse(text));
}

/** A comma-separated list, empty entries dropped. */
export function parseList(text: string): string[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

/** SHA-256 fingerprints as `openssl x509 -fingerprint -sha256` prints them, colons optional. */
export function parsePins(text: string): Set<string> {
  const pins = parseList(text).map((pin) =>
    pin
      .replace(/^sha256(\s+fingerprint)?=/i, "")
      .replace(/:/g, "")
      .toUpperCase(),
  );
  const bad = pins.find((pin) => !/^[0-9A-F]{64}$/.test(pin));
  if (bad !== undefined) throw new Error(`'${bad}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)`);
  return new Set(pins);
}

/** A whole number within bounds. */
export function parseCount(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    if (!/^\d+$/.test(text)) throw new Error("expected a whole number");
    const n = Number(text);
    if (n < min || n > max) throw new Error(`must be ${min} to ${max}`);
    return n;
  };
}

/** Seconds, fractions allowed (`0.5`), above zero. */
export function parseSeconds(text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) throw new Error("expected seconds above zero, like 15 or 0.5");
  // JavaScript reads a few hundred digits as Infinity, which JSON cannot carry and no timer can wait.
  if (!Number.isFinite(Number(text))) throw new Error("too large");
  return Number(text);
}

/** Seconds, at least `min`: `why` says what a shorter time would break. */
export function parseSecondsFrom(min: number, why: string) {
  return (text: string): number => {
    const seconds = parseSeconds(text);
    if (seconds < min) throw new Error(`must be at least ${min}: ${why}`);
    return seconds;
  };
}

const UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
};

/** A byte count: `8388608`, `8MiB`, `512KiB`, `1GB`. */
export function parseBytes(text: string, max = Number.MAX_SAFE_INTEGER): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new Error("expected a byte count like 8388608, 512KiB or 8MiB");
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new Error("too large");
  if (bytes > max) throw new Error(`must be at most ${max / 1024 ** 3}GiB`);
  return bytes;
}

/** A byte count up to `gib` GiB: what a buffer in memory, or the kernel, can be given. */
export const parseBytesUpTo = (gib: number) => (text: string) => parseBytes(text, gib * 1024 ** 3);

export function parseSwitch(text: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off|)$/i.test(text)) return false;
  throw new Error("expected 1 or 0");
}

export function parseRequired(text: string): string {
  if (text === "") throw new Error("required");
  return text;
}

/**
 * Splits argv into the arguments for the whole program and groups, each begun by the flag of
 * `groupKey`: a flag of `memberKeys` that follows it belongs to its group, until the next one.
 * A value is taken as parseOptions takes it, so in `--match --server` the text "--server" is a
 * value, not a flag. Words it does not know stay with the whole program, for parseOptions to name.
 *
 * @example
 * const specs = { server: { ...text, arg: "H" }, severity: { ...text, arg: "LEVEL" }, state: { ...text, arg: "F" } };
 * const argv = ["--server", "a", "--severity", "err", "--state", "f", "--server", "b"];
 * groupArguments(specs, argv, "server", ["severity"]);
 * // { common: ["--state", "f"], groups: [["--server", "a", "--severity", "err"], ["--server", "b"]] }
 */
export function groupArguments(
  specs: Options,
  argv: readonly string[],
  groupKey: string,
  memberKeys: readonly string[],
): { common: string[]; groups: string[][] } {
  const byFlag = new Map(Object.keys(specs).map((key) => [flagOf(key), key]));
  const common: string[] = [];
  const groups: string[][] = [];
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([a-z0-9-]+)(=)?/.exec(argv[i]!);
    const key = match ? byFlag.get(match[1]!) : undefined;
    const takesNext = key !== undefined && specs[key]!.arg !== undefined && match![2] === undefined;
    const words = argv.slice(i, takesNext ? i + 2 : i + 1);
    i += words.length - 1;
    if (key === groupKey) groups.push(words);
    else if (key !== undefined && memberKeys.includes(key) && groups.length > 0) groups.at(-1)!.push(...words);
    else common.push(...words);
  }
  return { common, groups };
}

/**
 * parseOptions for a program whose `groupKey` flag may repeat, each followed by flags of
 * `memberKeys` for it alone (see groupArguments). `values` holds the whole program's options,
 * from flags outside any group, the environment or the defaults; each group holds its `groupKey`
 * and the members it set (undefined where it set none, for the caller to fill from `values`).
 *
 * @example
 * parseGroupedOptions("slpc", OPTIONS, ["--severity", "err", "--server", "a", "--server", "b", "--host", "h"],
 *   {}, "server", ["severity", "host"]);
 * // values.severity is err; groups: [{ server: a }, { server: b, host: ["h"] }]
 */
export function parseGroupedOptions<S extends Options>(
  program: string,
  specs: S,
  argv: readonly string[],
  env: Record<string, string | undefined>,
  groupKey: keyof S & string,
  memberKeys: readonly (keyof S & string)[],
): { values: Values<S>; groups: Partial<Values<S>>[] } | "help" | "version" {
  const { common, groups } = groupArguments(specs, argv, groupKey, memberKeys);
  const values = parseOptions(program, specs, common, env);
  if (typeof values === "string") return values;
  // A member a group does not set is undefined, so that the caller can tell it from one it set.
  const groupSpecs: Options = { [groupKey]: specs[groupKey]! };
  for (const key of memberKeys) groupSpecs[key] = { ...specs[key]!, default: "", parse: optional(specs[key]!.parse) };
  const parsedGroups = groups.map((words) => {
    try {
      return parseOptions(program, groupSpecs, words, {}) as Partial<Values<S>>;
    } catch (error) {
      if (!(error instanceof UsageError) || error.message.startsWith(`--${flagOf(groupKey)}`)) throw error;
      // Which group: its first flag and value, as the person wrote them.
      const group = words[0]!.includes("=") ? words[0]! : words.slice(0, 2).join(" ");
      throw new UsageError(`${group}: ${error.message}`);
    }
  });
  return { values, groups: parsedGroups };
}
