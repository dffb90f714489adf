// Issue 12, the situations where an incremental run left PostgreSQL wrong without a word: each one
// is a realistic edit made in the app between two runs, through the real CLI, FerretDB and
// PostgreSQL. After the incremental run the rows the edit concerns must be what a full run of the
// final MongoDB gives (checked in the reference database first, so the expectation is a full run's,
// then in the incremental one), and then every table must equal the reference.
//
// The documents an edit touches are the test's own (inserted before the first run, dated a few weeks
// ago, on a user of their own), over a small generated sample for the background.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ObjectId, type Db, type Document } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { etl } from '../harness/cli.ts';
import { parisDayNumber, parisMidnight, formatDayNumber } from '../../sample/paris-day.ts';
import { assertMirrors, deepDiff, inspectIncremental, iso, Mirror, PIPELINE, query, shipped, type RunReport } from './harness.ts';

const servers = useServers();
const SCALE = 300;
const DAY_MS = 86_400_000;
const NOW = Date.now();

/** An instant `days` days (and `hours` hours) before the test started. */
const ago = (days: number, hours = 0): Date => new Date(NOW - days * DAY_MS + hours * 3_600_000);

/** A calendar day `days` before today in Paris: the app's stored form and the DATE column's text. */
function parisDay(days: number): { readonly date: Date; readonly text: string } {
  const n = parisDayNumber(NOW) - days;
  return { date: parisMidnight(n), text: formatDayNumber(n) };
}

const hex = (id: ObjectId): string => id.toHexString();
const stamp = (created: Date, updated: Date) => ({ created_at: created.toISOString(), updated_at: updated.toISOString() });

let emails = 0;
async function insertUser(db: Db, extra: Document = {}): Promise<ObjectId> {
  const _id = (extra._id as ObjectId | undefined) ?? new ObjectId();
  emails += 1;
  const created = ago(60);
  await db.collection('users').insertOne({
    _id,
    firstname: 'Jeanne',
    lastname: 'Martin',
    email: `jeanne.martin.${emails}.${hex(_id)}@example.org`,
    role: 'CUSTOMER',
    registered_events: [],
    objective_targets: [],
    specificity_targets: [],
    health_targets: [],
    creation_date: created,
    update_date: created,
    ...extra,
  });
  return _id;
}

/** A coachinglogbooks document of `user` on a Paris day, with its own dates. */
async function insertLogbook(db: Db, user: ObjectId, day: { date: Date }, created: Date, updated: Date, _id = new ObjectId()): Promise<ObjectId> {
  await db.collection('coachinglogbooks').insertOne({ _id, day: day.date, user, creation_date: created, update_date: updated });
  return _id;
}

/** The users_logbook row of (user, day), timestamps as ISO text; undefined when there is none. */
async function logbookRow(url: string, user: ObjectId, day: { text: string }) {
  const rows = await query<{ created_at: string; updated_at: string }>(
    url,
    `SELECT ${iso('created_at')} AS created_at, ${iso('updated_at')} AS updated_at FROM users_logbook WHERE user_id = $1 AND day = $2::date`,
    [hex(user), day.text],
  );
  assert.ok(rows.length <= 1, 'one row per (user, day)');
  return rows[0];
}

async function menuRecipeRows(url: string, menu: ObjectId) {
  return query<{ recipe_id: string; created_at: string; updated_at: string }>(
    url,
    `SELECT recipe_id, ${iso('created_at')} AS created_at, ${iso('updated_at')} AS updated_at FROM menu_recipes WHERE menu_id = $1 ORDER BY recipe_id`,
    [hex(menu)],
  );
}

const exists = async (url: string, table: string, where: string, params: unknown[]): Promise<boolean> =>
  (await query(url, `SELECT 1 FROM ${table} WHERE ${where}`, params)).length > 0;

/** Runs `check` on the reference database, then on the incremental one, naming which failed. */
async function inBoth(m: Mirror, reference: string, check: (url: string, which: string) => Promise<void>): Promise<void> {
  await check(reference, 'full run (reference)');
  await check(m.incrementalUrl, 'incremental run');
}

async function insertRecipe(db: Db, name: string): Promise<ObjectId> {
  const _id = new ObjectId();
  await db.collection('recipes').insertOne({ _id, name, duration: 20, ingredients: [], creation_date: ago(50), update_date: ago(50) });
  return _id;
}

