// The load stage: merges a staged run into PostgreSQL in one transaction.
//
//   lock (advisory, one load at a time) → BEGIN → tables ensured → ledger checked (a run already
//   applied changes nothing) → per table in load order: COPY, clean the batch, merge (table-load.ts),
//   record it in etl_runs, advance its watermark → COMMIT (ROLLBACK for --dry-run)
//
// Any error rolls the whole transaction back: PostgreSQL ends exactly as it was, watermarks
// included, and the error names the table, the staged file and line, the column.
import { connectPostgres } from '../connect/postgres.ts';
import { describePostgres } from '../connect/config.ts';
import { EtlError, LoadError, UsageError, StagingError } from '../model/errors.ts';
import type { PipelineModel } from '../model/types.ts';
import { readManifest, requireStageDone, updateManifest, type Manifest } from '../staging/manifest.ts';
import type { LoadSection, LoadTableRecord } from '../staging/manifest-load.ts';
import { resolveRun, type RunPaths } from '../staging/run-folder.ts';
import { rm } from 'node:fs/promises';
import type { AtomicFileSink, FileFigures } from '../staging/atomic-file.ts';
import { cancelQueriesOnAbort } from './cancel.ts';
import { toLoadError, type FailurePlace } from './errors.ts';
import { tableFingerprint, type PlannedMapping } from '../model/fingerprint.ts';
import { advanceWatermark, appliedTables, ensureSchema, forgetWatermark, recordTable, watermarkOf } from './ledger.ts';
import { acquireLoadLock, releaseLoadLock } from './lock.ts';
import type { LoadOptions, LoadProgress, LoadReport, TableLoadReport } from './options.ts';
import { loadTable, tempNamesFor } from './table-load.ts';
import { propagateDeletes } from './delete-propagation.ts';

