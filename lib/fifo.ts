// A first-in, first-out queue whose shift is O(1) (an array's shift moves every item), and
// which keeps the total weight of its items, such as their bytes, as they come and go.

/**
 * @example
 * const queue = new Fifo<Uint8Array>((message) => message.length);
 * queue.push(new Uint8Array(3));
 * queue.shift(); // the array; queue.length and queue.weight are 0 again
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  #weight = 0;
  readonly #weigh: (item: T) => number;

  /** @param weigh what an item counts towards `weight`; default nothing */
  constructor(weigh: (item: T) => number = () => 0) {
    this.#weigh = weigh;
  }

  get length(): number {
    return this.#items.length - this.#head;
  }

  /** The sum of `weigh` over the items queued. */
  get weight(): number {
    return this.#weight;
  }

  push(item: T): void {
    this.#items.push(item);
    this.#weight += this.#weigh(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined;
    this.#weight -= this.#weigh(item);
    // The spent front is dropped once it is most of the array: amortised O(1), bounded memory.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** The oldest `count` items (all, when fewer), removed, oldest first. */
  shiftMany(count: number): T[] {
    const taken: T[] = [];
    while (taken.length < count && this.length > 0) taken.push(this.shift()!);
    return taken;
  }

  /** The oldest item that `match` accepts, as Array.find. */
  find(match: (item: T) => boolean): T | undefined {
    for (let i = this.#head; i < this.#items.length; i++) if (match(this.#items[i]!)) return this.#items[i];
    return undefined;
  }

  /** The newest item that `match` accepts, as Array.findLast. */
  findLast(match: (item: T) => boolean): T | undefined {
    for (let i = this.#items.length - 1; i >= this.#head; i--) if (match(this.#items[i]!)) return this.#items[i];
    return undefined;
  }

  /** The items, oldest first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i]!;
  }

  /** The item at `index` from the oldest, or from the newest when negative, as Array.at. */
  at(index: number): T | undefined {
    const position = index < 0 ? this.#items.length + index : this.#head + index;
    return position >= this.#head && position < this.#items.length ? this.#items[position] : undefined;
  }
}
