// The transform stage: a staged run's extract files → one CSV per table (+ keys and rejects files),
// then the manifest's transform section. Reads only the staged run and the pipeline model.
import { rm } from 'node:fs/promises';
import { StagingError } from '../errors/etl-error.ts';
import type { PipelineModel } from '../model/types.ts';
import { readManifest, refuseBusyRun, requireStageDone, updateManifest, type Manifest } from '../staging/manifest.ts';
import { committedLoad } from '../staging/manifest-load.ts';
import type { TransformSection, TransformTableRecord } from '../staging/manifest-transform.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { failureRecord } from '../staging/stage-contract.ts';
import { sweepAbandoned } from '../staging/run-writer.ts';
import { whileStarting } from '../staging/start-lock.ts';
import { currentWriter, withoutWriter } from '../staging/stage-writer.ts';
import type { CollectionJob, JobOutcome } from './collection-job.ts';
import { transformAsExtracted } from './as-extracted.ts';
import { earlierTransform, inLoadOrder, NO_EARLIER_TRANSFORM, removeStale, type EarlierTransform } from './earlier-transform.ts';
import { stageLiveKeys } from './live-keys.ts';
import type { TransformOptions, TransformProgress, TransformReport, TransformTableReport } from './options.ts';
import { runJobs, threadsFor } from './parallel.ts';
import { planJobs } from './plan.ts';
import { TableRelease } from './release.ts';
import { makeFolders } from '../staging/make-folders.ts';

export { CollectionFeed, type ExtractFeed, type ExtractedCollection } from './feed.ts';
export type { TransformOptions, TransformProgress, TransformReport, TransformTableReport } from './options.ts';

export async function runTransform(options: TransformOptions): Promise<TransformReport> {
  const { model } = options;
  const now = options.now ?? (() => new Date());
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();
  const paths = await openRun(options);
  const startedAt = now().toISOString();
  // Fed by a running extract (`etl run`), no other process may start a stage of the run: its extract is not done.
  const started = () => startTransform(options, paths, startedAt, signal);
  const { pipelineChanged, outcomes, run, manifest, earlier, section, staleDryRun } = options.extractFeed ? await started() : await whileStarting(paths, 'transform', started);
  if (staleDryRun) await rm(paths.loadDir, { recursive: true, force: true });
  if (!options.extractFeed) await removeStale(paths, earlier);
  if (!options.extractFeed) await announcePlannedTables(options, paths, run, outcomes.release);

  await transformJobs(run.work, outcomes, { model, paths, manifest, signal, section, now, kept: earlier.kept });
  const { documentsRead } = outcomes;
  const { ordered, tables, endedAt } = await recordDone(model, paths, section, outcomes.records, earlier.kept, now);

  return {
    stage: 'transform',
    runId: paths.runId,
    runDir: paths.dir,
    startedAt,
    endedAt,
    warnings: [...(pipelineChanged ? [pipelineChangedWarning(model, manifest, paths)] : []), ...(staleDryRun ? [DRY_RUN_DROPPED] : [])],
    pipelineSha256: model.sha256,
    extractPipelineSha256: manifest.pipeline_sha256,
    pipelineChanged,
    tables: ordered.map((t): TransformTableReport => ({ table: t, ...tables[t]! })),
    notExtracted: run.notExtracted,
    kept: [...earlier.kept.keys()],
    dropped: earlier.dropped,
    droppedBecause: earlier.droppedBecause,
    documentsRead,
    threads: run.threads(),
  };
}

/** The run to transform, after sweeping killed runs. */
async function openRun(options: TransformOptions): Promise<RunPaths> {
  // The unfinished files of runs whose process was killed (a re-run of this stage among them).
  await sweepAbandoned(options.stagingDir, options.abandoned);
  return resolveRun(options.stagingDir, options.runId ?? null);
}

/**
 * The checks and the `running` section, as one step: outside `etl run`, made holding the run's start
 * lock (staging/start-lock.ts), so that no other process starts a stage of the run between the two.
 */