export type { LoadOptions, LoadProgress, LoadReport, TableLoadReport } from './options.ts';

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const { model, signal } = options;
  const secrets = options.secrets ?? [];
  const emit = (e: LoadProgress): void => options.onProgress?.(e);
  const startedAt = new Date().toISOString();
  signal?.throwIfAborted();

  const paths = await resolveRun(options.stagingDir, options.runId ?? null);
  const manifest = await readManifest(paths);
  requireStageDone(manifest, 'transform', paths);
  const requested = planTables(model, manifest, paths, options.tables ?? null);
  const warnings: string[] = [];
  const transformSha = manifest.stages.transform?.pipeline_sha256 ?? manifest.pipeline_sha256;
  if (transformSha && transformSha !== model.sha256) {
    warnings.push(`run ${paths.runId} was transformed with another pipeline.yaml (sha256 ${transformSha.slice(0, 12)}…); its CSV columns were checked against this one`);
  }
  const destination = describePostgres(options.postgres);
  for (const t of requested) {
    const live = (manifest.stages.transform?.tables[t] as { live?: unknown } | undefined)?.live;
    if (model.tables.get(t)?.propagateDeletes && !live) {
      warnings.push(`${t}: propagate_deletes is set, but run ${paths.runId} staged no list of the collection's _ids: rows whose document is gone stay in PostgreSQL (extract with --propagate-deletes)`);
    }
  }

  const client = await connectPostgres(options.postgres, secrets);
  // A dropped connection is reported by the query that was running; this keeps it from also
  // surfacing as an uncaught 'error' event.
  client.on('error', () => undefined);
  const stopCancelling = cancelQueriesOnAbort(client, options.postgres, signal);
  const place: { current: FailurePlace } = { current: { table: '(setup)', step: 'preparing the load' } };
  const tempNames: Record<string, string> = {};
  const pendingRejects: { table: string; sink: AtomicFileSink; figures: FileFigures }[] = [];
  let locked = false;
  let inTransaction = false;
  let sectionWritten = false;
  try {
    // Temp tables live in per-session buffers, 8 MB by default: a batch of a million rows would go
    // back and forth to disk. Settable only before the session touches a temp table, hence here.
    await client.query(`SET temp_buffers = '256MB'`);
    await acquireLoadLock(client, options.lock ?? 'wait', (message) => emit({ kind: 'waiting', message }), signal);
    locked = true;

    await client.query('BEGIN');
    inTransaction = true;
    place.current = { table: '(schema)', step: 'creating the tables of pipeline.yaml' };
    await ensureSchema(client, model);

    // ── already applied? ────────────────────────────────────────────────────────────────────
    const applied = await appliedTables(client, paths.runId);
    const skipped = requested.filter((t) => applied.has(t)).map((t) => ({ table: t, loadedAt: applied.get(t)! }));
    const toLoad = requested.filter((t) => !applied.has(t));
    emit({ kind: 'plan', runId: paths.runId, tables: toLoad, alreadyApplied: skipped.map((s) => s.table) });
    if (requested.length > 0 && toLoad.length === 0) {
      await client.query('ROLLBACK');
      inTransaction = false;
      const report: LoadReport = {
        runId: paths.runId,
        dryRun: options.dryRun === true,
        alreadyApplied: true,
        skipped,
        destination,
        startedAt,
        endedAt: new Date().toISOString(),
        tables: [],
        truncated: [],
        deletions: null,
        warnings,
      };
      await recordAlreadyApplied(paths, manifest, report);
      return report;
    }

    const extract = manifest.stages.extract;
    for (const table of toLoad) {
      const next = nextWatermark(model, manifest, table);
      if (!next) continue;
      const current = await watermarkOf(client, table);
      if (current && current.getTime() > Date.parse(next)) {
        warnings.push(
          `${table}: a newer run was already loaded (watermark ${current.toISOString()} > this run's ${next}); rows this run holds may be older than those in PostgreSQL`,
        );
      }
    }

    await updateManifest(paths, (m) => {
      m.destination = { description: destination };
      m.stages.load = section('running', options.dryRun === true, startedAt, {}, []);
    });
    sectionWritten = true;

    // Sorts and hashes of the merge work on up to millions of rows: give them memory, for this
    // transaction only.
    await client.query(`SET LOCAL work_mem = '128MB'`);

    const reports: TableLoadReport[] = [];
    const rejectFigures = new Map<string, FileFigures | null>();
    const truncatedAll: string[] = [];
    // Tables emptied by a cascade whose run did not read them in full: their watermark is removed
    // (the next extract reads them in full) and not advanced by this load.
    const watermarkFrozen = new Set<string>();
    for (const [index, name] of toLoad.entries()) {
      signal?.throwIfAborted();
      const table = model.tables.get(name)!;
      place.current = { table: name, step: 'loading' };
      Object.assign(tempNames, tempNamesFor(table, index));
      const result = await loadTable({
        client,
        paths,
        table,
        index,
        staged: manifest.stages.transform!.tables[name]!,
        signal,
        ...(options.bulkRows !== undefined ? { bulkRows: options.bulkRows } : {}),
        onPhase: (phase) => {
          place.current = { ...place.current, step: stepName(phase), tempNames };
          emit({ kind: 'table_phase', table: name, phase });
        },
        onFile: (file) => {
          place.current = { table: name, step: place.current.step, tempNames, ...(file ? { file } : {}) };
        },
      });
      if (result.rejects) pendingRejects.push({ table: name, ...result.rejects });

      for (const emptied of result.report.truncated) {
        if (!truncatedAll.includes(emptied)) truncatedAll.push(emptied);
        const readInFull = toLoad.includes(emptied) && extract?.collections[model.tables.get(emptied)?.collection ?? '']?.watermark.from === null;
        if (!readInFull && model.tables.has(emptied)) {
          await forgetWatermark(client, emptied);
          watermarkFrozen.add(emptied);
          warnings.push(`${emptied} was emptied by TRUNCATE ${name} CASCADE and this run did not read it in full: its watermark was removed, so the next extract reads it in full`);
        }
      }

      rejectFigures.set(name, result.rejects?.figures ?? null);
      const next = nextWatermark(model, manifest, name);
      if (next && !watermarkFrozen.has(name)) await advanceWatermark(client, name, next, paths.runId, plannedMapping(model, manifest, name));
      else if (!next) warnings.push(`${name}: the run records no extract watermark for collection ${table.collection}; the watermark was not moved`);
      reports.push(result.report);
      emit({ kind: 'table_done', table: name, report: result.report });
    }

    // ── delete propagation (runs whose extract staged the collections' _id sets) ──────────────
    const propagation = await propagateDeletes({
      client,
      model,
      paths,
      manifest,
      tables: toLoad,
      allowDeleteAll: options.allowDeleteAll === true,
      signal,
      onStep: (table, step, file) => {
        place.current = { table, step, tempNames, ...(file ? { file } : {}) };
        emit({ kind: 'deleting', table, step });
      },
    });
    const deletions = propagation.propagated.length > 0 ? propagation : null;
    if (deletions) {
      // A row deleted because its document is gone, or because it referenced one, is a deleted row
      // of its table like a link removed from an array.
      for (const d of deletions.tables) {
        const i = reports.findIndex((r) => r.table === d.table);
        if (i !== -1) reports[i] = { ...reports[i]!, deleted: reports[i]!.deleted + d.gone + d.referencing };
      }
    }

    for (const r of reports) {
      place.current = { table: r.table, step: 'recording the load', tempNames };
      await recordTable(client, paths.runId, r.table, model.sha256, {
        ...tableRecord(r, rejectFigures.get(r.table) ?? null),
        ...(deletions ? { deletions: deletions.tables.find((d) => d.table === r.table) ?? null } : {}),
      });
    }

    place.current = { table: '(commit)', step: options.dryRun ? 'rolling back the dry run' : 'committing' };
    emit({ kind: 'committing', dryRun: options.dryRun === true });
    signal?.throwIfAborted();
    await client.query(options.dryRun ? 'ROLLBACK' : 'COMMIT');
    inTransaction = false;

    // The transaction ended as planned: the rejects files now describe what happened.
    const rejectRecords = new Map<string, LoadTableRecord['rejects']>();
    for (const p of pendingRejects) {
      const figures = await p.sink.commit();
      rejectRecords.set(p.table, { file: paths.relative(p.sink.path), bytes: figures.bytes, sha256: figures.sha256, records: figures.lines });
    }
    for (const r of reports) {
      if (!r.rejectsFile) await rm(paths.loadRejects(r.table), { force: true });
    }

    const report: LoadReport = {
      runId: paths.runId,
      dryRun: options.dryRun === true,
      alreadyApplied: false,
      skipped,
      destination,
      startedAt,
      endedAt: new Date().toISOString(),
      tables: reports,
      truncated: truncatedAll,
      deletions,
      warnings,
    };
    await updateManifest(paths, (m) => {
      // Tables an earlier load of this run applied (--tables) stay in the record.
      const previous = manifest.stages.load;
      const kept = previous && previous.status === 'done' && !previous.dry_run && !report.dryRun ? previous.tables : {};
      const tables: Record<string, LoadTableRecord> = { ...kept };
      for (const r of reports) tables[r.table] = tableRecord(r, null, rejectRecords.get(r.table) ?? null);
      m.stages.load = {
        ...section('done', report.dryRun, startedAt, tables, skipped),
        ended_at: report.endedAt,
        truncated: truncatedAll,
        deletions: deletions ? structuredClone(deletions) as LoadSection['deletions'] : null,
        warnings,
      };
    });
    return report;
  } catch (error) {
    if (inTransaction) await client.query('ROLLBACK').catch(() => undefined);
    for (const p of pendingRejects) await p.sink.discard().catch(() => undefined);
    const failure =
      signal?.aborted && !(error instanceof StagingError)
        ? interrupted(signal.reason)
        : toLoadError(error, { ...place.current, tempNames }, secrets);
    if (sectionWritten) {
      await updateManifest(paths, (m) => {
        m.stages.load = {
          ...section('failed', options.dryRun === true, startedAt, {}, []),
          ended_at: new Date().toISOString(),
          error: { code: failure.code, message: failure.message },
        };
      }).catch(() => undefined);
    }
    throw failure;
  } finally {
    stopCancelling();
    if (locked) await releaseLoadLock(client).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** Tables to load: the ones asked for (or all), that the run staged, in load order. */
function planTables(model: PipelineModel, manifest: Manifest, paths: RunPaths, asked: readonly string[] | null): string[] {
  const staged = manifest.stages.transform?.tables ?? {};
  if (asked) {
    const unknown = asked.filter((t) => !model.tables.has(t));
    if (unknown.length) {
      throw new UsageError('unknown_table', `unknown table${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, {
        hint: `tables of pipeline.yaml: ${model.loadOrder.join(', ')}`,
      });
    }
    const missing = asked.filter((t) => !staged[t]);
    if (missing.length) {
      throw new StagingError('table_not_staged', `run ${paths.runId} holds no transformed ${missing.join(', ')}`, {
        hint: `run \`etl transform --run ${paths.runId}\` for ${missing.length > 1 ? 'them' : 'it'}, or leave ${missing.length > 1 ? 'them' : 'it'} out of --tables`,
      });
    }
  }
  const wanted = new Set(asked ?? Object.keys(staged));
  return model.loadOrder.filter((t) => wanted.has(t) && staged[t]);
}

