// Delete propagation end to end, through the real CLI, pipeline.yaml, FerretDB and PostgreSQL:
// a full `etl run`, then documents deleted in MongoDB (users with registered events, targets and
// messages; a content read by users) and a menu turned into a webinar (`__t` changed), then an
// incremental `etl run --propagate-deletes`. PostgreSQL must then hold exactly what a full run of the
// final MongoDB into an empty database gives, every table compared row by row, and the report must
// count what went. The same incremental run without the flag deletes nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { MongoClient, type ObjectId } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { etl } from '../harness/cli.ts';

const servers = useServers();
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PIPELINE = path.join(REPO, 'pipeline.yaml');

/** Every table's rows as a count and a hash of the sorted rows; users_logbook without its SERIAL id. */
async function contents(client: pg.Client, tables: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of tables) {
    const cols = (
      await client.query<{ attname: string }>(`SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [
        pg.escapeIdentifier(t),
      ])
    ).rows
      .map((r) => r.attname)
      .filter((c) => !(t === 'users_logbook' && c === 'id'));
    const row = `ROW(${cols.map((c) => `x.${pg.escapeIdentifier(c)}`).join(', ')})::text`;
    const r = await client.query(`SELECT count(*)::int AS n, coalesce(md5(string_agg(${row}, '|' ORDER BY ${row})), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
    out[t] = `${r.rows[0].n} rows ${r.rows[0].h}`;
  }
  return out;
}

async function connect(url: string, t: { after(fn: () => unknown): void }): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  return client;
}

const count = async (client: pg.Client, sql: string, params: unknown[]): Promise<number> => Number((await client.query(sql, params)).rows[0].n);

interface TableDeletions {
  table: string;
  live: number | null;
  gone: number;
  referencing: number;
  nulled: number;
}

test('deleted documents: an incremental run with --propagate-deletes equals a full run of the final state', async (t) => {
  const model = await loadPipeline(PIPELINE);
  const tables = [...model.loadOrder];
  const mongo = await servers.mongo.newDatabase(t.name);
  const withFlag = await servers.postgres.createDatabase(`${t.name} flag`);
  const withoutFlag = await servers.postgres.createDatabase(`${t.name} noflag`);
  const full = await servers.postgres.createDatabase(`${t.name} full`);
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-deletes-e2e-'));
  t.after(() => rm(work, { recursive: true, force: true }));

  const sample = await etl(['sample', '--scale', '1500', '--mongo-url', mongo.url, '--db', mongo.name]);
  assert.equal(sample.code, 0, sample.stderr);
  const run = (staging: string, db: string, extra: string[] = []) =>
    etl(['run', '--json', '--source', mongo.url, '--mongo-db', mongo.name, '--staging', path.join(work, staging), '--pipeline', PIPELINE, '--database-url', db, ...extra]);

  for (const [staging, db] of [
    ['flag', withFlag],
    ['noflag', withoutFlag],
  ] as const) {
    const first = await run(staging, db, ['--propagate-deletes']);
    assert.equal(first.code, 0, first.stderr);
  }
  const pgFlag = await connect(withFlag, t);
  const before = await contents(pgFlag, tables);

  // ── deletions and a discriminator change in MongoDB ──
  const client = new MongoClient(mongo.url);
  await client.connect();
  t.after(() => client.close());
  const db = client.db(mongo.name);
  const users = db.collection('users');
  const linked = await users.find({ 'registered_events.0': { $exists: true }, 'specificity_targets.0': { $exists: true } }, { sort: { _id: 1 }, limit: 2 }).toArray();
  assert.equal(linked.length, 2, 'users with registered events and targets');
  const messages = db.collection('messages');
  // A third user, one that sent messages (references can dangle in the sample: pick one that exists).
  let sender: ObjectId | null = null;
  for (const id of (await messages.distinct('sender')) as ObjectId[]) {
    if (id && !linked.some((u) => u._id.equals(id)) && (await users.countDocuments({ _id: id })) === 1) {
      sender = id;
      break;
    }
  }
  assert.ok(sender, 'a user who sent messages');
  const gone: ObjectId[] = [...linked.map((u) => u._id as ObjectId), sender];
  const goneHex = gone.map((id) => id.toHexString());
  assert.equal((await users.deleteMany({ _id: { $in: gone } })).deletedCount, 3);

  const contentsCol = db.collection('contents');
  const read = await contentsCol.findOne({ 'viewed_by.0': { $exists: true } });
  assert.ok(read, 'a content viewed by someone');
  await contentsCol.deleteOne({ _id: read._id });

  const events = db.collection('events');
  const menu = await events.findOne({ __t: 'menu' });
  assert.ok(menu, 'a menu');
  assert.ok(await db.collection('menurecipes').countDocuments({ menu: menu._id }), 'the menu has recipes');
  await events.updateOne({ _id: menu._id }, { $set: { __t: 'webinar', update_date: new Date() } });

  // What the deletions must remove, counted in PostgreSQL before the incremental run.
  const contentHex = read._id.toHexString();
  const menuHex = menu._id.toHexString();
  const expected = {
    users: { gone: 3, referencing: 0 },
    user_events: { gone: await count(pgFlag, 'SELECT count(*) AS n FROM user_events WHERE user_id = ANY($1)', [goneHex]), referencing: 0 },
    users_targets: { gone: await count(pgFlag, 'SELECT count(*) AS n FROM users_targets WHERE user_id = ANY($1)', [goneHex]), referencing: 0 },
    messages: { gone: 0, referencing: await count(pgFlag, 'SELECT count(*) AS n FROM messages WHERE sender_id = ANY($1) OR receiver_id = ANY($1)', [goneHex]) },
    contents: { gone: 1, referencing: 0 },
    users_contents_reads: {
      gone: await count(pgFlag, 'SELECT count(*) AS n FROM users_contents_reads WHERE content_id = $1', [contentHex]),
      referencing: await count(pgFlag, 'SELECT count(*) AS n FROM users_contents_reads WHERE content_id <> $1 AND user_id = ANY($2)', [contentHex, goneHex]),
    },
    // The former menu is no longer a live menu (and, flag or not, no longer yields a menus row).
    menus: { gone: 1, referencing: 0 },
    menu_recipes: { gone: 0, referencing: await count(pgFlag, 'SELECT count(*) AS n FROM menu_recipes WHERE menu_id = $1', [menuHex]) },
    events: { gone: 0, referencing: 0 },
  };
  assert.ok(expected.user_events.gone >= 2 && expected.users_targets.gone >= 2, 'the deleted users had links');
  assert.ok(expected.messages.referencing >= 1, 'messages reference the deleted users');
  assert.ok(expected.users_contents_reads.gone >= 1, 'the deleted content had readers');
  assert.ok(expected.menu_recipes.referencing >= 1, 'the former menu had recipes');

  // ── without the flag: nothing is deleted ──
  const plain = await run('noflag', withoutFlag);
  assert.equal(plain.code, 0, plain.stderr);
  const plainReport = JSON.parse(plain.stdout);
  const pgPlain = await connect(withoutFlag, t);
  assert.equal(await count(pgPlain, 'SELECT count(*) AS n FROM users WHERE id = ANY($1)', [goneHex]), 3, 'deleted users stay without the flag');
  assert.equal(await count(pgPlain, 'SELECT count(*) AS n FROM contents WHERE id = $1', [contentHex]), 1);
  assert.equal(await count(pgPlain, 'SELECT count(*) AS n FROM menus WHERE id = $1', [menuHex]), 0, 'a document that left the filter leaves the table, flag or not');
  assert.equal(plainReport.load.deletions ?? null, null);
  assert.equal((await readdir(path.join(work, 'noflag', plainReport.extract.runId, 'extract'))).some((f) => f.endsWith('.ids.ndjson')), false);

  // ── with the flag: the final state of a full run ──
  const second = await run('flag', withFlag, ['--propagate-deletes']);
  assert.equal(second.code, 0, second.stderr);
  const report = JSON.parse(second.stdout);
  assert.ok(
    report.extract.collections.some((c: { watermark: { from: string | null } }) => c.watermark.from !== null),
    'the second run was incremental',
  );
  assert.ok((await readdir(path.join(work, 'flag', report.extract.runId, 'extract'))).includes('users.ids.ndjson'));
  const deletions = new Map<string, TableDeletions>(report.load.deletions.tables.map((x: TableDeletions) => [x.table, x]));
  for (const [table, want] of Object.entries(expected)) {
    const got = deletions.get(table) ?? { gone: 0, referencing: 0 };
    assert.deepEqual({ gone: got.gone, referencing: got.referencing }, want, table);
  }
  const loaded = new Map<string, { deleted: number }>(report.load.tables.map((x: { table: string; deleted: number }) => [x.table, x]));
  assert.ok(loaded.get('users')!.deleted >= 3, 'the load report counts the deleted users');
  assert.ok(loaded.get('menus')!.deleted >= 1);

  const reference = await run('full', full, ['--full']);
  assert.equal(reference.code, 0, reference.stderr);
  const final = await contents(await connect(full, t), tables);
  assert.deepEqual(await contents(pgFlag, tables), final);
  for (const changed of ['users', 'user_events', 'users_targets', 'messages', 'contents', 'users_contents_reads', 'menus', 'menu_recipes', 'events']) {
    assert.notEqual(before[changed], final[changed], `${changed} changed`);
  }
  // The run without the flag does not reach the final state.
  assert.notDeepEqual(await contents(pgPlain, tables), final);
});
