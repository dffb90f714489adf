// The load stage: merges a staged run into PostgreSQL in one transaction, so that every table ends
// equal to what a full run of the current documents would give.
//
//   plan (the staged run alone, or, in `etl run`, the tables the running transform will stage)
//   → session (lock, BEGIN, foreign keys deferred, tables ensured)
//   → already applied? (a run loaded twice changes nothing) → per table in load order: its step
//   (table-step.ts; in `etl run`, once the transform says the table's files are final), or, for a
//   table the run did not stage, settling what the tables before it changed (settle.ts)
//   → watermarks, ledger → COMMIT (ROLLBACK for --dry-run) → manifest (in `etl run`, every manifest
//   write waits for the transform's section, so the manifest is written in the order three
//   commands write it).
//
// Any error rolls the whole transaction back: PostgreSQL ends exactly as it was, watermarks and
// state tables included, and the error names the table, the step, the staged file and line.
import { rmdir } from 'node:fs/promises';
import { describePostgres } from '../connect/config.ts';
import type { EtlError } from '../errors/etl-error.ts';
import { rejectedBeforeLoad, type FileRecord } from '../staging/manifest.ts';
import { failureRecord } from '../staging/stage-contract.ts';
import { appliedTables, recordTables, type LedgerEntry } from './ledger.ts';
import { loadContext, type LoadContext } from './load-context.ts';
import { markDone, markFailed, markRunning, recordAlreadyApplied, tableRecord } from './load-record.ts';
import type { LoadOptions, LoadReport } from './options.ts';
import { refuseChangedSince, type LoadPlan } from './plan.ts';
import { startLoad, type LoadStart } from './start.ts';
import { LoadSession } from './session.ts';
import { tablesWithPending } from './pending.ts';
import { tablesWithGone } from './gone-documents.ts';
import { settleAbandonedLoads } from './abandoned-loads.ts';
import { sweepAbandoned } from '../staging/run-writer.ts';
import { whileStarting } from '../staging/start-lock.ts';
import { BULK_ROWS } from './merge.ts';
import { withStaleTransformHint } from './errors.ts';
import { loadTables, type TablesOutcome } from './tables.ts';
import { refuseOlderRun } from './older-run.ts';

export type { LoadOptions, LoadProgress, LoadReport, TableLoadReport } from './options.ts';

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const start = await startLoad(options);
  const startedAt = new Date().toISOString();
  // Fed by a running transform (`etl run`): a failed extract or transform stops the load at once.
  const signal = start.fed ? AbortSignal.any([options.signal, options.stagedTables!.failed].filter((s) => s !== undefined)) : options.signal;
  const session = await LoadSession.open({ ...options, signal });
  const base = { stage: 'load' as const, runId: start.paths.runId, runDir: start.paths.dir, dryRun: start.dryRun, destination: describePostgres(options.postgres), startedAt };
  const marked = new RunningMark(start, base, options.stagedTables?.finished);
  const outcome: { value: TablesOutcome | null } = { value: null };
  try {
    await session.begin(start.model);
    await settleAbandonedLoads(session.client, await sweepAbandoned(start.paths.stagingDir, options.abandoned), base.destination, start.paths.runId);
    const applied = await appliedTables(session.client, start.paths.runId);
    // A dry run of a run a load committed tables of: the manifest keeps the record of what PostgreSQL holds.
    const recorded = !start.dryRun || applied.size === 0;
    const toLoad = start.tables.filter((t) => !applied.has(t));
    const skipped = start.tables.filter((t) => applied.has(t)).map((t) => ({ table: t, loadedAt: applied.get(t)!.loadedAt }));
    session.emit({ kind: 'started', runId: start.paths.runId, runDir: start.paths.dir, tables: toLoad, alreadyApplied: skipped.map((s) => s.table) });
    if (start.tables.length > 0 && toLoad.length === 0) {
      const plan = await start.final();
      await session.end(false);
      const report = emptyReport(plan, base, skipped);
      if (recorded) await recordAlreadyApplied(plan.paths, report, applied);
      return report;
    }
    // Before anything is recorded: a refused run keeps the manifest it had. Outside `etl run`, the
    // checks of the run and its `running` section are one step, holding the run's start lock: no
    // transform, nor a load into another database, starts on the run between the two.
    const begin = async () => {
      if (!start.fed) await refuseChangedSince(await start.final(), base.destination);
      await refuseOlderRun(session.client, start.paths.runId, toLoad);
      await marked.begin(recorded);
    };
    if (start.fed) await begin();
    else await whileStarting(start.paths, 'load', begin);
    const pendingBefore = await tablesWithPending(session);
    const goneBefore = await tablesWithGone(session);
    const ctx = loadContext(session, start, { allowDeleteAll: options.allowDeleteAll === true, bulkRows: options.bulkRows ?? BULK_ROWS, pendingBefore, goneBefore });
    outcome.value = await loadTables(ctx, start, toLoad);
    const plan = await start.final();
    await marked.running();
    const report = doneReport(plan, base, skipped, outcome.value);
    await recordLedger(ctx, plan, report, outcome.value);
    session.emit({ kind: 'committing', dryRun: plan.dryRun });
    await session.end(!plan.dryRun);
    if (!recorded) return await unrecordedDryRun(report, outcome.value, applied);
    const rejects = await commitRejectsFiles(outcome.value);
    await markDone(plan.paths, report, rejects, plan.manifest.stages.load);
    return report;
  } catch (error) {
    const failure = await staleTransformHint(start, session.failure(error));
    for (const r of outcome.value?.rejects ?? []) await r.sink.discard().catch(() => undefined);
    await session.close();
    await marked.failed(failure);
    throw failure;
  } finally {
    await session.close();
  }
}