async function startTransform(options: TransformOptions, paths: RunPaths, startedAt: string, signal: AbortSignal): Promise<Started> {
  const { model } = options;
  const { manifest: extracted, pipelineChanged } = await checkExtractedRun(options, paths);
  const withdraw = stampWhenExtracted(options, paths, (notExtracted) => runningSection(model, options, startedAt, pipelineChanged, notExtracted, NO_EARLIER_TRANSFORM));
  const outcomes = new Outcomes(new TableRelease(options.stagedTables, extracted));
  const { run, manifest } = await collectionsToTransform(options, paths, extracted, signal, outcomes).finally(withdraw);
  // A run transformed before (`--tables` redoing a subset, a pipeline.yaml that dropped a table):
  // the section below vouches for the kept tables' files, so the others can go.
  const earlier = options.extractFeed ? NO_EARLIER_TRANSFORM : earlierTransform(model, extracted, new Set(run.jobs.flatMap((j) => j.tables)), options.tables != null);
  const section = runningSection(model, options, startedAt, pipelineChanged, run.notExtracted, earlier);
  const staleDryRun = !options.extractFeed && dryRunOfOtherFiles(model, extracted);
  await updateManifest(paths, (m) => {
    m.stages.transform = section;
    if (staleDryRun) delete m.stages.load;
  });
  return { pipelineChanged, outcomes, run, manifest, earlier, section, staleDryRun };
}

/** What the transform starts from, up to its `running` section (written holding the run's start lock). */
interface Started {
  readonly pipelineChanged: boolean;
  readonly outcomes: Outcomes;
  readonly run: TransformRun;
  readonly manifest: Manifest;
  readonly earlier: EarlierTransform;
  readonly section: TransformSection;
  readonly staleDryRun: boolean;
}

/** The run's manifest; refuses a run not extracted, at work in another process, or whose pipeline.yaml changed unless allowed. */
async function checkExtractedRun(options: TransformOptions, paths: RunPaths): Promise<{ manifest: Manifest; pipelineChanged: boolean }> {
  const { model } = options;
  const manifest = await readManifest(paths);
  // Fed by a running extract (`etl run`): its section says done once the feed ends, checked then.
  if (!options.extractFeed) requireStageDone(manifest, 'extract', paths);
  refuseBusyRun(manifest, paths, 'transform', ['transform', 'load']);
  const pipelineChanged = manifest.pipeline_sha256 !== model.sha256;
  if (pipelineChanged && !options.allowPipelineChange) throw pipelineChangedError(model, manifest, paths);
  refuseOtherMappingOfLoaded(model, manifest, paths);
  return { manifest, pipelineChanged };
}

/**
 * The dry run of a load (it committed nothing) recorded its figures of the files the run's earlier
 * transform wrote. Transformed with another pipeline.yaml, those files change: the record (and its
 * rejects files) would describe files the run no longer holds, so it goes; the same pipeline.yaml
 * writes the same bytes and keeps it.
 */
function dryRunOfOtherFiles(model: PipelineModel, manifest: Manifest): boolean {
  const load = manifest.stages.load;
  return load?.status === 'done' && load.dry_run === true && transformedWithOther(model, manifest) !== null;
}

/** The sha256 of the other pipeline.yaml the run's files were transformed with; null: none yet, or this one (same bytes). */
function transformedWithOther(model: PipelineModel, manifest: Manifest): string | null {
  const transformedWith = manifest.stages.transform?.pipeline_sha256;
  return transformedWith === undefined || transformedWith === model.sha256 ? null : transformedWith;
}

const DRY_RUN_DROPPED = "the record of the run's dry-run load went with the files it was made of (another pipeline.yaml transformed them): run etl load --dry-run again to see this transform's figures";

/**
 * A run a load committed tables of holds the files PostgreSQL's rows came from: its load record, its
 * report, `etl verify` and `etl pack` describe them. Transformed again with another pipeline.yaml than
 * its transform used, its files would change under that record (the report then said the counts do
 * not reconcile). The same pipeline.yaml writes the same bytes, so that re-run stays allowed.
 */
