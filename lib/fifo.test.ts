import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { property } from "../test/fuzz.ts";
import { Fifo } from "./fifo.ts";

describe("Fifo", () => {
  test("items leave in the order they came, and the weight follows them", () => {
    const queue = new Fifo<string>((text) => text.length);
    queue.push("a");
    queue.push("bcd");
    expect([queue.length, queue.weight, queue.at(0), queue.at(-1), queue.at(2)]).toEqual([2, 4, "a", "bcd", undefined]);
    expect(queue.shift()).toBe("a");
    expect([queue.length, queue.weight, queue.at(0), queue.at(-2)]).toEqual([1, 3, "bcd", undefined]);
    expect(queue.shift()).toBe("bcd");
    expect(queue.shift()).toBeUndefined();
    expect([queue.length, queue.weight]).toEqual([0, 0]);
  });

  test("any mix of pushes and shifts behaves as an array", () => {
    property(fc.array(fc.oneof(fc.nat(100), fc.constant(-1)), { maxLength: 5000 }), (steps) => {
      const queue = new Fifo<number>((n) => n);
      const model: number[] = [];
      for (const step of steps) {
        if (step < 0) expect(queue.shift()).toBe(model.shift()!);
        else [queue.push(step), model.push(step)];
        expect(queue.length).toBe(model.length);
        expect(queue.weight).toBe(model.reduce((sum, n) => sum + n, 0));
        expect([queue.at(0), queue.at(-1)]).toEqual([model.at(0), model.at(-1)]);
      }
    });
  });
});
