// Merging a clean batch into its table, set-wise: an upsert on the merge key, links updated and
// inserted, or a plain INSERT into an empty table. What leaves the table (rows of staged documents
// that the batch no longer holds) is load/leave.ts's business.
import { addConstraintSql, dropConstraintSql, insertAllSql, insertNewLinksSql, ownForeignKeysSql, referencingForeignKeysSql, updateChangedLinksSql, upsertSql } from './merge-sql.ts';
import { dropBatchDuplicatesSql } from './batch-sql.ts';
import type { TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';
import { compiled, DEFER_ALL, ident, type CompiledQuery } from '../schema/sql.ts';
import { withIndexesBuiltAfter } from './indexes.ts';
import { withReferencesCheckedByLoad } from './checked-references.ts';
import type { PlannedCheck } from './references.ts';


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

interface ForeignKeyRow {
  readonly name: string | null;
  readonly definition: string | null;
  readonly owned: boolean;
}

/**
 * The table's own foreign keys, asked once a load (the shapes are the load's): within it they are
 * only ever dropped and re-added as they were (withoutForeignKeys), under the same names.
 */
const ownForeignKeys = new WeakMap<TableShape, readonly ForeignKeyRow[]>();

async function foreignKeysOf(session: LoadSession, shape: TableShape): Promise<readonly ForeignKeyRow[]> {
  let rows = ownForeignKeys.get(shape);
  if (!rows) {
    rows = (await session.run(ownForeignKeysSql(shape))).rows as ForeignKeyRow[];
    ownForeignKeys.set(shape, rows);
  }
  return rows;
}

/** The table's foreign keys if this session may drop and re-add them, else null. */
export async function droppableForeignKeys(session: LoadSession, shape: TableShape): Promise<OwnForeignKey[] | null> {
  const rows = await foreignKeysOf(session, shape);
  if (rows.some((f) => !f.owned)) return null;
  return rows.filter((f) => f.name !== null && f.definition !== null) as OwnForeignKey[];
}

/**
 * Runs `work` with the table's foreign keys dropped, then re-adds them (same names, same
 * definitions): re-adding validates all rows in one join instead of a lookup per row, and a
 * failure still rolls everything back. Every reference was checked set-wise just before.
 */
export async function withoutForeignKeys<T>(session: LoadSession, shape: TableShape, fks: readonly OwnForeignKey[], work: () => Promise<T>): Promise<T> {
  const dropped = fks.length > 0 && (await dropForeignKeys(session, shape, fks));
  const result = await work();
  if (dropped) {
    for (const f of fks) await session.run(addConstraintSql(shape, f.name, f.definition));
    // A constraint added in the transaction starts immediate: defer it like the others (load's steps
    // delete referenced rows before the rows referencing them are followed).
    await session.run(DEFER_ALL);
  }
  return result;
}

/**
 * Drops the foreign keys, or leaves them all in place (false) when PostgreSQL refuses: a referenced
 * table still holding deferred checks of this transaction cannot be altered (rows deleted from it
 * whose referencing rows a later table settles). The work then runs with per-row checks.
 */
async function dropForeignKeys(session: LoadSession, shape: TableShape, fks: readonly OwnForeignKey[]): Promise<boolean> {
  const inUse = (error: unknown) => (error as { code?: string }).code === OBJECT_IN_USE;
  return session.attempt('etl_drop_fks', inUse, async () => {
    for (const f of fks) await session.run(dropConstraintSql(shape, f.name));
    return true;
  }, false);
}

/**
 * Runs the deferred checks of the table's own foreign keys now, once its step is over, and defers
 * them again (`referencing`: those of the other tables' foreign keys to it, queued on it by rows
 * deleted from it). Nothing later in the load changes its rows' references or the tables they point at
 * (those come earlier in load order), so a check passes now exactly when it would at COMMIT; and a
 * table with no checks left queued on it can have its foreign keys dropped by a later bulk step
 * (ALTER TABLE refuses a table with pending trigger events).
 */
export async function runDeferredChecks(session: LoadSession, shape: TableShape, which: 'own' | 'referencing' = 'own'): Promise<void> {
  const rows = which === 'own' ? await foreignKeysOf(session, shape) : ((await session.run(referencingForeignKeysSql(shape))).rows as { name: string | null }[]);
  const names = rows.flatMap((f) => (f.name === null ? [] : [ident(f.name)]));
  if (names.length === 0) return;
  await session.run(compiled(`SET CONSTRAINTS ${names.join(', ')} IMMEDIATE`));
  await session.run(compiled(`SET CONSTRAINTS ${names.join(', ')} DEFERRED`));
}

const UNIQUE_VIOLATION = '23505';
const OBJECT_IN_USE = '55006';

export const isUniqueViolation = (error: unknown): boolean => (error as { code?: string }).code === UNIQUE_VIOLATION;

/**
 * The merge into an empty table. An initial load spends most of its time in PostgreSQL's per-row
 * foreign-key triggers, so the batch, whose references were checked (`checks`), goes in without
 * them (checked-references.ts), else, when large, with the foreign keys dropped (withoutForeignKeys);
 * a large batch has its indexes built after. Optimistic: the batch rarely repeats a key; if it does, the savepoint undoes
 * just that INSERT, the duplicates are resolved as for any load, and it runs again. `insertSql`: the
 * INSERT (default: the whole batch; dedupe: winnersIntoEmptyTargetSql, one row per key already).
 */
export async function insertIntoEmpty(
  session: LoadSession,
  shape: TableShape,
  rows: number,
  checks: readonly PlannedCheck[],
  bulkRows = BULK_ROWS,
  insertSql: CompiledQuery = insertAllSql(shape),
): Promise<{ inserted: number; duplicates: number }> {
  const bulk = rows >= bulkRows;
  const work = async (): Promise<{ inserted: number; duplicates: number }> => {
    const insert = () => session.count(insertSql);
    const inserted = await session.attempt('etl_insert', isUniqueViolation, () => (bulk ? withIndexesBuiltAfter(session, shape.target, insert) : insert()), null);
    if (inserted !== null) return { inserted, duplicates: 0 };
    // The batch repeats a key: keep one row of each, as the general path does.
    const duplicates = await session.count(dropBatchDuplicatesSql(shape));
    return { inserted: await insert(), duplicates };
  };
  const unchecked = async () => withoutForeignKeys(session, shape, bulk ? ((await droppableForeignKeys(session, shape)) ?? []) : [], work);
  return withReferencesCheckedByLoad(session, shape, checks, work, unchecked);
}
