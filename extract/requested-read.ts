// The restricted read of a repair run (`etl repair`): exactly the documents whose `_id` is asked
// for, from the live server, chunk after chunk as `{_id: {$in: chunk}}` sorted by `_id`. The `_id`s
// are sorted in the server's order first (bson-order.ts), so the chunks follow one another and the
// staged file is in `_id` order like any live read. No date filter and no server filter: transform
// decides membership, so a document that left a table's filter loses its row.
//
// Which `_id`s were found is told by the server's own equality (compareBson = 0), not by their
// text, and every `_id` asked for is staged with the answer in extract/<collection>.requested.ndjson:
// transform names the absent ones in each table's keys file, so load removes what they owned.
import { once } from 'node:events';
import { SourceError } from '../errors/etl-error.ts';
import { AtomicFileSink } from '../staging/atomic-file.ts';
import type { ExtractRequestedRecord } from '../staging/manifest-extract.ts';
import { encodeDocument } from '../staging/ndjson.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { topLevelId } from './bson-elements.ts';
import { compareBson } from './bson-order.ts';
import type { SourceDocument } from './collection-writer.ts';
import type { ReadRequest, SourceSession } from './source-session.ts';

/** `_id`s a query names at once: small enough for any server's query size, large enough to be cheap. */
const REQUEST_CHUNK = 1000;

/** The `_id`s asked of one collection, sorted and without repeats, and which of them were found. */
export class RequestedIds {
  readonly ids: readonly unknown[];
  private readonly found: boolean[];

  constructor(ids: readonly unknown[]) {
    const sorted = [...ids].sort(compareBson);
    this.ids = sorted.filter((id, i) => i === 0 || compareBson(sorted[i - 1], id) !== 0);
    this.found = new Array<boolean>(this.ids.length).fill(false);
  }

  /** Marks the `_id` (of a document the server returned for chunk `start…end`) found. */
  noteFound(id: unknown, start: number, end: number): void {
    let lo = start;
    let hi = end - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = compareBson(this.ids[mid], id);
      if (c === 0) {
        this.found[mid] = true;
        return;
      }
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
  }

  isFound(i: number): boolean {
    return this.found[i] === true;
  }

  get foundCount(): number {
    return this.found.filter(Boolean).length;
  }
}

/**
 * The live session, reading only the requested `_id`s (the request's own query is replaced). A dump
 * cannot be read by `_id` without reading it whole: repair reads the live server, as diff does.
 */
export function requestedSession(session: SourceSession, requested: RequestedIds, chunk = REQUEST_CHUNK): SourceSession {
  if (session.clientSide) throw dumpRefused();
  return {
    ...session,
    documents: (request) => readRequested(session, requested, request, chunk),
    total: async () => requested.ids.length,
    count: async () => null,
  };
}

export function dumpRefused(): SourceError {
  return new SourceError('repair_needs_live_source', 'a repair reads documents by _id from the live MongoDB server, not from a dump', {
    hint: 'point etl repair at the MongoDB server (MONGODB_URL or --mongo-url)',
  });
}

async function* readRequested(session: SourceSession, requested: RequestedIds, request: ReadRequest, chunk: number): AsyncGenerator<readonly SourceDocument[]> {
  let position = 0;
  for (let start = 0; start < requested.ids.length; start += chunk) {
    const end = Math.min(requested.ids.length, start + chunk);
    const query = { _id: { $in: requested.ids.slice(start, end) } };
    for await (const batch of session.documents({ ...request, query })) {
      for (const doc of batch) requested.noteFound(topLevelId(doc.bytes), start, end);
      // Positions run on across chunks, as in one read.
      yield batch.map((d) => ({ ...d, position: (position += 1) }));
    }
  }
}

/** extract/<collection>.requested.ndjson: every `_id` asked for, in `_id` order, with whether it was found. */
export async function writeRequestedFile(run: RunPaths, collection: string, requested: RequestedIds): Promise<ExtractRequestedRecord> {
  const file = run.extractRequestedFile(collection);
  const sink = new AtomicFileSink(file);
  try {
    for (let i = 0; i < requested.ids.length; i += 1) {
      if (!sink.write(encodeDocument({ _id: requested.ids[i], found: requested.isFound(i) }))) await once(sink, 'drain');
    }
    await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const figures = await sink.commit();
    const found = requested.foundCount;
    return { file: run.relative(file), bytes: figures.bytes, sha256: figures.sha256, records: figures.lines, ids: requested.ids.length, found, absent: requested.ids.length - found };
  } catch (error) {
    await sink.discard();
    throw error;
  }
}
