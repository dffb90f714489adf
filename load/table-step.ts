// One table's part of a load, inside the load's transaction, as named steps:
//   scope       the keys file (documents whose rows this run replaces), the live set, or a complete read
//   batch       the CSV into a temp table (dedupe: contributions replaced, touched keys recomputed);
//               or, for a large batch into a table that never held a row, straight into the table
//   references  missing references refused or NULLed, kept in etl_pending
//   merge       upsert, links updated and inserted, or a plain INSERT into an empty table
//   leave       rows the scope's documents no longer yield, rows whose document is gone
//   settle      rows pointing at rows deleted earlier in this load; pending rows that can land now
import type { TableModel } from '../model/types.ts';
import type { FileRecord } from '../staging/manifest.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { LoadError, StagingError } from '../errors/etl-error.ts';
import { compiled } from '../schema/sql.ts';
import type { AtomicFileSink, FileFigures } from '../staging/atomic-file.ts';
import { dropBatchDuplicatesSql, dropTempSql, targetIsEmptySql } from './batch-sql.ts';
import { claimsKept, claimsOfBatch, refuseContestedKeys, type ClaimScope } from './claims.ts';
import { contributionsIntoBatch, firstContributions, locateFirstRejects, nothingStored, nulledWinnersSql, numberFirstRejects, winnersIntoEmptyTargetSql } from './contributions.ts';
import type { CopyFigures } from './copy-in.ts';
import { loadDirect } from './direct.ts';
import { withReferencesCheckedByLoad } from './checked-references.ts';
import { truncateCascade } from './truncate.ts';
import { emptyTableHint, removeLeavingRows, type Scope } from './leave.ts';
import { goneNoteOf } from './gone-documents.ts';
import { BULK_ROWS, insertIntoEmpty, mergeBatch, runDeferredChecks } from './merge.ts';
import type { LoadContext } from './load-context.ts';
import { holdRejected } from './pending.ts';
import { referenceChecks, resolveMissingReferences, type PlannedCheck } from './references.ts';
import { readKeysAhead } from './read-ahead.ts';
import { writeLoadRejects } from './rejects-file.ts';
import { settleTable, type SettleFigures } from './settle.ts';
import { tempNamesOf, type TableShape } from './shape.ts';
import { holdSharedValues, NOTHING_SHARED, NOTHING_VACATED, vacateTakenValues, type SharedFigures, type Vacated } from './unique-values.ts';
import { copyBatch, copyContributions, copyLive, copyRecompute, copyScope, stagedFile, type StagedFile } from './stage-files.ts';
import type { LoadPhase } from './options.ts';

/** What the merge of the staged batch did, row by row. */
interface MergeFigures {
  readonly staged: number;
  /** Rows identical to the row already there. */
  readonly unchanged: number;
  readonly inserted: number;
  readonly updated: number;
  readonly duplicates: number;
  readonly rejected: number;
  readonly nulled: number;
}

export interface TableStepResult extends MergeFigures {
  readonly table: string;
  /** Rows of the table the run staged (a dedupe table's `staged` counts its contributions). */
  readonly rows: number;
  readonly strategy: TableModel['strategy'];
  readonly merge: TableShape['kind'];
  /** Rows deleted: left the scope, gone (propagation), or referencing a deleted row. */
  readonly left: number;
  readonly gone: number;
  readonly settle: SettleFigures;
  readonly truncated: readonly string[];
  readonly live: number | null;
  /** The rejects file, written as .partial: commit or discard it once the transaction ended. */
  readonly rejects: { readonly file: string; readonly sink: AtomicFileSink; readonly figures: FileFigures } | null;
}

interface BatchFigures extends MergeFigures {
  /** The staged file the rejects file counts lines in, and whether a value spans lines in it. */
  readonly file: StagedFile;
  /** The table was empty: nothing of it can leave (the direct path has no batch table to compare with). */
  readonly wasEmpty: boolean;
  readonly multiline: boolean;
  /** Rows taken out of the way of the batch's unique values before the merge (unique-values.ts). */
  readonly vacated: Vacated;
  /** Rows held for a unique value two keys' rows would hold (unique-values.ts). */
  readonly shared: SharedFigures;
}

