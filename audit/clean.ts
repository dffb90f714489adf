// `etl clean`: removes old run folders, never one a person or the next stage may still need.
//
// The rules, in order (a run kept by any of them is not removed):
//  1. the run `latest` points at is kept (the next stage's default input);
//  2. the newest loaded run is kept (the last state PostgreSQL was brought to, for audit);
//  3. a run not yet loaded is kept: extract and transform done, load not done (never run, failed,
//     or a dry run) — its changes are not in PostgreSQL yet. Unless it is superseded: a newer run
//     was loaded into the destination its load recorded, and that run's extract provably read every
//     change it carried (every collection it read, from a bound at or before its own; a repair's
//     chosen documents only by a full read; its `_id` sets; every table it transformed committed:
//     audit/superseded.ts). A run whose load never recorded a destination, or anything the
//     manifests do not record, keeps it; so does a killed load, which may have committed (rule 5);
//  4. an unfinished run (extract or transform failed, killed, still running, or no readable
//     manifest) is kept when it is newer than the newest loaded run, or when nothing was ever
//     loaded: it may be in progress or about to be retried. Older ones are superseded: the loaded
//     run after them read from a watermark that had not moved past them (the watermark only
//     advances on load);
//  5. a run with a stage marked "running" whose writer is a live process of this host is kept, however
//     old its manifest (one collection may take hours to read); one whose writer cannot be checked (on
//     another host, or not recorded) is kept while its manifest changed within the last hour, even
//     when older: a stage may really be working on it. Not one whose stage was killed (its writer
//     is certainly gone: staging/stage-writer.ts): nothing works on it, so rule 4 alone decides, as
//     for a failed run. A killed load is a load not done (rule 3): it may have committed, which
//     only its database's ledger knows (the next load into it settles the run);
//  6. --keep N keeps the N newest runs; --older-than D keeps runs started on or after D.
// What remains are loaded runs superseded by a newer loaded run, not-loaded runs superseded by one
// (rule 3), and unfinished runs older than the newest loaded run. Also removed: a stale `*.partial`
// file in the staging folder itself (an archive `etl pack` was writing when it was killed), one not
// written for STALE_PARTIAL_MS. A run the rules let go is checked once more just before it goes,
// holding its start lock (staging/start-lock.ts): one `latest` moved onto, one whose manifest changed
// since the listing (a stage began on it), or one a stage is starting on, stays.
import { lstat, readdir, readlink, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseInstant } from '../model/instant.ts';
import { StagingError, UsageError } from '../errors/etl-error.ts';
import { roughDuration } from '../staging/durations.ts';
import { STALE_PARTIAL_MS } from './archive-writer.ts';
import { listRunIds, runPaths } from '../staging/run-folder.ts';
import { killedStage, shownStages, stageAtWork } from '../staging/stage-writer.ts';
import { holderWork, startLockHolder, whileStarting } from '../staging/start-lock.ts';
import { describeStages } from '../staging/manifest.ts';
import { folderBytes } from './folder-walk.ts';
import { isLoaded, readLatest, readRunManifest, runIdTime } from './runs.ts';
import { supersedingRun } from './superseded.ts';

export interface CleanOptions {
  stagingDir: string;
  /** Keep at least this many of the newest runs. */
  keep?: number | null;
  /** Only remove runs started before this instant. */
  olderThan?: Date | null;
  dryRun?: boolean;
  now?: Date;
}

export interface CleanedRun {
  run_id: string;
  bytes: number;
  /** Why it could go. */
  reason: string;
}

/** An unfinished file (`*.partial`) removed from the staging folder. */
export interface RemovedPartial {
  file: string;
  bytes: number;
  reason: string;
}

export interface KeptRun {
  run_id: string;
  reasons: string[];
}

export interface CleanReport {
  staging: string;
  dry_run: boolean;
  keep: number | null;
  older_than: string | null;
  /** Removed runs (under --dry-run: the runs that would be removed). */
  removed: CleanedRun[];
  kept: KeptRun[];
  /** Stale `*.partial` files of the staging folder (under --dry-run: those that would be removed). */
  removed_partials: RemovedPartial[];
  /** Bytes of the removed runs and partial files. */
  freed_bytes: number;
  newest_loaded: string | null;
  latest: string | null;
}

const RECENT_MS = 60 * 60 * 1000;

