// runDiff on real FerretDB + PostgreSQL with planted differences (test/inspect/planted.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runDiff, type DiffReport, type TableDiff } from '../../inspect/diff.ts';
import { ID, model, repair, seedMongo, seedPostgres } from './planted.ts';
import type { PipelineModel } from '../../model/types.ts';

const servers = useServers();

async function planted(name: string): Promise<{ m: PipelineModel; pgUrl: string; mongo: { url: string; name: string } }> {
  const m = await model();
  const pgUrl = await servers.postgres.createDatabase(name);
  const mongo = await servers.mongo.newDatabase(name);
  await seedMongo(mongo.url, mongo.name);
  await seedPostgres(pgUrl, m);
  return { m, pgUrl, mongo };
}

function diffOf(m: PipelineModel, pgUrl: string, mongo: { url: string; name: string }, extra: { deep?: boolean; tables?: string[] } = {}): Promise<DiffReport> {
  return runDiff({
    model: m,
    mongo: { url: mongo.url, database: mongo.name },
    postgres: { connectionString: pgUrl, host: '', port: 0, database: '', user: '', password: null },
    ...extra,
  });
}

const table = (r: DiffReport, name: string): TableDiff => {
  const t = r.tables.find((x) => x.table === name);
  assert.ok(t, `table ${name} in the report`);
  return t;
};
const keys = (sample: readonly { key: Record<string, string | null> }[]) => sample.map((s) => s.key);

test('diff finds every planted difference, key by key', async (t) => {
  const { m, pgUrl, mongo } = await planted(t.name);
  const r = await diffOf(m, pgUrl, mongo);
  assert.equal(r.identical, false);
  assert.equal(r.deep, false);
  assert.equal(r.tables.length, m.loadOrder.length);

  const users = table(r, 'users');
  assert.deepEqual(users.key, ['id']);
  assert.equal(users.mongo.documents, 3);
  assert.equal(users.mongo.rows, 2, 'U1 and U2; ULONG is rejected');
  assert.equal(users.postgres.rows, 3);
  assert.equal(users.missing.count, 1);
  assert.deepEqual(keys(users.missing.sample), [{ id: ID.U2 }]);
  assert.equal(users.missing.sample[0]!.sourceId, ID.U2);
  assert.equal(users.extra.count, 1, 'ULONG is in PostgreSQL but its document exists: not extra');
  assert.deepEqual(keys(users.extra.sample), [{ id: ID.U3 }]);
  assert.equal(users.different, null, 'no --deep, no column comparison');
  assert.equal(users.rejected.count, 1);
  assert.deepEqual(users.rejected.byReason, { too_long: 1 });
  assert.deepEqual(users.rejected.sample, [{ sourceId: ID.ULONG, column: 'firstname', reason: 'too_long' }]);
  assert.equal(users.rejected.inPostgres, 1);

  const menus = table(r, 'menus');
  assert.equal(menus.mongo.documents, 2, 'the server-side filter __t: menu leaves the webinar out');
  assert.equal(menus.mongo.rows, 2);
  assert.equal(menus.postgres.rows, 1);
  assert.deepEqual(keys(menus.missing.sample), [{ id: ID.M2 }]);
  assert.equal(menus.extra.count, 0);

  const events = table(r, 'events');
  assert.equal(events.identical, true);
  assert.equal(events.mongo.rows, 3);

  const ue = table(r, 'user_events');
  assert.deepEqual(ue.key, ['user_id', 'event_id']);
  assert.equal(ue.mongo.rows, 2, 'a subdocument item and a plain-id item');
  assert.deepEqual(keys(ue.missing.sample), [{ user_id: ID.U1, event_id: ID.M1 }]);
  assert.deepEqual(keys(ue.extra.sample), [{ user_id: ID.U1, event_id: ID.M2 }]);

  const ut = table(r, 'users_targets');
  assert.deepEqual(ut.key, ['user_id', 'target_id', 'type']);
  assert.deepEqual(keys(ut.missing.sample), [{ user_id: ID.U1, target_id: ID.T2, type: 'health' }]);
  assert.deepEqual(keys(ut.extra.sample), [{ user_id: ID.U1, target_id: ID.T2, type: 'basic' }]);

  const lb = table(r, 'users_logbook');
  assert.deepEqual(lb.key, ['user_id', 'day']);
  assert.equal(lb.mongo.documents, 4);
  assert.equal(lb.mongo.rows, 2);
  assert.deepEqual(lb.mongo.skipped, { missing_user: 1, superseded: 1 });
  assert.deepEqual(keys(lb.missing.sample), [{ user_id: ID.U1, day: '2024-07-15' }], 'the Europe/Paris day of 2024-07-14T22:00Z');
  assert.equal(lb.extra.count, 0);

  const differing = r.tables.filter((x) => !x.identical).map((x) => x.table).sort();
  assert.deepEqual(differing, ['menus', 'user_events', 'users', 'users_logbook', 'users_targets']);
  assert.deepEqual(
    { missing: r.totals.missing, extra: r.totals.extra, rejected: r.totals.rejected },
    { missing: 5, extra: 3, rejected: 1 },
  );
});

