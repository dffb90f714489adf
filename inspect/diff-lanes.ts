// Table comparisons on two PostgreSQL connections, so that reading a table's documents from MongoDB
// (the slow part: the source's scan) overlaps the SQL comparison of the table before it. A job has
// two phases: it fills its expected table (a job starts only when the one before it is filled, so
// MongoDB is read one cursor at a time, in table order; a fill from a shared scan's file reads no
// cursor, so the next one starts at once and the next collection is read while it COPYs), then,
// when the job before it has finished, compares (so comparisons, their progress events and repair's
// scope lists keep table order). Each job keeps its own transaction on its own connection, as one
// connection did.

import type pg from 'pg';

/** Called by a job when its fill is done: resolves when the job before it has finished. */
export type Turn = () => Promise<void>;

const ignore = (): void => undefined;

export class DiffLanes {
  private readonly free: Promise<void>[];
  private readonly jobs: Promise<unknown>[] = [];
  private last: Promise<unknown> = Promise.resolve();
  private failed = false;
  private next = 0;

  constructor(private readonly clients: readonly pg.Client[]) {
    this.free = clients.map(() => Promise.resolve());
  }

  /**
   * Starts `job` on the next lane once that lane is free; returns when the job's fill is done (or
   * the job ended), or at once for a fill that does not read MongoDB (`readsSource` false: a shared
   * scan's file), so the next cursor is read while it COPYs. Returns `{ fill }`: settled when that fill
   * is done or the job ended. Throws the first failure, in start order, of the jobs started so far.
   */
  async start(job: (client: pg.Client, turn: Turn) => Promise<unknown>, readsSource = true): Promise<{ fill: Promise<void> }> {
    const lane = this.next;
    this.next = (lane + 1) % this.clients.length;
    await this.free[lane];
    if (this.failed) await this.finish();
    const before = this.last.then(ignore, ignore);
    let filled: () => void = ignore;
    const fill = new Promise<void>((resolve) => (filled = resolve));
    const done = job(this.clients[lane]!, () => {
      filled();
      return before;
    });
    done.catch(() => (this.failed = true));
    this.jobs.push(done);
    this.last = done;
    this.free[lane] = done.then(ignore, ignore);
    const filledOrEnded = Promise.race([fill, this.free[lane]]);
    if (readsSource) await filledOrEnded;
    if (this.failed) await this.finish();
    return { fill: filledOrEnded };
  }

  /** Waits for every job; throws the first failure in start order. */
  async finish(): Promise<void> {
    const settled = await Promise.allSettled(this.jobs);
    const failure = settled.find((s) => s.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /** Waits for every job, failed or not (before the connections close). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.jobs);
  }
}