/** The instant this run's extract of the table's collection guarantees (the next watermark), or null. */
function nextWatermark(model: PipelineModel, manifest: Manifest, table: string): string | null {
  const collection = model.tables.get(table)?.collection;
  if (!collection) return null;
  return manifest.stages.extract?.collections[collection]?.watermark?.next ?? null;
}

/** The mapping fingerprint of the table now, and what the run's extract planned with (issue 16). */
function plannedMapping(model: PipelineModel, manifest: Manifest, table: string): { current: string; planned: PlannedMapping | null } {
  const record = manifest.stages.extract?.mappings?.[table];
  return {
    current: tableFingerprint(model.tables.get(table)!, model.settings),
    planned: record ? { fingerprint: record.fingerprint, fullRead: record.full_read, mapping: record.mapping } : null,
  };
}

function stepName(phase: string): string {
  switch (phase) {
    case 'copy':
      return 'COPY';
    case 'truncate':
      return 'TRUNCATE … CASCADE';
    case 'duplicates':
      return 'resolving duplicate keys';
    case 'references':
      return 'checking references';
    case 'merge':
      return 'merging';
    default:
      return phase;
  }
}

function section(
  status: LoadSection['status'],
  dryRun: boolean,
  startedAt: string,
  tables: Record<string, LoadTableRecord>,
  skipped: readonly { table: string; loadedAt: string }[],
): LoadSection {
  return {
    status,
    started_at: startedAt,
    ended_at: null,
    error: null,
    dry_run: dryRun,
    already_applied: false,
    tables,
    skipped: skipped.map((s) => ({ table: s.table, loaded_at: s.loadedAt })),
  };
}

