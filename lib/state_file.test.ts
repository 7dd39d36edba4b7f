import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { FUZZ_TIMEOUT, property, returnsOrRefuses } from "../test/fuzz.ts";
import { MAX_SEQ } from "./protocol.ts";
import { formatStateFile, readStateFile } from "./state_file.ts";

setDefaultTimeout(FUZZ_TIMEOUT);

const web = { host: "Web.example.com", port: 6514 };
const db = { host: "::1", port: 7000 };

describe("readStateFile", () => {
  test("a file of the single-server format is the first server's resume point, converted", () => {
    const { points, converted } = readStateFile('{"server":"5f2c","last":9}\n', [web, db]);
    expect(converted).toBe(true);
    expect([...points]).toEqual([["web.example.com:6514", { server: "5f2c", last: 9 }]]);
  });

  test("what formatStateFile writes reads back the same, keys and all", () => {
    const points = new Map([
      ["web.example.com:6514", { server: "a", last: 0 }],
      ["[::1]:7000", { server: "b", last: MAX_SEQ }],
      ["gone.example.com:6514", { server: "c", last: 5 }],
    ]);
    const { points: read, converted } = readStateFile(formatStateFile(points), [web, db]);
    expect(converted).toBe(false);
    expect(read).toEqual(points);
  });

  test("a broken file is one Error naming what is wrong", () => {
    expect(() => readStateFile("", [web])).toThrow("empty");
    expect(() => readStateFile("{nope", [web])).toThrow("not JSON");
    expect(() => readStateFile('{"servers":[]}', [web])).toThrow('expected {"servers"');
    expect(() => readStateFile('{"server":"a","last":1}', [])).toThrow("no server");
  });

  test("an entry that is not a resume point is named with why, and the other entries are kept", () => {
    const text = '{"servers":{"web:1":{"server":"a","last":-1},"db:2":{"server":"b","last":7},"x:3":"junk"}}';
    const { points, unreadable } = readStateFile(text, [web]);
    expect([...points]).toEqual([["db:2", { server: "b", last: 7 }]]);
    expect([...unreadable.keys()]).toEqual(["web:1", "x:3"]);
    expect(unreadable.get("web:1")).toContain("not an slpc state file");
  });

  test("arbitrary text is a value or an Error", () => {
    const text = fc.oneof(
      fc.string(),
      fc.json(),
      fc
        .dictionary(fc.string(), fc.record({ server: fc.string(), last: fc.integer() }), { maxKeys: 4 })
        .map((servers) => JSON.stringify({ servers })),
    );
    property(text, (input) => returnsOrRefuses(() => readStateFile(input, [web])));
  });
});
