// `etl repair` (issue 12 item 6): what `etl diff --deep` finds is fixed by re-reading exactly those
// documents and loading them as a staged run of its own. Through the real CLI, FerretDB and
// PostgreSQL: after a full load, PostgreSQL (or MongoDB, behind the watermark's back) is changed by
// hand; the repair must leave `etl diff --deep` clean, a verifiable staged run, the watermarks as
// they were, and every table equal to a full run of MongoDB into a fresh database.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Int32, ObjectId, type Document } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { etl, type CliResult } from '../harness/cli.ts';
import { assertMirrors, contents, Mirror, PIPELINE, query } from '../mirror/harness.ts';

const servers = useServers();
const SCALE = 200;

/** The incremental database's staging folder (the one Mirror.incremental() uses). */
const stagingOf = (m: Mirror) => path.join(m.work, 'incremental');

function against(m: Mirror, command: string, extra: readonly string[] = []): Promise<CliResult> {
  return etl([command, '--mongo-url', m.mongo.url, '--mongo-db', m.mongo.name, '--database-url', m.incrementalUrl, '--pipeline', PIPELINE, ...extra]);
}

const repair = (m: Mirror, extra: readonly string[] = []) => against(m, 'repair', ['--staging', stagingOf(m), ...extra]);
const deepDiff = (m: Mirror) => against(m, 'diff', ['--deep']);

async function watermarks(url: string): Promise<unknown[]> {
  return query(url, `SELECT table_name, watermark::text AS w, run_id, fingerprint FROM etl_watermarks ORDER BY table_name`);
}

async function runFolders(m: Mirror): Promise<string[]> {
  return (await readdir(stagingOf(m)).catch(() => [])).filter((n) => /^\d{8}T\d{9}Z$/.test(n)).sort();
}

interface RepairJson {
  readonly ok: boolean;
  readonly nothing_to_repair: boolean;
  readonly run_id: string | null;
  readonly dry_run: boolean;
  readonly documents: number;
  readonly repair: readonly { table: string; missing: number; extra: number; different: number; documents: number; recomputed_keys: number }[];
  readonly after: { readonly identical: boolean } | null;
}

function parseRepair(r: CliResult): RepairJson {
  assert.equal(r.code, 0, `etl repair failed (${r.code}):\n${r.stderr}\n${r.stdout.slice(0, 2000)}`);
  return JSON.parse(r.stdout) as RepairJson;
}

/** A user no message, coaching or appointment names: deleting it by hand only takes its own link rows with it. */
async function quietUser(url: string, skip: readonly string[]): Promise<string> {
  const rows = await query<{ id: string }>(
    url,
    `SELECT u.id FROM users u WHERE u.id <> ALL($1::text[])
       AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.sender_id = u.id OR m.receiver_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM coachings c WHERE c.user_id = u.id OR c.diet_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.user_id = u.id)
       AND EXISTS (SELECT 1 FROM user_events e WHERE e.user_id = u.id)
     ORDER BY u.id LIMIT 1`,
    [skip],
  );
  assert.ok(rows[0], 'the sample has a user with events and no message, coaching or appointment');
  return rows[0].id;
}

