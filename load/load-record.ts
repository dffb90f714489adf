// The load section of manifest.json: written `running` before the transaction changes anything,
// `done` with every figure once it committed (the same figures the ledger holds), `failed` with the
// error otherwise. A load whose transaction committed but whose process died before the manifest
// was written is recovered from the ledger by the next attempt: its rejects files (left as .partial)
// are kept when their bytes are the ones the ledger recorded, and the section is rebuilt.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FileRecord } from '../staging/manifest.ts';
import { readManifest, updateManifest } from '../staging/manifest.ts';
import { committedLoad, type LoadSection, type LoadTableRecord } from '../staging/manifest-load.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { currentWriter, writerAtWork } from '../staging/stage-writer.ts';
import type { LoadReport, TableLoadReport } from './options.ts';

export function section(status: LoadSection['status'], report: Pick<LoadReport, 'dryRun' | 'startedAt'>, tables: Record<string, LoadTableRecord> = {}): LoadSection {
  return { status, started_at: report.startedAt, ended_at: null, error: null, dry_run: report.dryRun, already_applied: false, tables, skipped: [] };
}

/** What the manifest and the ledger record of a table's load. */
export function tableRecord(r: TableLoadReport, rejects: FileRecord | null): LoadTableRecord {
  return {
    staged: r.staged,
    rows: r.rows,
    inserted: r.inserted,
    updated: r.updated,
    unchanged: r.unchanged,
    deleted: r.deleted,
    rejected: r.rejected,
    nulled: r.nulled,
    orphaned: r.orphaned,
    duplicates: r.duplicates,
    truncated: [...r.truncated],
    rejects,
    pending: { ...r.pending },
  };
}

export async function markRunning(paths: RunPaths, destination: string, report: Pick<LoadReport, 'dryRun' | 'startedAt'>): Promise<void> {
  await updateManifest(paths, (m) => {
    m.destination = { description: destination };
    m.stages.load = { ...section('running', report), writer: currentWriter() };
  });
}

/**
 * The failed load; tables an earlier load of this run committed keep their record, and what
 * etl_pending held after it (committedLoad: those tables landed, etl_runs says so).
 */
export async function markFailed(paths: RunPaths, report: Pick<LoadReport, 'dryRun' | 'startedAt'>, error: { code: string; message: string }, previous: LoadSection | undefined): Promise<void> {
  const committed = committedLoad(previous);
  await updateManifest(paths, (m) => {
    m.stages.load = { ...section('failed', report, { ...committed?.tables }), ...(committed?.pending ? { pending: { ...committed.pending } } : {}), ended_at: new Date().toISOString(), error };
  });
}

/**
 * The finished load; tables an earlier load of this run applied (--tables) stay in the record
 * (`previous`: the section as it was before this load marked itself running).
 */
export async function markDone(paths: RunPaths, report: LoadReport, rejects: ReadonlyMap<string, FileRecord>, previous: LoadSection | undefined): Promise<void> {
  await updateManifest(paths, (m) => {
    const kept = report.dryRun ? {} : (committedLoad(previous)?.tables ?? {});
    const tables: Record<string, LoadTableRecord> = { ...kept };
    for (const r of report.tables) tables[r.table] = tableRecord(r, rejects.get(r.table) ?? null);
    m.stages.load = {
      ...section('done', report, tables),
      ended_at: report.endedAt,
      skipped: report.skipped.map((s) => ({ table: s.table, loaded_at: s.loadedAt })),
      truncated: [...report.truncated],
      deletions: report.deletions ? (structuredClone(report.deletions) as LoadSection['deletions']) : null,
      settled: report.settled.map((s) => ({ ...s, pending: { ...s.pending } })),
      pending: report.pending ? { ...report.pending } : null,
      warnings: [...report.warnings],
    };
  });
}

interface AppliedTable {
  readonly loadedAt: string;
  readonly summary: unknown;
}

/**
 * A re-load of an applied run keeps the manifest's record of the load that applied it. If that load
 * committed without writing its record (a crash in between), the record is rebuilt from the ledger.
 * The record as it is now, not as this load planned from: a load waiting for the lock planned while
 * the one that applied the run was still at work, and that one records its own load (the rebuilt
 * record replaced it, its start and duration this load's).
 */
export async function recordAlreadyApplied(paths: RunPaths, report: Pick<LoadReport, 'startedAt' | 'dryRun' | 'destination' | 'endedAt' | 'skipped' | 'warnings'>, applied: ReadonlyMap<string, AppliedTable>): Promise<void> {
  if (recordedElsewhere((await readManifest(paths)).stages.load)) return;
  const tables: Record<string, LoadTableRecord> = {};
  for (const [table, a] of applied) tables[table] = await recoveredRecord(paths, table, a.summary as LoadTableRecord, report.warnings as string[]);
  const recovered = Object.keys(tables).length > 0;
  // etl_pending after the run's last load, as its ledger entries recorded it (load/index.ts recordLedger).
  const last = [...applied.values()].sort((a, b) => (a.loadedAt < b.loadedAt ? -1 : a.loadedAt > b.loadedAt ? 1 : 0)).at(-1);
  const pending = (last?.summary as { run_pending?: LoadSection['pending'] } | undefined)?.run_pending;
  await updateManifest(paths, (m) => {
    if (recordedElsewhere(m.stages.load)) return;
    m.destination = { description: report.destination };
    m.stages.load = {
      ...section('done', report, tables),
      ended_at: report.endedAt,
      already_applied: !recovered,
      ...(recovered ? { recovered_from_ledger: true } : {}),
      ...(pending ? { pending: { ...pending } } : {}),
      skipped: report.skipped.map((s) => ({ table: s.table, loaded_at: s.loadedAt })),
      warnings: [...report.warnings],
    };
  });
}

/** A real load's record, or one a live load of this host is at work on (it writes its own). */
function recordedElsewhere(load: LoadSection | undefined): boolean {
  return (load?.status === 'done' && !load.dry_run) || (load?.status === 'running' && writerAtWork(load.writer));
}

async function recoveredRecord(paths: RunPaths, table: string, summary: LoadTableRecord, warnings: string[]): Promise<LoadTableRecord> {
  const { deletions: _d, run_pending: _p, run_tables: _t, run_rejected_before_load: _r, ...record } = summary as LoadTableRecord & {
    deletions?: unknown;
    run_pending?: unknown;
    run_tables?: unknown;
    run_rejected_before_load?: unknown;
  };
  const rejects = record.rejects;
  if (!rejects) return record;
  const final = path.resolve(paths.dir, rejects.file);
  if (path.dirname(final) !== path.resolve(paths.loadDir)) return { ...record, rejects: null };
  if ((await sha256Of(final)) === rejects.sha256) return record;
  if ((await sha256Of(`${final}.partial`)) === rejects.sha256) {
    await rename(`${final}.partial`, final);
    return record;
  }
  await rm(`${final}.partial`, { force: true });
  warnings.push(`${table}: the rejects file ${rejects.file} of the committed load was lost (the process ended before it was written); its ${rejects.records} lines are not recoverable`);
  return { ...record, rejects: null };
}

async function sha256Of(file: string): Promise<string | null> {
  try {
    await stat(file);
  } catch {
    return null;
  }
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
