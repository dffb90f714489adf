// Run folders and the names of the files in them. Paths are built (and parsed) only here, so no
// stage splits or joins staging file names by hand.
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { StagingError, UsageError } from '../errors/etl-error.ts';
import { fileNameProblem } from '../model/names.ts';
import { writeFailure, writeFileAtomic } from './atomic-file.ts';
import { systemWords } from '../errors/system-words.ts';
import { makeFolders } from './make-folders.ts';
import { readManifest } from './manifest.ts';

export const LATEST_FILE = 'latest';
const RUN_ID = /^\d{8}T\d{9}Z$/;

/** Sortable UTC run id with milliseconds: 20261124T101500123Z. */
export function newRunId(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace('.', '');
}

export function isRunId(name: string): boolean {
  return RUN_ID.test(name);
}

/**
 * The absolute path of a file a manifest records (relative to the run folder) when it lies directly
 * in the run's transform folder, else null: a manifest naming any other file is not followed.
 */
export function transformFileOf(paths: RunPaths, recorded: string): string | null {
  const file = path.resolve(paths.dir, recorded);
  return path.dirname(file) === path.resolve(paths.transformDir) ? file : null;
}

/** Every path of one run. */
export interface RunPaths {
  readonly stagingDir: string;
  readonly runId: string;
  readonly dir: string;
  readonly manifest: string;
  readonly pipelineCopy: string;
  readonly extractDir: string;
  readonly transformDir: string;
  readonly loadDir: string;
  extractFile(collection: string): string;
  /** The documents extract could not stage, beside the collection's NDJSON file. */
  extractRejects(collection: string): string;
  /** Ids-only file for delete propagation: every `_id` of the collection. */
  extractIdsFile(collection: string): string;
  /** Repair runs: every `_id` asked for, and whether it was found. */
  extractRequestedFile(collection: string): string;
  /** Repair runs: the keys of a dedupe table that load recomputes (as the repair found them differ). */
  extractRecomputeFile(table: string): string;
  transformCsv(table: string): string;
  transformKeys(table: string): string;
  /** Dedupe tables: the row each staged document contributes. */
  transformContrib(table: string): string;
  transformRejects(table: string): string;
  /** Delete propagation: the keys of the table's rows whose document still exists. */
  transformLive(table: string): string;
  /** Repair runs: the dedupe keys load recomputes, checked and passed on from the extract's file. */
  transformRecompute(table: string): string;
  loadRejects(table: string): string;
  /** The path relative to the run folder, as recorded in the manifest. */
  relative(file: string): string;
}

export function runPaths(stagingDir: string, runId: string): RunPaths {
  const dir = path.join(stagingDir, runId);
  const extractDir = path.join(dir, 'extract');
  const transformDir = path.join(dir, 'transform');
  const loadDir = path.join(dir, 'load');
  return Object.freeze({
    stagingDir,
    runId,
    dir,
    manifest: path.join(dir, 'manifest.json'),
    pipelineCopy: path.join(dir, 'pipeline.yaml'),
    extractDir,
    transformDir,
    loadDir,
    extractFile: (c: string) => path.join(extractDir, `${safeName(c)}.ndjson`),
    extractRejects: (c: string) => path.join(extractDir, `${safeName(c)}.rejects.ndjson`),
    extractIdsFile: (c: string) => path.join(extractDir, `${safeName(c)}.ids.ndjson`),
    extractRequestedFile: (c: string) => path.join(extractDir, `${safeName(c)}.requested.ndjson`),
    extractRecomputeFile: (t: string) => path.join(extractDir, `${safeName(t)}.recompute.csv`),
    transformCsv: (t: string) => path.join(transformDir, `${safeName(t)}.csv`),
    transformKeys: (t: string) => path.join(transformDir, `${safeName(t)}.keys.csv`),
    transformContrib: (t: string) => path.join(transformDir, `${safeName(t)}.contrib.csv`),
    transformRejects: (t: string) => path.join(transformDir, `${safeName(t)}.rejects.ndjson`),
    transformLive: (t: string) => path.join(transformDir, `${safeName(t)}.live.csv`),
    transformRecompute: (t: string) => path.join(transformDir, `${safeName(t)}.recompute.csv`),
    loadRejects: (t: string) => path.join(loadDir, `${safeName(t)}.rejects.ndjson`),
    relative: (file: string) => path.relative(dir, file).split(path.sep).join('/'),
  });
}

/** Collection and table names become file names: refuse anything that could leave the folder (validate reports it first). */
function safeName(name: string): string {
  const problem = fileNameProblem(name);
  if (problem) throw new StagingError('bad_name', `"${name}" cannot be used as a staging file name: ${problem}`, { hint: 'rename it in pipeline.yaml; `etl validate` shows every such name with its line' });
  return name;
}

/** Creates a new run folder (and its stage folders) with a fresh id. */
export async function createRun(stagingDir: string, now: Date = new Date()): Promise<RunPaths> {
  // A staging folder that cannot be made (not writable, disk full) is named, not a raw EACCES.
  await makeFolders(stagingDir).catch((e: unknown) => cannotCreate(stagingDir, e));
  let t = now.getTime();
  // Two runs started within the same millisecond get distinct ids.
  for (;;) {
    const paths = runPaths(stagingDir, newRunId(new Date(t)));
    try {
      await mkdir(paths.dir);
      await Promise.all([mkdir(paths.extractDir), mkdir(paths.transformDir), mkdir(paths.loadDir)]);
      return paths;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') cannotCreate(paths.dir, e);
      t += 1;
    }
  }
}

