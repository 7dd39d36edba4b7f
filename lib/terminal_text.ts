// Text from a syslog message made safe and measurable for a terminal, for `--format pretty`.
// A message is bytes from anyone: it may hold escape sequences that move the cursor, recolour or
// retitle the terminal, C1 controls that some terminals obey, bidi overrides that reorder what is
// shown, and bytes that are not UTF-8. Each of those becomes a visible escape (`\x1b`, `\u202e`,
// `\xff`); everything else is shown as it is, and each piece knows how many columns it takes, so
// columns line up and long lines wrap where they should.

/** One piece of text on screen: a character, or the escape that stands for one. */
export interface Cell {
  text: string;
  /** Columns it takes: 0 for combining marks, 2 for wide East Asian characters and emoji. */
  width: number;
}

/**
 * The message as lines of cells, split at each LF; nothing in them moves the cursor.
 *
 * @example
 * ```ts
 * import { terminalLines } from "./lib/terminal_text.ts";
 * const lines = terminalLines(new TextEncoder().encode("red \x1b[31mtext\nnext"));
 * console.log(lines.map((line) => line.map((cell) => cell.text).join(""))); // [ "red \\x1b[31mtext", "next" ]
 * ```
 */
export function terminalLines(bytes: Uint8Array): Cell[][] {
  const lines: Cell[][] = [[]];
  for (let at = 0; at < bytes.length; ) {
    if (bytes[at] === 0x0a) {
      lines.push([]);
      at++;
      continue;
    }
    const decoded = decodeAt(bytes, at);
    lines.at(-1)!.push(decoded === undefined ? escapeCell(`\\x${hex(bytes[at]!, 2)}`) : cellOf(decoded.codePoint));
    at += decoded?.length ?? 1;
  }
  return lines;
}

/** The cells of a string (header fields, structured data), on one line: LF is escaped too. */
export function terminalCells(text: string): Cell[] {
  return terminalLines(Buffer.from(text)).flatMap((line, index) => (index === 0 ? line : [escapeCell("\\n"), ...line]));
}

/** Columns a row of cells takes. */
export const widthOf = (cells: readonly Cell[]) => cells.reduce((sum, cell) => sum + cell.width, 0);

/** The cells cut to `width` columns with `…` if they are wider, then padded with spaces to `width`. */
export function fitCells(cells: readonly Cell[], width: number): string {
  let shown = cells;
  if (widthOf(cells) > width) {
    const kept: Cell[] = [];
    let used = 1; // the ellipsis
    for (const cell of cells) {
      if (used + cell.width > width) break;
      kept.push(cell);
      used += cell.width;
    }
    shown = [...kept, { text: "…", width: 1 }];
  }
  return shown.map((cell) => cell.text).join("") + " ".repeat(Math.max(0, width - widthOf(shown)));
}

/**
 * A line of cells cut into rows of at most `width` columns, at the last space that fits when
 * there is one, else anywhere. A cell wider than `width` gets a row of its own.
 */
export function wrapCells<C extends Cell>(cells: readonly C[], width: number): C[][] {
  const rows: C[][] = [];
  let row: C[] = [];
  let used = 0;
  for (const cell of cells) {
    if (used + cell.width > width && row.length > 0) {
      const space = row.findLastIndex((c) => c.text === " ");
      const carried = space > 0 ? row.splice(space + 1) : [];
      rows.push(row);
      [row, used] = [carried, widthOf(carried)];
      // What came after the space may not leave room either.
      if (used + cell.width > width && row.length > 0) {
        rows.push(row);
        [row, used] = [[], 0];
      }
    }
    row.push(cell);
    used += cell.width;
  }
  rows.push(row);
  return rows;
}

const hex = (n: number, digits: number) => n.toString(16).padStart(digits, "0");
const escapeCell = (text: string): Cell => ({ text, width: text.length });

// Shown as escapes though printable: they reorder text (bidi controls) or break lines.
const INVISIBLE_HARM = new Set([
  0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069,
]);

function cellOf(codePoint: number): Cell {
  if (codePoint === 0x09) return escapeCell("\\t");
  if (codePoint === 0x0d) return escapeCell("\\r");
  if (codePoint < 0x20 || codePoint === 0x7f) return escapeCell(`\\x${hex(codePoint, 2)}`);
  if ((codePoint >= 0x80 && codePoint < 0xa0) || INVISIBLE_HARM.has(codePoint)) {
    return escapeCell(`\\u${hex(codePoint, 4)}`);
  }
  const text = String.fromCodePoint(codePoint);
  return { text, width: columns(codePoint, text) };
}

// East Asian Wide and Fullwidth blocks, and the emoji blocks terminals draw two columns wide.
const WIDE: [number, number][] = [
  [0x1100, 0x115f],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe30, 0xfe4f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x3fffd],
];

function columns(codePoint: number, text: string): number {
  if (/^[\p{Mn}\p{Me}\u200b-\u200d\u2060\ufeff]$/u.test(text)) return 0;
  return WIDE.some(([from, to]) => codePoint >= from && codePoint <= to) ? 2 : 1;
}

/** The UTF-8 sequence at `at`, or undefined if it is not one (overlong, surrogate, cut, too large). */
function decodeAt(bytes: Uint8Array, at: number): { codePoint: number; length: number } | undefined {
  const first = bytes[at]!;
  if (first < 0x80) return { codePoint: first, length: 1 };
  const length = first < 0xc2 ? 0 : first <= 0xdf ? 2 : first <= 0xef ? 3 : first <= 0xf4 ? 4 : 0;
  if (length === 0 || at + length > bytes.length) return undefined;
  let codePoint = first & (0xff >> (length + 1));
  for (let i = 1; i < length; i++) {
    const next = bytes[at + i]!;
    if ((next & 0xc0) !== 0x80) return undefined;
    codePoint = (codePoint << 6) | (next & 0x3f);
  }
  const smallest = [0, 0, 0x80, 0x800, 0x10000][length]!;
  if (codePoint < smallest || codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) return undefined;
  return { codePoint, length };
}

/** How much of a peer's text a log line shows at most, in characters: enough to read, too little to flood. */
export const PEER_TEXT_MAX = 200;

/**
 * Text a peer chose (a server id, a reason, an error, a certificate's name) as a log line may show
 * it: one line, every control, C1 and bidi character escaped as `--format raw` escapes them, and cut
 * at `max` characters with `…`. A hostile peer can then neither forge a line nor steer a terminal.
 *
 * @example
 * ```ts
 * import { peerText } from "./lib/terminal_text.ts";
 * console.log(peerText("x\nslpc: SIGTERM: exiting\x1b]0;owned\x07")); // x\nslpc: SIGTERM: exiting\x1b]0;owned\x07
 * ```
 */
export function peerText(text: string, max: number = PEER_TEXT_MAX): string {
  // Only what can be shown is looked at: a megabyte of text costs no more than its first `max` characters.
  let shown = "";
  for (const cell of terminalCells(text.slice(0, max + 1))) {
    if (shown.length + cell.text.length > max) return `${shown}…`;
    shown += cell.text;
  }
  return text.length > max ? `${shown}…` : shown;
}
