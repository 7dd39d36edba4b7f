import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../test/fuzz.ts";
import { parseHostPort } from "./address.ts";
import { parseDN } from "./dn.ts";
import {
  envOf,
  flagOf,
  groupArguments,
  helpText,
  originOf,
  parseBytes,
  parseCount,
  parseGroupedOptions,
  parseOptions,
  parsePins,
  parseSeconds,
  parseSwitch,
  UsageError,
} from "./options.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

describe("option parsing", () => {
  const specs = {
    listen: { default: "0.0.0.0:6514", arg: "HOST:PORT", help: "where", parse: (t: string) => parseHostPort(t) },
    count: { default: "64", arg: "N", help: "how many", parse: parseCount(1) },
    quiet: { default: "0", help: "hush", parse: parseSwitch },
  };

  test("defaults, environment and flags, in rising order of precedence", () => {
    expect(parseOptions("t", specs, [], {})).toEqual({
      listen: { host: "0.0.0.0", port: 6514 },
      count: 64,
      quiet: false,
    });
    expect(parseOptions("t", specs, [], { T_COUNT: "3", T_QUIET: "1" })).toMatchObject({ count: 3, quiet: true });
    expect(parseOptions("t", specs, ["--count", "5", "--quiet"], { T_COUNT: "3" })).toMatchObject({
      count: 5,
      quiet: true,
    });
    expect(parseOptions("t", specs, ["--listen=[::]:7000"], {})).toMatchObject({ listen: { host: "::", port: 7000 } });
  });

  test("originOf names the flag or variable that set an option, and nothing for a default", () => {
    const values = parseOptions("t", specs, ["--count=5"], { T_QUIET: "1" }) as object;
    expect([originOf(values, "count"), originOf(values, "quiet"), originOf(values, "listen")]).toEqual([
      "--count",
      "T_QUIET",
      undefined,
    ]);
  });

  test("--help wins over everything else", () => {
    expect(parseOptions("t", specs, ["--count", "x", "--help"], {})).toBe("help");
  });

  test("--version wins over everything else too", () => {
    expect(parseOptions("t", specs, ["--count", "x", "--version"], {})).toBe("version");
  });

  test("an option's flag and environment variable come from its key and the program", () => {
    expect([flagOf("maxClients"), envOf("slps", "maxClients")]).toEqual(["max-clients", "SLPS_MAX_CLIENTS"]);
    expect([flagOf("udp"), envOf("slpc", "udp")]).toEqual(["udp", "SLPC_UDP"]);
    expect([flagOf("handshakeTimeout"), envOf("slpc", "handshakeTimeout")]).toEqual([
      "handshake-timeout",
      "SLPC_HANDSHAKE_TIMEOUT",
    ]);
  });

  test("a repeatable flag's values reach its parser joined by commas, after the variable's are dropped", () => {
    const lists = {
      allow: { default: "", arg: "NAME", help: "names", parse: (t: string) => t.split(","), repeatable: true },
    };
    expect(parseOptions("t", lists, ["--allow", "a", "--allow=b"], { T_ALLOW: "c" })).toEqual({ allow: ["a", "b"] });
    expect(parseOptions("t", lists, [], { T_ALLOW: "c,d" })).toEqual({ allow: ["c", "d"] });
  });

  test.each([
    [["--nope"], {}, "unknown flag --nope (see --help)"],
    [["stray"], {}, "unexpected argument 'stray' (see --help)"],
    [["--count"], {}, "--count needs a value (N)"],
    [["--count", "0"], {}, '--count "0": must be 1 to 9007199254740991'],
    [["--quiet=yes please"], {}, "--quiet takes no value"],
    [[], { T_LISTEN: "::1" }, 'T_LISTEN "::1": expected HOST:PORT'],
  ])("%p %p is refused: %s", (argv, env, message) => {
    expect(() => parseOptions("t", specs, argv, env)).toThrow(message);
  });

  test("an option with a secret in its text shows it redacted in an error, from a flag or a variable", () => {
    const secret = {
      url: { default: "", arg: "URL", help: "u", parse: parseCount(1), redact: () => "***" },
    };
    expect(() => parseOptions("t", secret, ["--url", "hunter2"], {})).toThrow('--url "***": expected a whole number');
    expect(() => parseOptions("t", secret, [], { T_URL: "hunter2" })).toThrow('T_URL "***": expected a whole number');
  });

  test("help lists each flag with its variable and default", () => {
    const text = helpText("t", "A test.", specs);
    expect(text).toContain("--listen HOST:PORT   T_LISTEN  (default 0.0.0.0:6514)");
    expect(text).toContain("--quiet   T_QUIET=1  (default 0)");
    expect(text).toContain("  --version\n      show the version of t\n");
  });

  test("byte counts with and without units", () => {
    expect(parseBytes("8MiB")).toBe(8 * 1024 * 1024);
    expect(parseBytes("512KiB")).toBe(512 * 1024);
    expect(parseBytes("1000")).toBe(1000);
    expect(parseBytes("2 mb")).toBe(2_000_000);
    expect(() => parseBytes("8 parsecs")).toThrow("expected a byte count");
    expect(() => parseBytes("-1")).toThrow("expected a byte count");
  });
});

