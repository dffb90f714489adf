// runDiff reads two collections at once (inspect/diff-lanes.ts): when one of the tables in flight
// fails (its cursor, or its PostgreSQL statements), the other stops too, instead of reading its
// collection to the end, and every connection and temporary folder goes. Real FerretDB + PostgreSQL:
// `users` (20,000 documents, one shared scan for users, user_events and users_targets) is read while
// the other table fails.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { runDiff, type DiffProgress } from '../../inspect/diff.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';
import { model, PIPELINE } from './planted.ts';
import { startEtl, STACK_LINE } from '../harness/cli.ts';
import { createTables } from '../harness/schema.ts';
import { holdFind } from '../harness/mongo-hold.ts';

const servers = useServers();
const USERS = 20_000;

async function seedUsers(url: string, database: string): Promise<void> {
  const client = new MongoClient(url);
  await client.connect();
  try {
    const when = new Date('2024-01-01T10:00:00Z');
    const users = client.db(database).collection('users');
    for (let start = 0; start < USERS; start += 2_000) {
      const batch = Array.from({ length: 2_000 }, (_, i) => ({
        _id: new ObjectId(),
        creation_date: when,
        update_date: when,
        firstname: `First ${start + i}`,
        lastname: 'Last',
        email: `user${start + i}@example.fr`,
        role: 'CUSTOMER',
      }));
      await users.insertMany(batch);
    }
    await client.db(database).collection('messages').insertOne({ _id: new ObjectId(), creation_date: when, update_date: when, content: 'hello' });
    await client.db(database).collection('targets').insertOne({ _id: new ObjectId(), creation_date: when, update_date: when, name: 'Sleep' });
  } finally {
    await client.close();
  }
}

interface Scene {
  readonly m: PipelineModel;
  readonly pgUrl: string;
  readonly mongo: { url: string; name: string };
}

async function scene(name: string): Promise<Scene> {
  const m = await model();
  const pgUrl = await servers.postgres.createDatabase(name);
  const mongo = await servers.mongo.newDatabase(name);
  await seedUsers(mongo.url, mongo.name);
  await createTables(pgUrl, m);
  return { m, pgUrl, mongo };
}

/** Runs the diff with a private TMPDIR; returns its failure, the progress it gave and that folder's leftovers. */
async function failingDiff(t: { after: (fn: () => unknown) => void }, s: Scene, m: PipelineModel, pgUrl: string, tables: string[]): Promise<{ error: unknown; events: DiffProgress[]; left: string[] }> {
  const dir = await tempDir('etl-diff-failure-', t);
  const events: DiffProgress[] = [];
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  let error: unknown = null;
  try {
    await runDiff({
      model: m,
      mongo: { url: s.mongo.url, database: s.mongo.name },
      postgres: { connectionString: pgUrl, host: '', port: 0, database: '', user: '', password: null },
      tables,
      deep: true,
      onProgress: (e) => events.push(e),
    });
  } catch (e) {
    error = e;
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
  return { error, events, left: await readdir(dir) };
}

/** Sessions still open on the test's database (other than the one asking), after a short grace for the backends to exit. */
async function sessionsLeft(adminUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (let i = 0; ; i += 1) {
      const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      const n = Number(rows[0]!.n);
      if (n === 0 || i >= 50) return n;
      await sleep(100);
    }
  } finally {
    await client.end();
  }
}

/** A login role that may read every table (then `more` statements), dropped after the test; its URL. */
async function readerRole(t: { after: (fn: () => unknown) => void }, adminUrl: string, role: string, options: string, more: readonly string[] = []): Promise<string> {
  const password = `${role}-pw`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' ${options}`);
    await admin.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    for (const sql of more) await admin.query(sql);
  } finally {
    await admin.end();
  }
  t.after(async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`DROP OWNED BY ${role}`);
    await c.query(`DROP ROLE ${role}`);
    await c.end();
  });
  const url = new URL(adminUrl);
  url.username = role;
  url.password = password;
  return url.toString();
}

