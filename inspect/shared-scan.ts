// A collection feeding several tables (users → users, user_events, users_targets) is read once for
// all of them: each document goes through every table's mapper. The first table's records stream
// straight into its COPY while the collection is read; the others' are written to one CSV file per
// table (a temporary folder), which that table's comparison COPYs once the scan is done. The
// collection is read with its server filter (the OR of its tables' filters, as extract reads it) and
// each table keeps only the documents its own filter matches, so every table sees exactly the
// documents a scan of its own would return. Memory stays flat: files, not arrays, hold the records.
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { deserialize, EJSON } from 'bson';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { mongoGoneHint, mongoWentAway, type MongoConnection } from '../connect/mongo.ts';
import { redactText } from '../errors/redact.ts';
import { compileFilter, type DocumentTest } from '../mapping/filter.ts';
import { SourceError } from '../errors/etl-error.ts';
import type { CollectionModel, PipelineModel } from '../model/types.ts';
import { CsvBatch } from '../staging/csv-batch.ts';
import { makeScratchDir } from '../staging/scratch-dir.ts';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';
import { BsonDecodeError, FieldSet, NdjsonWriter, StagingRefusal } from '../staging/ndjson-writer.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { readAhead } from './read-ahead.ts';
import { expectedHeader, type TableDiffSql } from './diff-sql.ts';
import type { SkipCounts, TableMapper } from './expected-rows.ts';

export interface ExpectedCounts {
  readonly documents: number;
  readonly skipped: SkipCounts;
}

/** Fills the expected temporary table of one comparison; returns what the table's documents gave. */
export type ExpectedSource = (client: pg.Client, q: TableDiffSql) => Promise<ExpectedCounts>;

export interface ScanOptions {
  readonly model: PipelineModel;
  readonly signal?: AbortSignal;
  readonly secrets: readonly string[];
  readonly onDocuments?: (table: string, documents: number) => void;
}

/** One expected record as a CSV row: ord, status, source id, column, reason, cells. */
type Row = (string | null)[];

const ignore = (): void => undefined;

/**
 * A raw document as transform reads it: the line extract would stage (staging/ndjson-writer.ts,
 * escapes included, only the top-level fields of `keep`), parsed. A document extract would refuse
 * (too deep, invalid UTF-8 it cannot carry) or bytes that are not BSON keep bson's own decoding, as
 * before, with the same fields.
 */
function stagedForm(keep: ReadonlySet<string> | null): (raw: Uint8Array) => RawDocument {
  const writer = new NdjsonWriter({ chunkBytes: 1 << 16 });
  const fields = keep ? new FieldSet(keep) : null;
  return (raw) => {
    const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    try {
      writer.writeLine(bytes, fields);
    } catch (error) {
      if (!(error instanceof StagingRefusal || error instanceof BsonDecodeError)) throw error;
      const doc = EJSON.serialize(deserialize(raw, BSON_READ_OPTIONS), { relaxed: false }) as RawDocument;
      return keep ? (Object.fromEntries(Object.entries(doc).filter(([k]) => keep.has(k))) as RawDocument) : doc;
    }
    const text = writer.bytesFrom(0).toString('utf8');
    writer.rollback(0);
    return JSON.parse(text) as RawDocument;
  };
}

/**
 * A cursor over the collection: raw BSON, the pipeline's batch size, read ahead, decoded as extract
 * stages it. The pipeline's projection (top-level fields, as extract projects them) is applied here
 * while decoding, not by the server: unprojected fields are skipped by their length without being
 * decoded, whereas a projection on FerretDB costs the server (the bottleneck of the read) about a
 * tenth more CPU. The documents are the same either way.
 */
async function* documentsOf(
  mongo: MongoConnection,
  collection: CollectionModel | undefined,
  name: string,
  filter: Readonly<Record<string, unknown>> | null,
  o: ScanOptions,
  table?: string,
): AsyncGenerator<RawDocument> {
  // The collection's projection is top-level names already (model/load-pipeline.ts collectionsOf).
  const keep = collection ? new Set(['_id', ...collection.projection]) : null;
  const cursor = mongo.db.collection(name).find(filter ? { ...filter } : {}, { batchSize: o.model.settings.batchSize, raw: true });
  try {
    const decode = stagedForm(keep);
    // Two batches ahead: the server reads the next one while this one is mapped.
    for await (const raw of readAhead(cursor as unknown as AsyncIterable<Uint8Array>, 2 * o.model.settings.batchSize)) yield decode(raw);
  } catch (error) {
    if (o.signal?.aborted) throw error;
    const gone = mongoWentAway(error);
    throw new SourceError(gone ? 'mongo_connection_lost' : 'mongo_read_failed', `reading ${name} failed: ${redactText(error instanceof Error ? error.message : String(error), o.secrets)}`, {
      context: { collection: name, ...(table ? { table } : {}) },
      ...(gone ? { hint: mongoGoneHint('diff') } : {}),
      cause: error,
    });
  } finally {
    await cursor.close().catch(() => undefined);
  }
}