test('etl repair fixes rows deleted, changed and inserted by hand; diff --deep is clean after, the run verifies, watermarks stay', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const clean = await deepDiff(m);
  assert.equal(clean.code, 0, `a full load is identical to MongoDB:\n${clean.stdout}\n${clean.stderr}`);
  const marks = await watermarks(m.incrementalUrl);
  const url = m.incrementalUrl;

  // A users row deleted (with its own link rows: its links and logbook rows go missing too).
  const gone = await quietUser(url, []);
  const goneDays = (await query(url, `SELECT 1 FROM users_logbook WHERE user_id = $1`, [gone])).length;
  await query(url, `DELETE FROM user_events WHERE user_id = $1`, [gone]);
  await query(url, `DELETE FROM users_targets WHERE user_id = $1`, [gone]);
  await query(url, `DELETE FROM users_logbook WHERE user_id = $1`, [gone]);
  await query(url, `DELETE FROM users_contents_reads WHERE user_id = $1`, [gone]);
  await query(url, `DELETE FROM users WHERE id = $1`, [gone]);
  // A column of another users row changed; a set_null reference nulled (an appointment's type).
  const changed = (await query<{ id: string }>(url, `SELECT id FROM users WHERE id <> $1 ORDER BY id LIMIT 1`, [gone]))[0]!.id;
  await query(url, `UPDATE users SET firstname = 'Corrupted' WHERE id = $1`, [changed]);
  const nulled = (await query<{ id: string }>(url, `SELECT id FROM appointments WHERE type_id IS NOT NULL ORDER BY id LIMIT 1`))[0]!.id;
  await query(url, `UPDATE appointments SET type_id = NULL WHERE id = $1`, [nulled]);
  // Extra rows: a user whose id an ObjectId could have, a company whose id no document could have.
  const extraUser = new ObjectId().toHexString();
  await query(url, `INSERT INTO users SELECT (jsonb_populate_record(NULL::users, to_jsonb(u) || jsonb_build_object('id', $1::text, 'email', 'extra@example.org'))).* FROM users u WHERE u.id = $2`, [extraUser, changed]);
  await query(url, `INSERT INTO companies SELECT (jsonb_populate_record(NULL::companies, to_jsonb(c) || jsonb_build_object('id', 'hand-made company'))).* FROM companies c ORDER BY c.id LIMIT 1`);
  // A company deleted, its users' and events' company_id (set_null) nulled first as its foreign key
  // demands: they are what a load would write without the company, so only bringing the company
  // back tells that they change.
  const company = (await query<{ id: string }>(url, `SELECT company_id AS id FROM users WHERE company_id IS NOT NULL AND id <> $1 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`, [changed]))[0]!.id;
  const employees = (await query(url, `UPDATE users SET company_id = NULL WHERE company_id = $1 RETURNING id`, [company])).length;
  await query(url, `UPDATE events SET company_id = NULL WHERE company_id = $1`, [company]);
  await query(url, `DELETE FROM companies WHERE id = $1`, [company]);
  // A link of another user deleted.
  const link = (await query<{ user_id: string; event_id: string }>(url, `SELECT user_id, event_id FROM user_events WHERE user_id <> $1 ORDER BY user_id, event_id LIMIT 1`, [gone]))[0]!;
  await query(url, `DELETE FROM user_events WHERE user_id = $1 AND event_id = $2`, [link.user_id, link.event_id]);
  // A logbook timestamp changed, and a (user, day) key no document has.
  const logbook = (await query<{ user_id: string; day: string }>(url, `SELECT user_id, day::text AS day FROM users_logbook WHERE user_id <> $1 ORDER BY user_id, day LIMIT 1`, [gone]))[0]!;
  await query(url, `UPDATE users_logbook SET updated_at = updated_at - interval '3 days' WHERE user_id = $1 AND day = $2::date`, [logbook.user_id, logbook.day]);
  await query(url, `INSERT INTO users_logbook (user_id, day, created_at, updated_at) VALUES ($1, '1999-12-31', now(), now())`, [changed]);

  const before = await deepDiff(m);
  assert.equal(before.code, 1, `diff --deep sees the corruption:\n${before.stdout}`);
  const runsBefore = await runFolders(m);

  const report = parseRepair(await repair(m, ['--json']));
  assert.equal(report.ok, true);
  assert.equal(report.nothing_to_repair, false);
  assert.equal(report.after?.identical, true, 'the check after the repair finds nothing');
  const of = (table: string) => report.repair.find((x) => x.table === table);
  assert.deepEqual(
    { missing: of('users')?.missing, extra: of('users')?.extra, different: of('users')?.different },
    { missing: 1, extra: 1, different: 1 },
    'users: one deleted, one inserted, one changed',
  );
  assert.equal(of('appointments')?.different, 1);
  assert.deepEqual({ extra: of('companies')?.extra, missing: of('companies')?.missing }, { extra: 1, missing: 1 });
  assert.ok(employees > 0 && (of('users')?.documents ?? 0) >= 3 + employees, "the deleted company's users are read again");
  // The deleted user's links and logbook rows are refused (their user is missing), not missing: the
  // repair takes them up because it brings the user back.
  assert.equal(of('user_events')?.missing, 1, 'the deleted link');
  assert.deepEqual(
    { different: of('users_logbook')?.different, extra: of('users_logbook')?.extra, recomputed: of('users_logbook')?.recomputed_keys },
    { different: 1, extra: 1, recomputed: 2 + goneDays },
  );

  // A staged run of its own: a new folder, a manifest that says repair, a run etl verify accepts.
  const runs = await runFolders(m);
  assert.deepEqual(runs.slice(0, -1), runsBefore);
  assert.equal(runs.at(-1), report.run_id);
  const dir = path.join(stagingOf(m), report.run_id!);
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.stages.load.status, 'done');
  assert.ok(manifest.stages.extract.repair, 'the extract section says repair');
  const users = manifest.stages.extract.collections.users;
  assert.equal(users.watermark, undefined, 'a repair read has no watermark');
  assert.equal(users.requested.absent, 1, 'the extra user is not in MongoDB');
  const requested = (await readFile(path.join(dir, users.requested.file), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(requested.some((r) => r._id.$oid === gone && r.found === true), 'the deleted user was read again');
  assert.ok(requested.some((r) => r._id.$oid === extraUser && r.found === false), 'the extra user was asked for and not found');
  assert.equal(manifest.stages.transform.tables.users.absent, 1);
  assert.ok(manifest.stages.transform.tables.users_logbook.recompute, 'users_logbook keys to recompute are staged');
  const verify = await etl(['verify', dir]);
  assert.equal(verify.code, 0, `etl verify passes on the repair run:\n${verify.stdout}\n${verify.stderr}`);
  // Its report says it moves no watermark (it showed an empty table under "a load of this run stores “after”").
  const reported = await etl(['report', '--run', report.run_id!, '--staging', stagingOf(m), '--no-ledger']);
  assert.equal(reported.code, 0, reported.output);
  const html = await readFile(path.join(dir, 'report.html'), 'utf8');
  assert.match(html, /<section id="watermarks">.*A repair run reads chosen documents by <code>_id<\/code>, not a date window: its load moves no watermark\./s);

  assert.deepEqual(await watermarks(url), marks, 'a repair moves no watermark');
  const after = await deepDiff(m);
  assert.equal(after.code, 0, `diff --deep is clean after the repair:\n${after.stdout}`);
  await assertMirrors(m.model, url, await m.reference());
});

