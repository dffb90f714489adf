// A cursor read ahead of its consumer. The driver asks for the next batch only when its buffer is
// empty, so a consumer that maps each document (diff: decode, convert, CSV, COPY) leaves the server
// idle while it works, then waits while the server works: the two times add up. Here a pump keeps
// pulling into a bounded queue, so the next getMore is already on its way (and the server busy with
// it) while the consumer still works through the batch before: the times overlap. Memory: at most
// `limit` items queued, plus the driver's own batch.

/**
 * Iterates `source` (a cursor) through a queue of at most `limit` items filled ahead of the
 * consumer. An error of the source is thrown where the consumer reaches it; a consumer that stops
 * early (break, throw) stops the pump and closes the source.
 */
export async function* readAhead<T>(source: AsyncIterable<T>, limit: number): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const queue = new AheadQueue(iterator, limit);
  const pumping = queue.pump();
  try {
    for (;;) {
      if (queue.hasItems) {
        yield queue.take();
        continue;
      }
      if (queue.failure) throw queue.failure.error;
      if (queue.ended) return;
      await queue.itemOrEnd();
    }
  } finally {
    queue.stop();
    await pumping;
    await iterator.return?.();
  }
}

/** The bounded queue between the pump and the consumer, and the wake-up of the side waiting for the other. */
class AheadQueue<T> {
  private readonly items: T[] = [];
  private head = 0;
  /** The pump is done: the source ended or failed, or the consumer stopped. */
  ended = false;
  failure: { error: unknown } | null = null;
  private stopped = false;
  // The side waiting for the other: the consumer for an item, the pump for room.
  private wakeConsumer: (() => void) | null = null;
  private wakePump: (() => void) | null = null;

  constructor(
    private readonly iterator: AsyncIterator<T>,
    private readonly limit: number,
  ) {}

  get hasItems(): boolean {
    return this.head < this.items.length;
  }

  /** Pulls from the source into the queue, waiting for room while `limit` items wait, until the source ends or fails or the consumer stops. */
  async pump(): Promise<void> {
    try {
      while (!this.stopped) {
        if (this.items.length - this.head >= this.limit) {
          await new Promise<void>((resolve) => (this.wakePump = resolve));
          continue;
        }
        const next = await this.iterator.next();
        if (next.done) break;
        this.items.push(next.value);
        this.wake('consumer');
      }
    } catch (error) {
      this.failure = { error };
    } finally {
      this.ended = true;
      this.wake('consumer');
    }
  }

  /** The oldest queued item (there is one: `hasItems`); its room goes back to the pump. */
  take(): T {
    const item = this.items[this.head]!;
    this.items[this.head] = undefined as T;
    this.head += 1;
    // Compact now and then, so the array does not grow with the collection.
    if (this.head >= this.limit) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    this.wake('pump');
    return item;
  }

  /** Resolves once the pump queued an item or ended. */
  itemOrEnd(): Promise<void> {
    return new Promise<void>((resolve) => (this.wakeConsumer = resolve));
  }

  /** The consumer stopped: the pump ends at its next turn. */
  stop(): void {
    this.stopped = true;
    this.wake('pump');
  }

  private wake(which: 'consumer' | 'pump'): void {
    const w = which === 'consumer' ? this.wakeConsumer : this.wakePump;
    if (which === 'consumer') this.wakeConsumer = null;
    else this.wakePump = null;
    w?.();
  }
}
