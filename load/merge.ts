// Merging a clean batch into its table, set-wise: an upsert on the merge key, links updated and
// inserted, or a plain INSERT into an empty table. What leaves the table (rows of staged documents
// that the batch no longer holds) is load/leave.ts's business.
import { addConstraintSql, dropConstraintSql, insertAllSql, insertNewLinksSql, ownForeignKeysSql, updateChangedLinksSql, upsertSql } from './merge-sql.ts';
import { dropBatchDuplicatesSql } from './batch-sql.ts';
import type { TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';
import { savepoint } from '../schema/sql.ts';

const INSERT_SAVEPOINT = savepoint('etl_insert');

export interface MergeFigures {
  readonly inserted: number;
  readonly updated: number;
}

export async function mergeBatch(session: LoadSession, shape: TableShape): Promise<MergeFigures> {
  if (shape.kind !== 'delete_and_insert') {
    const row = (await session.run(upsertSql(shape))).rows[0] as { inserted: string; updated: string };
    return { inserted: Number(row.inserted), updated: Number(row.updated) };
  }
  const update = updateChangedLinksSql(shape);
  const updated = update ? await session.count(update) : 0;
  const inserted = await session.count(insertNewLinksSql(shape));
  return { inserted, updated };
}

/** Below this many rows the per-row foreign-key checks cost less than re-validating the constraints. */
export const BULK_ROWS = 20_000;

interface OwnForeignKey {
  readonly name: string;
  readonly definition: string;
}

/** The table's foreign keys if this session may drop and re-add them, else null. */
export async function droppableForeignKeys(session: LoadSession, shape: TableShape): Promise<OwnForeignKey[] | null> {
  const rows = (await session.run(ownForeignKeysSql(shape))).rows as { name: string | null; definition: string | null; owned: boolean }[];
  if (rows.some((f) => !f.owned)) return null;
  return rows.filter((f) => f.name !== null && f.definition !== null) as OwnForeignKey[];
}

/**
 * Runs `work` with the table's foreign keys dropped, then re-adds them (same names, same
 * definitions): re-adding validates all rows in one join instead of a lookup per row, and a
 * failure still rolls everything back. Every reference was checked set-wise just before.
 */
export async function withoutForeignKeys<T>(session: LoadSession, shape: TableShape, fks: readonly OwnForeignKey[], work: () => Promise<T>): Promise<T> {
  for (const f of fks) await session.run(dropConstraintSql(shape, f.name));
  const result = await work();
  for (const f of fks) await session.run(addConstraintSql(shape, f.name, f.definition));
  // A constraint added in the transaction starts immediate: defer it like the others (load's steps
  // delete referenced rows before the rows referencing them are followed).
  if (fks.length > 0) await session.client.query('SET CONSTRAINTS ALL DEFERRED');
  return result;
}

const UNIQUE_VIOLATION = '23505';

export const isUniqueViolation = (error: unknown): boolean => (error as { code?: string }).code === UNIQUE_VIOLATION;

/**
 * The merge into an empty table. An initial load spends most of its time in PostgreSQL's per-row
 * foreign-key triggers, so a large batch goes in with the foreign keys dropped (withoutForeignKeys).
 * Optimistic: the batch rarely repeats a key; if it does, the savepoint undoes just that INSERT, the
 * duplicates are resolved as for any load, and it runs again.
 */
export async function insertIntoEmpty(session: LoadSession, shape: TableShape, rows: number, bulkRows = BULK_ROWS): Promise<{ inserted: number; duplicates: number }> {
  const fks = rows >= bulkRows ? ((await droppableForeignKeys(session, shape)) ?? []) : [];
  return withoutForeignKeys(session, shape, fks, async () => {
    await session.run(INSERT_SAVEPOINT.set);
    let duplicates = 0;
    let inserted: number;
    try {
      inserted = await session.count(insertAllSql(shape));
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      await session.run(INSERT_SAVEPOINT.rollback);
      duplicates = await session.count(dropBatchDuplicatesSql(shape));
      inserted = await session.count(insertAllSql(shape));
    }
    await session.run(INSERT_SAVEPOINT.release);
    return { inserted, duplicates };
  });
}
