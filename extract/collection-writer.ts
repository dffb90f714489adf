// The one path from documents to a staged NDJSON file, shared by the live server and dumps:
// (dumps only: filter and projection applied here, order checked or sorted) → canonical Extended
// JSON lines → AtomicFileSink, which hashes and counts while writing `<file>.partial`.
import { pipeline } from 'node:stream/promises';
import type { Document } from 'bson';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import { encodeDocument } from '../staging/ndjson.ts';
import { StagingError } from '../model/errors.ts';
import { compareBson } from './bson-order.ts';
import { matchesQuery, projectDocument } from './document-match.ts';
import type { IdSorter } from './external-sort.ts';

/** Lines are grouped into writes of about this size (one write per document would be slow). */
const WRITE_CHUNK = 1 << 16;

/** Raised when a dump turns out not to be in _id order: the caller re-reads it through the sorter. */
export class NotInIdOrder extends Error {
  override name = 'NotInIdOrder';
  constructor(readonly scanned: number) {
    super(`documents not in _id order (document ${scanned} of the dump)`);
  }
}

export type OrderMode =
  /** The source is sorted by _id (the live server's sort). */
  | { readonly kind: 'trusted' }
  /** A dump: write while _ids ascend, throw NotInIdOrder at the first that does not. */
  | { readonly kind: 'check' }
  /** A dump known to be out of order: through the external sorter. */
  | { readonly kind: 'sort'; readonly sorter: IdSorter }
  /** Source order, unchecked: the ids file of delete propagation is a set, not a sequence. */
  | { readonly kind: 'any' };

export interface WriteCollectionInput {
  readonly file: string;
  readonly documents: AsyncIterable<Document>;
  /** Applied here (dumps); null when the server already filtered. */
  readonly clientQuery: Document | null;
  /** Top-level fields kept (dumps); null when the server already projected. */
  readonly projection: ReadonlySet<string> | null;
  readonly order: OrderMode;
  /** Track the latest creation_date/update_date of every document read (the watermark of a dump). */
  readonly trackDates: boolean;
  readonly signal?: AbortSignal;
  readonly progressEveryMs: number;
  onProgress?(figures: { documents: number; scanned: number }): void;
}

export interface WrittenCollection {
  readonly figures: FileFigures;
  readonly documents: number;
  readonly scanned: number;
  /** Latest creation_date / update_date seen (trackDates only). */
  readonly latestDate: Date | null;
  /** Documents whose _id equals the previous one (a dump taken while the data moved). */
  readonly duplicateIds: number;
}

const NO_ID = Symbol('no previous _id');

export async function writeCollection(input: WriteCollectionInput): Promise<WrittenCollection> {
  const sink = new AtomicFileSink(input.file);
  let documents = 0;
  let scanned = 0;
  let duplicateIds = 0;
  let latest = Number.NEGATIVE_INFINITY;
  let lastReport = Date.now();

  const tick = () => {
    const now = Date.now();
    if (now - lastReport >= input.progressEveryMs) {
      lastReport = now;
      input.onProgress?.({ documents, scanned });
    }
  };

  async function* toLines(source: AsyncIterable<Document>): AsyncGenerator<string> {
    let buffer = '';
    let previousId: unknown = NO_ID;
    for await (const doc of source) {
      scanned += 1;
      if (input.trackDates) {
        for (const v of [doc.creation_date, doc.update_date]) if (v instanceof Date && v.getTime() > latest) latest = v.getTime();
      }
      if (input.clientQuery && !matchesQuery(doc, input.clientQuery)) {
        if ((scanned & 1023) === 0) tick();
        continue;
      }
      const out = input.projection ? projectDocument(doc, input.projection) : doc;
      if (input.order.kind === 'check') {
        if (previousId !== NO_ID) {
          const c = compareBson(previousId, out._id);
          if (c > 0) throw new NotInIdOrder(scanned);
          if (c === 0) duplicateIds += 1;
        }
        previousId = out._id;
      }
      const line = encodeDocument(out);
      documents += 1;
      if (input.order.kind === 'sort') {
        await input.order.sorter.add(out._id, line);
      } else {
        buffer += line;
        if (buffer.length >= WRITE_CHUNK) {
          yield buffer;
          buffer = '';
        }
      }
      if ((documents & 255) === 0) tick();
    }
    if (input.order.kind === 'sort') {
      for await (const entry of input.order.sorter.sorted()) {
        buffer += entry.line;
        if (previousId !== NO_ID && compareBson(previousId, entry.id) === 0) duplicateIds += 1;
        previousId = entry.id;
        if (buffer.length >= WRITE_CHUNK) {
          yield buffer;
          buffer = '';
        }
      }
    }
    if (buffer) yield buffer;
  }

  try {
    await pipeline(input.documents, toLines, sink, { signal: input.signal });
  } catch (error) {
    await sink.discard();
    throw error;
  }
  const figures = await sink.commit();
  if (figures.lines !== documents) {
    // Canonical EJSON escapes newlines inside strings, so this would be a bug, not bad data.
    throw new StagingError('ndjson_line_count', `${input.file}: ${documents} documents but ${figures.lines} lines written`, { context: { file: input.file } });
  }
  input.onProgress?.({ documents, scanned });
  return { figures, documents, scanned, latestDate: Number.isFinite(latest) ? new Date(latest) : null, duplicateIds };
}
