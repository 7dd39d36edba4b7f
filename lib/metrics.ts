// Numbers for operators: SIGUSR1 prints them as one JSON line, --metrics serves them to Prometheus.

export interface Metric {
  name: string;
  help: string;
  type: "counter" | "gauge";
  /** One sample per label set; a metric without labels has one sample with `labels` empty. */
  samples: { labels: Record<string, string>; value: number }[];
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** The Prometheus text exposition format (version 0.0.4). */
export function prometheusText(metrics: Metric[]): string {
  const lines: string[] = [];
  for (const metric of metrics) {
    lines.push(`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} ${metric.type}`);
    for (const { labels, value } of metric.samples) {
      const pairs = Object.entries(labels).map(([key, text]) => `${key}="${escapeLabel(text)}"`);
      lines.push(`${metric.name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
