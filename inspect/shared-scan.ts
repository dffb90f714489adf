// A collection feeding several tables (users → users, user_events, users_targets) is read once for
// all of them: each document goes through every table's mapper and its records are written to one
// CSV file per table (a temporary folder), which that table's comparison then COPYs in its turn. The
// collection is read with its server filter (the OR of its tables' filters, as extract reads it) and
// each table keeps only the documents its own filter matches, so every table sees exactly the
// documents a scan of its own would return. Memory stays flat: files, not arrays, hold the records.
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { deserialize, EJSON } from 'bson';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { MongoConnection } from '../connect/mongo.ts';
import { redactText } from '../errors/redact.ts';
import { compileFilter, type DocumentTest } from '../mapping/filter.ts';
import { SourceError } from '../errors/etl-error.ts';
import type { CollectionModel, PipelineModel } from '../model/types.ts';
import { csvHeader, csvLine } from '../staging/csv-lines.ts';
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

/** Rows a chunk holds: one write (a socket or file write per row cost more than making the rows). */
const CHUNK_ROWS = 512;

/**
 * The expected records as CSV text, in chunks of CHUNK_ROWS rows, written line by line by
 * transform's writer (staging/csv-lines.ts): byte for byte what csvWriter writes, without
 * csv-stringify's cost per row. The first chunk starts with the header.
 */
class CsvChunks {
  private head: string;
  private lines: string[] = [];

  constructor(columns: readonly string[]) {
    this.head = csvHeader(columns);
  }

  /** Adds a row; true when a chunk is ready to take. */
  add(row: Row): boolean {
    this.lines.push(csvLine(row, null));
    return this.lines.length >= CHUNK_ROWS;
  }

  /** The text of the rows added since the last take (the header first, once). */
  take(): string {
    const text = this.lines.length ? `${this.head}${this.lines.join('\n')}\n` : this.head;
    this.head = '';
    this.lines = [];
    return text;
  }
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
    throw new SourceError('mongo_read_failed', `reading ${name} failed: ${redactText(error instanceof Error ? error.message : String(error), o.secrets)}`, {
      context: { collection: name, ...(table ? { table } : {}) },
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
      const csv = new CsvChunks(q.copyHeader());
      let ord = 0;
      for await (const doc of documentsOf(mongo, collection, table.collection, table.filter ? table.filter.mongoQuery : null, o, table.name)) {
        documents += 1;
        for (const r of mapper.records(doc, skipped)) {
          ord += 1;
          if (csv.add([String(ord), r.status, r.sourceId, r.column, r.reason, ...r.cells])) yield csv.take();
        }
        if (documents % every === 0) o.onDocuments?.(table.name, documents);
      }
      yield csv.take();
    }
    await pipeline(Readable.from(chunks()), client.query(copyFrom(q.copyExpected())), ...(o.signal ? [{ signal: o.signal }] : []));
    o.onDocuments?.(table.name, documents);
    return { documents, skipped };
  };
}

interface TableOutput {
  readonly mapper: TableMapper;
  readonly keep: DocumentTest | null;
  readonly file: string;
  readonly csv: CsvChunks;
  readonly sink: Writable;
  /** The sink's end: listens from the start, so a write error is the scan's error, not an uncaught one. */
  readonly done: Promise<void>;
  readonly skipped: SkipCounts;
  documents: number;
  ord: number;
}

/**
 * Reads `collection` once for every mapper, into one CSV file per table under `dir`; returns each
 * table's source (its file COPYed into the expected table).
 */
export async function scanShared(mongo: MongoConnection, collection: CollectionModel, mappers: readonly TableMapper[], dir: string, o: ScanOptions): Promise<Map<string, ExpectedSource>> {
  const outputs: TableOutput[] = mappers.map((mapper) => {
    const file = path.join(dir, `${mapper.table.name}.csv`);
    const csv = new CsvChunks(expectedHeader(mapper.table.stagedColumns.length));
    const sink = createWriteStream(file);
    const done = finished(sink);
    done.catch(() => undefined);
    return { mapper, keep: compileFilter(mapper.table.filter), file, csv, sink, done, skipped: {}, documents: 0, ord: 0 };
  });
  const write = async (out: TableOutput) => {
    if (!out.sink.write(out.csv.take())) await once(out.sink, 'drain', o.signal ? { signal: o.signal } : {});
  };
  const every = o.model.settings.batchSize;
  let read = 0;
  try {
    for await (const doc of documentsOf(mongo, collection, collection.name, collection.serverFilter, o)) {
      read += 1;
      for (const out of outputs) {
        if (out.keep && !out.keep(doc)) continue;
        out.documents += 1;
        for (const r of out.mapper.records(doc, out.skipped)) {
          out.ord += 1;
          if (out.csv.add([String(out.ord), r.status, r.sourceId, r.column, r.reason, ...r.cells])) await write(out);
        }
      }
      if (read % every === 0) for (const out of outputs) o.onDocuments?.(out.mapper.table.name, out.documents);
    }
    for (const out of outputs) out.sink.end(out.csv.take());
    await Promise.all(outputs.map((out) => out.done));
  } catch (error) {
    for (const out of outputs) out.sink.destroy();
    await Promise.allSettled(outputs.map((out) => out.done));
    throw error;
  }
  return new Map(
    outputs.map((out) => [
      out.mapper.table.name,
      async (client, q) => {
        await pipeline(createReadStream(out.file), client.query(copyFrom(q.copyExpected())), ...(o.signal ? [{ signal: o.signal }] : []));
        o.onDocuments?.(out.mapper.table.name, out.documents);
        return { documents: out.documents, skipped: out.skipped };
      },
    ]),
  );
}