test('etl repair with nothing to repair says so and stages nothing', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const runs = await runFolders(m);
  const text = await repair(m);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^repair: nothing to repair, 31 table\(s\) identical to MongoDB \(diff --deep\); no run staged, in /m);
  const json = parseRepair(await repair(m, ['--json', '-q']));
  assert.deepEqual({ nothing: json.nothing_to_repair, run: json.run_id, documents: json.documents }, { nothing: true, run: null, documents: 0 });
  assert.deepEqual(await runFolders(m), runs, 'no run folder was made');
});

/** A users document whose `_id` is not an ObjectId (etl_claims keeps such documents). */
const legacyUser = (_id: unknown, n: number) => {
  const at = new Date('2024-01-15T10:00:00Z');
  return { _id, firstname: 'Legacy', lastname: `User ${n}`, email: `legacy.${n}@example.org`, role: 'CUSTOMER', registered_events: [], creation_date: at, update_date: at };
};

test('etl repair removes the rows of a document deleted in MongoDB and picks up edits the watermark cannot see; --dry-run changes nothing', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  await db.collection('users').insertMany([legacyUser('legacy-1', 1), legacyUser(new Int32(77), 2)] as unknown as Document[]);
  await m.incremental();
  const url = m.incrementalUrl;
  // A user deleted in MongoDB (its links go with it; messages and coachings naming it are refused by a full run).
  const victim = (await query<{ user_id: string }>(url, `SELECT user_id FROM user_events ORDER BY user_id LIMIT 1`))[0]!.user_id;
  assert.equal((await db.collection('users').deleteOne({ _id: new ObjectId(victim) })).deletedCount, 1);
  // The only logbook document of a (user, day) deleted: its row must go.
  const alone = await query<{ id: string }>(
    url,
    `SELECT c._id AS id FROM etl_contrib_users_logbook c WHERE c.user_id <> $1
       AND NOT EXISTS (SELECT 1 FROM etl_contrib_users_logbook d WHERE d.user_id = c.user_id AND d.day = c.day AND d._id <> c._id) ORDER BY c._id LIMIT 1`,
    [victim],
  );
  assert.ok(alone[0], 'a (user, day) with one logbook document');
  assert.equal((await db.collection('coachinglogbooks').deleteOne({ _id: new ObjectId(alone[0].id) })).deletedCount, 1);
  // A name changed without touching update_date: no incremental run would read it.
  const quiet = await db.collection('users').findOne({ _id: { $ne: new ObjectId(victim) } }, { sort: { _id: -1 } });
  assert.ok(quiet);
  await db.collection('users').updateOne({ _id: quiet._id }, { $set: { firstname: 'Renamed Quietly' } });
  // The same for documents whose `_id` is a string and an Int32: one deleted, one renamed.
  await db.collection('users').deleteOne({ _id: 'legacy-1' } as unknown as Document);
  await db.collection('users').updateOne({ _id: new Int32(77) } as unknown as Document, { $set: { firstname: 'Renamed Int' } });

  const tables = m.tables;
  const untouched = await contents(url, tables);
  const marks = await watermarks(url);
  const dry = parseRepair(await repair(m, ['--json', '--dry-run']));
  assert.equal(dry.dry_run, true);
  assert.equal(dry.after, null, 'a dry run checks nothing after');
  assert.deepEqual(await contents(url, tables), untouched, 'a dry run changes no row');
  assert.equal((await deepDiff(m)).code, 1);

  const text = await repair(m);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^users_logbook /m, 'the deleted logbook document changed its (user, day) row');
  assert.match(text.stdout, /^repair: \d+ differing rows in \d+ table\(s\) → \d+ documents read again \(3 gone\).* check: identical, in /m);
  assert.deepEqual(await watermarks(url), marks, 'a repair moves no watermark');
  const after = await deepDiff(m);
  assert.equal(after.code, 0, `diff --deep is clean after the repair:\n${after.stdout}`);
  assert.equal((await query(url, `SELECT 1 FROM users WHERE id = $1`, [victim])).length, 0, 'the deleted user left');
  assert.equal((await query<{ firstname: string }>(url, `SELECT firstname FROM users WHERE id = $1`, [quiet._id.toHexString()]))[0]?.firstname, 'Renamed Quietly');
  assert.equal((await query(url, `SELECT 1 FROM users WHERE id = 'legacy-1'`)).length, 0, 'the deleted string-_id user left');
  assert.equal((await query<{ firstname: string }>(url, `SELECT firstname FROM users WHERE id = '77'`))[0]?.firstname, 'Renamed Int');
  await assertMirrors(m.model, url, await m.reference());
});

