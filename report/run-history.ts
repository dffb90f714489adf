// The history of runs: every staged run (from its manifest) and every run the ledger recorded as
// loaded (also those whose staged files were cleaned), newest first, one entry per run.
import { listRuns, runIdTime, type RunSummary, type StageSpan } from '../audit/runs.ts';
import type { StageName } from '../staging/manifest.ts';
import type { StageFailure } from '../staging/stage-writer.ts';
import type { Ledger, LedgerRun } from './ledger.ts';

export interface RunHistoryEntry {
  readonly run_id: string;
  /** When the run was extracted (its id), ISO 8601. */
  readonly started_at: string;
  readonly source: string | null;
  /** Per stage: done, failed, running, killed (running, its process gone), or null (never ran / unknown). */
  readonly stages: Record<StageName, string | null>;
  readonly stages_done: readonly StageName[];
  /** When a stage was killed: what recovers the run and what `etl clean` does with it. */
  readonly hint: string | null;
  /** The stages that failed: the error each recorded, and what to do. */
  readonly failures: readonly StageFailure[];
  /** Per stage: seconds from start to end, when known. */
  readonly seconds: Record<StageName, number | null>;
  /** Per stage: its start and end in seconds from the run's first stage's start, when known (audit/runs.ts). */
  readonly stage_spans: Record<StageName, StageSpan | null>;
  /** The run's wall time: its first stage's start to its last stage's end, when known. */
  readonly wall_seconds: number | null;
  readonly documents: number | null;
  readonly rows: number | null;
  readonly rejects: number | null;
  /** Rows load kept pending, when load records that figure. */
  readonly pending: number | null;
  /** Loaded, wholly or in part (not a dry run), by its manifest or by the ledger. */
  readonly loaded: boolean;
  /** Tables transform staged, when its manifest says. */
  readonly tables: number | null;
  /** How many tables a load of it committed (its manifest, or the ledger's rows of it when more). */
  readonly loaded_tables: number | null;
  /** Tables of the pipeline.yaml the run was staged with, when its folder says (audit/runs.ts). */
  readonly pipeline_tables: number | null;
  /** When the ledger says it was loaded; null when the ledger was not read or does not have it. */
  readonly loaded_at: string | null;
  /** The staged folder still exists. */
  readonly staged: boolean;
  readonly latest: boolean;
  readonly bytes: number | null;
  readonly problem: string | null;
}

export interface RunHistory {
  readonly staging: string;
  readonly latest: string | null;
  readonly ledger: { readonly read: boolean; readonly destination: string | null; readonly problem: string | null };
  readonly runs: readonly RunHistoryEntry[];
}

export async function runHistory(options: { stagingDir: string; ledger: Ledger | null }): Promise<RunHistory> {
  const staged = await listRuns({ stagingDir: options.stagingDir });
  const ledger = new Map((options.ledger?.runs ?? []).map((r) => [r.run_id, r]));
  const entries = staged.runs.map((s) => fromManifest(s, ledger.get(s.run_id) ?? null));
  const stagedIds = new Set(staged.runs.map((r) => r.run_id));
  for (const l of ledger.values()) if (!stagedIds.has(l.run_id)) entries.push(fromLedger(l));
  entries.sort((a, b) => (a.run_id < b.run_id ? 1 : a.run_id > b.run_id ? -1 : 0));
  return {
    staging: staged.staging,
    latest: staged.latest,
    ledger: { read: options.ledger !== null && options.ledger.problem === null, destination: options.ledger?.destination ?? null, problem: options.ledger?.problem ?? null },
    runs: entries,
  };
}

function fromManifest(s: RunSummary, l: LedgerRun | null): RunHistoryEntry {
  // A load killed after its COMMIT, before its manifest's record: the ledger's tables and their rejects are what happened.
  const ledgerKnowsMore = l !== null && l.tables > s.loaded_tables;
  return {
    run_id: s.run_id,
    started_at: s.started_at,
    source: s.source,
    stages: s.stages,
    stages_done: s.stages_done,
    hint: s.hint,
    failures: s.failures,
    seconds: s.seconds,
    stage_spans: s.stage_spans,
    wall_seconds: s.wall_seconds,
    documents: s.documents,
    rows: s.rows,
    rejects: s.rejects === null || !ledgerKnowsMore ? s.rejects : s.rejects - s.load_rejected + l.rejected,
    pending: s.pending ?? l?.pending ?? null,
    loaded: s.loaded || s.loaded_tables > 0 || l !== null,
    tables: s.tables,
    loaded_tables: Math.max(s.loaded_tables, l?.tables ?? 0),
    pipeline_tables: s.pipeline_tables,
    loaded_at: l?.loaded_at ?? null,
    staged: true,
    latest: s.latest,
    bytes: s.bytes,
    problem: s.problem,
  };
}

/**
 * The `loaded` column in words: yes, partly (n of m tables: a `--tables` load, or the rest's failed),
 * dry run, no, or damaged (the manifest unreadable); "(cleaned)" once the staged folder is gone. A
 * cleaned run whose ledger entries do not say how many tables it staged (recorded before load
 * wrote `run_tables`) says into how many it was loaded, not "yes": that may be some of them.
 */
export function loadedText(r: RunHistoryEntry): string {
  if (r.problem) return 'damaged';
  if (!r.loaded) return r.stages.load === 'done' ? 'dry run' : 'no';
  const loaded = loadedTables(r.loaded_tables, r.tables, r.pipeline_tables);
  return r.staged ? loaded : `${loaded} (cleaned)`;
}

/**
 * A loaded run: yes, partly (n of m tables), or into n tables when m is not known; every table it
 * staged but only some of the pipeline's (a `--tables` extract or transform): yes (n of p pipeline tables).
 */
function loadedTables(loaded: number | null, staged: number | null, pipeline: number | null): string {
  if (loaded === null) return 'yes';
  if (staged === null) return `into ${loaded} table${loaded === 1 ? '' : 's'}`;
  if (loaded < staged) return `partly (${loaded} of ${staged} tables)`;
  return pipeline !== null && loaded < pipeline ? `yes (${loaded} of ${pipeline} pipeline tables)` : 'yes';
}

/** A run only the ledger remembers: its staged folder was cleaned (or made on another machine). */
function fromLedger(l: LedgerRun): RunHistoryEntry {
  const t = runIdTime(l.run_id);
  return {
    run_id: l.run_id,
    started_at: Number.isNaN(t.getTime()) ? l.loaded_at : t.toISOString(),
    source: null,
    stages: { extract: null, transform: null, load: 'done' },
    stages_done: ['load'],
    hint: null,
    failures: [],
    seconds: { extract: null, transform: null, load: null },
    stage_spans: { extract: null, transform: null, load: null },
    wall_seconds: null,
    documents: null,
    rows: l.rows,
    // Extract's and transform's rejects with load's; a ledger older than that figure has load's only: not said.
    rejects: l.rejected_before_load === null ? null : l.rejected_before_load + l.rejected,
    pending: l.pending,
    loaded: true,
    tables: l.staged_tables,
    loaded_tables: l.tables,
    // The ledger records the tables a run staged, not its pipeline's.
    pipeline_tables: null,
    loaded_at: l.loaded_at,
    staged: false,
    latest: false,
    bytes: null,
    problem: null,
  };
}