function refuseOtherMappingOfLoaded(model: PipelineModel, manifest: Manifest, paths: RunPaths): void {
  const load = committedLoad(manifest.stages.load);
  const transformedWith = transformedWithOther(model, manifest);
  if (!load || transformedWith === null) return;
  const tables = [...new Set([...Object.keys(load.tables ?? {}), ...(load.skipped ?? []).map((s) => s.table)])].sort();
  if (tables.length === 0) return;
  throw new StagingError(
    'pipeline_changed',
    `run ${paths.runId} was loaded (${tables.join(', ')}) from files transformed with another pipeline.yaml (sha256 ${transformedWith}): transforming it with ${model.file} (sha256 ${model.sha256}) would replace the files its load record and PostgreSQL's rows come from`,
    { context: { file: paths.manifest }, hint: 'run etl run (or etl extract, etl transform, etl load) to stage a new run with the current pipeline.yaml: a table whose mapping changed is read in full' },
  );
}

/** The collections' jobs and how to run them. */
interface TransformRun {
  readonly jobs: CollectionJob[];
  readonly notExtracted: string[];
  readonly threads: () => number;
  readonly work: () => Promise<void>;
}

/** Jobs fed by a running extract (its manifest then is the one to go on with), or planned from a finished one. */
async function collectionsToTransform(
  options: TransformOptions,
  paths: RunPaths,
  manifest: Manifest,
  signal: AbortSignal,
  outcomes: Outcomes,
): Promise<{ run: TransformRun; manifest: Manifest }> {
  const { model } = options;
  const jobContext = { model, paths, signal, onProgress: options.onProgress };
  const setup = { stagingDir: paths.stagingDir, runId: paths.runId };
  if (options.extractFeed) {
    const fed = await transformAsExtracted(options.extractFeed, { ...jobContext, tables: options.tables ?? null, threads: options.threads, setup, done: outcomes.done, release: outcomes.release });
    const run = { jobs: fed.jobs, notExtracted: fed.notExtracted, threads: () => fed.runner.threads, work: () => fed.runner.finish() };
    return { run, manifest: fed.manifest };
  }
  const plan = planJobs(model, manifest, paths, options.tables ?? null);
  const threads = threadsFor(plan.jobs, options.threads);
  return { run: { ...plan, threads: () => threads, work: () => runJobs(plan.jobs, threads, jobContext, setup, outcomes.done) }, manifest };
}

/** A planned run: the transform folder, the tables to release, and the `started` progress event. */
async function announcePlannedTables(options: TransformOptions, paths: RunPaths, run: TransformRun, release: TableRelease): Promise<void> {
  await makeFolders(paths.transformDir);
  const planned = new Set(run.jobs.flatMap((j) => j.tables));
  const tables = options.model.loadOrder.filter((t) => planned.has(t));
  release.plan(tables);
  options.onProgress?.({ kind: 'started', runId: paths.runId, runDir: paths.dir, tables, notExtracted: run.notExtracted });
}

/** The manifest's transform section marked done with each table's record. */
async function recordDone(
  model: PipelineModel,
  paths: RunPaths,
  section: TransformSection,
  records: ReadonlyMap<string, TransformTableRecord>,
  kept: ReadonlyMap<string, TransformTableRecord>,
  now: () => Date,
): Promise<{ ordered: string[]; tables: Record<string, TransformTableRecord>; endedAt: string }> {
  // Tables in load order, in the manifest and in the report (which names this transform's only).
  const ordered = model.loadOrder.filter((t) => records.has(t));
  const tables: Record<string, TransformTableRecord> = {};
  for (const t of ordered) tables[t] = records.get(t)!;
  const endedAt = now().toISOString();
  await updateManifest(paths, (m) => {
    m.stages.transform = { ...withoutWriter(section), status: 'done', ended_at: endedAt, tables: sectionTables(model, kept, records) };
  });
  return { ordered, tables, endedAt };
}

/** The section's tables: those kept from the earlier transform and this one's, in load order. */
function sectionTables(model: PipelineModel, kept: ReadonlyMap<string, TransformTableRecord>, records: ReadonlyMap<string, TransformTableRecord>): Record<string, TransformTableRecord> {
  const tables: Record<string, TransformTableRecord> = {};
  for (const t of inLoadOrder(model, [...kept.keys(), ...records.keys()])) tables[t] = records.get(t) ?? kept.get(t)!;
  return tables;
}

/**
 * `etl run`: this stage writes files before the extract is done, so its running section goes into the
 * extract's own done write (a kill between two writes would leave them owned by no running stage).
 * Returns the withdrawal, for once the extract is done or this stage stopped before it.
 */
