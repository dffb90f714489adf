// `etl status`: where the destination stands. Per table, the watermark the next extract starts from
// (etl_watermarks), whether its mapping changed since its last load (the fingerprint stored with the
// watermark) and so what the next run reads, and the last run applied to it with its figures
// (etl_runs); the staged runs that this database has not loaded; and the drift between
// pipeline.yaml and the live tables. Reads only: a database where `etl schema` never ran is a valid
// answer ("never loaded"), not an error.
import type pg from 'pg';
import { describePostgres, type PostgresConfig } from '../connect/config.ts';
import { connectPostgres, inTransaction } from '../connect/postgres.ts';
import type { PipelineModel } from '../model/types.ts';
import { tableFingerprint } from '../model/fingerprint.ts';
import { collectionFrom, planTableRead, truncatingTable, type MappingState, type TablePlan, type WatermarkReason } from '../model/read-plan.ts';
import { checkDrift, type DriftFinding } from '../schema/drift.ts';
import { StateReads, type LastRunRow, type WatermarkRow } from '../schema/state-reads.ts';
import { listRunIds, runPaths } from '../staging/run-folder.ts';
import { readRunManifest } from '../audit/runs.ts';
import { killedHint, killedStage, shownStagesOfRun, type ShownStageStatus } from '../staging/stage-writer.ts';

export interface StatusOptions {
  readonly model: PipelineModel;
  readonly postgres: PostgresConfig;
  readonly secrets?: readonly string[];
  readonly stagingDir: string;
  /** What may be printed about the database (e.g. "… via SSH"); default from the config. */
  readonly describePostgres?: string;
  readonly signal?: AbortSignal;
}

/** The figures load records per table (staging/manifest-load.ts LoadTableRecord), as stored. */
export type RunFigures = Readonly<Record<string, unknown>>;

export interface TableStatus {
  readonly table: string;
  readonly collection: string;
  readonly loaded: boolean;
  /** The instant the next incremental extract starts from; null: the next extract reads in full. */
  readonly watermark: { readonly at: string; readonly runId: string; readonly updatedAt: string } | null;
  readonly lastRun: {
    readonly runId: string;
    readonly loadedAt: string;
    readonly pipelineSha256: string;
    /** The run was loaded with another pipeline.yaml than the current one. */
    readonly pipelineChanged: boolean;
    readonly figures: RunFigures;
  } | null;
  /** How many runs were applied to this table in all. */
  readonly runsApplied: number;
  /**
   * The current mapping against the one the rows follow (etl_watermarks.fingerprint): unchanged,
   * changed, unrecorded (loaded by an etl before fingerprints), new (never loaded).
   */
  readonly mapping: MappingState;
  /** What the next `etl extract`/`etl run` (without --full/--since) reads for this table. */
  readonly next: NextRead;
  /** etl_pending: rows held back for a missing reference, NULLed references waiting, since when. */
  readonly pending: { readonly rows: number; readonly nulls: number; readonly since: string | null };
  /** etl_gone: documents whose rows left because they were gone, asked about by every incremental read until one comes back. */
  readonly gone: number;
}

export interface NextRead {
  /** null: the collection is read in full; else the instant the incremental read starts from. */
  readonly from: string | null;
  /** Why, for this table (model/read-plan.ts). */
  readonly reason: WatermarkReason;
  /** The collection is read in full because of these other tables it feeds (their reason applies). */
  readonly fullBecauseOf: readonly string[];
  /** Reason truncate_cascade: the table whose TRUNCATE … CASCADE empties this one. */
  readonly truncatedBy?: string;
}

export interface StagedRunStatus {
  readonly runId: string;
  /**
   * Per stage: done, failed, running, killed (running, its process gone; or, in a run whose process died,
   * not recorded yet its folder holds files: staging/stage-writer.ts shownStagesOfRun), or null.
   */
  readonly stages: { readonly extract: ShownStageStatus | null; readonly transform: ShownStageStatus | null; readonly load: ShownStageStatus | null };
  /** What load did, as the manifest says (`done`, `dry_run`, `failed`, `running`, `killed`), or `killed` for a load etl run had begun and not recorded when its process died (its files say so), or null (never ran). */
  readonly manifestLoad: 'done' | 'dry_run' | ShownStageStatus | null;
  /** When a stage was killed: what recovers the run and what `etl clean` does with it. */
  readonly hint: string | null;
  /** Tables the run holds (transformed ones, else extracted ones). */
  readonly tables: readonly string[];
  /** Of those, tables etl_runs records as loaded from this run. */
  readonly loadedTables: readonly string[];
  /** The stage to run next on it: `transform`, `load`, or null when its extract is not complete. */
  readonly next: 'transform' | 'load' | null;
  /** A newer run set one of its tables' watermark: etl load refuses it (load/older-run.ts). */
  readonly olderThanLoaded: boolean;
  /** Its tables whose watermark a newer run set: the ones etl load refuses; `--tables` may load the rest. */
  readonly refusedTables: readonly string[];
  /**
   * The command to run next (what `etl status` prints): `etl transform --run X`, `etl load --run X`
   * (with `--tables` when load refuses some of its tables), `etl run` when it refuses them all, or null.
   */
  readonly nextCommand: string | null;
  /** Why its manifest could not be read. */
  readonly problem: string | null;
}

