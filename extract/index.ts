// The EXTRACT stage: reads each collection the pipeline needs once — from the live server or a
// mongodump output — into <run>/extract/<collection>.ndjson, and records in the manifest what was
// read (filter, watermark range, counts, bytes, sha256). Prints nothing; returns a plain report.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { EtlError, StagingError, UsageError } from '../errors/etl-error.ts';
import { redactText } from '../errors/redact.ts';
import { selectTables } from '../model/select-tables.ts';
import { writeFileAtomic } from '../staging/atomic-file.ts';
import { TOOL_VERSION, updateManifest, writeManifest, type Manifest } from '../staging/manifest.ts';
import type { ExtractCollectionRecord, ExtractSection } from '../staging/manifest-extract.ts';
import { advanceLatest, createRun, type RunPaths } from '../staging/run-folder.ts';
import { sweepAbandoned } from '../staging/run-writer.ts';
import { currentWriter, withoutWriter } from '../staging/stage-writer.ts';
import { failureRecord } from '../staging/stage-contract.ts';
import { discardCollection, extractCollection } from './collection-extract.ts';
import { runCollections } from './collection-pool.ts';
import { DEFAULT_RETRY } from './live-source.ts';
import type { ExtractCollectionReport, ExtractOptions, ExtractReport } from './options.ts';
import { openSource, type SourceSession } from './source-session.ts';
import { mappingRecords, needsStoredWatermarks, planCollections, planWarnings, type CollectionPlan, type PlanInput } from './watermark-plan.ts';
import { readStoredState } from './watermark-store.ts';
import { propagationScope, type ExtractPropagationRecord, type PropagationScope } from './live-ids.ts';
import { planRepair, writeRecomputeFiles, type RepairPlan } from './repair-plan.ts';
import { dumpRefused } from './requested-read.ts';

export type { ExtractOptions, ExtractReport, ExtractProgressEvent, ExtractSource, ExtractCollectionReport } from './options.ts';

/** An abort surfaces as the signal's reason (an EtlError from bin/), whatever the stream said. */
function asInterruption(error: unknown, signal: AbortSignal | undefined): unknown {
  if (!signal?.aborted) return error;
  const reason: unknown = signal.reason;
  if (reason instanceof EtlError) return reason;
  return new EtlError('interrupted', 'extract interrupted', { cause: error });
}

/** What one extract works with, once planned. */
interface ExtractRun {
  readonly options: ExtractOptions;
  readonly secrets: readonly string[];
  readonly now: () => Date;
  readonly tables: readonly string[];
  readonly plans: readonly CollectionPlan[];
  readonly scope: PropagationScope;
  /** A repair run (the plans' `from` then means "by `_id`"): no watermark read or written, no delete propagation. */
  readonly repair: RepairPlan | null;
}

export async function runExtract(options: ExtractOptions): Promise<ExtractReport> {
  const secrets = [...(options.secrets ?? []), ...(options.source.kind === 'mongodb' ? (options.source.secrets ?? []) : [])];
  const since = options.since ?? null;
  if (since && Number.isNaN(since.getTime())) throw new UsageError('bad_since', 'the --since date is not a valid date');
  const tables = selectTables(options.model, options.tables);
  const now = options.now ?? (() => new Date());
  options.signal?.throwIfAborted();
  // The unfinished files of runs whose process was killed (the next run is the user's recovery).
  await sweepAbandoned(options.stagingDir, options.abandoned);
  let x: ExtractRun;
  if (options.repair) {
    if (options.source.kind !== 'mongodb') throw dumpRefused();
    const repair = planRepair(options.model, tables, options.repair);
    x = { options, secrets, now, tables: repair.tables, plans: repair.plans, scope: propagationScope(options.model, [], false), repair };
  } else {
    const scope = propagationScope(options.model, tables, options.propagateDeletes === true);
    x = { options, secrets, now, tables, plans: await planReads(options, tables, secrets), scope, repair: null };
  }
  const session = await openSource(options.source, secrets, options.retry ?? DEFAULT_RETRY, options.signal);
  try {
    return await extractAll(x, session);
  } finally {
    await session.close().catch(() => undefined);
  }
}

/** Per collection, what to read: from the stored watermarks (PostgreSQL), the flags and the thresholds. */
async function planReads(options: ExtractOptions, tables: readonly string[], secrets: readonly string[]): Promise<CollectionPlan[]> {
  const { model } = options;
  const full = options.full === true;
  const since = options.since ?? null;
  const collections = model.collections.filter((c) => c.tables.some((t) => tables.includes(t)));
  const input: PlanInput = { model, tables, full, since, globalDateThreshold: options.globalDateThreshold ?? null, stored: new Map() };
  // A read from --since asks for the contested claimants and the documents found gone too (a plain
  // read from that date would), but neither plans from the watermarks nor checks the mappings.
  const wanted = needsStoredWatermarks(model, tables, full, since) || (since !== null && !full);
  if (!wanted || !options.postgres) return planCollections(collections, input);
  const { watermarks, fingerprints, lastPipelines, contested, gone } = await readStoredState(options.postgres, secrets, tables);
  const asked = { contested, gone };
  return planCollections(collections, since !== null ? { ...input, ...asked } : { ...input, stored: watermarks, fingerprints, lastPipelines, ...asked });
}

