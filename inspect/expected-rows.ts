// What a full extract → transform of one document would stage for one table, as plain records, so
// `etl diff` compares PostgreSQL with what a load would write. The cells come from transform's own
// converters (transform/convert.ts) and readers (ejson-value.ts, filter.ts): the type contract is
// not written twice. Only the strategies' "which documents and items become rows" walk is repeated
// here, because transform's strategy classes write staging files and diff writes none.
//
// Unlike transform, a record keeps every cell it could convert even when the row is rejected: the
// key of a rejected or out-of-threshold document still says which PostgreSQL row belongs to a
// document that exists, so that row is never called "extra".
import type { ColumnModel, PipelineModel, TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import { columnConverter, Rejection, type Converter, type NulTally } from '../transform/convert.ts';
import { compilePath, dateMillis, kindOf, type RawDocument } from '../transform/ejson-value.ts';
import { compileFilter } from '../transform/filter.ts';
import { documentIdText } from '../transform/rejects.ts';

/**
 * - `row`: a row the load would write (before duplicates of one key are folded, which SQL does).
 * - `rejected`: transform would refuse it (rejects file); `column`/`reason` say why.
 * - `rejected_document`: an explode parent refused whole; load leaves its current links untouched.
 * - `outside_threshold`: created and updated before the date threshold, so never extracted.
 */
export type RecordStatus = 'row' | 'rejected' | 'rejected_document' | 'outside_threshold';

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
  /** Records of one document; skipped documents bump `skipped` and yield nothing. */
  records(doc: RawDocument, skipped: SkipCounts): ExpectedRecord[];
}

const bump = (counts: SkipCounts, reason: string) => {
  counts[reason] = (counts[reason] ?? 0) + 1;
};

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
  const columns = table.stagedColumns;
  const converters = columns.map((c) => columnConverter(c, settings, tally));
  const keep = compileFilter(table.filter);
  const beforeThreshold = thresholdTest(table, model);
  const statusOf = (doc: RawDocument, rejected: boolean): RecordStatus =>
    beforeThreshold?.(doc) ? 'outside_threshold' : rejected ? 'rejected' : 'row';

  if (table.strategy === 'explode') return explodeMapper(table, columns, converters, keep, statusOf);

  const readers = columns.map((c) => {
    if (c.source.kind === 'field') return compilePath(c.source.path);
    if (c.source.kind === 'parent_id') return compilePath('_id');
    throw new Error(`table ${table.name}: column ${c.name} has source "${c.source.kind}", which a ${table.strategy} table cannot fill`);
  });
  // Dedupe: a document without a key field is skipped, named after the field ("missing_user").
  const keyReaders =
    table.strategy === 'dedupe'
      ? table.dedupe!.key.map((name) => {
          const source = columns.find((c) => c.name === name)!.source;
          const field = source.kind === 'field' ? source.path : name;
          return { read: compilePath(field), reason: `missing_${field}` };
        })
      : [];

  return {
    table,
    records(doc, skipped) {
      if (keep && !keep(doc)) {
        bump(skipped, 'filtered');
        return [];
      }
      for (const k of keyReaders) {
        const v = k.read(doc);
        if (v === undefined || v === null) {
          bump(skipped, k.reason);
          return [];
        }
      }
      const c = convertAll(columns, converters, readers.map((read) => read(doc)));
      return [{ status: statusOf(doc, c.column !== null), sourceId: documentIdText(doc._id), ...c }];
    },
  };
}

/** Parent fields that a subdocument item's own date replaces (transform/explode.ts). */
const PARENT_DATES = new Set(['creation_date', 'update_date']);

function explodeMapper(
  table: TableModel,
  columns: readonly ColumnModel[],
  converters: readonly Converter[],
  keep: ((doc: RawDocument) => boolean) | null,
  statusOf: (doc: RawDocument, rejected: boolean) => RecordStatus,
): TableMapper {
  const spec = table.explode!;
  const parentIndex = columns.findIndex((c) => c.name === spec.parentColumn);
  const arrays = spec.arrays.map((a) => ({
    spec: a,
    read: compilePath(a.field),
    values: columns.map((c): ((doc: RawDocument, itemId: unknown, itemDate: unknown) => unknown) => {
      const s = c.source;
      switch (s.kind) {
        case 'parent_id':
          return (doc) => doc._id;
        case 'item_id':
          return (_doc, itemId) => itemId;
        case 'constant': {
          const value = a.constants[c.name];
          return () => value;
        }
        case 'field': {
          const read = compilePath(s.path);
          if (c.sqlType.kind === 'timestamp' && PARENT_DATES.has(s.path) && a.itemDateKey !== null) {
            return (doc, _id, itemDate) => (itemDate === undefined || itemDate === null ? read(doc) : itemDate);
          }
          return (doc) => read(doc);
        }
        case 'generated':
          throw new Error(`table ${table.name}: generated column ${c.name} is not staged`);
      }
    }),
  }));

  return {
    table,
    records(doc, skipped) {
      if (keep && !keep(doc)) {
        bump(skipped, 'filtered');
        return [];
      }
      const sourceId = documentIdText(doc._id);
      const parentOnly = (parent: Cell, column: string, reason: string): ExpectedRecord[] => {
        const cells: Cell[] = new Array(columns.length).fill(null);
        cells[parentIndex] = parent;
        return [{ status: 'rejected_document', sourceId, cells, column, reason }];
      };
      const parent = converters[parentIndex]!(doc._id);
      if (parent instanceof Rejection || parent === null) {
        return parentOnly(null, spec.parentColumn, parent instanceof Rejection ? parent.reason : 'null_in_not_null');
      }
      const lists: (readonly unknown[] | null)[] = [];
      for (const a of arrays) {
        const value = a.read(doc);
        const kind = kindOf(value);
        if (kind === 'missing' || kind === 'null') lists.push(null);
        else if (kind === 'array') lists.push(value as unknown[]);
        else return parentOnly(parent, a.spec.itemColumn, 'not_an_array');
      }
      const out: ExpectedRecord[] = [];
      for (let i = 0; i < arrays.length; i += 1) {
        const list = lists[i];
        if (!list) continue;
        const a = arrays[i]!;
        for (const item of list) {
          let itemId: unknown = item;
          let itemDate: unknown = undefined;
          if (kindOf(item) === 'document') {
            const sub = item as RawDocument;
            if (a.spec.itemIdKey !== null) itemId = sub[a.spec.itemIdKey];
            if (a.spec.itemDateKey !== null) itemDate = sub[a.spec.itemDateKey];
          }
          const values = a.values.map((v) => v(doc, itemId, itemDate));
          const c = convertAll(columns, converters, values);
          if (itemId === undefined || itemId === null) {
            out.push({ status: statusOf(doc, true), sourceId, ...c, column: a.spec.itemColumn, reason: 'missing_item_id' });
          } else out.push({ status: statusOf(doc, c.column !== null), sourceId, ...c });
        }
      }
      return out;
    },
  };
}
