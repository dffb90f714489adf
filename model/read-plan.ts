// What the next extract reads for one table: in full, or the documents created or updated at or after
// an instant. One home for this decision: extract plans with it (extract/watermark-plan.ts) and
// `etl status` tells what the next run will do with it (inspect/status.ts).
//
// Per table (precedence, first that applies):
//   --full                      → full
//   force_reimport: true        → full (a truncate_before_import table must never get a partial read)
//   emptied by a TRUNCATE       → full, when the table references (through pipeline.yaml's foreign
//                                 keys, transitively) a force_reimport + truncate_before_import table
//                                 the same run loads: its TRUNCATE … CASCADE empties this table before
//                                 it is loaded, so only a full read gives it back its rows
//   --since D                   → D (explicit: the mapping is not checked; see below)
//   mapping changed             → full, when the fingerprint stored with the watermark differs
//                                 from the current one, or the watermark was stored by a version that
//                                 recorded none. Not from the date threshold: the table may hold rows
//                                 of older documents (loaded before the threshold was set, or by
//                                 --full), and only a full read replaces them with the new mapping.
//   otherwise, as the original tool (runner.py): threshold = the table's date_threshold, else the
//   global one (GLOBAL_DATE_THRESHOLD, else settings.date_threshold); with a stored watermark the
//   earlier of watermark and threshold wins (a threshold only ever widens the window backwards);
//   with no stored watermark the threshold alone, or full when there is none.
//
// "No fingerprint stored" for a table that has a watermark means it was loaded by a version before
// fingerprints. Then the pipeline.yaml of its last applied run (etl_runs.pipeline_sha256) decides:
// the same bytes as now → the same mapping (unchanged: no surprise full read after an upgrade, and
// load records the fingerprint); other bytes → unknown whether this table's mapping changed, so it is
// treated as changed (`unrecorded`: read in full once) rather than risk a column never backfilled.
import { PARTIAL } from './fingerprint.ts';
import type { PipelineModel, TableModel } from './types.ts';

export type WatermarkReason =
  | 'full_flag'
  | 'force_reimport'
  | 'truncate_cascade'
  | 'since'
  | 'mapping_changed'
  | 'watermark'
  | 'threshold'
  | 'watermark_and_threshold'
  | 'never_loaded';

/**
 * How the table's current mapping compares with the one its rows were loaded with:
 * unchanged, changed (another fingerprint is stored), unrecorded (a watermark without fingerprint,
 * loaded by an older version with another pipeline.yaml), partial (loaded only from part of its
 * collection, never read in full: model/fingerprint.ts PARTIAL), new (never loaded), unknown (the
 * stored state was not read).
 */
export type MappingState = 'unchanged' | 'changed' | 'unrecorded' | 'partial' | 'new' | 'unknown';

export interface StoredState {
  readonly watermark: Date;
  /** null: stored by a version that recorded no fingerprint. */
  readonly fingerprint: string | null;
  /** sha256 of the pipeline.yaml of the last run applied to the table (etl_runs), when known. */
  readonly lastPipelineSha256?: string | null;
}

export interface TablePlan {
  readonly table: string;
  /** null = read in full. */
  readonly from: Date | null;
  readonly reason: WatermarkReason;
  /** The stored watermark, when one was read. */
  readonly stored: Date | null;
  readonly threshold: Date | null;
  /** The current mapping's fingerprint (model/fingerprint.ts), and the stored one when read. */
  readonly fingerprint: string;
  readonly storedFingerprint: string | null;
  readonly mapping: MappingState;
  /** The force_reimport + truncate_before_import table whose TRUNCATE … CASCADE empties this one in the same run (reason truncate_cascade). */
  readonly truncatedBy?: string;
}

export interface TablePlanInput {
  readonly full: boolean;
  readonly since: Date | null;
  /** The global threshold in force (GLOBAL_DATE_THRESHOLD, else settings.date_threshold). */
  readonly globalThreshold: Date | null;
  /** What etl_watermarks holds for the table; null: never loaded. */
  readonly stored: StoredState | null;
  /** The table's current fingerprint, and the sha256 of the current pipeline.yaml. */
  readonly fingerprint: string;
  readonly pipelineSha256: string;
  /** False when the stored fingerprint was not read: the mapping is then `unknown` and not checked. */
  readonly checkMapping: boolean;
  /** The table the same run truncates with CASCADE, emptying this one (truncatingTable), if any. */
  readonly truncatedBy?: string | null;
}

