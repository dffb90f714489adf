// strategy: explode — a document's arrays become rows (link tables), one array spec at a time.
//
// - Items are ids or subdocuments, mixed in one array; a subdocument's id is under `item_id_key`.
// - Columns fed by the parent's creation_date / update_date take the item's own date instead when the
//   item is a subdocument carrying one (`item_date_key`): a registration keeps its registration date.
// - A document whose array field holds something else than an array (or null, or nothing) is
//   refused whole: its arrays are all read before any item is offered.
// - Two items of one parent with the same merge key are one row (the first).
import type { ArraySpec, ColumnModel, ExplodeSpec, TableModel } from '../model/types.ts';
import { compilePath, documentFields, kindOf, type RawDocument } from '../transform/ejson-value.ts';
import { DUPLICATE_IN_ARRAY, filterSkip, indexOfColumn, type FieldReader, type RowMapping } from './upsert.ts';

export { DUPLICATE_IN_ARRAY } from './upsert.ts';

/** How a column gets its value for one item. */
export type ItemValue = (doc: RawDocument, itemId: unknown, itemDate: unknown) => unknown;

/**
 * Where a column's value comes from for one row: the parent alone (the same for every item of a
 * document, so a caller may convert it once per document), the item, or the item's date when it
 * has one (else the parent's).
 */
export const Origin = { Parent: 0, Item: 1, ItemDate: 2 } as const;
export type Origin = (typeof Origin)[keyof typeof Origin];

export interface ArrayMapping {
  readonly spec: ArraySpec;
  readonly read: FieldReader;
  /** Per staged column, its value for an item of this array. */
  readonly values: readonly ItemValue[];
  readonly origins: readonly Origin[];
}

export interface ExplodeMapping extends RowMapping {
  readonly strategy: 'explode';
  readonly spec: ExplodeSpec;
  /** The parent column's index (the document key: an explode row belongs to its parent document). */
  readonly keyIndex: number;
  readonly arrays: readonly ArrayMapping[];
  /** Indexes of the columns on which two items of one parent are the same row. */
  readonly repeatIndexes: readonly number[];
}

/** A document's arrays in spec order (null: absent or null), or the first array field that is not one. */
export type ArrayLists = readonly (readonly unknown[] | null)[] | NotAnArray;

export class NotAnArray {
  constructor(
    readonly array: ArrayMapping,
    readonly value: unknown,
  ) {}
}

/** One item: the document, its array, the item's id and own date (undefined when none), the item itself. */
export type ItemVisitor = (doc: RawDocument, array: ArrayMapping, itemId: unknown, itemDate: unknown, item: unknown) => void;

/** Parent fields that an item's own date replaces. */
const PARENT_DATES = new Set(['creation_date', 'update_date']);

function takesItemDate(column: ColumnModel, spec: ArraySpec): boolean {
  const source = column.source;
  return source.kind === 'field' && column.sqlType.kind === 'timestamp' && PARENT_DATES.has(source.path) && spec.itemDateKey !== null;
}

function originOf(column: ColumnModel, spec: ArraySpec): Origin {
  const kind = column.source.kind;
  if (kind === 'item_id' || kind === 'constant') return Origin.Item;
  return takesItemDate(column, spec) ? Origin.ItemDate : Origin.Parent;
}

function itemValue(table: TableModel, column: ColumnModel, spec: ArraySpec): ItemValue {
  const source = column.source;
  switch (source.kind) {
    case 'parent_id':
      return (doc) => doc._id;
    case 'item_id':
      return (_doc, itemId) => itemId;
    case 'constant': {
      const value = spec.constants[column.name];
      return () => value;
    }
    case 'field': {
      const read = compilePath(source.path);
      if (takesItemDate(column, spec)) return (doc, _id, itemDate) => (itemDate === undefined || itemDate === null ? read(doc) : itemDate);
      return (doc) => read(doc);
    }
    case 'generated':
      throw new Error(`table ${table.name}: generated column ${column.name} is not staged`);
  }
}

export function explodeMapping(table: TableModel): ExplodeMapping {
  const spec = table.explode;
  if (!spec) throw new Error(`table ${table.name}: strategy explode without an explode spec`);
  const columns = table.stagedColumns;
  // Repeats are found on the merge key; without one, on every column an item decides.
  const repeat = table.mergeKey.length > 0 ? table.mergeKey : columns.filter((c) => c.source.kind !== 'field' || c.name === spec.parentColumn).map((c) => c.name);
  return {
    strategy: 'explode',
    table,
    columns,
    skip: filterSkip(table),
    keyIndex: indexOfColumn(table, spec.parentColumn)!,
    foldedAs: DUPLICATE_IN_ARRAY,
    spec,
    arrays: spec.arrays.map((a) => ({
      spec: a,
      read: compilePath(a.field),
      values: columns.map((c) => itemValue(table, c, a)),
      origins: columns.map((c) => originOf(c, a)),
    })),
    repeatIndexes: repeat.map((n) => columns.findIndex((c) => c.name === n)).filter((i) => i >= 0),
  };
}

export function arrayLists(m: ExplodeMapping, doc: RawDocument): ArrayLists {
  const lists: (readonly unknown[] | null)[] = new Array(m.arrays.length);
  for (let a = 0; a < m.arrays.length; a += 1) {
    const array = m.arrays[a]!;
    const value = array.read(doc);
    const kind = kindOf(value);
    if (kind === 'missing' || kind === 'null') lists[a] = null;
    else if (kind === 'array') lists[a] = value as unknown[];
    else return new NotAnArray(array, value);
  }
  return lists;
}

/** Offers every item of the lists to `visit`, array by array, in array order. */
export function forEachItem(m: ExplodeMapping, doc: RawDocument, lists: readonly (readonly unknown[] | null)[], visit: ItemVisitor): void {
  for (let a = 0; a < m.arrays.length; a += 1) {
    const list = lists[a];
    if (!list) continue;
    const array = m.arrays[a]!;
    const { itemIdKey, itemDateKey } = array.spec;
    for (const item of list) {
      let itemId: unknown = item;
      let itemDate: unknown = undefined;
      if (kindOf(item) === 'document') {
        // A subdocument staged escaped (a key starting with `$`) holds its keys in the escape.
        const sub = documentFields(item);
        // A subdocument without item_id_key is not an id: its column converter rejects it (not_a_string).
        if (itemIdKey !== null) itemId = sub[itemIdKey];
        if (itemDateKey !== null) itemDate = sub[itemDateKey];
      }
      visit(doc, array, itemId, itemDate, item);
    }
  }
}

/** An item without an id (absent or null) yields no row: `missing_item_id`. */
export function lacksItemId(itemId: unknown): boolean {
  return itemId === undefined || itemId === null;
}

/** The values of an item's row, in staged column order. */
export function itemValues(array: ArrayMapping, doc: RawDocument, itemId: unknown, itemDate: unknown): unknown[] {
  return array.values.map((value) => value(doc, itemId, itemDate));
}