/** The failure, its hint naming the cause when the run was transformed with another pipeline.yaml (`etl load` only: `etl run` transforms with the current one). */
async function staleTransformHint(start: LoadStart, failure: EtlError): Promise<EtlError> {
  if (start.fed) return failure;
  const plan = await start.final().catch(() => null);
  if (!plan) return failure;
  const transformedWith = plan.manifest.stages.transform?.pipeline_sha256 ?? plan.manifest.pipeline_sha256;
  return withStaleTransformHint(failure, { runId: start.paths.runId, transformedWith, current: start.model.sha256 });
}

/**
 * The manifest's `running` record: written before the transaction changes anything, or, fed by a
 * running transform, once the transform has written its section (the manifest is written in the
 * order three commands write it). A failure after that point is recorded, as `etl load` records
 * it, once the transform is done; if the extract or the transform failed, the load records nothing
 * and removes the folder it made.
 */
class RunningMark {
  #began = false;
  #recorded = true;
  #written: Promise<void> | null = null;

  constructor(
    private readonly start: LoadStart,
    private readonly base: Pick<LoadReport, 'dryRun' | 'startedAt' | 'destination'>,
    /** Fed by a running transform: settles once its section is written. */
    private readonly transformDone: Promise<void> | undefined,
  ) {}

  /** Past the checks that record nothing: from here a failure is recorded (unless `recorded` is false: nothing is). */
  async begin(recorded: boolean): Promise<void> {
    this.#began = true;
    this.#recorded = recorded;
    if (!this.start.fed) await this.running();
    // Fed: written as soon as the transform's section is, not once every table is loaded, so that a
    // process killed while it loads the last tables is known by its writer (staging/stage-writer.ts).
    else void this.transformDone?.then(() => this.running()).catch(() => undefined);
  }

