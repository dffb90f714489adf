// The EXTRACT stage: reads each collection the pipeline needs once — from the live server or a
// mongodump output — into <run>/extract/<collection>.ndjson, and records in the manifest what was
// read (filter, watermark range, counts, bytes, sha256). Prints nothing; returns a plain report.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { EJSON, type Document } from 'bson';
import type { PipelineModel, TableModel } from '../model/types.ts';
import { EtlError, StagingError, UsageError } from '../model/errors.ts';
import { redactText } from '../connect/redact.ts';
import { writeFileAtomic } from '../staging/atomic-file.ts';
import { TOOL_VERSION, updateManifest, writeManifest, type Manifest } from '../staging/manifest.ts';
import type { ExtractCollectionRecord, ExtractSection } from '../staging/manifest-extract.ts';
import { createRun, setLatest, type RunPaths } from '../staging/run-folder.ts';
import { NotInIdOrder, writeCollection, type WrittenCollection } from './collection-writer.ts';
import { IdSorter } from './external-sort.ts';
import { DEFAULT_RETRY } from './live-source.ts';
import type { ExtractCollectionReport, ExtractOptions, ExtractReport } from './options.ts';
import { openSource, type SourceSession } from './source-session.ts';
import { collectionQuery, mappingRecords, mappingWarnings, needsStoredWatermarks, planCollections, type CollectionPlan } from './watermark-plan.ts';
import { readStoredState } from './watermark-store.ts';
import { idsQuery, propagationScope, type ExtractIdsRecord, type ExtractPropagationRecord, type PropagationScope } from './live-ids.ts';

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

function topLevelFields(projection: readonly string[]): string[] {
  const fields = new Set<string>(['_id']);
  // Dotted paths are projected as their top-level field, on the server and in dumps alike, so both
  // give the same document.
  for (const p of projection) fields.add(p.split('.')[0]!);
  return [...fields];
}

export async function runExtract(options: ExtractOptions): Promise<ExtractReport> {
  const { model, signal } = options;
  const now = options.now ?? (() => new Date());
  const secrets = [...(options.secrets ?? []), ...(options.source.kind === 'mongodb' ? (options.source.secrets ?? []) : [])];
  const full = options.full === true;
  const since = options.since ?? null;
  if (since && Number.isNaN(since.getTime())) throw new UsageError('bad_since', 'the --since date is not a valid date');
  const tables = selectTables(model, options.tables);
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
    return await extractAll(options, session, plans, tables, scope, secrets, now);
  } finally {
    await session.close().catch(() => undefined);
  }
}

