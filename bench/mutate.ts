// The incremental benchmark's change to the live source: 1 % of the documents of every collection
// (at least one), chosen deterministically from the dump (which holds the same documents):
//   a tenth of them → new documents (copies with a new _id, dated now; users get a unique email)
//   the rest, a run of consecutive _ids from the middle of the collection →
//     the first ninth of the run (when the collection feeds an explode table): the last item of its
//       first exploded array removed ($pop), update_date = now
//     the others: update_date = now and a text field the pipeline maps (or, for a collection with
//       none, an unmapped field) set to "bench change"
// The figures are the server's own counts (insertedCount, modifiedCount).
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { deserialize, ObjectId, type Document } from 'bson';
import { MongoClient } from 'mongodb';
import type { PipelineModel } from '../model/types.ts';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';

export const CHANGE_EVERY = 100;
/** Columns left alone: unique in the source (email) or enumerations a reader may rely on. */
const AVOID = new Set(['email', 'type', 'role', 'status', '__t']);

export interface MutationFigures {
  readonly changed: number;
  readonly updated: number;
  readonly inserted: number;
  readonly itemsRemoved: number;
  readonly perCollection: Record<string, { updated: number; inserted: number; itemsRemoved: number }>;
}

/** The text field an update changes, per collection (null: none mapped, an unmapped one is used). */
function changedField(model: PipelineModel, collection: string): string | null {
  for (const t of model.collections.find((c) => c.name === collection)?.tables ?? []) {
    const table = model.tables.get(t)!;
    if (table.strategy !== 'upsert') continue;
    for (const c of table.columns) {
      if (c.source.kind !== 'field' || c.source.path.includes('.') || c.primaryKey || c.foreignKey || AVOID.has(c.source.path)) continue;
      if (c.sqlType.kind === 'text' || c.sqlType.kind === 'varchar') return c.source.path;
    }
  }
  return null;
}

function arrayFields(model: PipelineModel, collection: string): string[] {
  const fields: string[] = [];
  for (const t of model.collections.find((c) => c.name === collection)?.tables ?? []) {
    for (const a of model.tables.get(t)!.explode?.arrays ?? []) fields.push(a.field);
  }
  return fields;
}

export async function mutateSource(model: PipelineModel, url: string, database: string, dumpDatabaseDir: string): Promise<MutationFigures> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  const perCollection: MutationFigures['perCollection'] = {};
  let updated = 0;
  let inserted = 0;
  let itemsRemoved = 0;
  try {
    await client.connect();
    const db = client.db(database);
    for (const { name } of model.collections) {
      const coll = db.collection(name);
      const field = changedField(model, name);
      const arrayField = arrayFields(model, name)[0] ?? null;
      const chosen = await chooseDocuments(path.join(dumpDatabaseDir, `${name}.bson`));
      const figures = { updated: 0, inserted: 0, itemsRemoved: 0 };
      if (chosen.clones.length === 0 && chosen.changed.length === 0) {
        perCollection[name] = figures;
        continue;
      }
      const now = new Date();
      const clones = chosen.clones.map((doc) => {
        const copy: Document = { ...doc, _id: new ObjectId(), creation_date: now, update_date: now };
        if (name === 'users') copy.email = `bench-${(copy._id as ObjectId).toHexString()}@example.com`;
        return copy;
      });
      if (clones.length) figures.inserted = (await coll.insertMany(clones, { ordered: false })).insertedCount;
      // The changed documents are consecutive in _id order: one range filter selects them, so the
      // server scans each collection once or twice (FerretDB does not use the _id index for an
      // update, so one update a document would cost a scan each).
      const ids = chosen.changed;
      const range: Document = { _id: { $gte: ids[0], $lte: ids[ids.length - 1] } };
      const popIds = ids.slice(0, Math.ceil(ids.length / 9));
      if (arrayField && popIds.length) {
        const popRange: Document = { _id: { $gte: popIds[0], $lte: popIds[popIds.length - 1] }, [arrayField]: { $type: 'array', $ne: [] } };
        const r = await coll.updateMany(popRange, { $pop: { [arrayField]: 1 }, $set: { update_date: now } });
        figures.itemsRemoved = r.modifiedCount;
      }
      // Every chosen document not given a $pop gets its update (update_date is still older than `now`).
      const r = await coll.updateMany({ $and: [range, { update_date: { $ne: now } }] }, { $set: { update_date: now, [field ?? 'bench_touched']: 'bench change' } });
      figures.updated = r.modifiedCount;
      perCollection[name] = figures;
      updated += figures.updated;
      inserted += figures.inserted;
      itemsRemoved += figures.itemsRemoved;
    }
  } finally {
    await client.close().catch(() => undefined);
  }
  return { changed: updated + inserted + itemsRemoved, updated, inserted, itemsRemoved, perCollection };
}

