// The bench's Markdown tables and how they write numbers. Pure, so that every section, and
// bench/goals.ts, writes its numbers the same way.

/** A number in en-US, with exactly `digits` decimals. */
export const f = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
/** An offered rate; 0 is flat out. */
export const offeredText = (rate: number) => (rate === 0 ? "flat out" : f(rate));
export const percent = (share: number) => `${f(share * 100, 2)}%`;
const ratio = (a: number, b: number) => (b ? `${f(a / b, 2)}x` : "-");

/** One value of each process under test, "a / b / c". */
export const each = <P>(row: { processes: Record<string, P> }, value: (p: P) => string) =>
  Object.values(row.processes).map(value).join(" / ");

/** A column: its heading, and its cell for a row. */
export type Column<T> = [heading: string, cell: (row: T) => string];

export function table<T>(title: string, note: string, columns: Column<T>[], rows: T[]): string {
  return [
    `### ${title}`,
    "",
    ...(note ? [note, ""] : []),
    `| ${columns.map(([heading]) => heading).join(" | ")} |`,
    `|${columns.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${columns.map(([, cell]) => cell(row)).join(" | ")} |`),
    "",
  ].join("\n");
}

/** Two rows measured side by side: slp's and rsyslog's, slps's and the floor server's. */
export type Pair<T> = [a: T, b: T];

/** Two columns for one value of a pair: "a / b" under `heading`, and a's ratio to b under `ratioHeading`. */
export function versus<T>(
  heading: string,
  ratioHeading: string,
  value: (row: T) => number,
  digits: number,
): Column<Pair<T>>[] {
  return [
    [heading, ([a, b]) => `${f(value(a), digits)} / ${f(value(b), digits)}`],
    [ratioHeading, ([a, b]) => ratio(value(a), value(b))],
  ];
}
