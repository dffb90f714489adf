// Indexes built after a bulk fill. Filling an empty table through its indexes inserts every row into
// every btree one at a time; building each index once from the filled table is one sort, and takes
// a third less time for a table of a few hundred thousand rows. The indexes come back exactly as
// they were: same names, same definitions as PostgreSQL spells them, the constraints they back
// re-added, the CLUSTER mark put back. A duplicate key fails the re-creation with the unique
// violation the fill would have raised, so callers keep their savepoint around fill and rebuild.
//
// An index a foreign key of another table depends on (a parent's primary key: users, days) can go
// too when every such referencing table is empty, as in a first load, where parents come before
// their children: the foreign keys are dropped with it and re-added after, same names, same
// definitions, their validation a scan of an empty table.
import { compiled, DEFER_ALL, ident, qualified, type CompiledQuery, type SqlIdent } from '../schema/sql.ts';
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

interface ReferencingKey {
  readonly schema: string;
  readonly table: string;
  readonly name: string;
  /** pg_get_constraintdef: `FOREIGN KEY (…) REFERENCES …` with its actions, deferrability, NOT VALID. */
  readonly def: string;
  /**
   * Another plain table's own constraint (not a partition's inherited one), that table owned by this
   * session and without a page (pg_relation_size 0: it holds no row, committed or not), and the
   * filled table owned too.
   */
  readonly detachable: boolean;
}

/** The foreign keys that depend on an index of the table (they reference its key). */
function referencingKeysSql(table: SqlIdent): CompiledQuery {
  return compiled(
    `SELECT n.nspname AS schema, c.relname AS table, f.conname AS name, pg_get_constraintdef(f.oid) AS def, ` +
      `(f.conrelid <> $1::regclass AND c.relkind = 'r' AND f.conparentid = 0 AND pg_relation_size(f.conrelid) = 0 ` +
      `AND ${ownsRelationSql('f.conrelid')} AND ${ownsRelationSql('$1::regclass')}) AS detachable ` +
      `FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace ` +
      `WHERE f.contype = 'f' AND f.conindid IN (SELECT x.indexrelid FROM pg_index x WHERE x.indrelid = $1::regclass) ORDER BY n.nspname, c.relname, f.conname`,
    [table],
  );
}

const OBJECT_IN_USE = '55006';

/** Drops the indexes rebuildableIndexesSql names; returns them. */
async function dropRebuildableIndexes(session: LoadSession, table: SqlIdent): Promise<TableIndex[]> {
  const indexes = (await session.run(rebuildableIndexesSql(table))).rows as TableIndex[];
  for (const i of indexes) await session.run(compiled(i.constraint ? `ALTER TABLE ${table} DROP CONSTRAINT ${ident(i.constraint)}` : `DROP INDEX ${ident(i.name)}`));
  return indexes;
}

interface Dropped {
  readonly indexes: readonly TableIndex[];
  readonly keys: readonly ReferencingKey[];
}

/**
 * Drops the table's indexes, and first the foreign keys that depend on them when every one of them
 * may go (ReferencingKey.detachable). A table still holding pending trigger events of this
 * transaction cannot be altered (55006): the savepoint undoes the attempt and only the indexes no
 * foreign key depends on go, as without referencing keys.
 */
async function dropIndexes(session: LoadSession, table: SqlIdent): Promise<Dropped> {
  const keys = (await session.run(referencingKeysSql(table))).rows as ReferencingKey[];
  if (keys.length > 0 && keys.every((k) => k.detachable)) {
    const inUse = (error: unknown) => (error as { code?: string }).code === OBJECT_IN_USE;
    const indexes = await session.attempt('etl_detach_fks', inUse, async () => {
      for (const k of keys) await session.run(compiled(`ALTER TABLE ${qualified(k.schema, k.table)} DROP CONSTRAINT ${ident(k.name)}`));
      return dropRebuildableIndexes(session, table);
    }, null);
    if (indexes !== null) return { indexes, keys };
  }
  return { indexes: await dropRebuildableIndexes(session, table), keys: [] };
}

/** Runs `work` (filling the empty `table`) with its indexes dropped, then re-creates them as they were. */
export async function withIndexesBuiltAfter<T>(session: LoadSession, table: SqlIdent, work: () => Promise<T>): Promise<T> {
  const dropped = await dropIndexes(session, table);
  const result = await work();
  for (const i of dropped.indexes) {
    await session.run(compiled(i.constraint ? `ALTER TABLE ${table} ADD CONSTRAINT ${ident(i.constraint)} ${i.constraint_def}` : i.def));
    if (i.clustered) await session.run(compiled(`ALTER TABLE ${table} CLUSTER ON ${ident(i.name)}`));
  }
  if (dropped.keys.length === 0) return result;
  // After the indexes they need; each validation scans an empty table.
  for (const k of dropped.keys) await session.run(compiled(`ALTER TABLE ${qualified(k.schema, k.table)} ADD CONSTRAINT ${ident(k.name)} ${k.def}`));
  // A constraint added in the transaction starts immediate: deferred like the others (merge.ts withoutForeignKeys).
  await session.run(DEFER_ALL);
  return result;
}
