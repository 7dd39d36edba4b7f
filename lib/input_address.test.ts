// Unit tests of --input's forms: every accepted spelling, one clear line for each refusal, and two
// inputs on one socket refused.

import { describe, expect, test } from "bun:test";
import { MAX_UNIX_PATH } from "./forward_address.ts";
import {
  chooseInputs,
  formatInputAddress,
  parseInputAddress,
  parseInputList,
  refuseShared,
  resolveInputs,
} from "./input_address.ts";

const forms = "udp://HOST:PORT, tcp://HOST:PORT, relp://HOST:PORT, unix:/PATH or HOST:PORT";

describe("parseInputAddress", () => {
  test.each([
    ["127.0.0.1:514", { kind: "udp", host: "127.0.0.1", port: 514 }],
    ["[::1]:514", { kind: "udp", host: "::1", port: 514 }],
    ["udp://127.0.0.1:514", { kind: "udp", host: "127.0.0.1", port: 514 }],
    ["tcp://127.0.0.1:1514", { kind: "tcp", host: "127.0.0.1", port: 1514 }],
    ["tcp://[::1]:1514", { kind: "tcp", host: "::1", port: 1514 }],
    ["relp://localhost:2514", { kind: "relp", host: "localhost", port: 2514 }],
    ["RELP://127.0.0.1:2514", { kind: "relp", host: "127.0.0.1", port: 2514 }],
    ["unix:/run/slps.sock", { kind: "unix", path: "/run/slps.sock" }],
    ["unix:///run/slps.sock", { kind: "unix", path: "/run/slps.sock" }],
    [`unix:/${"a".repeat(MAX_UNIX_PATH - 1)}`, { kind: "unix", path: `/${"a".repeat(MAX_UNIX_PATH - 1)}` }],
  ])("%s is accepted", (text, address) => {
    expect(parseInputAddress(text)).toEqual(address as ReturnType<typeof parseInputAddress>);
  });

  test.each([
    ["", `required: ${forms}`],
    ["journal", "expected HOST:PORT (the port is missing)"],
    ["not an address", `expected ${forms}`],
    ["tls://127.0.0.1:6514", `unknown scheme "tls"; expected ${forms}`],
    ["127.0.0.1", "expected HOST:PORT (the port is missing)"],
    ["tcp://127.0.0.1", "expected tcp://HOST:PORT (the port is missing)"],
    ["relp://", "expected relp://HOST:PORT"],
    ["udp://127.0.0.1:0", "port must be 1 to 65535"],
    ["tcp://--listen", "expected HOST or HOST:PORT, not a flag: is the value missing?"],
    ["unix:run/slps.sock", "a unix socket's path must be absolute, as in unix:/dev/log"],
    ["unix://run/slps.sock", "a unix socket's path must be absolute, as in unix:/dev/log"],
    [`unix:/${"a".repeat(MAX_UNIX_PATH)}`, `a unix socket's path is ${MAX_UNIX_PATH} bytes at most, not 108`],
  ])("%j is refused: %s", (text, why) => {
    expect(() => parseInputAddress(text)).toThrow(why);
  });

  test("formatInputAddress writes what --input reads", () => {
    for (const text of ["udp://127.0.0.1:514", "tcp://[::1]:1514", "relp://localhost:2514", "unix:/run/slps.sock"]) {
      expect(formatInputAddress(parseInputAddress(text))).toBe(text);
    }
  });
});

describe("parseInputList", () => {
  test("repeated and comma-separated inputs are each one input, in order", () => {
    expect(parseInputList("relp://127.0.0.1:2514, unix:/dev/log,,udp://127.0.0.1:514").map(formatInputAddress)).toEqual(
      ["relp://127.0.0.1:2514", "unix:/dev/log", "udp://127.0.0.1:514"],
    );
  });

  test("UDP and TCP may share a port number; tcp:// and relp:// may not", () => {
    expect(parseInputList("udp://127.0.0.1:514,tcp://127.0.0.1:514")).toHaveLength(2);
    expect(() => parseInputList("tcp://127.0.0.1:514,relp://127.0.0.1:514")).toThrow(
      "tcp://127.0.0.1:514 and relp://127.0.0.1:514 are the same address",
    );
  });

  test.each([
    ["udp://127.0.0.1:514,127.0.0.1:514", "udp://127.0.0.1:514 is named twice"],
    ["tcp://LOCALHOST:514,tcp://localhost:514", "tcp://LOCALHOST:514 and tcp://localhost:514 are the same address"],
    ["unix:/dev/log,unix:///dev/log", "unix:/dev/log is named twice"],
    ["relp://127.0.0.1:2514,http://x:1", `'http://x:1': unknown scheme "http"; expected ${forms}`],
    [",", `required: ${forms}`],
  ])("%j is refused: %s", (text, why) => {
    expect(() => parseInputList(text)).toThrow(why);
  });

  test("two names that resolve to one address are one socket", () => {
    const inputs = parseInputList("tcp://localhost:514,relp://127.0.0.1:514");
    expect(() => refuseShared(inputs, ["127.0.0.1", "127.0.0.1"])).toThrow(
      "tcp://localhost:514 and relp://127.0.0.1:514 are the same address",
    );
  });
});

