// The tool's own state in PostgreSQL, created by `etl schema` beside the data tables.
// Watermarks live here, not in MAX(updated_at) of the data: a document written while an extract
// ran must still be read by the next run, and only the extract's start time (minus a margin) says so.
import { ident } from './sql.ts';

export const WATERMARKS_TABLE = 'etl_watermarks';
export const RUNS_TABLE = 'etl_runs';
export const STATE_TABLES: readonly string[] = Object.freeze([WATERMARKS_TABLE, RUNS_TABLE]);

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

export const STATE_TABLES_SQL: Readonly<Record<string, string>> = Object.freeze({
  [WATERMARKS_TABLE]: watermarksTableSql,
  [RUNS_TABLE]: runsTableSql,
});

/** The DDL of every state table, in creation order. */
export function stateTablesSql(): string[] {
  return STATE_TABLES.map((name) => STATE_TABLES_SQL[name]!);
}
