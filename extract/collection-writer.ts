// The one path from documents to a staged NDJSON file, shared by the live server and dumps:
// (dumps only: query matched and projection applied here, order checked or sorted) → the BSON bytes
// written as canonical Extended JSON lines with the staging escapes (staging/ndjson-writer.ts) →
// AtomicFileSink, which hashes and counts while writing `<file>.partial`. A document that cannot
// be staged goes to the rejects file instead, also one whose bytes are not BSON inside a length
// whose top-level fields fill it (the next document is still found); a broken framing stops the read
// (bson-reader.ts, and NdjsonWriter's `framing` for a length its top-level fields do not fill).
import { pipeline } from 'node:stream/promises';
import type { Document } from 'bson';
import { AtomicFileSink, type FileFigures } from '../staging/atomic-file.ts';
import { BsonDecodeError, FieldSet, NdjsonWriter, StagingRefusal, type FieldFacts, type LineFacts } from '../staging/ndjson-writer.ts';
import type { UndatedCensus } from '../staging/manifest-extract.ts';
import { StagingError } from '../errors/etl-error.ts';
import { decodeFields, idOf, topLevelId } from './bson-elements.ts';
import { matchesQuery, queryFieldNames } from './document-match.ts';
import type { IdSorter } from './external-sort.ts';
import { IdTracker } from './id-tracker.ts';
import { IdText, shortValue, type ExtractRejectReason, type ExtractRejectsFile } from './rejects-file.ts';
import { UndatedCounter } from './undated-census.ts';

/** Output is handed to the file in pieces of about this size. */
const WRITE_CHUNK = 1 << 20;

/** A document as a source hands it over: its BSON bytes and where it was read. */
export interface SourceDocument {
  readonly bytes: Buffer;
  /** The dump file (null: the live server). */
  readonly file: string | null;
  /** Byte offset in the (decompressed) dump file; null for the live server. */
  readonly offset: number | null;
  /** 1-based position in the read. */
  readonly position: number;
}

export { NotInIdOrder } from './id-tracker.ts';

export type OrderMode =
  /** The source is sorted by _id (the live server's sort): checked, as a proof, not enforced. */
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
  /** The documents, in batches (a promise per batch, not per document). */
  readonly documents: AsyncIterable<readonly SourceDocument[]>;
  /** Applied here (dumps); null when the server already filtered. */
  readonly clientQuery: Document | null;
  /** Top-level fields kept (dumps); null when the server already projected. */
  readonly projection: ReadonlySet<string> | null;
  readonly order: OrderMode;
  /** Track the latest creation_date/update_date of every document read (the watermark of a dump). */
  readonly trackDates: boolean;
  /** Where refused documents go (the documents pass); null: counted only (the ids pass). */
  readonly rejects: ExtractRejectsFile | null;
  /** Count the staged documents no date can place (the documents pass). */
  readonly census: boolean;
  /** Builds the error for bytes whose framing is broken (the read cannot go on), naming where they were read. */
  readonly corrupt: (doc: SourceDocument, cause: BsonDecodeError) => Error;
  readonly signal?: AbortSignal;
  readonly progressEveryMs: number;
  onProgress?(figures: { documents: number; scanned: number }): void;
}

export interface WrittenCollection {
  readonly figures: FileFigures;
  readonly documents: number;
  readonly scanned: number;
  /**
   * Documents refused, in total and per reason; `rejectedWithId`: those that have an `_id`, known or
   * not (a document whose bytes are not BSON may have one that cannot be read).
   */
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

class CollectionTally {
  documents = 0;
  scanned = 0;
  rejected = 0;
  rejectedWithId = 0;
  unmatched = 0;
  latest = Number.NEGATIVE_INFINITY;
  readonly reasons: Record<string, number> = {};
  readonly undated: UndatedCounter | null;
  readonly ids: IdTracker;
  constructor(input: WriteCollectionInput) {
    this.undated = input.census ? new UndatedCounter() : null;
    this.ids = new IdTracker(input.order.kind === 'check');
  }
  reject(reason: string, hasId: boolean): void {
    this.rejected += 1;
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
    if (hasId) this.rejectedWithId += 1;
  }
  noteDate(ms: number): void {
    if (ms > this.latest) this.latest = ms;
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
      duplicateIds: this.ids.duplicates,
      ascending: this.ids.ascending,
    };
  }
}

