import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../test/fuzz.ts";
import { addressKey, bindFailure, mustResolve, parseHostPort, parseHostPortList } from "./address.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

describe("parseHostPort", () => {
  test("addresses in all their forms", () => {
    expect(parseHostPort("127.0.0.1:514")).toEqual({ host: "127.0.0.1", port: 514 });
    expect(parseHostPort("[::1]:6514")).toEqual({ host: "::1", port: 6514 });
    expect(parseHostPort("logs.example.com", 6514)).toEqual({ host: "logs.example.com", port: 6514 });
    expect(parseHostPort("[::]", 6514)).toEqual({ host: "::", port: 6514 });
    expect(() => parseHostPort("::1:514")).toThrow("expected HOST:PORT");
    expect(() => parseHostPort("host:0")).toThrow("port must be 1 to 65535");
    expect(() => parseHostPort("")).toThrow("required");
    expect(() => parseHostPort("--stdout", 6514)).toThrow("not a flag: is the value missing?");
  });

  test("arbitrary text is an address or a clear error", () => {
    property(fc.string({ maxLength: 200 }), (text) => returnsOrRefuses(() => parseHostPort(text, 6514)));
  });
});

describe("parseHostPortList", () => {
  test("each address of a comma-separated list, once, with the default port", () => {
    expect(parseHostPortList("web, [::1]:7000,", 6514)).toEqual([
      { host: "web", port: 6514 },
      { host: "::1", port: 7000 },
    ]);
    expect(() => parseHostPortList(" , ", 6514)).toThrow("required");
    expect(() => parseHostPortList("web,WEB:6514", 6514)).toThrow("WEB:6514 is named twice");
    expect(() => parseHostPortList("web,bad:0", 6514)).toThrow("'bad:0': port must be 1 to 65535");
    expect(addressKey({ host: "Web", port: 1 })).toBe("web:1");
  });

  test("arbitrary text is a list or an Error", () => {
    property(fc.string({ maxLength: 100 }), (text) => returnsOrRefuses(() => parseHostPortList(text, 6514)));
  });
});

describe("bindFailure", () => {
  const failure = (code: string) => Object.assign(new Error("Failed to listen"), { code });

  test("names the address and the flag, and what a low port needs", () => {
    expect(bindFailure("udp", { host: "127.0.0.1", port: 514 }, failure("EACCES"))).toBe(
      [
        "cannot listen on 127.0.0.1:514 (--udp): ports under 1024 need root or CAP_NET_BIND_SERVICE;",
        "pick a port from 1024 up with --udp",
      ].join(" "),
    );
    expect(bindFailure("listen", { host: "::", port: 6514 }, failure("EADDRINUSE"))).toBe(
      "cannot listen on [::]:6514 (--listen): the address is already in use; pick another with --listen",
    );
    expect(bindFailure("listen", { host: "192.0.2.1", port: 6514 }, failure("EADDRNOTAVAIL"))).toBe(
      "cannot listen on 192.0.2.1:6514 (--listen): no such address on this machine",
    );
  });
});

describe("mustResolve", () => {
  test("a name that resolves passes; one that does not is one line naming the flag, the address and why", async () => {
    const lookup = async (host: string) => {
      if (host !== "localhost") throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    };
    await mustResolve("listen", { host: "localhost", port: 6514 }, lookup);
    await expect(mustResolve("udp", { host: "nowhere.invalid", port: 514 }, lookup)).rejects.toThrow(
      "--udp nowhere.invalid:514: cannot resolve nowhere.invalid: getaddrinfo ENOTFOUND nowhere.invalid",
    );
  });
});
