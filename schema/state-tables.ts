// The tool's own state in PostgreSQL, created by `etl schema` (and by load's ensureSchema) beside the
// data tables. Every state table is declared here, once, as data: schema/apply.ts creates the ones
// that are missing and adds the columns a newer version declares to the ones that exist, so a new
// state table or column needs no change anywhere else.
//
// Rule for a column added to an existing state table by a later version: it must be nullable or
// carry a default, so adding it to a table that holds rows loses nothing and cannot fail.
//
// Watermarks live here, not in MAX(updated_at) of the data: a document written while an extract
// ran must still be read by the next run, and only the extract's start time (minus a margin) says so.
import type { PipelineModel } from '../model/types.ts';
import { ident, identList } from './sql.ts';

export const WATERMARKS_TABLE = 'etl_watermarks';
export const RUNS_TABLE = 'etl_runs';

export interface StateColumn {
  readonly name: string;
  /** DDL spelling, e.g. `TEXT`, `TIMESTAMPTZ`, `JSONB`. */
  readonly type: string;
  readonly notNull: boolean;
  /** SQL expression written in our source (never user data), e.g. `now()`. */
  readonly default?: string;
}

export interface StateIndex {
  readonly name: string;
  readonly columns: readonly string[];
}

export interface StateTable {
  readonly name: string;
  /** What it holds, for people reading `etl schema` output and this file. */
  readonly purpose: string;
  readonly columns: readonly StateColumn[];
  readonly primaryKey: readonly string[];
  readonly indexes?: readonly StateIndex[];
}

const col = (name: string, type: string, notNull: boolean, dflt?: string): StateColumn =>
  Object.freeze({ name, type, notNull, ...(dflt ? { default: dflt } : {}) });

/** Per table: the instant the next incremental extract starts from, the run that set it, and the
 *  fingerprint of the mapping (model/fingerprint.ts) the table's rows were last fully read with. */
export const WATERMARKS: StateTable = Object.freeze({
  name: WATERMARKS_TABLE,
  purpose: 'per table: where the next incremental extract starts, and the mapping its rows follow',
  columns: [
    col('table_name', 'TEXT', true),
    col('watermark', 'TIMESTAMPTZ', true),
    col('run_id', 'TEXT', true),
    col('updated_at', 'TIMESTAMPTZ', true, 'now()'),
    // Added by issue 16 (nullable: a row written by an older version has none).
    col('fingerprint', 'TEXT', false),
  ],
  primaryKey: ['table_name'],
});

/** Per run and table: what load did, so re-loading an applied run is recognised and audited. */
export const RUNS: StateTable = Object.freeze({
  name: RUNS_TABLE,
  purpose: 'per run and table: what load did (re-loading an applied run changes nothing)',
  columns: [
    col('run_id', 'TEXT', false),
    col('table_name', 'TEXT', false),
    col('pipeline_sha256', 'TEXT', true),
    col('loaded_at', 'TIMESTAMPTZ', true, 'now()'),
    col('summary', 'JSONB', true),
  ],
  primaryKey: ['run_id', 'table_name'],
});

/**
 * Every state table the model needs, in creation order: the fixed ones, then the ones derived from
 * the model (one per table of some kind). Add a state table here and `etl schema` and load create it.
 */
export function stateTables(model: PipelineModel | null = null): StateTable[] {
  const fixed = [WATERMARKS, RUNS];
  if (!model) return fixed;
  return [...fixed, ...perTableStateTables(model)];
}

/** State tables derived from the pipeline's tables (none yet: the exact-mirror work adds them). */
function perTableStateTables(_model: PipelineModel): StateTable[] {
  return [];
}

/** Names of the fixed state tables (a pipeline may not define a table of these names). */
export const STATE_TABLES: readonly string[] = Object.freeze(stateTables().map((t) => t.name));

export function stateColumnSql(c: StateColumn): string {
  return `${ident(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}${c.default ? ` DEFAULT ${c.default}` : ''}`;
}

export function createStateTableSql(t: StateTable): string {
  const lines = t.columns.map(stateColumnSql);
  if (t.primaryKey.length > 0) lines.push(`PRIMARY KEY (${identList(t.primaryKey)})`);
  return `CREATE TABLE IF NOT EXISTS ${ident(t.name)} (\n  ${lines.join(',\n  ')}\n)`;
}

export function addStateColumnSql(t: StateTable, c: StateColumn): string {
  return `ALTER TABLE ${ident(t.name)} ADD COLUMN IF NOT EXISTS ${stateColumnSql(c)}`;
}

export function createStateIndexSql(t: StateTable, index: StateIndex): string {
  return `CREATE INDEX IF NOT EXISTS ${ident(index.name)} ON ${ident(t.name)} (${identList(index.columns)})`;
}

/** The DDL of the fixed state tables' CREATE, by name (their current shape). */
export const STATE_TABLES_SQL: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(stateTables().map((t) => [t.name, createStateTableSql(t)])),
);

/** The DDL of every state table (and its indexes), in creation order. */
export function stateTablesSql(model: PipelineModel | null = null): string[] {
  return stateTables(model).flatMap((t) => [createStateTableSql(t), ...(t.indexes ?? []).map((i) => createStateIndexSql(t, i))]);
}
