// Rows whose references load has checked itself, written without PostgreSQL checking them again.
// Load finds every missing reference of a batch set-wise (references.ts, direct.ts) and refuses or
// NULLs it before the rows are written, so PostgreSQL's own check of the same foreign keys is the
// same work done twice: per row through the RI triggers (queued, then run at the table's end), or
// once more in full when the constraint is re-added after a bulk fill (merge.ts withoutForeignKeys:
// a second anti-join per foreign key). With session_replication_role = replica while the rows are
// written (a bulk fill, a merge), the RI triggers do not fire and the constraints stay as they are,
// validated, never dropped. Deletions (leave.ts, orphans.ts) run outside it: their checks stay.
//
// Only when load's checks are exactly the table's foreign keys: every constraint a single column,
// MATCH SIMPLE, the column and the row it references as pipeline.yaml declares them (a constraint
// added by hand is checked by PostgreSQL, through the fallback); no reference into the table itself
// (a row refused after the check could leave another row of the batch pointing at nothing); no
// trigger or rule of the table's own, which replica mode would silence too; no column the work may
// update (a merge's non-key columns) referenced by a foreign key, whose check on the referencing side
// replica mode would skip too. The referenced tables are locked against writes until the commit
// (SHARE: no other session removes a row the check has seen), where the triggers would have locked
// the rows one by one.
// Setting the role needs a superuser (or, PostgreSQL 15+, a SET grant): otherwise the fallback.
import { compiled, type CompiledQuery } from '../schema/sql.ts';
import type { PlannedCheck } from './references.ts';
import type { ShapeColumn, TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';

const INSUFFICIENT_PRIVILEGE = '42501';
const setRoleSql = (role: string): CompiledQuery => compiled(`SELECT set_config('session_replication_role', $1, true)`, [role]);

/** `column|referenced table|referenced column` of a single-column reference. */
const signature = (c: PlannedCheck): string => `${c.column.name}|${c.refNames.table}|${c.refNames.column}`;

/**
 * Whether the table's foreign keys are exactly `signatures`, without triggers or rules of its own;
 * and the role in force now (to put back).
 */
function eligibilitySql(s: TableShape, signatures: readonly string[], updated: readonly string[]): CompiledQuery {
  const attname = (rel: string, num: string) => `(SELECT a.attname FROM pg_attribute AS a WHERE a.attrelid = ${rel} AND a.attnum = ${num})`;
  return compiled(
    `SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal) ` +
      `AND NOT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = $1::regclass) ` +
      `AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c JOIN pg_class AS r ON r.oid = c.confrelid WHERE c.conrelid = $1::regclass AND c.contype = 'f' AND NOT (` +
      `cardinality(c.conkey) = 1 AND c.confmatchtype = 's' AND r.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass) ` +
      `AND ${attname('c.conrelid', 'c.conkey[1]')} || '|' || r.relname || '|' || ${attname('c.confrelid', 'c.confkey[1]')} = ANY ($2::text[]))) ` +
      `AND NOT EXISTS (SELECT 1 FROM pg_constraint AS f CROSS JOIN LATERAL unnest(f.confkey) AS k(num) WHERE f.confrelid = $1::regclass AND f.contype = 'f' ` +
      `AND ${attname('f.confrelid', 'k.num')} = ANY ($3::text[])) AS eligible, ` +
      `current_setting('session_replication_role') AS role`,
    [s.target, signatures, updated],
  );
}

/** Turns the RI triggers off for the rest of the transaction; false when the session may not. */
async function replicaRole(session: LoadSession): Promise<boolean> {
  const refused = (error: unknown) => (error as { code?: string }).code === INSUFFICIENT_PRIVILEGE;
  return session.attempt('etl_replica_role', refused, async () => (await session.run(setRoleSql('replica')), true), false);
}

/**
 * Runs `work` (a fill or a merge of rows whose references load checked) without PostgreSQL's
 * per-row foreign-key checks, or runs `fallback` when that does not apply. `updated`: the columns `work` may change in rows already there.
 */
export async function withReferencesCheckedByLoad<T>(
  session: LoadSession,
  shape: TableShape,
  checks: readonly PlannedCheck[],
  work: () => Promise<T>,
  fallback: () => Promise<T>,
  updated: readonly ShapeColumn[] = [],
): Promise<T> {
  // Nothing to skip without references of its own: the plain path costs no role switch.
  if (checks.length === 0 || checks.some((c) => c.selfReference)) return fallback();
  const state = (await session.run(eligibilitySql(shape, checks.map(signature), updated.map((c) => c.name)))).rows[0] as { eligible: boolean; role: string };
  if (!state.eligible || !(await replicaRole(session))) return fallback();
  const referenced = [...new Set(checks.map((c) => c.refTable))];
  if (referenced.length > 0) await session.run(compiled(`LOCK TABLE ${referenced.join(', ')} IN SHARE MODE`));
  const result = await work();
  await session.run(setRoleSql(state.role));
  return result;
}
