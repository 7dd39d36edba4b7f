import { describe, expect, test } from "bun:test";
import { isNetworkError, reason } from "./log.ts";

describe("isNetworkError", () => {
  test("tells a reset, a timeout or an unreachable host from a refusal by TLS", () => {
    const failure = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNREFUSED", "EHOSTUNREACH"])
      expect(isNetworkError(failure(code))).toBe(true);
    expect(isNetworkError(failure("CERT_HAS_EXPIRED"))).toBe(false);
    expect(isNetworkError(new Error("no code"))).toBe(false);
    expect(isNetworkError(null)).toBe(false);
  });
});

describe("reason", () => {
  test("is an error's message, with its code when the message does not name it, and never a stack", () => {
    const failure = Object.assign(new Error("connect failed"), { code: "ECONNREFUSED" });
    expect(reason(failure)).toBe("connect failed (ECONNREFUSED)");
    expect(reason(Object.assign(new Error("ECONNREFUSED: refused"), { code: "ECONNREFUSED" }))).toBe(
      "ECONNREFUSED: refused",
    );
    expect(reason(new Error("plain"))).toBe("plain");
    expect(reason("a string")).toBe("a string");
  });
});