test('--deep lists the changed column, and only where a load would write something else', async (t) => {
  const { m, pgUrl, mongo } = await planted(t.name);
  const r = await diffOf(m, pgUrl, mongo, { deep: true, tables: ['users', 'user_events', 'users_logbook', 'events'] });
  assert.deepEqual(r.tables.map((x) => x.table), ['events', 'users', 'user_events', 'users_logbook'], 'load order, only those asked');
  const users = table(r, 'users');
  assert.equal(users.different?.count, 1);
  assert.deepEqual(users.different?.byColumn, { firstname: 1 });
  assert.deepEqual(users.different?.sample, [{ key: { id: ID.U1 }, sourceId: ID.U1, columns: ['firstname'] }]);
  // Timestamps, the item's own date, the DATE in Europe/Paris and the latest logbook document all match.
  assert.equal(table(r, 'user_events').different?.count, 0);
  assert.equal(table(r, 'users_logbook').different?.count, 0);
  assert.equal(table(r, 'events').different?.count, 0);
});

test('identical databases: no difference, deep included', async (t) => {
  const { m, pgUrl, mongo } = await planted(t.name);
  await repair(pgUrl);
  const r = await diffOf(m, pgUrl, mongo, { deep: true });
  const differing = r.tables.filter((x) => !x.identical).map((x) => ({ table: x.table, missing: keys(x.missing.sample), extra: keys(x.extra.sample), different: x.different?.sample }));
  assert.deepEqual(differing, []);
  assert.equal(r.identical, true);
  assert.equal(r.totals.rejected, 1, 'the rejected document is still reported');
});

test('a table absent from PostgreSQL cannot be compared and differs', async (t) => {
  const { m, pgUrl, mongo } = await planted(t.name);
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  await client.query('DROP TABLE menu_recipes; DROP TABLE menus');
  await client.end();
  const r = await diffOf(m, pgUrl, mongo, { tables: ['menus'] });
  const menus = table(r, 'menus');
  assert.equal(menus.identical, false);
  assert.equal(menus.problem?.code, 'table_missing');
  assert.equal(menus.postgres.rows, null);
  assert.equal(menus.missing.count, 2);
});

test('an unknown table is a usage error', async (t) => {
  const { m, pgUrl, mongo } = await planted(t.name);
  await assert.rejects(diffOf(m, pgUrl, mongo, { tables: ['users', 'nope'] }), (e: Error & { exitCode?: number; code?: string }) => e.exitCode === 2 && e.code === 'unknown_table');
});

test('references: a set_null reference to a missing row compares as NULL; a reject one is refused, not missing', async (t) => {
  const m = await model();
  const pgUrl = await servers.postgres.createDatabase(t.name);
  const mongo = await servers.mongo.newDatabase(t.name);
  const { MongoClient, ObjectId } = await import('mongodb');
  const pg = (await import('pg')).default;
  const gone = '64a0000000000000000000ff';
  const mc = new MongoClient(mongo.url);
  await mc.connect();
  const when = new Date('2024-01-01T10:00:00Z');
  await mc.db(mongo.name).collection('users').insertOne({
    _id: new ObjectId(ID.U1),
    creation_date: when,
    update_date: when,
    firstname: 'Ann',
    lastname: 'Lee',
    email: 'ann@example.fr',
    role: 'CUSTOMER',
    company: new ObjectId(gone), // deleted company: the load sets NULL (on_missing: set_null)
    registered_events: [new ObjectId(gone)], // deleted event: the load rejects the link
  });
  await mc.close();
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  const { applySchema } = await import('../../schema/apply.ts');
  await applySchema(client, m);
  await client.query(`INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, company_id, role) VALUES ($1, $2, $2, 'Ann', 'Lee', 'ann@example.fr', NULL, 'CUSTOMER')`, [ID.U1, '2024-01-01 10:00:00']);
  await client.end();

  const r = await diffOf(m, pgUrl, mongo, { deep: true, tables: ['users', 'user_events'] });
  assert.equal(table(r, 'users').identical, true, JSON.stringify(table(r, 'users').different));
  const ue = table(r, 'user_events');
  assert.equal(ue.missing.count, 0, 'a row the load refuses too is not missing');
  assert.equal(ue.refused.count, 1);
  assert.deepEqual(ue.refused.byColumn, { event_id: 1 });
  assert.deepEqual(ue.refused.sample, [{ key: { user_id: ID.U1, event_id: gone }, sourceId: ID.U1, column: 'event_id', reason: 'missing_reference' }]);
  assert.equal(ue.identical, true);
  assert.equal(r.identical, true);
  assert.equal(r.totals.refused, 1);
});

/**
 * Users 77 (an Int32) and "77" (a string), whose _ids are one key, in a new MongoDB database; the
 * events 5 (a menu) and "5" (a webinar) too with `events`; an empty PostgreSQL database with the
 * schema, and `before`, run on it (the rows an earlier load wrote).
 */
