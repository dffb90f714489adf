// What a run whose process died mid-stage leaves behind, and its removal.
//
// A stage still `running` whose writer is gone (staging/stage-writer.ts) was killed: the `*.partial`
// files of its run are bytes nobody will finish or rename. Every stage command removes them when it
// starts (the next run is how a user recovers from a crash), from runs in which no stage's writer
// may still be at work: a writer on another host, or a section written by an etl that recorded
// none, keeps its run untouched.
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { readManifest, STAGES, type Manifest } from './manifest.ts';
import { listRunIds, runPaths, type RunPaths } from './run-folder.ts';
import { writerGone } from './stage-writer.ts';

export interface AbandonedRun {
  readonly paths: RunPaths;
  readonly manifest: Manifest;
}

/** The folders of a run that hold staged files (the run folder itself: the manifest, pipeline.yaml). */
const stagedDirs = (paths: RunPaths): string[] => [paths.dir, paths.extractDir, paths.transformDir, paths.loadDir];

async function partialsIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.partial')).map((n) => path.join(dir, n));
}

/**
 * Runs of the staging folder that hold `*.partial` files, with a stage `running` whose writer is
 * gone and no stage that may still be at work (only runs with such files have their manifest read).
 */
export async function abandonedRuns(stagingDir: string): Promise<AbandonedRun[]> {
  const found: AbandonedRun[] = [];
  // A staging folder that cannot be read holds nothing this process could sweep: the stage that
  // sweeps first then says why it cannot use it (cannot create it, a file in its place).
  const ids = await listRunIds(stagingDir).catch((e: unknown) => {
    if ((e as { code?: string }).code === 'staging_unreadable') return [];
    throw e;
  });
  for (const runId of ids) {
    const run = await abandonedRun(runPaths(stagingDir, runId));
    if (run) found.push(run);
  }
  return found;
}

/** The run, when it holds `*.partial` files and its process died mid-stage (as abandonedRuns finds runs). */
export async function abandonedRun(paths: RunPaths): Promise<AbandonedRun | null> {
  const partials = (await Promise.all(stagedDirs(paths).map(partialsIn))).flat();
  if (partials.length === 0) return null;
  const versions = await manifestVersions(paths, partials);
  const running = versions.flatMap((m) => STAGES.map((s) => m.stages[s])).filter((s) => s?.status === 'running');
  return running.length > 0 && running.every((s) => writerGone(s!.writer)) ? { paths, manifest: versions[versions.length - 1]! } : null;
}

/**
 * The run's manifest, then the versions processes were writing over it when they died, if whole
 * (`manifest.json.<pid>.partial`, oldest first, among the run's `partials`): a stage killed while it
 * wrote its `running` section is known by the writer that section names.
 */
async function manifestVersions(paths: RunPaths, partials: readonly string[]): Promise<Manifest[]> {
  const current = await readManifest(paths).catch(() => null);
  const prefix = `${paths.manifest}.`;
  const unfinished = partials.filter((f) => f.startsWith(prefix));
  const written = await Promise.all(unfinished.map(async (file) => ({ manifest: await wholeManifest(file), at: (await stat(file).catch(() => null))?.mtimeMs ?? 0 })));
  const next = written.filter((w) => w.manifest !== null).sort((a, b) => a.at - b.at).map((w) => w.manifest!);
  return [...(current ? [current] : []), ...next];
}

async function wholeManifest(file: string): Promise<Manifest | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const m = JSON.parse(text) as Manifest;
    return typeof m === 'object' && m !== null && typeof m.stages === 'object' && m.stages !== null ? m : null;
  } catch {
    return null;
  }
}

/** Removes the `*.partial` files directly in `dir`. */
export async function removePartials(dir: string): Promise<void> {
  for (const file of await partialsIn(dir)) await rm(file, { force: true });
}

/**
 * Removes the unfinished files of the runs whose process died mid-stage. A load's unfinished rejects
 * files stay while its section says `running`: if its transaction committed before the process died
 * they are the run's rejects files, which the next load into that database recovers from the ledger
 * (load/abandoned-loads.ts).
 */
export async function removeAbandonedPartials(stagingDir: string): Promise<AbandonedSweep> {
  const runs = await abandonedRuns(stagingDir);
  for (const { paths, manifest } of runs) {
    const dirs = stagedDirs(paths);
    for (const dir of manifest.stages.load?.status === 'running' ? dirs.filter((d) => d !== paths.loadDir) : dirs) await removePartials(dir);
  }
  return { stagingDir: path.resolve(stagingDir), runs };
}

/**
 * One scan of a staging folder for killed runs, their unfinished files removed: what a command that
 * runs several stages (`etl run`, `etl repair`) makes once and hands to each, so that a 200-run
 * folder is not walked once per stage. The runs are as they were then: whoever acts on one later
 * checks it again (abandonedRun).
 */
export interface AbandonedSweep {
  readonly stagingDir: string;
  readonly runs: readonly AbandonedRun[];
}

/** The sweep a stage starts with: its command's of the same staging folder, else one of its own. */
export async function sweepAbandoned(stagingDir: string, swept: AbandonedSweep | undefined): Promise<AbandonedSweep> {
  return swept !== undefined && swept.stagingDir === path.resolve(stagingDir) ? swept : removeAbandonedPartials(stagingDir);
}
