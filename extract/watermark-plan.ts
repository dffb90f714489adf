// Which documents of each collection this extract reads: in full, or those created or updated at or
// after a watermark W (the seed's `$gte` filter, inclusive so nothing at the boundary is lost), plus
// those a date cannot place (see incrementalQuery).
//
// Per table: model/read-plan.ts (--full, force_reimport, a TRUNCATE … CASCADE of the run, --since, a changed mapping, the watermark
// and thresholds). Per collection: the earliest W of the tables it feeds; full as soon as one of them
// is full — so a table whose mapping changed makes its whole collection read in full, and every
// table of that collection is then read in full (recorded per table as `full_read`).
import { ObjectId } from 'bson';
import { documentIdValue } from '../staging/document-identity.ts';
import type { CollectionModel, PipelineModel, TableModel } from '../model/types.ts';
import { tableFingerprint } from '../model/fingerprint.ts';
import type { ExtractMappingRecord } from '../staging/manifest-extract.ts';
import { collectionFrom, coversFullExtent, planTableRead, truncatingTable, type TablePlan } from '../model/read-plan.ts';

export type { MappingState, TablePlan, WatermarkReason } from '../model/read-plan.ts';

export interface CollectionPlan {
  readonly collection: CollectionModel;
  /** The tables of this extract the collection feeds (a --tables subset may leave some out). */
  readonly tables: readonly TablePlan[];
  /** null = read in full. */
  readonly from: Date | null;
  /**
   * An incremental read: the identities (etl_claims, load/claims.ts) of the documents claiming a key
   * another document claims too, in the tables it feeds. They are read whatever their dates say, until
   * the contest ends: the day one of them is gone, the other's row must land, and only a read of it
   * can bring it (and a claimant asked for and not found is known gone).
   */
  readonly claimants: readonly string[];
  /**
   * An incremental read: the documents a load found gone (etl_gone, load/gone-documents.ts) from the
   * tables it feeds, as their rows' key text. They are read whatever their dates: one restored from a
   * backup keeps its old `_id` and dates, and only this read can bring its rows back.
   */
  readonly gone: readonly string[];
}

/**
 * What an incremental read asks for whatever the dates: the contested claimants (identities), and
 * the `_id`s of documents found gone to ask for again (extract/gone-read.ts).
 */
export interface AskedAgain {
  readonly claimants: readonly string[];
  readonly gone: readonly unknown[];
}

const NONE_ASKED: AskedAgain = { claimants: [], gone: [] };

export interface PlanInput {
  readonly model: PipelineModel;
  readonly tables: readonly string[];
  readonly full: boolean;
  readonly since: Date | null;
  readonly globalDateThreshold: Date | null;
  /** Stored watermarks by table (tables absent: never loaded). */
  readonly stored: ReadonlyMap<string, Date>;
  /**
   * Stored fingerprints by table (null: a watermark stored without one). Undefined: they were not
   * read, and mappings are not checked.
   */
  readonly fingerprints?: ReadonlyMap<string, string | null>;
  /** By table: the pipeline.yaml sha256 of the last run applied to it (etl_runs), for watermarks without fingerprint. */
  readonly lastPipelines?: ReadonlyMap<string, string>;
  /** By table: the identities of the documents claiming a contested key (etl_claims). */
  readonly contested?: ReadonlyMap<string, readonly string[]>;
  /** By table: the documents a load found gone (etl_gone). */
  readonly gone?: ReadonlyMap<string, readonly string[]>;
}

export function planTable(table: TableModel, input: PlanInput): TablePlan {
  const watermark = input.stored.get(table.name);
  return planTableRead(table, {
    full: input.full,
    since: input.since,
    globalThreshold: input.globalDateThreshold ?? input.model.settings.dateThreshold,
    stored: watermark ? { watermark, fingerprint: input.fingerprints?.get(table.name) ?? null, lastPipelineSha256: input.lastPipelines?.get(table.name) ?? null } : null,
    fingerprint: tableFingerprint(table, input.model.settings),
    pipelineSha256: input.model.sha256,
    checkMapping: input.fingerprints !== undefined,
    truncatedBy: truncatingTable(input.model, table.name, input.tables),
  });
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
    const from = collectionFrom(tables);
    // A full read reads every claimant, and every document there is, anyway.
    const ofTables = (byTable: ReadonlyMap<string, readonly string[]> | undefined) => (from === null ? [] : [...new Set(tables.flatMap((t) => byTable?.get(t.table) ?? []))].sort());
    return { collection, tables, from, claimants: ofTables(input.contested), gone: ofTables(input.gone) };
  });
}