describe("grouped options", () => {
  const text = { default: "", help: "", parse: (t: string) => (t === "" ? undefined : t) };
  const specs = {
    server: { ...text, arg: "HOST", parse: (t: string) => (t === "bad" ? parseCount(1)(t) : text.parse(t)) },
    severity: { ...text, arg: "LEVEL" },
    host: { ...text, arg: "LIST" },
    state: { ...text, arg: "FILE" },
    quiet: { default: "0", help: "", parse: parseSwitch },
  };
  const members = ["severity", "host"] as const;

  test("member flags after a --server are its own; before the first, and elsewhere, the program's", () => {
    const argv = ["--severity", "err", "--server", "a", "--host=h", "--state", "f", "--server", "b", "--quiet"];
    expect(groupArguments(specs, argv, "server", members)).toEqual({
      common: ["--severity", "err", "--state", "f", "--quiet"],
      groups: [
        ["--server", "a", "--host=h"],
        ["--server", "b"],
      ],
    });
    expect(parseGroupedOptions("t", specs, argv, {}, "server", members)).toEqual({
      values: { server: undefined, severity: "err", host: undefined, state: "f", quiet: true },
      groups: [
        { server: "a", severity: undefined, host: "h" },
        { server: "b", severity: undefined, host: undefined },
      ],
    });
  });

  test("a value that looks like a flag is a value", () => {
    const argv = ["--server", "a", "--host", "--server", "--state", "--severity"];
    expect(groupArguments(specs, argv, "server", members)).toEqual({
      common: ["--state", "--severity"],
      groups: [["--server", "a", "--host", "--server"]],
    });
  });

  test("a group's bad value names the group", () => {
    expect(() => parseGroupedOptions("t", specs, ["--server", "bad"], {}, "server", members)).toThrow(
      new UsageError('--server "bad": expected a whole number'),
    );
    expect(() => parseGroupedOptions("t", specs, ["--server"], {}, "server", members)).toThrow(
      new UsageError("--server needs a value (HOST)"),
    );
    expect(parseGroupedOptions("t", specs, ["--server", "a", "--help"], {}, "server", members)).toBe("help");
  });

  test("arbitrary argv: every word lands once, in order, and parsing gives values or one UsageError", () => {
    const word = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom("--server", "--severity", "--host", "--state", "--quiet", "--server=x", "--host=", "--help"),
    );
    property(fc.array(word, { maxLength: 12 }), (argv) => {
      const { common, groups } = groupArguments(specs, argv, "server", members);
      expect([...common, ...groups.flat()].sort()).toEqual([...argv].sort());
      for (const group of groups) expect(group[0]!.startsWith("--server")).toBe(true);
      returnsOrRefuses(() => parseGroupedOptions("t", specs, argv, { T_SERVER: "e" }, "server", members), UsageError);
    });
  });
});

describe("options under arbitrary input", () => {
  test("options: arbitrary argv and environment give values or one UsageError", () => {
    const specs = {
      listen: { default: "0.0.0.0:6514", arg: "HOST:PORT", help: "", parse: (t: string) => parseHostPort(t) },
      queue: { default: "8MiB", arg: "BYTES", help: "", parse: parseBytes },
      wait: { default: "1", arg: "SECONDS", help: "", parse: parseSeconds },
      pin: { default: "", arg: "SHA256", help: "", parse: parsePins, repeatable: true },
      issuer: { default: "", arg: "DN", help: "", parse: (t: string) => (t ? parseDN(t) : undefined) },
    };
    const word = fc.oneof(
      fc.string(),
      fc.constantFrom(
        "--listen",
        "--queue",
        "--wait",
        "--pin",
        "--issuer",
        "--help",
        "--version",
        "--x",
        "--queue=1k",
        "-h",
      ),
    );
    const env = fc.record(
      { F_LISTEN: fc.string(), F_QUEUE: fc.string(), F_PIN: fc.string(), F_ISSUER: fc.string() },
      { requiredKeys: [] },
    );
    property(fc.array(word, { maxLength: 8 }), env, (argv, environment) =>
      returnsOrRefuses(() => parseOptions("f", specs, argv, environment), UsageError),
    );
  });

  test("byte counts, seconds and fingerprints: arbitrary text is a value or a clear error", () => {
    property(fc.string({ maxLength: 200 }), (text) => {
      for (const parse of [parseBytes, parseSeconds, parsePins]) returnsOrRefuses(() => parse(text));
    });
  });
});
