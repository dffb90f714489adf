// Throughput of `etl extract` against a bare driver scan of the same collections (not a test: run
//   node --import tsx test/extract/bench-scan.ts <mongodb-url-with-db> [pipeline.yaml]
// ). Prints documents/s for: the extract (live, --full), a bare find() with the same projection,
// sort and batch size, and a bare find({}) in natural order.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';

const url = process.argv[2];
if (!url) throw new Error('usage: bench-scan.ts MONGODB_URL_WITH_DB [pipeline.yaml]');
const model = await loadPipeline(process.argv[3] ?? path.resolve(import.meta.dirname, '../../pipeline.yaml'));
const database = new URL(url).pathname.slice(1);
const stagingDir = await mkdtemp(path.join(os.tmpdir(), 'etl-bench-'));

let t = performance.now();
const report = await runExtract({ model, stagingDir, source: { kind: 'mongodb', mongo: { url, database } }, full: true });
const extractSeconds = (performance.now() - t) / 1000;

const client = new MongoClient(url);
await client.connect();
const db = client.db(database);
let sameShape = 0;
t = performance.now();
for (const c of model.collections) {
  const projection = Object.fromEntries(c.projection.map((f) => [f.split('.')[0]!, 1]));
  for await (const _ of db.collection(c.name).find(c.serverFilter ?? {}, { projection, sort: { _id: 1 }, batchSize: model.settings.batchSize })) sameShape += 1;
}
const sameShapeSeconds = (performance.now() - t) / 1000;
let bare = 0;
t = performance.now();
for (const c of model.collections) for await (const _ of db.collection(c.name).find({})) bare += 1;
const bareSeconds = (performance.now() - t) / 1000;
await client.close();

const rate = (n: number, s: number) => Math.round(n / s);
console.log(JSON.stringify({
  extract: { documents: report.documents, seconds: +extractSeconds.toFixed(2), docs_per_s: rate(report.documents, extractSeconds) },
  driver_same_query: { documents: sameShape, seconds: +sameShapeSeconds.toFixed(2), docs_per_s: rate(sameShape, sameShapeSeconds) },
  driver_bare_find: { documents: bare, seconds: +bareSeconds.toFixed(2), docs_per_s: rate(bare, bareSeconds) },
  ratio_extract_vs_same_query: +(rate(report.documents, extractSeconds) / rate(sameShape, sameShapeSeconds)).toFixed(2),
}, null, 2));
