import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property } from "../../test/fuzz.ts";
import { parseViewFilter } from "./filter.ts";
import { HELD_OVERHEAD, History } from "./history.ts";
import { eventId, startOf, ViewerStream } from "./stream.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const RUN = "5f2c";
const filled = (count: number, limit = 64 * 1024 * 1024) => {
  const history = new History(limit);
  for (let seq = 1; seq <= count; seq++) {
    const severity = seq % 8;
    const message = Buffer.from(`<${8 + severity}>Jan  5 10:11:12 host${seq % 3} prog: message ${seq}`);
    history.add({ message, from: "a:1", server: "r", seq }, 0);
  }
  return history;
};

/** The SSE events in `text`: each one's id, type, and its data lines as parsed JSON. */
function events(text: string) {
  return text
    .split("\n\n")
    .filter((block) => block !== "")
    .map((block) => {
      const lines = block.split("\n");
      const field = (name: string) => lines.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
      const data = lines.filter((line) => line.startsWith("data: ")).map((line) => JSON.parse(line.slice(6)));
      expect(lines.every((line) => /^(id|event|data): /.test(line))).toBe(true);
      return { id: field("id"), event: field("event"), data };
    });
}

/** The numbers of the messages in `text`, in order. */
const seqsOf = (text: string) =>
  events(text).flatMap((event) => (event.event === undefined ? event.data.map((m) => m.seq as number) : []));

/** Everything a stream has to send now, as text. */
function drain(stream: ViewerStream, maxBytes = 1024, maxLooks = 10): string {
  let text = "";
  for (let bytes = stream.take(maxBytes, maxLooks); bytes; bytes = stream.take(maxBytes, maxLooks))
    text += bytes.toString();
  return text;
}

describe("ViewerStream", () => {
  test("SSE: what one take holds is one event, a data line a message, its id naming this run and the last", () => {
    const history = filled(3);
    const sent = events(drain(new ViewerStream(history, {}, "sse", RUN, history.first), 1_000_000));
    expect(sent.map((event) => event.id)).toEqual(["5f2c-3"]);
    expect(sent[0]!.data.map((message) => message.seq)).toEqual([1, 2, 3]);
    expect(sent[0]!.data[0]).toMatchObject({ hostname: "host1", app: "prog", message: "message 1" });
    const one = events(drain(new ViewerStream(history, {}, "sse", RUN, history.first), 1));
    expect(one.map((event) => event.id)).toEqual(["5f2c-1", "5f2c-2", "5f2c-3"]);
  });

  test("JSON lines: one object a line, exactly --format json's", () => {
    const history = filled(2);
    const text = drain(new ViewerStream(history, {}, "jsonl", RUN, history.first));
    expect(text).toBe(history.at(1)!.prepared!.json.toString() + history.at(2)!.prepared!.json.toString());
  });

  test("one take holds about maxBytes and looks at maxLooks messages at most, but at least one message", () => {
    const history = filled(100);
    const stream = new ViewerStream(history, {}, "sse", RUN, history.first);
    expect(seqsOf(stream.take(1, 10)!.toString())).toEqual([1]);
    expect(seqsOf(stream.take(1_000_000, 10)!.toString())).toEqual(oneToN(11).slice(1));
    const filtered = new ViewerStream(history, parseViewFilter(new URLSearchParams("q=message 99")), "sse", RUN, 1);
    expect(filtered.take(1_000_000, 50)).toBeUndefined(); // 50 looked at, none passed
    expect(filtered.behind).toBe(true);
    expect(seqsOf(filtered.take(1_000_000, 50)!.toString())).toEqual([99]);
  });

  test("the filter lets through what it asks for only", () => {
    const history = filled(40);
    const filter = parseViewFilter(new URLSearchParams("severity=warning&host=HOST1&q=MESSAGE 1"));
    const seqs = seqsOf(drain(new ViewerStream(history, filter, "sse", RUN, 1)));
    const wanted = (seq: number) => seq % 8 <= 4 && seq % 3 === 1 && String(seq).startsWith("1");
    expect(seqs).toEqual(oneToN(40).filter(wanted));
    expect(seqs).toEqual([1, 10, 16, 19]);
  });

  test("a viewer behind the history's start skips to it, is told how many it missed, and counts them", () => {
    const history = filled(10, 10 * (HELD_OVERHEAD + 60));
    const stream = new ViewerStream(history, {}, "sse", RUN, 1);
    for (let seq = 11; seq <= 30; seq++)
      history.add({ message: Buffer.from(`<13>m ${seq}`), from: "a:1", server: "r", seq }, 0);
    const missed = history.first - 1;
    expect(missed).toBeGreaterThan(0);
    const first = events(stream.take(1, 1)!.toString());
    expect(first[0]).toEqual({ id: undefined, event: "skipped", data: [{ skipped: missed }] });
    expect(first[1]!.id).toBe(eventId(RUN, missed + 1));
    // Preparing what it is sent may push out more while it reads: each message is sent, or counted skipped.
    const sent = events(drain(stream, 1_000_000, 1000));
    const skipped = sent
      .filter((event) => event.event === "skipped")
      .reduce((sum, event) => sum + event.data[0].skipped, 0);
    const later = sent.flatMap((event) => (event.event === undefined ? event.data : []));
    expect(1 + later.length + missed + skipped).toBe(30);
    expect(stream.skipped).toBe(missed + skipped);
    expect(sent.at(-1)!.data.at(-1).seq).toBe(30);
    const jsonl = new ViewerStream(history, {}, "jsonl", RUN, 1);
    expect(jsonl.take(1, 1)!.toString()).toStartWith(`{"skipped":${history.first - 1}}\n{"from":`);
  });

  test("Last-Event-ID of this run resumes right after it; another run's, or nonsense, starts at the oldest", () => {
    const history = filled(10);
    expect(startOf(history, RUN, "5f2c-4")).toEqual({ next: 5, known: true });
    expect(startOf(history, RUN, "5f2c-999")).toEqual({ next: 11, known: true }); // not yet: from now on
    expect(startOf(history, RUN, undefined)).toEqual({ next: 1, known: true });
    for (const other of ["ffff-4", "5f2c-", "-4", "5f2c-4-4", "<script>", "5f2c-99999999999999999"]) {
      expect(startOf(history, RUN, other)).toEqual({ next: 1, known: false });
    }
    const sent = events(drain(new ViewerStream(history, {}, "sse", RUN, 1, false), 1_000_000));
    expect(sent[0]).toEqual({ id: undefined, event: "skipped", data: [{ skipped: null }] });
    expect(sent[1]!.data).toHaveLength(10);
  });

  test("a viewer cut after any event and resumed from its last id gets every message once, in order", () => {
    property(
      fc.array(fc.integer({ min: 1, max: 4000 }), { maxLength: 8 }),
      fc.integer({ min: 1, max: 60 }),
      (cuts, count) => {
        const history = filled(count);
        const got: number[] = [];
        let last: string | undefined;
        for (const maxBytes of [...cuts, Number.POSITIVE_INFINITY]) {
          const stream = new ViewerStream(history, {}, "sse", RUN, startOf(history, RUN, last).next);
          const bytes = stream.take(maxBytes, 1000);
          if (!bytes) continue;
          got.push(...seqsOf(bytes.toString()));
          last = events(bytes.toString()).at(-1)!.id ?? last;
        }
        expect(got).toEqual(oneToN(count));
      },
    );
  });
});

function oneToN(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