async function contestedKeys(name: string, o: { events: boolean; before?: (client: import('pg').Client, when: Date) => Promise<unknown> }) {
  const m = await model();
  const pgUrl = await servers.postgres.createDatabase(name);
  const mongo = await servers.mongo.newDatabase(name);
  const { MongoClient, Int32 } = await import('mongodb');
  const pg = (await import('pg')).default;
  const when = new Date('2024-01-01T10:00:00Z');
  const mc = new MongoClient(mongo.url);
  await mc.connect();
  const user = (email: string) => ({ creation_date: when, update_date: when, firstname: 'Ann', lastname: 'Lee', email, role: 'CUSTOMER' });
  await mc.db(mongo.name).collection('users').insertMany([{ _id: new Int32(77) as never, ...user('a@example.fr') }, { _id: '77' as never, ...user('b@example.fr') }]);
  if (o.events) {
    // A menu and a webinar: the webinar yields no menus row, but names its key in menus' keys file too.
    const event = (t: string) => ({ creation_date: when, update_date: when, __t: t, name: t, start_date: when, end_date: when });
    await mc.db(mongo.name).collection('events').insertMany([{ _id: new Int32(5) as never, ...event('menu') }, { _id: '5' as never, ...event('webinar') }]);
  }
  await mc.close();
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  const { applySchema } = await import('../../schema/apply.ts');
  await applySchema(client, m);
  await o.before?.(client, when);
  await client.end();
  return { m, pgUrl, mongo };
}

test('two documents whose _ids are one key (77 and "77") are refused as a load refuses them, not missing, also when one of them the filter leaves out', async (t) => {
  const { m, pgUrl, mongo } = await contestedKeys(t.name, { events: true });
  const r = await diffOf(m, pgUrl, mongo, { deep: true, tables: ['users', 'events', 'menus'] });
  for (const name of ['users', 'events', 'menus']) {
    const x = table(r, name);
    assert.equal(x.missing.count, 0, `${name}: a row a load refuses is not missing: ${JSON.stringify(x.missing.sample)}`);
    assert.equal(x.identical, true);
  }
  const users = table(r, 'users');
  assert.equal(users.mongo.rows, 0, 'a load writes no row of a contested key');
  assert.deepEqual({ count: users.refused.count, contested: users.refused.contested, byColumn: users.refused.byColumn }, { count: 1, contested: 1, byColumn: {} });
  assert.deepEqual(users.refused.sample.map((s) => [s.key, s.column, s.reason]), [[{ id: '77' }, 'id', 'duplicate_key']]);
  assert.equal(users.mongo.skipped.superseded, undefined, 'refused, not folded into another row');
  assert.equal(table(r, 'menus').refused.contested, 1, 'the webinar "5" contests the menu 5');
  assert.equal(r.identical, true);
});

test('a PostgreSQL row of a key two documents now claim (77 loaded, then "77" created) is extra: a load refuses both and removes it', async (t) => {
  // The row a load of document 77 wrote before "77" existed.
  const before = (client: import('pg').Client, when: Date) =>
    client.query(`INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, role) VALUES ('77', $1, $1, 'Ann', 'Lee', 'a@example.fr', 'CUSTOMER')`, [when]);
  const { m, pgUrl, mongo } = await contestedKeys(t.name, { events: false, before });
  const r = await diffOf(m, pgUrl, mongo, { deep: true, tables: ['users'] });
  const users = table(r, 'users');
  assert.deepEqual({ extra: users.extra.count, contested: users.extra.contested, missing: users.missing.count, refused: users.refused.contested }, { extra: 1, contested: 1, missing: 0, refused: 0 }, 'counted once: extra (as a row holding a shared value is)');
  assert.deepEqual(users.extra.sample.map((e) => e.key), [{ id: '77' }]);
  assert.equal(users.different?.count ?? 0, 0, 'not also different');
  assert.equal(users.identical, false);
  assert.equal(r.identical, false);
});

test('documents before the date threshold are skipped, and their rows are not extra', async (t) => {
  const { pgUrl, mongo } = await planted(t.name);
  const { loadPipeline } = await import('../../model/load-pipeline.ts');
  const { PIPELINE } = await import('./planted.ts');
  const m = await loadPipeline(PIPELINE, { globalDateThreshold: new Date('2024-03-01T00:00:00Z') });
  const r = await diffOf(m, pgUrl, mongo, { tables: ['users', 'users_logbook'] });
  const users = table(r, 'users');
  assert.equal(users.mongo.rows, 0);
  assert.deepEqual(users.mongo.skipped, { before_date_threshold: 3 });
  assert.equal(users.missing.count, 0);
  assert.deepEqual(keys(users.extra.sample), [{ id: ID.U3 }], 'U1 and ULONG have documents; U3 has none');
  // Logbook documents are from March and July: all inside the threshold.
  assert.equal(table(r, 'users_logbook').mongo.rows, 2);
});
