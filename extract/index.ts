// The EXTRACT stage: reads each collection the pipeline needs once — from the live server or a
// mongodump output — into <run>/extract/<collection>.ndjson, and records in the manifest what was
// read (filter, watermark range, counts, bytes, sha256). Prints nothing; returns a plain report.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { PipelineModel } from '../model/types.ts';
import { EtlError, StagingError, UsageError } from '../model/errors.ts';
import { redactText } from '../connect/redact.ts';
import { writeFileAtomic } from '../staging/atomic-file.ts';
import { TOOL_VERSION, updateManifest, writeManifest, type Manifest } from '../staging/manifest.ts';
import type { ExtractCollectionRecord, ExtractSection } from '../staging/manifest-extract.ts';
import { createRun, setLatest } from '../staging/run-folder.ts';
import { extractCollection } from './collection-extract.ts';
import { DEFAULT_RETRY } from './live-source.ts';
import type { ExtractCollectionReport, ExtractOptions, ExtractReport } from './options.ts';
import { openSource, type SourceSession } from './source-session.ts';
import { mappingRecords, mappingWarnings, needsStoredWatermarks, planCollections, type CollectionPlan } from './watermark-plan.ts';
import { readStoredState } from './watermark-store.ts';
import { propagationScope, type ExtractPropagationRecord, type PropagationScope } from './live-ids.ts';
import { planRepair, writeRecomputeFiles, type RepairPlan } from './repair-plan.ts';
import { dumpRefused } from './requested-read.ts';

export type { ExtractOptions, ExtractReport, ExtractProgressEvent, ExtractSource, ExtractCollectionReport } from './options.ts';

