import { describe, expect, test } from "bun:test";
import { prometheusText } from "./metrics.ts";

describe("prometheusText", () => {
  test("writes HELP, TYPE and one line per sample, with label values escaped", () => {
    const text = prometheusText([
      { name: "x_total", help: "Things.", type: "counter", samples: [{ labels: {}, value: 3 }] },
      {
        name: "y_bytes",
        help: "Per client.",
        type: "gauge",
        samples: [{ labels: { subject: '/CN=a"b\\c', address: "1.2.3.4:5" }, value: 7 }],
      },
    ]);
    const lines = [
      "# HELP x_total Things.",
      "# TYPE x_total counter",
      "x_total 3",
      "# HELP y_bytes Per client.",
      "# TYPE y_bytes gauge",
      'y_bytes{subject="/CN=a\\"b\\\\c",address="1.2.3.4:5"} 7',
    ];
    expect(text).toBe(`${lines.join("\n")}\n`);
  });
});
