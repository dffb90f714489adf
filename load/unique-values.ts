// A unique constraint beside the key a table merges on (users declaring [email] unique) is checked by
// PostgreSQL row by row, in the middle of the merge. A source holding each value once can still move
// a value from one row to another between two runs: the row that held it leaves in this run (its
// document deleted, or no longer yielding the row), or changes in this run too (two users swapped
// their emails). The merge would meet the old row first and stop, where a full run loads. So before
// the merge, a row holding a value a batch row of another key takes is taken out of the way:
//   leaving   deleted as leave.ts would delete it after the merge (counted and followed the same way);
//   changing  deleted, to be inserted again by the merge with its new values (the foreign keys are
//             deferred to COMMIT, so rows referencing it never see it missing). Not in a dedupe table,
//             whose rows' ids a sequence gives: there the merge meets it as before.
// A value two rows of the final state would hold still stops the load (refuseSharedValues, naming
// both documents): neither row is right.
import { LoadError } from '../errors/etl-error.ts';
import { compiled, type CompiledQuery } from '../schema/sql.ts';
import { shortText } from '../staging/short-text.ts';
import type { LoadContext } from './load-context.ts';
import { goneCondition, leftCondition, leftGoneIn, type Scope } from './leave.ts';
import { keyJson, list, matchKey, type OtherUnique, type ShapeColumn, type TableShape } from './shape.ts';

export interface Vacated {
  /** Rows deleted now rather than after the merge: they left the scope, or their document is gone. */
  readonly left: number;
  readonly gone: number;
  /** Rows of the batch's keys deleted to be merged again: the merge counts them inserted, they were updated. */
  readonly replaced: number;
}

export const NOTHING_VACATED: Vacated = { left: 0, gone: 0, replaced: 0 };

/** A target row (alias t) holding the values of some other unique constraint that a batch row of another key holds. */
function takenCondition(s: TableShape): string {
  return s.otherUniques
    .map(({ columns: u }) => `EXISTS (SELECT 1 FROM ${s.temps.stage} AS v WHERE (${list(u, 'v.')}) = (${list(u, 't.')}) AND NOT (${matchKey(s.key, 'v', 't')}))`)
    .join(' OR ');
}

/** Takes the rows standing in the way of the batch out of the table (its batch is final: references checked, contested keys refused). */
export async function vacateTakenValues(ctx: LoadContext, shape: TableShape, scope: Scope): Promise<Vacated> {
  if (shape.otherUniques.length === 0) return NOTHING_VACATED;
  const { session, gone: goneRows, runId } = ctx;
  session.at(shape.table.name, 'moving unique values out of the way');
  const taken = `(${takenCondition(shape)})`;
  const gone = scope.live && shape.docKey ? await goneRows.delete(shape, `${goneCondition(shape)} AND ${taken}`, runId) : 0;
  const leaving = leftCondition(shape, scope);
  const left = leaving ? await goneRows.delete(shape, `${leaving} AND ${taken}`, leftGoneIn(ctx, scope)) : 0;
  if (shape.kind === 'dedupe_upsert') return { left, gone, replaced: 0 };
  const staged = `EXISTS (SELECT 1 FROM ${shape.temps.stage} AS s WHERE ${matchKey(shape.key, 's', 't')})`;
  const replaced = await session.count(compiled(`DELETE FROM ${shape.target} AS t WHERE ${staged} AND ${taken}`));
  return { left, gone, replaced };
}

/** Two holders of one value of `u`: a batch row (alias a) and another batch row or a row of the table staying as it is (alias b). */
function sharedValueSql(s: TableShape, u: readonly ShapeColumn[]): CompiledQuery {
  const holder = (alias: string) => (s.docKey ? `${alias}.${s.docKey.id}::text` : `${keyJson(s.key, alias)}::text`);
  const pair = (inTable: boolean) => `SELECT jsonb_build_object(${u.map((c, i) => `$${i + 1}::text, a.${c.id}`).join(', ')}) AS value, ${holder('a')} AS merged, ${holder('b')} AS other, ${inTable} AS in_table`;
  const sameValue = `(${list(u, 'a.')}) = (${list(u, 'b.')}) AND NOT (${matchKey(s.key, 'a', 'b')})`;
  const staying = `NOT EXISTS (SELECT 1 FROM ${s.temps.stage} AS s WHERE ${matchKey(s.key, 's', 'b')})`;
  return compiled(
    `(${pair(false)} FROM ${s.temps.stage} AS a JOIN ${s.temps.stage} AS b ON ${sameValue} LIMIT 1) UNION ALL ` +
      `(${pair(true)} FROM ${s.temps.stage} AS a JOIN ${s.target} AS b ON ${sameValue} WHERE ${staying} LIMIT 1) LIMIT 1`,
    u.map((c) => c.name),
  );
}

interface SharedValue {
  readonly value: Record<string, unknown>;
  readonly merged: string;
  readonly other: string;
  readonly in_table: boolean;
}

/** Where the batch's rows come from: this run's staged rows, or etl_pending's rows whose reference arrived (settle.ts). */
export type BatchSource = 'staged' | 'pending';

/**
 * A value of another unique constraint that two rows of the final state would hold stops the load
 * before the merge, naming the two documents (or keys) and what to do, where PostgreSQL would name
 * the value only. The batch is final and the rows in its way are out (vacateTakenValues).
 */
export async function refuseSharedValues(ctx: LoadContext, shape: TableShape, from: BatchSource): Promise<void> {
  if (shape.otherUniques.length > 0) ctx.session.at(shape.table.name, 'checking unique values');
  for (const u of shape.otherUniques) {
    const shared = (await ctx.session.run(sharedValueSql(shape, u.columns))).rows[0] as SharedValue | undefined;
    if (shared) throw sharedValueError(shape, u, shared, from);
  }
}

function sharedValueError(shape: TableShape, u: OtherUnique, shared: SharedValue, from: BatchSource): LoadError {
  const table = shape.table.name;
  const constraint = u.name;
  const value = Object.entries(shared.value).map(([c, v]) => `${c} = ${JSON.stringify(shortText(String(v), 200))}`).join(', ');
  const of = (holder: string) => (shape.docKey ? `document ${shortText(holder, 100)}` : `key ${shortText(holder, 200)}`);
  const merges = from === 'staged' ? 'which this load merges' : 'held back by an earlier load until its reference arrived, which this load lands';
  const other = shared.in_table ? `the row of ${of(shared.other)} already in the table, which this run did not read` : `the row of ${of(shared.other)}, which it ${from === 'staged' ? 'merges' : 'lands'} too`;
  // The documents this run did not read may have been deleted since: only delete propagation tells.
  const unread = [...(from === 'pending' ? [shared.merged] : []), ...(shared.in_table || from === 'pending' ? [shared.other] : [])];
  const deleted = unread.length > 0 && shape.docKey ? `if ${unread.map(of).join(' or ')} was deleted from MongoDB, load with --propagate-deletes (its row then leaves first); ` : '';
  const columns = u.columns.map((c) => c.name).join(', ');
  const declared = u.primaryKey ? `or give ${table} another primary key in pipeline.yaml` : `or drop [${columns}] from ${table}.unique_constraints in pipeline.yaml`;
  return new LoadError(
    'unique_value_shared',
    `${table}: two rows would hold one value of the unique constraint ${constraint} (${value}): the row of ${of(shared.merged)}, ${merges}, and ${other}; the load stops`,
    {
      context: { table, constraint },
      hint: `nothing was changed in PostgreSQL; ${deleted}if both documents hold the value in MongoDB, correct one of them, ${declared}`,
    },
  );
}
