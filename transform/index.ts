// The transform stage: a staged run's extract files → one CSV per table (+ keys and rejects files),
// then the manifest's transform section. Reads only the staged run and the pipeline model.
import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { StagingError, UsageError } from '../model/errors.ts';
import type { PipelineModel, TableModel } from '../model/types.ts';
import { readManifest, requireStageDone, updateManifest, type Manifest } from '../staging/manifest.ts';
import { transformIdentityErrors, type TransformSection, type TransformTableRecord } from '../staging/manifest-transform.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { tableMapping } from '../mapping/index.ts';
import { runCollectionPass, type PassResult } from './collection-pass.ts';
import { DedupeWork } from './dedupe.ts';
import { stageLiveKeys } from './live-keys.ts';
import { ExplodeWork } from './explode.ts';
import type { TransformOptions, TransformProgress, TransformReport, TransformTableReport } from './options.ts';
import type { OutputOptions, TableWork } from './table-work.ts';
import { UpsertWork } from './upsert.ts';
import { nameAbsentDocuments, passRecomputeKeys } from './repair-inputs.ts';
import type { FileRecord } from '../staging/manifest.ts';
import type { ExtractRecomputeRecord } from '../staging/manifest-extract.ts';

export type { TransformOptions, TransformProgress, TransformReport, TransformTableReport } from './options.ts';

interface CollectionJob {
  readonly collection: string;
  readonly tables: readonly TableModel[];
  readonly records: number;
  readonly bytes: number;
  readonly sha256: string;
  /** The collection was read without a date filter: its tables' records say `complete`. */
  readonly complete: boolean;
  /** A repair run: the `_id`s it asked for (the ones not found join the keys files). */
  readonly requested: FileRecord | null;
  /** A repair run: per dedupe table of the job, the keys load recomputes. */
  readonly recompute: Readonly<Record<string, ExtractRecomputeRecord>>;
}

export async function runTransform(options: TransformOptions): Promise<TransformReport> {
  const { model } = options;
  const now = options.now ?? (() => new Date());
  const started = Date.now();
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();

  const paths = await resolveRun(options.stagingDir, options.runId ?? null);
  const manifest = await readManifest(paths);
  requireStageDone(manifest, 'extract', paths);
  const pipelineChanged = manifest.pipeline_sha256 !== model.sha256;
  if (pipelineChanged && !options.allowPipelineChange) throw pipelineChangedError(model, manifest, paths);

  const { jobs, notExtracted } = planJobs(model, manifest, paths, options.tables ?? null);
  const section: TransformSection = {
    status: 'running',
    started_at: now().toISOString(),
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
  const planned = new Set(jobs.flatMap((j) => j.tables.map((t) => t.name)));
  options.onProgress?.({ kind: 'started', runId: paths.runId, tables: model.loadOrder.filter((t) => planned.has(t)), notExtracted });

  const { records, documentsRead } = await transformJobs(jobs, { model, paths, manifest, signal, onProgress: options.onProgress, section, now });
  // Tables in load order, in the manifest and in the report.
  const ordered = model.loadOrder.filter((t) => records.has(t));
  const tables: Record<string, TransformTableRecord> = {};
  for (const t of ordered) tables[t] = records.get(t)!;
  await updateManifest(paths, (m) => {
    m.stages.transform = { ...section, status: 'done', ended_at: now().toISOString(), tables };
  });

  return {
    runId: paths.runId,
    runDir: paths.dir,
    pipelineSha256: model.sha256,
    extractPipelineSha256: manifest.pipeline_sha256,
    pipelineChanged,
    tables: ordered.map((t): TransformTableReport => ({ table: t, ...tables[t]! })),
    notExtracted,
    documentsRead,
    durationMs: Date.now() - started,
  };
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
}

/** Every collection, then the live keys; on failure the manifest records the error and the tables done. */
async function transformJobs(jobs: readonly CollectionJob[], c: StageContext): Promise<{ records: Map<string, TransformTableRecord>; documentsRead: number }> {
  const { model, paths, signal } = c;
  const records = new Map<string, TransformTableRecord>();
  let documentsRead = 0;
  try {
    for (const job of jobs) {
      documentsRead += await transformCollection(job, c, records);
    }
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
        error: { code: (error as { code?: string }).code ?? 'internal', message: error instanceof Error ? error.message : String(error) },
        tables: Object.fromEntries(records),
      };
    }).catch(() => undefined);
    throw error;
  }
}

