// One collection's extract: the documents pass (→ extract/<collection>.ndjson, its rejects file,
// the undated census) and, when its tables propagate deletes, the ids pass (ids-pass.ts); then the
// collection's manifest record, with the watermark the next run may start from.
import { rm } from 'node:fs/promises';
import { EJSON, type Document } from 'bson';
import type { ExtractCollectionRecord, ExtractIdsRecord } from '../staging/manifest-extract.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { NotInIdOrder, writeCollection, type SourceDocument, type WriteCollectionInput, type WrittenCollection } from './collection-writer.ts';
import { IdSorter } from './external-sort.ts';
import { corrupt } from './bson-reader.ts';
import { SourceError } from '../errors/etl-error.ts';
import type { BsonDecodeError } from '../staging/ndjson-writer.ts';
import { extractIds } from './ids-pass.ts';
import type { PropagationScope } from './live-ids.ts';
import type { ExtractCollectionReport, ExtractOptions } from './options.ts';
import { ExtractRejectsFile } from './rejects-file.ts';
import type { ReadRequest, SourceSession } from './source-session.ts';
import { undatedWarning } from './undated-census.ts';
import { collectionQuery, type CollectionPlan } from './watermark-plan.ts';
import { goneToAsk } from './gone-read.ts';
import { requestedSession, writeRequestedFile, type RequestedIds } from './requested-read.ts';

export interface CollectionContext {
  readonly options: ExtractOptions;
  readonly session: SourceSession;
  readonly run: RunPaths;
  readonly scope: PropagationScope;
  readonly now: () => Date;
  /** A repair run: the `_id`s to read from this collection (null: a read by date). */
  readonly requested?: RequestedIds | null;
}

function topLevelFields(projection: readonly string[]): string[] {
  const fields = new Set<string>(['_id']);
  // Dotted paths are projected as their top-level field, on the server and in dumps alike, so both
  // give the same document.
  for (const p of projection) fields.add(p.split('.')[0]!);
  return [...fields];
}

async function* emptyDocuments(): AsyncGenerator<SourceDocument[]> {}

/** The error for a document whose framing is broken: the dump file and offset (the run stops, as for a truncated file), or the live read's position. */
export function corruption(collection: string): (doc: SourceDocument, cause: BsonDecodeError) => Error {
  return (doc, cause) => {
    const error =
      doc.file !== null && doc.offset !== null
        ? corrupt(doc.file, doc.offset, `invalid BSON document (${cause.message})`)
        : new SourceError('mongo_bad_document', `${collection}: document ${doc.position} of the read is not valid BSON (${cause.message})`, { context: { collection } });
    (error as { cause?: unknown }).cause = cause;
    return error;
  };
}

/** Removes every file the extract of a collection writes (a completed collection after a failed one). */
export async function discardCollection(run: RunPaths, collection: string): Promise<void> {
  const files = [run.extractFile(collection), run.extractRejects(collection), run.extractIdsFile(collection), run.extractRequestedFile(collection)];
  await Promise.all(files.map((f) => rm(f, { force: true })));
}

export async function extractCollection(outer: CollectionContext, plan: CollectionPlan): Promise<ExtractCollectionReport> {
  const requested = outer.requested ?? null;
  // A repair reads by `_id` through the same writer: only the session's documents differ.
  const ctx = requested ? { ...outer, session: requestedSession(outer.session, requested, outer.options.requestChunk) } : outer;
  const { session, run, now } = ctx;
  const name = plan.collection.name;
  const started = now();
  const t0 = performance.now();
  const exists = await session.hasCollection(name);
  const gone = requested || !exists || plan.from === null ? [] : await goneToAsk(session, name, plan.gone, ctx.options.signal);
  const query: Document = requested ? { _id: { $in: run.relative(run.extractRequestedFile(name)) } } : collectionQuery(plan.collection.serverFilter, plan.from, { claimants: plan.claimants, gone });
  const { warnings, warn } = collectionWarnings(ctx.options, name);
  const { request, retries } = readRequest(ctx.options, name, query, plan);
  const progress = startProgress(ctx, name, request, exists, plan, t0, requested?.ids.length);
  if (!exists) warn(`collection "${name}" does not exist in the source: 0 documents, empty file`);

  const read = await readDocuments(ctx, name, request, exists, progress);
  warnAbout(read.written, ctx, name, warn);
  const ids = await propagationIds(ctx, name, exists, warn);
  const record: ExtractCollectionRecord = {
    ...documentsRecord(ctx, name, read),
    filter: EJSON.serialize(query, { relaxed: false }),
    // A repair read gives no watermark: it says which `_id`s it asked for and found instead.
    ...(requested ? { requested: await writeRequestedFile(run, name, requested) } : { watermark: { from: plan.from?.toISOString() ?? null, ...nextWatermark(ctx, read.written) } }),
    order: read.order,
    retries: retries(),
    warnings,
    started_at: started.toISOString(),
    ended_at: now().toISOString(),
    tables: plan.tables.map((t) => t.table),
    ...(ids ? { ids } : {}),
    ...(!requested && plan.claimants.length > 0 ? { claimants: [...plan.claimants] } : {}),
    ...(!requested && plan.gone.length > 0 ? { gone_asked: plan.gone.length } : {}),
  };
  return { collection: name, ...record, seconds: Math.round((performance.now() - t0) / 10) / 100 };
}