export async function cleanRuns(options: CleanOptions): Promise<CleanReport> {
  const { stagingDir } = options;
  const now = options.now ?? new Date();
  const latest = await readLatest(stagingDir);
  const ids = await listRunIds(stagingDir); // newest first
  const runs: ListedRun[] = [];
  for (const runId of ids) {
    const read = await readRunManifest(stagingDir, runId);
    // Worked out once: whether a stage's writer is alive is asked of the system, and the reasons to
    // keep a run and the reason it went must rest on the same answer.
    runs.push({ runId, ...read, stages: shownStages(read.manifest), supersededBy: null });
  }
  for (const run of runs) run.supersededBy = supersedingRun(run, runs);
  const newestLoaded = runs.find((r) => isLoaded(r.manifest))?.runId ?? null;

  const removed: CleanedRun[] = [];
  const kept: KeptRun[] = [];
  for (const [index, run] of runs.entries()) {
    const reasons = await keepReasons(run, index, { options, now, latest, newestLoaded });
    if (reasons.length > 0) kept.push({ run_id: run.runId, reasons });
    else {
      const gone = await removeRun(run, stagingDir, newestLoaded, options.dryRun === true);
      if ('keptBecause' in gone) kept.push({ run_id: run.runId, reasons: [gone.keptBecause] });
      else removed.push(gone);
    }
  }
  const partials = await stalePartials(stagingDir, now);
  if (!options.dryRun) for (const p of partials) await rm(p.file, { force: true });
  return {
    staging: stagingDir,
    dry_run: options.dryRun === true,
    keep: options.keep ?? null,
    older_than: options.olderThan ? options.olderThan.toISOString() : null,
    removed,
    kept,
    removed_partials: partials,
    freed_bytes: [...removed, ...partials].reduce((a, r) => a + r.bytes, 0),
    newest_loaded: newestLoaded,
    latest,
  };
}

type ListedRun = {
  runId: string;
  stages: ReturnType<typeof shownStages>;
  /** Not loaded, and this newer loaded run's extract covered its changes (rule 3, audit/superseded.ts). */
  supersededBy: string | null;
} & Awaited<ReturnType<typeof readRunManifest>>;

interface Listing {
  readonly options: CleanOptions;
  readonly now: Date;
  readonly latest: string | null;
  readonly newestLoaded: string | null;
}

/** Why a run stays (rules 1–6 above); none: it may go. `index`: its place, newest first. */
async function keepReasons(run: ListedRun, index: number, l: Listing): Promise<string[]> {
  const { options, newestLoaded } = l;
  const reasons: string[] = [];
  const { stages } = run;
  const killed = killedStage(stages);
  const unfinished = killed === null ? 'unfinished' : `killed during its ${killed} (its process is gone)`;
  const finished = stages.extract === 'done' && stages.transform === 'done';
  if (run.runId === l.latest) reasons.push('`latest` points at it');
  if (run.runId === newestLoaded) reasons.push('newest loaded run');
  if (finished && !isLoaded(run.manifest) && run.supersededBy === null) reasons.push(`not yet loaded (${loadState(run)})`);
  const atWork = stageAtWork(run.manifest);
  if (atWork) reasons.push(`its ${atWork.stage} is at work in etl process ${atWork.pid}`);
  if (!finished) {
    if (newestLoaded === null) reasons.push(`${unfinished}, and no run was loaded yet`);
    else if (run.runId > newestLoaded) reasons.push(`${unfinished}, newer than the newest loaded run`);
    // A killed stage is certainly not at work: only a stage that may be running keeps an old run.
    const running = Object.values(stages).some((s) => s === 'running');
    if (running) {
      const mtime = await stat(runPaths(options.stagingDir, run.runId).manifest).then((s) => s.mtimeMs, () => 0);
      if (l.now.getTime() - mtime < RECENT_MS) reasons.push('a stage is marked running and the manifest changed within the hour');
    }
  }
  if (options.keep != null && index < options.keep) reasons.push(`among the ${options.keep} newest (--keep)`);
  if (options.olderThan && !(runIdTime(run.runId).getTime() < options.olderThan.getTime())) {
    reasons.push(`not older than ${options.olderThan.toISOString()} (--older-than)`);
  }
  return reasons;
}

/** `load failed`, `load done, dry run`, `load never ran`: where a run that is not loaded stands. */
function loadState(run: ListedRun): string {
  const { load } = run.stages;
  return `load ${load ? load + (run.manifest?.stages.load?.dry_run ? ', dry run' : '') : 'never ran'}`;
}

