// The benchmark's chart, as a plain SVG: delivered messages/s and p99 latency against the
// offered rate, one line per relay. The offered rates are evenly spaced categories, ending with
// "flat out".

interface Point {
  relay: string;
  offered: number;
  rate: number;
  p99: number;
}

const COLORS: Record<string, string> = { slp: "#1f77b4", rsyslog: "#d62728" };
const WIDTH = 720;
const PANEL = 260;
const LEFT = 70;
const TOP = 30;

/** The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is at least `value`: a round top for an axis. */
function roundUp(value: number): number {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((top) => top >= value)!;
}

function panel(
  points: Point[],
  rates: number[],
  value: (p: Point) => number,
  title: string,
  unit: string,
  y0: number,
): string {
  const max = roundUp(Math.max(1, ...points.map(value)));
  const x = (rate: number) => LEFT + (rates.indexOf(rate) + 0.5) * ((WIDTH - LEFT - 20) / rates.length);
  const y = (v: number) => y0 + PANEL - (v / max) * PANEL;
  const parts = [
    `<text x="${LEFT}" y="${y0 - 10}" font-size="14" font-weight="bold">${title}</text>`,
    `<line x1="${LEFT}" y1="${y0 + PANEL}" x2="${WIDTH - 20}" y2="${y0 + PANEL}" stroke="#333"/>`,
    `<line x1="${LEFT}" y1="${y0}" x2="${LEFT}" y2="${y0 + PANEL}" stroke="#333"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    const label = v.toLocaleString("en-US", { maximumFractionDigits: 1 });
    parts.push(`<text x="${LEFT - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${label}</text>`);
    parts.push(`<line x1="${LEFT}" y1="${y(v)}" x2="${WIDTH - 20}" y2="${y(v)}" stroke="#ddd"/>`);
  }
  for (const rate of rates) {
    const label = rate === 0 ? "flat out" : rate.toLocaleString("en-US");
    parts.push(`<text x="${x(rate)}" y="${y0 + PANEL + 16}" font-size="11" text-anchor="middle">${label}</text>`);
  }
  const middle = y0 + PANEL / 2;
  parts.push(
    `<text x="16" y="${middle}" font-size="11" transform="rotate(-90 16 ${middle})" text-anchor="middle">` +
      `${unit}</text>`,
  );
  for (const relay of [...new Set(points.map((p) => p.relay))]) {
    const mine = points
      .filter((p) => p.relay === relay)
      .sort((a, b) => rates.indexOf(a.offered) - rates.indexOf(b.offered));
    const color = COLORS[relay] ?? "#2ca02c";
    const line = mine.map((p) => `${x(p.offered)},${y(value(p))}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${line}"/>`);
    for (const p of mine) parts.push(`<circle cx="${x(p.offered)}" cy="${y(value(p))}" r="3" fill="${color}"/>`);
  }
  return parts.join("\n");
}

export function chart(points: Point[], rates: number[]): string {
  const relays = [...new Set(points.map((p) => p.relay))];
  const legend = relays.map(
    (relay, i) =>
      `<rect x="${WIDTH - 160}" y="${8 + i * 16}" width="12" height="12" fill="${COLORS[relay] ?? "#2ca02c"}"/>` +
      `<text x="${WIDTH - 142}" y="${18 + i * 16}" font-size="12">${relay}</text>`,
  );
  const height = TOP + 2 * PANEL + 140;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...legend,
    panel(points, rates, (p) => p.rate, "Delivered messages/s by offered rate", "messages/s", TOP + 20),
    panel(points, rates, (p) => p.p99, "p99 latency (ms) by offered rate", "ms", TOP + PANEL + 90),
    `<text x="${WIDTH / 2}" y="${height - 8}" font-size="12" text-anchor="middle">` +
      "offered messages/s (200-byte messages, UDP in and out, TLS between)</text>",
    "</svg>",
    "",
  ].join("\n");
}