test('etl repair --tables repairs only those tables; an unknown table is a usage error', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const url = m.incrementalUrl;
  await query(url, `UPDATE users SET lastname = 'Corrupted' WHERE id = (SELECT min(id) FROM users)`);
  await query(url, `UPDATE companies SET name = 'Corrupted' WHERE id = (SELECT min(id) FROM companies)`);

  const unknown = await repair(m, ['--tables', 'users,nope']);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /unknown table "nope"/);

  const report = parseRepair(await repair(m, ['--json', '--tables', 'users']));
  assert.deepEqual(report.repair.map((r) => [r.table, r.different, r.documents]), [['users', 1, 1]]);
  assert.equal((await against(m, 'diff', ['--deep', '--tables', 'users'])).code, 0);
  const all = await deepDiff(m);
  assert.equal(all.code, 1, 'companies was left as it was');
  assert.match(all.stdout, /^companies .* DIFF$/m);
});

test('etl repair brings back the links of another collection that point at a row deleted by hand (a user\'s content reads, compared before users)', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const url = m.incrementalUrl;
  // users_contents_reads rows belong to contents documents (their parent) and point at the user by
  // their item: diff compares them with the contents collection, before the users table, yet the
  // repair that brings the user back must land them too (drift-randomized seed 1 found them missing).
  const rows = await query<{ id: string }>(
    url,
    `SELECT u.id FROM users u
      WHERE NOT EXISTS (SELECT 1 FROM coachings c WHERE c.user_id = u.id OR c.diet_id = u.id)
        AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.user_id = u.id)
      ORDER BY u.id LIMIT 1`,
  );
  assert.ok(rows[0], 'the sample has a user with no coaching or appointment');
  const gone = rows[0].id;
  // The user reads two contents (the sample's readers all have coachings), loaded by a run.
  const contents = (await m.db()).collection('contents');
  const read = await contents.find({}, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(2).toArray();
  await contents.updateMany({ _id: { $in: read.map((d) => d._id) } }, { $push: { viewed_by: new ObjectId(gone) } as Document, $set: { update_date: new Date() } });
  await m.incremental();
  const reads = await query(url, `DELETE FROM users_contents_reads WHERE user_id = $1 RETURNING content_id`, [gone]);
  assert.ok(reads.length > 0);
  for (const table of ['user_events', 'users_targets', 'users_logbook']) await query(url, `DELETE FROM ${table} WHERE user_id = $1`, [gone]);
  await query(url, `DELETE FROM messages WHERE sender_id = $1 OR receiver_id = $1`, [gone]);
  await query(url, `DELETE FROM users WHERE id = $1`, [gone]);

  const r = await repair(m);
  assert.equal(r.code, 0, `etl repair leaves nothing differing:\n${r.stdout}\n${r.stderr}`);
  assert.equal((await query(url, `SELECT 1 FROM users_contents_reads WHERE user_id = $1`, [gone])).length, reads.length, "the user's content reads are back");
  await assertMirrors(m.model, url, await m.reference());
});

