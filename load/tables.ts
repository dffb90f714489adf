// Every table of the model in load order, inside the load's transaction: the tables the run staged
// take their step (table-step.ts) and move their watermark; the others are settled (settle.ts) when
// a table they reference lost rows or when they hold pending rows. Parents always come first, so a
// table's references are checked against parents that are already final. A staged table's step
// waits until its files are final (`etl run` loads while the run is still being transformed); the
// watermarks move after the last step, once the extract's record of every collection is known (no
// step reads them, so the transaction ends the same).
import { rm } from 'node:fs/promises';
import { advanceWatermark, forgetWatermark, storedWatermarks, type StoredWatermark } from './ledger.ts';
import type { LoadContext } from './load-context.ts';
import type { DeletePropagationReport, PendingReport, PendingTotals, SettledTableReport, TableDeletions, TableLoadReport } from './options.ts';
import { extractWatermark, nextWatermark, plannedMapping, type LoadPlan } from './plan.ts';
import { tableList } from './table-list.ts';
import type { LoadStart } from './start.ts';
import { pendingFigures, pendingTotals } from './pending.ts';
import { referenceChecks } from './references.ts';
import { runDeferredChecks } from './merge.ts';
import { settleTable, type SettleFigures } from './settle.ts';
import { loadTableStep, type TableStepResult } from './table-step.ts';

export interface TablesOutcome {
  readonly tables: TableLoadReport[];
  readonly settled: SettledTableReport[];
  readonly pending: PendingTotals;
  readonly truncated: string[];
  readonly deletions: DeletePropagationReport | null;
  readonly warnings: string[];
  /** Rejects files written as .partial, to commit once the transaction ended as planned. */
  readonly rejects: (NonNullable<TableStepResult['rejects']> & { readonly table: string })[];
}

interface Progress {
  readonly steps: TableStepResult[];
  readonly reports: TableLoadReport[];
  readonly settled: { table: string; figures: SettleFigures }[];
  readonly truncated: string[];
  readonly warnings: string[];
  /** Tables emptied by a cascade whose run did not read them in full: their watermark stays removed. */
  readonly frozen: Set<string>;
  /** The watermarks of the tables to load, as the load found them. */
  readonly stored: ReadonlyMap<string, StoredWatermark>;
}

export async function loadTables(ctx: LoadContext, start: LoadStart, toLoad: readonly string[]): Promise<TablesOutcome> {
  const stored = await storedWatermarks(ctx.session.client, toLoad);
  const p: Progress = { steps: [], reports: [], settled: [], truncated: [], warnings: [], frozen: new Set(), stored };
  try {
    for (const name of ctx.model.loadOrder) {
      ctx.signal?.throwIfAborted();
      if (toLoad.includes(name)) {
        await start.ready(name);
        await stepTable(ctx, name, p);
      } else await settleOnly(ctx, name, p);
    }
    await moveWatermarks(ctx, await start.final(), toLoad, p);
  } catch (error) {
    // The transaction will not end as planned: no rejects file describes it.
    for (const s of p.steps) await s.rejects?.sink.discard().catch(() => undefined);
    throw error;
  }
  const tables = p.reports;
  const settled: SettledTableReport[] = [];
  for (const s of p.settled) settled.push({ table: s.table, deleted: s.figures.referencing + s.figures.shared, nulled: sum(s.figures.nulledColumns), pending: await pendingOf(ctx, s.table, s.figures) });
  for (const r of tables) if (!r.rejectsFile) await rm(ctx.paths.loadRejects(r.table), { force: true });
  const rejects = p.steps.flatMap((s) => (s.rejects ? [{ ...s.rejects, table: s.table }] : []));
  return { tables, settled, pending: await pendingTotals(ctx.session), truncated: p.truncated, deletions: deletionsReport(ctx, p), warnings: p.warnings, rejects };
}

async function stepTable(ctx: LoadContext, name: string, p: Progress): Promise<void> {
  const result = await loadTableStep(ctx, name);
  p.steps.push(result);
  const report = tableReport(result, await pendingOf(ctx, name, result.settle));
  p.reports.push(report);
  ctx.session.emit({ kind: 'table_done', table: name, report });
}

