// A unique constraint beside the key a table merges on (`users` declaring `[email]` unique): when the
// source holds each value once, an incremental run must load it as a full run does, whatever moved
// between the runs. The row that held a value may leave in the same run as another takes it (the
// account deleted and made again with its email, a user whose row is now refused), or two users may
// swap their values: PostgreSQL checks the constraint row by row, so the row leaving or changing
// must be out of the way before the merge. A value two documents really hold is neither's: both rows
// are refused (duplicate_value) and wait in etl_pending, the load goes on, and they land once one of
// them holds the value alone, as a full run of the source then loads it.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ObjectId, type Db } from 'mongodb';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { LoadTableRecord } from '../../staging/manifest-load.ts';
import { useServers } from '../harness/index.ts';
import { etl } from '../harness/cli.ts';
import { assertMirrors, deepDiff, Mirror, query, uniqueEmailPipeline } from './harness.ts';

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

interface RejectLine {
  readonly key: { readonly id: string };
  readonly column: string;
  readonly value: string;
  readonly reason: string;
  readonly documents: readonly string[];
}

/** load/users.rejects.ndjson of a run: the lines refused for a shared value. */
async function sharedValueRejects(m: Mirror, runId: string): Promise<RejectLine[]> {
  const text = await readFile(path.join(m.incrementalStaging, runId, 'load', 'users.rejects.ndjson'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RejectLine)
    .filter((r) => r.reason === 'duplicate_value');
}

/** The users table's load figures of a run. */
async function usersFigures(m: Mirror, runId: string): Promise<LoadTableRecord> {
  const manifest = JSON.parse(await readFile(path.join(m.incrementalStaging, runId, 'manifest.json'), 'utf8')) as { stages: { load: { tables: Record<string, LoadTableRecord> } } };
  return manifest.stages.load.tables.users!;
}

/** The users rows held in etl_pending, by id. */
async function pendingUsers(url: string): Promise<string[]> {
  return (await query<{ id: string }>(url, `SELECT row_key->>0 AS id FROM etl_pending WHERE table_name = 'users' AND kind = 'row' ORDER BY 1`)).map((r) => r.id);
}

const hex = (...ids: ObjectId[]) => ids.map((i) => i.toHexString()).sort();

test('a value two users really hold: both rows are refused and wait, the load goes on, and they land once one holds it alone', async (t) => {
  const m = await Mirror.open(t, servers);
  const pipeline = await uniqueEmailPipeline(m.work);
  const model = await loadPipeline(pipeline);
  await m.sample(30);
  const db = await m.db();
  const a = await insertUser(db, 'a@example.org');
  const b = await insertUser(db, 'b@example.org');
  await m.incremental([], pipeline);
  // The sample's users collection has a unique index on email, as the app's has: a source without it.
  await db.collection('users').dropIndexes();
  const url = m.incrementalUrl;

  // B takes A's email; A, not edited, is not read again: its row leaves, B's is refused.
  await setEmail(db, b, 'a@example.org');
  let report = await m.incremental([], pipeline);
  assert.deepEqual([await emailOf(url, a), await emailOf(url, b)], [undefined, undefined]);
  assert.deepEqual(await pendingUsers(url), hex(a, b));
  assert.deepEqual(
    (await sharedValueRejects(m, report.runId)).map(({ key, column, value, reason, documents }) => ({ key, column, value, reason, documents })),
    [{ key: { id: b.toHexString() }, column: 'email', value: '{"email": "a@example.org"}', reason: 'duplicate_value', documents: hex(a, b) }],
  );
  const figures = await usersFigures(m, report.runId);
  assert.deepEqual({ rejected: figures.rejected, deleted: figures.deleted, inserted: figures.inserted }, { rejected: 1, deleted: 2, inserted: 0 }, 'B refused; both rows left the table');
  // The auditor's check agrees with the run's figures and files.
  const verified = await etl(['verify', path.join(m.incrementalStaging, report.runId)]);
  assert.equal(verified.code, 0, verified.output);
  await assertMirrors(model, url, await m.reference(pipeline));
  // etl diff agrees: both holders refused, none missing or extra.
  const diff = await deepDiff(m, { file: pipeline, model });
  assert.equal(diff.code, 0, JSON.stringify(diff.report.tables.filter((x) => x.table === 'users')));

  // Two new users with one email: both staged by the run, both refused.
  const c = await insertUser(db, 'c@example.org', { update_date: new Date() });
  const d = await insertUser(db, 'c@example.org', { update_date: new Date() });
  report = await m.incremental([], pipeline);
  // (B, edited within the watermark's margin, is read again: refused again.)
  const refused = (await sharedValueRejects(m, report.runId)).filter((r) => r.value === '{"email": "c@example.org"}');
  assert.deepEqual(refused.map((r) => [r.key.id, r.documents]).sort(), [c, d].map((x) => [x.toHexString(), hex(c, d)]).sort());
  assert.deepEqual(await pendingUsers(url), hex(a, b, c, d));
  await assertMirrors(model, url, await m.reference(pipeline));

  // B takes its email back: A, still waiting (not read again), lands beside it. C is deleted: D lands.
  await setEmail(db, b, 'b@example.org');
  await db.collection('users').deleteOne({ _id: c });
  report = await m.incremental(['--propagate-deletes'], pipeline);
  assert.deepEqual([await emailOf(url, a), await emailOf(url, b), await emailOf(url, c), await emailOf(url, d)], ['a@example.org', 'b@example.org', undefined, 'c@example.org']);
  assert.deepEqual(await pendingUsers(url), []);
  await assertMirrors(model, url, await m.reference(pipeline));
});

test('an account deleted and made again with its email: without --propagate-deletes both rows wait, with it the new one lands', async (t) => {
  const m = await Mirror.open(t, servers);
  const pipeline = await uniqueEmailPipeline(m.work);
  await m.sample(30);
  const db = await m.db();
  const a = await insertUser(db, 'a@example.org');
  await m.incremental([], pipeline);
  await db.collection('users').deleteOne({ _id: a });
  const again = await insertUser(db, 'a@example.org', { creation_date: new Date(), update_date: new Date() });
  // The run does not know A was deleted: A's row and the new one hold one email.
  const report = await m.incremental([], pipeline);
  assert.deepEqual((await sharedValueRejects(m, report.runId)).map((r) => r.documents), [hex(a, again)]);
  assert.deepEqual(await pendingUsers(m.incrementalUrl), hex(a, again));
  await m.incremental(['--propagate-deletes'], pipeline);
  assert.deepEqual([await emailOf(m.incrementalUrl, a), await emailOf(m.incrementalUrl, again)], [undefined, 'a@example.org']);
  assert.deepEqual(await pendingUsers(m.incrementalUrl), []);
});

test('a held-back user whose email another took while it waited: once its reference arrives both wait, until the deletion propagates', async (t) => {
  const m = await Mirror.open(t, servers);
  // users.company_id refuses a missing company (the shipped pipeline sets it NULL): a user waits in etl_pending.
  const unique = await uniqueEmailPipeline(m.work);
  const shipped = await readFile(unique, 'utf8');
  const setNull = 'on_missing: set_null # a deleted company does not lose the user; counted in the load report';
  assert.ok(shipped.includes(setNull), 'the users.company_id line of pipeline.yaml has moved: update the test');
  await writeFile(unique, shipped.replace(setNull, 'on_missing: reject'));
  const model = await loadPipeline(unique);
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

  // The company arrives: the waiting row would land beside the new user's: neither does.
  const now = new Date();
  await db.collection('companies').insertOne({ _id: company, name: 'Acme', creation_date: now, update_date: now });
  const report = await m.incremental([], unique);
  assert.deepEqual([await emailOf(m.incrementalUrl, waiting), await emailOf(m.incrementalUrl, again)], [undefined, undefined]);
  assert.deepEqual(await pendingUsers(m.incrementalUrl), hex(waiting, again));
  assert.equal((await usersFigures(m, report.runId)).deleted, 1, "the new user's row left the table");

  await m.incremental(['--propagate-deletes'], unique);
  assert.deepEqual([await emailOf(m.incrementalUrl, waiting), await emailOf(m.incrementalUrl, again)], [undefined, 'a@example.org']);
  await assertMirrors(model, m.incrementalUrl, await m.reference(unique));
});

test('a dedupe table: two (user, day) rows sharing a value of another unique constraint are both refused, then both land once it is theirs alone', async (t) => {
  const m = await Mirror.open(t, servers);
  const shipped = await readFile(await uniqueEmailPipeline(m.work), 'utf8');
  const anchor = '    unique_constraints:\n      - [user_id, day]\n';
  assert.ok(shipped.includes(anchor), 'the users_logbook table of pipeline.yaml has moved: update the test');
  // Two logbook days of one user made at the same instant would share (user_id, created_at).
  const pipeline = path.join(m.work, 'pipeline-logbook-unique.yaml');
  await writeFile(pipeline, shipped.replace(anchor, `${anchor}      - [user_id, created_at]\n`));
  const model = await loadPipeline(pipeline);
  await m.sample(30);
  const db = await m.db();
  const user = await insertUser(db, 'logbook@example.org');
  const made = new Date(Date.now() - 20 * 86_400_000);
  const entry = (day: string, creation: Date) => ({ _id: new ObjectId(ObjectId.generate(Math.floor(creation.getTime() / 1000))), user, day: new Date(day), creation_date: creation, update_date: creation });
  const first = entry('2026-11-01T10:00:00Z', made);
  const second = entry('2026-11-02T10:00:00Z', made);
  await db.collection('coachinglogbooks').insertMany([first, second]);
  const report = await m.incremental([], pipeline);
  const logbookOf = () => query<{ day: string }>(m.incrementalUrl, `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM users_logbook WHERE user_id = $1 ORDER BY day`, [user.toHexString()]);
  assert.deepEqual(await logbookOf(), [], 'both days refused');
  const lines = (await readFile(path.join(m.incrementalStaging, report.runId, 'load', 'users_logbook.rejects.ndjson'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as RejectLine & { line: number | null; file: string });
  const shared = lines.filter((l) => l.reason === 'duplicate_value');
  assert.equal(shared.length, 2, JSON.stringify(lines));
  assert.ok(shared.every((l) => l.column === 'user_id, created_at'));
  // Each names the staged line it came from: the line holds the user's id.
  const staged = (await readFile(path.join(m.incrementalStaging, report.runId, shared[0]!.file), 'utf8')).split('\n');
  for (const l of shared) assert.match(staged[l.line! - 1] ?? '', new RegExp(user.toHexString()), `line ${l.line} of ${l.file}`);
  await assertMirrors(model, m.incrementalUrl, await m.reference(pipeline));

  // The second day is corrected to a later instant: both days land.
  const later = new Date();
  await db.collection('coachinglogbooks').updateOne({ _id: second._id }, { $set: { creation_date: later, update_date: later } });
  await m.incremental([], pipeline);
  assert.deepEqual(await logbookOf(), [{ day: '2026-11-01' }, { day: '2026-11-02' }]);
  await assertMirrors(model, m.incrementalUrl, await m.reference(pipeline));

  // A third day synced late with the first day's instant: the first day's row leaves, the third waits.
  const third = entry('2026-11-03T10:00:00Z', made);
  await db.collection('coachinglogbooks').insertOne({ ...third, _id: new ObjectId() });
  await m.incremental([], pipeline);
  assert.deepEqual(await logbookOf(), [{ day: '2026-11-02' }]);
  await assertMirrors(model, m.incrementalUrl, await m.reference(pipeline));
});