  running(): Promise<void> {
    if (!this.#recorded) return Promise.resolve();
    this.#written ??= markRunning(this.start.paths, this.base.destination, this.base);
    return this.#written;
  }

  async failed(failure: EtlError): Promise<void> {
    const plan = await this.start.final().catch(() => null);
    if (!plan) {
      // The rejects files are gone (discarded); the folder they were in was made by this load.
      await rmdir(this.start.paths.loadDir).catch(() => undefined);
      return;
    }
    if (!this.#began || !this.#recorded) return;
    try {
      await this.running();
      await markFailed(plan.paths, this.base, failureRecord(failure), plan.manifest.stages.load);
    } catch {
      // The load's own error is the one to report.
    }
  }
}

type ReportBase = Pick<LoadReport, 'stage' | 'runId' | 'runDir' | 'dryRun' | 'destination' | 'startedAt'>;

function emptyReport(plan: LoadPlan, base: ReportBase, skipped: LoadReport['skipped']): LoadReport {
  return { ...base, alreadyApplied: true, skipped, endedAt: new Date().toISOString(), tables: [], settled: [], pending: null, truncated: [], deletions: null, warnings: plan.warnings };
}

function doneReport(plan: LoadPlan, base: ReportBase, skipped: LoadReport['skipped'], o: TablesOutcome): LoadReport {
  return {
    ...base,
    alreadyApplied: false,
    skipped,
    endedAt: new Date().toISOString(),
    tables: o.tables,
    settled: o.settled,
    pending: o.pending,
    truncated: o.truncated,
    deletions: o.deletions,
    warnings: [...plan.warnings, ...o.warnings],
  };
}

/** The ledger: what each table's load did, in the load's transaction (so a re-load is recognised). */
async function recordLedger(ctx: LoadContext, plan: LoadPlan, report: LoadReport, outcome: TablesOutcome): Promise<void> {
  const entries: LedgerEntry[] = [];
  // A repair re-read a few documents: it says nothing of which mapping the table's other rows follow.
  const repair = ctx.repair ? { repair: true } : {};
  // The run's own figures, in every table's summary (etl_runs has a row per table): what etl_pending
  // holds after the load, every table, the tables the run staged, and what its extract and transform
  // refused. `etl runs` reads them once its files are cleaned (report/ledger.ts): its pending,
  // "partly" of a run loaded into fewer, and its rejects (those, plus each table's load figure).
  const run = {
    ...(report.pending ? { run_pending: { ...report.pending } } : {}),
    run_tables: Object.keys(plan.manifest.stages.transform?.tables ?? {}).length,
    run_rejected_before_load: rejectedBeforeLoad(plan.manifest),
  };
  for (const r of report.tables) {
    const rejects = outcome.rejects.find((x) => x.table === r.table);
    const file: FileRecord | null = rejects ? { file: rejects.file, bytes: rejects.figures.bytes, sha256: rejects.figures.sha256, records: rejects.figures.lines } : null;
    const deletions = report.deletions ? { deletions: report.deletions.tables.find((d) => d.table === r.table) ?? null } : {};
    entries.push({ table: r.table, summary: { ...tableRecord(r, file), ...deletions, ...repair, ...run } });
  }
  ctx.session.at('(ledger)', 'recording the load');
  await recordTables(ctx.session.client, plan.paths.runId, plan.model.sha256, entries);
}

/**
 * A dry run of a run whose other tables a load committed: its figures are reported, not recorded
 * (the manifest describes what PostgreSQL holds, and lists every file of the run), so its rejects
 * files go too.
 */
async function unrecordedDryRun(report: LoadReport, outcome: TablesOutcome, applied: ReadonlyMap<string, unknown>): Promise<LoadReport> {
  for (const r of outcome.rejects) await r.sink.discard();
  const files = outcome.rejects.length > 0 ? '; its rejects files are not kept' : '';
  const note = `dry run: its figures are not recorded in the manifest, which keeps the record of the load that committed ${[...applied.keys()].join(', ')} from this run${files}`;
  return { ...report, tables: report.tables.map((t) => ({ ...t, rejectsFile: null })), warnings: [...report.warnings, note] };
}

/** The transaction ended as planned: the rejects files now describe what happened. */
async function commitRejectsFiles(outcome: TablesOutcome): Promise<Map<string, FileRecord>> {
  const out = new Map<string, FileRecord>();
  for (const r of outcome.rejects) {
    const figures = await r.sink.commit();
    out.set(r.table, { file: r.file, bytes: figures.bytes, sha256: figures.sha256, records: figures.lines });
  }
  return out;
}