export async function loadTableStep(ctx: LoadContext, name: string): Promise<TableStepResult> {
  const { session } = ctx;
  const shape = ctx.shapeOf(name);
  const table = shape.table;
  const staged = ctx.staged(name);
  const checks = referenceChecks(table, shape);
  session.nameTemps(tempNamesOf(shape));
  readKeysAhead(ctx);
  const phase = (p: LoadPhase, step: string): void => {
    session.at(name, step);
    session.emit({ kind: 'table_phase', table: name, phase: p });
  };
  phase('copy', 'COPY');
  // A repair stages a few documents: emptying the table first would lose every other row.
  const truncated = table.forceReimport && table.truncateBeforeImport && !ctx.repair ? await truncateCascade(ctx, shape, () => phase('truncate', 'TRUNCATE … CASCADE')) : [];
  const scope = await stageScope(ctx, shape, staged);
  const batch = await loadBatch(ctx, shape, staged, scope, checks, phase);
  phase('merge', 'removing the rows that left the table');
  const leave = await removeLeavingRows(ctx, shape, scope, !batch.wasEmpty);
  const rejects = batch.rejected + batch.nulled > 0 ? await writeRejects(ctx, shape, checks, batch) : null;
  let settle: SettleFigures;
  try {
    const settled = await settleTable(ctx, shape, checks, batch.shared.held + batch.shared.left > 0);
    // Orphans in the way of the batch's unique values left before the merge (unique-values.ts).
    settle = { ...settled, referencing: settled.referencing + batch.vacated.referencing };
    session.at(name, 'checking foreign keys');
    await runDeferredChecks(session, shape);
    await dropTemps(ctx, shape);
  } catch (error) {
    // Not yet in the load's list of steps, whose rejects files it discards when the transaction fails.
    await rejects?.sink.discard().catch(() => undefined);
    throw error;
  }
  return {
    table: name,
    strategy: table.strategy,
    merge: shape.kind,
    rows: staged.rows,
    staged: batch.staged,
    unchanged: batch.unchanged,
    inserted: batch.inserted,
    updated: batch.updated,
    duplicates: batch.duplicates,
    rejected: batch.rejected,
    nulled: batch.nulled,
    left: leave.left + batch.vacated.left + batch.shared.left + settle.shared,
    gone: leave.gone + batch.vacated.gone,
    settle,
    truncated,
    live: scope.live ? scope.liveCount : null,
    rejects,
  };
}

type StepScope = Scope & ClaimScope & { readonly liveCount: number };

/** The keys file (unless the read was complete) and the live set, into temp tables. */
async function stageScope(ctx: LoadContext, shape: TableShape, staged: TransformTableRecord): Promise<StepScope> {
  const { session, paths } = ctx;
  const complete = staged.complete === true;
  // Upsert and explode tables always need their keys (two documents may claim one key: claims.ts);
  // a dedupe table needs them unless every contribution is replaced anyway.
  const keysNeeded = staged.keys !== null && (shape.kind === 'dedupe_upsert' ? !complete : shape.docKey !== null);
  // A complete read replaces every row and every pending entry whatever the keys say: only the
  // claims need them, and with none kept only the documents of another `_id` type matter.
  const kept = keysNeeded && complete && shape.docKey !== null ? await claimsKept(session, shape) : null;
  const keyRows = keysNeeded ? await copyScope(session, paths, shape, staged.keys!, kept === false) : 0;
  const claims = keysNeeded ? await claimsOfBatch(session, shape, keyRows, kept) : { kept: false, contestable: false };
  let liveCount = 0;
  const live = staged.live && (shape.docKey !== null || shape.kind === 'dedupe_upsert') ? staged.live : null;
  if (live) {
    session.at(shape.table.name, 'staging the live keys');
    liveCount = await copyLive(session, paths, shape, live);
    if (liveCount === 0 && !ctx.allowDeleteAll) await refuseEmptyLiveSet(ctx, shape, live);
  }
  // A repair run names dedupe keys to recompute whatever it stages (a key nobody contributes to leaves).
  const recompute = shape.kind === 'dedupe_upsert' && staged.recompute !== undefined;
  if (recompute) await copyRecompute(session, paths, shape, staged.recompute!);
  return { complete, claimants: staged.claimants ?? [], keys: keysNeeded, claims, touched: shape.kind === 'dedupe_upsert', live: live !== null, recompute, documents: staged.documents, liveCount };
}

