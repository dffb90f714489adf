// What an incremental read takes (issue 12, items 2 and 4), on the dump path (the live path is in
// live.test.ts, byte for byte the same): every changed document of a collection whatever the
// tables' filters (transform decides membership), documents whose ObjectId was minted at or after
// the watermark whatever their dates, documents no date can place, counted in a census, and the
// documents claiming a contested key (etl_claims).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EJSON, ObjectId, type Document } from 'bson';
import pg from 'pg';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { incrementalQuery } from '../../extract/watermark-plan.ts';
import { runTransform } from '../../transform/index.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { day, objectIdAt, writeDumpFolder } from './dump-writer.ts';
import { stateTablesSql } from '../../schema/state-tables.ts';
import { useServers } from '../harness/index.ts';
import { incrementalData, SINCE } from './incremental-data.ts';

const servers = useServers({ mongo: false });

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/pipeline.yaml');
async function tmp(t: { after(fn: () => Promise<void>): void }, name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `etl-incr-${name}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const idsOf = (text: string): string[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => (EJSON.parse(l, { relaxed: false }) as Document)._id.toHexString());

test('an incremental read of a dump ignores the filter, takes ObjectIds minted since the watermark and undated documents; transform counts the filtered', async (t) => {
  const dir = await tmp(t, 'dump');
  const data = incrementalData();
  await writeDumpFolder(path.join(dir, 'appdb'), data);
  const model = await loadPipeline(PIPELINE);
  const stagingDir = path.join(dir, 'staging');
  const report = await runExtract({ model, stagingDir, source: { kind: 'dump', path: path.join(dir, 'appdb') }, since: SINCE });

  const recipes = report.collections.find((c) => c.collection === 'recipes')!;
  assert.deepEqual(idsOf(await readFile(path.join(report.runDir, recipes.file), 'utf8')), [objectIdAt(5000), objectIdAt(5001)].map((i) => i.toHexString()));
  // The manifest records the query actually sent: no __t condition.
  assert.deepEqual(recipes.filter, EJSON.serialize(incrementalQuery(SINCE), { relaxed: false }));
  assert.doesNotMatch(JSON.stringify(recipes.filter), /__t/);

  const users = report.collections.find((c) => c.collection === 'users')!;
  const staged = idsOf(await readFile(path.join(report.runDir, users.file), 'utf8'));
  const synced = data.users!.at(-1)!._id.toHexString();
  const older = data.users!.at(-2)!._id.toHexString();
  assert.ok(staged.includes(synced), 'the document synced after the watermark with older dates is read');
  assert.ok(!staged.includes(older), 'an ObjectId minted before the watermark with old dates is not');
  for (const n of [700, 701, 702, 703]) assert.ok(staged.includes(objectIdAt(n).toHexString()), `undated document ${n} is read`);
  assert.deepEqual(users.undated, {
    documents: 4,
    fields: { creation_date: { missing: 2, string: 1, date: 1 }, update_date: { missing: 2, null: 1, string: 1 } },
  });
  assert.equal(users.scanned, data.users!.length);
  assert.equal(users.scanned, users.documents + users.rejected! + users.unmatched!);
  assert.match(report.warnings.join('\n'), /users: 4 document\(s\) have no update_date that is a date \(creation_date: missing 2, string 1, date 1; update_date: missing 2, null 1, string 1\)/);

  // Transform decides membership: the recipe that left "menu" is a filtered skip of menus.
  const transformed = await runTransform({ model, stagingDir });
  const menus = transformed.tables.find((x) => x.table === 'menus')!;
  assert.equal(menus.documents, 2);
  assert.equal(menus.rows, 1);
  assert.deepEqual(menus.skipped, { filtered: 1 });
  const manifest = await readManifest(runPaths(stagingDir, report.runId));
  assert.equal(manifest.stages.transform!.tables.menus!.skipped!.filtered, 1);
});

test('a full read keeps the server filter and still counts the undated documents', async (t) => {
  const dir = await tmp(t, 'full');
  await writeDumpFolder(path.join(dir, 'appdb'), incrementalData());
  const model = await loadPipeline(PIPELINE);
  const report = await runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') } });
  const recipes = report.collections.find((c) => c.collection === 'recipes')!;
  assert.equal(recipes.documents, 1);
  assert.deepEqual(recipes.filter, { __t: 'menu' });
  assert.equal(recipes.unmatched, 2);
  const users = report.collections.find((c) => c.collection === 'users')!;
  assert.equal(users.undated!.documents, 4);
  const events = report.collections.find((c) => c.collection === 'events')!;
  assert.deepEqual(events.undated, { documents: 0, fields: { creation_date: {}, update_date: {} } });
});

test('an incremental read also takes every document claiming a key another document claims too (etl_claims), whatever its dates, and names them', async (t) => {
  const dir = await tmp(t, 'claims');
  const data = incrementalData();
  // Two users whose _ids are one key in a text column, neither edited since SINCE.
  const twin = data.users![0]!._id as ObjectId;
  data.users!.push({ _id: twin.toHexString(), creation_date: day(1), update_date: day(1), email: 'twin@example.org' });
  await writeDumpFolder(path.join(dir, 'appdb'), data);
  const model = await loadPipeline(PIPELINE);
  const url = await servers.postgres.createDatabase(t.name);
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.after(() => db.end());
  for (const sql of stateTablesSql()) await db.query(sql);
  for (const table of model.loadOrder) {
    await db.query('INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ($1, $2, $3)', [table, SINCE, '20240101T000000000Z']);
  }
  // The claims a load recorded: the ObjectId and the string of its hex claim one key of users, and a
  // document whose _id is a string claims a key of its own (not contested: not read for it).
  const claim = 'INSERT INTO etl_claims (table_name, key, identity, run_id, seen_run) VALUES ($1, $2, $3, $4, $4)';
  await db.query(claim, ['users', twin.toHexString(), twin.toHexString(), 'r1']);
  await db.query(claim, ['users', twin.toHexString(), `"${twin.toHexString()}"`, 'r1']);
  await db.query(claim, ['users', 'alone', '"alone"', 'r1']);

  const report = await runExtract({ model, stagingDir: path.join(dir, 'staging'), source: { kind: 'dump', path: path.join(dir, 'appdb') }, postgres: { connectionString: url, host: '', port: 0, database: '', user: '', password: null } });
  const users = report.collections.find((c) => c.collection === 'users')!;
  const staged = (await readFile(path.join(report.runDir, users.file), 'utf8')).split('\n').filter(Boolean).map((l) => EJSON.parse(l, { relaxed: false }) as Document);
  const texts = staged.map((d) => (typeof d._id === 'string' ? `"${d._id}"` : (d._id as ObjectId).toHexString()));
  assert.ok(texts.includes(twin.toHexString()) && texts.includes(`"${twin.toHexString()}"`), 'both claimants are read');
  assert.deepEqual(users.claimants, [`"${twin.toHexString()}"`, twin.toHexString()].sort());
  assert.deepEqual(users.filter, EJSON.serialize(incrementalQuery(SINCE, { claimants: users.claimants ?? [], gone: [] }), { relaxed: false }));
  // Transform hands them to load with each table's record.
  await runTransform({ model, stagingDir: path.join(dir, 'staging') });
  const manifest = await readManifest(runPaths(path.join(dir, 'staging'), report.runId));
  assert.deepEqual(manifest.stages.transform!.tables.users!.claimants, users.claimants);
  assert.deepEqual(manifest.stages.transform!.tables.user_events!.claimants, users.claimants, "every table of the collection");
  assert.equal(manifest.stages.transform!.tables.menus!.claimants, undefined);
});