/** The tables an extract is for: the --tables subset (checked) or every table. */
function selectTables(model: PipelineModel, subset: readonly string[] | undefined): string[] {
  if (!subset || subset.length === 0) return [...model.loadOrder];
  const unknown = subset.filter((t) => !model.tables.has(t));
  if (unknown.length) {
    throw new UsageError('unknown_table', `unknown table${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, {
      hint: `tables of ${model.file}: ${[...model.loadOrder].join(', ')}`,
    });
  }
  const wanted = new Set(subset);
  return model.loadOrder.filter((t) => wanted.has(t));
}

/** The error as the manifest records it: code and message, secrets scrubbed. */
function errorRecord(error: unknown, secrets: readonly string[]): { code: string; message: string } {
  const code = error instanceof EtlError ? error.code : 'internal';
  return { code, message: redactText(error instanceof Error ? error.message : String(error), secrets) };
}

/** An abort surfaces as the signal's reason (an EtlError from bin/), whatever the stream said. */
function asInterruption(error: unknown, signal: AbortSignal | undefined): unknown {
  if (!signal?.aborted) return error;
  const reason: unknown = signal.reason;
  if (reason instanceof EtlError) return reason;
  return new EtlError('interrupted', 'extract interrupted', { cause: error });
}

export async function runExtract(options: ExtractOptions): Promise<ExtractReport> {
  const { model, signal } = options;
  const now = options.now ?? (() => new Date());
  const secrets = [...(options.secrets ?? []), ...(options.source.kind === 'mongodb' ? (options.source.secrets ?? []) : [])];
  const full = options.full === true;
  const since = options.since ?? null;
  if (since && Number.isNaN(since.getTime())) throw new UsageError('bad_since', 'the --since date is not a valid date');
  const tables = selectTables(model, options.tables);
  if (options.repair) return runRepairExtract(options, planRepair(model, tables, options.repair), secrets, now);
  const collections = model.collections.filter((c) => c.tables.some((t) => tables.includes(t)));
  const scope = propagationScope(model, tables, options.propagateDeletes === true);
  signal?.throwIfAborted();

  let stored = new Map<string, Date>();
  let mapping: { fingerprints: Map<string, string | null>; lastPipelines: Map<string, string> } | undefined;
  if (needsStoredWatermarks(model, tables, full, since) && options.postgres) {
    const state = await readStoredState(options.postgres, secrets, tables);
    stored = state.watermarks;
    mapping = { fingerprints: state.fingerprints, lastPipelines: state.lastPipelines };
  }
  const plans = planCollections(collections, {
    model,
    tables,
    full,
    since,
    globalDateThreshold: options.globalDateThreshold ?? null,
    stored,
    ...mapping,
  });

  const session = await openSource(options.source, secrets, options.retry ?? DEFAULT_RETRY, signal);
  try {
    return await extractAll(options, session, { plans, tables, scope, repair: null }, secrets, now);
  } finally {
    await session.close().catch(() => undefined);
  }
}

/** A repair run: the documents asked for, by `_id`; no watermark read or written, no delete propagation. */
async function runRepairExtract(options: ExtractOptions, repair: RepairPlan, secrets: readonly string[], now: () => Date): Promise<ExtractReport> {
  options.signal?.throwIfAborted();
  if (options.source.kind !== 'mongodb') throw dumpRefused();
  const scope = propagationScope(options.model, [], false);
  const session = await openSource(options.source, secrets, options.retry ?? DEFAULT_RETRY, options.signal);
  try {
    return await extractAll(options, session, { plans: repair.plans, tables: repair.tables, scope, repair }, secrets, now);
  } finally {
    await session.close().catch(() => undefined);
  }
}

interface ExtractPlan {
  readonly plans: readonly CollectionPlan[];
  readonly tables: readonly string[];
  readonly scope: PropagationScope;
  /** A repair run (the plans' `from` then means "by `_id`"). */
  readonly repair: RepairPlan | null;
}

async function extractAll(options: ExtractOptions, session: SourceSession, work: ExtractPlan, secrets: readonly string[], now: () => Date): Promise<ExtractReport> {
  const { model, signal } = options;
  const { plans, tables, scope, repair } = work;
  const pipelineBytes = await readFile(model.file);
  if (createHash('sha256').update(pipelineBytes).digest('hex') !== model.sha256) {
    throw new StagingError('pipeline_changed', `${model.file} changed since it was read: run the command again`, { context: { file: model.file } });
  }
  const startedAt = now();
  const run = await createRun(options.stagingDir, startedAt);
  const allFull = repair === null && plans.every((p) => p.from === null);
  // propagate_deletes is recorded only when asked for, so runs without it keep the manifest they always had.
  const propagation: ExtractPropagationRecord | null = scope.record.flag || scope.record.tables.length > 0 ? scope.record : null;
  const section: ExtractSection & { propagate_deletes?: ExtractPropagationRecord } = {
    status: 'running',
    started_at: startedAt.toISOString(),
    ended_at: null,
    full: allFull,
    server_started_at: session.serverClock?.toISOString() ?? null,
    tables: [...tables],
    collections: {},
    // Per table: the mapping fingerprint planned with (load stores it with the watermark). A repair
    // moves no watermark, so stores no fingerprint either.
    ...(repair ? {} : { mappings: mappingRecords(plans) }),
    warnings: [...session.warnings, ...mappingWarnings(plans)],
    ...(propagation ? { propagate_deletes: propagation } : {}),
  };
  const manifest: Manifest = {
    format: 1,
    run_id: run.runId,
    tool_version: TOOL_VERSION,
    pipeline_sha256: model.sha256,
    source: { kind: session.kind, description: redactText(session.description, secrets) },
    destination: null,
    stages: { extract: section },
  };
  await writeFileAtomic(run.pipelineCopy, pipelineBytes);
  if (repair) section.repair = await writeRecomputeFiles(run, model, repair, options.repair!);
  await writeManifest(run, manifest);
  options.onProgress?.({ type: 'run-started', runId: run.runId, runDir: run.dir, collections: plans.map((p) => p.collection.name) });
  for (const message of mappingWarnings(plans)) options.onProgress?.({ type: 'warning', collection: null, message });

  const reports: ExtractCollectionReport[] = [];
  try {
    for (const plan of plans) {
      signal?.throwIfAborted();
      const report = await extractCollection({ options, session, run, scope, now, requested: repair?.requested.get(plan.collection.name) ?? null }, plan);
      reports.push(report);
      section.collections[plan.collection.name] = recordOf(report);
      options.onProgress?.({ type: 'collection-done', collection: plan.collection.name, record: recordOf(report), seconds: report.seconds });
      for (const w of report.warnings ?? []) section.warnings!.push(`${plan.collection.name}: ${w}`);
      await updateManifest(run, (m) => {
        m.stages.extract = section;
      });
    }
    signal?.throwIfAborted();
  } catch (raw) {
    const error = asInterruption(raw, signal);
    section.status = 'failed';
    section.ended_at = now().toISOString();
    section.error = errorRecord(error, secrets);
    await updateManifest(run, (m) => {
      m.stages.extract = section;
    }).catch(() => undefined);
    throw error;
  }
  const endedAt = now();
  section.status = 'done';
  section.ended_at = endedAt.toISOString();
  await updateManifest(run, (m) => {
    m.stages.extract = section;
  });
  await setLatest(options.stagingDir, run.runId);
  return {
    ok: true,
    run_id: run.runId,
    run_dir: run.dir,
    manifest: run.manifest,
    source: manifest.source,
    full: allFull,
    started_at: section.started_at,
    ended_at: section.ended_at,
    server_started_at: section.server_started_at,
    collections: reports,
    documents: reports.reduce((n, r) => n + r.documents, 0),
    bytes: reports.reduce((n, r) => n + r.bytes, 0),
    warnings: [...section.warnings!],
    propagate_deletes: propagation,
  };
}

function recordOf(report: ExtractCollectionReport): ExtractCollectionRecord {
  const { collection: _c, seconds: _s, ...record } = report;
  return record;
}
