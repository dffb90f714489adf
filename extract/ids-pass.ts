// The ids pass of delete propagation: every `_id` of the collection (and the fields the tables'
// filters read), no date filter, streamed to extract/<collection>.ids.ndjson. Load deletes the rows
// whose document is not in this listing, so a listing that missed a document would delete a live
// row: the listing is trusted only when proved complete.
//
// Proof. A dump is read whole: complete by construction. Live, a cursor sorted by `_id` sees every
// document that exists throughout the scan, and a resumed cursor continues after the last `_id` in
// the server's order (live-source.ts); the proof checks both facts instead of assuming them: the
// `_id`s came strictly ascending (so the server orders them as we resume by, and none came twice),
// and there are at least as many as a count with the same filter found before the listing and
// after it. A listing shorter than either count may have missed a document (or documents were
// deleted while it ran: the next run will tell); then `complete: false`, `tables` is emptied (no
// table derives live keys from it) and the tables it was for are named in `withheld_tables`.
// What the counts cannot see: a document skipped while as many others, already listed, were
// deleted during the pass. Without a snapshot read no count can; the ascending check and the
// resume condition are what stand against it.
import { EJSON } from 'bson';
import type { TableModel } from '../model/types.ts';
import type { ExtractIdsRecord } from '../staging/manifest-extract.ts';
import { corruption, type CollectionContext } from './collection-extract.ts';
import { writeCollection, type SourceDocument, type WrittenCollection } from './collection-writer.ts';
import { idsQuery } from './live-ids.ts';
import type { ReadRequest } from './source-session.ts';

async function* noDocuments(): AsyncGenerator<SourceDocument[]> {}

export async function extractIds(ctx: CollectionContext, name: string, tables: readonly TableModel[], exists: boolean): Promise<ExtractIdsRecord> {
  const { options, session, run, now } = ctx;
  const file = run.extractIdsFile(name);
  const { query, fields } = idsQuery(tables);
  const started = now();
  const t0 = performance.now();
  const request: ReadRequest = {
    collection: name,
    query,
    fields,
    batchSize: options.model.settings.batchSize,
    signal: options.signal,
    onRetry: (e) => options.onProgress?.({ kind: 'collection_retry', collection: name, ...e }),
  };
  const countBefore = exists ? await session.count(request) : null;
  const written = await writeCollection({
    collection: name,
    file,
    documents: exists ? session.documents(request) : noDocuments(),
    clientQuery: session.clientSide ? query : null,
    projection: session.clientSide ? new Set(fields) : null,
    corrupt: corruption(name),
    // A set needs no order: a dump is read once, as it lies. Live, the server's order is checked.
    order: session.clientSide ? { kind: 'any' } : { kind: 'trusted' },
    trackDates: false,
    rejects: null,
    census: false,
    signal: options.signal,
    progressEveryMs: options.progressEveryMs ?? 250,
    onProgress: (f) => options.onProgress?.({ kind: 'collection_ids_progress', collection: name, ids: f.documents, elapsedMs: performance.now() - t0 }),
  });
  const countAfter = exists ? await session.count(request) : null;
  const proof = proveComplete(written, countBefore, countAfter);
  const names = tables.map((t) => t.name);
  return {
    file: run.relative(file),
    bytes: written.figures.bytes,
    sha256: written.figures.sha256,
    records: written.figures.lines,
    filter: EJSON.serialize(query, { relaxed: false }),
    fields: fields.filter((f) => f !== '_id'),
    documents: written.documents,
    scanned: written.scanned,
    rejected: written.rejected,
    complete: proof === null,
    count_before: countBefore,
    count_after: countAfter,
    ...(proof === null ? { tables: names } : { incomplete_reason: proof, withheld_tables: names, tables: [] }),
    started_at: started.toISOString(),
    ended_at: now().toISOString(),
  };
}

/** null when the listing is proved complete, else why not. Counts are null for a dump (read whole). */
function proveComplete(written: WrittenCollection, countBefore: number | null, countAfter: number | null): string | null {
  if (written.rejectedWithId > 0) {
    return `${written.rejectedWithId} document(s) with an _id could not be read, so whether their rows stay cannot be decided`;
  }
  if (countBefore === null || countAfter === null) return null;
  if (!written.ascending) return 'the server did not hand the _ids over in strictly ascending order';
  const listed = written.documents + written.rejected;
  if (listed < countBefore || listed < countAfter) {
    return `${listed} _id(s) listed, but ${countBefore} counted before the listing and ${countAfter} after it`;
  }
  return null;
}