/** Which collections to read, for which tables; unknown or unextracted tables named with --tables are errors. */
function planJobs(model: PipelineModel, manifest: Manifest, paths: RunPaths, requested: readonly string[] | null): { jobs: CollectionJob[]; notExtracted: string[] } {
  if (requested) {
    const unknown = requested.filter((t) => !model.tables.has(t));
    if (unknown.length > 0) {
      throw new UsageError('unknown_table', `unknown table${unknown.length > 1 ? 's' : ''} ${unknown.map((t) => `"${t}"`).join(', ')} in --tables`, {
        hint: `tables of ${model.file}: ${[...model.tables.keys()].join(', ')}`,
      });
    }
  }
  const wanted = new Set(requested ?? model.tables.keys());
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
    const recompute = Object.fromEntries(Object.entries(manifest.stages.extract?.repair?.recompute ?? {}).filter(([t]) => tables.some((x) => x.name === t)));
    jobs.push({ collection: collection.name, tables, records: record.records, bytes: record.bytes, sha256: record.sha256, complete, requested: record.requested ?? null, recompute });
  }
  if (missingAsked.length > 0) {
    throw new StagingError('not_extracted', `run ${paths.runId} holds no extract for ${missingAsked.map((t) => `${t} (${model.tables.get(t)!.collection})`).join(', ')}`, {
      context: { file: paths.manifest },
      hint: 'extract those collections first (`etl extract`), or leave the tables out of --tables',
    });
  }
  return { jobs, notExtracted: notExtracted.sort() };
}

/** The table's mapping (mapping/) inside the class that converts and writes its rows. */
function newWork(table: TableModel, collection: string, o: OutputOptions): TableWork {
  const mapping = tableMapping(table);
  switch (mapping.strategy) {
    case 'upsert':
      return new UpsertWork(mapping, collection, o);
    case 'explode':
      return new ExplodeWork(mapping, collection, o);
    case 'dedupe':
      return new DedupeWork(mapping, collection, o);
  }
}

async function transformCollection(job: CollectionJob, c: StageContext, records: Map<string, TransformTableRecord>): Promise<number> {
  const { model, paths, onProgress } = c;
  // One failing file stops the whole pass at once; the first error is the one reported.
  const inner = new AbortController();
  let failure: unknown = null;
  const onFailure = (error: unknown): void => {
    failure ??= error;
    inner.abort(error);
  };
  const signal = AbortSignal.any([c.signal, inner.signal]);
  // Each staged file's pipeline listens to it (three files a table, up to three tables a collection).
  setMaxListeners(0, signal);
  const o: OutputOptions = { paths, settings: model.settings, signal, onFailure };
  const works: TableWork[] = [];
  const names = job.tables.map((t) => t.name);
  const file = paths.extractFile(job.collection);
  try {
    for (const t of job.tables) works.push(newWork(t, job.collection, o));
    onProgress?.({ kind: 'collection_started', collection: job.collection, tables: names, total: job.records });
    const read = await runCollectionPass(works, {
      file,
      signal,
      every: Math.max(1, model.settings.batchSize),
      onDocuments: onProgress ? (done) => onProgress({ kind: 'documents', collection: job.collection, tables: names, done, total: job.records }) : undefined,
    });
    checkExtractRead(job, read, paths);
    if (job.requested) await nameAbsentDocuments(paths, job.requested, works, drainOf(works), signal);
    for (const [name, record] of await commitWorks(works)) {
      record.complete = job.complete;
      const keys = job.recompute[name];
      if (keys) record.recompute = await passRecomputeKeys(paths, model.tables.get(name)!, keys, signal);
      records.set(name, record);
      onProgress?.({ kind: 'table_done', table: name, record });
    }
    return read.documents;
  } catch (error) {
    const reported = failure ?? (c.signal.aborted ? (c.signal.reason ?? error) : error);
    inner.abort(reported);
    for (const w of works) await w.discard().catch(() => undefined);
    for (const name of names) onProgress?.({ kind: 'table_failed', table: name, error: reported });
    if ((error as NodeJS.ErrnoException)?.code === 'ENOENT' && failure === null) {
      throw new StagingError('missing_extract_file', `run ${paths.runId} has no ${paths.relative(file)}`, {
        context: { file, collection: job.collection },
        hint: 'the run is damaged: run `etl extract` again',
        cause: error,
      });
    }
    throw reported;
  }
}

/** Waits for every file of the tables whose buffer is full. */
function drainOf(works: readonly TableWork[]): () => Promise<void> {
  const outputs = works.flatMap((w) => w.outputs);
  return async () => {
    for (const out of outputs) if (out.needsDrain) await out.drain();
  };
}

/** The extract file must be the one the manifest describes: a damaged or edited file is refused. */
function checkExtractRead(job: CollectionJob, read: PassResult, paths: RunPaths): void {
  if (read.documents === job.records && read.bytes === job.bytes && read.sha256 === job.sha256) return;
  const file = paths.extractFile(job.collection);
  throw new StagingError(
    'extract_mismatch',
    `${paths.relative(file)} of run ${paths.runId} is not the file the manifest describes ` +
      `(read ${read.documents} documents, ${read.bytes} bytes, sha256 ${read.sha256}; manifest: ${job.records} documents, ${job.bytes} bytes, sha256 ${job.sha256})`,
    { context: { file, collection: job.collection }, hint: 'the run is damaged: run `etl extract` again' },
  );
}

/** Commits every table's files; their counts must reconcile. */
async function commitWorks(works: readonly TableWork[]): Promise<[string, TransformTableRecord][]> {
  const done: [string, TransformTableRecord][] = [];
  for (const w of works) {
    const record = await w.commit();
    const errors = transformIdentityErrors(w.name, record);
    if (errors.length > 0) throw new Error(`transform counts do not reconcile (a bug): ${errors.join('; ')}`);
    done.push([w.name, record]);
  }
  return done;
}