test('etl repair --tables with a table that has nothing to repair repairs the others (its collection is not read, and not asked of transform)', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const url = m.incrementalUrl;
  const id = (await query<{ id: string }>(url, `SELECT id FROM users ORDER BY id LIMIT 1`))[0]!.id;
  await query(url, `UPDATE users SET firstname = 'Corrupted' WHERE id = $1`, [id]);
  // companies is identical: the repair reads only users (drift-randomized seed 3 stopped here:
  // "holds no extract for companies" from transform).
  const r = await repair(m, ['--tables', 'users,companies']);
  assert.equal(r.code, 0, `etl repair --tables users,companies:\n${r.stdout}\n${r.stderr}`);
  assert.notEqual((await query<{ firstname: string }>(url, `SELECT firstname FROM users WHERE id = $1`, [id]))[0]!.firstname, 'Corrupted');
  await assertMirrors(m.model, url, await m.reference());
});

test('etl repair removes the rows an older version of a document now rejected left (an offer whose duration became text, a user whose events became a string), as a full run has none', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const url = m.incrementalUrl;
  const db = await m.db();
  // No run after the edits: PostgreSQL holds the offer and the links of the versions before. diff
  // lists them as rejected (rejected.inPostgres), not extra; a full run of MongoDB has neither
  // (drift-randomized seed 3 found the offer left after the repair, and its coachings' offer_id).
  const offer = (await query<{ id: string }>(url, `SELECT o.id FROM offers o WHERE EXISTS (SELECT 1 FROM coachings c WHERE c.offer_id = o.id) ORDER BY o.id LIMIT 1`))[0]!.id;
  await db.collection('offers').updateOne({ _id: new ObjectId(offer) }, { $set: { duration: '3 mois', update_date: new Date() } });
  const user = (await query<{ user_id: string }>(url, `SELECT user_id FROM user_events ORDER BY user_id LIMIT 1`))[0]!.user_id;
  await db.collection('users').updateOne({ _id: new ObjectId(user) }, { $set: { registered_events: 'a,b', update_date: new Date() } });

  const r = await repair(m, ['--json']);
  const report = parseRepair(r);
  assert.equal(report.nothing_to_repair, false, 'the rows of the rejected documents are taken up');
  assert.deepEqual(await query(url, `SELECT id FROM offers WHERE id = $1`, [offer]), [], 'the rejected offer is gone');
  assert.deepEqual(await query(url, `SELECT 1 FROM user_events WHERE user_id = $1`, [user]), [], "the user's links are gone");
  assert.deepEqual(await query(url, `SELECT id FROM coachings WHERE offer_id = $1`, [offer]), [], "its coachings' offer_id is NULL");
  await assertMirrors(m.model, url, await m.reference());
  // Nothing is left to repair: a second repair stages nothing.
  assert.equal(parseRepair(await repair(m, ['--json'])).nothing_to_repair, true);
});

