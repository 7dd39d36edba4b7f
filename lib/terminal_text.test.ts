import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import {
  type Cell,
  fitCells,
  PEER_TEXT_MAX,
  peerText,
  terminalCells,
  terminalLines,
  widthOf,
  wrapCells,
} from "./terminal_text.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 1000);
setDefaultTimeout(runs > 1000 ? 600_000 : 30_000);

const shown = (cells: readonly Cell[]) => cells.map((cell) => cell.text).join("");
const linesOf = (bytes: number[] | string) =>
  terminalLines(typeof bytes === "string" ? Buffer.from(bytes) : Uint8Array.from(bytes)).map(shown);

describe("terminalLines", () => {
  test("printable text, UTF-8 included, is shown as it is; LF splits lines", () => {
    expect(linesOf("plain café 中文\nnext")).toEqual(["plain café 中文", "next"]);
    expect(linesOf("")).toEqual([""]);
    expect(linesOf("end\n")).toEqual(["end", ""]);
  });

  test("control characters become escapes: nothing can move the cursor or set a colour", () => {
    expect(linesOf("a\tb\rc\x1b[2J\x00\x07\x7f")).toEqual(["a\\tb\\rc\\x1b[2J\\x00\\x07\\x7f"]);
  });

  test("C1 controls, bidi overrides and line separators become \\u escapes", () => {
    expect(linesOf("\u009b31m \u202eevil\u202c \u2028 \u2066x\u2069")).toEqual([
      "\\u009b31m \\u202eevil\\u202c \\u2028 \\u2066x\\u2069",
    ]);
  });

  test("bytes that are not UTF-8 show as \\x escapes, one per byte, and what follows still decodes", () => {
    expect(linesOf([0xff, 0x41])).toEqual(["\\xffA"]);
    expect(linesOf([0xc0, 0x80])).toEqual(["\\xc0\\x80"]); // overlong NUL
    expect(linesOf([0xed, 0xa0, 0x80])).toEqual(["\\xed\\xa0\\x80"]); // a surrogate
    expect(linesOf([0xf4, 0x90, 0x80, 0x80])).toEqual(["\\xf4\\x90\\x80\\x80"]); // above U+10FFFF
    expect(linesOf([0xe4, 0xb8, 0x41])).toEqual(["\\xe4\\xb8A"]); // cut short
    expect(linesOf([0xe4, 0xb8])).toEqual(["\\xe4\\xb8"]); // cut by the end
  });

  test("each cell knows its columns: wide characters 2, combining marks 0, escapes their length", () => {
    const widths = terminalLines(Buffer.from("a中e\u0301😀\x1b"))
      .flat()
      .map((cell) => cell.width);
    expect(widths).toEqual([1, 2, 1, 0, 2, 4]);
  });

  test("terminalCells keeps a string on one line", () => {
    expect(shown(terminalCells("host\nname"))).toBe("host\\nname");
  });
});

describe("fitCells and wrapCells", () => {
  test("fitCells pads to the width, or cuts with an ellipsis, by columns not characters", () => {
    expect(fitCells(terminalCells("web"), 6)).toBe("web   ");
    expect(fitCells(terminalCells("web-server-01"), 6)).toBe("web-s…");
    expect(fitCells(terminalCells("中文中文"), 6)).toBe("中文… ");
    expect(fitCells(terminalCells("exact!"), 6)).toBe("exact!");
  });

  test("wrapCells breaks at the last space that fits, else anywhere", () => {
    const rows = (text: string, width: number) => wrapCells(terminalCells(text), width).map(shown);
    expect(rows("the quick brown fox", 10)).toEqual(["the quick ", "brown fox"]);
    expect(rows("abcdefghijkl", 5)).toEqual(["abcde", "fghij", "kl"]);
    expect(rows("", 5)).toEqual([""]);
    expect(rows("中文中文", 3)).toEqual(["中", "文", "中", "文"]);
  });

  test("no row is wider than the width unless it holds one cell that is", () => {
    const text = fc.string({ unit: fc.constantFrom("a", " ", "中", "\x1b", "\u0301", "\u202e"), maxLength: 80 });
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 30 }), (value, width) => {
        const cells = terminalCells(value);
        const rows = wrapCells(cells, width);
        expect(rows.flat()).toEqual(cells);
        for (const row of rows) {
          if (widthOf(row) > width) expect(row.filter((cell) => cell.width > 0)).toHaveLength(1);
        }
      }),
      { numRuns: runs },
    );
  });
});

// What a terminal would obey: C0 and C1 controls, DEL, bidi controls, line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this test looks for
const HARMFUL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

describe("terminalLines under arbitrary bytes", () => {
  test("the text shown holds no control character but LF between lines, and decodes what is UTF-8", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const lines = terminalLines(bytes).map(shown);
        for (const line of lines) expect(line).not.toMatch(HARMFUL);
        expect(lines.length).toBe(bytes.filter((byte) => byte === 0x0a).length + 1);
        const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
        const textLines = text.split("\n");
        if (Buffer.from(text).equals(bytes) && !textLines.some((line) => HARMFUL.test(line))) {
          expect(lines).toEqual(textLines);
        }
      }),
      { numRuns: runs },
    );
  });
});

describe("peerText", () => {
  test("a forged log line and terminal sequences stay on one line, escaped", () => {
    const forged = "x\nslpc: SIGTERM: exiting\x1b]0;owned\x07\u009b31m\u202eevil";
    expect(peerText(forged)).toBe("x\\nslpc: SIGTERM: exiting\\x1b]0;owned\\x07\\u009b31m\\u202eevil");
  });

  test("long text is cut at the cap, never inside an escape", () => {
    expect(peerText("a".repeat(10_000))).toBe(`${"a".repeat(PEER_TEXT_MAX)}…`);
    const escapes = peerText("\x1b".repeat(100), 10);
    expect(escapes).toBe("\\x1b\\x1b…");
    expect(peerText("short")).toBe("short");
  });
});