/** Per table of the extract: the fingerprint planned with, whether the read covers the table in full. */
export function mappingRecords(plans: readonly CollectionPlan[]): Record<string, ExtractMappingRecord> {
  const out: Record<string, ExtractMappingRecord> = {};
  for (const plan of plans) {
    for (const t of plan.tables) {
      out[t.table] = { fingerprint: t.fingerprint, full_read: coversFullExtent(plan.from, t), mapping: t.mapping, stored_fingerprint: t.storedFingerprint };
    }
  }
  return out;
}

/** One warning per table read in full because its mapping changed (or was never recorded). */
export function mappingWarnings(plans: readonly CollectionPlan[]): string[] {
  const out: string[] = [];
  for (const plan of plans) {
    for (const t of plan.tables) {
      if (t.reason !== 'mapping_changed') continue;
      const what =
        t.mapping === 'unrecorded'
          ? 'was loaded by a version of etl that recorded no mapping fingerprint, with another pipeline.yaml'
          : t.mapping === 'partial'
            ? 'was never read in full with its mapping (loaded only from part of its collection: by reads from a date, --since, or from a run extracted with another pipeline.yaml)'
            : 'has a changed mapping in pipeline.yaml since its last load';
      out.push(`${t.table} ${what}: collection ${plan.collection.name} is read in full (mapping_changed), so the table ends as a full run would make it`);
    }
  }
  return out;
}

/**
 * A date threshold in the future (2099 for 2019?): the tables that read from it alone (no watermark
 * yet) read nothing until then. Said once per threshold, naming the tables.
 */
export function thresholdWarnings(plans: readonly CollectionPlan[], now: Date): string[] {
  const byThreshold = new Map<string, string[]>();
  for (const t of plans.flatMap((p) => p.tables)) {
    if (t.reason !== 'threshold' || !t.threshold || t.threshold.getTime() <= now.getTime()) continue;
    const at = t.threshold.toISOString();
    byThreshold.set(at, [...(byThreshold.get(at) ?? []), t.table]);
  }
  return [...byThreshold].map(([at, tables]) => `date threshold ${at} is in the future: ${tables.join(', ')} read${tables.length === 1 ? 's' : ''} no document until then (GLOBAL_DATE_THRESHOLD, settings.date_threshold or the table's date_threshold: is the year right?)`);
}

/** What the plan tells the user: mapping changes read in full, thresholds in the future. */
export function planWarnings(plans: readonly CollectionPlan[], now = new Date()): string[] {
  return [...mappingWarnings(plans), ...thresholdWarnings(plans, now)];
}

/** The ObjectId with the time `at` (whole seconds, floored) and zeros elsewhere: every ObjectId minted at or after `at` sorts at or after it. */
function objectIdMintedAt(at: Date): ObjectId {
  const seconds = Math.floor(at.getTime() / 1000);
  return ObjectId.createFromTime(Math.min(0xffffffff, Math.max(0, seconds)));
}

/**
 * update_date is not a date (nor an array holding one): no watermark can see such a document change,
 * whatever its creation_date (which an edit never moves). The edit that wrote a string there is itself
 * seen only so.
 */
function undatedQuery(): Record<string, unknown> {
  return { $nor: [{ update_date: { $type: 'date' } }] };
}

/**
 * The incremental query: created or updated at or after `from` (seed, inclusive); or an ObjectId
 * `_id` minted at or after `from`, whatever the dates say (a document captured offline and synced
 * later, an import keeping original dates); or a document without an update_date to compare (read
 * on every run, counted in the manifest's `undated` census); or one asked for again (`asked`).
 */
export function incrementalQuery(from: Date, asked: AskedAgain = NONE_ASKED): Record<string, unknown> {
  const ids = [...asked.claimants.map(documentIdValue), ...asked.gone];
  const again = ids.length > 0 ? [{ _id: { $in: ids } }] : [];
  return {
    $or: [{ creation_date: { $gte: from } }, { update_date: { $gte: from } }, { _id: { $gte: objectIdMintedAt(from) } }, undatedQuery(), ...again],
  };
}

/**
 * What a collection's read asks for. A full read keeps the pipeline's server filter (the OR of its
 * tables' filters). An incremental read does not: a changed document that no longer matches a
 * table's filter (an event whose `__t` left `menu`) must reach transform, which decides membership
 * and stages the ids that left the table.
 */
export function collectionQuery(serverFilter: Readonly<Record<string, unknown>> | null, from: Date | null, asked: AskedAgain = NONE_ASKED): Record<string, unknown> {
  if (from) return incrementalQuery(from, asked);
  if (serverFilter && Object.keys(serverFilter).length > 0) return { ...serverFilter };
  return {};
}