async function extractAll(
  options: ExtractOptions,
  session: SourceSession,
  plans: readonly CollectionPlan[],
  tables: readonly string[],
  scope: PropagationScope,
  secrets: readonly string[],
  now: () => Date,
): Promise<ExtractReport> {
  const { model, signal } = options;
  const pipelineBytes = await readFile(model.file);
  if (createHash('sha256').update(pipelineBytes).digest('hex') !== model.sha256) {
    throw new StagingError('pipeline_changed', `${model.file} changed since it was read: run the command again`, { context: { file: model.file } });
  }
  const startedAt = now();
  const run = await createRun(options.stagingDir, startedAt);
  const allFull = plans.every((p) => p.from === null);
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
    // Per table: the mapping fingerprint planned with (load stores it with the watermark).
    mappings: mappingRecords(plans),
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
  await writeManifest(run, manifest);
  options.onProgress?.({ type: 'run-started', runId: run.runId, runDir: run.dir, collections: plans.map((p) => p.collection.name) });
  for (const message of mappingWarnings(plans)) options.onProgress?.({ type: 'warning', collection: null, message });

  const reports: ExtractCollectionReport[] = [];
  try {
    for (const plan of plans) {
      signal?.throwIfAborted();
      const report = await extractCollection(options, session, plan, run, scope, now);
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

async function extractCollection(
  options: ExtractOptions,
  session: SourceSession,
  plan: CollectionPlan,
  run: RunPaths,
  scope: PropagationScope,
  now: () => Date,
): Promise<ExtractCollectionReport> {
  const { model, signal } = options;
  const name = plan.collection.name;
  const file = run.extractFile(name);
  const query: Document = collectionQuery(plan.collection.serverFilter, plan.from);
  const fields = topLevelFields(plan.collection.projection);
  const started = now();
  const t0 = performance.now();
  const warnings: string[] = [];
  let retries = 0;
  const request = {
    collection: name,
    query,
    fields,
    batchSize: model.settings.batchSize,
    signal,
    onRetry: (e: { attempt: number; delayMs: number; error: string }) => {
      retries += 1;
      options.onProgress?.({ type: 'collection-retry', collection: name, ...e });
    },
  };

  const exists = await session.hasCollection(name);
  // The total is for the progress display only: asked in parallel, never waited for.
  let total: number | null = exists ? null : 0;
  const counting = exists
    ? session.total(request).then(
        (n) => void (total = n),
        () => undefined,
      )
    : Promise.resolve();
  options.onProgress?.({ type: 'collection-started', collection: name, total, from: plan.from?.toISOString() ?? null });
  if (!exists) {
    const message = `collection "${name}" does not exist in the source: 0 documents, empty file`;
    warnings.push(message);
    options.onProgress?.({ type: 'warning', collection: name, message });
  }

  const onProgress = (f: { documents: number; scanned: number }) =>
    options.onProgress?.({ type: 'collection-progress', collection: name, ...f, total, elapsedMs: performance.now() - t0 });
  const base = {
    file,
    clientQuery: session.clientSide ? query : null,
    projection: session.clientSide ? new Set(fields) : null,
    trackDates: session.clientSide,
    signal,
    progressEveryMs: options.progressEveryMs ?? 250,
    onProgress,
  };
  const documents = (): AsyncIterable<Document> => (exists ? session.documents(request) : emptyDocuments());

  let written: WrittenCollection;
  let order: 'server' | 'dump' | 'sorted' = session.clientSide ? 'dump' : 'server';
  try {
    written = await writeCollection({ ...base, documents: documents(), order: session.clientSide ? { kind: 'check' } : { kind: 'trusted' } });
  } catch (error) {
    if (!(error instanceof NotInIdOrder)) throw error;
    // The dump is not in _id order (natural order after updates that moved documents): read it
    // again through the bounded-memory external sort.
    options.onProgress?.({ type: 'collection-resorting', collection: name, reason: error.message });
    const sorter = new IdSorter(run.extractDir, { maxChunkBytes: options.sortChunkBytes, signal });
    try {
      written = await writeCollection({ ...base, documents: documents(), order: { kind: 'sort', sorter } });
    } finally {
      await sorter.cleanup();
    }
    order = 'sorted';
  }
  void counting; // not awaited: a slow estimate never delays the extract
  if (written.duplicateIds > 0) {
    warnings.push(`${written.duplicateIds} document(s) repeat the _id of the previous one in the dump (all kept)`);
  }

  // The ids pass comes after the documents pass: a document deleted in between is staged but not
  // live, so load (which deletes after merging) removes it again; one created in between is live
  // but not staged, and the next run's watermark reads it.
  const propagating = scope.byCollection.get(name) ?? [];
  const ids = propagating.length > 0 ? await extractIds(options, session, name, propagating, run, exists, now) : null;
  if (ids && !exists) {
    warnings.push(`delete propagation: collection "${name}" does not exist, so its _id set is empty; load refuses to delete every row of ${ids.tables.join(', ')} unless forced`);
  }

  const margin = model.settings.watermarkMarginSeconds * 1000;
  let next: Date;
  let basis: 'server_clock' | 'dump_dates' | 'dump_no_dates';
  if (session.serverClock) {
    next = new Date(session.serverClock.getTime() - margin);
    basis = 'server_clock';
  } else if (written.latestDate) {
    // A dump has no clock of its own: the latest date it holds is no later than the moment it was
    // taken (capped at our clock against documents dated in the future).
    next = new Date(Math.min(written.latestDate.getTime(), now().getTime()) - margin);
    basis = 'dump_dates';
  } else {
    next = new Date(0);
    basis = 'dump_no_dates';
  }
  const ended = now();
  return {
    collection: name,
    file: run.relative(file),
    bytes: written.figures.bytes,
    sha256: written.figures.sha256,
    records: written.figures.lines,
    documents: written.documents,
    scanned: written.scanned,
    filter: EJSON.serialize(query, { relaxed: false }),
    watermark: { from: plan.from?.toISOString() ?? null, next: next.toISOString(), next_basis: basis },
    order,
    retries,
    warnings,
    started_at: started.toISOString(),
    ended_at: ended.toISOString(),
    tables: plan.tables.map((t) => t.table),
    ...(ids ? { ids } : {}),
    seconds: Math.round((performance.now() - t0) / 10) / 100,
  };
}

/** The second pass: every `_id` (and the fields the tables' filters read), no date filter, streamed to the ids file. */
async function extractIds(
  options: ExtractOptions,
  session: SourceSession,
  name: string,
  tables: readonly TableModel[],
  run: RunPaths,
  exists: boolean,
  now: () => Date,
): Promise<ExtractIdsRecord> {
  const { model, signal } = options;
  const file = run.extractIdsFile(name);
  const { query, fields } = idsQuery(tables);
  const started = now();
  const t0 = performance.now();
  const request = {
    collection: name,
    query,
    fields,
    batchSize: model.settings.batchSize,
    signal,
    onRetry: (e: { attempt: number; delayMs: number; error: string }) => options.onProgress?.({ type: 'collection-retry', collection: name, ...e }),
  };
  const written = await writeCollection({
    file,
    documents: exists ? session.documents(request) : emptyDocuments(),
    clientQuery: session.clientSide ? query : null,
    projection: session.clientSide ? new Set(fields) : null,
    // A set needs no order: a dump is read once, as it lies.
    order: session.clientSide ? { kind: 'any' } : { kind: 'trusted' },
    trackDates: false,
    signal,
    progressEveryMs: options.progressEveryMs ?? 250,
    onProgress: (f) => options.onProgress?.({ type: 'collection-ids-progress', collection: name, ids: f.documents, elapsedMs: performance.now() - t0 }),
  });
  return {
    file: run.relative(file),
    bytes: written.figures.bytes,
    sha256: written.figures.sha256,
    records: written.figures.lines,
    filter: EJSON.serialize(query, { relaxed: false }),
    fields: fields.filter((f) => f !== '_id'),
    documents: written.documents,
    scanned: written.scanned,
    tables: tables.map((t) => t.name),
    started_at: started.toISOString(),
    ended_at: now().toISOString(),
  };
}

async function* emptyDocuments(): AsyncGenerator<Document> {}
