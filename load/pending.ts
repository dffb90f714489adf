// etl_pending: what a full run would load as soon as a missing referenced row exists. A row refused
// for a missing reference (kind `row`) and a row loaded with references set NULL by set_null (kind
// `null`) are kept here with the values they were staged with, and every later load, in its
// transaction, lands the row or sets the reference once the referenced row is there. A row refused
// because rows of other keys hold its value of a unique constraint (unique-values.ts) is a `row`
// entry with nothing missing, offered to every load until the value is its alone. An entry whose
// document is staged again is replaced by what that run finds; one whose document is gone, or no
// longer yields the row, is dropped. The SQL of this state lives here.
import { PENDING_TABLE } from '../schema/state-tables.ts';
import { compiled, ident, type CompiledQuery } from '../schema/sql.ts';
import { keyJson, list, matchKey, type TableShape } from './shape.ts';
import type { PlannedCheck } from './references.ts';
import type { LoadSession } from './session.ts';
import type { PendingReport, PendingTotals } from './options.ts';
import { recordGoneSql } from './gone-documents.ts';

const pending = ident(PENDING_TABLE);

/** The owner of a row: the `_id` of its document (null for dedupe rows, owned by their key). */
const ownerOf = (s: TableShape, alias: string): string => (s.docKey ? `${alias}.${s.docKey.id}::text` : 'NULL::text');

/** A row staged again replaces what was kept of it. */
const REPLACE =
  `ON CONFLICT (table_name, row_key) DO UPDATE SET owner = EXCLUDED.owner, kind = EXCLUDED.kind, row = EXCLUDED.row, ` +
  `missing = EXCLUDED.missing, seen_run = EXCLUDED.seen_run`;

/**
 * A row of the table held back or NULLed again (a parent of it was deleted): the references NULLed
 * earlier keep the values they should have (the table holds NULL there).
 */
const MERGE =
  `ON CONFLICT (table_name, row_key) DO UPDATE SET owner = EXCLUDED.owner, kind = CASE WHEN EXCLUDED.kind = 'row' THEN 'row' ELSE p.kind END, ` +
  `row = EXCLUDED.row || CASE WHEN p.kind = 'null' THEN p.missing ELSE '{}'::jsonb END, missing = p.missing || EXCLUDED.missing, seen_run = EXCLUDED.seen_run`;

/**
 * The rows whose references are missing (the rejects temp table), as they were staged: refused rows
 * become `row` entries, rows that keep only set_null columns `null` entries. The rows are the batch's
 * (matched on its line column) or, on the direct path, the target's (matched on ctid).
 */
function holdSql(s: TableShape, from: 'batch' | 'target', runId: string): CompiledQuery {
  const source = from === 'batch' ? s.temps.stage : s.target;
  const join = from === 'batch' ? `m.line = s.${s.line}` : 'm.row_ctid = s.ctid';
  const by = from === 'batch' ? 'line' : 'row_ctid';
  return compiled(
    `INSERT INTO ${pending} AS p (table_name, row_key, owner, kind, row, missing, run_id, since, seen_run) ` +
      `SELECT $1, ${keyJson(s.key, 's')}, ${ownerOf(s, 's')}, CASE WHEN m.refused THEN 'row' ELSE 'null' END, to_jsonb(s) - $2::text, m.missing, $3, now(), $3 ` +
      `FROM ${source} AS s JOIN (SELECT ${by}, bool_or(action = 'reject') AS refused, jsonb_object_agg(column_name, value) AS missing ` +
      `FROM ${s.temps.rejects} GROUP BY ${by}) AS m ON ${join} ${REPLACE}`,
    [s.table.name, s.lineName, runId],
  );
}

/** Keeps the rows the rejects temp table lists, before they are removed from the batch or the table. */
export async function holdRejected(session: LoadSession, shape: TableShape, from: 'batch' | 'target', runId: string): Promise<void> {
  await session.run(holdSql(shape, from, runId));
}

/**
 * The rows the shared temp table names (unique-values.ts: a value of another unique constraint rows
 * of two keys or more hold), as `row` entries with nothing missing: every load offers them again
 * (landableFrom). A NULLed reference kept for the row (a `null` entry: of this run for a batch row,
 * of any run for a row of the table) goes back into its values, to be checked again when it lands.
 * $1 table, $2 run id, $3 the holders' source, $4 (batch) the line column.
 */
