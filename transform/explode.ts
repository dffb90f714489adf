// strategy: explode — a document's arrays become rows (link tables), one array spec at a time.
//
// - Items are ids or subdocuments, mixed in one array; a subdocument's id is under `item_id_key`.
// - Columns fed by the parent's creation_date / update_date take the item's own date instead when the
//   item is a subdocument carrying one (`item_date_key`): a registration keeps its registration date.
// - Merged by delete_and_insert: every parent document goes to the keys file, including parents whose
//   arrays are empty or absent, so load removes the links they no longer have.
// - An item repeated in one parent (same merge key) is one row; the repeat is counted.
// - A rejected item is one reject line; its parent and sibling items go on. A document whose array
//   is not an array is rejected whole (and kept out of the keys file, so its links stay as they are).
import type { ArraySpec, ColumnModel, TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { Rejection } from './convert.ts';
import { compilePath, kindOf, type RawDocument } from './ejson-value.ts';
import { compileFilter } from './filter.ts';
import { sortedCounts, TableWork, type OutputOptions } from './table-work.ts';

/** How a column gets its value for one item. */
type ValueOf = (doc: RawDocument, itemId: unknown, itemDate: unknown) => unknown;

/** Parent fields that an item's own date replaces. */
const PARENT_DATES = new Set(['creation_date', 'update_date']);

/**
 * Where a column's value comes from for one row: the parent alone (converted once per document,
 * however many items it has), the item, or the item's date when it has one (else the parent's).
 */
const enum Origin {
  Parent = 0,
  Item = 1,
  ItemDate = 2,
}

interface ArrayPlan {
  readonly spec: ArraySpec;
  readonly read: (doc: RawDocument) => unknown;
  readonly itemColumn: string;
  readonly values: readonly ValueOf[];
  readonly origins: readonly Origin[];
}

function originOf(column: ColumnModel, spec: ArraySpec): Origin {
  const source = column.source;
  if (source.kind === 'item_id' || source.kind === 'constant') return Origin.Item;
  if (source.kind === 'field' && column.sqlType.kind === 'timestamp' && PARENT_DATES.has(source.path) && spec.itemDateKey !== null) return Origin.ItemDate;
  return Origin.Parent;
}

function valueOf(table: TableModel, column: ColumnModel, spec: ArraySpec): ValueOf {
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
      if (column.sqlType.kind === 'timestamp' && PARENT_DATES.has(source.path) && spec.itemDateKey !== null) {
        return (doc, _id, itemDate) => (itemDate === undefined || itemDate === null ? read(doc) : itemDate);
      }
      return (doc) => read(doc);
    }
    case 'generated':
      throw new Error(`table ${table.name}: generated column ${column.name} is not staged`);
  }
}

export class ExplodeWork extends TableWork {
  private readonly arrays: readonly ArrayPlan[];
  private readonly keep: ((doc: RawDocument) => boolean) | null;
  private readonly parentIndex: number;
  private readonly mergeIndexes: readonly number[];
  private parents = 0;
  private items = 0;
  private rejectedDocuments = 0;
  private rejectedItems = 0;
  private readonly skippedDocuments: Record<string, number> = {};
  private readonly skippedItems: Record<string, number> = {};

  constructor(table: TableModel, collection: string, o: OutputOptions) {
    const spec = table.explode;
    if (!spec) throw new Error(`table ${table.name}: strategy explode without an explode spec`);
    super(table, collection, o, spec.merge === 'delete_and_insert' ? spec.parentColumn : null);
    this.keep = compileFilter(table.filter);
    this.parentIndex = table.stagedColumns.findIndex((c) => c.name === spec.parentColumn);
    if (this.parentIndex < 0) throw new Error(`table ${table.name}: parent column ${spec.parentColumn} is not staged`);
    this.arrays = spec.arrays.map((a) => ({
      spec: a,
      read: compilePath(a.field),
      itemColumn: a.itemColumn,
      values: table.stagedColumns.map((c) => valueOf(table, c, a)),
      origins: table.stagedColumns.map((c) => originOf(c, a)),
    }));
    this.parentCells = new Array(table.stagedColumns.length);
    this.parentStrips = new Array(table.stagedColumns.length).fill(false);
    this.parentGeneration = new Array(table.stagedColumns.length).fill(-1);
    // Repeats are found on the merge key; without one, on every column an item decides.
    const names = table.mergeKey.length > 0 ? table.mergeKey : table.stagedColumns.filter((c) => c.source.kind !== 'field' || c.name === spec.parentColumn).map((c) => c.name);
    this.mergeIndexes = names.map((n) => table.stagedColumns.findIndex((c) => c.name === n)).filter((i) => i >= 0);
  }

  /** Cells of the parent-only columns of the current document, converted on first use. */
  private readonly parentCells: (Cell | Rejection)[];
  private readonly parentStrips: boolean[];
  private readonly parentGeneration: number[];

