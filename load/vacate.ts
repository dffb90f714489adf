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
// A value two rows of the final state hold still stops the load (pg_23505): neither row is right.
import { compiled } from '../schema/sql.ts';
import type { LoadContext } from './load-context.ts';
import { goneCondition, leftCondition, leftGoneIn, type Scope } from './leave.ts';
import { list, matchKey, type TableShape } from './shape.ts';

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
    .map((u) => `EXISTS (SELECT 1 FROM ${s.temps.stage} AS v WHERE (${list(u, 'v.')}) = (${list(u, 't.')}) AND NOT (${matchKey(s.key, 'v', 't')}))`)
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