/** Per staged table in load order, what its step's TRUNCATE … CASCADE emptied, then its watermark. */
async function moveWatermarks(ctx: LoadContext, plan: LoadPlan, toLoad: readonly string[], p: Progress): Promise<void> {
  p.warnings.push(...dumpBehindWarnings(plan, toLoad, p));
  const notes: WatermarkNotes = { held: [], partial: [] };
  for (const { table: name, truncated } of p.steps) {
    for (const emptied of truncated) {
      if (!p.truncated.includes(emptied)) p.truncated.push(emptied);
      const readInFull = toLoad.includes(emptied) && extractWatermark(plan, emptied)?.from === null;
      if (!readInFull && ctx.model.tables.has(emptied)) {
        await forgetWatermark(ctx.session.client, emptied);
        p.frozen.add(emptied);
        p.warnings.push(`${emptied} was emptied by TRUNCATE ${name} CASCADE and this run did not read it in full: its watermark was removed, so the next extract reads it in full`);
      }
    }
    await moveWatermark(ctx, plan, name, p, notes);
  }
  const { held, partial } = notes;
  if (held.length > 0) {
    p.warnings.push(
      `this run read ${tableList(held.map((h) => h.table))} from ${held[0]!.from}, after their watermark: ` +
        'the watermark stays where it was, so the next run reads the documents changed in between',
    );
  }
  if (partial.length > 0) {
    p.warnings.push(
      `${tableList(partial)} never loaded into this database, and this run did not read them in full (its extract ` +
        'read the watermarks of another database, or --since): they hold the rows of the documents the run read, ' +
        'and the next run reads them in full',
    );
  }
}

/** What moveWatermark has to say once for all tables: watermarks held back, tables never read in full here. */
interface WatermarkNotes {
  readonly held: { table: string; from: string }[];
  readonly partial: string[];
}

/**
 * The table's watermark moves to the instant this run's extract guarantees. A repair guarantees
 * none (it read documents by `_id`): watermark and fingerprint stay, so the next run reads what it
 * would have read without the repair.
 */
async function moveWatermark(ctx: LoadContext, plan: LoadPlan, name: string, p: Progress, notes: WatermarkNotes): Promise<void> {
  if (ctx.repair) return;
  const stored = p.stored.get(name);
  const from = readAfterWatermark(plan, name, stored);
  if (from) return void notes.held.push({ table: name, from });
  const next = nextWatermark(plan, name);
  if (next && !p.frozen.has(name)) {
    const mapping = plannedMapping(plan, name);
    await advanceWatermark(ctx.session.client, name, next, ctx.runId, mapping, stored);
    if (readInPartFirst(mapping, stored)) notes.partial.push(name);
  } else if (!next) p.warnings.push(`${name}: the run records no extract watermark for collection ${ctx.model.tables.get(name)!.collection}; the watermark was not moved`);
}

/**
 * A table this database never loaded that the run read only in part, with the current mapping: its
 * extract read the watermarks of another database (DATABASE_URL changed between extract and load),
 * or --since. Its rows are those of the documents the run read; the fingerprint stored (PARTIAL)
 * makes the next run read it in full.
 */
function readInPartFirst({ current, planned }: ReturnType<typeof plannedMapping>, stored: StoredWatermark | undefined): boolean {
  if (stored) return false;
  return planned !== null && planned.fingerprint === current && !planned.fullRead;
}

/**
 * When the run read the table's collection from an instant later than the table's watermark
 * (`--since` a date after it), that instant: it did not read the documents changed in between, and
 * moving the watermark past them would leave them unread for good (only a full run would mend them).
 * The watermark stays, so the next run reads from it; load says so once for every such table.
 */
function readAfterWatermark(plan: LoadPlan, name: string, stored: StoredWatermark | undefined): string | null {
  const from = extractWatermark(plan, name)?.from ?? null;
  return from && stored && Date.parse(from) > stored.watermark.getTime() ? from : null;
}