/** The collection's warnings: kept for its record, each shown as progress when it comes. */
function collectionWarnings(options: ExtractOptions, name: string): { warnings: string[]; warn: (message: string) => void } {
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    options.onProgress?.({ kind: 'warning', collection: name, message });
  };
  return { warnings, warn };
}

/** The documents pass's read; `retries()`: how many times the source retried it so far. */
function readRequest(options: ExtractOptions, name: string, query: Document, plan: CollectionPlan): { request: ReadRequest; retries: () => number } {
  let retries = 0;
  const request: ReadRequest = {
    collection: name,
    query,
    fields: topLevelFields(plan.collection.projection),
    batchSize: options.model.settings.batchSize,
    signal: options.signal,
    onRetry: (e) => {
      retries += 1;
      options.onProgress?.({ kind: 'collection_retry', collection: name, ...e });
    },
  };
  return { request, retries: () => retries };
}

/**
 * The ids pass when the collection's tables propagate deletes (null otherwise), with its warnings.
 * It comes after the documents pass: a document deleted in between is staged but not live, so load
 * (which deletes after merging) removes it again; one created in between is live but not staged,
 * and the next run's watermark reads it.
 */
async function propagationIds(ctx: CollectionContext, name: string, exists: boolean, warn: (message: string) => void): Promise<ExtractIdsRecord | null> {
  const propagating = ctx.scope.byCollection.get(name) ?? [];
  const ids = propagating.length > 0 ? await extractIds(ctx, name, propagating, exists) : null;
  if (ids && !exists) {
    warn(`delete propagation: collection "${name}" does not exist, so its _id set is empty; load refuses to delete every row of ${ids.tables.join(', ')} unless forced`);
  }
  if (ids && ids.complete === false) {
    warn(`delete propagation: the _id listing of "${name}" is not proved complete (${ids.incomplete_reason}); this run deletes no row of ${ids.withheld_tables!.join(', ')}`);
  }
  return ids;
}

function warnAbout(written: WrittenCollection, ctx: CollectionContext, name: string, warn: (message: string) => void): void {
  if (written.duplicateIds > 0 && ctx.session.clientSide) warn(`${written.duplicateIds} document(s) repeat the _id of the previous one in the dump (all kept)`);
  if (written.rejected > 0) {
    const reasons = Object.entries(written.rejectedReasons).map(([r, n]) => `${r} ${n}`).join(', ');
    warn(`${written.rejected} document(s) could not be staged (${reasons}): listed in ${ctx.run.relative(ctx.run.extractRejects(name))}, the run goes on`);
  }
  if (written.undated && written.undated.documents > 0) warn(undatedWarning(written.undated));
}

