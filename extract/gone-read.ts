// Documents a load found gone (etl_gone, load/gone-documents.ts) are asked for again by every
// incremental read, whatever their dates: one restored from a backup keeps its old `_id` and dates.
// From the live server, which of them exist again is asked first, by `_id`, a chunk at a time (an
// index lookup each), so the read's query names only those: the list of every document ever found
// gone grows with time and would outgrow a query (16 MB) and the manifest that records it. A dump is
// matched on our side, by a set (document-match.ts): its query names them all.
import { keyIdValues } from '../staging/document-identity.ts';
import { topLevelId } from './bson-elements.ts';
import { REQUEST_CHUNK } from './requested-read.ts';
import type { SourceSession } from './source-session.ts';

/** The `_id`s to ask for again: every value the gone keys' text may be (dump), or those the server holds (live). */
export async function goneToAsk(session: SourceSession, collection: string, keys: readonly string[], signal?: AbortSignal): Promise<unknown[]> {
  const values = keys.flatMap(keyIdValues);
  if (session.clientSide || values.length === 0) return values;
  const found: unknown[] = [];
  for (let start = 0; start < values.length; start += REQUEST_CHUNK) {
    const query = { _id: { $in: values.slice(start, start + REQUEST_CHUNK) } };
    for await (const batch of session.documents({ collection, query, fields: ['_id'], batchSize: REQUEST_CHUNK, signal })) {
      for (const doc of batch) found.push(topLevelId(doc.bytes));
    }
  }
  return found;
}
