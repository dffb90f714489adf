// A unique constraint beside the key a table merges on (`users` declaring `[email]` unique): when the
// source holds each value once, an incremental run must load it as a full run does, whatever moved
// between the runs. The row that held a value may leave in the same run as another takes it (the
// account deleted and made again with its email, a user whose row is now refused), or two users may
// swap their values: PostgreSQL checks the constraint row by row, so the row leaving or changing
// must be out of the way before the merge. A value two documents really hold stops the load, as the
// README says, and changes nothing.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ObjectId, type Db } from 'mongodb';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { LoadTableRecord } from '../../staging/manifest-load.ts';
import { useServers } from '../harness/index.ts';
import { etl } from '../harness/cli.ts';
import { assertMirrors, Mirror, query, uniqueEmailPipeline } from './harness.ts';

const servers = useServers();

/** A user made 30 days ago (its _id minted then too: extract reads every _id minted since the watermark), or as `extra` says. */
async function insertUser(db: Db, email: string, extra: Record<string, unknown> = {}): Promise<ObjectId> {
  const created = new Date(Date.now() - 30 * 86_400_000);
  const _id = new ObjectId(ObjectId.generate(Math.floor(((extra.creation_date as Date | undefined) ?? created).getTime() / 1000)));
  await db.collection('users').insertOne({ _id, firstname: 'Jeanne', lastname: 'Martin', email, role: 'CUSTOMER', creation_date: created, update_date: created, ...extra });
  return _id;
}

const setEmail = (db: Db, id: ObjectId, email: string) => db.collection('users').updateOne({ _id: id }, { $set: { email, update_date: new Date() } });
const emailOf = async (url: string, id: ObjectId) => (await query<{ email: string }>(url, 'SELECT email FROM users WHERE id = $1', [id.toHexString()]))[0]?.email;

test('an incremental run loads a unique value that moved from one user to another, as a full run does', async (t) => {
  const m = await Mirror.open(t, servers);
  const pipeline = await uniqueEmailPipeline(m.work);
  const model = await loadPipeline(pipeline);
  await m.sample(60);
  const db = await m.db();
  const a = await insertUser(db, 'a@example.org');
  const b = await insertUser(db, 'b@example.org');
  const c = await insertUser(db, 'c@example.org');
  const f = await insertUser(db, 'f@example.org');
  await m.incremental([], pipeline);

  // A deletes their account and registers again with the same email; B and C swap theirs; F changes
  // theirs but the document now lacks a required field (its row is refused), and G registers with
  // F's old email. The source's own unique index on email holds all along.
  await db.collection('users').deleteOne({ _id: a });
  const again = await insertUser(db, 'a@example.org', { creation_date: new Date(), update_date: new Date() });
  await setEmail(db, b, 'swap@example.org');
  await setEmail(db, c, 'b@example.org');
  await setEmail(db, b, 'c@example.org');
  await db.collection('users').updateOne({ _id: f }, { $unset: { firstname: '' }, $set: { email: 'f2@example.org', update_date: new Date() } });
  const g = await insertUser(db, 'f@example.org', { creation_date: new Date(), update_date: new Date() });
  const report = await m.incremental(['--propagate-deletes'], pipeline);

  // The load's figures say what happened to the rows: A gone, F's left, B and C updated, two new.
  const manifest = JSON.parse(await readFile(path.join(m.incrementalStaging, report.runId, 'manifest.json'), 'utf8')) as { stages: { load: { tables: Record<string, LoadTableRecord> } } };
  const users = manifest.stages.load.tables.users!;
  assert.deepEqual({ inserted: users.inserted, updated: users.updated, deleted: users.deleted }, { inserted: 2, updated: 2, deleted: 2 });
  const url = m.incrementalUrl;
  assert.deepEqual(
    [await emailOf(url, a), await emailOf(url, again), await emailOf(url, b), await emailOf(url, c), await emailOf(url, f), await emailOf(url, g)],
    [undefined, 'a@example.org', 'c@example.org', 'b@example.org', undefined, 'f@example.org'],
  );
  await assertMirrors(model, url, await m.reference(pipeline));
});

/** `etl run --json` into the incremental database, expected to stop: its error. */
async function failingRun(m: Mirror, pipeline: string, extra: readonly string[] = []) {
  const r = await etl([...m.incrementalArgs('run', ['--json', ...extra], pipeline)], { env: m.incrementalEnv });
  assert.equal(r.code, 1, r.output);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  return (JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string; context: Record<string, string> } }).error;
}