describe("refuseShared", () => {
  test.each([
    ["tcp://127.0.0.1:514,relp://[::ffff:127.0.0.1]:514", "are the same address"],
    ["tcp://[::FFFF:7F00:1]:514,tcp://[0:0:0:0:0:ffff:127.0.0.1]:514", "are the same address"],
    ["tcp://[::1]:514,tcp://[0::1]:514", "are the same address"],
    ["tcp://127.0.0.1:514,tcp://0.0.0.0:514", "cannot both listen: 0.0.0.0 takes port 514 on every IPv4 address"],
    ["udp://[::]:514,udp://127.0.0.1:514", "cannot both listen: :: takes port 514 on every address"],
    ["relp://[::1]:514,tcp://[::]:514", "cannot both listen: :: takes port 514 on every address"],
  ])("%j is refused: %s", (text, why) => {
    const inputs = parseInputList(text.replace(/,.*/, "")).concat(parseInputList(text.replace(/.*,/, "")));
    expect(() => refuseShared(inputs)).toThrow(why);
  });

  test.each([
    "tcp://0.0.0.0:514,udp://0.0.0.0:514",
    "tcp://0.0.0.0:514,tcp://[::1]:514",
    "tcp://0.0.0.0:514,tcp://127.0.0.1:515",
    "tcp://127.0.0.1:514,tcp://127.0.0.2:514",
  ])("%j may be", (text) => {
    expect(() => parseInputList(text)).not.toThrow();
  });
});

describe("chooseInputs and resolveInputs", () => {
  const udp = { host: "127.0.0.1", port: 514 };
  const relp = parseInputAddress("relp://127.0.0.1:2514");
  const none = { udp: false, udpBuffer: false };
  const shown = (chosen: ReturnType<typeof chooseInputs>) =>
    chosen.map(({ address, flag }) => `--${flag} ${formatInputAddress(address)}`);

  test("without --input, --udp's input alone, as before; --input alone replaces it; --udp given joins it", () => {
    expect(shown(chooseInputs(udp, undefined, none))).toEqual(["--udp udp://127.0.0.1:514"]);
    expect(shown(chooseInputs(udp, [relp], none))).toEqual(["--input relp://127.0.0.1:2514"]);
    expect(shown(chooseInputs(udp, [relp], { ...none, udp: true }))).toEqual([
      "--udp udp://127.0.0.1:514",
      "--input relp://127.0.0.1:2514",
    ]);
  });

  test("--udp-buffer without a UDP input to size is refused, not ignored", () => {
    expect(() => chooseInputs(udp, [relp], { udp: false, udpBuffer: true })).toThrow(
      "--udp-buffer sizes a UDP input's buffer, and there is none: add one with --input or --udp",
    );
    expect(chooseInputs(udp, [parseInputAddress("udp://[::1]:514")], { udp: false, udpBuffer: true })).toHaveLength(1);
  });

  test("a host that does not resolve is named with its flag; two names of one address are refused", async () => {
    const lookup = async (host: string) => {
      if (host === "nosuch.invalid") throw new Error("getaddrinfo ENOTFOUND");
      return { address: host === "localhost" ? "127.0.0.1" : host };
    };
    const bad = [{ address: parseInputAddress("tcp://nosuch.invalid:514"), flag: "input" as const }];
    await expect(resolveInputs(bad, lookup)).rejects.toThrow(
      "--input tcp://nosuch.invalid:514: cannot resolve nosuch.invalid: getaddrinfo ENOTFOUND",
    );
    const badUdp = [{ address: parseInputAddress("nosuch.invalid:514"), flag: "udp" as const }];
    await expect(resolveInputs(badUdp, lookup)).rejects.toThrow("--udp nosuch.invalid:514: cannot resolve");
    const twice = chooseInputs(udp, [parseInputAddress("udp://localhost:514")], { ...none, udp: true });
    await expect(resolveInputs(twice, lookup)).rejects.toThrow(
      "--input: udp://127.0.0.1:514 and udp://localhost:514 are the same address",
    );
    await resolveInputs(chooseInputs(udp, [relp, parseInputAddress("unix:/run/x.sock")], none), lookup);
  });
});
