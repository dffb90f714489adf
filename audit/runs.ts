// `etl runs`: the staged runs, newest first, each summarised from its manifest (report/run-history.ts
// adds what the ledger in PostgreSQL knows).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { EtlError } from '../errors/etl-error.ts';
import { printableLine } from '../errors/printable.ts';
import { redactText } from '../errors/redact.ts';
import { readManifest, rejectedBeforeLoad, type Manifest, type StageName } from '../staging/manifest.ts';
import { committedLoad, type LoadSection } from '../staging/manifest-load.ts';
import { LATEST_FILE, listRunIds, runPaths } from '../staging/run-folder.ts';
import { failedStages, killedHint, killedStage, shownStagesOfRun, type ShownStageStatus, type StageFailure } from '../staging/stage-writer.ts';
import { folderBytes } from './folder-walk.ts';
import { STAGES } from './manifest-files.ts';

export interface RunSummary {
  run_id: string;
  /** When the run started (from its id), ISO 8601. */
  started_at: string;
  /**
   * Per stage: done, failed, running, killed (running, its process gone; or, in a run whose process
   * died, not recorded yet its folder holds files: `etl run` had started it), or null (never ran).
   */
  stages: Record<StageName, ShownStageStatus | null>;
  stages_done: StageName[];
  /** When a stage was killed: what recovers the run and what `etl clean` does with it. */
  hint: string | null;
  /** The stages that failed: the error each recorded, and what to do. */
  failures: StageFailure[];
  /** Documents extracted (all collections); null when extract never recorded any. */
  documents: number | null;
  /** CSV rows written by transform (all tables). */
  rows: number | null;
  /** Documents extract could not stage, rows rejected by transform and by load. */
  rejects: number | null;
  /** Of those, the rows rejected by the load this manifest records (its committed tables). */
  load_rejected: number;
  /** Where the documents came from (no credentials), as the manifest says. */
  source: string | null;
  /** Per stage: seconds from start to end (null: the stage never ended). */
  seconds: Record<StageName, number | null>;
  /**
   * Per stage: when it started and ended, in seconds from the start of the run's first stage (null:
   * the stage never ended). `etl run` overlaps its stages: their seconds add up to more than the run took.
   */
  stage_spans: Record<StageName, StageSpan | null>;
  /** From the first stage's start to the last stage's end (null: no stage ended). */
  wall_seconds: number | null;
  /** Rows waiting in etl_pending after the run's load, every table (the load section's `pending`), when load records any. */
  pending: number | null;
  /** Load finished and was not a dry run. */
  loaded: boolean;
  /** Tables transform staged (null: it never recorded any), and how many of them a load committed (committedTables). */
  tables: number | null;
  loaded_tables: number;
  /**
   * Tables of the pipeline.yaml the run was extracted and transformed with (its copy in the run
   * folder): more than `tables` when a `--tables` extract or transform staged some of them. Null when
   * the copy cannot be read, or the transform used another pipeline.yaml (--allow-pipeline-change).
   */
  pipeline_tables: number | null;
  /** `latest` points at this run. */
  latest: boolean;
  bytes: number;
  /** Why the manifest could not be read, when it could not. */
  problem: string | null;
}

export interface StageSpan {
  from: number;
  to: number;
}

export interface RunsReport {
  staging: string;
  latest: string | null;
  runs: RunSummary[];
}

export function runIdTime(runId: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(runId);
  if (!m) return new Date(NaN);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
}

export async function readLatest(stagingDir: string): Promise<string | null> {
  try {
    return (await readFile(path.join(stagingDir, LATEST_FILE), 'utf8')).trim() || null;
  } catch {
    return null;
  }
}

/**
 * The tables a real load of the run committed: a `--tables` load's, a failed load's kept from an
 * earlier one (load/load-record.ts), and those a load found already applied.
 */
export function committedTables(manifest: Manifest | null): string[] {
  const load = committedLoad(manifest?.stages?.load);
  if (!load) return [];
  return [...new Set([...Object.keys(load.tables ?? {}), ...(load.skipped ?? []).map((x) => x.table)])].sort();
}

export function isLoaded(manifest: Manifest | null): boolean {
  const load = manifest?.stages?.load;
  return load?.status === 'done' && load.dry_run !== true;
}

function summarise(runId: string, manifest: Manifest | null, stages: Record<StageName, ShownStageStatus | null>, extra: { latest: boolean; bytes: number; problem: string | null; pipelineTables: number | null }): RunSummary {
  const s = manifest?.stages ?? {};
  const killed = killedStage(stages);
  const total = (values: number[] | null) => (values === null ? null : values.reduce((a, b) => a + b, 0));
  const transformTables = s.transform ? Object.values(s.transform.tables ?? {}) : null;
  // A failed load keeps the tables an earlier load of the run committed (load/load-record.ts).
  const loadTables = Object.values(s.load?.tables ?? {});
  const loadRejected = loadTables.reduce((a, t) => a + (t.rejected ?? 0), 0);
  return {
    run_id: runId,
    started_at: runIdTime(runId).toISOString(),
    stages,
    stages_done: STAGES.filter((st) => stages[st] === 'done'),
    hint: killed ? killedHint(killed, runId) : null,
    failures: failedStages(manifest, runId),
    documents: total(s.extract ? Object.values(s.extract.collections ?? {}).map((c) => c.records ?? 0) : null),
    rows: total(transformTables ? transformTables.map((t) => t.rows ?? 0) : null),
    rejects: transformTables === null || !manifest ? null : rejectedBeforeLoad(manifest) + loadRejected,
    load_rejected: loadRejected,
    source: manifest?.source?.description ?? null,
    seconds: { extract: stageSeconds(s.extract), transform: stageSeconds(s.transform), load: stageSeconds(s.load) },
    ...stageSpans(manifest),
    pending: runPending(s.load),
    loaded: isLoaded(manifest),
    tables: transformTables === null ? null : transformTables.length,
    loaded_tables: committedTables(manifest).length,
    pipeline_tables: s.transform?.pipeline_changed ? null : extra.pipelineTables,
    latest: extra.latest,
    bytes: extra.bytes,
    problem: extra.problem,
  };
}

