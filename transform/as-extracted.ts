// A transform that starts while its run is being extracted (`etl run`): each collection's job
// starts as soon as the extract has staged the collection, reading only that collection's file,
// checked against the record the extract wrote for it, as always. Nothing is written to the
// manifest until the extract is done (the extract writes it after each collection: one writer at
// a time); then its final section must hold exactly the jobs that ran, and the stage goes on as
// after `etl extract`. If the extract fails, every job stops and every file this transform wrote
// is removed, so the run folder is what the failed extract alone leaves.
import { readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { selectTables } from '../model/select-tables.ts';
import type { PipelineModel } from '../model/types.ts';
import { readManifest, requireStageDone, type Manifest } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import type { CollectionJob, JobContext, JobOutcome } from './collection-job.ts';
import type { ExtractFeed } from './feed.ts';
import { FedJobs, type WorkerSetup } from './parallel.ts';
import { jobOf, planJobs, tablesByCollection } from './plan.ts';
import type { TableRelease } from './release.ts';
import { makeFolders } from '../staging/make-folders.ts';

export interface AsExtractedContext extends JobContext {
  readonly tables: readonly string[] | null;
  /** TransformOptions.threads (absent: one per core, once the run is big enough). */
  readonly threads: number | undefined;
  readonly setup: WorkerSetup;
  readonly done: (outcome: JobOutcome) => void;
  /** Told the tables planned (with the `started` event). */
  readonly release: TableRelease;
}

export interface AsExtracted {
  /** The jobs, still running: `finish()` waits for them. */
  readonly runner: FedJobs;
  /** The manifest as the finished extract left it. */
  readonly manifest: Manifest;
  readonly jobs: CollectionJob[];
  readonly notExtracted: string[];
}

/** Runs each collection's job as the extract stages it; returns once the extract is done. */
export async function transformAsExtracted(feed: ExtractFeed, c: AsExtractedContext): Promise<AsExtracted> {
  const { model, paths } = c;
  const tablesOf = tablesByCollection(model, new Set(selectTables(model, c.tables)));
  for (const name of tablesOf.keys()) if (!feed.collections.includes(name)) tablesOf.delete(name);
  announce(model, paths, tablesOf, c);
  await makeFolders(paths.transformDir);
  const runner = new FedJobs(c.threads ?? os.availableParallelism(), c.threads !== undefined, c, c.setup, c.done);
  try {
    for await (const { collection, record } of feed.extracted) {
      const tables = tablesOf.get(collection);
      if (tables) runner.add(jobOf(collection, tables, record, {}));
    }
    const manifest = await readManifest(paths);
    requireStageDone(manifest, 'extract', paths);
    const plan = planJobs(model, manifest, paths, c.tables);
    if (!sameJobs(plan.jobs, runner.jobs)) throw new Error(`the collections transformed while run ${paths.runId} was extracted are not those its manifest holds (a bug)`);
    return { runner, manifest, ...plan };
  } catch (error) {
    await runner.abandon(error);
    await emptyFolder(paths.transformDir);
    throw error;
  }
}

/** The `started` event: the tables of the collections the extract announced. */
function announce(model: PipelineModel, paths: RunPaths, tablesOf: ReadonlyMap<string, readonly string[]>, c: AsExtractedContext): void {
  const planned = new Set([...tablesOf.values()].flat());
  const wanted = selectTables(model, c.tables);
  const notExtracted = wanted.filter((t) => !planned.has(t)).sort();
  const tables = model.loadOrder.filter((t) => planned.has(t));
  c.release.plan(tables);
  c.onProgress?.({ kind: 'started', runId: paths.runId, runDir: paths.dir, tables, notExtracted });
}

function sameJobs(planned: readonly CollectionJob[], ran: readonly CollectionJob[]): boolean {
  const byName = (jobs: readonly CollectionJob[]) => Object.fromEntries(jobs.map((j) => [j.collection, j]));
  return planned.length === ran.length && isDeepStrictEqual(byName(planned), byName(ran));
}

/** The transform folder as the extract made it: empty (this transform is its only writer). */
async function emptyFolder(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [])) await rm(path.join(dir, name), { recursive: true, force: true });
}