/** The figures of the documents pass: the NDJSON file, what was read, rejected and left out, the census. */
function documentsRecord(ctx: CollectionContext, name: string, read: DocumentsRead): Omit<ExtractCollectionRecord, 'filter' | 'watermark' | 'started_at' | 'ended_at' | 'tables'> {
  const { written, rejects } = read;
  return {
    file: ctx.run.relative(ctx.run.extractFile(name)),
    bytes: written.figures.bytes,
    sha256: written.figures.sha256,
    records: written.figures.lines,
    documents: written.documents,
    scanned: written.scanned,
    rejected: written.rejected,
    ...(written.rejected > 0 ? { rejected_reasons: { ...written.rejectedReasons } } : {}),
    ...(rejects ? { rejects: { file: ctx.run.relative(rejects.path), bytes: rejects.bytes, sha256: rejects.sha256, records: rejects.lines } } : {}),
    unmatched: written.unmatched,
    undated: written.undated ?? { documents: 0, fields: { creation_date: {}, update_date: {} } },
  };
}

interface Progress {
  onProgress(f: { documents: number; scanned: number }): void;
}

function startProgress(ctx: CollectionContext, name: string, request: ReadRequest, exists: boolean, plan: CollectionPlan, t0: number, requested?: number): Progress {
  const { options, session } = ctx;
  // The total is for the progress display only: asked in parallel, never waited for.
  let total: number | null = exists ? null : 0;
  if (exists) {
    session.total(request).then(
      (n) => void (total = n),
      () => undefined,
    );
  }
  options.onProgress?.({ kind: 'collection_started', collection: name, total, from: plan.from?.toISOString() ?? null, ...(requested !== undefined ? { requested } : {}) });
  return {
    onProgress: (f) => options.onProgress?.({ kind: 'collection_progress', collection: name, ...f, total, elapsedMs: performance.now() - t0 }),
  };
}

interface DocumentsRead {
  written: WrittenCollection;
  order: 'server' | 'dump' | 'sorted';
  rejects: { path: string; bytes: number; sha256: string; lines: number } | null;
}

async function readDocuments(ctx: CollectionContext, name: string, request: ReadRequest, exists: boolean, progress: Progress): Promise<DocumentsRead> {
  const { options, session, run } = ctx;
  const base = {
    collection: name,
    file: run.extractFile(name),
    clientQuery: session.clientSide ? request.query : null,
    projection: session.clientSide ? new Set(request.fields) : null,
    corrupt: corruption(name),
    trackDates: session.clientSide,
    census: true,
    signal: options.signal,
    progressEveryMs: options.progressEveryMs ?? 250,
    onProgress: progress.onProgress,
  };
  const attempt = async (order: WriteCollectionInput['order']) => {
    const rejects = new ExtractRejectsFile(run.extractRejects(name));
    try {
      const written = await writeCollection({ ...base, rejects, order, documents: exists ? session.documents(request) : emptyDocuments() });
      const figures = await rejects.commit();
      return { written, rejects: figures ? { path: rejects.path, ...figures } : null };
    } catch (error) {
      await rejects.discard();
      throw error;
    }
  };
  try {
    const done = await attempt(session.clientSide ? { kind: 'check' } : { kind: 'trusted' });
    return { ...done, order: session.clientSide ? 'dump' : 'server' };
  } catch (error) {
    if (!(error instanceof NotInIdOrder)) throw error;
    // The dump is not in _id order (natural order after updates that moved documents): read it
    // again through the bounded-memory external sort.
    options.onProgress?.({ kind: 'collection_resorting', collection: name, reason: error.message });
    const sorter = new IdSorter(run.extractDir, { maxChunkBytes: options.sortChunkBytes, signal: options.signal });
    try {
      return { ...(await attempt({ kind: 'sort', sorter })), order: 'sorted' };
    } finally {
      await sorter.cleanup();
    }
  }
}

function nextWatermark(ctx: CollectionContext, written: WrittenCollection): Pick<NonNullable<ExtractCollectionRecord['watermark']>, 'next' | 'next_basis'> {
  const margin = ctx.options.model.settings.watermarkMarginSeconds * 1000;
  const clock = ctx.session.serverClock;
  if (clock) return { next: new Date(clock.getTime() - margin).toISOString(), next_basis: 'server_clock' };
  if (written.latestDate) {
    // A dump has no clock of its own: the latest date it holds is no later than the moment it was
    // taken (capped at our clock against documents dated in the future).
    return { next: new Date(Math.min(written.latestDate.getTime(), ctx.now().getTime()) - margin).toISOString(), next_basis: 'dump_dates' };
  }
  return { next: new Date(0).toISOString(), next_basis: 'dump_no_dates' };
}
