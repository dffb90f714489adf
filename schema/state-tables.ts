// The tool's own state in PostgreSQL, created by `etl schema` beside the data tables, changed only
// in a load's transaction.
// - etl_watermarks: per table, where the next incremental extract starts. Not MAX(updated_at) of
//   the data: a document written while an extract ran must still be read by the next run, and only
//   the extract's start time (minus a margin) says so.
// - etl_runs: the ledger of applied runs (a run loaded twice changes nothing).
// - etl_pending: rows refused for a missing reference and references set NULL by `set_null`, kept
//   so that every later load can land them as soon as the referenced row exists.
// - etl_contrib_<table>, per dedupe table: the row each source document contributes, so a rollup
//   row is recomputed exactly from all the documents of its key when any of them changes.
import { createHash } from 'node:crypto';
import type { PipelineModel, TableModel } from '../model/types.ts';
import { sqlTypeText } from '../model/sql-types.ts';
import { ident } from './sql.ts';
import { contributionsDocumentColumn } from '../mapping/scope.ts';

export { contributionsDocumentColumn } from '../mapping/scope.ts';

export const WATERMARKS_TABLE = 'etl_watermarks';
export const RUNS_TABLE = 'etl_runs';
export const PENDING_TABLE = 'etl_pending';
export const STATE_TABLES: readonly string[] = Object.freeze([WATERMARKS_TABLE, RUNS_TABLE, PENDING_TABLE]);

/** Per table: the instant the next incremental extract starts from, and the run that set it. */
export const watermarksTableSql =
  `CREATE TABLE IF NOT EXISTS ${ident(WATERMARKS_TABLE)} (\n` +
  `  ${ident('table_name')} TEXT PRIMARY KEY,\n` +
  `  ${ident('watermark')} TIMESTAMPTZ NOT NULL,\n` +
  `  ${ident('run_id')} TEXT NOT NULL,\n` +
  `  ${ident('updated_at')} TIMESTAMPTZ NOT NULL DEFAULT now()\n` +
  `)`;

/** Per run and table: what load did, so re-loading an applied run is recognised and audited. */
export const runsTableSql =
  `CREATE TABLE IF NOT EXISTS ${ident(RUNS_TABLE)} (\n` +
  `  ${ident('run_id')} TEXT,\n` +
  `  ${ident('table_name')} TEXT,\n` +
  `  ${ident('pipeline_sha256')} TEXT NOT NULL,\n` +
  `  ${ident('loaded_at')} TIMESTAMPTZ NOT NULL DEFAULT now(),\n` +
  `  ${ident('summary')} JSONB NOT NULL,\n` +
  `  PRIMARY KEY (${ident('run_id')}, ${ident('table_name')})\n` +
  `)`;

/**
 * One entry per row of a table that is held back (kind `row`: refused for a missing reference, its
 * staged values in `row`) or loaded with references set NULL (kind `null`: the values they should
 * have in `row`). `row_key` is the row's merge key as a JSON array, `owner` the `_id` of the
 * document that owns it (null for dedupe rows, owned by their key), `missing` column → value of the
 * references not found, `run_id`/`since` when it was first held back, `seen_run` the last run that
 * staged it again (entries of restaged documents that a run did not see again are dropped).
 */
export const pendingTableSql =
  `CREATE TABLE IF NOT EXISTS ${ident(PENDING_TABLE)} (\n` +
  `  ${ident('table_name')} TEXT NOT NULL,\n` +
  `  ${ident('row_key')} JSONB NOT NULL,\n` +
  `  ${ident('owner')} TEXT,\n` +
  `  ${ident('kind')} TEXT NOT NULL CHECK (${ident('kind')} IN ('row', 'null')),\n` +
  `  ${ident('row')} JSONB NOT NULL,\n` +
  `  ${ident('missing')} JSONB NOT NULL,\n` +
  `  ${ident('run_id')} TEXT NOT NULL,\n` +
  `  ${ident('since')} TIMESTAMPTZ NOT NULL DEFAULT now(),\n` +
  `  ${ident('seen_run')} TEXT NOT NULL,\n` +
  `  PRIMARY KEY (${ident('table_name')}, ${ident('row_key')})\n` +
  `)`;

export const STATE_TABLES_SQL: Readonly<Record<string, string>> = Object.freeze({
  [WATERMARKS_TABLE]: watermarksTableSql,
  [RUNS_TABLE]: runsTableSql,
  [PENDING_TABLE]: pendingTableSql,
});

// PostgreSQL truncates longer names silently; two long names could then collide.
const MAX_NAME_BYTES = 63;

/** `etl_contrib_<table>`, shortened with a hash when over 63 bytes so it stays unique. */
export function contributionsTableName(table: string): string {
  const full = `etl_contrib_${table}`;
  if (Buffer.byteLength(full) <= MAX_NAME_BYTES) return full;
  const tail = `_${createHash('sha256').update(full).digest('hex').slice(0, 8)}`;
  let head = full;
  while (Buffer.byteLength(head) + tail.length > MAX_NAME_BYTES) head = head.slice(0, -1);
  return `${head}${tail}`;
}

/**
 * A dedupe table's contributions: one row per contributing document (its `_id`, then the staged
 * columns with their types, nullable: a contribution is what transform staged), indexed by the
 * dedupe key, which is how a touched key finds all its documents.
 */
export function contributionsTableSql(table: TableModel): string[] {
  const name = contributionsTableName(table.name);
  const doc = contributionsDocumentColumn(table);
  const cols = table.stagedColumns.map((c) => `  ${ident(c.name)} ${c.sqlType.kind === 'serial' ? 'INTEGER' : sqlTypeText(c.sqlType)}`);
  const key = table.dedupe?.key ?? [];
  return [
    `CREATE TABLE IF NOT EXISTS ${ident(name)} (\n  ${ident(doc)} TEXT PRIMARY KEY,\n${cols.join(',\n')}\n)`,
    `CREATE INDEX IF NOT EXISTS ${ident(`${name.slice(0, 58)}_key`)} ON ${ident(name)} (${key.map(ident).join(', ')})`,
  ];
}

/** Every state table of a model: the fixed ones, then one contributions table per dedupe table. */
export function stateTables(model: PipelineModel): { table: string; sql: string }[] {
  const fixed = STATE_TABLES.map((name) => ({ table: name, sql: STATE_TABLES_SQL[name]! }));
  const contributions = model.loadOrder
    .map((n) => model.tables.get(n)!)
    .filter((t) => t.strategy === 'dedupe')
    .map((t) => ({ table: contributionsTableName(t.name), sql: contributionsTableSql(t).join(';\n') }));
  return [...fixed, ...contributions];
}

/** The DDL of every fixed state table, in creation order. */
export function stateTablesSql(): string[] {
  return STATE_TABLES.map((name) => STATE_TABLES_SQL[name]!);
}
