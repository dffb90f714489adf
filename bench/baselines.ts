// What each stage is measured against: the least work that moves the same documents.
//   bare driver scan:  find({}) of every collection the pipeline reads, batchSize of pipeline.yaml,
//                      documents decoded (not raw) with the options extract gives the driver
//                      (BSON_READ_OPTIONS), each one counted and dropped.
//   bare BSON read:    every .bson file of the dump read in 1 MiB chunks and each document
//                      deserialized with the same options, counted and dropped.
//   table read:        every table of the pipeline read whole, in load order, as COPY … TO STDOUT
//                      (text), the bytes counted and dropped: a sequential read of what diff compares.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { deserialize } from 'bson';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { ident } from '../schema/sql.ts';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';

export interface ScanFigures {
  readonly documents: number;
  readonly bytes: number;
  readonly perCollection: Record<string, number>;
}

export async function bareDriverScan(url: string, database: string, collections: readonly string[], batchSize: number): Promise<ScanFigures> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  const perCollection: Record<string, number> = {};
  let documents = 0;
  try {
    await client.connect();
    const db = client.db(database);
    for (const name of collections) {
      let n = 0;
      const cursor = db.collection(name).find({}, { batchSize, ...BSON_READ_OPTIONS });
      for await (const doc of cursor) {
        if (doc !== null) n += 1;
      }
      perCollection[name] = n;
      documents += n;
    }
  } finally {
    await client.close().catch(() => undefined);
  }
  return { documents, bytes: 0, perCollection };
}

export async function bareBsonRead(databaseDir: string, collections: readonly string[]): Promise<ScanFigures> {
  const perCollection: Record<string, number> = {};
  let documents = 0;
  let bytes = 0;
  for (const name of collections) {
    const file = path.join(databaseDir, `${name}.bson`);
    let n = 0;
    let pending: Buffer = Buffer.alloc(0);
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      while (buf.length - at >= 4) {
        const size = buf.readInt32LE(at);
        if (size < 5) throw new Error(`${file}: bad document length ${size} at byte ${bytes - buf.length + at}`);
        if (buf.length - at < size) break;
        deserialize(buf.subarray(at, at + size), BSON_READ_OPTIONS);
        n += 1;
        at += size;
      }
      pending = buf.subarray(at);
    }
    if (pending.length !== 0) throw new Error(`${file}: ${pending.length} trailing bytes`);
    perCollection[name] = n;
    documents += n;
  }
  return { documents, bytes, perCollection };
}

export async function scanTables(url: string, tables: readonly string[]): Promise<{ rows: number; bytes: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let rows = 0;
  let bytes = 0;
  try {
    for (const t of tables) {
      const stream = client.query(copyTo(`COPY ${ident(t)} TO STDOUT`));
      for await (const chunk of stream as AsyncIterable<Buffer>) bytes += chunk.length;
      rows += stream.rowCount ?? 0;
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return { rows, bytes };
}
