// The one path from documents to a staged NDJSON file, shared by the live server and dumps:
// (dumps only: filter applied here, order checked or sorted) → documents that cannot be staged to
// the rejects file → canonical Extended JSON lines (with the staging escapes, staging/ndjson-escape.ts)
// → AtomicFileSink, which hashes and counts while writing `<file>.partial`.
import { pipeline } from 'node:stream/promises';
import type { Document } from 'bson';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import { encodeStagedDocument, InvalidUtf8String, WideDate } from '../staging/ndjson-escape.ts';
import type { UndatedCensus } from '../staging/manifest-extract.ts';
import { StagingError } from '../model/errors.ts';
import { compareBson } from './bson-order.ts';
import { TOO_DEEP_DETAIL, type Decoded, type ExtractRejectReason } from './decode-document.ts';
import { matchesQuery } from './document-match.ts';
import type { IdSorter } from './external-sort.ts';
import { shortValue, type ExtractRejectsFile } from './rejects-file.ts';
import { UndatedCounter } from './undated-census.ts';

/** Lines are grouped into writes of about this size (one write per document would be slow). */
const WRITE_CHUNK = 1 << 16;

/** A document as a source hands it over: decoded (or refused) and where it was read. */
export interface SourceDocument {
  readonly decoded: Decoded;
  /** The dump file (null: the live server). */
  readonly file: string | null;
  /** Byte offset in the (decompressed) dump file; null for the live server. */
  readonly offset: number | null;
  /** 1-based position in the read. */
  readonly position: number;
}

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
  readonly collection: string;
  readonly file: string;
  readonly documents: AsyncIterable<SourceDocument>;
  /** Applied here (dumps); null when the server already filtered. */
  readonly clientQuery: Document | null;
  readonly order: OrderMode;
  /** Track the latest creation_date/update_date of every document read (the watermark of a dump). */
  readonly trackDates: boolean;
  /** Where refused documents go (the documents pass); null: counted only (the ids pass). */
  readonly rejects: ExtractRejectsFile | null;
  /** Count the staged documents no date can place (the documents pass). */
  readonly census: boolean;
  readonly signal?: AbortSignal;
  readonly progressEveryMs: number;
  onProgress?(figures: { documents: number; scanned: number }): void;
}

export interface WrittenCollection {
  readonly figures: FileFigures;
  readonly documents: number;
  readonly scanned: number;
  /** Documents refused, in total and per reason; `rejectedWithId`: those whose `_id` is known. */
  readonly rejected: number;
  readonly rejectedReasons: Readonly<Record<string, number>>;
  readonly rejectedWithId: number;
  /** Documents the client-side query left out (dumps). */
  readonly unmatched: number;
  readonly undated: UndatedCensus | null;
  /** Latest creation_date / update_date seen (trackDates only). */
  readonly latestDate: Date | null;
  /** Documents whose _id equals the previous one (a dump taken while the data moved). */
  readonly duplicateIds: number;
  /** Order mode 'trusted': every _id was greater than the one before (the server's order is the one we resume by). */
  readonly ascending: boolean;
}

const NO_ID = Symbol('no previous _id');

/** Why a decoded document cannot be staged after all, or null when it can. */
function refusal(doc: Document, tooDeep: boolean): { reason: ExtractRejectReason; detail: string } | null {
  if (tooDeep) return { reason: 'too_deep', detail: TOO_DEEP_DETAIL };
  const id = doc._id;
  if (id === undefined) return { reason: 'missing_id', detail: 'the document has no _id' };
  // Such an _id cannot be ordered, resumed after or compared by the tools downstream.
  if (id instanceof InvalidUtf8String) return { reason: 'invalid_utf8', detail: 'the _id is a string that is not valid UTF-8' };
  if (id instanceof WideDate) return { reason: 'invalid_id', detail: `the _id is a date of ${id.millis} ms, beyond any calendar` };
  return null;
}

class CollectionTally {
  documents = 0;
  scanned = 0;
  rejected = 0;
  rejectedWithId = 0;
  unmatched = 0;
  duplicateIds = 0;
  ascending = true;
  latest = Number.NEGATIVE_INFINITY;
  readonly reasons: Record<string, number> = {};
  readonly undated: UndatedCounter | null;
  constructor(census: boolean) {
    this.undated = census ? new UndatedCounter() : null;
  }
  reject(reason: string, hasId: boolean): void {
    this.rejected += 1;
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
    if (hasId) this.rejectedWithId += 1;
  }
  noteDates(doc: Document): void {
    for (const v of [doc.creation_date, doc.update_date]) if (v instanceof Date && v.getTime() > this.latest) this.latest = v.getTime();
  }
  result(figures: FileFigures): WrittenCollection {
    return {
      figures,
      documents: this.documents,
      scanned: this.scanned,
      rejected: this.rejected,
      rejectedReasons: this.reasons,
      rejectedWithId: this.rejectedWithId,
      unmatched: this.unmatched,
      undated: this.undated?.result() ?? null,
      latestDate: Number.isFinite(this.latest) ? new Date(this.latest) : null,
      duplicateIds: this.duplicateIds,
      ascending: this.ascending,
    };
  }
}

