// End to end with a live MongoDB (FerretDB) and PostgreSQL, through the real CLI and pipeline.yaml:
// a full `etl run`, then changes in MongoDB (updates, new documents, an array item removed, arrays
// emptied, a newer logbook document for an existing day), then an incremental `etl run`. PostgreSQL
// must then hold exactly what a full run of the final MongoDB into an empty database gives.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { MongoClient, ObjectId, type Document } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { etl } from '../harness/cli.ts';

const servers = useServers();
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PIPELINE = path.join(REPO, 'pipeline.yaml');

/** Every table's rows as sorted text; users_logbook without its SERIAL id (PostgreSQL's own numbering). */
async function contents(url: string, tables: readonly string[]): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, string> = {};
    for (const t of tables) {
      const cols = (
        await client.query<{ attname: string }>(
          `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
          [pg.escapeIdentifier(t)],
        )
      ).rows
        .map((r) => r.attname)
        .filter((c) => !(t === 'users_logbook' && c === 'id'));
      const row = `ROW(${cols.map((c) => `x.${pg.escapeIdentifier(c)}`).join(', ')})::text`;
      const r = await client.query(`SELECT count(*)::int AS n, coalesce(md5(string_agg(${row}, '|' ORDER BY ${row})), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
      out[t] = `${r.rows[0].n} rows ${r.rows[0].h}`;
    }
    return out;
  } finally {
    await client.end();
  }
}

test('an incremental run after changes in MongoDB equals a full run of the final state', async (t) => {
  const model = await loadPipeline(PIPELINE);
  const mongo = await servers.mongo.newDatabase(t.name);
  const incremental = await servers.postgres.createDatabase(`${t.name} incremental`);
  const full = await servers.postgres.createDatabase(`${t.name} full`);
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-e2e-'));
  t.after(() => rm(work, { recursive: true, force: true }));

  const sample = await etl(['sample', '--scale', '1500', '--mongo-url', mongo.url, '--db', mongo.name]);
  assert.equal(sample.code, 0, sample.stderr);

  const run = (staging: string, db: string, extra: string[] = []) =>
    etl(['run', '--json', '--source', mongo.url, '--mongo-db', mongo.name, '--staging', path.join(work, staging), '--pipeline', PIPELINE, '--database-url', db, ...extra]);

  const first = await run('incremental', incremental);
  assert.equal(first.code, 0, first.stderr);
  const tables = [...model.loadOrder];
  const afterFirst = await contents(incremental, tables);

  // ── changes in MongoDB ──
  const client = new MongoClient(mongo.url);
  await client.connect();
  try {
    const db = client.db(mongo.name);
    const now = new Date();
    const users = db.collection('users');
    const someUsers = await users.find({}, { sort: { _id: 1 }, limit: 3 }).toArray();
    for (const u of someUsers) await users.updateOne({ _id: u._id }, { $set: { firstname: `Changed ${u.firstname}`, update_date: now } });
    const withTargets = await users.findOne({ 'specificity_targets.1': { $exists: true } }, { sort: { _id: -1 } });
    assert.ok(withTargets, 'a user with two specificity targets');
    await users.updateOne({ _id: withTargets._id }, { $pop: { specificity_targets: 1 }, $set: { update_date: now } });
    const withEvents = await users.findOne({ 'registered_events.0': { $exists: true }, _id: { $ne: withTargets._id } });
    assert.ok(withEvents, 'a user with registered events');
    await users.updateOne({ _id: withEvents._id }, { $set: { registered_events: [], update_date: now } });
    const newUser: Document = { ...someUsers[0]!, _id: new ObjectId(), email: `new.${Date.now()}@example.com`, creation_date: now, update_date: now };
    await users.insertOne(newUser);

    const contentsCol = db.collection('contents');
    const read = await contentsCol.findOne({ 'viewed_by.0': { $exists: true } });
    assert.ok(read, 'a content viewed by someone');
    await contentsCol.updateOne({ _id: read._id }, { $set: { viewed_by: [], update_date: now } });

    const days = db.collection('days');
    const day = await days.findOne({ 'contents.1': { $exists: true } });
    assert.ok(day, 'a day with two contents');
    await days.updateOne({ _id: day._id }, { $pop: { contents: -1 }, $set: { update_date: now } });

    const logbooks = db.collection('coachinglogbooks');
    const lb = await logbooks.findOne({ user: { $exists: true } });
    assert.ok(lb, 'a logbook document with a user');
    await logbooks.insertOne({ ...lb, _id: new ObjectId(), creation_date: now, update_date: now });
  } finally {
    await client.close();
  }

  const second = await run('incremental', incremental);
  assert.equal(second.code, 0, second.stderr);
  const report = JSON.parse(second.stdout);
  const load = new Map<string, { inserted: number; updated: number; deleted: number }>(report.load.tables.map((x: { table: string }) => [x.table, x]));
  assert.ok(load.get('users')!.updated >= 3, 'the changed users were updated');
  assert.ok(load.get('users')!.inserted >= 1, 'the new user was inserted');
  assert.ok(load.get('user_events')!.deleted >= 1, 'the emptied registered_events lost their links');
  assert.ok(load.get('users_contents_reads')!.deleted >= 1, 'the emptied viewed_by lost its links');
  assert.ok(load.get('days_contents_links')!.deleted >= 1, 'the removed day content lost its link');
  assert.ok(load.get('users_logbook')!.updated >= 1, 'the newer logbook document updated its day');
  assert.ok(
    report.extract.collections.some((c: { watermark: { from: string | null } }) => c.watermark.from !== null),
    'the second run was incremental',
  );

  const reference = await run('full', full, ['--full']);
  assert.equal(reference.code, 0, reference.stderr);

  const expected = await contents(full, tables);
  assert.deepEqual(await contents(incremental, tables), expected);
  // The comparison sees the changes: the state before the incremental run differs from it.
  for (const changed of ['users', 'user_events', 'users_targets', 'users_contents_reads', 'days_contents_links', 'users_logbook']) {
    assert.notEqual(afterFirst[changed], expected[changed], changed);
  }
});