/** The users scan stopped early: fewer documents than the collection holds, and no table of it done. */
function assertUsersStopped(events: readonly DiffProgress[]): void {
  const read = events.filter((e) => e.kind === 'documents' && e.table === 'users').map((e) => (e as { documents: number }).documents);
  assert.ok(read.length > 0 || events.some((e) => e.kind === 'table_start' && e.table === 'users'), 'users was started');
  assert.ok(Math.max(0, ...read) < USERS, `the users scan stopped before its end (read ${Math.max(0, ...read)} of ${USERS})`);
  assert.deepEqual(events.filter((e) => e.kind === 'table_done' && e.table.startsWith('user')), []);
}

test('a cursor error in one table stops the collection read beside it; connections and temporary files go', async (t) => {
  const s = await scene(t.name);
  // messages read with a query the server refuses: its cursor fails at the first batch.
  const messages = s.m.tables.get('messages')!;
  const broken: TableModel = { ...messages, filter: { conditions: {}, mongoQuery: { $bogus: 1 } } };
  const m: PipelineModel = { ...s.m, tables: new Map([...s.m.tables, ['messages', broken]]) };
  const { error, events, left } = await failingDiff(t, s, m, s.pgUrl, ['users', 'user_events', 'users_targets', 'messages']);
  const e = error as { code?: string; exitCode?: number; context?: Record<string, unknown> };
  assert.ok(error, 'the diff fails');
  assert.equal(e.code, 'mongo_read_failed', String(error));
  assert.equal(e.exitCode, 1);
  assert.equal(e.context?.collection, 'messages');
  assertUsersStopped(events);
  assert.deepEqual(left, [], 'the shared scan removed its folder');
  assert.equal(await sessionsLeft(s.pgUrl), 0, 'every PostgreSQL connection closed');
});

test('MongoDB going away under a diff: mongo_connection_lost, with what to do; connections and temporary files go', async (t) => {
  const s = await scene(t.name);
  // users' read is held once it starts, then the proxy in front of MongoDB goes away.
  const proxy = await holdFind(s.mongo.url, 'users');
  t.after(() => proxy.close());
  const url = new URL(proxy.url);
  url.searchParams.set('serverSelectionTimeoutMS', '1000');
  const cut = proxy.reached.then(() => proxy.close());
  const { error, left } = await failingDiff(t, { ...s, mongo: { ...s.mongo, url: url.toString() } }, s.m, s.pgUrl, ['users', 'user_events', 'users_targets']);
  await cut;
  const e = error as { code?: string; exitCode?: number; context?: Record<string, unknown>; hint?: string };
  assert.ok(error, 'the diff fails');
  // Before: mongo_read_failed, and no hint.
  assert.equal(e.code, 'mongo_connection_lost', String(error));
  assert.equal(e.exitCode, 1);
  assert.equal(e.context?.collection, 'users');
  assert.equal(e.hint, 'the server went away; run `etl diff` again once it is back');
  assert.deepEqual(left, [], 'the shared scan removed its folder');
  assert.equal(await sessionsLeft(s.pgUrl), 0, 'every PostgreSQL connection closed');
});

test('a PostgreSQL error in one table stops the collection read beside it; connections and temporary files go', async (t) => {
  const s = await scene(t.name);
  // A role that may read every table but targets: targets' comparison fails in PostgreSQL.
  const role = `diff_reader_${process.pid}`;
  const url = await readerRole(t, s.pgUrl, role, '', [`REVOKE SELECT ON targets FROM ${role}`]);
  const { error, events, left } = await failingDiff(t, s, s.m, url, ['targets', 'users', 'user_events', 'users_targets']);
  const e = error as { code?: string; exitCode?: number; context?: Record<string, unknown>; message?: string };
  assert.ok(error, 'the diff fails');
  assert.equal(e.code, 'diff_failed', String(error));
  assert.equal(e.exitCode, 1);
  assert.equal(e.context?.table, 'targets');
  assert.match(e.message ?? '', /permission denied/);
  assertUsersStopped(events);
  assert.deepEqual(left, [], 'the shared scan removed its folder');
  assert.equal(await sessionsLeft(s.pgUrl), 0, 'every PostgreSQL connection closed');
});