function holdSharedSql(s: TableShape, from: 'batch' | 'target', runId: string): CompiledQuery {
  const source = from === 'batch' ? s.temps.stage : s.target;
  const key = keyJson(s.key, 'h');
  const row = from === 'batch' ? 'to_jsonb(h) - $4::text' : 'to_jsonb(h)';
  const nulled = from === 'batch' ? `p.kind = 'null' AND p.seen_run = $2` : `p.kind = 'null'`;
  return compiled(
    `INSERT INTO ${pending} AS p (table_name, row_key, owner, kind, row, missing, run_id, since, seen_run) ` +
      `SELECT DISTINCT ON (${key}) $1, ${key}, ${ownerOf(s, 'h')}, 'row', ${row}, '{}'::jsonb, $2, now(), $2 FROM ${source} AS h ` +
      `WHERE ${key} IN (SELECT x.k FROM ${s.temps.shared} AS x WHERE x.source = $3) ORDER BY ${key}${from === 'batch' ? `, h.${s.line} DESC` : ''} ` +
      `ON CONFLICT (table_name, row_key) DO UPDATE SET owner = EXCLUDED.owner, kind = 'row', row = EXCLUDED.row || CASE WHEN ${nulled} THEN p.missing ELSE '{}'::jsonb END, ` +
      `missing = '{}'::jsonb, seen_run = EXCLUDED.seen_run`,
    from === 'batch' ? [s.table.name, runId, from, s.lineName] : [s.table.name, runId, from],
  );
}

export async function holdSharedRows(session: LoadSession, shape: TableShape, from: 'batch' | 'target', runId: string): Promise<void> {
  await session.run(holdSharedSql(shape, from, runId));
}

/**
 * Entries a load may offer: those an earlier load wrote, and those waiting for nothing but a unique
 * value to be theirs alone (unique-values.ts), whenever written: a row deleted later in the load they
 * were held in may have left them the value.
 */
const OFFERED = `p.kind = 'row' AND (p.seen_run <> $2 OR p.missing = '{}'::jsonb)`;

/**
 * Rows of the target about to be deleted or NULLed because a referenced row is gone (`where` on
 * alias t; `column` the reference). $1 table, $2 column, $3 run id.
 */
function holdTargetSql(s: TableShape, where: string, column: PlannedCheck, runId: string): CompiledQuery {
  return compiled(
    `INSERT INTO ${pending} AS p (table_name, row_key, owner, kind, row, missing, run_id, since, seen_run) ` +
      `SELECT $1, ${keyJson(s.key, 't')}, ${ownerOf(s, 't')}, $4, to_jsonb(t), jsonb_build_object($2::text, t.${column.column.id}::text), $3, now(), $3 ` +
      `FROM ${s.target} AS t WHERE ${where} ${MERGE}`,
    [s.table.name, column.column.name, runId, column.action === 'reject' ? 'row' : 'null'],
  );
}

export async function holdTargetRows(session: LoadSession, shape: TableShape, where: string, column: PlannedCheck, runId: string): Promise<number> {
  return session.count(holdTargetSql(shape, where, column, runId));
}

/**
 * Drops the entries of documents (or dedupe keys) this run staged again but whose row it did not
 * hold back again: the document changed, and what it yields now was merged. `scope` is a
 * condition on alias p (e.g. owner IN the keys file); null: every entry (a complete read).
 * `recordGone`: the run read the documents it names (or, complete, all of them) and found some gone:
 * the owners of the dropped entries whose document has no row in the table after the batch go to
 * etl_gone, as forgetGoneSql's do (one read that yields nothing now is asked about once more).
 */
export function forgetSql(s: TableShape, scope: string | null, runId: string, recordGone: boolean): CompiledQuery {
  const drop = `DELETE FROM ${pending} AS p WHERE p.table_name = $1 AND p.seen_run <> $2${scope ? ` AND (${scope})` : ''}`;
  if (!recordGone) return compiled(drop, [s.table.name, runId]);
  const noRow = s.docKey ? `NOT EXISTS (SELECT 1 FROM ${s.target} AS t WHERE t.${s.docKey.id}::text = d.owner)` : 'false';
  return compiled(`WITH d AS (${drop} RETURNING p.owner) ${recordGoneSql('d', 'd.owner', noRow)}`, [s.table.name, runId]);
}

