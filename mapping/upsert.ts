// strategy: upsert — one document, one row: each staged column is a field of the document (a dotted
// path for subdocuments). A document the table's filter leaves out yields no row.
import type { ColumnModel, TableModel } from '../model/types.ts';
import { compilePath, type RawDocument } from './ejson-value.ts';
import { compileFilter } from './filter.ts';

/** Reads one value of a document. */
export type FieldReader = (doc: RawDocument) => unknown;

/** Why a document yields no row (`filtered`, dedupe's `missing_<field>`), or null when it yields one. */
export type SkipTest = (doc: RawDocument) => string | null;

export interface RowMapping {
  readonly table: TableModel;
  /** Staged columns, in pipeline order: the cells of every row. */
  readonly columns: readonly ColumnModel[];
  readonly skip: SkipTest;
  /**
   * Index in `columns` of the column holding the document `_id` (TableModel.documentKey), or null.
   * The key of the document owning a row is its `_id`, converted as that column converts it.
   */
  readonly keyIndex: number | null;
  /**
   * The skip reason of a row whose merge key a row of the same run already holds (load keeps one):
   * dedupe `superseded`, explode `duplicate_in_array`; upsert rows collide only when two `_id`s
   * convert to the same text, and `etl diff` has always counted those under explode's name.
   */
  readonly foldedAs: string;
}

export interface UpsertMapping extends RowMapping {
  readonly strategy: 'upsert';
  /** Per staged column, its value in a document. */
  readonly readers: readonly FieldReader[];
}

export const NOTHING_SKIPPED: SkipTest = () => null;

/** Skip reason of an explode item whose merge key an earlier item of its parent holds. */
export const DUPLICATE_IN_ARRAY = 'duplicate_in_array';

/** The table's filter as a skip test: `filtered` for a document it leaves out. */
export function filterSkip(table: TableModel): SkipTest {
  const keep = compileFilter(table.filter);
  return keep === null ? NOTHING_SKIPPED : (doc) => (keep(doc) ? null : 'filtered');
}

export function indexOfColumn(table: TableModel, name: string | null): number | null {
  if (name === null) return null;
  const i = table.stagedColumns.findIndex((c) => c.name === name);
  if (i < 0) throw new Error(`table ${table.name}: column ${name} is not staged`);
  return i;
}

/** Reads a column's value from the document: a field (dotted path). */
export function fieldReader(table: TableModel, column: ColumnModel): FieldReader {
  const source = column.source;
  switch (source.kind) {
    case 'field':
      return compilePath(source.path);
    case 'parent_id':
      return compilePath('_id');
    default:
      throw new Error(`table ${table.name}: column ${column.name} has source "${source.kind}", which a ${table.strategy} table cannot fill`);
  }
}

export function upsertMapping(table: TableModel): UpsertMapping {
  return {
    strategy: 'upsert',
    table,
    columns: table.stagedColumns,
    skip: filterSkip(table),
    keyIndex: indexOfColumn(table, table.documentKey),
    foldedAs: DUPLICATE_IN_ARRAY,
    readers: table.stagedColumns.map((c) => fieldReader(table, c)),
  };
}

/** The values of a document's row, in staged column order. */
export function rowValues(m: { readonly readers: readonly FieldReader[] }, doc: RawDocument): unknown[] {
  const values: unknown[] = new Array(m.readers.length);
  for (let i = 0; i < m.readers.length; i += 1) values[i] = m.readers[i]!(doc);
  return values;
}