function mappingState(stored: StoredState | null, fingerprint: string, pipelineSha256: string): MappingState {
  if (stored === null) return 'new';
  if (stored.fingerprint === null) {
    const last = stored.lastPipelineSha256 ?? null;
    return last !== null && last !== pipelineSha256 ? 'unrecorded' : 'unchanged';
  }
  if (stored.fingerprint === PARTIAL) return 'partial';
  return stored.fingerprint === fingerprint ? 'unchanged' : 'changed';
}

function minDate(a: Date, b: Date): Date {
  return a.getTime() <= b.getTime() ? a : b;
}

export function planTableRead(table: TableModel, input: TablePlanInput): TablePlan {
  const stored = input.stored?.watermark ?? null;
  const threshold = table.dateThreshold ?? input.globalThreshold;
  const mapping = input.checkMapping ? mappingState(input.stored, input.fingerprint, input.pipelineSha256) : 'unknown';
  const base = { table: table.name, stored, threshold, fingerprint: input.fingerprint, storedFingerprint: input.stored?.fingerprint ?? null, mapping };
  if (input.full) return { ...base, from: null, reason: 'full_flag' };
  if (table.forceReimport) return { ...base, from: null, reason: 'force_reimport' };
  if (input.truncatedBy) return { ...base, from: null, reason: 'truncate_cascade', truncatedBy: input.truncatedBy };
  if (input.since) return { ...base, from: input.since, reason: 'since' };
  if (mapping === 'changed' || mapping === 'unrecorded' || mapping === 'partial') return { ...base, from: null, reason: 'mapping_changed' };
  if (stored && threshold) return { ...base, from: minDate(stored, threshold), reason: 'watermark_and_threshold' };
  if (stored) return { ...base, from: stored, reason: 'watermark' };
  if (threshold) return { ...base, from: threshold, reason: 'threshold' };
  return { ...base, from: null, reason: 'never_loaded' };
}

/**
 * The force_reimport + truncate_before_import table among `tables` (a run's tables) whose TRUNCATE …
 * CASCADE empties `name`: one it references through pipeline.yaml's foreign keys, directly or through
 * other tables (load/truncate.ts empties the same set, found in the catalogs). Null when none: the
 * table keeps its rows. A table's own truncation is force_reimport's, not this.
 */
export function truncatingTable(model: PipelineModel, name: string, tables: readonly string[]): string | null {
  const truncating = (t: string): boolean => tables.includes(t) && model.tables.get(t)?.forceReimport === true && model.tables.get(t)?.truncateBeforeImport === true;
  const seen = new Set<string>([name]);
  const queue = [name];
  while (queue.length > 0) {
    const table = model.tables.get(queue.shift()!);
    for (const c of table?.columns ?? []) {
      const referenced = c.foreignKey?.table;
      if (referenced === undefined || seen.has(referenced)) continue;
      if (truncating(referenced)) return referenced;
      seen.add(referenced);
      queue.push(referenced);
    }
  }
  return null;
}

/** What a collection read for these tables starts from: the earliest, or full (null) as soon as one is full. */
export function collectionFrom(plans: readonly Pick<TablePlan, 'from'>[]): Date | null {
  let from: Date | null = plans.length ? plans[0]!.from : null;
  for (const t of plans) {
    if (t.from === null || from === null) return null;
    from = minDate(from, t.from);
  }
  return from;
}

/**
 * The read from `from` replaces every row the table can hold, so its mapping can be recorded: a read
 * without date filter; or, for a table never loaded (it holds no row yet), one from at or before its
 * threshold, all its first run reads. A loaded table may hold rows of documents older than its
 * threshold (loaded before it was set, or by --full) that only a read without date filter replaces
 * (see "mapping changed" above): `--since` a date before the threshold is not a full read.
 */
export function coversFullExtent(from: Date | null, table: Pick<TablePlan, 'threshold' | 'mapping'>): boolean {
  return from === null || (table.mapping === 'new' && table.threshold !== null && from.getTime() <= table.threshold.getTime());
}