/** Scope conditions on alias p: the owner among the keys file, or the row key among the touched keys. */
export const ownerInSql = (set: string, column: string): string => `p.owner IN (SELECT k.${column}::text FROM ${set} AS k)`;
export const ownerNotInSql = (set: string, column: string): string => `p.owner IS NOT NULL AND p.owner NOT IN (SELECT k.${column}::text FROM ${set} AS k WHERE k.${column} IS NOT NULL)`;
export const rowKeyInSql = (s: TableShape, set: string): string => `p.row_key IN (SELECT ${keyJson(s.key, 'k')} FROM ${set} AS k)`;

/**
 * Entries of documents gone from the collection (not in the live temp table), staged by this run or
 * not. Their documents go to etl_gone as a deleted row's do: a row held back is a row a full run
 * would hold once its reference is back, so a document restored with its old `_id` and dates must be
 * read again.
 */
export function forgetGoneSql(s: TableShape, runId: string): CompiledQuery {
  const drop = `DELETE FROM ${pending} AS p WHERE p.table_name = $1 AND ${ownerNotInSql(s.temps.live, 'k')} RETURNING p.owner`;
  return compiled(`WITH d AS (${drop}) ${recordGoneSql('d', 'd.owner', 'true')}`, [s.table.name, runId]);
}

/**
 * A pending row can land only once every reference it was refused for exists: an entry whose
 * missing value of a rejecting column is still absent from the referenced table is left alone (it
 * would be refused again; checking its other references waits until then). A reference into the
 * table itself is not filtered: the row it waits for may be pending too and land in the same batch.
 * Each entry probes the referenced table's index (LATERAL … LIMIT 1): as EXISTS inside an OR, the
 * planner may hash the whole referenced table instead, for a few hundred entries.
 */
function mayLandCondition(checks: readonly PlannedCheck[], firstParameter: number): { joins: string; sql: string; columns: string[] } {
  const filtered = checks.filter((c) => c.action === 'reject' && !c.selfReference);
  const key = (i: number) => `$${firstParameter + i}::text`;
  const joins = filtered
    .map((c, i) => ` LEFT JOIN LATERAL (SELECT true AS found FROM ${c.refTable} AS x WHERE x.${c.refColumn} = CAST(p.missing ->> ${key(i)} AS ${c.column.type}) LIMIT 1) AS f${i} ON true`)
    .join('');
  const sql = filtered.map((_, i) => ` AND (NOT (p.missing ? ${key(i)}) OR f${i}.found)`).join('');
  return { joins, sql, columns: filtered.map((c) => c.column.name) };
}

/** The table's entries that may land now ($1 table, $2 run id): `FROM ${from}${more} WHERE ${where}`. */
function landableFrom(s: TableShape, checks: readonly PlannedCheck[], runId: string): { from: string; where: string; parameters: unknown[] } {
  const mayLand = mayLandCondition(checks, 3);
  return {
    from: `${pending} AS p${mayLand.joins}`,
    where: `p.table_name = $1 AND ${OFFERED}${mayLand.sql}`,
    parameters: [s.table.name, runId, ...mayLand.columns],
  };
}

/** Whether any entry of the table may land now (before its batch is rebuilt for them). */
export async function anyLandable(session: LoadSession, shape: TableShape, checks: readonly PlannedCheck[], runId: string): Promise<boolean> {
  const from = landableFrom(shape, checks, runId);
  return ((await session.run(compiled(`SELECT EXISTS (SELECT 1 FROM ${from.from} WHERE ${from.where}) AS any`, from.parameters))).rows[0] as { any: boolean }).any;
}

/** The pending rows of the table that may land now, back into its (emptied) batch, to be checked and merged again. */
function pendingRowsIntoBatchSql(s: TableShape, checks: readonly PlannedCheck[], runId: string): CompiledQuery {
  const from = landableFrom(s, checks, runId);
  return compiled(
    `INSERT INTO ${s.temps.stage} (${list(s.columns)}) SELECT ${list(s.columns, 'r.')} ` +
      `FROM ${from.from} CROSS JOIN LATERAL jsonb_populate_record(NULL::${s.target}, p.row) AS r WHERE ${from.where}`,
    from.parameters,
  );
}

/** The `row` entries whose rows were merged from the batch (the refused ones, and those landed with a reference set NULL, were held again by this run). */
function landedSql(s: TableShape, runId: string): CompiledQuery {
  return compiled(
    `DELETE FROM ${pending} AS p USING ${s.temps.stage} AS s WHERE p.table_name = $1 AND ${OFFERED} AND p.row_key = ${keyJson(s.key, 's')}`,
    [s.table.name, runId],
  );
}

