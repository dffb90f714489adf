// A load blocked by another session's advisory lock says who holds it (pid, application, since
// when), and --lock-timeout makes it give up (exit 1) naming the holder, instead of waiting silently.
// So do `etl schema` and a load waiting for the lock the two take while they change tables, and
// either one whose statement waits for a table or row lock another session holds (an analyst's
// transaction left open).
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { realRun } from '../audit/staged-run.ts';
import { LOAD_LOCK_KEY } from '../../load/lock.ts';
import { startEtl, type EtlProcess } from '../harness/cli.ts';

const servers = useServers({ mongo: false });

function etl(args: readonly string[], cwd: string): { out: EtlProcess; done: Promise<number | null> } {
  const out = startEtl(args, { cwd });
  return { out, done: out.done.then((r) => r.code) };
}

/** Another application's session that has run `statements` (and stays as they left it), with its backend pid. */
async function session(url: string, application: string, statements: readonly string[]): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: url, application_name: application });
  await client.connect();
  for (const sql of statements) await client.query(sql);
  const pid = Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
  return { client, pid };
}

const holdLock = (url: string) => session(url, 'nightly-etl', [`SELECT pg_advisory_lock(${LOAD_LOCK_KEY}::bigint)`]);

/** A session holding, in its transaction, the lock `etl schema` and every load take while they change tables (a load holds it to its end). */
const holdSchemaLock = (url: string) => session(url, 'nightly-etl', ['BEGIN', `SELECT pg_advisory_xact_lock(hashtext('etl schema'))`]);

