// Which collections a transform reads, for which tables: its jobs, from the extract's records.
import { StagingError } from '../errors/etl-error.ts';
import { selectTables } from '../model/select-tables.ts';
import type { PipelineModel } from '../model/types.ts';
import type { ExtractCollectionRecord } from '../staging/manifest-extract.ts';
import type { Manifest } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import type { CollectionJob } from './collection-job.ts';

/** Which collections to read, for which tables; unknown or unextracted tables named with --tables are errors. */
export function planJobs(model: PipelineModel, manifest: Manifest, paths: RunPaths, requested: readonly string[] | null): { jobs: CollectionJob[]; notExtracted: string[] } {
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
    // A repair run: per dedupe table of the job, the keys load recomputes.
    const recompute = Object.fromEntries(Object.entries(manifest.stages.extract?.repair?.recompute ?? {}).filter(([t]) => tables.some((x) => x.name === t)));
    jobs.push(jobOf(collection.name, tables.map((t) => t.name), record, recompute));
  }
  if (missingAsked.length > 0) {
    throw new StagingError('not_extracted', `run ${paths.runId} holds no extract for ${missingAsked.map((t) => `${t} (${model.tables.get(t)!.collection})`).join(', ')}`, {
      context: { file: paths.manifest },
      hint: 'extract those collections first (`etl extract`), or leave the tables out of --tables',
    });
  }
  return { jobs, notExtracted: notExtracted.sort() };
}

/** One collection's job: its tables (pipeline order), checked against the extract's record of its file. */
export function jobOf(collection: string, tables: readonly string[], record: ExtractCollectionRecord, recompute: CollectionJob['recompute']): CollectionJob {
  const complete = record.watermark?.from === null;
  return { collection, tables, records: record.records, bytes: record.bytes, sha256: record.sha256, complete, requested: record.requested ?? null, rejects: record.rejects ?? null, recompute, claimants: record.claimants ?? [] };
}

/** The tables of `wanted` each collection feeds (pipeline order), for the collections that feed one. */
export function tablesByCollection(model: PipelineModel, wanted: ReadonlySet<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const collection of model.collections) {
    const tables = collection.tables.filter((t) => wanted.has(t));
    if (tables.length > 0) out.set(collection.name, tables);
  }
  return out;
}