async function refuseEmptyLiveSet(ctx: LoadContext, shape: TableShape, live: FileRecord): Promise<void> {
  const n = Number(((await ctx.session.run(compiled(`SELECT count(*)::bigint AS n FROM ${shape.target}`))).rows[0] as { n: string }).n);
  if (n === 0) return;
  throw new LoadError(
    'delete_all_refused',
    `${shape.table.name}: the run's live set is empty (collection ${shape.table.collection} had no matching document when extracted), so propagating deletes would delete all ${n} rows of ${shape.table.name}; refused`,
    {
      context: { table: shape.table.name, file: live.file },
      hint: emptyTableHint(shape.table),
    },
  );
}

/** The batch, cleaned, its references resolved, merged. */
async function loadBatch(
  ctx: LoadContext,
  shape: TableShape,
  staged: TransformTableRecord,
  scope: StepScope,
  checks: readonly PlannedCheck[],
  phase: (p: LoadPhase, step: string) => void,
): Promise<BatchFigures> {
  const { session, paths } = ctx;
  const csv = stagedFile(paths, staged.csv, shape.columns.map((c) => c.name), staged.rows);
  const empty = ((await session.run(targetIsEmptySql(shape))).rows[0] as { empty: boolean }).empty;
  // COPY straight into the table has no batch to find a value two rows share in (unique-values.ts).
  if (shape.kind !== 'dedupe_upsert' && empty && staged.rows >= ctx.bulkRows && !scope.claims.contestable && shape.otherUniques.length === 0) {
    const direct = await loadDirect(session, paths, shape, csv, checks, ctx.runId);
    if (direct) {
      const rows = direct.copied.rowCount;
      const inserted = rows - direct.rejected;
      return { staged: rows, unchanged: 0, inserted, updated: 0, duplicates: 0, rejected: direct.rejected, nulled: direct.nulled, file: csv, multiline: direct.copied.multiline, wasEmpty: true, vacated: NOTHING_VACATED, shared: NOTHING_SHARED };
    }
  }
  const filled = await fillBatch(ctx, shape, staged, scope, csv, { empty, checks });
  const contested = await refuseContestedKeys(session, shape, scope, ctx.runId);
  let duplicates = filled.duplicates;
  if (!empty && shape.kind !== 'dedupe_upsert') {
    phase('duplicates', 'resolving duplicate keys');
    duplicates = await session.count(dropBatchDuplicatesSql(shape));
  }
  phase('references', 'checking references');
  const refs = await resolveMissingReferences(session, shape, checks, async () => {
    await holdRejected(session, shape, 'batch', ctx.runId);
    if (filled.first) await locateFirstRejects(session, shape);
  });
  const shared = await holdSharedValues(ctx, shape, checks, { from: 'staged', scope }, async () => {
    if (filled.first) await locateFirstRejects(session, shape);
  });
  if (filled.first && refs.rejected + refs.nulled + shared.held > 0) await numberFirstRejects(session, shape);
  ctx.signal?.throwIfAborted();
  const vacated = empty ? NOTHING_VACATED : await vacateTakenValues(ctx, shape, scope, checks);
  phase('merge', 'merging');
  const m = await mergeFilled(ctx, shape, checks, { filled, duplicates, empty, refs: { rejected: refs.rejected + shared.held, nulled: refs.nulled } });
  // A dedupe batch is the recomputed rows of the touched keys, not the staged contributions.
  const considered = shape.kind === 'dedupe_upsert' ? m.batchRows : filled.staged - m.duplicates;
  const rejected = refs.rejected + contested + shared.held;
  const unchanged = considered - rejected - m.inserted - m.updated;
  const inserted = m.inserted - vacated.replaced;
  const updated = m.updated + vacated.replaced;
  return { staged: filled.staged, unchanged, inserted, updated, duplicates: m.duplicates, rejected, nulled: refs.nulled, file: filled.file, multiline: filled.copied.multiline, wasEmpty: empty, vacated, shared };
}

/**
 * The batch into the table: into an empty one by insert (a batch of suspects only: every winner but
 * the refused ones, whose size is known only now), else merged. Returns the batch's size and its
 * duplicates as the insert leaves them.
 */
