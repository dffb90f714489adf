// The fingerprint of a table's resolved mapping: a hash of everything in the model that decides
// which rows the table holds and what they contain — the source collection, the filter, each column
// (type, nullability, key role, where its value comes from, its foreign key and missing-reference
// policy), the strategy and its spec, the keys — and of the settings that change values (the time
// zone for DATE columns, the NUL-character policy). It is computed from the resolved model, not from
// the YAML text, so comments, key order, anchors, `export_order` or the column order change nothing.
//
// Left out on purpose: what only decides WHEN documents are read (force_reimport,
// truncate_before_import, date_threshold, propagate_deletes, batch size, watermark margin) — they do
// not change the rows a full run yields — and line numbers.
//
// Stored per table in etl_watermarks.fingerprint by load. A table whose stored fingerprint differs
// from the current one is read in full by the next extract (extract/watermark-plan.ts).
import { createHash } from 'node:crypto';
import type { ColumnModel, PipelineModel, Settings, TableModel } from './types.ts';

/**
 * Bump when a change to the tool itself (transform's conversions, the staged row format) changes the
 * rows an unchanged mapping yields: every table then reads its collection in full once.
 */
const FINGERPRINT_FORMAT = 1;

/** `sha256:<64 hex>` of the table's mapping. */
export function tableFingerprint(table: TableModel, settings: Settings): string {
  return `sha256:${createHash('sha256').update(canonicalJson(mappingOf(table, settings))).digest('hex')}`;
}

/** Every table's fingerprint, by table name. */
export function pipelineFingerprints(model: PipelineModel): Map<string, string> {
  return new Map(model.loadOrder.map((name) => [name, tableFingerprint(model.tables.get(name)!, model.settings)]));
}

function columnOf(c: ColumnModel): unknown {
  return {
    name: c.name,
    type: c.sqlTypeText,
    nullable: c.nullable,
    primaryKey: c.primaryKey,
    source: c.source,
    foreignKey: c.foreignKey,
  };
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const sortedKey = (cols: readonly string[]) => [...cols].sort();

function mappingOf(t: TableModel, settings: Settings): unknown {
  const hasDate = t.columns.some((c) => c.sqlType.kind === 'date');
  return {
    format: FINGERPRINT_FORMAT,
    collection: t.collection,
    // conditions only: mongoQuery is derived from them.
    filter: t.filter ? t.filter.conditions : null,
    strategy: t.strategy,
    columns: t.columns.map(columnOf).sort((a, b) => byName(a as { name: string }, b as { name: string })),
    primaryKey: sortedKey(t.primaryKey),
    // The first unique constraint of an explode table is its merge key: the list's order matters.
    uniqueConstraints: t.uniqueConstraints.map(sortedKey),
    mergeKey: sortedKey(t.mergeKey),
    explode: t.explode,
    dedupe: t.dedupe,
    settings: { nulCharacter: settings.nulCharacter, ...(hasDate ? { timezone: settings.timezone } : {}) },
  };
}

/** JSON with object keys sorted at every level, so the same value always gives the same text. */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** What an extract recorded for a table (manifest extract.mappings[table]). */
export interface PlannedMapping {
  /** The fingerprint the extract planned with. */
  readonly fingerprint: string;
  /** The read replaces every row the table can hold (no date filter, or a never-loaded table's read from at or before its threshold: model/read-plan.ts coversFullExtent). */
  readonly fullRead: boolean;
  /**
   * How the extract found the mapping (model/read-plan.ts). `unchanged` with no fingerprint stored:
   * the table was last loaded by an older etl with the same pipeline.yaml, so its rows follow this mapping.
   */
  readonly mapping?: string;
}

/**
 * The fingerprint a table's watermark holds after a load that proves nothing about its mapping when
 * none was stored (never loaded, or loaded by an etl before fingerprints): a read that did not cover
 * the table (`--since`), or a run extracted with another pipeline.yaml (a table added after the
 * extract, transformed with --allow-pipeline-change, got the rows of the documents that run read).
 * No mapping gives it, so the next run reads the table in full. Not null: a watermark without
 * fingerprint means "loaded by an etl before fingerprints", and the next run would take the table
 * for unchanged, since the last run applied to it used the current pipeline.yaml (model/read-plan.ts
 * mappingState).
 */
export const PARTIAL = 'partial';

/**
 * The fingerprint load stores with a table's watermark, given the current model's (`current`), the
 * watermark row the load's database holds (`stored`: undefined when it has none, a null fingerprint
 * when an etl before fingerprints wrote it) and what the run's extract planned (`planned`, null: an
 * extract that recorded none). Pure: the lead's load calls it in its transaction.
 *
 * - The run was planned with another mapping than the current one (pipeline.yaml changed between
 *   extract and load), or recorded none → keep the stored one (none: PARTIAL): this run proves
 *   nothing about the current mapping.
 * - Same as stored → unchanged.
 * - A row without fingerprint, and the extract found the table last loaded with the same
 *   pipeline.yaml by an etl before fingerprints → the rows follow the current mapping: store it.
 *   Not when the database holds no row at all: the extract planned against another database's
 *   watermarks (DATABASE_URL changed between extract and load), and this one holds only the rows
 *   of the documents the run read.
 * - Differs from the stored one (or none stored) → store it only if the run read the table's
 *   documents in full; otherwise keep the old one (none: PARTIAL), so the next run still reads in full.
 */
export function fingerprintToStore(current: string, stored: { readonly fingerprint: string | null } | undefined, planned: PlannedMapping | null): string {
  const kept = stored?.fingerprint ?? PARTIAL;
  if (!planned || planned.fingerprint !== current) return kept;
  if (stored?.fingerprint === current) return current;
  if (stored && stored.fingerprint === null && planned.mapping === 'unchanged') return current;
  return planned.fullRead ? current : kept;
}
