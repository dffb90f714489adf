// The restricted read of a repair run, extract and transform alone (no PostgreSQL): exactly the
// `_id`s asked for, of any BSON type, read from FerretDB in chunks, staged in the server's `_id`
// order; which were found, by the server's equality; the ones not found named in every table's keys
// file; and no watermark. A dump cannot be read by `_id`: refused.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EJSON, Int32, ObjectId, type Document } from 'bson';
import { MongoClient } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { SourceError } from '../../errors/etl-error.ts';
import { transformIdentityErrors } from '../../staging/manifest-transform.ts';
import { objectIdAt, writeDumpFolder } from '../extract/dump-writer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, '../extract/fixtures/pipeline.yaml');
const servers = useServers();

const user = (_id: unknown, email: string): Document => ({ _id, email, registered_events: [], creation_date: new Date('2024-03-01'), update_date: new Date('2024-03-02') });
const USERS = [user(new Int32(42), 'int@example.org'), user('abc', 'string@example.org'), ...[1, 2, 3, 4, 5, 6].map((i) => user(objectIdAt(i), `u${i}@example.org`))];

function repairOf(ids: unknown[]) {
  return { ids: new Map([['users', ids]]), recompute: new Map() };
}

const lines = async (file: string) => (await readFile(file, 'utf8')).trim().split('\n').map((l) => EJSON.parse(l, { relaxed: false }) as Document);

test('a repair extract reads exactly the _ids asked for, any type, in _id order; the ones not found are named in the keys files', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const client = new MongoClient(mongo.url);
  await client.connect();
  t.after(() => client.close());
  await client.db(mongo.name).collection('users').insertMany(USERS.map((d) => ({ ...d })));
  const stagingDir = await tempDir('etl-repair-extract-', t);
  const model = await loadPipeline(PIPELINE);

  // Asked in no order, one twice; three are not in the collection. Two `_id`s a query: four queries.
  const asked = [objectIdAt(5), 'nope', new Int32(43), objectIdAt(3), objectIdAt(999), 'abc', new Int32(42), objectIdAt(3)];
  const report = await runExtract({ model, stagingDir, source: { kind: 'mongodb', mongo: { url: mongo.url, database: mongo.name } }, repair: repairOf(asked), requestChunk: 2 });
  assert.deepEqual(report.collections.map((c) => c.collection), ['users'], 'only the collection with documents to read');
  assert.equal(report.full, false);
  const paths = runPaths(stagingDir, report.runId);
  const staged = await lines(paths.extractFile('users'));
  // The server's order: numbers, then strings, then ObjectIds.
  assert.deepEqual(staged.map((d) => EJSON.stringify(d._id)), [new Int32(42), 'abc', objectIdAt(3), objectIdAt(5)].map((v) => EJSON.stringify(v)));
  const requested = await lines(paths.extractRequestedFile('users'));
  assert.deepEqual(
    requested.map((d) => [EJSON.stringify(d._id), d.found]),
    [
      [EJSON.stringify(42), true],
      [EJSON.stringify(43), false],
      ['"abc"', true],
      ['"nope"', false],
      [EJSON.stringify(objectIdAt(3)), true],
      [EJSON.stringify(objectIdAt(5)), true],
      [EJSON.stringify(objectIdAt(999)), false],
    ],
  );
  const manifest = await readManifest(paths);
  const extract = manifest.stages.extract!;
  const users = extract.collections.users!;
  assert.equal(users.watermark, undefined, 'a repair read records no watermark');
  assert.deepEqual({ ids: users.requested?.ids, found: users.requested?.found, absent: users.requested?.absent, records: users.requested?.records }, { ids: 7, found: 4, absent: 3, records: 7 });
  assert.deepEqual(extract.repair, { requested: { users: 7 }, recompute: {} });
  assert.equal(extract.mappings, undefined, 'no fingerprint to store');

  const transformed = await runTransform({ model, stagingDir, runId: report.runId });
  const table = transformed.tables.find((x) => x.table === 'users')!;
  assert.deepEqual({ documents: table.documents, rows: table.rows, absent: table.absent, complete: table.complete }, { documents: 4, rows: 4, absent: 3, complete: false });
  assert.deepEqual(transformIdentityErrors('users', table), []);
  const keys = (await readFile(paths.transformKeys('users'), 'utf8')).trim().split('\n');
  // Found documents first (the file's order), then the absent ones, each as a read document would name itself.
  assert.deepEqual(keys.slice(-3), ['43,"{""$numberInt"":""43""}"', 'nope,"""nope"""', `${objectIdAt(999).toHexString()},`]);
  const links = (await readFile(paths.transformKeys('user_events'), 'utf8')).trim().split('\n');
  assert.equal(links.length, 1 + 7, 'the link table names the absent parents too');
});

test('a repair cannot read a dump by _id: refused before any run folder is made', async (t) => {
  const dir = await tempDir('etl-repair-dump-', t);
  await writeDumpFolder(path.join(dir, 'appdb'), { users: USERS });
  const model = await loadPipeline(PIPELINE);
  await assert.rejects(
    runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') }, repair: repairOf([new ObjectId()]) }),
    (e: unknown) => e instanceof SourceError && e.code === 'repair_needs_live_source',
  );
  assert.deepEqual(await readdir(dir), ['appdb']);
});