/** Follows the _ids as they are staged: the order a dump must keep, the duplicates, the server's ascending order. */
function idOrder(mode: OrderMode['kind'], tally: CollectionTally): (id: unknown, position: number) => void {
  let previousId: unknown = NO_ID;
  return (id, position) => {
    if (previousId !== NO_ID) {
      const c = compareBson(previousId, id);
      if (c > 0 && mode === 'check') throw new NotInIdOrder(position);
      if (c >= 0 && mode === 'trusted') tally.ascending = false;
      if (c === 0) tally.duplicateIds += 1;
    }
    previousId = id;
  };
}

export async function writeCollection(input: WriteCollectionInput): Promise<WrittenCollection> {
  const sink = new AtomicFileSink(input.file);
  const tally = new CollectionTally(input.census);
  let lastReport = Date.now();
  const tick = () => {
    const now = Date.now();
    if (now - lastReport >= input.progressEveryMs) {
      lastReport = now;
      input.onProgress?.({ documents: tally.documents, scanned: tally.scanned });
    }
  };
  const order = input.order;
  const follow = order.kind === 'any' ? null : idOrder(order.kind, tally);

  async function* toLines(source: AsyncIterable<SourceDocument>): AsyncGenerator<string> {
    let buffer = '';
    for await (const item of source) {
      tally.scanned += 1;
      const line = await lineOf(item, input, tally);
      if (line === null) {
        if ((tally.scanned & 1023) === 0) tick();
        continue;
      }
      // A sorted read follows the order when the sorter hands the lines back.
      if (order.kind !== 'sort') follow?.(line.id, tally.scanned);
      tally.documents += 1;
      if (order.kind === 'sort') await order.sorter.add(line.id, line.text);
      else buffer += line.text;
      if (buffer.length >= WRITE_CHUNK) {
        yield buffer;
        buffer = '';
      }
      if ((tally.documents & 255) === 0) tick();
    }
    if (order.kind === 'sort') {
      for await (const entry of order.sorter.sorted()) {
        follow?.(entry.id, 0);
        buffer += entry.line;
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
  if (figures.lines !== tally.documents) {
    // Canonical EJSON escapes newlines inside strings, so this would be a bug, not bad data.
    throw new StagingError('ndjson_line_count', `${input.file}: ${tally.documents} documents but ${figures.lines} lines written`, { context: { file: input.file } });
  }
  input.onProgress?.({ documents: tally.documents, scanned: tally.scanned });
  return tally.result(figures);
}

/** One source document → its staged line and `_id`, or null (left out by the query, or rejected and recorded). */
async function lineOf(item: SourceDocument, input: WriteCollectionInput, tally: CollectionTally): Promise<{ id: unknown; text: string } | null> {
  const { decoded } = item;
  if (!decoded.ok) {
    await rejectDocument(input, tally, item, decoded.id, decoded.reason, decoded.detail, null);
    return null;
  }
  const doc = decoded.doc;
  if (input.trackDates) tally.noteDates(doc);
  if (input.clientQuery && !matchesQuery(doc, input.clientQuery)) {
    tally.unmatched += 1;
    return null;
  }
  const refused = refusal(doc, decoded.scan.tooDeep);
  if (refused) {
    const value = refused.reason === 'too_deep' ? null : shortValue(encodeStagedDocument(doc, decoded.scan).trimEnd());
    await rejectDocument(input, tally, item, doc._id, refused.reason, refused.detail, value);
    return null;
  }
  tally.undated?.note(doc);
  return { id: doc._id, text: encodeStagedDocument(doc, decoded.scan) };
}

async function rejectDocument(
  input: WriteCollectionInput,
  tally: CollectionTally,
  item: SourceDocument,
  id: unknown,
  reason: ExtractRejectReason,
  detail: string,
  value: string | null,
): Promise<void> {
  tally.reject(reason, id !== undefined);
  await input.rejects?.write({ collection: input.collection, id, file: item.file, offset: item.offset, position: item.position, reason, detail, value });
}