async function extractAll(x: ExtractRun, session: SourceSession): Promise<ExtractReport> {
  const { options } = x;
  const warnings = planWarnings(x.plans);
  const { run, manifest, section } = await startRun(x, session, warnings);
  options.onProgress?.({ kind: 'started', runId: run.runId, runDir: run.dir, collections: x.plans.map((p) => p.collection.name) });
  for (const message of warnings) options.onProgress?.({ kind: 'warning', collection: null, message });
  let reports: ExtractCollectionReport[];
  try {
    reports = await runCollections(x.plans.length, collectionsAtOnce(x, session), options.signal, {
      run: (i, signal) => extractOne(x, session, run, x.plans[i]!, signal),
      commit: (_i, done) => recordOne(run, section, done),
      discard: (_i, done) => discardCollection(run, done.collection),
    });
    options.signal?.throwIfAborted();
  } catch (raw) {
    const error = asInterruption(raw, options.signal);
    await saveSection(run, { ...withoutWriter(section), status: 'failed', ended_at: x.now().toISOString(), error: failureRecord(error, x.secrets) }).catch(() => undefined);
    throw error;
  }
  const done: ExtractRunSection = { ...withoutWriter(section), status: 'done', ended_at: x.now().toISOString() };
  await updateManifest(run, (m) => {
    m.stages.extract = done;
    options.withDone?.(m);
  });
  await advanceLatest(options.stagingDir, run.runId);
  return report(run, manifest, done, reports);
}

type ExtractRunSection = ExtractSection & { propagate_deletes?: ExtractPropagationRecord };

/** The run folder, the copy of pipeline.yaml it is extracted with, and its manifest (extract running). */
async function startRun(x: ExtractRun, session: SourceSession, planned: readonly string[]): Promise<{ run: RunPaths; manifest: Manifest; section: ExtractRunSection }> {
  const { model } = x.options;
  const pipelineBytes = await readFile(model.file);
  if (createHash('sha256').update(pipelineBytes).digest('hex') !== model.sha256) {
    throw new StagingError('pipeline_changed', `${model.file} changed since it was read: run the command again`, { context: { file: model.file } });
  }
  const startedAt = x.now();
  const run = await createRun(x.options.stagingDir, startedAt);
  const propagation = propagationRecord(x.scope);
  const section: ExtractRunSection = {
    status: 'running',
    started_at: startedAt.toISOString(),
    ended_at: null,
    writer: currentWriter(),
    full: x.repair === null && x.plans.every((p) => p.from === null),
    server_started_at: session.serverClock?.toISOString() ?? null,
    tables: [...x.tables],
    collections: {},
    // Per table: the mapping fingerprint planned with (load stores it with the watermark).
    // A repair moves no watermark, so stores no fingerprint either.
    ...(x.repair ? {} : { mappings: mappingRecords(x.plans) }),
    warnings: [...session.warnings, ...planned],
    ...(propagation ? { propagate_deletes: propagation } : {}),
  };
  const manifest: Manifest = {
    format: 1,
    run_id: run.runId,
    tool_version: TOOL_VERSION,
    pipeline_sha256: model.sha256,
    source: { kind: session.kind, description: redactText(session.description, x.secrets) },
    destination: null,
    stages: { extract: section },
  };
  await writeFileAtomic(run.pipelineCopy, pipelineBytes);
  if (x.repair) section.repair = await writeRecomputeFiles(run, model, x.repair, x.options.repair!);
  await writeManifest(run, manifest);
  return { run, manifest, section };
}

/** propagate_deletes is recorded only when asked for, so runs without it keep the manifest they always had. */
function propagationRecord(scope: PropagationScope): ExtractPropagationRecord | null {
  return scope.record.flag || scope.record.tables.length > 0 ? scope.record : null;
}

/**
 * Collections read at once: two from a live server (bound by the server's CPU: a second cursor
 * uses the other core), one from a dump (bound by ours) and in a repair (reads by `_id`).
 */
function collectionsAtOnce(x: ExtractRun, session: SourceSession): number {
  return x.options.collectionsAtOnce ?? (session.kind === 'mongodb' && x.repair === null ? 2 : 1);
}

/** One collection into the run (`collection_done` as soon as its files are complete). */
async function extractOne(x: ExtractRun, session: SourceSession, run: RunPaths, plan: CollectionPlan, signal: AbortSignal | undefined): Promise<ExtractCollectionReport> {
  signal?.throwIfAborted();
  const options = { ...x.options, signal };
  const requested = x.repair?.requested.get(plan.collection.name) ?? null;
  const report = await extractCollection({ options, session, run, scope: x.scope, now: x.now, requested }, plan);
  x.options.onProgress?.({ kind: 'collection_done', collection: plan.collection.name, record: recordOf(report), seconds: report.seconds });
  return report;
}

/** Its record into the manifest: in pipeline order, whatever order the collections ended in. */
async function recordOne(run: RunPaths, section: ExtractRunSection, report: ExtractCollectionReport): Promise<void> {
  section.collections[report.collection] = recordOf(report);
  for (const w of report.warnings ?? []) section.warnings!.push(`${report.collection}: ${w}`);
  await saveSection(run, section);
}

function saveSection(run: RunPaths, section: ExtractRunSection): Promise<unknown> {
  return updateManifest(run, (m) => {
    m.stages.extract = section;
  });
}

function report(run: RunPaths, manifest: Manifest, section: ExtractRunSection, reports: readonly ExtractCollectionReport[]): ExtractReport {
  return {
    stage: 'extract',
    runId: run.runId,
    runDir: run.dir,
    manifest: run.manifest,
    source: manifest.source,
    full: section.full,
    startedAt: section.started_at,
    endedAt: section.ended_at!,
    serverStartedAt: section.server_started_at,
    collections: reports,
    documents: reports.reduce((n, r) => n + r.documents, 0),
    bytes: reports.reduce((n, r) => n + r.bytes, 0),
    warnings: [...section.warnings!],
    propagateDeletes: section.propagate_deletes ?? null,
  };
}

function recordOf(report: ExtractCollectionReport): ExtractCollectionRecord {
  const { collection: _c, seconds: _s, ...record } = report;
  return record;
}