function tableRecord(r: TableLoadReport, figures: FileFigures | null, rejects: LoadTableRecord['rejects'] = null): LoadTableRecord {
  return {
    staged: r.staged,
    inserted: r.inserted,
    updated: r.updated,
    unchanged: r.unchanged,
    deleted: r.deleted,
    rejected: r.rejected,
    nulled: r.nulled,
    duplicates: r.duplicates,
    truncated: [...r.truncated],
    rejects: rejects ?? (figures && r.rejectsFile ? { file: r.rejectsFile, bytes: figures.bytes, sha256: figures.sha256, records: figures.lines } : null),
  };
}

/** A re-load of an applied run keeps the manifest's record of the load that applied it. */
async function recordAlreadyApplied(paths: RunPaths, manifest: Manifest, report: LoadReport): Promise<void> {
  const previous = manifest.stages.load;
  if (previous && previous.status === 'done' && !previous.dry_run) return;
  await updateManifest(paths, (m) => {
    m.destination = { description: report.destination };
    m.stages.load = {
      ...section('done', report.dryRun, report.startedAt, {}, report.skipped),
      ended_at: report.endedAt,
      already_applied: true,
      warnings: [...report.warnings],
    };
  });
}

function interrupted(reason: unknown): EtlError {
  if (reason instanceof EtlError) return reason;
  return new LoadError('interrupted', 'load interrupted; PostgreSQL was rolled back and is as it was', { cause: reason });
}