test('a role allowed three connections gets the same diff on fewer lanes; one allowed none gets the refusal', async (t) => {
  const s = await scene(t.name);
  const role = `diff_few_${process.pid}`;
  const url = await readerRole(t, s.pgUrl, role, 'CONNECTION LIMIT 3');
  const diff = (pgUrl: string) =>
    runDiff({
      model: s.m,
      mongo: { url: s.mongo.url, database: s.mongo.name },
      postgres: { connectionString: pgUrl, host: '', port: 0, database: '', user: '', password: null },
      tables: ['users', 'user_events', 'users_targets', 'messages', 'targets'],
      deep: true,
      describe: { mongo: 'source', postgres: 'destination' },
    });
  const untimed = ({ startedAt: _s, endedAt: _e, ...rest }: Record<string, unknown>) => rest;
  const few = await diff(url);
  const all = await diff(s.pgUrl);
  assert.equal(few.identical, false, 'the empty tables differ from the source');
  assert.deepEqual(untimed(few as unknown as Record<string, unknown>), untimed(all as unknown as Record<string, unknown>));
  assert.equal(await sessionsLeft(s.pgUrl), 0, 'every PostgreSQL connection closed');

  const c = new pg.Client({ connectionString: s.pgUrl });
  await c.connect();
  await c.query(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
  await c.end();
  await assert.rejects(diff(url), (e: { code?: string; message?: string }) => e.code === 'postgres_unreachable' && /too many connections/.test(e.message ?? ''));
  assert.equal(await sessionsLeft(s.pgUrl), 0, 'every PostgreSQL connection closed');
});

test('etl diff whose connections an administrator ends (pg_terminate_backend), some of them idle: exit 1, the server\'s words and what to do, no stack', async (t) => {
  const s = await scene(t.name);
  const database = decodeURIComponent(new URL(s.pgUrl).pathname.slice(1));
  const started = startEtl(['diff', '--deep', '--tables', 'users,user_events,users_targets,messages,targets', '--pipeline', PIPELINE, '--database-url', s.pgUrl, '--mongo-url', s.mongo.url, '--mongo-db', s.mongo.name]);
  let ended = false;
  void started.done.then(() => (ended = true));
  const admin = new pg.Client({ connectionString: s.pgUrl });
  await admin.connect();
  try {
    // Once the diff has its lanes (most of them idle, waiting for a table), every one is ended.
    for (;;) {
      assert.equal(ended, false, `the diff ended before its connections were ended:\n${started.output}`);
      // Connected (each ran its session settings: a session still connecting fails as "cannot connect"), three of them idle.
      const { rows } = await admin.query<{ idle: number; connecting: number }>(
        `SELECT count(*) FILTER (WHERE state = 'idle' AND query <> '')::int AS idle, count(*) FILTER (WHERE query = '')::int AS connecting FROM pg_stat_activity WHERE datname = $1 AND application_name = 'etl'`,
        [database],
      );
      if (rows[0]!.idle >= 3 && rows[0]!.connecting === 0) break;
      await sleep(20);
    }
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'etl'`, [database]);
  } finally {
    await admin.end();
  }
  const r = await started.done;
  assert.equal(r.code, 1, r.output);
  assert.doesNotMatch(r.stderr, STACK_LINE, 'no stack');
  assert.doesNotMatch(r.stderr, /Unhandled 'error' event|internal error/);
  assert.match(r.stderr, /^error: .*terminating connection due to administrator command.*\[(pg_57P01|diff_failed)\]$/m);
  assert.match(r.stderr, /^hint: .*the server ended the connection \(an administrator, a restart, a timeout or the network\): run the command again once PostgreSQL is back$/m);
});
