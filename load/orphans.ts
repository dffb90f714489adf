// Rows left pointing at nothing: a row of this table references a row that this load deleted from a
// table earlier in load order (its document is gone, or no longer yields it). A full run of the
// current documents would have refused the reference, so the row follows its column's policy:
//   reject   → deleted (and its own children follow in turn), kept in etl_pending;
//   set_null → the reference set NULL, kept in etl_pending.
// Kept in etl_pending, it lands again as soon as the referenced row comes back. Rows of this run's
// batch were checked against the parents after their deletions, so only older rows can be orphans.
import { compiled } from '../schema/sql.ts';
import type { Edge } from './foreign-keys.ts';
import type { GoneRows } from './gone-rows.ts';
import { holdTargetRows } from './pending.ts';
import type { PlannedCheck } from './references.ts';
import type { TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';
import { ident } from '../schema/sql.ts';

export interface OrphanFigures {
  /** Rows deleted because a referenced row was deleted (on_missing: reject). */
  readonly referencing: number;
  /** References set NULL, per column (on_missing: set_null). */
  readonly nulledColumns: Readonly<Record<string, number>>;
}

export interface OrphanInput {
  readonly session: LoadSession;
  readonly shape: TableShape;
  /** This table's reference checks (the policy of each column). */
  readonly checks: readonly PlannedCheck[];
  /** Foreign keys of the model leaving this table. */
  readonly edges: readonly Edge[];
  readonly gone: GoneRows;
  readonly shapeOf: (table: string) => TableShape;
  readonly runId: string;
  /** Only the rows (alias t) this condition also holds (unique-values.ts: those in the batch's way). */
  readonly within?: string;
}

/** Rows (alias t) whose `edge` column points at a row deleted from its table by this load. */
function orphanCondition(input: OrphanInput, edge: Edge): string | null {
  const parent = input.shapeOf(edge.to);
  const gone = input.gone.of(edge.to, parent);
  if (!gone) return null;
  const c = `t.${ident(edge.column)}`;
  const pc = ident(edge.toColumn);
  const orphan = `${c} IN (SELECT g.${pc} FROM ${gone} AS g) AND NOT EXISTS (SELECT 1 FROM ${parent.target} AS x WHERE x.${pc} = ${c})`;
  return input.within ? `${orphan} AND (${input.within})` : orphan;
}

export async function settleOrphans(input: OrphanInput): Promise<OrphanFigures> {
  const { session, shape, gone, runId } = input;
  const checkOf = (column: string): PlannedCheck => input.checks.find((c) => c.column.name === column)!;
  let referencing = 0;
  const nulledColumns: Record<string, number> = {};
  const ordered = [...input.edges.filter((e) => e.action === 'reject'), ...input.edges.filter((e) => e.action === 'set_null')];
  for (const edge of ordered) {
    // A table referencing itself: rows pointing at a row deleted in this pass follow, until none.
    for (;;) {
      const where = orphanCondition(input, edge);
      if (!where) break;
      const check = checkOf(edge.column);
      const held = await holdTargetRows(session, shape, where, check, runId);
      if (held === 0) break;
      if (edge.action === 'reject') referencing += await gone.delete(shape, where);
      else nulledColumns[edge.column] = (nulledColumns[edge.column] ?? 0) + (await session.count(compiled(`UPDATE ${shape.target} AS t SET ${check.column.id} = NULL WHERE ${where}`)));
      if (edge.to !== edge.from.name || edge.action !== 'reject') break;
    }
  }
  return { referencing, nulledColumns };
}