function stampWhenExtracted(options: TransformOptions, paths: RunPaths, section: (notExtracted: string[]) => TransformSection): () => void {
  let active = true;
  options.extractFeed?.stampWhenDone?.((m) => {
    const notExtracted = active ? notExtractedIn(options.model, m, paths, options.tables ?? null) : null;
    if (notExtracted) m.stages.transform = section(notExtracted);
  });
  return () => {
    active = false;
  };
}

/** The tables the finished extract does not hold (planJobs), or null when it would refuse the run: the transform then says why. */
function notExtractedIn(model: PipelineModel, manifest: Manifest, paths: RunPaths, tables: readonly string[] | null): string[] | null {
  try {
    return planJobs(model, manifest, paths, tables).notExtracted;
  } catch {
    return null;
  }
}

function runningSection(model: PipelineModel, options: TransformOptions, startedAt: string, pipelineChanged: boolean, notExtracted: string[], earlier: EarlierTransform): TransformSection {
  const kept = [...earlier.kept.keys()];
  return {
    status: 'running',
    started_at: startedAt,
    ended_at: null,
    error: null,
    writer: currentWriter(),
    pipeline_sha256: model.sha256,
    pipeline_changed: pipelineChanged,
    tables_requested: options.tables ? [...options.tables] : null,
    not_extracted: [...new Set([...notExtracted, ...earlier.notExtracted])].sort(),
    ...(kept.length > 0 ? { tables_kept: kept } : {}),
    tables: Object.fromEntries(earlier.kept),
  };
}

function pipelineChangedWarning(model: PipelineModel, manifest: Manifest, paths: RunPaths): string {
  return `pipeline.yaml changed since run ${paths.runId} was extracted (extract: ${manifest.pipeline_sha256}, now: ${model.sha256}); transformed with the current one as asked`;
}

function pipelineChangedError(model: PipelineModel, manifest: Manifest, paths: RunPaths): StagingError {
  return new StagingError(
    'pipeline_changed',
    `pipeline.yaml changed since run ${paths.runId} was extracted: the run was extracted with sha256 ${manifest.pipeline_sha256}, ${model.file} is now ${model.sha256}`,
    {
      context: { file: model.file },
      hint: `extract again with the current pipeline.yaml, or pass --allow-pipeline-change to transform this run with it (its copy is ${paths.pipelineCopy})`,
    },
  );
}

interface StageContext {
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  readonly manifest: Manifest;
  readonly signal: AbortSignal;
  /** The manifest section as it stands while running: a failure is recorded over it. */
  readonly section: TransformSection;
  readonly now: () => Date;
  /** Tables kept from the earlier transform: still the run's, whatever becomes of this one. */
  readonly kept: ReadonlyMap<string, TransformTableRecord>;
}

/** Each table's record as its collection completes (whichever thread ran it). */
class Outcomes {
  readonly records = new Map<string, TransformTableRecord>();
  documentsRead = 0;

  constructor(readonly release: TableRelease) {}

  readonly done = (outcome: JobOutcome): void => {
    this.documentsRead += outcome.documents;
    for (const [name, record] of outcome.records) this.records.set(name, record);
    this.release.committed(outcome.records);
  };
}

/** Every collection (`work`), then the live keys; on failure the manifest records the error and the tables done. */
async function transformJobs(work: () => Promise<void>, outcomes: Outcomes, c: StageContext): Promise<void> {
  const { model, paths, signal } = c;
  const { records } = outcomes;
  try {
    await work();
    // Delete propagation (propagate_deletes): the keys every table may still hold, from the
    // extract's ids files; load deletes the rows whose key is not among them.
    const live = await stageLiveKeys({ model, paths, manifest: c.manifest, tables: new Set(records.keys()), signal });
    for (const [table, record] of live) records.get(table)!.live = record;
    outcomes.release.finished(records);
  } catch (error) {
    await updateManifest(paths, (m) => {
      m.stages.transform = {
        ...withoutWriter(c.section),
        status: 'failed',
        ended_at: c.now().toISOString(),
        error: failureRecord(error),
        tables: sectionTables(model, c.kept, records),
      };
    }).catch(() => undefined);
    throw error;
  }
}
