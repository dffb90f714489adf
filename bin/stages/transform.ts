// The transform stage as the commands show it. Transform reads each collection's file once for all
// the tables it feeds, so the live list has one task per collection; the tables are in the summary.
import { runTransform, type TransformOptions, type TransformProgress, type TransformReport } from '../../transform/index.ts';
import type { PipelineModel } from '../../model/types.ts';
import { formatTable } from '../../report/text-table.ts';
import type { CommandContext } from '../command.ts';
import { count, duration } from '../progress/meter.ts';
import type { ProgressView, StageTracker } from '../progress/view.ts';
import { writeWarnings } from '../stage-flow.ts';

export function transformStage(view: ProgressView, options: Omit<TransformOptions, 'onProgress'>): Promise<TransformReport> {
  return view.stage({ name: 'transform', title: 'Transform: checking the staged run', summary: (r) => transformLine(r) }, (tracker) =>
    runTransform({ ...options, onProgress: collectionTracker(tracker, options.model) }),
  );
}

/** Turns table-level events into one item per collection, finished when its last table is. */
function collectionTracker(t: StageTracker, model: PipelineModel) {
  const pending = new Map<string, Set<string>>();
  const figures = new Map<string, { rows: number; rejected: number }>();
  return (e: TransformProgress): void => {
    switch (e.kind) {
      case 'started': {
        for (const table of e.tables) {
          const c = model.tables.get(table)?.collection ?? table;
          if (!pending.has(c)) pending.set(c, new Set());
          pending.get(c)!.add(table);
        }
        return t.plan(`Transform run ${e.runId}: ${e.tables.length} table(s)`, [...pending.keys()].map((name) => ({ name, total: null })), 'documents');
      }
      case 'collection_started':
        t.progress(e.collection, 0, e.total);
        return t.phase(e.collection, `→ ${e.tables.join(', ')}`);
      case 'collection_progress':
        return t.progress(e.collection, e.documents, e.total);
      case 'table_done': {
        const c = e.record.collection;
        const f = figures.get(c) ?? { rows: 0, rejected: 0 };
        figures.set(c, { rows: f.rows + e.record.rows, rejected: f.rejected + e.record.rejected });
        t.detail(c, `${e.table}: ${count(e.record.rows)} rows, ${count(e.record.rejected)} rejected`);
        const left = pending.get(c);
        left?.delete(e.table);
        if (left && left.size === 0) {
          const done = figures.get(c)!;
          t.finish(c, `${c}: ${count(e.record.documents)} documents → ${count(done.rows)} rows, ${count(done.rejected)} rejected`);
        }
        return;
      }
      case 'table_failed':
        return t.fail(model.tables.get(e.table)?.collection ?? e.table);
    }
  };
}

function skippedText(skipped: Readonly<Record<string, number>>): string {
  const parts = Object.entries(skipped).map(([reason, n]) => `${reason} ${count(n)}`);
  return parts.length > 0 ? parts.join(', ') : '0';
}

const rowsOf = (r: TransformReport) => r.tables.reduce((a, t) => a + t.rows, 0);
const rejectedOf = (r: TransformReport) => r.tables.reduce((a, t) => a + t.rejected, 0);

/** `transform: 20,000 documents → 45,123 rows in 31 table(s), 12 rejected, in 0.91 s; run X` */
export function transformLine(r: TransformReport, where = `run ${r.runId}`, ms = Date.parse(r.endedAt) - Date.parse(r.startedAt)): string {
  return `transform: ${count(r.documentsRead)} documents → ${count(rowsOf(r))} rows in ${r.tables.length} table(s), ${count(rejectedOf(r))} rejected, in ${duration(ms)}; ${where}`;
}

/** The --json document: the report, with the `durationMs` scripts have read since the first release. */
export function transformJson(r: TransformReport) {
  return { ok: true, ...r, durationMs: Date.parse(r.endedAt) - Date.parse(r.startedAt) };
}

export function renderTransform(ctx: CommandContext, r: TransformReport): void {
  const rows = r.tables.map((t) => [t.table, t.documents, t.rows, t.rejected, skippedText(t.skipped)]);
  ctx.stdout.write(formatTable(['table', 'documents', 'rows', 'rejected', 'skipped'], rows));
  transformNotes(ctx, r);
}

/** What the table does not say: warnings (a changed pipeline), tables not extracted, live keys, where rejects are. */
export function transformNotes(ctx: CommandContext, r: TransformReport): void {
  writeWarnings(ctx, r.warnings);
  if (r.notExtracted.length > 0) ctx.stdout.write(`not in this run (collection not extracted): ${r.notExtracted.join(', ')}\n`);
  if (r.kept.length > 0) ctx.stdout.write(`kept from the run's earlier transform (etl load loads them too): ${r.kept.join(', ')}\n`);
  if (r.dropped.length > 0) {
    ctx.stdout.write(`removed the files of the run's earlier transform of ${r.dropped.join(', ')}: ${r.droppedBecause}\n`);
  }
  const live = r.tables.filter((t) => t.live);
  if (live.length > 0) ctx.stdout.write(`live keys for delete propagation: ${live.map((t) => `${t.table} ${count(t.live!.records)}`).join(', ')} (transform/<table>.live.csv)\n`);
  if (rejectedOf(r) > 0) ctx.stdout.write(`rejected rows are listed in ${r.runDir}/transform/<table>.rejects.ndjson\n`);
}
