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
  const queue: T[] = [];
  let head = 0;
  let ended = false;
  let failure: { error: unknown } | null = null;
  let stopped = false;
  // The side waiting for the other: the consumer for an item, the pump for room.
  let wakeConsumer: (() => void) | null = null;
  let wakePump: (() => void) | null = null;
  const wake = (which: 'consumer' | 'pump') => {
    const w = which === 'consumer' ? wakeConsumer : wakePump;
    if (which === 'consumer') wakeConsumer = null;
    else wakePump = null;
    w?.();
  };

  const pump = (async () => {
    try {
      while (!stopped) {
        if (queue.length - head >= limit) {
          await new Promise<void>((resolve) => (wakePump = resolve));
          continue;
        }
        const next = await iterator.next();
        if (next.done) break;
        queue.push(next.value);
        wake('consumer');
      }
    } catch (error) {
      failure = { error };
    } finally {
      ended = true;
      wake('consumer');
    }
  })();

  try {
    for (;;) {
      if (head < queue.length) {
        const item = queue[head]!;
        queue[head] = undefined as T;
        head += 1;
        // Compact now and then, so the array does not grow with the collection.
        if (head >= limit) {
          queue.splice(0, head);
          head = 0;
        }
        wake('pump');
        yield item;
        continue;
      }
      if (failure) throw (failure as { error: unknown }).error;
      if (ended) return;
      await new Promise<void>((resolve) => (wakeConsumer = resolve));
    }
  } finally {
    stopped = true;
    wake('pump');
    await pump;
    await iterator.return?.();
  }
}
