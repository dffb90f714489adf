// Documents a load found gone (etl_gone, load/gone-documents.ts) are asked for again by every
// incremental read, whatever their dates: one restored from a backup keeps its old `_id` and dates.
// From the live server, which of them exist again is asked first, by `_id`, a chunk at a time (an
// index lookup each), so the read's query names only those: the list of every document ever found
// gone grows with time and would outgrow a query (16 MB) and the manifest that records it. A dump is
// matched on our side, by a set (document-match.ts): its query names them all.
import { keyIdValues } from '../staging/document-identity.ts';
import { RequestedIds, requestedSession } from './requested-read.ts';
import type { SourceSession } from './source-session.ts';

/** The `_id`s to ask for again: every value the gone keys' text may be (dump), or those the server holds (live). */
export async function goneToAsk(session: SourceSession, collection: string, keys: readonly string[], signal?: AbortSignal): Promise<unknown[]> {
  const values = keys.flatMap(keyIdValues);
  if (session.clientSide || values.length === 0) return values;
  // The repair's read by `_id` (chunks of 1,000, each `_id` marked found), of `_id`s alone.
  const requested = new RequestedIds(values);
  const batches = requestedSession(session, requested).documents({ collection, query: {}, fields: ['_id'], batchSize: 1000, signal });
  for await (const _batch of batches) {
    // Reading marks them found.
  }
  return requested.ids.filter((_, i) => requested.isFound(i));
}
