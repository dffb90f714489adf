// The three ends a bad document may come to (README, "The type contract"), as assertions on a
// finished run: rejected with a reason (a line in a rejects file, no row), converted per the
// contract (a row holding exactly the expected value, no reject line), or counted and reported (a
// figure in the manifest or a warning, no reject line).
import assert from 'node:assert/strict';
import type { Manifest } from '../../../staging/manifest.ts';
import { BAD_HEX } from './sample.ts';

export interface RejectRecord {
  collection: string;
  _id: string;
  table: string;
  column: string;
  value: string | null;
  reason: string;
}

/** A run that finished: what an outcome may look at. */
export interface FinishedRun {
  readonly manifest: Manifest;
  readonly warnings: readonly string[];
  /** transform/<table>.rejects.ndjson and load/<table>.rejects.ndjson, parsed. */
  transformRejects(table: string): Promise<RejectRecord[]>;
  loadRejects(table: string): Promise<Record<string, unknown>[]>;
  /** One text value per row: SELECT <column>::text FROM <table> WHERE <key> = $1. */
  values(table: string, column: string, key: string, id: string): Promise<(string | null)[]>;
}

export type OutcomeKind = 'rejected' | 'converted' | 'counted';

export interface Outcome {
  readonly kind: OutcomeKind;
  /** Rows the planted document adds to each table (the clean sample's are checked too). */
  readonly adds: Readonly<Record<string, number>>;
  check(run: FinishedRun): Promise<void>;
}

/** Rows of `table` from the planted document: none, and a reject line saying why. */
export function rejected(table: string, reason: string, column?: string, opts: { id?: string; key?: string; adds?: Record<string, number>; valueIncludes?: string } = {}): Outcome {
  const id = opts.id ?? BAD_HEX;
  const key = opts.key ?? 'id';
  return {
    kind: 'rejected',
    adds: opts.adds ?? {},
    async check(run) {
      const lines = (await run.transformRejects(table)).filter((l) => l._id === id);
      assert.ok(
        lines.some((l) => l.reason === reason && (column === undefined || l.column === column) && (opts.valueIncludes === undefined || (l.value ?? '').includes(opts.valueIncludes))),
        `${table}: expected a reject of ${id} for ${reason}${column ? ` in ${column}` : ''}${opts.valueIncludes ? ` showing ${opts.valueIncludes}` : ''}, found ${JSON.stringify(lines)}`,
      );
      assert.deepEqual(await run.values(table, key, key, id), [], `no ${table} row for ${id}`);
    },
  };
}

/**
 * Rejected by load: the row's reference names a row that does not exist. The load rejects file names
 * the staged CSV line, the column and the missing value; the planted document's row is not loaded.
 */
export function rejectedByLoad(table: string, key: string, column: string, missing: string, adds: Record<string, number> = {}): Outcome {
  return {
    kind: 'rejected',
    adds,
    async check(run) {
      const lines = await run.loadRejects(table);
      assert.ok(
        lines.some((l) => l.reason === 'missing_reference' && l.column === column && l.value === missing),
        `${table}: expected a load reject of ${column} = ${missing}, found ${JSON.stringify(lines)}`,
      );
      assert.deepEqual(await run.values(table, key, key, BAD_HEX), [], `no ${table} row from the planted document`);
    },
  };
}

/** The planted document's row holds exactly `expected` (PostgreSQL's text of it) in `column`. */
export function converted(table: string, column: string, expected: string | null, opts: { key?: string; id?: string; adds?: Record<string, number> } = {}): Outcome {
  const id = opts.id ?? BAD_HEX;
  return {
    kind: 'converted',
    adds: opts.adds ?? { [table]: 1 },
    async check(run) {
      assert.deepEqual(await run.values(table, column, opts.key ?? 'id', id), [expected], `${table}.${column} of ${id}`);
      const lines = (await run.transformRejects(table)).filter((l) => l._id === id);
      assert.deepEqual(lines, [], `no reject of ${id} in ${table}`);
    },
  };
}

/** Counted and reported: `figure` finds the count in the manifest (or the warnings); no reject line. */
export function counted(what: string, figure: (run: FinishedRun) => number, expected: number, opts: { adds?: Record<string, number>; table?: string } = {}): Outcome {
  return {
    kind: 'counted',
    adds: opts.adds ?? {},
    async check(run) {
      assert.equal(figure(run), expected, what);
      if (opts.table) assert.deepEqual((await run.transformRejects(opts.table)).filter((l) => l._id === BAD_HEX), [], `no reject of the planted document in ${opts.table}`);
    },
  };
}

/** A transform skip of `table` for `reason`, counted in the manifest. */
export function skipped(table: string, reason: string, count = 1, adds: Record<string, number> = {}): Outcome {
  return counted(`${table}: skipped ${reason}`, (run) => run.manifest.stages.transform?.tables[table]?.skipped?.[reason] ?? 0, count, { adds, table });
}
