// Which documents of each collection this extract reads: in full, or those created or updated at or
// after a watermark W (the seed's `$gte` filter, inclusive so nothing at the boundary is lost), plus
// those a date cannot place (see incrementalQuery).
//
// Per table (precedence, first that applies):
//   --full                      → full
//   force_reimport: true        → full (a truncate_before_import table must never get a partial read)
//   --since D                   → D
//   otherwise, as the original tool (runner.py): threshold = the table's date_threshold, else the
//   global one (GLOBAL_DATE_THRESHOLD, else settings.date_threshold); with a stored watermark the
//   earlier of watermark and threshold wins (a threshold only ever widens the window backwards);
//   with no stored watermark the threshold alone, or full when there is none.
// Per collection: the earliest W of the tables it feeds; full as soon as one of them is full.
import { ObjectId } from 'bson';
import type { CollectionModel, PipelineModel, TableModel } from '../model/types.ts';

export type WatermarkReason = 'full_flag' | 'force_reimport' | 'since' | 'watermark' | 'threshold' | 'watermark_and_threshold' | 'never_loaded';

export interface TablePlan {
  readonly table: string;
  /** null = read in full. */
  readonly from: Date | null;
  readonly reason: WatermarkReason;
  /** The stored watermark, when one was read. */
  readonly stored: Date | null;
  readonly threshold: Date | null;
}

export interface CollectionPlan {
  readonly collection: CollectionModel;
  /** The tables of this extract the collection feeds (a --tables subset may leave some out). */
  readonly tables: readonly TablePlan[];
  /** null = read in full. */
  readonly from: Date | null;
}

export interface PlanInput {
  readonly model: PipelineModel;
  readonly tables: readonly string[];
  readonly full: boolean;
  readonly since: Date | null;
  readonly globalDateThreshold: Date | null;
  /** Stored watermarks by table (tables absent: never loaded). */
  readonly stored: ReadonlyMap<string, Date>;
}

function minDate(a: Date, b: Date): Date {
  return a.getTime() <= b.getTime() ? a : b;
}

export function planTable(table: TableModel, input: PlanInput): TablePlan {
  const stored = input.stored.get(table.name) ?? null;
  const threshold = table.dateThreshold ?? input.globalDateThreshold ?? input.model.settings.dateThreshold;
  const base = { table: table.name, stored, threshold };
  if (input.full) return { ...base, from: null, reason: 'full_flag' };
  if (table.forceReimport) return { ...base, from: null, reason: 'force_reimport' };
  if (input.since) return { ...base, from: input.since, reason: 'since' };
  if (stored && threshold) return { ...base, from: minDate(stored, threshold), reason: 'watermark_and_threshold' };
  if (stored) return { ...base, from: stored, reason: 'watermark' };
  if (threshold) return { ...base, from: threshold, reason: 'threshold' };
  return { ...base, from: null, reason: 'never_loaded' };
}

/** True when the plan cannot be made without the stored watermarks. */
export function needsStoredWatermarks(model: PipelineModel, tables: readonly string[], full: boolean, since: Date | null): boolean {
  if (full || since) return false;
  return tables.some((t) => !model.tables.get(t)!.forceReimport);
}

export function planCollections(collections: readonly CollectionModel[], input: PlanInput): CollectionPlan[] {
  const wanted = new Set(input.tables);
  return collections.map((collection) => {
    const tables = collection.tables.filter((t) => wanted.has(t)).map((t) => planTable(input.model.tables.get(t)!, input));
    let from: Date | null = tables.length ? tables[0]!.from : null;
    for (const t of tables) {
      if (t.from === null || from === null) {
        from = null;
        break;
      }
      from = minDate(from, t.from);
    }
    return { collection, tables, from };
  });
}

/** The ObjectId with the time `at` (whole seconds, floored) and zeros elsewhere: every ObjectId minted at or after `at` sorts at or after it. */
export function objectIdMintedAt(at: Date): ObjectId {
  const seconds = Math.floor(at.getTime() / 1000);
  return ObjectId.createFromTime(Math.min(0xffffffff, Math.max(0, seconds)));
}

/** Neither creation_date nor update_date is a date (or an array holding one): no watermark can see such a document change. */
export function undatedQuery(): Record<string, unknown> {
  return { $nor: [{ creation_date: { $type: 'date' } }, { update_date: { $type: 'date' } }] };
}

/**
 * The incremental query: created or updated at or after `from` (seed, inclusive); or an ObjectId
 * `_id` minted at or after `from`, whatever the dates say (a document captured offline and synced
 * later, an import keeping original dates); or a document without a date to compare (read on
 * every run, counted in the manifest's `undated` census).
 */
export function incrementalQuery(from: Date): Record<string, unknown> {
  return {
    $or: [{ creation_date: { $gte: from } }, { update_date: { $gte: from } }, { _id: { $gte: objectIdMintedAt(from) } }, undatedQuery()],
  };
}

/**
 * What a collection's read asks for. A full read keeps the pipeline's server filter (the OR of its
 * tables' filters). An incremental read does not: a changed document that no longer matches a
 * table's filter (an event whose `__t` left `menu`) must reach transform, which decides membership
 * and stages the ids that left the table.
 */
export function collectionQuery(serverFilter: Readonly<Record<string, unknown>> | null, from: Date | null): Record<string, unknown> {
  if (from) return incrementalQuery(from);
  if (serverFilter && Object.keys(serverFilter).length > 0) return { ...serverFilter };
  return {};
}
