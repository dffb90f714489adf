// Extract from a live server (FerretDB) with watermarks in a real PostgreSQL: full then incremental
// reads, the inclusive boundary, and byte-identity with dumps of the same data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EJSON, type Document } from 'bson';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { resolveConfig } from '../../connect/config.ts';
import { stateTablesSql } from '../../schema/state-tables.ts';
import { EtlError, SourceError } from '../../errors/etl-error.ts';
import { archiveBytes, makeEvents, makeRecipes, makeUsers, objectIdAt, writeDumpFolder } from './dump-writer.ts';
import { incrementalQuery } from '../../extract/watermark-plan.ts';
import { incrementalData, SINCE } from './incremental-data.ts';
import { tempDir } from '../harness/temp-dir.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/pipeline.yaml');
const servers = useServers();

async function setup(testName: string, data: Record<string, Document[]>) {
  const mongo = await servers.mongo.newDatabase(testName);
  const pgUrl = await servers.postgres.createDatabase(testName);
  const client = new MongoClient(mongo.url);
  await client.connect();
  for (const [name, docs] of Object.entries(data)) if (docs.length) await client.db(mongo.name).collection(name).insertMany(docs.map((d) => ({ ...d })));
  const db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
  for (const sql of stateTablesSql()) await db.query(sql);
  const config = resolveConfig({ env: { MONGODB_URL: mongo.url, DATABASE_URL: pgUrl }, cwd: HERE });
  const stagingDir = await tempDir('etl-live-');
  const model = await loadPipeline(PIPELINE);
  const extract = (extra: Partial<Parameters<typeof runExtract>[0]> = {}) =>
    runExtract({ model, stagingDir, source: { kind: 'mongodb', mongo: config.mongo, secrets: config.secrets }, postgres: config.postgres, secrets: config.secrets, ...extra });
  const setWatermark = async (table: string, at: Date) => {
    await db.query(
      'INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ($1, $2, $3) ON CONFLICT (table_name) DO UPDATE SET watermark = EXCLUDED.watermark',
      [table, at, 'test'],
    );
  };
  const close = async () => {
    await client.close();
    await db.end();
  };
  return { mongo, client, coll: (n: string) => client.db(mongo.name).collection(n), db, config, model, stagingDir, extract, setWatermark, close };
}

const ids = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => (EJSON.parse(l, { relaxed: false }) as Document)._id.toHexString() as string);

