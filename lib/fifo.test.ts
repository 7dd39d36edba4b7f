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

  test("shiftMany takes the oldest, at most as many as there are; iteration goes oldest first", () => {
    const queue = new Fifo<number>((n) => n);
    for (const n of [1, 2, 3, 4]) queue.push(n);
    expect(queue.shiftMany(3)).toEqual([1, 2, 3]);
    queue.push(5);
    expect([...queue]).toEqual([4, 5]);
    expect(queue.shiftMany(9)).toEqual([4, 5]);
    expect([queue.length, queue.weight, [...queue]]).toEqual([0, 0, []]);
  });

  test("any mix of pushes and shifts behaves as an array", () => {
    property(fc.array(fc.oneof(fc.nat(100), fc.constant(-1)), { maxLength: 3000 }), (steps) => {
      const queue = new Fifo<number>((n) => n);
      const model: number[] = [];
      for (const step of steps) {
        if (step < 0) expect(queue.shift()).toBe(model.shift()!);
        else [queue.push(step), model.push(step)];
        expect(queue.length).toBe(model.length);
        expect(queue.weight).toBe(model.reduce((sum, n) => sum + n, 0));
        expect([queue.at(0), queue.at(-1)]).toEqual([model.at(0), model.at(-1)]);
        expect(queue.find((n) => n > 50)).toBe(model.find((n) => n > 50));
        expect(queue.findLast((n) => n < 20)).toBe(model.findLast((n) => n < 20));
      }
    });
  });
});
