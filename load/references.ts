// Missing references: a staged value pointing at a row that does not exist (a message whose sender
// was deleted in the app). Checked set-wise against the referenced table as it is now, inside the
// transaction, after the tables loaded before this one were merged. Never fatal, never silent:
//   reject   (default) the row is removed from the batch and listed in load/<table>.rejects.ndjson;
//   set_null the value becomes NULL, counted as `nulled`, and listed in the same file.
// Both are remembered in etl_pending (load/pending.ts), so a later load lands the row, or sets the
// reference, as soon as the referenced row exists. A link row is refused alone: its parent and its
// siblings still load. Every rejecting column is checked before any set_null one, so a row that is
// refused anyway is not also counted as nulled; a row refused on two columns is listed once, for the
// first of them.
import { compiled, ident, type CompiledQuery, type SqlIdent } from '../schema/sql.ts';
import type { TableModel } from '../model/types.ts';
import { keyObject, type ShapeColumn, type TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';

export interface PlannedCheck {
  /** The staged column holding the reference. */
  readonly column: ShapeColumn;
  readonly refTable: SqlIdent;
  readonly refColumn: SqlIdent;
  /** The reference points at the table being loaded: rows staged with it count as present. */
  readonly selfReference: boolean;
  readonly action: 'reject' | 'set_null';
  /** `users(id)`, for the rejects file. */
  readonly references: string;
  /** The referenced table and column as pipeline.yaml names them. */
  readonly refNames: { readonly table: string; readonly column: string };
}

export function referenceChecks(table: TableModel, shape: TableShape): PlannedCheck[] {
  const checks: PlannedCheck[] = [];
  for (const column of table.stagedColumns) {
    const fk = column.foreignKey;
    if (!fk) continue;
    const shaped = shape.columns.find((c) => c.name === column.name)!;
    // set_null is only possible where NULL is allowed; the model refuses it elsewhere, this is a guard.
    const action = fk.onMissing === 'set_null' && column.nullable ? 'set_null' : 'reject';
    checks.push({ column: shaped, refTable: ident(fk.table), refColumn: ident(fk.column), selfReference: fk.table === table.name, action, references: `${fk.table}(${fk.column})`, refNames: { table: fk.table, column: fk.column } });
  }
  // Rejections first (see above); within each group, column order.
  return [...checks.filter((c) => c.action === 'reject'), ...checks.filter((c) => c.action === 'set_null')];
}

/** The temp table listing refused or nulled references of one table. */
export function createRejectsTableSql(rejects: SqlIdent): CompiledQuery {
  // row_ctid: the direct path finds rows by their physical address in the target.
  // reason/documents: a key two documents claim (load/claims.ts) is refused as `duplicate_key`.
  return compiled(
    `CREATE TEMP TABLE IF NOT EXISTS ${rejects} (line bigint NOT NULL, column_name text NOT NULL, value text, action text NOT NULL, row_ctid tid, ` +
      `reason text NOT NULL DEFAULT 'missing_reference', documents jsonb, row_key jsonb) ON COMMIT DROP`,
  );
}

/**
 * `s.c IS NOT NULL AND no row of the referenced table holds it` (a self-reference may be staged too,
 * in `batch`; null when the rows are already in the referenced table itself: the direct path).
 */
export function missingCondition(s: TableShape, r: PlannedCheck, alias = 's', batch: SqlIdent | null = s.temps.stage): string {
  const c = `${alias}.${r.column.id}`;
  let sql = `${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${r.refTable} AS r WHERE r.${r.refColumn} = ${c})`;
  if (r.selfReference && batch !== null) sql += ` AND NOT EXISTS (SELECT 1 FROM ${batch} AS r2 WHERE r2.${r.refColumn} = ${c})`;
  return sql;
}

/**
 * Where the checked rows are, and how the rejects table names each: the batch (by its line), or the
 * target itself after the direct path's COPY (by physical address, numbered into lines later).
 */
export type CheckedRows = 'batch' | 'target';

/**
 * Records every row whose reference has no row in the referenced table, skipping rows already
 * refused for an earlier column (`refusedBefore`: an earlier check refused some; else there is
 * nothing to skip). rowCount = references found missing.
 */
function recordMissingSql(s: TableShape, r: PlannedCheck, refusedBefore: boolean, rows: CheckedRows): CompiledQuery {
  const key = keyObject(s.key, 's', 3);
  const inBatch = rows === 'batch';
  const [from, id] = inBatch ? [s.temps.stage, `s.${s.line}`] : [s.target, 's.ctid'];
  const missing = `SELECT ${id} AS id, s.${r.column.id}::text AS value, ${key.sql} AS row_key FROM ${from} AS s WHERE ${missingCondition(s, r, 's', inBatch ? s.temps.stage : null)}`;
  const insert = inBatch
    ? `INSERT INTO ${s.temps.rejects} (line, column_name, value, action, row_key) SELECT m.id, $1, m.value, $2, m.row_key FROM `
    : `INSERT INTO ${s.temps.rejects} (line, column_name, value, action, row_ctid, row_key) SELECT 0, $1, m.value, $2, m.id, m.row_key FROM `;
  const parameters = [r.column.name, r.action, ...key.names];
  if (!refusedBefore) return compiled(`${insert}(${missing}) AS m`, parameters);
  // OFFSET 0 keeps the anti-join below the test, so only the rows it finds are looked up among the
  // refused ones. NOT IN (the id is never NULL): a hashed subplan, whatever the planner guesses of
  // the (never analyzed) rejects table; as NOT EXISTS it may become a nested loop.
  const refused = inBatch ? `SELECT x.line FROM ${s.temps.rejects} AS x WHERE x.action = 'reject'` : `SELECT x.row_ctid FROM ${s.temps.rejects} AS x WHERE x.action = 'reject' AND x.row_ctid IS NOT NULL`;
  return compiled(`${insert}(${missing} OFFSET 0) AS m WHERE m.id NOT IN (${refused})`, parameters);
}

/** Creates the rejects temp table and records every check's missing references (rejections first); how many. */
export async function recordMissingReferences(session: LoadSession, shape: TableShape, checks: readonly PlannedCheck[], rows: CheckedRows): Promise<number> {
  await session.run(createRejectsTableSql(shape.temps.rejects));
  let found = 0;
  let refused = 0;
  for (const check of checks) {
    const n = await session.count(recordMissingSql(shape, check, refused > 0, rows));
    found += n;
    if (check.action === 'reject') refused += n;
  }
  return found;
}

function deleteRejectedSql(s: TableShape): CompiledQuery {
  return compiled(`DELETE FROM ${s.temps.stage} AS s WHERE s.${s.line} IN (SELECT x.line FROM ${s.temps.rejects} AS x WHERE x.action = 'reject')`);
}

function nullMissingSql(s: TableShape, r: PlannedCheck): CompiledQuery {
  return compiled(
    `UPDATE ${s.temps.stage} AS s SET ${r.column.id} = NULL FROM ${s.temps.rejects} AS x WHERE x.line = s.${s.line} AND x.column_name = $1 AND x.action = 'set_null'`,
    [r.column.name],
  );
}

export interface ReferenceOutcome {
  readonly rejected: number;
  readonly nulled: number;
}

/**
 * Finds the batch's missing references (into the rejects temp table), lets `keep` remember them
 * (etl_pending needs the rows as they were staged), then removes the refused rows from the batch and
 * NULLs the set_null references.
 */
export async function resolveMissingReferences(
  session: LoadSession,
  shape: TableShape,
  checks: readonly PlannedCheck[],
  keep: () => Promise<void>,
): Promise<ReferenceOutcome> {
  if (checks.length === 0) return { rejected: 0, nulled: 0 };
  const found = await recordMissingReferences(session, shape, checks, 'batch');
  if (found === 0) return { rejected: 0, nulled: 0 };
  await keep();
  const rejected = await session.count(deleteRejectedSql(shape));
  let nulled = 0;
  for (const check of checks) if (check.action === 'set_null') nulled += await session.count(nullMissingSql(shape, check));
  return { rejected, nulled };
}
