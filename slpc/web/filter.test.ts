import { describe, expect, test } from "bun:test";
import { parseViewFilter, viewMatches } from "./filter.ts";
import { History } from "./history.ts";

const query = (text: string) => parseViewFilter(new URLSearchParams(text));
const refusal = (text: string) => {
  try {
    query(text);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`accepted: ${text}`);
};

/** Whether the filter of `text` lets through `message`, received from `from`. */
function passes(text: string, message: string | Uint8Array, from = "web.example.com:6514"): boolean {
  const history = new History(1024 * 1024);
  const bytes = typeof message === "string" ? Buffer.from(message) : message;
  const held = history.add({ message: bytes, from, server: "r", seq: 1 }, 0);
  return viewMatches(query(text), held, history.prepare(held));
}

const sshd = "<36>Jan  5 10:11:12 Web1 sshd[7]: Failed password for ROOT";

describe("the view's filter", () => {
  test("an empty query, or empty parameters, let everything through", () => {
    expect(query("")).toEqual({});
    expect(query("q=&severity=&host=&program=&server=")).toEqual({});
    expect(passes("", "anything at all")).toBe(true);
  });

  test("text: anywhere in the message as it came, header included, ASCII capitals not counting", () => {
    expect(passes("q=failed password", sshd)).toBe(true);
    expect(passes("q=FOR root", sshd)).toBe(true);
    expect(passes("q=web1 SSHD", sshd)).toBe(true);
    expect(passes("q=accepted", sshd)).toBe(false);
    expect(passes("q=%C3%A9t%C3%A9", "<13>un été chaud")).toBe(true); // é is UTF-8 as it came
    // A %-escape that is not UTF-8 is U+FFFD, as URLSearchParams decodes it, not the byte.
    expect(passes("q=%FF", new Uint8Array([0x3c, 0x31, 0x33, 0x3e, 0xff]))).toBe(false);
  });

  test("severity: that one and every more severe; host, program and server: any of a list, case ignored", () => {
    expect(passes("severity=warning", sshd)).toBe(true);
    expect(passes("severity=err", sshd)).toBe(false);
    expect(passes("severity=3", "<35>x")).toBe(true);
    expect(passes("severity=debug", "no PRI at all")).toBe(false);
    expect(passes("host=db,WEB1", sshd)).toBe(true);
    expect(passes("host=db", sshd)).toBe(false);
    expect(passes("program=SSHD,sudo", sshd)).toBe(true);
    expect(passes("program=cron", sshd)).toBe(false);
    expect(passes("server=db:6514,web.example.com:6514", sshd)).toBe(true);
    expect(passes("server=db:6514", sshd)).toBe(false);
    expect(passes("severity=warning&host=web1&program=sshd&q=root&server=web.example.com:6514", sshd)).toBe(true);
  });

  test("a bad parameter is refused with one line naming it, never taken for no filter", () => {
    expect(refusal("severity=bogus")).toStartWith('severity: no severity "bogus"');
    expect(refusal("sevrity=err")).toBe("unknown parameter 'sevrity' (q, severity, host, program, server)");
    expect(refusal("q=a&q=b")).toBe("q: given twice");
    expect(refusal(`q=${"a".repeat(257)}`)).toBe("q: 257 bytes long; at most 256");
    expect(refusal(`q=${"%C3%A9".repeat(129)}`)).toBe("q: 258 bytes long; at most 256");
    expect(refusal(`host=${Array.from({ length: 33 }, (_, i) => `h${i}`).join(",")}`)).toBe(
      "host: 33 names; at most 32",
    );
    expect(refusal("program=a b")).toStartWith("program: program name");
    expect(refusal(`server=${"s".repeat(300)}`)).toStartWith("server: 'ssss");
    expect(refusal(`${"x".repeat(5000)}=1`)).toBe(
      `unknown parameter '${"x".repeat(40)}' (q, severity, host, program, server)`,
    );
  });

  test("with `skip`, the token is not taken for a filter", () => {
    expect(parseViewFilter(new URLSearchParams("token=abc&q=x"), ["token"]).text).toEqual(Buffer.from("x"));
  });
});