/** A table's documents streamed from its own scan straight into the COPY (a collection feeding one table). */
export function streamedSource(mongo: MongoConnection, mapper: TableMapper, o: ScanOptions): ExpectedSource {
  return async (client, q) => {
    const table = mapper.table;
    const skipped: SkipCounts = {};
    const every = o.model.settings.batchSize;
    let documents = 0;
    const collection = o.model.collections.find((c) => c.name === table.collection);
    async function* chunks(): AsyncGenerator<string> {
      const csv = new CsvBatch(q.copyHeader());
      let ord = 0;
      for await (const doc of documentsOf(mongo, collection, table.collection, table.filter ? table.filter.mongoQuery : null, o, table.name)) {
        documents += 1;
        for (const r of mapper.records(doc, skipped)) {
          ord += 1;
          if (csv.add([String(ord), r.status, r.sourceId, r.column, r.reason, ...r.cells])) yield csv.take();
        }
        if (documents % every === 0) o.onDocuments?.(table.name, documents);
      }
      const last = csv.take();
      if (last) yield last;
    }
    await pipeline(Readable.from(chunks()), client.query(copyFrom(q.copyExpected())), ...(o.signal ? [{ signal: o.signal }] : []));
    o.onDocuments?.(table.name, documents);
    return { documents, skipped };
  };
}

/** One table's records during a shared scan: into its COPY (the first table) or its file. */
interface TableOutput {
  readonly mapper: TableMapper;
  readonly keep: DocumentTest | null;
  readonly csv: CsvBatch;
  readonly sink: Writable;
  /** The sink's end: listens from the start, so a write error is the scan's error, not an uncaught one. */
  readonly done: Promise<void>;
  readonly counts: { documents: number; readonly skipped: SkipCounts };
  ord: number;
}

function outputOf(mapper: TableMapper, sink: Writable): TableOutput {
  const done = finished(sink);
  done.catch(ignore);
  const csv = new CsvBatch(expectedHeader(mapper.table.stagedColumns.length));
  return { mapper, keep: compileFilter(mapper.table.filter), csv, sink, done, counts: { documents: 0, skipped: {} }, ord: 0 };
}

/**
 * A collection read once for several tables (mappers in job order). The first table's source reads
 * the collection: its own records stream straight into its COPY, as a lone table's do, and the
 * others' into one CSV file each (a temporary folder, made then). The other tables' sources wait for
 * that scan, then COPY their file. close() removes the folder.
 */
export class SharedScan {
  private dir: string | null = null;
  private readonly scanned: Promise<Map<string, ExpectedCounts>>;
  private settle!: { resolve: (counts: Map<string, ExpectedCounts>) => void; reject: (error: unknown) => void };

  constructor(
    private readonly mongo: MongoConnection,
    private readonly collection: CollectionModel,
    private readonly mappers: readonly TableMapper[],
    private readonly o: ScanOptions,
  ) {
    this.scanned = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Nobody may wait for it (the first table failed before its scan): not an unhandled rejection.
    this.scanned.catch(ignore);
  }

  source(table: string): ExpectedSource {
    if (table === this.mappers[0]!.table.name) return (client, q) => this.scan(client, q);
    return async (client, q) => {
      const counts = (await untilSettled(this.scanned, this.o.signal)).get(table)!;
      await pipeline(createReadStream(this.fileOf(table)), client.query(copyFrom(q.copyExpected())), ...(this.o.signal ? [{ signal: this.o.signal }] : []));
      this.o.onDocuments?.(table, counts.documents);
      return counts;
    };
  }

  async close(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private fileOf(table: string): string {
    return path.join(this.dir!, `${table}.csv`);
  }

  private async scan(client: pg.Client, q: TableDiffSql): Promise<ExpectedCounts> {
    try {
      this.dir = await makeScratchDir('etl-diff-');
      const [first, ...rest] = this.mappers;
      const outputs = [outputOf(first!, client.query(copyFrom(q.copyExpected())))];
      for (const mapper of rest) outputs.push(outputOf(mapper, createWriteStream(this.fileOf(mapper.table.name))));
      await scanInto(this.mongo, this.collection, outputs, this.o);
      const counts = new Map(outputs.map((out) => [out.mapper.table.name, out.counts]));
      this.settle.resolve(counts);
      this.o.onDocuments?.(first!.table.name, outputs[0]!.counts.documents);
      return outputs[0]!.counts;
    } catch (error) {
      this.settle.reject(error);
      throw error;
    }
  }
}

/** `promise`, or the signal's reason once it is aborted. */
function untilSettled<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Reads the collection once, each document through every table's filter and mapper, into the outputs. */
async function scanInto(mongo: MongoConnection, collection: CollectionModel, outputs: readonly TableOutput[], o: ScanOptions): Promise<void> {
  const write = async (out: TableOutput) => {
    if (out.sink.write(out.csv.take())) return;
    // A sink that fails while full never drains: its end (rejected) settles the wait too.
    await Promise.race([once(out.sink, 'drain', o.signal ? { signal: o.signal } : {}), out.done]);
  };
  const every = o.model.settings.batchSize;
  let read = 0;
  try {
    for await (const doc of documentsOf(mongo, collection, collection.name, collection.serverFilter, o)) {
      read += 1;
      for (const out of outputs) {
        const kept = !out.keep || out.keep(doc);
        if (kept) out.counts.documents += 1;
        for (const r of kept ? out.mapper.records(doc, out.counts.skipped) : out.mapper.claim(doc)) {
          out.ord += 1;
          if (out.csv.add([String(out.ord), r.status, r.sourceId, r.column, r.reason, ...r.cells])) await write(out);
        }
      }
      if (read % every === 0) {
        o.signal?.throwIfAborted();
        for (const out of outputs) o.onDocuments?.(out.mapper.table.name, out.counts.documents);
      }
    }
    for (const out of outputs) out.sink.end(out.csv.take());
    await Promise.all(outputs.map((out) => out.done));
  } catch (error) {
    for (const out of outputs) out.sink.destroy();
    await Promise.allSettled(outputs.map((out) => out.done));
    throw error;
  }
}