test('full, then incremental from the stored watermarks: new, updated and at-the-boundary documents only', async (t) => {
  const s = await setup(t.name, { users: makeUsers(30), events: makeEvents(5), recipes: makeRecipes(6) });
  t.after(s.close);
  const first = await s.extract();
  assert.equal(first.full, true);
  const usersFirst = first.collections.find((c) => c.collection === 'users')!;
  assert.equal(usersFirst.documents, 30);
  assert.equal(usersFirst.watermark!.from, null);
  assert.equal(usersFirst.watermark!.next_basis, 'server_clock');
  // next = the server's clock at the start minus the 300 s margin.
  const serverStart = new Date(first.serverStartedAt!);
  assert.ok(Math.abs(serverStart.getTime() - Date.now()) < 60_000, 'the server clock is read');
  assert.equal(usersFirst.watermark!.next, new Date(serverStart.getTime() - 300_000).toISOString());

  // What load would do: store the run's next watermark for every table.
  const w = new Date(usersFirst.watermark!.next);
  for (const table of ['users', 'user_events', 'events', 'menus', 'ghosts']) await s.setWatermark(table, w);

  // Changes after the extract: one new user, one updated, one created exactly at the watermark.
  await s.coll('users').insertOne({ _id: objectIdAt(900), creation_date: new Date(), update_date: new Date(), email: 'new@example.org' });
  await s.coll('users').updateOne({ _id: objectIdAt(3) }, { $set: { email: 'changed@example.org', update_date: new Date() } });
  await s.coll('users').insertOne({ _id: objectIdAt(901), creation_date: w, update_date: new Date('2020-01-01T00:00:00Z'), email: 'boundary@example.org' });
  await s.coll('users').insertOne({ _id: objectIdAt(902), creation_date: new Date(w.getTime() - 1), update_date: new Date(w.getTime() - 1), email: 'just before' });

  const second = await s.extract();
  assert.equal(second.full, false);
  const users = second.collections.find((c) => c.collection === 'users')!;
  assert.equal(users.watermark!.from, w.toISOString());
  assert.deepEqual(ids(await readFile(path.join(second.runDir, users.file), 'utf8')), [objectIdAt(3), objectIdAt(900), objectIdAt(901)].map((i) => i.toHexString()));
  assert.deepEqual(users.filter, EJSON.serialize(incrementalQuery(w), { relaxed: false }));
  const recipes = second.collections.find((c) => c.collection === 'recipes')!;
  assert.equal(recipes.documents, 0);
  // An incremental read drops the pipeline's server filter: transform decides membership.
  assert.deepEqual(recipes.filter, EJSON.serialize(incrementalQuery(w), { relaxed: false }));

  // A collection takes the earliest watermark of its tables; a table never loaded means full.
  const d20 = new Date('2024-03-21T00:00:00Z');
  await s.setWatermark('user_events', d20);
  const third = await s.extract({ tables: ['users', 'user_events'] });
  assert.deepEqual(third.collections.map((c) => c.collection), ['users']);
  assert.equal(third.collections[0]!.watermark!.from, d20.toISOString());
  const all = await s.coll('users').find({}).sort({ _id: 1 }).toArray();
  const inWindow = all.filter((u) => u.creation_date >= d20 || u.update_date >= d20).map((u) => u._id.toHexString());
  assert.ok(inWindow.length > 4 && inWindow.length < all.length, `window holds ${inWindow.length} of ${all.length}`);
  assert.deepEqual(ids(await readFile(path.join(third.runDir, third.collections[0]!.file), 'utf8')), inWindow);
  await s.db.query('DELETE FROM etl_watermarks WHERE table_name = $1', ['user_events']);
  const fourth = await s.extract({ tables: ['users', 'user_events'] });
  assert.equal(fourth.collections[0]!.watermark!.from, null);
  assert.equal(fourth.collections[0]!.documents, all.length);
  // --since overrides the stored watermarks; --full ignores them.
  const since = await s.extract({ since: w, tables: ['users'] });
  assert.equal(since.collections[0]!.documents, 3);
  const full = await s.extract({ full: true, tables: ['users'] });
  assert.equal(full.collections[0]!.documents, all.length);
});

test('live server, dump folder and archive give byte-identical NDJSON', async (t) => {
  // FerretDB cannot store Decimal128: the live comparison uses every other type.
  const data = { users: makeUsers(60), events: makeEvents(5), recipes: makeRecipes(9) };
  const s = await setup(t.name, data);
  t.after(s.close);
  const live = await s.extract({ full: true });
  const dir = await tempDir('etl-live-dump-');
  await writeDumpFolder(path.join(dir, 'dump', s.mongo.name), data);
  await writeFile(path.join(dir, 'dump.archive.gz'), archiveBytes(s.mongo.name, data, { gzip: true, segment: 4 }));
  const fromDir = await s.extract({ full: true, source: { kind: 'dump', path: path.join(dir, 'dump') } });
  const fromArchive = await s.extract({ full: true, source: { kind: 'dump', path: path.join(dir, 'dump.archive.gz') } });
  for (const c of ['users', 'events', 'recipes', 'ghosts']) {
    const a = await readFile(path.join(live.runDir, 'extract', `${c}.ndjson`));
    assert.ok(c === 'ghosts' || a.length > 0, c);
    assert.deepEqual(await readFile(path.join(fromDir.runDir, 'extract', `${c}.ndjson`)), a, `${c}: dump folder`);
    assert.deepEqual(await readFile(path.join(fromArchive.runDir, 'extract', `${c}.ndjson`)), a, `${c}: archive`);
  }
  const l = live.collections.find((c) => c.collection === 'users')!;
  const d = fromDir.collections.find((c) => c.collection === 'users')!;
  assert.equal(l.sha256, d.sha256);
  // Inserted in reverse order: the live server still returns _id order (one cursor, sorted).
  await s.coll('users').deleteMany({});
  await s.coll('users').insertMany([...data.users].reverse().map((u) => ({ ...u })));
  const reversed = await s.extract({ full: true, tables: ['users'] });
  assert.equal(reversed.collections[0]!.sha256, l.sha256);
});

