// strategy: dedupe — many documents, one row per key (users_logbook: one row per (user, day);
// menu_recipes: one per (menu, recipe)). A document's row is read as upsert reads it; a document
// missing a key field yields none. The latest document of a key wins: greatest `latest_by`, then
// greatest source _id, so the outcome never depends on the order of the extract.
import type { TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import { compilePath } from './ejson-value.ts';
import { fieldReader, filterSkip, indexOfColumn, type FieldReader, type RowMapping, type SkipTest } from './upsert.ts';

/**
 * How latest_by cells are ordered: as integers, as decimals, or as text (a timestamp or a date is
 * fixed-width text, so its text order is its time order).
 */
export type LatestOrder = 'integer' | 'decimal' | 'text';

export type CellCompare = (a: Cell, b: Cell) => number;

/** Skip reason of a document whose key a later (or greater) document holds. */
export const SUPERSEDED = 'superseded';

export interface DedupeMapping extends RowMapping {
  readonly strategy: 'dedupe';
  readonly readers: readonly FieldReader[];
  /** Indexes in `columns` of the dedupe key, in key order. */
  readonly keyIndexes: readonly number[];
  /** Index in `columns` of latest_by. */
  readonly latestIndex: number;
  readonly compareLatest: CellCompare;
}

export function dedupeMapping(table: TableModel): DedupeMapping {
  const spec = table.dedupe;
  if (!spec) throw new Error(`table ${table.name}: strategy dedupe without a dedupe spec`);
  const indexOf = (name: string): number => indexOfColumn(table, name)!;
  const keyIndexes = spec.key.map(indexOf);
  return {
    strategy: 'dedupe',
    table,
    columns: table.stagedColumns,
    skip: keySkip(table, keyIndexes),
    keyIndex: null,
    foldedAs: SUPERSEDED,
    readers: table.stagedColumns.map((c) => fieldReader(table, c)),
    keyIndexes,
    latestIndex: indexOf(spec.latestBy),
    compareLatest: cellComparer(latestOrder(table)),
  };
}

/** The filter first, then every key field: a document without one is skipped, named after the field ("missing_user"). */
function keySkip(table: TableModel, keyIndexes: readonly number[]): SkipTest {
  const filtered = filterSkip(table);
  const keys = keyIndexes.map((i) => {
    const c = table.stagedColumns[i]!;
    // Named after the document's field: "missing_user" is what a person looks for in MongoDB.
    const field = c.source.kind === 'field' ? c.source.path : c.name;
    return { read: compilePath(field), reason: `missing_${field}` };
  });
  return (doc) => {
    const reason = filtered(doc);
    if (reason !== null) return reason;
    for (const k of keys) {
      const v = k.read(doc);
      if (v === undefined || v === null) return k.reason;
    }
    return null;
  };
}

export function latestOrder(table: TableModel): LatestOrder {
  const kind = table.stagedColumns.find((c) => c.name === table.dedupe?.latestBy)?.sqlType.kind;
  if (kind === 'smallint' || kind === 'integer' || kind === 'bigint') return 'integer';
  return kind === 'numeric' ? 'decimal' : 'text';
}

/** Order of two latest_by cells; NULL first. */
export function cellComparer(order: LatestOrder): CellCompare {
  const nullFirst = (a: Cell, b: Cell): number | null => (a === null ? (b === null ? 0 : -1) : b === null ? 1 : null);
  switch (order) {
    case 'integer':
      return (a, b) => nullFirst(a, b) ?? (BigInt(a!) < BigInt(b!) ? -1 : BigInt(a!) > BigInt(b!) ? 1 : 0);
    case 'decimal':
      return (a, b) => nullFirst(a, b) ?? Number(a) - Number(b);
    case 'text':
      return (a, b) => nullFirst(a, b) ?? (a! < b! ? -1 : a! > b! ? 1 : 0);
  }
}

/**
 * Whether a document's row replaces the row kept for its key: a greater latest_by wins, then a
 * greater source `_id` (as the rejects file spells it, compared by code units).
 */
export function replacesKept(m: DedupeMapping, latest: Cell, id: string, keptLatest: Cell, keptId: string): boolean {
  const order = m.compareLatest(latest, keptLatest) || (id < keptId ? -1 : id > keptId ? 1 : 0);
  return order > 0;
}
