// Writes a generated sample into a live MongoDB (or FerretDB): insertMany in batches, unordered,
// each batch awaited before the next is generated, so memory holds one batch at most.
import type { Db, Document } from 'mongodb';
import { EtlError } from '../errors/etl-error.ts';
import type { SampleGeneration } from './generate.ts';
import type { SampleProgress, WriteOptions } from './write-options.ts';

const INSERT_BATCH = 1000;

export interface MongoTargetReport {
  readonly kind: 'mongo';
  readonly database: string;
  readonly dropped: readonly string[];
  readonly collections: readonly { readonly name: string; readonly documents: number }[];
}

export interface MongoTarget {
  readonly db: Db;
  /** Drop the sample's collections first; without it, a non-empty one is refused before any write. */
  readonly drop: boolean;
}

export async function writeMongo(sample: SampleGeneration, target: MongoTarget, options: WriteOptions = {}): Promise<MongoTargetReport> {
  const { db } = target;
  const dropped: string[] = [];
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  if (target.drop) {
    for (const { name } of sample.collections) {
      if (!existing.has(name)) continue;
      await db.collection(name).drop();
      dropped.push(name);
    }
  } else {
    const busy: string[] = [];
    for (const { name } of sample.collections) {
      if (existing.has(name) && (await db.collection(name).findOne({}, { projection: { _id: 1 } })) !== null) busy.push(name);
    }
    if (busy.length > 0) {
      throw new EtlError('sample_target_not_empty', `database "${db.databaseName}" already has documents in: ${busy.join(', ')}`, {
        context: { collection: busy[0]! },
        hint: 'pass --drop to drop those collections first, or choose another --db',
      });
    }
  }

  const collections: { name: string; documents: number }[] = [];
  for (const source of sample.collections) {
    options.signal?.throwIfAborted();
    const coll = db.collection(source.name);
    const report = (written: number) => options.onProgress?.({ collection: source.name, written, total: source.count } satisfies SampleProgress);
    report(0);
    let batch: Document[] = [];
    let written = 0;
    for (const doc of source.documents()) {
      batch.push(doc);
      if (batch.length === INSERT_BATCH) {
        written += await insertBatch(coll, batch);
        batch = [];
        report(written);
        options.signal?.throwIfAborted();
      }
    }
    if (batch.length > 0) written += await insertBatch(coll, batch);
    // The app's unique index on users.email, as in the dump's metadata.
    if (source.name === 'users') await coll.createIndex({ email: 1 }, { unique: true, name: 'email_1' });
    report(written);
    collections.push({ name: source.name, documents: written });
  }
  return { kind: 'mongo', database: db.databaseName, dropped, collections };
}

async function insertBatch(coll: ReturnType<Db['collection']>, batch: Document[]): Promise<number> {
  const result = await coll.insertMany(batch, { ordered: false });
  if (result.insertedCount !== batch.length) {
    throw new EtlError('sample_insert_incomplete', `${coll.collectionName}: inserted ${result.insertedCount} of ${batch.length} documents`);
  }
  return result.insertedCount;
}
