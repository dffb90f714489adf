// What every step of one load shares: the session, the run, the model's shapes and foreign keys,
// and the rows deleted so far (which the tables referencing them follow).
import type { PipelineModel } from '../model/types.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { edgesOf, type Edge } from './foreign-keys.ts';
import { GoneRows } from './gone-rows.ts';
import type { LoadStart } from './start.ts';
import type { LoadSession } from './session.ts';
import { tableShape, type TableShape } from './shape.ts';

export interface LoadContext {
  readonly session: LoadSession;
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  readonly runId: string;
  readonly signal: AbortSignal | undefined;
  readonly gone: GoneRows;
  readonly edges: readonly Edge[];
  readonly allowDeleteAll: boolean;
  /** A batch of at least this many rows into an empty table takes the bulk paths. */
  readonly bulkRows: number;
  /** A repair run (`etl repair`): no watermark moves, no table is truncated. */
  readonly repair: boolean;
  /** Tables holding etl_pending entries when the load started (pending.ts tablesWithPending). */
  readonly pendingBefore: ReadonlySet<string>;
  /** Tables holding etl_gone entries when the load started (gone-documents.ts). */
  readonly goneBefore: ReadonlySet<string>;
  /** The tables the plan loads (asked for, or all the run staged), in load order. */
  readonly planned: readonly string[];
  shapeOf(table: string): TableShape;
  /** What transform recorded for a table of the run (a step asks for its own table: always there). */
  staged(table: string): TransformTableRecord;
  /** The same, or undefined while the table's files are not final yet (`etl run`). */
  stagedSoFar(table: string): TransformTableRecord | undefined;
}

export function loadContext(session: LoadSession, plan: LoadStart, o: { allowDeleteAll: boolean; bulkRows: number; pendingBefore: ReadonlySet<string>; goneBefore: ReadonlySet<string> }): LoadContext {
  const { model } = plan;
  const edges = edgesOf(model);
  const shapes = new Map(model.loadOrder.map((name, i) => [name, tableShape(model.tables.get(name)!, i)]));
  return {
    session,
    model,
    paths: plan.paths,
    runId: plan.paths.runId,
    signal: session.signal,
    gone: new GoneRows(session, edges),
    edges,
    allowDeleteAll: o.allowDeleteAll,
    bulkRows: o.bulkRows,
    repair: plan.repair,
    pendingBefore: o.pendingBefore,
    goneBefore: o.goneBefore,
    planned: plan.tables,
    shapeOf: (table) => shapes.get(table)!,
    staged: (table) => plan.staged(table)!,
    stagedSoFar: (table) => plan.staged(table),
  };
}