export interface PendingRetry {
  /** Rows of etl_pending put back into the batch (before their references are checked again). */
  readonly offered: number;
  readonly landedSql: CompiledQuery;
}

export async function pendingIntoBatch(session: LoadSession, shape: TableShape, checks: readonly PlannedCheck[], runId: string): Promise<PendingRetry> {
  return { offered: await session.count(pendingRowsIntoBatchSql(shape, checks, runId)), landedSql: landedSql(shape, runId) };
}

/**
 * A NULLed reference whose row now exists is set to the value it was staged with; rowCount =
 * references set. $1 table, $2 column. Only rows still in the table (matched on the merge key).
 */
function resolveNullsSql(s: TableShape, check: PlannedCheck): CompiledQuery {
  const c = check.column.id;
  return compiled(
    `WITH v AS (SELECT r.* FROM ${pending} AS p CROSS JOIN LATERAL jsonb_populate_record(NULL::${s.target}, p.row) AS r ` +
      `WHERE p.table_name = $1 AND p.kind = 'null' AND p.missing ? $2), ` +
      `u AS (UPDATE ${s.target} AS t SET ${c} = v.${c} FROM v WHERE ${matchKey(s.key, 't', 'v')} AND t.${c} IS NULL ` +
      `AND EXISTS (SELECT 1 FROM ${check.refTable} AS x WHERE x.${check.refColumn} = v.${c}) RETURNING ${keyJson(s.key, 't')} AS k) ` +
      `UPDATE ${pending} AS p SET missing = p.missing - $2::text FROM u WHERE p.table_name = $1 AND p.row_key = u.k`,
    [s.table.name, check.column.name],
  );
}

/** Entries with nothing left to wait for. */
function settledSql(s: TableShape): CompiledQuery {
  return compiled(`DELETE FROM ${pending} WHERE table_name = $1 AND kind = 'null' AND missing = '{}'::jsonb`, [s.table.name]);
}

export async function resolveNulls(session: LoadSession, shape: TableShape, checks: readonly PlannedCheck[]): Promise<number> {
  let resolved = 0;
  for (const check of checks) if (check.action === 'set_null') resolved += await session.count(resolveNullsSql(shape, check));
  if (resolved > 0) await session.run(settledSql(shape));
  return resolved;
}

/**
 * The tables holding entries when the load starts. Every entry a load writes carries its run
 * (seen_run), so the entries of a table that a load did not write, which the statements below
 * retry or forget, are among those: a table not named here has none, and is not asked again.
 */
export function tablesWithPending(session: LoadSession): Promise<Set<string>> {
  return session.tablesListedIn(PENDING_TABLE);
}

/** Does the table have entries this run did not write, or entries to offer again? (Nothing to retry otherwise.) */
export function hasPendingSql(s: TableShape, runId: string): CompiledQuery {
  return compiled(`SELECT EXISTS (SELECT 1 FROM ${pending} AS p WHERE p.table_name = $1 AND (p.seen_run <> $2 OR ${OFFERED})) AS any`, [s.table.name, runId]);
}

/**
 * Every table's entries now (rows held back, references set NULL): what waits after the load, the
 * tables a --tables run did not stage included.
 */
export async function pendingTotals(session: LoadSession): Promise<PendingTotals> {
  const r = await session.run(compiled(`SELECT count(*) FILTER (WHERE kind = 'row')::bigint AS rows, count(*) FILTER (WHERE kind = 'null')::bigint AS nulls FROM ${pending}`));
  const row = r.rows[0] as { rows: string; nulls: string };
  return { rows: Number(row.rows), nulls: Number(row.nulls) };
}

/** A table's entries now, and what this load landed of them. */
export async function pendingFigures(session: LoadSession, table: string, landed: number, resolved: number): Promise<PendingReport> {
  const r = await session.run(
    compiled(
      `SELECT count(*) FILTER (WHERE kind = 'row')::bigint AS rows, count(*) FILTER (WHERE kind = 'null')::bigint AS nulls, min(since) AS since ` +
        `FROM ${pending} WHERE table_name = $1`,
      [table],
    ),
  );
  const row = r.rows[0] as { rows: string; nulls: string; since: Date | null };
  return { rows: Number(row.rows), nulls: Number(row.nulls), since: row.since?.toISOString() ?? null, landed, resolved };
}
