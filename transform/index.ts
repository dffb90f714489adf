// The transform stage: a staged run's extract files → one CSV per table (+ keys and rejects files),
// then the manifest's transform section. Reads only the staged run and the pipeline model.
import { mkdir } from 'node:fs/promises';
import { StagingError } from '../errors/etl-error.ts';
import { selectTables } from '../model/select-tables.ts';
import type { PipelineModel } from '../model/types.ts';
import { readManifest, requireStageDone, updateManifest, type Manifest } from '../staging/manifest.ts';
import type { TransformSection, TransformTableRecord } from '../staging/manifest-transform.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { failureRecord } from '../staging/stage-contract.ts';
import type { CollectionJob } from './collection-job.ts';
import { stageLiveKeys } from './live-keys.ts';
import type { TransformOptions, TransformProgress, TransformReport, TransformTableReport } from './options.ts';
import { runJobs, threadsFor } from './parallel.ts';

export type { TransformOptions, TransformProgress, TransformReport, TransformTableReport } from './options.ts';

export async function runTransform(options: TransformOptions): Promise<TransformReport> {
  const { model } = options;
  const now = options.now ?? (() => new Date());
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();

  const paths = await resolveRun(options.stagingDir, options.runId ?? null);
  const manifest = await readManifest(paths);
  requireStageDone(manifest, 'extract', paths);
  const pipelineChanged = manifest.pipeline_sha256 !== model.sha256;
  if (pipelineChanged && !options.allowPipelineChange) throw pipelineChangedError(model, manifest, paths);

  const { jobs, notExtracted } = planJobs(model, manifest, paths, options.tables ?? null);
  const startedAt = now().toISOString();
  const section: TransformSection = {
    status: 'running',
    started_at: startedAt,
    ended_at: null,
    error: null,
    pipeline_sha256: model.sha256,
    pipeline_changed: pipelineChanged,
    tables_requested: options.tables ? [...options.tables] : null,
    not_extracted: notExtracted,
    tables: {},
  };
  await updateManifest(paths, (m) => {
    m.stages.transform = section;
  });
  await mkdir(paths.transformDir, { recursive: true });
  const planned = new Set(jobs.flatMap((j) => j.tables));
  options.onProgress?.({ kind: 'started', runId: paths.runId, runDir: paths.dir, tables: model.loadOrder.filter((t) => planned.has(t)), notExtracted });

  const threads = threadsFor(jobs, options.threads);
  const { records, documentsRead } = await transformJobs(jobs, { model, paths, manifest, signal, onProgress: options.onProgress, section, now, threads });
  // Tables in load order, in the manifest and in the report.
  const ordered = model.loadOrder.filter((t) => records.has(t));
  const tables: Record<string, TransformTableRecord> = {};
  for (const t of ordered) tables[t] = records.get(t)!;
  const endedAt = now().toISOString();
  await updateManifest(paths, (m) => {
    m.stages.transform = { ...section, status: 'done', ended_at: endedAt, tables };
  });

  return {
    stage: 'transform',
    runId: paths.runId,
    runDir: paths.dir,
    startedAt,
    endedAt,
    warnings: pipelineChanged ? [pipelineChangedWarning(model, manifest, paths)] : [],
    pipelineSha256: model.sha256,
    extractPipelineSha256: manifest.pipeline_sha256,
    pipelineChanged,
    tables: ordered.map((t): TransformTableReport => ({ table: t, ...tables[t]! })),
    notExtracted,
    documentsRead,
    threads,
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
  readonly onProgress: ((e: TransformProgress) => void) | undefined;
  /** The manifest section as it stands while running: a failure is recorded over it. */
  readonly section: TransformSection;
  readonly now: () => Date;
  /** Threads sharing the collections (1: this one alone). */
  readonly threads: number;
}

/** Every collection, then the live keys; on failure the manifest records the error and the tables done. */
async function transformJobs(jobs: readonly CollectionJob[], c: StageContext): Promise<{ records: Map<string, TransformTableRecord>; documentsRead: number }> {
  const { model, paths, signal } = c;
  const records = new Map<string, TransformTableRecord>();
  let documentsRead = 0;
  try {
    const setup = { stagingDir: paths.stagingDir, runId: paths.runId };
    await runJobs(jobs, c.threads, { model, paths, signal, onProgress: c.onProgress }, setup, (outcome) => {
      documentsRead += outcome.documents;
      for (const [name, record] of outcome.records) records.set(name, record);
    });
    // Delete propagation (propagate_deletes): the keys every table may still hold, from the
    // extract's ids files; load deletes the rows whose key is not among them.
    const live = await stageLiveKeys({ model, paths, manifest: c.manifest, tables: new Set(records.keys()), signal });
    for (const [table, record] of live) records.get(table)!.live = record;
    return { records, documentsRead };
  } catch (error) {
    await updateManifest(paths, (m) => {
      m.stages.transform = {
        ...c.section,
        status: 'failed',
        ended_at: c.now().toISOString(),
        error: failureRecord(error),
        tables: Object.fromEntries(records),
      };
    }).catch(() => undefined);
    throw error;
  }
}

/** Which collections to read, for which tables; unknown or unextracted tables named with --tables are errors. */
function planJobs(model: PipelineModel, manifest: Manifest, paths: RunPaths, requested: readonly string[] | null): { jobs: CollectionJob[]; notExtracted: string[] } {
  const wanted = new Set(selectTables(model, requested));
  const extracted = manifest.stages.extract?.collections ?? {};
  const jobs: CollectionJob[] = [];
  const notExtracted: string[] = [];
  const missingAsked: string[] = [];
  for (const collection of model.collections) {
    const tables = collection.tables.filter((t) => wanted.has(t)).map((t) => model.tables.get(t)!);
    if (tables.length === 0) continue;
    const record = extracted[collection.name];
    if (!record) {
      for (const t of tables) (requested ? missingAsked : notExtracted).push(t.name);
      continue;
    }
    const complete = record.watermark?.from === null;
    // A repair run: per dedupe table of the job, the keys load recomputes.
    const recompute = Object.fromEntries(Object.entries(manifest.stages.extract?.repair?.recompute ?? {}).filter(([t]) => tables.some((x) => x.name === t)));
    const job = { records: record.records, bytes: record.bytes, sha256: record.sha256, complete, requested: record.requested ?? null, recompute };
    jobs.push({ collection: collection.name, tables: tables.map((t) => t.name), ...job });
  }
  if (missingAsked.length > 0) {
    throw new StagingError('not_extracted', `run ${paths.runId} holds no extract for ${missingAsked.map((t) => `${t} (${model.tables.get(t)!.collection})`).join(', ')}`, {
      context: { file: paths.manifest },
      hint: 'extract those collections first (`etl extract`), or leave the tables out of --tables',
    });
  }
  return { jobs, notExtracted: notExtracted.sort() };
}