async function settleOnly(ctx: LoadContext, name: string, p: Progress): Promise<void> {
  const shape = ctx.shapeOf(name);
  const figures = await settleTable(ctx, shape, referenceChecks(shape.table, shape), false);
  if (figures.referencing + sum(figures.nulledColumns) + figures.landed + figures.resolved + figures.shared === 0) return;
  ctx.session.at(name, 'checking foreign keys');
  await runDeferredChecks(ctx.session, shape);
  p.settled.push({ table: name, figures });
}

/**
 * Tables whose watermark stays ahead of what this run guarantees (it never goes back). From a live
 * server that is harmless (a larger margin, or --since) and goes unsaid. A dump's guarantee is its
 * newest date per collection, which cannot tell a dump taken before the run that set the watermark
 * from a later one whose collection lost its newest documents (deleted since): load says so once,
 * naming the tables and both causes.
 */
function dumpBehindWarnings(plan: LoadPlan, toLoad: readonly string[], p: Progress): string[] {
  const behind: string[] = [];
  let setBy = '';
  for (const table of toLoad) {
    const read = extractWatermark(plan, table);
    const current = p.stored.get(table);
    if (!read || !current || current.watermark.getTime() <= Date.parse(read.next) || !read.next_basis?.startsWith('dump')) continue;
    behind.push(table);
    if (current.runId > setBy) setBy = current.runId;
  }
  if (behind.length === 0) return [];
  const propagated = p.steps.some((s) => s.live !== null);
  const gone = propagated ? p.steps.reduce((n, s) => n + s.left + s.gone + s.settle.referencing, 0) : 0;
  // Rows deleted for documents the dump lacks come back with the next live run (load/gone-documents.ts).
  const deletes = gone > 0 ? ` (of the ${gone.toLocaleString('en-US')} row(s) this load deleted, those of documents created since come back with the next live run)` : '';
  return [
    `this dump's newest dates are before the watermark of ${tableList(behind)}, which stays where run ${setBy} set it: ` +
      `the dump was taken before that run, or the newest documents of those tables' collections were deleted since. ` +
      `If it was taken before that run, its rows are older than PostgreSQL's: run etl run --full against the live server${deletes}`,
  ];
}

const sum = (counts: Readonly<Record<string, number>>): number => Object.values(counts).reduce((a, b) => a + b, 0);

function tableReport(s: TableStepResult, pending: PendingReport): TableLoadReport {
  return {
    table: s.table,
    strategy: s.strategy,
    merge: s.merge,
    staged: s.staged,
    rows: s.rows,
    inserted: s.inserted,
    updated: s.updated,
    unchanged: s.unchanged,
    deleted: s.left + s.gone + s.settle.referencing,
    rejected: s.rejected,
    nulled: s.nulled,
    orphaned: sum(s.settle.nulledColumns),
    duplicates: s.duplicates,
    truncated: s.truncated,
    rejectsFile: s.rejects?.file ?? null,
    pending,
  };
}

const pendingOf = (ctx: LoadContext, table: string, settle: SettleFigures): Promise<PendingReport> => pendingFigures(ctx.session, table, settle.landed, settle.resolved);

/** Delete propagation's figures, when some table of the run staged a live set. */
function deletionsReport(ctx: LoadContext, p: Progress): DeletePropagationReport | null {
  const propagated = p.steps.filter((s) => s.live !== null).map((s) => s.table);
  if (propagated.length === 0) return null;
  const rows: TableDeletions[] = [];
  for (const name of ctx.model.loadOrder) {
    const step = p.steps.find((s) => s.table === name);
    const settle = step?.settle ?? p.settled.find((s) => s.table === name)?.figures;
    const live = step?.live ?? null;
    const gone = step?.gone ?? 0;
    const referencing = settle?.referencing ?? 0;
    const nulledColumns = { ...(settle?.nulledColumns ?? {}) };
    const nulled = sum(nulledColumns);
    if (live === null && gone + referencing + nulled === 0) continue;
    rows.push({ table: name, live, gone, referencing, nulled, nulledColumns });
  }
  return { propagated, tables: rows, deleted: rows.reduce((n, r) => n + r.gone + r.referencing, 0) };
}
