// Table comparisons on several PostgreSQL connections (lanes), so that reading MongoDB (the slow
// part: the source's scan) overlaps the SQL of the comparisons, and two cursors are read at once: a
// FerretDB scan keeps about one core busy, so a second cursor in flight reads at nearly twice the rate
// (measured at 100,000 documents: every collection one after the other 6.6–7.1 s, two at a time
// 4.5–4.7 s, the same server CPU).
//
// A job has two phases: it fills its expected table (reading MongoDB, or a shared scan's file), then,
// once the job before it has finished, compares; so comparisons, their progress events and repair's
// scope lists keep the order the jobs were started in, whatever fills first. Jobs start in that order,
// job n on lane n mod lanes once the job before it there has ended, and at most `readers` of them
// read MongoDB at a time. No job ever waits for a later one, so nothing can wait in a circle. Each
// job keeps its own transaction on its own connection, as one connection did.
//
// The first job to fail aborts `signal`: the jobs and scans in flight stop at their next document or
// write instead of reading their collection to its end, and that first failure is what is thrown.

import type pg from 'pg';

/** Called by a job when its fill is done: resolves when the job before it has finished. */
export type Turn = () => Promise<void>;

const ignore = (): void => undefined;

export class DiffLanes {
  private readonly free: Promise<void>[];
  private readonly jobs: Promise<unknown>[] = [];
  private last: Promise<unknown> = Promise.resolve();
  private failure: { readonly error: unknown } | null = null;
  private next = 0;
  private reading = 0;
  /** Starts waiting for a reader to finish its fill. */
  private readonly waiting: (() => void)[] = [];
  private readonly abort = new AbortController();
  private readonly unlink: () => void;

  constructor(
    private readonly clients: readonly pg.Client[],
    private readonly readers: number,
    outer?: AbortSignal,
  ) {
    this.free = clients.map(() => Promise.resolve());
    const onAbort = () => this.abort.abort(outer?.reason);
    if (outer?.aborted) onAbort();
    outer?.addEventListener('abort', onAbort, { once: true });
    this.unlink = () => outer?.removeEventListener('abort', onAbort);
  }

  /** Aborted by the caller's signal, or by the first job that fails. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * Starts `job` on its lane once that lane is free and, for a job that reads MongoDB (`readsSource`),
   * once fewer than `readers` fills read it. Returns `{ fill }`, settled when that fill is done or
   * the job ended. Throws the first failure of the jobs started so far (after they all ended).
   */
  async start(job: (client: pg.Client, turn: Turn) => Promise<unknown>, readsSource = true): Promise<{ fill: Promise<void> }> {
    const lane = this.next;
    this.next = (lane + 1) % this.clients.length;
    await this.free[lane];
    if (readsSource) await this.readerSlot();
    if (this.failure) {
      if (readsSource) this.release();
      await this.finish();
    }
    const before = this.last.then(ignore, ignore);
    let filled: () => void = ignore;
    const fill = new Promise<void>((resolve) => (filled = resolve));
    const done = job(this.clients[lane]!, () => {
      filled();
      return before;
    });
    done.catch((error: unknown) => this.fail(error));
    this.jobs.push(done);
    this.last = done;
    this.free[lane] = done.then(ignore, ignore);
    const filledOrEnded = Promise.race([fill, this.free[lane]]);
    if (readsSource) void filledOrEnded.then(() => this.release());
    return { fill: filledOrEnded };
  }

  /** Waits for every job; throws the first failure. */
  async finish(): Promise<void> {
    await Promise.allSettled(this.jobs);
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every job, failed or not (before the connections close). */
  async settle(): Promise<void> {
    this.unlink();
    await Promise.allSettled(this.jobs);
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = { error };
    this.abort.abort(error);
  }

  private async readerSlot(): Promise<void> {
    while (this.reading >= this.readers) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.reading += 1;
  }

  private release(): void {
    this.reading -= 1;
    this.waiting.shift()?.();
  }
}
