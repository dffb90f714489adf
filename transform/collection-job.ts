// One collection's part of a transform: its extract file read once, every table it feeds written
// and committed, the file checked against the extract manifest. Runs in the stage's thread or in a
// worker thread (parallel.ts): the files it writes are the same either way.
import { setMaxListeners } from 'node:events';
import type { PipelineModel, TableModel } from '../model/types.ts';
import { transformIdentityErrors, type TransformTableRecord } from '../staging/manifest-transform.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { tableMapping } from '../mapping/index.ts';
import { drainOf, runCollectionPass } from './collection-pass.ts';
import { checkExtractRead, unreadableExtract } from './extract-check.ts';
import { DedupeWork } from './dedupe.ts';
import { ExplodeWork } from './explode.ts';
import type { TransformProgress } from './options.ts';
import type { OutputOptions, TableWork } from './table-work.ts';
import { UpsertWork } from './upsert.ts';
import { nameAbsentDocuments, passRecomputeKeys } from './repair-inputs.ts';
import { nameRejectedDocuments } from './extract-rejects.ts';
import type { FileRecord } from '../staging/manifest.ts';
import type { ExtractRecomputeRecord } from '../staging/manifest-extract.ts';

export interface CollectionJob {
  readonly collection: string;
  /** The tables it feeds, by name (pipeline order). */
  readonly tables: readonly string[];
  readonly records: number;
  readonly bytes: number;
  readonly sha256: string;
  /** The collection was read without a date filter: its tables' records say `complete`. */
  readonly complete: boolean;
  /** A repair run: the `_id`s it asked for (the ones not found join the keys files). */
  readonly requested: FileRecord | null;
  /** The documents extract refused (those with an `_id` join the keys files). */
  readonly rejects: FileRecord | null;
  /** A repair run: per dedupe table of the job, the keys load recomputes. */
  readonly recompute: Readonly<Record<string, ExtractRecomputeRecord>>;
  /** The claimants of contested keys the extract asked for (its record's `claimants`): its tables' records carry them to load. */
  readonly claimants: readonly string[];
}

export interface JobContext {
  readonly model: PipelineModel;
  readonly paths: RunPaths;
  readonly signal: AbortSignal;
  readonly onProgress: ((e: TransformProgress) => void) | undefined;
}

export interface JobOutcome {
  readonly documents: number;
  /** Each table's manifest record, its files committed. */
  readonly records: readonly (readonly [string, TransformTableRecord])[];
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

export async function transformCollection(job: CollectionJob, c: JobContext): Promise<JobOutcome> {
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
  const names = job.tables;
  const file = paths.extractFile(job.collection);
  try {
    for (const t of job.tables) works.push(newWork(model.tables.get(t)!, job.collection, o));
    onProgress?.({ kind: 'collection_started', collection: job.collection, tables: names, total: job.records });
    const read = await runCollectionPass(works, {
      file,
      signal,
      every: Math.max(1, model.settings.batchSize),
      onDocuments: onProgress ? (done) => onProgress({ kind: 'collection_progress', collection: job.collection, tables: names, documents: done, total: job.records }) : undefined,
    });
    // A damaged or edited extract file is refused.
    checkExtractRead(paths, { file: paths.relative(file), records: job.records, bytes: job.bytes, sha256: job.sha256 }, { ...read, records: read.documents }, job.collection);
    if (job.requested) await nameAbsentDocuments(paths, job.requested, works, drainOf(works), signal);
    if (job.rejects) await nameRejectedDocuments(paths, job.rejects, works, drainOf(works), signal);
    const records = await commitWorks(works);
    for (const [name, record] of records) {
      record.complete = job.complete;
      if (job.claimants.length > 0) record.claimants = [...job.claimants];
      const keys = job.recompute[name];
      if (keys) record.recompute = await passRecomputeKeys(paths, model.tables.get(name)!, keys, signal);
      onProgress?.({ kind: 'table_done', table: name, record });
    }
    return { documents: read.documents, records };
  } catch (error) {
    const reported = failure ?? (c.signal.aborted ? (c.signal.reason ?? error) : error);
    inner.abort(reported);
    for (const w of works) await w.discard().catch(() => undefined);
    for (const name of names) onProgress?.({ kind: 'table_failed', table: name, error: reported });
    throw unreadableExtract(reported, file, job.collection, paths) ?? reported;
  }
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
