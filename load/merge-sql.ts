// The merges of a clean batch into its table, generated from the shape: nothing is written per table,
// every name is a SqlIdent, so a column called `order` or a name holding `"` cannot break a statement.
import { compiled, ident, type CompiledQuery } from '../schema/sql.ts';
import { list, matchKey, type TableShape } from './shape.ts';
import { ownsRelationSql } from './owner.ts';

/**
 * upsert (primary key, unique constraint or dedupe key), in one statement returning { inserted,
 * updated }. An existing row is rewritten only when a column differs. A dedupe batch holds the
 * recomputed row of each touched key, so it is what the row must be, older or not. Columns
 * PostgreSQL generates (SERIAL) are not staged, so never touched.
 */
export function upsertSql(s: TableShape): CompiledQuery {
  const cols = list(s.columns);
  let conflict = 'DO NOTHING';
  if (s.others.length > 0) {
    const set = s.others.map((c) => `${c.id} = EXCLUDED.${c.id}`).join(', ');
    conflict = `DO UPDATE SET ${set} WHERE (${list(s.others, 't.')}) IS DISTINCT FROM (${list(s.others, 'EXCLUDED.')})`;
  }
  return compiled(
    `WITH merged AS (` +
      `INSERT INTO ${s.target} AS t (${cols}) SELECT ${cols} FROM ${s.temps.stage} ` +
      `ON CONFLICT (${list(s.key)}) ${conflict} ` +
      // xmax = 0: the row version was inserted by this statement, not updated.
      `RETURNING (t.xmax = 0) AS inserted` +
      `) SELECT count(*) FILTER (WHERE inserted)::bigint AS inserted, count(*) FILTER (WHERE NOT inserted)::bigint AS updated FROM merged`,
  );
}

/** Links still there whose other columns (timestamps) changed. rowCount = updated. */
export function updateChangedLinksSql(s: TableShape): CompiledQuery | null {
  if (s.others.length === 0) return null;
  const set = s.others.map((c) => `${c.id} = s.${c.id}`).join(', ');
  return compiled(
    `UPDATE ${s.target} AS t SET ${set} FROM ${s.temps.stage} AS s WHERE ${matchKey(s.key, 't', 's')} ` +
      `AND (${list(s.others, 't.')}) IS DISTINCT FROM (${list(s.others, 's.')})`,
  );
}

/**
 * Staged links not present yet. rowCount = inserted. After the update every staged link already
 * there is identical to its staged row, so a conflict means "unchanged". ON CONFLICT needs a unique
 * index on the key; without one, an anti-join (slower) does the same.
 */
export function insertNewLinksSql(s: TableShape): CompiledQuery {
  const cols = list(s.columns);
  if (s.keyIsUnique) {
    return compiled(`INSERT INTO ${s.target} (${cols}) SELECT ${list(s.columns, 's.')} FROM ${s.temps.stage} AS s ON CONFLICT (${list(s.key)}) DO NOTHING`);
  }
  return compiled(
    `INSERT INTO ${s.target} (${cols}) SELECT ${list(s.columns, 's.')} FROM ${s.temps.stage} AS s ` +
      `WHERE NOT EXISTS (SELECT 1 FROM ${s.target} AS t WHERE ${matchKey(s.key, 't', 's')})`,
  );
}

/**
 * The merge into an empty table: a plain INSERT … SELECT (no conflict arbitration, no RETURNING).
 * A dedupe table's rows go in key order, so the ids a sequence gives them follow their keys, not
 * where the batch's NULLed rows moved to (as load/contributions.ts winnersIntoEmptyTargetSql).
 */
export function insertAllSql(s: TableShape): CompiledQuery {
  const cols = list(s.columns);
  const order = s.kind === 'dedupe_upsert' ? ` ORDER BY ${list(s.key)}` : '';
  return compiled(`INSERT INTO ${s.target} (${cols}) SELECT ${cols} FROM ${s.temps.stage}${order}`);
}

/**
 * The table's own foreign keys, as PostgreSQL itself spells them, and whether this session owns
 * the table (only an owner may drop and re-add them).
 */
export function ownForeignKeysSql(s: TableShape): CompiledQuery {
  return compiled(
    `SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS definition, ${ownsRelationSql('t.oid')} AS owned ` +
      `FROM pg_class t LEFT JOIN pg_constraint c ON c.conrelid = t.oid AND c.contype = 'f' WHERE t.oid = $1::regclass ORDER BY c.conname`,
    [s.target],
  );
}

/** The foreign keys of other tables that reference this one. */
export function referencingForeignKeysSql(s: TableShape): CompiledQuery {
  return compiled(`SELECT c.conname AS name FROM pg_constraint c WHERE c.confrelid = $1::regclass AND c.conrelid <> c.confrelid AND c.contype = 'f' ORDER BY c.conname`, [s.target]);
}

export function dropConstraintSql(s: TableShape, constraint: string): CompiledQuery {
  return compiled(`ALTER TABLE ${s.target} DROP CONSTRAINT ${ident(constraint)}`);
}

/** `definition` is pg_get_constraintdef's text: DDL PostgreSQL wrote, with its identifiers quoted. */
export function addConstraintSql(s: TableShape, constraint: string, definition: string): CompiledQuery {
  return compiled(`ALTER TABLE ${s.target} ADD CONSTRAINT ${ident(constraint)} ${definition}`);
}
