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
import type { PipelineModel, TableModel } from '../model/types.ts';
import { valueTypeText } from '../model/sql-types.ts';
import { documentIdColumn } from '../mapping/scope.ts';
import { contributionsIndexName, contributionsTableName } from '../model/derived-names.ts';
import { ident, identList } from './sql.ts';

export { documentIdColumn } from '../mapping/scope.ts';

export const WATERMARKS_TABLE = 'etl_watermarks';
export const RUNS_TABLE = 'etl_runs';
export const PENDING_TABLE = 'etl_pending';
export const CLAIMS_TABLE = 'etl_claims';
export const GONE_TABLE = 'etl_gone';

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
const WATERMARKS: StateTable = Object.freeze({
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
const RUNS: StateTable = Object.freeze({
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
 * Rows held back until a missing referenced row exists (load/pending.ts): one entry per row of a
 * table, refused for a missing reference (kind `row`: its staged values in `row`) or loaded with
 * references set NULL by set_null (kind `null`: `row` as staged, `missing` the references to set).
 * `row_key` is the row's merge key as a JSON array, `owner` the `_id` of the document that owns it
 * (null for dedupe rows, owned by their key), `run_id`/`since` when it was first held back,
 * `seen_run` the last run that staged it again.
 */
const PENDING: StateTable = Object.freeze({
  name: PENDING_TABLE,
  purpose: 'rows refused for a missing reference, and references set NULL, until the referenced row exists',
  columns: [
    col('table_name', 'TEXT', true),
    col('row_key', 'JSONB', true),
    col('owner', 'TEXT', false),
    col('kind', 'TEXT', true),
    col('row', 'JSONB', true),
    col('missing', 'JSONB', true),
    col('run_id', 'TEXT', true),
    col('since', 'TIMESTAMPTZ', true, 'now()'),
    col('seen_run', 'TEXT', true),
  ],
  primaryKey: ['table_name', 'row_key'],
});

/**
 * Which source documents claim a key (load/claims.ts): every document whose `_id` is not the text of
 * its key (not an ObjectId: `"77"` and Int32 77 both convert to `77`), and every document of a key
 * that two documents claim. Two documents converting to one key are both refused, in the run that
 * sees them together and in later ones, until a complete read, or an incremental one that asked for
 * every claimant of the key (extract reads them whatever their dates), finds one of them gone.
 */
const CLAIMS: StateTable = Object.freeze({
  name: CLAIMS_TABLE,
  purpose: 'documents of another _id type than ObjectId, and every document of a key two documents claim',
  columns: [
    col('table_name', 'TEXT', true),
    col('key', 'TEXT', true),
    col('identity', 'TEXT', true),
    col('run_id', 'TEXT', true),
    col('since', 'TIMESTAMPTZ', true, 'now()'),
    col('seen_run', 'TEXT', true),
  ],
  primaryKey: ['table_name', 'key', 'identity'],
});

/**
 * Documents a load found gone (load/gone-documents.ts): per table, the `_id` (as its rows' text) of
 * each document whose rows or contributions left because it was not in the collection's live set
 * (delete propagation) or not read by a complete read. An incremental extract asks for them again
 * whatever their dates: a document restored from a backup keeps its old `_id` and dates, and no
 * watermark would see it come back. An entry goes when a run reads its document for the table.
 */
const GONE: StateTable = Object.freeze({
  name: GONE_TABLE,
  purpose: 'documents whose rows left because they were gone: read again by every incremental extract until one comes back',
  columns: [col('table_name', 'TEXT', true), col('key', 'TEXT', true), col('run_id', 'TEXT', true), col('since', 'TIMESTAMPTZ', true, 'now()')],
  primaryKey: ['table_name', 'key'],
});

export { contributionsTableName } from '../model/derived-names.ts';

/**
 * A dedupe table's contributions (load/contributions.ts): one row per contributing source document
 * (its `_id`, then the staged columns with their types, nullable: a contribution is what transform
 * staged), indexed by the dedupe key, which is how a touched key finds all its documents.
 */
function contributionsTable(t: TableModel): StateTable {
  const name = contributionsTableName(t.name);
  const columns = t.stagedColumns.map((c) => col(c.name, valueTypeText(c.sqlType), false));
  return Object.freeze({
    name,
    purpose: `the row each source document contributes to ${t.name} (dedupe), by document _id`,
    columns: [col(documentIdColumn(t), 'TEXT', true), ...columns],
    primaryKey: [documentIdColumn(t)],
    indexes: [{ name: contributionsIndexName(t.name), columns: [...(t.dedupe?.key ?? [])] }],
  });
}

/**
 * Every state table the model needs, in creation order: the fixed ones, then the ones derived from
 * the model (one per table of some kind). Add a state table here and `etl schema` and load create it.
 */
export function stateTables(model: PipelineModel | null = null): StateTable[] {
  const fixed = [WATERMARKS, RUNS, PENDING, CLAIMS, GONE];
  if (!model) return fixed;
  return [...fixed, ...perTableStateTables(model)];
}

/** State tables derived from the pipeline's tables: the contributions of each dedupe table. */
function perTableStateTables(model: PipelineModel): StateTable[] {
  return model.loadOrder.map((n) => model.tables.get(n)!).filter((t) => t.strategy === 'dedupe').map(contributionsTable);
}

function stateColumnSql(c: StateColumn): string {
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

/** The DDL of every state table (and its indexes), in creation order. */
export function stateTablesSql(model: PipelineModel | null = null): string[] {
  return stateTables(model).flatMap((t) => [createStateTableSql(t), ...(t.indexes ?? []).map((i) => createStateIndexSql(t, i))]);
}