/**
 * The same change, written as a whole new copy of the source: every document of the dump, the
 * chosen ones changed as mutateSource() changes them, plus the new ones, inserted into an empty
 * database. For FerretDB, whose updates scan the collection for every document they change (an
 * in-place change of 1 % of 1M documents did not finish in 15 minutes), this is how the bench gets
 * the changed source; the documents it ends up holding are the ones an in-place change leaves.
 */
export async function writeChangedCopy(model: PipelineModel, url: string, database: string, dumpDatabaseDir: string): Promise<MutationFigures> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  const perCollection: MutationFigures['perCollection'] = {};
  let updated = 0;
  let inserted = 0;
  let itemsRemoved = 0;
  const now = new Date();
  try {
    await client.connect();
    const db = client.db(database);
    for (const { name } of model.collections) {
      const coll = db.collection(name);
      const field = changedField(model, name) ?? 'bench_touched';
      const arrayField = arrayFields(model, name)[0] ?? null;
      const file = path.join(dumpDatabaseDir, `${name}.bson`);
      const chosen = await chooseDocuments(file);
      const changed = new Set(chosen.changed.map((id) => id.toHexString()));
      const popping = new Set(arrayField ? chosen.changed.slice(0, Math.ceil(chosen.changed.length / 9)).map((id) => id.toHexString()) : []);
      const figures = { updated: 0, inserted: 0, itemsRemoved: 0 };
      let batch: Document[] = [];
      for await (const doc of documentsOf(file)) {
        const id = (doc._id as ObjectId).toHexString();
        if (changed.has(id)) {
          const items = arrayField ? doc[arrayField] : undefined;
          if (popping.has(id) && Array.isArray(items) && items.length > 0) {
            doc[arrayField!] = items.slice(0, -1);
            doc.update_date = now;
            figures.itemsRemoved += 1;
          } else {
            doc.update_date = now;
            doc[field] = 'bench change';
            figures.updated += 1;
          }
        }
        batch.push(doc);
        if (batch.length === 1000) {
          await coll.insertMany(batch, { ordered: false });
          batch = [];
        }
      }
      for (const doc of chosen.clones) {
        const copy: Document = { ...doc, _id: new ObjectId(), creation_date: now, update_date: now };
        if (name === 'users') copy.email = `bench-${(copy._id as ObjectId).toHexString()}@example.com`;
        batch.push(copy);
        figures.inserted += 1;
      }
      if (batch.length) await coll.insertMany(batch, { ordered: false });
      perCollection[name] = figures;
      updated += figures.updated;
      inserted += figures.inserted;
      itemsRemoved += figures.itemsRemoved;
    }
  } finally {
    await client.close().catch(() => undefined);
  }
  return { changed: updated + inserted + itemsRemoved, updated, inserted, itemsRemoved, perCollection };
}

/**
 * 1 % of a collection (at least one document): a tenth of it (at least one) to copy as new
 * documents, every 10th document of the dump; the rest, the documents of a run of consecutive _ids
 * from the middle of the collection in _id order, so a range filter selects exactly them.
 */
async function chooseDocuments(file: string): Promise<{ clones: Document[]; changed: ObjectId[] }> {
  const ids: string[] = [];
  const clonesAt: Document[] = [];
  let index = 0;
  for await (const doc of documentsOf(file)) {
    if (!(doc._id instanceof ObjectId)) throw new Error(`${file}: document #${index} has an _id that is not an ObjectId`);
    ids.push(doc._id.toHexString());
    if (index % 10 === 0) clonesAt.push(doc);
    index += 1;
  }
  const count = ids.length;
  const total = Math.max(1, Math.round(count / CHANGE_EVERY));
  const cloneCount = Math.max(1, Math.round(total / 10));
  const changeCount = count > 1 ? Math.max(1, total - cloneCount) : 0;
  // Hex strings of equal length sort as the ObjectIds do.
  ids.sort();
  const start = Math.floor((count - changeCount) / 2);
  return {
    clones: clonesAt.slice(0, cloneCount),
    changed: ids.slice(start, start + changeCount).map((h) => ObjectId.createFromHexString(h)),
  };
}

async function* documentsOf(file: string): AsyncGenerator<Document> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (buf.length - at >= 4) {
      const size = buf.readInt32LE(at);
      if (buf.length - at < size) break;
      yield deserialize(buf.subarray(at, at + size), BSON_READ_OPTIONS);
      at += size;
    }
    pending = buf.subarray(at);
  }
}