test('a reference NULLed by hand whose referenced row a repair of its own table removed gets its etl_pending entry, and lands when the document is fixed (seed 7)', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const url = m.incrementalUrl;
  const db = await m.db();
  const user = (await query<{ id: string; company_id: string }>(url, `SELECT id, company_id FROM users WHERE company_id IS NOT NULL ORDER BY id LIMIT 1`))[0]!;
  const company = new ObjectId(user.company_id);
  const name = (await db.collection('companies').findOne({ _id: company }))!.name as string;
  await db.collection('companies').updateOne({ _id: company }, { $set: { name: 'x'.repeat(300), update_date: new Date() } });
  // The user's reference NULLed by hand, and set again in MongoDB behind the watermark's back: the
  // repair reads the user in the run that removes the company.
  await query(url, `UPDATE users SET company_id = NULL WHERE id = $1`, [user.id]);
  // companies repaired alone first: the rejected company goes, the users row NULLed by hand stays
  // NULL and is no difference any more (its company is absent), yet a full run keeps it pending.
  assert.equal((await repair(m, ['--tables', 'companies'])).code, 0);
  const repaired = await repair(m);
  assert.equal(repaired.code, 0, repaired.stderr);
  assert.deepEqual(await query(url, `SELECT company_id FROM users WHERE id = $1`, [user.id]), [{ company_id: null }]);
  await db.collection('companies').updateOne({ _id: company }, { $set: { name, update_date: new Date() } });
  await m.incremental();
  assert.deepEqual(await query(url, `SELECT company_id FROM users WHERE id = $1`, [user.id]), [{ company_id: user.company_id }], 'the user gets its company back');
  await assertMirrors(m.model, url, await m.reference());
});

test('etl repair refreshes the etl_pending entries of documents no watermark sees: a refused appointment deleted from MongoDB does not land when its coaching comes back (seed 12)', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  await m.incremental();
  const url = m.incrementalUrl;
  const db = await m.db();
  const row = (await query<{ id: string; coaching_id: string }>(url, `SELECT id, coaching_id FROM appointments WHERE coaching_id IS NOT NULL ORDER BY id LIMIT 1`))[0]!;
  const coaching = new ObjectId(row.coaching_id);
  const status = (await db.collection('coachings').findOne({ _id: coaching }))!.status as string;
  // The coaching rejected: the repair removes it, and its appointments follow into etl_pending.
  await db.collection('coachings').updateOne({ _id: coaching }, { $set: { status: null, update_date: new Date() } });
  assert.equal((await repair(m)).code, 0);
  assert.deepEqual(await query(url, `SELECT id FROM appointments WHERE id = $1`, [row.id]), []);
  // The appointment deleted from MongoDB (no run propagates it), then the coaching fixed.
  await db.collection('appointments').deleteOne({ _id: new ObjectId(row.id) });
  await db.collection('coachings').updateOne({ _id: coaching }, { $set: { status, update_date: new Date() } });
  const r = await repair(m);
  assert.equal(r.code, 0, `the repair that brings the coaching back leaves nothing differing:\n${r.stdout}\n${r.stderr}`);
  assert.deepEqual(await query(url, `SELECT id FROM appointments WHERE id = $1`, [row.id]), [], 'the deleted appointment does not land');
  await assertMirrors(m.model, url, await m.reference());
});

test('etl repair reads again the other contributors of the dedupe key a document read again leaves: a contributor deleted from MongoDB does not bring back a menu_recipes row deleted by hand (seed 7)', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const recipes = db.collection('menurecipes');
  // Y: made the one document of its (menu, recipe) pair.
  const y = (await recipes.find({}).sort({ _id: 1 }).limit(1).toArray())[0]!;
  await recipes.deleteMany({ menu: y.menu, recipe: y.recipe, _id: { $ne: y._id } });
  // X: a second document of Y's (menu, recipe) pair, loaded with it.
  const x = { ...y, _id: new ObjectId() };
  await recipes.insertOne(x);
  await m.incremental();
  const url = m.incrementalUrl;
  const key = [(y.menu as ObjectId).toHexString(), (y.recipe as ObjectId).toHexString()];
  assert.equal((await query(url, `SELECT 1 FROM menu_recipes WHERE menu_id = $1 AND recipe_id = $2`, key)).length, 1);
  // The pair's row deleted by hand, X deleted from MongoDB (no run propagates it), Y moved to another recipe.
  await query(url, `DELETE FROM menu_recipes WHERE menu_id = $1 AND recipe_id = $2`, key);
  await recipes.deleteOne({ _id: x._id });
  // Another recipe (a small sample may hold one): a copy of Y's, which the repair loads too.
  const recipe = (await db.collection('recipes').findOne({ _id: y.recipe }))!;
  const other = new ObjectId();
  await db.collection('recipes').insertOne({ ...recipe, _id: other, update_date: new Date() });
  await recipes.updateOne({ _id: y._id }, { $set: { recipe: other, update_date: new Date() } });
  const r = await repair(m);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(await query(url, `SELECT 1 FROM menu_recipes WHERE menu_id = $1 AND recipe_id = $2`, key), [], 'no document gives the pair any more');
  await assertMirrors(m.model, url, await m.reference());
});