test('PostgreSQL unreachable: a clear error that suggests --full; --full works without it', async (t) => {
  const s = await setup(t.name, { users: makeUsers(3) });
  t.after(s.close);
  const offline = { ...s.config.postgres, connectionString: 'postgresql://postgres:secret-pw@127.0.0.1:1/none' };
  await assert.rejects(s.extract({ postgres: offline, secrets: ['secret-pw'] }), (e: unknown) => {
    assert.ok(e instanceof EtlError);
    assert.equal(e.code, 'watermarks_unavailable');
    assert.equal(e.exitCode, 1);
    assert.match(e.hint ?? '', /--full/);
    assert.doesNotMatch(e.message, /secret-pw/);
    return true;
  });
  const ok = await s.extract({ postgres: offline, full: true, tables: ['users'] });
  assert.equal(ok.collections[0]!.documents, 3);
});

test('an unknown database and an unreachable server are clear errors without secrets', async (t) => {
  const s = await setup(t.name, { users: makeUsers(1) });
  t.after(s.close);
  await assert.rejects(s.extract({ full: true, source: { kind: 'mongodb', mongo: { url: s.config.mongo.url, database: 'no_such_db_here' } } }), (e: unknown) => {
    assert.ok(e instanceof SourceError);
    assert.equal(e.code, 'mongo_unknown_database');
    assert.match(e.message, /no_such_db_here/);
    return true;
  });
  const url = 'mongodb://etl:hunter22@127.0.0.1:1/x?serverSelectionTimeoutMS=500';
  await assert.rejects(s.extract({ full: true, source: { kind: 'mongodb', mongo: { url, database: 'x' }, secrets: ['hunter22'] } }), (e: unknown) => {
    assert.ok(e instanceof SourceError);
    assert.equal(e.code, 'mongo_unreachable');
    assert.doesNotMatch(e.message, /hunter22/);
    assert.match(e.message, /etl:\*\*\*@127\.0\.0\.1:1/);
    return true;
  });
});

test('an incremental live read takes what the dump path takes, byte for byte: filter dropped, new ObjectIds, undated documents', async (t) => {
  const data = incrementalData();
  const s = await setup(t.name, data);
  t.after(s.close);
  const live = await s.extract({ since: SINCE });
  const dir = await tempDir('etl-live-incr-', t);
  await writeDumpFolder(path.join(dir, 'dump', s.mongo.name), data);
  const dump = await s.extract({ since: SINCE, source: { kind: 'dump', path: path.join(dir, 'dump') } });
  for (const c of ['users', 'events', 'recipes']) {
    const a = await readFile(path.join(live.runDir, 'extract', `${c}.ndjson`));
    assert.deepEqual(await readFile(path.join(dump.runDir, 'extract', `${c}.ndjson`)), a, c);
    const l = live.collections.find((x) => x.collection === c)!;
    const d = dump.collections.find((x) => x.collection === c)!;
    assert.deepEqual(l.undated, d.undated, `${c}: the census agrees`);
    assert.deepEqual(l.filter, d.filter, `${c}: the same query`);
  }
  const users = live.collections.find((x) => x.collection === 'users')!;
  assert.equal(users.undated!.documents, 4);
  assert.ok(ids(await readFile(path.join(live.runDir, users.file), 'utf8')).includes(data.users!.at(-1)!._id.toHexString()));
  assert.equal(live.collections.find((x) => x.collection === 'recipes')!.documents, 2);
});