/** Waits until the process's stderr matches `what`, for at most a minute. */
async function saysOnStderr(out: EtlProcess, what: RegExp): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!what.test(out.stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

/** `etl load` of a real run into a fresh database whose lock another session holds, once it says it waits. */
async function waitingLoad(t: TestContext): Promise<{ holder: { client: pg.Client; pid: number }; out: EtlProcess; done: Promise<number | null> }> {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const holder = await holdLock(url);
  t.after(() => holder.client.end());
  const { out, done } = etl(['load', '--database-url', url], run.cwd);
  const deadline = Date.now() + 60_000;
  while (!out.stderr.includes('waiting for another etl load') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return { holder, out, done };
}

test('--lock-timeout: gives up after the time, exit 1, naming the session that holds the lock', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const holder = await holdLock(url);
  t.after(() => holder.client.end());

  const started = Date.now();
  const { out, done } = etl(['load', '--lock-timeout', '1s', '--database-url', url], run.cwd);
  const code = await done;
  const elapsed = Date.now() - started;
  assert.equal(code, 1, out.stderr);
  assert.match(out.stderr, new RegExp(`gave up waiting after 1 s \\(--lock-timeout\\): another etl load still holds the lock on this database \\(PostgreSQL backend pid ${holder.pid}\\): application "nightly-etl", user postgres, .*connected since \\d{4}-\\d\\d-\\d\\dT`));
  assert.match(out.stderr, new RegExp(`SELECT pg_terminate_backend\\(${holder.pid}\\)`));
  assert.ok(elapsed < 60_000, `took ${elapsed} ms`);
  assert.doesNotMatch(out.stderr, /^\s+at /m, 'no stack');
  const rows = await holder.client.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'etl_runs'`);
  assert.ok(rows.rows[0].n <= 1, 'nothing loaded');
});

test('waiting: the message names the holder; the load proceeds once the lock is free', async (t) => {
  const { holder, out, done } = await waitingLoad(t);
  assert.match(out.stderr, new RegExp(`waiting for another etl load to finish \\(PostgreSQL backend pid ${holder.pid}\\): application "nightly-etl"`));
  await holder.client.query('SELECT pg_advisory_unlock($1::bigint)', [LOAD_LOCK_KEY]);
  assert.equal(await done, 0, out.stderr);
});

test('a waiting load whose connection an administrator ends (idle in its transaction between two tries): exit 1 with the server\'s words, nothing changed', async (t) => {
  const { holder, out, done } = await waitingLoad(t);
  await holder.client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'etl' AND datname = current_database()`);
  assert.equal(await done, 1, out.stderr);
  // Before, the next try found the client closed: "Client has encountered a connection error and is not queryable".
  assert.match(out.stderr, /^error: .*terminating connection due to administrator command .*\[pg_57P01\]$/m);
  assert.match(out.stderr, /^hint: nothing was changed in PostgreSQL \(the load was rolled back\); the server ended the connection \(an administrator, a restart, a timeout or the network\): run the load again/m);
  assert.doesNotMatch(out.stderr, /^\s+at /m, 'no stack');
  const rows = await holder.client.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'etl_runs'`);
  assert.equal(rows.rows[0].n, 0, 'nothing loaded');
});

test('etl run whose load waits for the lock says so at once in its log, while extract and transform still work', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const holder = await holdLock(url);
  t.after(() => holder.client.end());
  const { out, done } = etl(['run', '--full', '--source', 'dump/wappizy', '--database-url', url], run.cwd);
  // Not the heartbeat's `load: 0 of … rows; waiting for …` 30 s later: the notice's own line.
  const line = new RegExp(`^load: waiting for another etl load to finish \\(PostgreSQL backend pid ${holder.pid}\\): application "nightly-etl"`, 'm');
  await saysOnStderr(out, line);
  assert.match(out.stderr, line);
  await holder.client.query('SELECT pg_advisory_unlock($1::bigint)', [LOAD_LOCK_KEY]);
  assert.equal(await done, 0, out.stderr);
  assert.equal(out.stderr.match(/waiting for another etl load/g)?.length, 1, 'said once');
});

test('etl schema while a load changes the tables: it says whom it waits for, then applies once the load ends', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const holder = await holdSchemaLock(url);
  t.after(() => holder.client.end());

  const { out, done } = etl(['schema', '--yes', '--database-url', url], run.cwd);
  await saysOnStderr(out, /waiting for/);
  // Before, it waited without a word: an operator saw a command hang.
  assert.match(out.stderr, new RegExp(`^waiting for the etl load or etl schema changing this database to finish \\(PostgreSQL backend pid ${holder.pid}\\): application "nightly-etl", user postgres`, 'm'));
  const tables = async () => Number((await holder.client.query(`SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'etl_runs'`)).rows[0].n);
  assert.equal(await tables(), 0, 'nothing created while it waits');
  await holder.client.query('COMMIT');
  assert.equal(await done, 0, out.stderr);
  assert.equal(await tables(), 1, 'the tables created once the lock was free');
});

test('a load while etl schema changes the tables: it says whom it waits for, then loads', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const holder = await holdSchemaLock(url);
  t.after(() => holder.client.end());

  const { out, done } = etl(['load', '--database-url', url], run.cwd);
  await saysOnStderr(out, /waiting for/);
  assert.match(out.stderr, new RegExp(`waiting for the etl load or etl schema changing this database to finish \\(PostgreSQL backend pid ${holder.pid}\\): application "nightly-etl"`));
  await holder.client.query('COMMIT');
  assert.equal(await done, 0, out.stderr);
  const loaded = await holder.client.query(`SELECT count(DISTINCT run_id)::int AS n FROM etl_runs`);
  assert.equal(loaded.rows[0].n, 1, 'the run loaded once the lock was free');
});

/** An analyst's session that read `table` and left its transaction open (psql, a BI tool in manual commit). */
const openReader = (url: string, table: string) => session(url, 'analyst', ['BEGIN', `SELECT count(*) FROM ${table}`]);

test('etl schema whose ALTER TABLE waits for an analyst\'s open transaction says whom it waits for, then applies once it ends', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const made = etl(['schema', '--database-url', url], run.cwd);
  assert.equal(await made.done, 0, made.out.stderr);
  // A column of pipeline.yaml missing: etl schema --yes adds it (ALTER TABLE: an exclusive lock on users).
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('ALTER TABLE users DROP COLUMN age').finally(() => admin.end());
  const reader = await openReader(url, 'users');
  t.after(() => reader.client.end());
  const { out, done } = etl(['schema', '--yes', '--database-url', url], run.cwd);
  await saysOnStderr(out, /waiting for a lock/);
  assert.match(out.stderr, new RegExp(`^waiting for a lock on table users held by PostgreSQL backend pid ${reader.pid} \\(application "analyst", user postgres, .*, transaction begun \\d{4}-.*, now idle in transaction\\); it goes on once that transaction ends \\(to end it: SELECT pg_terminate_backend\\(${reader.pid}\\);\\)…$`, 'm'));
  await reader.client.query('COMMIT');
  assert.equal(await done, 0, out.stderr);
  assert.match(out.stdout, /applied {2}users: column "users"\."age" is missing: added/);
  assert.equal(out.stderr.match(/waiting for a lock/g)?.length, 1, 'said once');
});

test('a load whose writes wait for a DBA\'s open transaction (CREATE INDEX, not committed yet) says whom it waits for, then loads once it ends', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const made = etl(['schema', '--database-url', url], run.cwd);
  assert.equal(await made.done, 0, made.out.stderr);
  // CREATE INDEX holds a SHARE lock on users to its transaction's end: no row may be written meanwhile.
  const { client: dba, pid: dbaPid } = await session(url, 'dba', ['BEGIN', 'CREATE INDEX users_by_name ON users (name)']);
  t.after(() => dba.end());
  const { out, done } = etl(['load', '--database-url', url], run.cwd);
  await saysOnStderr(out, /waiting for a lock/);
  assert.match(out.stderr, new RegExp(`waiting for a lock on table users held by PostgreSQL backend pid ${dbaPid} \\(application "dba", .*now idle in transaction\\)`));
  await dba.query('COMMIT');
  assert.equal(await done, 0, out.stderr);
  const loaded = await dba.query(`SELECT count(*)::int AS n FROM users`);
  assert.equal(loaded.rows[0].n, 3, 'the run loaded once the transaction ended');
});

test('--lock-timeout that is not a duration: exit 2', async () => {
  const run = await realRun();
  try {
    const { out, done } = etl(['load', '--lock-timeout', 'soon', '--database-url', 'postgresql://etl@127.0.0.1:1/x'], run.cwd);
    assert.equal(await done, 2, out.stderr);
    assert.match(out.stderr, /--lock-timeout must be a duration such as 30s, 2m or 1h, got "soon"/);
  } finally {
    await rm(run.cwd, { recursive: true, force: true });
  }
});