async function mergeFilled(
  ctx: LoadContext,
  shape: TableShape,
  checks: readonly PlannedCheck[],
  b: { readonly filled: FilledBatch; readonly duplicates: number; readonly empty: boolean; readonly refs: { readonly rejected: number; readonly nulled: number } },
): Promise<{ inserted: number; updated: number; batchRows: number; duplicates: number }> {
  const { session } = ctx;
  const { filled, refs } = b;
  if (filled.suspectsOnly) {
    const r = await insertIntoEmpty(session, shape, filled.staged, checks, ctx.bulkRows, winnersIntoEmptyTargetSql(shape));
    if (refs.nulled > 0) await session.run(nulledWinnersSql(shape));
    const batchRows = r.inserted + refs.rejected;
    return { inserted: r.inserted, updated: 0, batchRows, duplicates: filled.staged - batchRows };
  }
  if (b.empty) {
    const r = await insertIntoEmpty(session, shape, filled.batchRows - refs.rejected, checks, ctx.bulkRows);
    return { inserted: r.inserted, updated: 0, batchRows: filled.batchRows, duplicates: b.duplicates + r.duplicates };
  }
  const merge = () => mergeBatch(session, shape);
  return { ...(await withReferencesCheckedByLoad(session, shape, checks, merge, merge, shape.others)), batchRows: filled.batchRows, duplicates: b.duplicates };
}

interface FilledBatch {
  readonly file: StagedFile;
  readonly copied: CopyFigures;
  /** Rows (dedupe: contributions) the run staged. */
  readonly staged: number;
  /** Rows in the batch. */
  readonly batchRows: number;
  /** dedupe: staged contributions that lost to a later one of the same run and key. */
  readonly duplicates: number;
  /** dedupe, nothing stored before: the batch's lines are not yet the file's records (contributions.ts). */
  readonly first: boolean;
  /** dedupe, first load into an empty table: the batch holds the suspect keys' winners only (contributions.ts). */
  readonly suspectsOnly: boolean;
}

/** The batch temp table: the CSV, or for a dedupe table the recomputed rows of the touched keys. */
async function fillBatch(
  ctx: LoadContext,
  shape: TableShape,
  staged: TransformTableRecord,
  scope: Scope,
  csv: StagedFile,
  target: { readonly empty: boolean; readonly checks: readonly PlannedCheck[] },
): Promise<FilledBatch> {
  const { session, paths } = ctx;
  if (shape.kind !== 'dedupe_upsert') {
    const copied = await copyBatch(session, paths, shape, csv);
    return { file: csv, copied, staged: copied.rowCount, batchRows: copied.rowCount, duplicates: 0, first: false, suspectsOnly: false };
  }
  if (!staged.contrib) {
    throw new StagingError('contributions_not_staged', `run ${paths.runId} staged no contributions file for ${shape.table.name}: it was transformed by an older etl`, {
      context: { table: shape.table.name },
      hint: `transform it again: etl transform --run ${paths.runId}`,
    });
  }
  const columns = [shape.documentColumn.name, ...shape.columns.map((c) => c.name)];
  const file = stagedFile(paths, staged.contrib, columns);
  // The suspect keys' rows are matched on their key once in the table (nulledWinnersSql).
  // A value two keys' rows share is found in the batch: it must hold every row (unique-values.ts).
  const intoEmpty = target.empty && shape.otherUniques.length === 0 && !target.checks.some((c) => c.selfReference || (c.action === 'set_null' && shape.key.some((k) => k.name === c.column.name)));
  const first = (await nothingStored(session, shape, scope.complete)) ? await firstContributions(session, paths, shape, file, { complete: scope.complete, intoEmpty, checks: target.checks }) : null;
  if (first) return { file, copied: first.copied, staged: first.copied.rowCount, batchRows: first.batchRows, duplicates: first.superseded, first: true, suspectsOnly: first.suspectsOnly };
  const copied = await copyContributions(session, paths, shape, staged.contrib);
  const outcome = await contributionsIntoBatch(session, shape, scope, goneNoteOf(ctx, shape.table.name));
  return { file, copied, staged: copied.rowCount, batchRows: outcome.batchRows, duplicates: outcome.superseded, first: false, suspectsOnly: false };
}

async function writeRejects(ctx: LoadContext, shape: TableShape, checks: readonly PlannedCheck[], batch: BatchFigures): Promise<TableStepResult['rejects']> {
  ctx.session.at(shape.table.name, 'writing the rejects file');
  const written = await writeLoadRejects(ctx.session.client, ctx.paths, shape, checks, batch.file.file, batch.multiline, ctx.signal);
  return { file: ctx.paths.relative(ctx.paths.loadRejects(shape.table.name)), ...written };
}

/** The step's temp tables go at its end (the gone rows stay: later tables follow them). */
async function dropTemps(ctx: LoadContext, shape: TableShape): Promise<void> {
  const { gone: _kept, ...temps } = shape.temps;
  await ctx.session.run(dropTempSql(...Object.values(temps)));
}

export { BULK_ROWS };