export async function writeCollection(input: WriteCollectionInput): Promise<WrittenCollection> {
  const sink = new AtomicFileSink(input.file);
  const tally = new CollectionTally(input);
  const stage = new DocumentStager(input, tally);
  const toChunks = stagedChunks(input.order, stage, tally, progressTicker(input, tally));
  try {
    await pipeline(input.documents, toChunks, sink, { signal: input.signal });
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

/** Called after each batch: reports the figures when `progressEveryMs` went by since the last report. */
function progressTicker(input: WriteCollectionInput, tally: CollectionTally): () => void {
  let lastReport = Date.now();
  return () => {
    const now = Date.now();
    if (now - lastReport >= input.progressEveryMs) {
      lastReport = now;
      input.onProgress?.({ documents: tally.documents, scanned: tally.scanned });
    }
  };
}

/**
 * The pipeline step from batches of documents to the file's bytes, in chunks of about WRITE_CHUNK:
 * each document staged (or rejected) in source order, or, for `sort`, handed to the sorter and
 * written in _id order after the last batch.
 */
function stagedChunks(order: OrderMode, stage: DocumentStager, tally: CollectionTally, tick: () => void) {
  return async function* toChunks(source: AsyncIterable<readonly SourceDocument[]>): AsyncGenerator<Buffer> {
    for await (const batch of source) {
      for (const item of batch) {
        tally.scanned += 1;
        const staged = stage.document(item);
        if (staged === null) continue;
        if (staged.reject) {
          await stage.recordReject(item, staged.reject);
          continue;
        }
        if (order.kind === 'check' || order.kind === 'trusted') tally.ids.follow(item.bytes, staged.id, tally.scanned);
        tally.documents += 1;
        if (order.kind === 'sort') {
          const id = staged.id;
          const value = item.bytes.subarray(id.start, id.end);
          await order.sorter.add(id.type === 0x07 ? null : idOf(item.bytes, id), stage.takeLine(staged.lineStart), { type: id.type, value });
        }
        if (stage.writer.length >= WRITE_CHUNK) yield stage.writer.take();
      }
      tick();
    }
    if (order.kind === 'sort') {
      for await (const entry of order.sorter.sorted()) {
        tally.ids.followDecoded(entry.id);
        yield entry.line;
      }
    }
    if (stage.writer.length > 0) yield stage.writer.take();
  };
}

interface Refused {
  readonly id: unknown;
  readonly reason: ExtractRejectReason;
  readonly detail: string;
  readonly value: string | null;
}

type Staged = { readonly lineStart: number; readonly id: LineFacts['id']; readonly reject?: undefined } | { readonly reject: Refused };

/** Only the `_id`: what a reject of bytes that are not BSON can still name. */
const ID_ONLY = new FieldSet(['_id']);
/** No field: the top-level fields walked, none written (does the document's length hold them exactly?). */
const NO_FIELDS = new FieldSet([]);

/** Per document: the query (dumps), then the line written, or why not. */
class DocumentStager {
  readonly writer = new NdjsonWriter({ chunkBytes: WRITE_CHUNK + (1 << 16) });
  private readonly keep: FieldSet | null;
  private readonly queryFields: ReadonlySet<string> | null;

  constructor(
    private readonly input: WriteCollectionInput,
    private readonly tally: CollectionTally,
  ) {
    this.keep = input.projection ? new FieldSet(input.projection) : null;
    const query = input.clientQuery && Object.keys(input.clientQuery).length > 0 ? input.clientQuery : null;
    // Dates are decoded with the query fields when a dump's watermark needs them anyway.
    this.queryFields = query ? new Set([...queryFieldNames(query), ...(input.trackDates ? ['creation_date', 'update_date'] : [])]) : null;
  }

  /** The staged line's start and the document's `_id` facts, a reject to record, or null (left out by the query). */
  document(item: SourceDocument): Staged | null {
    const { input, tally } = this;
    if (this.queryFields) {
      const matched = this.matches(item);
      if (typeof matched !== 'boolean') return matched;
      if (!matched) {
        tally.unmatched += 1;
        return null;
      }
    }
    const lineStart = this.writer.length;
    let facts: LineFacts;
    try {
      facts = this.writer.writeLine(item.bytes, this.keep);
    } catch (error) {
      if (error instanceof BsonDecodeError) return this.notBson(item, error);
      if (!(error instanceof StagingRefusal)) throw error;
      // Refused before its last field was read: its length is trusted only if its fields fill it.
      const framing = this.probe(item.bytes).framing;
      if (framing) throw input.corrupt(item, framing);
      return { reject: { id: error.idText === undefined ? topLevelId(item.bytes) : new IdText(error.idText), reason: error.reason, detail: error.detail, value: null } };
    }
    if (input.trackDates && !this.queryFields) this.noteDates(item.bytes, facts);
    if (facts.id.type === 0) {
      const value = shortValue(this.writer.textFrom(lineStart));
      this.writer.rollback(lineStart);
      return { reject: { id: undefined, reason: 'missing_id', detail: 'the document has no _id', value } };
    }
    this.tally.undated?.note(facts);
    return { lineStart, id: facts.id };
  }

  /** A dump's query, on the fields it reads (and the dates, which a dump's watermark needs anyway); a reject when they are not BSON. */
  private matches(item: SourceDocument): boolean | Staged {
    let fields: Document;
    try {
      fields = decodeFields(item.bytes, this.queryFields!);
    } catch (cause) {
      return this.notBson(item, cause instanceof BsonDecodeError ? cause : new BsonDecodeError((cause as Error).message, 0));
    }
    if (this.input.trackDates) for (const v of [fields.creation_date, fields.update_date]) if (v instanceof Date) this.tally.noteDate(v.getTime());
    return matchesQuery(fields, this.input.clientQuery!);
  }

  /**
   * Bytes that are not BSON. Inside a value (a subdocument, an array) the document is rejected
   * alone and the read goes on; where its top-level fields do not fill its length, the length is in
   * doubt (it may run over the next documents) and the read stops, naming file and offset.
   */
  private notBson(item: SourceDocument, cause: BsonDecodeError): Staged {
    const probe = this.probe(item.bytes);
    const framing = cause.framing ? cause : probe.framing;
    if (framing) throw this.input.corrupt(item, framing);
    return { reject: { id: probe.id, reason: 'invalid_bson', detail: `the document is not BSON: ${cause.message}`, value: null } };
  }

  /** The top-level fields of damaged bytes, walked by the writer: whether they fill its length, and the `_id` when the fields before the damage hold it. */
  private probe(bytes: Buffer): { framing: BsonDecodeError | null; id: unknown } {
    const at = this.writer.length;
    let id: FieldFacts | null = null;
    // Walked without writing a field first: damage in a value must not hide fields that run over.
    for (const keep of [NO_FIELDS, ID_ONLY]) {
      try {
        const facts = this.writer.writeLine(bytes, keep);
        this.writer.rollback(at);
        if (keep === ID_ONLY) id = facts.id;
      } catch (error) {
        if (error instanceof BsonDecodeError && error.framing) return { framing: error, id: undefined };
        if (error instanceof BsonDecodeError) id = error.id;
      }
    }
    if (id === null || id.type === 0) return { framing: null, id: topLevelId(bytes) };
    try {
      return { framing: null, id: idOf(bytes, id) };
    } catch {
      return { framing: null, id: undefined };
    }
  }

  /** The line written from `lineStart` (a view, valid until the next write), taken out of the output: the sorter holds it instead. */
  takeLine(lineStart: number): Buffer {
    const line = this.writer.bytesFrom(lineStart);
    this.writer.rollback(lineStart);
    return line;
  }

  private noteDates(bytes: Buffer, facts: LineFacts): void {
    for (const f of [facts.creationDate, facts.updateDate]) {
      if (f.type !== 0x09) continue;
      // The int64 as a double (exact within JavaScript's Date range, which is all noteDate keeps).
      const ms = bytes.readInt32LE(f.start + 4) * 0x100000000 + bytes.readUInt32LE(f.start);
      if (Math.abs(ms) <= 8.64e15) this.tally.noteDate(ms);
    }
  }


  async recordReject(item: SourceDocument, r: Refused): Promise<void> {
    // Bytes that are not BSON may hold an `_id` that cannot be read: counted as having one, so the
    // ids pass never calls a listing complete that may lack it.
    this.tally.reject(r.reason, r.id !== undefined || r.reason === 'invalid_bson');
    await this.input.rejects?.write({ collection: this.input.collection, id: r.id, file: item.file, offset: item.offset, position: item.position, reason: r.reason, detail: r.detail, value: r.value });
  }
}