  accept(doc: RawDocument): void {
    this.documents += 1;
    if (this.keep && !this.keep(doc)) {
      this.skipDocument('filtered');
      return;
    }
    // For the keys file and to refuse a document without a usable id; rows take the parent id from
    // their own per-document cache (itemRow), which also counts NUL strips per row written.
    const { cell: parent } = this.convertKept(this.columns[this.parentIndex]!, doc._id);
    if (parent instanceof Rejection || parent === null) {
      this.rejectDocument(doc, this.columns[this.parentIndex]!.column.name, doc._id, parent instanceof Rejection ? parent.reason : 'null_in_not_null');
      return;
    }
    // Validate every array before writing anything, so a rejected document leaves no rows behind.
    const lists: (readonly unknown[] | null)[] = [];
    for (const plan of this.arrays) {
      const value = plan.read(doc);
      const kind = kindOf(value);
      if (kind === 'missing' || kind === 'null') lists.push(null);
      else if (kind === 'array') lists.push(value as unknown[]);
      else {
        this.rejectDocument(doc, plan.itemColumn, value, 'not_an_array');
        return;
      }
    }
    this.parents += 1;
    this.keys?.write([parent]);
    let firstKey: string | null = null;
    let seen: Set<string> | null = null;
    for (let a = 0; a < this.arrays.length; a += 1) {
      const list = lists[a];
      if (!list) continue;
      const plan = this.arrays[a]!;
      for (const item of list) {
        this.items += 1;
        const cells = this.itemRow(doc, plan, item);
        if (!cells) continue;
        let key = '';
        for (const i of this.mergeIndexes) key += `${cells[i] ?? '\u0001'}\u0000`;
        // Most parents have one link or none: a Set only from the second row on.
        if (firstKey === null) firstKey = key;
        else {
          seen ??= new Set([firstKey]);
          if (seen.has(key)) {
            this.skipItem('duplicate_in_array');
            this.forgetStrips();
            continue;
          }
          seen.add(key);
        }
        this.writeRow(cells);
      }
    }
  }

  private itemRow(doc: RawDocument, plan: ArrayPlan, item: unknown): Cell[] | null {
    let itemId: unknown = item;
    let itemDate: unknown = undefined;
    if (kindOf(item) === 'document') {
      const sub = item as RawDocument;
      // A subdocument without item_id_key is not an id: its column converter rejects it (not_a_string).
      if (plan.spec.itemIdKey !== null) itemId = sub[plan.spec.itemIdKey];
      if (plan.spec.itemDateKey !== null) itemDate = sub[plan.spec.itemDateKey];
    }
    if (itemId === undefined || itemId === null) {
      this.rejectItem(doc, plan.itemColumn, item, 'missing_item_id');
      return null;
    }
    const cells: Cell[] = new Array(this.columns.length);
    const fromParent = itemDate === undefined || itemDate === null;
    for (let i = 0; i < this.columns.length; i += 1) {
      const origin = plan.origins[i]!;
      let cell: Cell | Rejection;
      if (origin === Origin.Parent || (origin === Origin.ItemDate && fromParent)) {
        // The same for every item of this document: converted once (documents counts generations).
        if (this.parentGeneration[i] !== this.documents) {
          const kept = this.convertKept(this.columns[i]!, plan.values[i]!(doc, itemId, undefined));
          this.parentCells[i] = kept.cell;
          this.parentStrips[i] = kept.stripped;
          this.parentGeneration[i] = this.documents;
        }
        cell = this.parentCells[i]!;
        if (this.parentStrips[i] && !(cell instanceof Rejection)) this.noteStrip(this.columns[i]!.column.name);
      } else {
        cell = this.cell(this.columns[i]!, plan.values[i]!(doc, itemId, itemDate));
      }
      if (cell instanceof Rejection) {
        this.rejectItem(doc, this.columns[i]!.column.name, plan.values[i]!(doc, itemId, itemDate), cell.reason);
        return null;
      }
      cells[i] = cell;
    }
    return cells;
  }

  private rejectDocument(doc: RawDocument, column: string, value: unknown, reason: string): void {
    this.rejectedDocuments += 1;
    this.reject(doc, column, value, reason);
  }

  private rejectItem(doc: RawDocument, column: string, value: unknown, reason: string): void {
    this.rejectedItems += 1;
    this.reject(doc, column, value, reason);
  }

  private skipDocument(reason: string): void {
    this.skippedDocuments[reason] = (this.skippedDocuments[reason] ?? 0) + 1;
    this.skip(reason);
  }

  private skipItem(reason: string): void {
    this.skippedItems[reason] = (this.skippedItems[reason] ?? 0) + 1;
    this.skip(reason);
  }

  protected extra(): Partial<TransformTableRecord> {
    return {
      explode: {
        parents: this.parents,
        items: this.items,
        rejected_documents: this.rejectedDocuments,
        rejected_items: this.rejectedItems,
        skipped_documents: sortedCounts(this.skippedDocuments),
        skipped_items: sortedCounts(this.skippedItems),
      },
    };
  }
}
