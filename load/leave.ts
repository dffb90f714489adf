// Rows that leave a table: what a full run of the current documents would not hold.
//   left   a document this run staged owns the row but no longer yields it (its array lost the item,
//          it left the table's filter, a value is now refused, its reference is now missing) — for
//          a complete read (no date filter), every row the run did not stage; for a dedupe table,
//          a touched key whose recomputed row is gone or refused.
//   gone   delete propagation: the document is not in the collection's live set any more.
// Every deleted row's referenced columns are kept (gone-rows.ts), so the tables referencing it,
// later in load order, follow (orphans.ts); the foreign keys are deferred to COMMIT meanwhile.
import { LoadError } from '../errors/etl-error.ts';
import type { TableModel } from '../model/types.ts';
import { compiled, type CompiledQuery } from '../schema/sql.ts';
import { scopeColumn } from './batch-sql.ts';
import type { LoadContext } from './load-context.ts';
import { forgetGoneSql, forgetSql, ownerInSql, rowKeyInSql } from './pending.ts';
import { forgetReadSql, goneNoteOf } from './gone-documents.ts';
import { list, matchKey, type TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';

/** What the batch replaces. */
export interface Scope {
  /** The run read the collection in full: every row it did not stage leaves. */
  readonly complete: boolean;
  /** The keys temp table holds the documents (upsert, explode) whose rows are replaced. */
  readonly keys: boolean;
  /** dedupe: the touched keys temp table. */
  readonly touched: boolean;
  /** Delete propagation: the live temp table holds the keys of the rows the table may hold. */
  readonly live: boolean;
  /** dedupe, repair runs: the recompute temp table holds keys to recompute. */
  readonly recompute?: boolean;
  /** Documents the run read for the table (the guard against emptying a table by mistake). */
  readonly documents: number;
}

const notStaged = (s: TableShape): string => `NOT EXISTS (SELECT 1 FROM ${s.temps.stage} AS s WHERE ${matchKey(s.key, 's', 't')})`;

/** Rows of the scope that the batch does not hold (alias t), or null when the run replaces nothing. */
export function leftCondition(s: TableShape, scope: Scope): string | null {
  if (scope.complete) return notStaged(s);
  if (scope.touched) return `(${list(s.key, 't.')}) IN (SELECT ${list(s.key)} FROM ${s.temps.touched}) AND ${notStaged(s)}`;
  if (scope.keys && s.docKey) return `t.${s.docKey.id} IN (SELECT k.${s.docKey.id} FROM ${s.temps.keys} AS k) AND ${notStaged(s)}`;
  return null;
}

/** Rows (alias t) whose document is not in the live set: delete propagation. */
export function goneCondition(s: TableShape): string {
  const c = `t.${s.docKey!.id}`;
  return `${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${s.temps.live} AS l WHERE l.k = ${c})`;
}

/** Pending entries (alias p) an incremental scope replaces, by owner or by key; null: none. */
export function scopedEntries(s: TableShape, scope: Scope): string | null {
  if (scope.touched) return rowKeyInSql(s, s.temps.touched);
  if (scope.keys) return ownerInSql(s.temps.keys, scopeColumn(s).id);
  return null;
}

/**
 * Pending entries this run's scope replaces. A complete read, or a repair (which names the documents
 * it did not find as if read), also keeps in etl_gone the documents of the entries it drops that have
 * no row now: not found, they are gone.
 */
function forgetScope(s: TableShape, scope: Scope, runId: string, repair: boolean): CompiledQuery | null {
  if (scope.complete) return forgetSql(s, null, runId, true);
  const entries = scopedEntries(s, scope);
  return entries ? forgetSql(s, entries, runId, !scope.touched && repair) : null;
}

/**
 * The run to record the documents of rows that left as gone in, or null: a complete read did not
 * find them (gone, or out of the filter); a repair's keys file names the documents it asked for and
 * did not find as if read.
 */
export const leftGoneIn = (ctx: LoadContext, scope: Scope): string | null => (scope.complete || ctx.repair ? ctx.runId : null);

export interface LeaveFigures {
  readonly left: number;
  readonly gone: number;
}

/**
 * Deletes the rows that left and the rows whose document is gone, and drops their pending entries.
 * `hadRows`: the table held rows before this batch (else nothing but this batch can leave, and the
 * direct path has no batch table to compare with).
 */
export async function removeLeavingRows(ctx: LoadContext, shape: TableShape, scope: Scope, hadRows: boolean): Promise<LeaveFigures> {
  const { session, gone, runId } = ctx;
  const forgetRead = shape.docKey ? forgetReadSql(shape, scope, { from: shape.target, column: shape.docKey.id }, goneNoteOf(ctx, shape.table.name)) : null;
  if (forgetRead) await session.run(forgetRead);
  let goneRows = 0;
  if (scope.live && shape.docKey) {
    goneRows = await gone.delete(shape, goneCondition(shape), runId);
    await session.run(forgetGoneSql(shape, runId));
  }
  const where = hadRows ? leftCondition(shape, scope) : null;
  if (where && scope.complete && scope.documents === 0 && !ctx.allowDeleteAll) await refuseEmptying(session, shape, where);
  const left = where ? await gone.delete(shape, where, leftGoneIn(ctx, scope)) : 0;
  // Only entries an earlier load wrote are forgotten (the scope's are this run's by now).
  const forget = ctx.pendingBefore.has(shape.table.name) ? forgetScope(shape, scope, runId, ctx.repair) : null;
  if (forget) await session.run(forget);
  return { left, gone: goneRows };
}

/**
 * What to do when a run found no document for a table holding rows: a wrong source is the likely
 * cause, unless the table has a filter its collection's documents all left (the last menu became a
 * webinar), which the hint then names, since that collection is not empty.
 */
export function emptyTableHint(table: TableModel): string {
  const check = 'check the source database and collection names (extract warns about a missing collection)';
  const really = table.filter
    ? `if no document of ${table.collection} matches the filter of ${table.name} (${JSON.stringify(table.filter.mongoQuery)}) any more`
    : 'if the collection really is empty';
  return `${check}; ${really}, load again with --allow-delete-all. Nothing was changed`;
}

/** A complete read that found no document, for a table holding rows: more likely a wrong source. */
async function refuseEmptying(session: LoadSession, shape: TableShape, where: string): Promise<void> {
  const n = Number(((await session.run(compiled(`SELECT count(*)::bigint AS n FROM ${shape.target} AS t WHERE ${where}`))).rows[0] as { n: string }).n);
  if (n === 0) return;
  throw new LoadError(
    'delete_all_refused',
    `${shape.table.name}: the run read collection ${shape.table.collection} in full and found no document for the table, so loading it would delete all ${n} rows of ${shape.table.name}; refused`,
    {
      context: { table: shape.table.name },
      hint: emptyTableHint(shape.table),
    },
  );
}