async function insertMenu(db: Db): Promise<ObjectId> {
  const _id = new ObjectId();
  const start = parisDay(40).date;
  await db.collection('events').insertOne({
    _id,
    name: 'Menu de la semaine 42',
    start_date: start,
    end_date: new Date(start.getTime() + 7 * DAY_MS),
    description: 'Une semaine de saison',
    __t: 'menu',
    creation_date: ago(45),
    update_date: ago(45),
  });
  return _id;
}

async function insertMenuRecipe(db: Db, menu: ObjectId, recipe: ObjectId, slot: number, created: Date, updated: Date): Promise<ObjectId> {
  const _id = new ObjectId();
  await db.collection('menurecipes').insertOne({ _id, menu, recipe, day: String(slot % 7), period: String(Math.floor(slot / 7)), creation_date: created, update_date: updated });
  return _id;
}

test('a logbook document whose day is corrected: the old (user, day) row goes, the new one appears', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const user = await insertUser(db);
  const wrong = parisDay(30);
  const right = parisDay(29);
  const created = ago(30, 1);
  const doc = await insertLogbook(db, user, wrong, created, ago(30, 2));
  await m.incremental();
  assert.deepEqual(await logbookRow(m.incrementalUrl, user, wrong), stamp(created, ago(30, 2)), 'the first run loaded the logbook day');

  const now = new Date();
  await db.collection('coachinglogbooks').updateOne({ _id: doc }, { $set: { day: right.date, update_date: now } });
  await m.incremental();

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.equal(await logbookRow(url, user, wrong), undefined, `${which}: the (user, ${wrong.text}) row is gone once its only document moved to ${right.text}`);
    assert.deepEqual(await logbookRow(url, user, right), stamp(created, now), `${which}: the (user, ${right.text}) row carries the corrected document's timestamps`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('the latest logbook document of a (user, day) moves away or loses its user: the row takes the remaining latest timestamps, or goes', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const user = await insertUser(db);
  const logbooks = db.collection('coachinglogbooks');

  // (user, d1): A then B, B the latest; B's day is corrected to d1next.
  const d1 = parisDay(20);
  const d1next = parisDay(19);
  const a = { created: ago(20, 1), updated: ago(20, 2) };
  const b = { created: ago(20, 3), updated: ago(20, 4) };
  await insertLogbook(db, user, d1, a.created, a.updated);
  const bId = await insertLogbook(db, user, d1, b.created, b.updated);
  // (user, d2): C then E, E the latest; E loses its user.
  const d2 = parisDay(18);
  const c = { created: ago(18, 1), updated: ago(18, 2) };
  const e = { created: ago(18, 3), updated: ago(18, 4) };
  await insertLogbook(db, user, d2, c.created, c.updated);
  const eId = await insertLogbook(db, user, d2, e.created, e.updated);
  // (user, d3): F alone; F loses its user.
  const d3 = parisDay(17);
  const fId = await insertLogbook(db, user, d3, ago(17, 1), ago(17, 2));

  await m.incremental();
  assert.deepEqual(await logbookRow(m.incrementalUrl, user, d1), stamp(b.created, b.updated), 'before: B is the latest of d1');
  assert.deepEqual(await logbookRow(m.incrementalUrl, user, d2), stamp(e.created, e.updated), 'before: E is the latest of d2');

  const moved = new Date();
  await logbooks.updateOne({ _id: bId }, { $set: { day: d1next.date, update_date: moved } });
  const orphaned = new Date();
  await logbooks.updateOne({ _id: eId }, { $unset: { user: '' }, $set: { update_date: orphaned } });
  await logbooks.updateOne({ _id: fId }, { $unset: { user: '' }, $set: { update_date: orphaned } });
  await m.incremental();

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.deepEqual(await logbookRow(url, user, d1), stamp(a.created, a.updated), `${which}: (user, ${d1.text}) takes A's timestamps once B moved away`);
    assert.deepEqual(await logbookRow(url, user, d1next), stamp(b.created, moved), `${which}: (user, ${d1next.text}) is B's`);
    assert.deepEqual(await logbookRow(url, user, d2), stamp(c.created, c.updated), `${which}: (user, ${d2.text}) takes C's timestamps once E lost its user`);
    assert.equal(await logbookRow(url, user, d3), undefined, `${which}: (user, ${d3.text}) is gone once its only document lost its user`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('a menurecipes document whose recipe changes: the old (menu, recipe) pair goes', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const menu = await insertMenu(db);
  const [r1, r2, r3, r4] = [await insertRecipe(db, 'Velouté de potiron'), await insertRecipe(db, 'Gratin dauphinois'), await insertRecipe(db, 'Taboulé'), await insertRecipe(db, 'Soupe au pistou')];
  // (menu, r1) has one document; (menu, r3) two, the second the latest.
  const only = await insertMenuRecipe(db, menu, r1, 0, ago(40, 1), ago(40, 2));
  const older = { created: ago(40, 3), updated: ago(40, 4) };
  await insertMenuRecipe(db, menu, r3, 1, older.created, older.updated);
  const latest = await insertMenuRecipe(db, menu, r3, 2, ago(40, 5), ago(40, 6));
  await m.incremental();
  assert.deepEqual((await menuRecipeRows(m.incrementalUrl, menu)).map((r) => r.recipe_id), [hex(r1), hex(r3)].sort(), 'the first run loaded both pairs');

  const first = new Date();
  await db.collection('menurecipes').updateOne({ _id: only }, { $set: { recipe: r2, update_date: first } });
  const second = new Date(first.getTime() + 1);
  await db.collection('menurecipes').updateOne({ _id: latest }, { $set: { recipe: r4, update_date: second } });
  await m.incremental();

  const reference = await m.reference();
  const expected = [
    { recipe_id: hex(r2), ...stamp(ago(40, 1), first) },
    { recipe_id: hex(r3), ...stamp(older.created, older.updated) },
    { recipe_id: hex(r4), ...stamp(ago(40, 5), second) },
  ].sort((x, y) => x.recipe_id.localeCompare(y.recipe_id));
  await inBoth(m, reference, async (url, which) => {
    assert.deepEqual(await menuRecipeRows(url, menu), expected, `${which}: (menu, r1) gone, (menu, r3) back to its remaining document, r2 and r4 new`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test("an event whose __t changes from menu to webinar leaves menus, and its menu_recipes go as a full run's rejects (then come back with it)", async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const menu = await insertMenu(db);
  const [r1, r2] = [await insertRecipe(db, 'Ratatouille'), await insertRecipe(db, 'Clafoutis')];
  await insertMenuRecipe(db, menu, r1, 0, ago(44, 1), ago(44, 2));
  await insertMenuRecipe(db, menu, r2, 1, ago(44, 3), ago(44, 4));
  await m.incremental();
  assert.ok(await exists(m.incrementalUrl, 'menus', 'id = $1', [hex(menu)]), 'the first run loaded the menu');
  assert.equal((await menuRecipeRows(m.incrementalUrl, menu)).length, 2, 'and its recipes');

  const events = db.collection('events');
  await events.updateOne({ _id: menu }, { $set: { __t: 'webinar', url: 'https://meet.example.org/abc', update_date: new Date() } });
  await m.incremental();
  const asWebinar = await m.reference();
  await inBoth(m, asWebinar, async (url, which) => {
    assert.equal(await exists(url, 'menus', 'id = $1', [hex(menu)]), false, `${which}: the event is no longer a menu`);
    assert.ok(await exists(url, 'events', "id = $1 AND type = 'webinar'", [hex(menu)]), `${which}: events holds it as a webinar`);
    assert.deepEqual(await menuRecipeRows(url, menu), [], `${which}: its menu_recipes are refused for the missing menu`);
  });
  await assertMirrors(m.model, m.incrementalUrl, asWebinar, { context: 'after menu → webinar' });

  // The discriminator is set back: the menu returns, and its untouched recipes with it.
  await events.updateOne({ _id: menu }, { $set: { __t: 'menu', update_date: new Date() }, $unset: { url: '' } });
  await m.incremental();
  const asMenu = await m.reference();
  await inBoth(m, asMenu, async (url, which) => {
    assert.ok(await exists(url, 'menus', 'id = $1', [hex(menu)]), `${which}: the menu is back`);
    assert.deepEqual((await menuRecipeRows(url, menu)).map((r) => r.recipe_id), [hex(r1), hex(r2)].sort(), `${which}: its recipes are back`);
  });
  await assertMirrors(m.model, m.incrementalUrl, asMenu, { context: 'after webinar → menu' });
});

test('an appointment refused because its coaching was rejected arrives once only the coaching is fixed', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const user = await insertUser(db);
  const coaching = new ObjectId();
  // A bug cleared the status: status is NOT NULL, so transform rejects the coaching.
  await db.collection('coachings').insertOne({ _id: coaching, user, status: null, reasons: [], creation_date: ago(35), update_date: ago(35) });
  const appointment = new ObjectId();
  const start = ago(34, 9);
  await db.collection('appointments').insertOne({
    _id: appointment,
    user,
    coaching,
    start_date: start,
    end_date: new Date(start.getTime() + 45 * 60_000),
    order: -1,
    creation_date: ago(35, 1),
    update_date: ago(35, 1),
  });
  const first = await m.incremental();
  assert.equal(await exists(m.incrementalUrl, 'coachings', 'id = $1', [hex(coaching)]), false, 'before: the coaching is rejected (status null)');
  assert.equal(await exists(m.incrementalUrl, 'appointments', 'id = $1', [hex(appointment)]), false, 'before: the appointment is refused');
  assert.match(await m.stagedFile(first, 'load/appointments.rejects.ndjson'), new RegExp(`"column":"coaching_id","value":"${hex(coaching)}"`), 'for its missing coaching');

  await db.collection('coachings').updateOne({ _id: coaching }, { $set: { status: 'COACHING_STATUS_STARTED', update_date: new Date() } });
  await m.incremental();

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.ok(await exists(url, 'coachings', 'id = $1', [hex(coaching)]), `${which}: the fixed coaching is loaded`);
    assert.ok(await exists(url, 'appointments', 'id = $1 AND coaching_id = $2', [hex(appointment), hex(coaching)]), `${which}: the untouched appointment arrives with it`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('a user whose company was rejected gets its company_id (set_null) once only the company is fixed', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const company = new ObjectId();
  // An import wrote the description into the name: longer than VARCHAR(255), so rejected (too_long).
  await db.collection('companies').insertOne({ _id: company, name: 'Mutuelle '.repeat(40), creation_date: ago(70), update_date: ago(70) });
  const user = await insertUser(db, { company });
  await m.incremental();
  assert.equal(await exists(m.incrementalUrl, 'companies', 'id = $1', [hex(company)]), false, 'before: the company is rejected');
  assert.ok(await exists(m.incrementalUrl, 'users', 'id = $1 AND company_id IS NULL', [hex(user)]), 'before: the user is loaded with company_id NULL');

  await db.collection('companies').updateOne({ _id: company }, { $set: { name: 'Mutuelle Générale', update_date: new Date() } });
  await m.incremental();

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.ok(await exists(url, 'companies', 'id = $1', [hex(company)]), `${which}: the fixed company is loaded`);
    assert.ok(await exists(url, 'users', 'id = $1 AND company_id = $2', [hex(user), hex(company)]), `${which}: the untouched user gets its company_id`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('a logbook entry synced late (new _id, dates older than the watermark) is read by the incremental run', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const user = await insertUser(db);
  const shared = parisDay(12);
  await insertLogbook(db, user, shared, ago(12, 1), ago(12, 2));
  await m.incremental();

  // Written offline on the phone days ago, synced now: dates well before the watermark, a new _id.
  const fresh = parisDay(9);
  const entry = { created: ago(9, 1), updated: ago(9, 2) };
  await insertLogbook(db, user, fresh, entry.created, entry.updated);
  const later = { created: ago(12, 5), updated: ago(8) };
  await insertLogbook(db, user, shared, later.created, later.updated);
  await m.incremental();

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.deepEqual(await logbookRow(url, user, fresh), stamp(entry.created, entry.updated), `${which}: the late entry's day (${fresh.text}) is loaded`);
    assert.deepEqual(await logbookRow(url, user, shared), stamp(later.created, later.updated), `${which}: the late entry updated later than the loaded one wins ${shared.text}`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('a document without creation_date and update_date is read by every incremental run', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const user = await insertUser(db);
  const message = new ObjectId();
  const messages = db.collection('messages');
  await messages.insertOne({ _id: message, sender: user, receiver: user, content: 'Bonjour', creation_date: ago(40), update_date: ago(40) });
  await m.incremental();
  assert.ok(await exists(m.incrementalUrl, 'messages', 'id = $1', [hex(message)]), 'before: the message is loaded');

  // An import script rewrote the message without its dates: a full run rejects it (created_at is NOT NULL).
  await messages.updateOne({ _id: message }, { $set: { content: 'Bonjour (importé)' }, $unset: { creation_date: '', update_date: '' } });
  const second = await m.incremental();
  const third = await m.incremental();
  for (const [run, name] of [[second, 'second'], [third, 'third']] as const) {
    assert.match(await m.stagedFile(run, 'transform/messages.rejects.ndjson'), new RegExp(`"_id":"${hex(message)}"`), `the ${name} run read the dateless message (and rejected it)`);
  }

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.equal(await exists(url, 'messages', 'id = $1', [hex(message)]), false, `${which}: the dateless message has no row`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('--propagate-deletes: a deleted logbook document leaves no stale (user, day) row and no row with its timestamps', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const user = await insertUser(db);
  const alone = parisDay(25);
  const aloneId = await insertLogbook(db, user, alone, ago(25, 1), ago(25, 2));
  const pair = parisDay(24);
  const kept = { created: ago(24, 1), updated: ago(24, 2) };
  await insertLogbook(db, user, pair, kept.created, kept.updated);
  const gone = { created: ago(24, 3), updated: ago(24, 4) };
  const goneId = await insertLogbook(db, user, pair, gone.created, gone.updated);
  await m.incremental(['--propagate-deletes']);
  assert.deepEqual(await logbookRow(m.incrementalUrl, user, pair), stamp(gone.created, gone.updated), 'before: the second document is the latest');

  await db.collection('coachinglogbooks').deleteMany({ _id: { $in: [aloneId, goneId] } });
  await m.incremental(['--propagate-deletes']);

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.equal(await logbookRow(url, user, alone), undefined, `${which}: (user, ${alone.text}) is gone with its only document`);
    assert.deepEqual(await logbookRow(url, user, pair), stamp(kept.created, kept.updated), `${which}: (user, ${pair.text}) takes the remaining document's timestamps`);
    const stale = await query(url, `SELECT 1 FROM users_logbook WHERE updated_at = $1::timestamp`, [gone.updated.toISOString().replace('T', ' ').replace('Z', '')]);
    assert.equal(stale.length, 0, `${which}: no row carries the deleted document's timestamps`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

/** An ObjectId minted at `at` (a backup restores documents minted long before the watermark). */
function mintedAt(at: Date): ObjectId {
  const time = Math.floor(at.getTime() / 1000).toString(16).padStart(8, '0');
  return new ObjectId(time + new ObjectId().toHexString().slice(8));
}

/** A user's message, it and its user minted and dated weeks ago: what a backup restores as it was. */
async function insertOldMessage(db: Db): Promise<ObjectId> {
  const user = await insertUser(db, { _id: mintedAt(ago(60)) });
  const message = mintedAt(ago(40));
  await db.collection('messages').insertOne({ _id: message, sender: user, receiver: user, content: 'Bonjour', creation_date: ago(40), update_date: ago(40) });
  return message;
}

/** The restored message is loaded, by a full run and by the incremental ones, and every table is equal. */
async function assertMessageBack(m: Mirror, message: ObjectId): Promise<void> {
  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.ok(await exists(url, 'messages', 'id = $1', [hex(message)]), `${which}: the restored message is loaded`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
}

/** Deletes the documents, returning them as they were: what a backup restores. */
async function deleteKeeping(db: Db, collection: string, ids: readonly ObjectId[]): Promise<Document[]> {
  const kept = await db.collection(collection).find({ _id: { $in: [...ids] } }).toArray();
  assert.equal(kept.length, ids.length, `${collection}: every document to delete exists`);
  await db.collection(collection).deleteMany({ _id: { $in: [...ids] } });
  return kept;
}

test('--propagate-deletes: documents deleted, then restored from a backup with their old _id and dates, come back', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const event = mintedAt(ago(50));
  await db.collection('events').insertOne({ _id: event, name: 'Atelier', __t: 'webinar', start_date: ago(30), end_date: ago(30), creation_date: ago(50), update_date: ago(50) });
  const user = await insertUser(db, { _id: mintedAt(ago(60)), registered_events: [{ _id: mintedAt(ago(30)), event, date: ago(30) }] });
  const day = parisDay(20);
  const logbook = await insertLogbook(db, user, day, ago(20, 1), ago(20, 2), mintedAt(ago(20, 1)));
  await m.incremental(['--propagate-deletes']);
  assert.ok(await exists(m.incrementalUrl, 'user_events', 'user_id = $1', [hex(user)]), 'before: the user has its event link');

  // Deleted by mistake in the app; the next run propagates it.
  const users = await deleteKeeping(db, 'users', [user]);
  const logbooks = await deleteKeeping(db, 'coachinglogbooks', [logbook]);
  await m.incremental(['--propagate-deletes']);
  assert.equal(await exists(m.incrementalUrl, 'users', 'id = $1', [hex(user)]), false, 'deleted: the user left PostgreSQL');
  const goneKeys = async () => (await query<{ entry: string }>(m.incrementalUrl, `SELECT table_name || ' ' || key AS entry FROM etl_gone WHERE key = ANY($1) ORDER BY 1`, [[hex(user), hex(logbook)]])).map((r) => r.entry);
  assert.deepEqual(await goneKeys(), [`user_events ${hex(user)}`, `users ${hex(user)}`, `users_logbook ${hex(logbook)}`], 'deleted: load keeps the gone documents');
  const usersRead = async (run: RunReport) => JSON.parse(await m.stagedFile(run, 'manifest.json')).stages.extract.collections.users as { gone_asked?: number; filter: unknown };
  const still = await usersRead(await m.incremental(['--propagate-deletes']));
  assert.ok(still.gone_asked! >= 1 && !JSON.stringify(still.filter).includes(hex(user)), 'still deleted: asked about, but the query names only the documents the server holds');
  const status = await etl(m.incrementalArgs('status'), { env: m.incrementalEnv });
  assert.match(status.stdout, /documents found gone, asked about whatever their dates: .*\busers 1\b.*\busers_logbook 1\b/s, 'etl status says what the next run asks about');

  // Restored from last night's backup (mongorestore keeps _id and dates, all older than the watermark).
  await db.collection('users').insertMany(users);
  await db.collection('coachinglogbooks').insertMany(logbooks);
  const restored = await m.incremental(['--propagate-deletes']);
  const extracted = JSON.parse(await m.stagedFile(restored, 'manifest.json')).stages.extract.collections;
  assert.ok(extracted.users.gone_asked >= 1 && extracted.coachinglogbooks.gone_asked >= 1, 'restored: the extract asked for the gone documents again');
  assert.ok(JSON.stringify(extracted.users.filter).includes(hex(user)), 'restored: the query names the user found again');
  assert.deepEqual(await goneKeys(), [], 'restored: read again, they are gone no more');

  const reference = await m.reference();
  await inBoth(m, reference, async (url, which) => {
    assert.ok(await exists(url, 'users', 'id = $1', [hex(user)]), `${which}: the restored user is loaded`);
    assert.ok(await exists(url, 'user_events', 'user_id = $1 AND event_id = $2', [hex(user), hex(event)]), `${which}: its event link is back`);
    assert.ok(await logbookRow(url, user, day), `${which}: its logbook day is back`);
  });
  await assertMirrors(m.model, m.incrementalUrl, reference);
});

test('a document a --full run found gone, restored from a backup with its old _id and dates, comes back', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const message = await insertOldMessage(db);
  await m.incremental();

  const messages = await deleteKeeping(db, 'messages', [message]);
  await m.incremental(['--full']);
  assert.equal(await exists(m.incrementalUrl, 'messages', 'id = $1', [hex(message)]), false, 'deleted: the full run removed the message');
  await m.incremental(['--full']);
  const kept = await query(m.incrementalUrl, `SELECT 1 FROM etl_gone WHERE table_name = 'messages' AND key = $1`, [hex(message)]);
  assert.equal(kept.length, 1, 'another full run while it is gone keeps it asked about');

  await db.collection('messages').insertMany(messages);
  await m.incremental();

  await assertMessageBack(m, message);
});

for (const way of [['--propagate-deletes'], ['--full']] as const) {
  test(`a message held back (its user deleted), then deleted, both restored from a backup with their old _id and dates: the message comes back (${way[0]})`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE);
    const db = await m.db();
    const message = await insertOldMessage(db);
    const user = (await db.collection('messages').findOne({ _id: message }))!.sender as ObjectId;
    await m.incremental();

    // The user is deleted: the run takes its message with it and keeps the message pending.
    const users = await deleteKeeping(db, 'users', [user]);
    await m.incremental(['--propagate-deletes']);
    assert.equal(await exists(m.incrementalUrl, 'messages', 'id = $1', [hex(message)]), false, 'the message followed its user');
    // Then the message is deleted too: the run drops its pending entry, and must keep it found gone.
    const messages = await deleteKeeping(db, 'messages', [message]);
    await m.incremental([...way]);

    await db.collection('users').insertMany(users);
    await db.collection('messages').insertMany(messages);
    await m.incremental();
    await assertMessageBack(m, message);
  });
}

test('etl run --since asks for the documents found gone too, as the plain run it stands for would', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const message = await insertOldMessage(db);
  await m.incremental(['--propagate-deletes']);

  const messages = await deleteKeeping(db, 'messages', [message]);
  await m.incremental(['--propagate-deletes']);
  await db.collection('messages').insertMany(messages);
  // From a date after the message's own, before this round's edit: only the gone list can find it.
  await m.incremental(['--since', ago(1).toISOString()]);

  await assertMessageBack(m, message);
});

test('a document deleted with no run propagating it, whose rows etl repair removed, restored from a backup, comes back', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  const message = await insertOldMessage(db);
  await m.incremental();

  // Deleted, and no run propagates it: etl diff --deep sees the extra row, etl repair removes it.
  const messages = await deleteKeeping(db, 'messages', [message]);
  await m.incremental();
  const repair = await etl(['repair', '--mongo-url', m.mongo.url, '--mongo-db', m.mongo.name, '--database-url', m.incrementalUrl, '--staging', m.incrementalStaging], { env: m.env });
  assert.equal(repair.code, 0, repair.stderr);
  assert.equal(await exists(m.incrementalUrl, 'messages', 'id = $1', [hex(message)]), false, 'repaired: the message left PostgreSQL');

  await db.collection('messages').insertMany(messages);
  await m.incremental();

  await assertMessageBack(m, message);
});

test('a document no load held rows of, restored from a backup with its old _id and dates, is behind every watermark: etl diff --deep finds it missing, etl repair loads it', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  // Created and deleted before a run could read it: no load held its rows, so no etl_gone names it.
  const message = await insertOldMessage(db);
  const messages = await deleteKeeping(db, 'messages', [message]);
  await m.incremental(['--propagate-deletes']);
  await db.collection('messages').insertMany(messages);
  await m.incremental(['--propagate-deletes']);
  assert.equal(await exists(m.incrementalUrl, 'messages', 'id = $1', [hex(message)]), false, 'no watermark sees the restored message (README: Documents found gone)');

  const { code, report } = await deepDiff(m, shipped(m));
  assert.equal(code, 1, 'etl diff --deep: a difference');
  assert.deepEqual(
    report.tables.filter((x) => x.missing.count + x.extra.count + (x.different?.count ?? 0) > 0).map((x) => [x.table, x.missing.count, x.extra.count, x.different?.count ?? 0]),
    [['messages', 1, 0, 0]],
  );
  const repair = await inspectIncremental(m, 'repair', shipped(m), []);
  assert.equal(repair.code, 0, repair.stderr);
  await assertMessageBack(m, message);
});

test('a run extracted against one database and loaded into another that never loaded its tables: the next run there reads them in full, and that database ends exact', async (t) => {
  const m = await Mirror.open(t, servers);
  await m.sample(SCALE);
  const db = await m.db();
  await m.incremental();
  // A second database, its tables made by etl schema, never loaded; DATABASE_URL still names the first.
  const other = await servers.postgres.createDatabase(`${t.name} other`);
  const schema = await etl(['schema', '--yes', '--pipeline', PIPELINE, '--database-url', other]);
  assert.equal(schema.code, 0, schema.stderr);
  await insertUser(db, { update_date: new Date() });
  for (const stage of ['extract', 'transform'] as const) {
    const r = await etl(m.incrementalArgs(stage), { env: m.incrementalEnv });
    assert.equal(r.code, 0, r.stderr);
  }
  const load = await etl(['load', '--staging', m.incrementalStaging, '--pipeline', PIPELINE, '--database-url', other], { env: m.incrementalEnv });
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stderr, /never loaded into this database, and this run did not read them in full.*the next run reads them in full/s);

  const next = await etl(['run', '--source', m.mongo.url, '--mongo-db', m.mongo.name, '--staging', m.incrementalStaging, '--pipeline', PIPELINE, '--database-url', other], { env: { DATABASE_URL: other } });
  assert.equal(next.code, 0, next.stderr);
  await assertMirrors(m.model, other, await m.reference());
});