export interface StatusReport {
  readonly destination: string;
  readonly staging: string;
  readonly pipeline: { readonly file: string; readonly sha256: string };
  /** etl_watermarks and etl_runs exist. */
  readonly stateTables: boolean;
  /** Set when nothing was ever loaded here, with what to do. */
  readonly notice: string | null;
  readonly tables: readonly TableStatus[];
  /** Tables the state tables mention that pipeline.yaml no longer has. */
  readonly unknownTables: readonly string[];
  /** Staged runs this database has not (completely) loaded, newest first. */
  readonly unloadedRuns: readonly StagedRunStatus[];
  readonly stagedRuns: number;
  readonly drift: { readonly clean: boolean; readonly findings: readonly DriftFinding[] };
}

export async function runStatus(options: StatusOptions): Promise<StatusReport> {
  options.signal?.throwIfAborted();
  const client = await connectPostgres(options.postgres, options.secrets ?? []);
  try {
    return await inTransaction(client, () => statusOf(client, options));
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function statusOf(client: pg.Client, options: StatusOptions): Promise<StatusReport> {
  const { model } = options;
  const state = await readStoredState(await StateReads.open(client));
  const tables = tableStatuses(model, state);
  const known = new Set(model.loadOrder);
  const unknownTables = [...new Set([...state.watermarks.keys(), ...state.last.keys()])].filter((t) => !known.has(t)).sort();

  // etl load refuses a run older than the run that set a table's watermark (load/older-run.ts): a
  // later run that moved no watermark (--since after it) does not make older runs stale.
  const watermarkRuns = new Map(tables.filter((t) => t.watermark).map((t) => [t.table, t.watermark!.runId]));
  const { runs, total } = await unloadedRuns(options.stagingDir, state.stateTables ? state.applied : null, watermarkRuns);

  options.signal?.throwIfAborted();
  const drift = await checkDrift(client, model);
  return {
    destination: options.describePostgres ?? describePostgres(options.postgres),
    staging: options.stagingDir,
    pipeline: { file: model.file, sha256: model.sha256 },
    stateTables: state.stateTables,
    notice: neverLoadedNotice(state.stateTables, tables),
    tables,
    unknownTables,
    unloadedRuns: runs,
    stagedRuns: total,
    drift: { clean: drift.clean, findings: drift.findings },
  };
}

/** What the state tables hold; empty where they do not exist (`stateTables` false: etl_watermarks or etl_runs missing). */
interface StoredState {
  readonly stateTables: boolean;
  readonly watermarks: ReadonlyMap<string, WatermarkRow>;
  readonly last: ReadonlyMap<string, LastRunRow>;
  readonly applied: ReadonlyMap<string, ReadonlySet<string>>;
  readonly pending: ReadonlyMap<string, TableStatus['pending']>;
  readonly gone: ReadonlyMap<string, number>;
}

async function readStoredState(state: StateReads): Promise<StoredState> {
  const watermarkRows = await state.watermarkRows(null);
  const lastRuns = await state.lastRuns(null);
  return {
    stateTables: watermarkRows !== null && lastRuns !== null,
    watermarks: new Map((watermarkRows ?? []).map((w) => [w.table, w])),
    last: lastRuns ?? new Map<string, LastRunRow>(),
    applied: (await state.appliedRuns()) ?? new Map<string, Set<string>>(),
    pending: (await state.pendingCounts()) ?? new Map<string, TableStatus['pending']>(),
    gone: (await state.goneCounts()) ?? new Map<string, number>(),
  };
}

/** Each table of pipeline.yaml in load order: its watermark, last run, next read and what waits. */
function tableStatuses(model: PipelineModel, state: StoredState): TableStatus[] {
  const { watermarks, last, pending, gone } = state;
  const next = nextReads(model, watermarks, last);
  return model.loadOrder.map((name) => {
    const row = last.get(name);
    return {
      table: name,
      collection: model.tables.get(name)!.collection,
      loaded: row !== undefined,
      watermark: watermarkOf(watermarks.get(name)),
      lastRun: row
        ? {
            runId: row.runId,
            loadedAt: row.loadedAt.toISOString(),
            pipelineSha256: row.pipelineSha256,
            pipelineChanged: row.pipelineSha256 !== model.sha256,
            figures: row.summary,
          }
        : null,
      runsApplied: row ? row.applied : 0,
      ...next.get(name)!,
      pending: pending.get(name) ?? { rows: 0, nulls: 0, since: null },
      gone: gone.get(name) ?? 0,
    };
  });
}

function neverLoadedNotice(stateTables: boolean, tables: readonly TableStatus[]): string | null {
  if (!stateTables) return 'never loaded: the state tables (etl_watermarks, etl_runs) do not exist; run `etl schema` (or `etl load`, which creates them)';
  return tables.some((t) => t.loaded) ? null : 'never loaded: no run was applied to this database yet';
}

const watermarkOf = (w: WatermarkRow | undefined) => (w ? { at: w.watermark.toISOString(), runId: w.runId, updatedAt: w.updatedAt.toISOString() } : null);

/** Per table: its mapping state and what the next plain run reads (the plan extract makes). */
function nextReads(model: PipelineModel, stored: ReadonlyMap<string, WatermarkRow>, last: ReadonlyMap<string, LastRunRow>): Map<string, { mapping: MappingState; next: NextRead }> {
  const plans = new Map<string, TablePlan>();
  for (const name of model.loadOrder) {
    const table = model.tables.get(name)!;
    const w = stored.get(name);
    plans.set(
      name,
      planTableRead(table, {
        full: false,
        since: null,
        globalThreshold: model.settings.dateThreshold,
        stored: w ? { watermark: w.watermark, fingerprint: w.fingerprint, lastPipelineSha256: last.get(name)?.pipelineSha256 ?? null } : null,
        fingerprint: tableFingerprint(table, model.settings),
        pipelineSha256: model.sha256,
        checkMapping: true,
        truncatedBy: truncatingTable(model, name, model.loadOrder),
      }),
    );
  }
  const out = new Map<string, { mapping: MappingState; next: NextRead }>();
  for (const collection of model.collections) {
    const tablePlans = collection.tables.map((t) => plans.get(t)!);
    const from = collectionFrom(tablePlans);
    for (const p of tablePlans) {
      const fullBecauseOf = from === null && p.from !== null ? tablePlans.filter((o) => o.from === null).map((o) => o.table) : [];
      out.set(p.table, { mapping: p.mapping, next: { from: from?.toISOString() ?? null, reason: p.reason, fullBecauseOf, ...(p.truncatedBy ? { truncatedBy: p.truncatedBy } : {}) } });
    }
  }
  return out;
}

/**
 * Staged runs not loaded into this database. With state tables, etl_runs decides (a run loaded
 * into another database is still unloaded here); without them, nothing was loaded here at all.
 */
async function unloadedRuns(
  stagingDir: string,
  applied: ReadonlyMap<string, ReadonlySet<string>> | null,
  watermarkRuns: ReadonlyMap<string, string>,
): Promise<{ runs: StagedRunStatus[]; total: number }> {
  const ids = await listRunIds(stagingDir);
  const runs: StagedRunStatus[] = [];
  for (const runId of ids) {
    const { manifest, problem } = await readRunManifest(stagingDir, runId);
    const s = manifest?.stages ?? {};
    // As etl runs and etl report show them: a stage etl run had started, not recorded when its process died, is killed too.
    const stages = await shownStagesOfRun(runPaths(stagingDir, runId), manifest);
    const tables = s.transform?.status === 'done' ? Object.keys(s.transform.tables ?? {}) : s.extract?.tables ?? Object.values(s.extract?.collections ?? {}).flatMap((c) => c.tables ?? []);
    const loadedTables = applied ? [...(applied.get(runId) ?? [])].sort() : [];
    const complete = tables.length > 0 && tables.every((t) => loadedTables.includes(t));
    if (applied && (complete || (tables.length === 0 && loadedTables.length > 0))) continue;
    const manifestLoad = s.load?.status === 'done' ? (s.load.dry_run ? 'dry_run' : 'done') : stages.load;
    const killed = killedStage(stages);
    const next = stages.extract !== 'done' ? null : stages.transform === 'done' ? 'load' : 'transform';
    const refusedTables = tables.filter((t) => {
      const setBy = watermarkRuns.get(t);
      return setBy !== undefined && setBy > runId;
    });
    const olderThanLoaded = refusedTables.length > 0;
    const nextCommand = problem ? null : nextCommandOf(runId, next, tables, loadedTables, refusedTables);
    runs.push({ runId, stages, manifestLoad, hint: killed ? killedHint(killed, runId) : null, tables, loadedTables, next, olderThanLoaded, refusedTables, nextCommand, problem });
  }
  return { runs, total: ids.length };
}

/** The load a staged run can still have: never one etl load refuses (a newer run loaded those tables). */
function nextCommandOf(runId: string, next: StagedRunStatus['next'], tables: readonly string[], loaded: readonly string[], refused: readonly string[]): string | null {
  if (next === 'transform') return `etl transform --run ${runId}`;
  if (next !== 'load') return null;
  if (refused.length === 0) return `etl load --run ${runId}`;
  const rest = tables.filter((t) => !refused.includes(t) && !loaded.includes(t));
  return rest.length > 0 ? `etl load --run ${runId} --tables ${rest.join(',')}` : 'etl run';
}

/** The width `etl status` keeps to. */
const WIDTH = 100;

/** `label: a, b, c` wrapped at WIDTH columns, continuation lines indented under the first name. */
function wrapped(label: string, names: readonly string[]): string[] {
  const lines: string[] = [];
  let line = `  ${label}: `;
  const indent = ' '.repeat(line.length);
  for (const [i, name] of names.entries()) {
    const piece = `${name}${i < names.length - 1 ? ',' : ''}`;
    if (line.length + piece.length > WIDTH && line.trim().length > label.length + 1) {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${piece} `;
  }
  lines.push(line.trimEnd());
  return lines;
}

/** Why the next run reads a table the way it does, in a few words (the groups `etl status` prints). */
function nextReadLabel(t: Pick<TableStatus, 'mapping' | 'next'>): string {
  const { next } = t;
  if (next.reason === 'mapping_changed') {
    const why = t.mapping === 'unrecorded' ? 'loaded by an older etl with another pipeline.yaml' : t.mapping === 'partial' ? 'never read in full' : 'mapping changed';
    return `full read, ${why}`;
  }
  if (next.reason === 'never_loaded') return 'full read, never loaded';
  if (next.reason === 'force_reimport') return 'full read, force_reimport';
  if (next.reason === 'truncate_cascade') return `full read, emptied by TRUNCATE ${next.truncatedBy} CASCADE`;
  if (next.from === null) return `full read with ${next.fullBecauseOf.join(', ')} (same collection)`;
  return 'incremental';
}

/**
 * What the next `etl run` reads, grouped: `full read, mapping changed: users, …`, within 100 columns.
 * Incremental tables are counted, not listed (their watermark is in the table above).
 */
export function renderNextReads(tables: readonly TableStatus[]): string[] {
  const groups = new Map<string, string[]>();
  for (const t of tables) {
    const label = nextReadLabel(t);
    groups.set(label, [...(groups.get(label) ?? []), t.table]);
  }
  const out = ['next run (etl run / etl extract, without --full or --since):'];
  for (const [label, names] of groups) {
    if (label === 'incremental') continue;
    out.push(...wrapped(label, names));
  }
  const incremental = groups.get('incremental')?.length ?? 0;
  if (incremental > 0) out.push(`  incremental from the watermark: ${incremental} table(s)`);
  const gone = tables.filter((t) => t.gone > 0 && t.next.from !== null);
  if (gone.length > 0) out.push(...wrapped('documents found gone, asked about whatever their dates', gone.map((t) => `${t.table} ${t.gone}`)));
  return out;
}

/**
 * What waits in etl_pending, a line per table (within 100 columns): rows held back because a
 * referenced row is missing (or another row holds their value of a unique constraint), and references
 * set NULL until it exists; each lands with the load that brings the referenced row (or leaves the
 * value to it alone). Nothing when nothing waits.
 */
export function renderPending(tables: readonly TableStatus[]): string[] {
  const waiting = tables.filter((t) => t.pending.rows + t.pending.nulls > 0);
  if (waiting.length === 0) return [];
  const out = ['pending (until a missing referenced row exists, or their unique value is theirs alone):'];
  for (const t of waiting) {
    const parts = [t.pending.rows > 0 ? `${t.pending.rows} row(s) held back` : '', t.pending.nulls > 0 ? `${t.pending.nulls} reference(s) NULL` : ''].filter(Boolean);
    out.push(`  ${t.table}: ${parts.join(', ')}${t.pending.since ? `, since ${t.pending.since.slice(0, 16).replace('T', ' ')} UTC` : ''}`);
  }
  return out;
}
