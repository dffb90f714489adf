// strategy: explode in transform — the items of a document's arrays (mapping/explode.ts), converted
// and written, one row each.
//
// - Every document offered goes to the keys file, parents whose arrays are empty or absent, documents
//   the filter leaves out and documents refused whole included, so load removes the links they no
//   longer have (a full run would have none for them).
// - An item repeated in one parent (same merge key) is one row; the repeat is counted.
// - A rejected item is one reject line; its parent and sibling items go on. A document whose array
//   is not an array is rejected whole: its links go.
import { arrayLists, DUPLICATE_IN_ARRAY, forEachItem, lacksItemId, NotAnArray, Origin, type ArrayMapping, type ExplodeMapping } from '../mapping/explode.ts';
import type { Cell } from '../staging/csv.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { Rejection } from '../mapping/convert.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { sortedCounts, TableWork, type OutputOptions } from './table-work.ts';

export class ExplodeWork extends TableWork {
  private readonly mapping: ExplodeMapping;
  private parents = 0;
  private items = 0;
  private rejectedDocuments = 0;
  private rejectedItems = 0;
  private readonly skippedDocuments: Record<string, number> = {};
  private readonly skippedItems: Record<string, number> = {};
  /** Cells of the parent-only columns of the current document, converted on first use. */
  private readonly parentCells: (Cell | Rejection)[];
  private readonly parentStrips: boolean[];
  private readonly parentGeneration: number[];
  /** The document's first row, and the merge keys of its rows once it has a second: repeats are skipped. */
  private firstRow: Cell[] | null = null;
  private seen: Set<string> | null = null;
  private readonly visit = this.item.bind(this);

  constructor(mapping: ExplodeMapping, collection: string, o: OutputOptions) {
    super(mapping.table, collection, o);
    this.mapping = mapping;
    const n = mapping.columns.length;
    this.parentCells = new Array(n);
    this.parentStrips = new Array(n).fill(false);
    this.parentGeneration = new Array(n).fill(-1);
  }

  accept(doc: RawDocument): void {
    this.documents += 1;
    // Every document names itself in the keys file (filtered out or refused too: its links go).
    // Rows take the parent id from their own per-document cache (itemRow), which also counts NUL
    // strips per row written.
    const parent = this.noteDocument(doc);
    const skipped = this.mapping.skip(doc);
    if (skipped !== null) {
      this.skipDocument(skipped);
      return;
    }
    if (parent === null) {
      const cell = this.documentKeyCell(doc);
      this.rejectDocument(doc, this.columns[this.mapping.keyIndex]!.column.name, doc._id, cell instanceof Rejection ? cell.reason : 'null_in_not_null');
      return;
    }
    // Every array is read before anything is written, so a rejected document leaves no rows behind.
    const lists = arrayLists(this.mapping, doc);
    if (lists instanceof NotAnArray) {
      this.rejectDocument(doc, lists.array.spec.itemColumn, lists.value, 'not_an_array');
      return;
    }
    this.parents += 1;
    this.firstRow = null;
    this.seen = null;
    forEachItem(this.mapping, doc, lists, this.visit);
  }

  private item(doc: RawDocument, array: ArrayMapping, itemId: unknown, itemDate: unknown, item: unknown): void {
    this.items += 1;
    if (lacksItemId(itemId)) {
      this.rejectItem(doc, array.spec.itemColumn, item, 'missing_item_id');
      return;
    }
    const cells = this.itemRow(doc, array, itemId, itemDate);
    if (!cells) return;
    // Most parents have one link or none: repeat keys and a Set only from the second row on.
    if (this.firstRow === null) this.firstRow = cells;
    else {
      this.seen ??= new Set([this.repeatKey(this.firstRow)]);
      const key = this.repeatKey(cells);
      if (this.seen.has(key)) {
        this.skipItem(DUPLICATE_IN_ARRAY);
        this.forgetStrips();
        return;
      }
      this.seen.add(key);
    }
    this.writeRow(cells);
  }

  /** The row's merge key as one string (NULL apart from every text). */
  private repeatKey(cells: readonly Cell[]): string {
    let key = '';
    for (const i of this.mapping.repeatIndexes) key += `${cells[i] ?? '\u0001'}\u0000`;
    return key;
  }

  private itemRow(doc: RawDocument, array: ArrayMapping, itemId: unknown, itemDate: unknown): Cell[] | null {
    const cells: Cell[] = new Array(this.columns.length);
    const fromParent = itemDate === undefined || itemDate === null;
    for (let i = 0; i < this.columns.length; i += 1) {
      const origin = array.origins[i]!;
      const cell = origin === Origin.Parent || (origin === Origin.ItemDate && fromParent) ? this.parentCell(doc, array, i) : this.cell(this.columns[i]!, array.values[i]!(doc, itemId, itemDate));
      if (cell instanceof Rejection) {
        this.rejectItem(doc, this.columns[i]!.column.name, array.values[i]!(doc, itemId, itemDate), cell.reason);
        return null;
      }
      cells[i] = cell;
    }
    const long = this.keyOverflow(cells);
    if (long >= 0) {
      this.rejectItem(doc, this.columns[long]!.column.name, cells[long], 'key_too_long');
      return null;
    }
    return cells;
  }

  /** A cell that is the same for every item of this document: converted once (documents counts generations). */
  private parentCell(doc: RawDocument, array: ArrayMapping, i: number): Cell | Rejection {
    if (this.parentGeneration[i] !== this.documents) {
      const kept = this.convertKept(this.columns[i]!, array.values[i]!(doc, undefined, undefined));
      this.parentCells[i] = kept.cell;
      this.parentStrips[i] = kept.stripped;
      this.parentGeneration[i] = this.documents;
    }
    const cell = this.parentCells[i]!;
    if (this.parentStrips[i] && !(cell instanceof Rejection)) this.noteStrip(this.columns[i]!.column.name);
    return cell;
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