/** The hint for a staged file this user may not read: every stage reading a run says the same. */
export const RUN_FOLDER_DENIED = 'this user may not read it: fix the permissions of the run folder, or run etl as its owner';

function cannotCreate(stagingDir: string, error: unknown): never {
  // Said in words and naming the folder already (a file system that holds no new folders).
  if (error instanceof StagingError) throw error;
  const e = error as NodeJS.ErrnoException;
  // A full disk says so (and names the folder) as every write of the staging does.
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') throw writeFailure(stagingDir, error);
  throw new StagingError('staging_not_writable', `cannot create the staging folder ${stagingDir}: ${systemWords(error)}`, {
    context: { path: e.path ?? stagingDir, errno: e.code },
    hint: 'choose a folder you can write with --staging DIR or ETL_STAGING, or fix the permissions of this one',
    cause: error,
  });
}

/** Points `latest` at a run (atomically). */
export async function setLatest(stagingDir: string, runId: string): Promise<void> {
  if (!isRunId(runId)) throw new StagingError('bad_run_id', `${JSON.stringify(clip(runId))} is not a run id: \`latest\` was not changed`);
  await writeFileAtomic(path.join(stagingDir, LATEST_FILE), `${runId}\n`);
}

/**
 * Points `latest` at a run that just finished its extract, unless it already names a newer run that
 * is still there: two extracts at once end in any order, and the newer run read from the same
 * watermark later, so the older one ending last must not take `latest` back (the next stage, pack
 * and report would use the older run). False when `latest` was left on (or put back to) a newer run.
 */
export async function advanceLatest(stagingDir: string, runId: string): Promise<boolean> {
  const current = await readLatestId(stagingDir).catch(() => null);
  if (current !== null && current > runId && (await stat(runPaths(stagingDir, current).dir).then((s) => s.isDirectory(), () => false))) return false;
  await setLatest(stagingDir, runId);
  // Read, then written, without a lock: a newer extract may have ended between the two and set
  // `latest`, which this write just took back. Each extract records its run done before it moves
  // `latest`, so a newer run done now is put back (a newer one still at work moves it itself, after).
  const newer = await newestExtractedAfter(stagingDir, runId);
  if (newer === null) return true;
  await advanceLatest(stagingDir, newer);
  return false;
}

/** The newest run newer than `runId` whose extract is done, or null. */
async function newestExtractedAfter(stagingDir: string, runId: string): Promise<string | null> {
  for (const id of await listRunIds(stagingDir).catch(() => [])) {
    if (id <= runId) return null;
    const manifest = await readManifest(runPaths(stagingDir, id)).catch(() => null);
    if (manifest?.stages.extract?.status === 'done') return id;
  }
  return null;
}

/**
 * The run to use: the one named (--run), or the one `latest` points at. Either must be a run id
 * (20261124T101500123Z): anything else — `../../elsewhere/<run>`, an absolute path — would make a
 * stage read and write outside the staging folder, so it is refused before any path is built.
 */
export async function resolveRun(stagingDir: string, runId?: string | null): Promise<RunPaths> {
  // `--run latest` says what no --run says.
  let id = runId === LATEST_FILE ? null : (runId ?? null);
  if (id) {
    if (!isRunId(id)) {
      throw new UsageError('bad_run_id', `--run must be a run id such as 20261124T101500123Z (or latest), got ${JSON.stringify(clip(id))}`, {
        hint: 'list the staged runs with `etl runs`',
        context: { flag: '--run' },
      });
    }
  } else {
    id = await readLatestId(stagingDir);
  }
  const paths = runPaths(stagingDir, id);
  try {
    if (!(await stat(paths.dir)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new StagingError('no_run', `staged run ${id} not found in ${stagingDir}`, { hint: 'list runs with `etl runs`' });
  }
  return paths;
}

async function readLatestId(stagingDir: string): Promise<string> {
  const file = path.join(stagingDir, LATEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new StagingError('no_run', `no staged run in ${stagingDir} (no "latest" file)`, {
      hint: 'run `etl extract` first, or pass --run ID / --staging DIR',
    });
  }
  const id = text.trim();
  if (!isRunId(id)) {
    throw new StagingError('bad_latest', `${file} does not name a run: it holds ${JSON.stringify(clip(id))}, expected a run id such as 20261124T101500123Z`, {
      context: { file },
      hint: `pass --run ID (see \`etl runs\`), or run \`etl extract\`, which rewrites ${LATEST_FILE}`,
    });
  }
  return id;
}

const clip = (s: string) => (s.length > 80 ? `${s.slice(0, 80)}…` : s);

/** Run ids in the staging folder, newest first (none when the folder is not made yet). */
export async function listRunIds(stagingDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(stagingDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    // A file in its place, or no permission: "no runs" would not be true.
    const e = error as NodeJS.ErrnoException;
    throw new StagingError('staging_unreadable', `cannot read the staging folder ${stagingDir}: ${systemWords(error)}`, {
      context: { path: stagingDir, errno: e.code },
      hint: 'choose the staging folder with --staging DIR or ETL_STAGING, or fix the permissions of this one',
      cause: error,
    });
  }
  return names.filter(isRunId).sort().reverse();
}
