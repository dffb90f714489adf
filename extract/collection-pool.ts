// Reading several collections at once, with the outcome of reading them one after the other. A
// live read is bound by the server (FerretDB decodes with more CPU than we do), so a second cursor
// on the next collection uses the other core; a dump read is bound by our own CPU, so it stays one
// at a time (see bench/README.md, "Two collections at once").
//
// What stays sequential: results are committed (the manifest record) in pipeline order, as a
// prefix; when a collection fails, the collections after it are stopped and every one of them that
// had completed is discarded, those before it run to their end, and the error is the failing
// collection's that comes first in pipeline order: the run folder and the error are then what a
// sequential read leaves and reports.

export interface PoolWork<R> {
  /** Reads collection `index`; `signal` stops it (the caller's signal, or a failure before it). */
  run(index: number, signal: AbortSignal | undefined): Promise<R>;
  /** Records collection `index`: called in index order, one at a time, once every earlier one is. */
  commit(index: number, result: R): Promise<void>;
  /** Removes what a completed collection wrote, when one before it failed (it is never committed). */
  discard(index: number, result: R): Promise<void>;
}

/** Runs `count` collections, at most `concurrency` at once, taken in index order; returns their results in index order. */
export async function runCollections<R>(count: number, concurrency: number, signal: AbortSignal | undefined, work: PoolWork<R>): Promise<R[]> {
  const pool = new CollectionPool(count, signal, work);
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, () => pool.lane()));
  await pool.settled();
  return pool.results();
}

class CollectionPool<R> {
  private readonly done: ({ readonly value: R } | undefined)[] = [];
  private readonly running = new Map<number, AbortController>();
  private next = 0;
  private committed = 0;
  private commits: Promise<void> = Promise.resolve();
  private failure: { readonly index: number; readonly error: unknown } | null = null;

  constructor(
    private readonly count: number,
    private readonly signal: AbortSignal | undefined,
    private readonly work: PoolWork<R>,
  ) {}

  /** One reader: takes the next collection until none is left or one failed. */
  async lane(): Promise<void> {
    while (this.failure === null && this.next < this.count) {
      const index = this.next++;
      const stop = new AbortController();
      this.running.set(index, stop);
      try {
        this.done[index] = { value: await this.work.run(index, this.signal ? AbortSignal.any([this.signal, stop.signal]) : stop.signal) };
      } catch (error) {
        this.fail(index, error);
        continue;
      } finally {
        this.running.delete(index);
      }
      this.commits = this.commits.then(() => this.commitReady());
      await this.commits;
    }
  }

  /** After the lanes: discards the completed collections after a failure, and throws its error. */
  async settled(): Promise<void> {
    await this.commits;
    if (this.failure === null) return;
    const { index, error } = this.failure;
    for (let i = index + 1; i < this.count; i += 1) {
      const d = this.done[i];
      if (d) await this.work.discard(i, d.value);
    }
    throw error;
  }

  results(): R[] {
    return this.done.map((d) => d!.value);
  }

  /** Commits the completed prefix, up to the first failure. */
  private async commitReady(): Promise<void> {
    for (;;) {
      const index = this.committed;
      const d = this.done[index];
      if (!d || (this.failure !== null && index >= this.failure.index)) return;
      try {
        await this.work.commit(index, d.value);
      } catch (error) {
        this.fail(index, error);
        return;
      }
      this.committed += 1;
    }
  }

  /** The first failure in index order wins; every collection after it stops. */
  private fail(index: number, error: unknown): void {
    if (this.failure !== null && this.failure.index <= index) return;
    this.failure = { index, error };
    for (const [i, stop] of this.running) if (i > index) stop.abort(error);
  }
}
