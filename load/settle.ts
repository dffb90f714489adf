// Settling a table after the tables before it changed, whether or not this run staged it:
//   orphans  its rows that point at rows this load deleted follow their column's policy;
//   pending  rows held back for a missing reference land, and NULLed references are set, as soon
//            as the referenced row exists (the batch is reused: pending rows go through the same
//            reference check and merge as staged rows).
import { createStageTableSql } from './batch-sql.ts';
import { compiled } from '../schema/sql.ts';
import type { LoadContext } from './load-context.ts';
import { mergeBatch } from './merge.ts';
import { settleOrphans } from './orphans.ts';
import { holdSharedValues } from './unique-values.ts';
import { anyLandable, hasPendingSql, holdRejected, pendingIntoBatch, resolveNulls } from './pending.ts';
import { createRejectsTableSql, resolveMissingReferences, type PlannedCheck } from './references.ts';
import type { TableShape } from './shape.ts';

export interface SettleFigures {
  /** Rows deleted because a row they reference was deleted (on_missing: reject). */
  readonly referencing: number;
  /** References set NULL because the row they point at was deleted, per column. */
  readonly nulledColumns: Readonly<Record<string, number>>;
  /** Pending rows that landed. */
  readonly landed: number;
  /** Pending NULLed references set to their value. */
  readonly resolved: number;
  /** Rows of the table that left it: a pending row landing would share one of their unique values (unique-values.ts). */
  readonly shared: number;
}

/** `held`: the step held rows for a shared unique value, which may land now (a row they shared it with left since). */
export async function settleTable(ctx: LoadContext, shape: TableShape, checks: readonly PlannedCheck[], held: boolean): Promise<SettleFigures> {
  const { session } = ctx;
  const name = shape.table.name;
  session.at(name, 'following the rows deleted from the tables it references');
  const edges = ctx.edges.filter((e) => e.from.name === name);
  const orphans = edges.some((e) => ctx.gone.of(e.to, ctx.shapeOf(e.to)))
    ? await settleOrphans({ session, shape, checks, edges, gone: ctx.gone, shapeOf: ctx.shapeOf, runId: ctx.runId })
    : { referencing: 0, nulledColumns: {} };
  session.at(name, 'landing pending rows');
  const pending = (ctx.pendingBefore.has(name) || held) && ((await session.run(hasPendingSql(shape, ctx.runId))).rows[0] as { any: boolean }).any;
  if (!pending) return { ...orphans, landed: 0, resolved: 0, shared: 0 };
  const { landed, shared } = await landPendingRows(ctx, shape, checks);
  const resolved = await resolveNulls(session, shape, checks);
  return { ...orphans, landed, resolved, shared };
}

/** Pending rows back into the (emptied) batch, checked again, merged; the entries of those that landed dropped. */
async function landPendingRows(ctx: LoadContext, shape: TableShape, checks: readonly PlannedCheck[]): Promise<{ landed: number; shared: number }> {
  const { session } = ctx;
  const none = { landed: 0, shared: 0 };
  // Most entries still wait for their reference: then the batch is not rebuilt for nothing.
  if (!(await anyLandable(session, shape, checks, ctx.runId))) return none;
  await session.run(compiled(`DROP TABLE IF EXISTS ${shape.temps.stage}`));
  await session.run(createStageTableSql(shape));
  await session.run(createRejectsTableSql(shape.temps.rejects));
  await session.run(compiled(`TRUNCATE ${shape.temps.rejects}`));
  const retry = await pendingIntoBatch(session, shape, checks, ctx.runId);
  if (retry.offered === 0) return none;
  await resolveMissingReferences(session, shape, checks, () => holdRejected(session, shape, 'batch', ctx.runId));
  const shared = await holdSharedValues(ctx, shape, checks, { from: 'pending' });
  const merged = await mergeBatch(session, shape);
  await session.run(retry.landedSql);
  // The rows merged: an entry that landed with a reference still missing (set NULL) is held again as
  // a `null` entry of this run, so the `row` entries dropped do not count it.
  return { landed: merged.inserted + merged.updated, shared: shared.left };
}