/** Each ended stage's start and end on the run's own clock (seconds from its first stage's start), and the wall time they cover. */
function stageSpans(manifest: Manifest | null): Pick<RunSummary, 'stage_spans' | 'wall_seconds'> {
  const times = STAGES.map((stage) => {
    const s = manifest?.stages?.[stage];
    const start = Date.parse(s?.started_at ?? '');
    const end = Date.parse(s?.ended_at ?? '');
    return { stage, start, end, ended: Number.isFinite(start) && Number.isFinite(end) };
  });
  const ended = times.filter((x) => x.ended);
  const stage_spans: RunSummary['stage_spans'] = { extract: null, transform: null, load: null };
  if (ended.length === 0) return { stage_spans, wall_seconds: null };
  const t0 = Math.min(...ended.map((x) => x.start));
  for (const x of ended) stage_spans[x.stage] = { from: (x.start - t0) / 1000, to: (x.end - t0) / 1000 };
  return { stage_spans, wall_seconds: (Math.max(...ended.map((x) => x.end)) - t0) / 1000 };
}

function stageSeconds(section: { started_at?: string; ended_at?: string | null } | undefined): number | null {
  if (!section?.started_at || !section.ended_at) return null;
  const ms = Date.parse(section.ended_at) - Date.parse(section.started_at);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/**
 * Rows waiting in etl_pending after the run's load, every table (a --tables run's unstaged tables
 * too); a manifest older than that figure has its tables' figures only. Null when no load of it
 * ended, or none committed (a failed load keeps the figure of one that committed before it).
 */
function runPending(load: LoadSection | undefined): number | null {
  if (!load?.pending && load?.status !== 'done') return null;
  return runPendingCount(load.pending, Object.values(load.tables ?? {}).map((t) => t.pending));
}

/**
 * What etl_pending held after a run's last load: its run-level figure (`pending` in the manifest,
 * `run_pending` in etl_runs), else, recorded before that figure was, the total of its tables' figures.
 */
export function runPendingCount(runLevel: unknown, perTable: readonly unknown[]): number | null {
  return runLevel !== undefined && runLevel !== null ? pendingCount(runLevel) : optionalTotal(perTable.map(pendingCount));
}

/**
 * Rows waiting in etl_pending after a load (held back, or loaded with a NULL reference), from load's
 * `pending` figures ({rows, nulls, …}); null when load did not record any.
 */
export function pendingCount(pending: unknown): number | null {
  if (typeof pending === 'number') return pending;
  if (pending === null || typeof pending !== 'object') return null;
  const p = pending as { rows?: unknown; nulls?: unknown };
  return (typeof p.rows === 'number' ? p.rows : 0) + (typeof p.nulls === 'number' ? p.nulls : 0);
}

/** The sum of the figures that are numbers; null when none is (the field is not recorded). */
export function optionalTotal(values: readonly unknown[]): number | null {
  const numbers = values.filter((v): v is number => typeof v === 'number');
  return numbers.length === 0 ? null : numbers.reduce((a, b) => a + b, 0);
}

/**
 * How many tables a pipeline.yaml names (the keys of its `tables` map); null when it cannot be read.
 * Counted, not resolved: a run's copy is listed as it is, whatever this etl would say of it.
 */
async function pipelineTableCount(file: string): Promise<number | null> {
  try {
    const tables = (parse(await readFile(file, 'utf8')) as { tables?: unknown } | null)?.tables;
    return tables !== null && typeof tables === 'object' && !Array.isArray(tables) ? Object.keys(tables).length : null;
  } catch {
    return null;
  }
}

/** A damaged manifest's problem is printed as a line of a listing (etl runs, status, clean): it may quote the file's keys. */
const PROBLEM_CHARS = 300;

/**
 * Reads one run's manifest, or says why it cannot: scrubbed of credentials, its controls escaped and
 * cut short, since the refusal quotes what the damaged file holds.
 */
export async function readRunManifest(stagingDir: string, runId: string): Promise<{ manifest: Manifest | null; problem: string | null }> {
  try {
    return { manifest: await readManifest(runPaths(stagingDir, runId)), problem: null };
  } catch (error) {
    if (error instanceof EtlError) return { manifest: null, problem: printableLine(redactText(error.message), PROBLEM_CHARS) };
    throw error;
  }
}

export async function listRuns(options: { stagingDir: string }): Promise<RunsReport> {
  const { stagingDir } = options;
  const latest = await readLatest(stagingDir);
  const runs: RunSummary[] = [];
  for (const runId of await listRunIds(stagingDir)) {
    const { manifest, problem } = await readRunManifest(stagingDir, runId);
    const paths = runPaths(stagingDir, runId);
    runs.push(summarise(runId, manifest, await shownStagesOfRun(paths, manifest), { latest: runId === latest, bytes: await folderBytes(paths.dir), problem, pipelineTables: await pipelineTableCount(paths.pipelineCopy) }));
  }
  return { staging: stagingDir, latest, runs };
}
