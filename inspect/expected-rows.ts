// What a full extract → transform of one document would stage for one table, as plain records, so
// `etl diff` compares PostgreSQL with what a load would write. Which documents and items become
// rows, and their values, come from the table's mapping (mapping/), the cells from transform's own
// converters (mapping/convert.ts): neither is written twice.
//
// Unlike transform, a record keeps every cell it could convert even when the row is rejected: the
// key of a rejected or out-of-threshold document still says which PostgreSQL row belongs to a
// document that exists, so that row is never called "extra".
import type { DedupeMapping } from '../mapping/dedupe.ts';
import { arrayLists, forEachItem, itemValues, lacksItemId, NotAnArray, type ExplodeMapping } from '../mapping/explode.ts';
import { tableMapping } from '../mapping/index.ts';
import { rowValues, type UpsertMapping } from '../mapping/upsert.ts';
import type { ColumnModel, PipelineModel, TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import { columnConverter, Rejection, type Converter, type NulTally } from '../mapping/convert.ts';
import { dateMillis, kindOf, type RawDocument } from '../mapping/ejson-value.ts';
import { documentIdText } from '../transform/rejects.ts';
import { keyOverflow, keyTextTooLong } from '../mapping/key-size.ts';

/**
 * - `row`: a row the load would write (before duplicates of one key are folded, which SQL does).
 * - `rejected`: transform would refuse it (rejects file); `column`/`reason` say why.
 * - `rejected_document`: an explode parent refused whole; load leaves its current links untouched.
 * - `outside_threshold`: created and updated before the date threshold, so never extracted.
 * - `claim`: a document that yields no other record (skipped by the filter, an explode parent with
 *   no item) still claims its key in the keys file (load/claims.ts): only its document key cell.
 */
export type RecordStatus = 'row' | 'rejected' | 'rejected_document' | 'outside_threshold' | 'claim';

export interface ExpectedRecord {
  readonly status: RecordStatus;
  /** Source document `_id` as the rejects file spells it. */
  readonly sourceId: string;
  /** Staged columns in pipeline order; a cell that could not be converted is null. */
  readonly cells: readonly Cell[];
  readonly column: string | null;
  readonly reason: string | null;
}

/** Documents not turned into any record, by reason (transform's `skipped` names). */
export type SkipCounts = Record<string, number>;

export interface TableMapper {
  readonly table: TableModel;
  /** The skip reason of rows folded into another of the same key (see RowMapping.foldedAs). */
  readonly foldedAs: string;
  /** Records of one document; skipped documents bump `skipped` and yield nothing but their claim. */
  records(doc: RawDocument, skipped: SkipCounts): ExpectedRecord[];
  /**
   * The claim of a document the collection's read takes and the table's own filter leaves out (the
   * collection is read for another table too): the keys file names it all the same.
   */
  claim(doc: RawDocument): ExpectedRecord[];
}

/** Documents created and updated before `threshold` are never extracted (extract/watermark-plan.ts). */
function thresholdTest(table: TableModel, model: PipelineModel): ((doc: RawDocument) => boolean) | null {
  if (table.forceReimport) return null; // force_reimport reads in full, threshold or not
  const threshold = table.dateThreshold ?? model.settings.dateThreshold;
  if (!threshold) return null;
  const t = threshold.getTime();
  // The extract's query is `creation_date >= T OR update_date >= T` on BSON dates: anything else never matches.
  const atOrAfter = (v: unknown) => kindOf(v) === 'date' && dateMillis(v) >= t;
  return (doc) => !(atOrAfter(doc.creation_date) || atOrAfter(doc.update_date));
}

interface Converted {
  readonly cells: Cell[];
  readonly column: string | null;
  readonly reason: string | null;
}

/** Converts every value; remembers the first failure (in column order, as transform reports it). */
function convertAll(columns: readonly ColumnModel[], converters: readonly Converter[], values: readonly unknown[]): Converted {
  const cells: Cell[] = new Array(columns.length);
  let column: string | null = null;
  let reason: string | null = null;
  for (let i = 0; i < columns.length; i += 1) {
    const out = converters[i]!(values[i]);
    if (out instanceof Rejection) {
      cells[i] = null;
      if (column === null) {
        column = columns[i]!.name;
        reason = out.reason;
      }
    } else cells[i] = out;
  }
  return { cells, column, reason };
}

export function tableMapper(table: TableModel, model: PipelineModel): TableMapper {
  // The NUL tally only feeds transform's `altered` counts; diff has no use for them.
  const tally: NulTally = { stripped: false };
  const settings = { timezone: model.settings.timezone, nulCharacter: model.settings.nulCharacter };
  const converters = table.stagedColumns.map((c) => columnConverter(c, settings, tally));
  const beforeThreshold = thresholdTest(table, model);
  const statusOf = (doc: RawDocument, rejected: boolean): RecordStatus => (beforeThreshold?.(doc) ? 'outside_threshold' : rejected ? 'rejected' : 'row');
  const mapping = tableMapping(table);
  const records = mapping.strategy === 'explode' ? explodeRecords(mapping, converters, statusOf) : rowRecords(mapping, converters, statusOf);
  const claim = claimOf(table, converters, beforeThreshold);
  return {
    table,
    foldedAs: mapping.foldedAs,
    claim,
    records(doc, skipped) {
      const reason = mapping.skip(doc);
      if (reason !== null) {
        skipped[reason] = (skipped[reason] ?? 0) + 1;
        return claim(doc);
      }
      const out = records(doc);
      return out.length > 0 ? out : claim(doc);
    },
  };
}

/**
 * The `claim` record of a document that yields no other: every document read names itself in the
 * keys file under its document key, so two documents of one key contest it even when one yields no
 * row (load/claims.ts). None for a dedupe table (its keys are not the documents'), a document never
 * extracted (before the threshold), or an `_id` the key column cannot hold.
 */
function claimOf(table: TableModel, converters: readonly Converter[], beforeThreshold: ((doc: RawDocument) => boolean) | null): (doc: RawDocument) => ExpectedRecord[] {
  const index = table.strategy === 'dedupe' || table.documentKey === null ? -1 : table.stagedColumns.findIndex((c) => c.name === table.documentKey);
  if (index < 0) return () => [];
  return (doc) => {
    if (beforeThreshold?.(doc)) return [];
    const key = converters[index]!(doc._id);
    if (key instanceof Rejection || key === null || keyTextTooLong(key)) return [];
    const cells: Cell[] = new Array(table.stagedColumns.length).fill(null);
    cells[index] = key;
    return [{ status: 'claim', sourceId: documentIdText(doc._id), cells, column: null, reason: null }];
  };
}

type StatusOf = (doc: RawDocument, rejected: boolean) => RecordStatus;

/** upsert and dedupe: a document's one row (folding a dedupe key's rows is SQL's, see diff-sql.ts). */
function rowRecords(mapping: UpsertMapping | DedupeMapping, converters: readonly Converter[], statusOf: StatusOf): (doc: RawDocument) => ExpectedRecord[] {
  const overflow = keyOverflow(mapping.table);
  return (doc) => {
    const c = refuseLongKey(convertAll(mapping.columns, converters, rowValues(mapping, doc)), mapping.columns, overflow);
    return [{ status: statusOf(doc, c.column !== null), sourceId: documentIdText(doc._id), ...c }];
  };
}

/** A converted row whose key is too long to index (mapping/key-size.ts) is refused, as transform refuses it. */
function refuseLongKey(c: Converted, columns: readonly ColumnModel[], overflow: (cells: readonly Cell[]) => number): Converted {
  if (c.column !== null) return c;
  const long = overflow(c.cells);
  return long < 0 ? c : { cells: c.cells, column: columns[long]!.name, reason: 'key_too_long' };
}

/** explode: a record per item, or one `rejected_document` for a parent refused whole. */
function explodeRecords(mapping: ExplodeMapping, converters: readonly Converter[], statusOf: StatusOf): (doc: RawDocument) => ExpectedRecord[] {
  const columns = mapping.columns;
  const parentOnly = (sourceId: string, parent: Cell, column: string, reason: string): ExpectedRecord[] => {
    const cells: Cell[] = new Array(columns.length).fill(null);
    cells[mapping.keyIndex] = parent;
    return [{ status: 'rejected_document', sourceId, cells, column, reason }];
  };
  const overflow = keyOverflow(mapping.table);
  return (doc) => {
    const sourceId = documentIdText(doc._id);
    const parent = converters[mapping.keyIndex]!(doc._id);
    if (parent instanceof Rejection || parent === null) {
      return parentOnly(sourceId, null, mapping.spec.parentColumn, parent instanceof Rejection ? parent.reason : 'null_in_not_null');
    }
    if (keyTextTooLong(parent)) return parentOnly(sourceId, null, mapping.spec.parentColumn, 'key_too_long');
    const lists = arrayLists(mapping, doc);
    if (lists instanceof NotAnArray) return parentOnly(sourceId, parent, lists.array.spec.itemColumn, 'not_an_array');
    const out: ExpectedRecord[] = [];
    forEachItem(mapping, doc, lists, (_doc, array, itemId, itemDate) => {
      const c = refuseLongKey(convertAll(columns, converters, itemValues(array, doc, itemId, itemDate)), columns, overflow);
      if (lacksItemId(itemId)) out.push({ status: statusOf(doc, true), sourceId, ...c, column: array.spec.itemColumn, reason: 'missing_item_id' });
      else out.push({ status: statusOf(doc, c.column !== null), sourceId, ...c });
    });
    return out;
  };
}