/** Removes a run no rule keeps (under --dry-run: says it would), or says why it stays after all (removeUnlessChanged). */
async function removeRun(run: ListedRun, stagingDir: string, newestLoaded: string | null, dryRun: boolean): Promise<CleanedRun | { keptBecause: string }> {
  const { stages } = run;
  const reason = isLoaded(run.manifest)
    ? `loaded, superseded by loaded run ${newestLoaded}`
    : run.supersededBy !== null
      ? `not loaded (${loadState(run)}), superseded by loaded run ${run.supersededBy}, whose extract covered its changes`
      : `${killedStage(stages) === null ? 'unfinished' : 'killed'} (${run.problem ?? describeStages(stages)}), older than loaded run ${newestLoaded}`;
  const dir = runPaths(stagingDir, run.runId).dir;
  // A run that is a link to a folder elsewhere: removing it removes the link only, which frees nothing.
  const link = await readlink(dir).catch(() => null);
  // Gone already: another etl clean, which listed the runs too, removed it (null).
  const bytes = link === null ? await folderBytes(dir).catch((e: unknown) => ((e as NodeJS.ErrnoException).code === 'ENOENT' ? null : Promise.reject(e))) : 0;
  const why = link === null ? reason : `${reason}; it is a link to ${link}: only the link is removed, the folder it points to is left (nothing freed)`;
  const outcome = dryRun ? REMOVED : bytes === null ? GONE : await removeUnlessChanged(run, stagingDir);
  if (outcome === GONE) return { run_id: run.runId, bytes: 0, reason: `${why}; another etl command removed it meanwhile (nothing freed by this one)` };
  if (outcome !== REMOVED) return { keptBecause: outcome };
  return { run_id: run.runId, bytes: bytes ?? 0, reason: why };
}

/** What removeUnlessChanged did: removed the run, found it gone, or why it stays. */
const REMOVED = Symbol('removed');
const GONE = Symbol('gone');

/**
 * The listing is a moment's view of each run: since then `latest` may have moved onto it (a new
 * extract), or a stage begun on it (`etl transform --run`, `etl load --run`, whose section the
 * listing did not see). Checked again, and removed, holding the run's start lock
 * (staging/start-lock.ts), so that no stage starts on it in between.
 */
async function removeUnlessChanged(run: ListedRun, stagingDir: string): Promise<string | typeof REMOVED | typeof GONE> {
  const paths = runPaths(stagingDir, run.runId);
  try {
    return await whileStarting(paths, 'clean', async () => {
      if ((await readLatest(stagingDir)) === run.runId) return '`latest` points at it';
      if ((await lstat(paths.dir).catch(() => null)) === null) return GONE;
      const now = (await readRunManifest(stagingDir, run.runId)).manifest;
      if (!isDeepStrictEqual(now, run.manifest)) {
        const atWork = stageAtWork(now);
        return atWork ? `its ${atWork.stage} is at work in etl process ${atWork.pid}` : 'its manifest changed while etl clean ran (a stage began or ended on it): run etl clean again to decide';
      }
      await rm(paths.dir, { recursive: true, force: true });
      return REMOVED;
    });
  } catch (error) {
    if (!(error instanceof StagingError) || error.code !== 'stage_running') throw error;
    return holderWork(await startLockHolder(paths));
  }
}

/** `*.partial` files of the staging folder nobody wrote for STALE_PARTIAL_MS: what a killed etl pack leaves. */
async function stalePartials(stagingDir: string, now: Date): Promise<RemovedPartial[]> {
  const found: RemovedPartial[] = [];
  const entries = await readdir(stagingDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.partial')) continue;
    const file = path.join(stagingDir, entry.name);
    const st = await stat(file).catch(() => null);
    const age = st === null ? 0 : now.getTime() - st.mtimeMs;
    if (st === null || age < STALE_PARTIAL_MS) continue;
    found.push({ file, bytes: st.size, reason: `an unfinished file left by an etl command that did not end (last written ${roughDuration(age)} ago)` });
  }
  return found;
}

/** `7d`, `12h`, `30m`, `2w`, `45s` (before now), or a date/instant such as `2026-01-01`. */
export function parseOlderThan(text: string, now: Date = new Date()): Date {
  const m = /^(\d+)\s*([smhdw])$/i.exec(text.trim());
  if (m) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd' | 'w'];
    const before = new Date(now.getTime() - Number(m[1]) * unit);
    // An age past what a date can hold (99999999999d) is no age a run can have.
    if (!Number.isNaN(before.getTime())) return before;
  }
  const date = parseInstant(text);
  if (date) return date;
  throw new UsageError('bad_older_than', `--older-than must be an age such as 7d, 12h, 2w or a date such as 2026-01-01, got "${text}"`);
}