test('a value two users really hold stops the load naming both documents, and changes nothing', async (t) => {
  const m = await Mirror.open(t, servers);
  const pipeline = await uniqueEmailPipeline(m.work);
  await m.sample(30);
  const db = await m.db();
  const a = await insertUser(db, 'a@example.org');
  const b = await insertUser(db, 'b@example.org');
  await m.incremental([], pipeline);
  // The sample's users collection has a unique index on email, as the app's has: a source without it.
  await db.collection('users').dropIndexes();

  // B takes A's email; A, not edited, is not read again.
  await setEmail(db, b, 'a@example.org');
  let error = await failingRun(m, pipeline);
  assert.equal(error.code, 'unique_value_shared');
  assert.equal(error.context.constraint, 'users_email_key');
  assert.match(error.message, new RegExp(`email = "a@example.org"\\): the row of document ${b.toHexString()}, which this load merges, and the row of document ${a.toHexString()} already in the table`));
  assert.match(error.hint, new RegExp(`^nothing was changed in PostgreSQL; if document ${a.toHexString()} was deleted from MongoDB, load with --propagate-deletes`));
  assert.deepEqual([await emailOf(m.incrementalUrl, a), await emailOf(m.incrementalUrl, b)], ['a@example.org', 'b@example.org']);

  // Two new users with one email: both staged by the run.
  await setEmail(db, b, 'b@example.org');
  const c = await insertUser(db, 'c@example.org', { update_date: new Date() });
  const d = await insertUser(db, 'c@example.org', { update_date: new Date() });
  error = await failingRun(m, pipeline);
  assert.equal(error.code, 'unique_value_shared');
  assert.match(error.message, /email = "c@example.org"/);
  for (const id of [c, d]) assert.match(error.message, new RegExp(id.toHexString()));
  assert.match(error.message, /which it merges too/);
  assert.doesNotMatch(error.hint, /--propagate-deletes/);
  assert.equal(await emailOf(m.incrementalUrl, c), undefined);
});

test('an account deleted and made again with its email: without --propagate-deletes the load says so, with it the run loads', async (t) => {
  const m = await Mirror.open(t, servers);
  const pipeline = await uniqueEmailPipeline(m.work);
  await m.sample(30);
  const db = await m.db();
  const a = await insertUser(db, 'a@example.org');
  await m.incremental([], pipeline);
  await db.collection('users').deleteOne({ _id: a });
  const again = await insertUser(db, 'a@example.org', { creation_date: new Date(), update_date: new Date() });
  const error = await failingRun(m, pipeline);
  assert.equal(error.code, 'unique_value_shared');
  assert.match(error.hint, new RegExp(`if document ${a.toHexString()} was deleted from MongoDB, load with --propagate-deletes`));
  await m.incremental(['--propagate-deletes'], pipeline);
  assert.deepEqual([await emailOf(m.incrementalUrl, a), await emailOf(m.incrementalUrl, again)], [undefined, 'a@example.org']);
});

test('a held-back user whose email another took while it waited: the load names it as the one that may be deleted', async (t) => {
  const m = await Mirror.open(t, servers);
  // users.company_id refuses a missing company (the shipped pipeline sets it NULL): a user waits in etl_pending.
  const unique = await uniqueEmailPipeline(m.work);
  const shipped = await readFile(unique, 'utf8');
  const setNull = 'on_missing: set_null # a deleted company does not lose the user; counted in the load report';
  assert.ok(shipped.includes(setNull), 'the users.company_id line of pipeline.yaml has moved: update the test');
  await writeFile(unique, shipped.replace(setNull, 'on_missing: reject'));
  await m.sample(30);
  const db = await m.db();
  const company = new ObjectId(ObjectId.generate(Math.floor(Date.now() / 1000) - 30 * 86_400));
  const waiting = await insertUser(db, 'a@example.org', { company });
  await m.incremental([], unique);
  assert.equal(await emailOf(m.incrementalUrl, waiting), undefined, 'held back until its company exists');

  // The waiting user is deleted (no run propagates it) and a new user registers with the email.
  await db.collection('users').deleteOne({ _id: waiting });
  const again = await insertUser(db, 'a@example.org', { creation_date: new Date(), update_date: new Date() });
  await m.incremental([], unique);
  assert.equal(await emailOf(m.incrementalUrl, again), 'a@example.org');

  // The company arrives: the waiting row would land beside the new user's.
  const now = new Date();
  await db.collection('companies').insertOne({ _id: company, name: 'Acme', creation_date: now, update_date: now });
  const error = await failingRun(m, unique);
  assert.equal(error.code, 'unique_value_shared');
  assert.match(error.message, new RegExp(`the row of document ${waiting.toHexString()}, held back by an earlier load until its reference arrived, which this load lands, and the row of document ${again.toHexString()} already in the table`));
  assert.match(error.hint, new RegExp(`if document ${waiting.toHexString()} or document ${again.toHexString()} was deleted from MongoDB, load with --propagate-deletes`));

  await m.incremental(['--propagate-deletes'], unique);
  assert.deepEqual([await emailOf(m.incrementalUrl, waiting), await emailOf(m.incrementalUrl, again)], [undefined, 'a@example.org']);
  await assertMirrors(await loadPipeline(unique), m.incrementalUrl, await m.reference(unique));
});
