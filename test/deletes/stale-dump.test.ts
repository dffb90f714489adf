// A dump says nothing of when it was taken. Loaded after a live run, its rows may be older than
// PostgreSQL's, and with --propagate-deletes it deletes the rows of documents created since it was
// taken. Load cannot tell such a dump from a fresh one of quiet data, so it warns once, naming the
// tables and the rows it deleted; the next live run reads the deleted documents again (etl_gone),
// though their dates are before the watermark, and `etl run --full` leaves everything exact.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';
import { etl, STACK_LINE } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { Mirror, PIPELINE, pipelineWithMargin } from '../mirror/harness.ts';

const servers = useServers();

async function usersIn(url: string, ids: readonly string[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query(`SELECT count(*)::int AS n FROM users WHERE id = ANY($1::text[])`, [ids])).rows[0].n);
  } finally {
    await client.end();
  }
}

test('a dump older than the live run, loaded with --propagate-deletes: one warning naming the tables and the rows deleted; etl run --full mends it', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const db = await servers.postgres.createDatabase(t.name);
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-stale-dump-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const dump = path.join(work, 'dump');
  // The same seed gives the same documents: the dump is the live database as it was.
  for (const to of [['--out', dump], ['--mongo-url', mongo.url]]) {
    const r = await etl(['sample', '--scale', '400', '--db', mongo.name, ...to]);
    assert.equal(r.code, 0, r.stderr);
  }
  // A one-second margin: with the shipped 300, the next live run would read the new users again anyway.
  const pipeline = await pipelineWithMargin(work, 1);
  const common = ['--staging', path.join(work, 'runs'), '--pipeline', pipeline, '--database-url', db];
  const live = (...extra: string[]) => etl(['run', '--source', mongo.url, '--mongo-db', mongo.name, ...common, ...extra]);
  assert.equal((await live()).code, 0);

  // Users created after the dump was taken, loaded by a live run.
  const client = new MongoClient(mongo.url);
  await client.connect();
  t.after(() => client.close());
  const now = new Date();
  const created = [new ObjectId(), new ObjectId()];
  const users = client.db(mongo.name).collection('users');
  // Copies of a user that loads (every column it needs), as new documents.
  const model = await users.findOne({}, { sort: { _id: 1 } });
  assert.ok(model);
  await users.insertMany(created.map((_id, i) => ({ ...model, _id, email: `new${i}@example.com`, creation_date: now, update_date: now })));
  await new Promise((resolve) => setTimeout(resolve, 2100));
  assert.equal((await live()).code, 0);
  const ids = created.map((id) => id.toHexString());
  assert.equal(await usersIn(db, ids), 2);

  const stale = await etl(['run', '--json', '--source', dump, '--mongo-db', mongo.name, '--propagate-deletes', ...common]);
  assert.equal(stale.code, 0, stale.stderr);
  assert.doesNotMatch(stale.stderr, STACK_LINE);
  const report = JSON.parse(stale.stdout) as { load: { tables: { table: string; deleted: number }[]; warnings: string[] } };
  const deleted = report.load.tables.reduce((n, x) => n + x.deleted, 0);
  assert.ok(deleted >= 2, `the dump's delete propagation removed the new users (${deleted})`);
  const warnings = report.load.warnings.filter((w) => w.startsWith("this dump's newest dates"));
  assert.equal(warnings.length, 1, `one warning for every table, not one a table:\n${report.load.warnings.join('\n')}`);
  assert.match(warnings[0]!, /before the watermark of ingredients, appointment_types, companies and \d+ more tables, which stays where run \d{8}T\d{9}Z set it/);
  assert.ok(
    warnings[0]!.includes(`run etl run --full against the live server (of the ${deleted.toLocaleString('en-US')} row(s) this load deleted, those of documents created since come back with the next live run)`),
    warnings[0],
  );
  assert.equal(await usersIn(db, ids), 0, 'the dump deleted them');

  assert.equal((await live()).code, 0);
  assert.equal(await usersIn(db, ids), 2, 'the next incremental live run reads them again (found gone: etl_gone), though their dates are before the watermark');
  assert.equal((await live('--full')).code, 0);
  assert.equal(await usersIn(db, ids), 2, 'etl run --full against the live server keeps them');
});

test('dumps loaded one after the other, the newest document of a collection deleted between them: the warning names that cause too, not only an older dump', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(300);
  await m.incremental([], PIPELINE, await m.dump('first'));
  // The user updated last is deleted: the next dump's newest users date is older than the first's.
  const users = (await m.db()).collection('users');
  const newest = await users.find({}).sort({ update_date: -1 }).limit(1).next();
  assert.ok(newest);
  await users.deleteOne({ _id: newest._id });
  const report = (await m.incremental([], PIPELINE, await m.dump('second'))) as unknown as { load: { warnings: string[] } };
  const warnings = report.load.warnings.filter((w) => w.startsWith("this dump's newest dates"));
  assert.equal(warnings.length, 1, report.load.warnings.join('\n'));
  assert.match(warnings[0]!, /before the watermark of users, user_events, users_targets, which stays where run \d{8}T\d{9}Z set it: the dump was taken before that run, or the newest documents of those tables' collections were deleted since\. If it was taken before that run, its rows are older than PostgreSQL's: run etl run --full against the live server$/);
});
