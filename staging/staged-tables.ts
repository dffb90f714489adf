// What lets a load start while its run is still being transformed (`etl run`): the tables the
// transform will stage, then each table as soon as its files are complete and final on disk, with
// the record its manifest section will hold. bin/ hands the same object to both stages (a stage
// never imports another): transform writes into it (StagedTablesSink), load reads it
// (StagedTablesFeed). It ends once the transform has written its manifest section, or fails with
// the error that stopped the extract or the transform.
import type { TransformTableRecord } from './manifest-transform.ts';

/** The transform's side. */
export interface StagedTablesSink {
  /** The tables it will stage, in load order (known at its start). */
  plan(tables: readonly string[]): void;
  /** A table's files (CSV, keys, rejects, contributions, live keys…) are complete and will not change. */
  staged(table: string, record: TransformTableRecord): void;
}

/** The load's side. */
export interface StagedTablesFeed {
  /** The tables the transform will stage, in load order. */
  readonly planned: Promise<readonly string[]>;
  /** The table's record once its files are final; rejects if the run fails first. */
  record(table: string): Promise<TransformTableRecord>;
  /** Resolves once the transform has written its (done) section; rejects with what stopped the run. */
  readonly finished: Promise<void>;
  /** Aborted, with that error as reason, when the extract or the transform failed. */
  readonly failed: AbortSignal;
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  // Nobody may be waiting when it fails (the load ended first): never an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** The feed bin/ makes: transform writes, load reads; `end()` after transform's section, or `fail(error)`. */
export class StagedTables implements StagedTablesSink, StagedTablesFeed {
  readonly #planned = deferred<readonly string[]>();
  readonly #finished = deferred<void>();
  readonly #tables = new Map<string, Deferred<TransformTableRecord>>();
  readonly #stop = new AbortController();
  /** Why no table can come any more (set by end() or fail()). */
  #over: { readonly error: unknown } | null = null;

  get planned(): Promise<readonly string[]> {
    return this.#planned.promise;
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  get failed(): AbortSignal {
    return this.#stop.signal;
  }

  plan(tables: readonly string[]): void {
    this.#planned.resolve([...tables]);
  }

  staged(table: string, record: TransformTableRecord): void {
    this.#slot(table).resolve(record);
  }

  record(table: string): Promise<TransformTableRecord> {
    return this.#slot(table).promise;
  }

  /** The transform wrote its section: a table still awaited will never come (a bug, said so). */
  end(): void {
    if (this.#over) return;
    this.#over = { error: null };
    for (const [table, slot] of this.#tables) slot.reject(notStaged(table));
    this.#planned.reject(new Error('the transform ended without saying which tables it stages (a bug)'));
    this.#finished.resolve();
  }

  fail(error: unknown): void {
    if (this.#over) return;
    this.#over = { error };
    for (const slot of this.#tables.values()) slot.reject(error);
    this.#planned.reject(error);
    this.#finished.reject(error);
    this.#stop.abort(error);
  }

  #slot(table: string): Deferred<TransformTableRecord> {
    let slot = this.#tables.get(table);
    if (!slot) {
      slot = deferred<TransformTableRecord>();
      if (this.#over) slot.reject(this.#over.error ?? notStaged(table));
      this.#tables.set(table, slot);
    }
    return slot;
  }
}

const notStaged = (table: string): Error => new Error(`the transform ended without staging ${table} (a bug)`);
