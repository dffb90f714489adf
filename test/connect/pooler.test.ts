// etl through PgBouncer in transaction pooling, on a pool the application's clients share: a common
// way to reach a production PostgreSQL. There a server connection serves a client for one transaction,
// then any other client. Before, what etl set for its session (statement_timeout and
// idle_in_transaction_session_timeout 0, temp_buffers 256MB) stayed on the server connections that
// ran the SETs and reached the application's transactions, silently lifting the database's timeouts;
// and the load lock, a session-level advisory lock, was taken on one server connection and released
// on another: it stayed held by a connection the application was using, and every later load waited
// for a load that had ended (or, with --no-wait, refused). And Ctrl-C cancelled the running statement
// by the pid pg was given at connection, which through the pooler is PgBouncer's own: the load went
// on until the statement ended.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { withClient } from '../harness/schema.ts';
import { etl, REPO, startEtl, useSampleDump } from '../harness/cli.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { startPgBouncer, type PgBouncer } from './pgbouncer.ts';

const servers = useServers({ mongo: false });
const sample = useSampleDump('etl-pooler-', 400);
const PIPELINE = path.join(REPO, 'pipeline.yaml');
const POOL = 3;

let bouncer: PgBouncer | undefined;
after(() => bouncer?.stop());

/** Opens every server connection of the pool: POOL clients in a transaction at once. */
async function fillPool(url: string): Promise<void> {
  await Promise.all(Array.from({ length: POOL }, () => withClient(url, (c) => c.query('BEGIN; SELECT pg_sleep(0.3); COMMIT'))));
}

/** The settings the application's transactions run with, over twice as many transactions as the pool has connections (round robin: each one). */
function applicationSees(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const seen = new Set<string>();
    for (let i = 0; i < 2 * POOL; i++) {
      const r = await c.query(
        `SELECT current_setting('statement_timeout') AS st, current_setting('idle_in_transaction_session_timeout') AS idle, current_setting('temp_buffers') AS tb, ` +
          `current_setting('DateStyle') AS ds, current_setting('TimeZone') AS tz`,
      );
      const row = r.rows[0] as { st: string; idle: string; tb: string; ds: string; tz: string };
      seen.add(`statement_timeout ${row.st}, idle_in_transaction_session_timeout ${row.idle}, temp_buffers ${row.tb}, DateStyle ${row.ds}, TimeZone ${row.tz}`);
    }
    return [...seen];
  });
}

/** Advisory locks held in the database, read on a direct connection. */
function advisoryLocks(direct: string): Promise<number> {
  return withClient(direct, async (c) => {
    const r = await c.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
    return (r.rows[0] as { n: number }).n;
  });
}

/** count and md5 of every row of each table, read as ISO dates in UTC (the two databases' defaults differ). */
function tableSums(url: string, tables: readonly string[]): Promise<Record<string, string>> {
  return withClient(url, async (c) => {
    await c.query(`SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'`);
    const out: Record<string, string> = {};
    for (const t of tables) {
      const r = await c.query(`SELECT count(*)::int AS n, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
      out[t] = `${r.rows[0].n}:${r.rows[0].h}`;
    }
    return out;
  });
}

async function etlRun(url: string, staging: string, extra: readonly string[]): Promise<void> {
  const r = await etl(['run', '--source', sample.dump, '--staging', staging, '--pipeline', PIPELINE, ...extra], { cwd: sample.work, env: { DATABASE_URL: url } });
  assert.equal(r.code, 0, `etl run ${extra.join(' ')}: ${r.output}`);
}

test("etl through PgBouncer in transaction pooling: the application's transactions keep the database's settings, no lock outlives a load, the next load runs, and the tables equal a direct load's", async () => {
  const direct = await servers.postgres.createDatabase('pooler');
  const name = decodeURIComponent(new URL(direct).pathname.slice(1));
  await withClient(direct, async (c) => {
    for (const setting of [`statement_timeout = '5min'`, `idle_in_transaction_session_timeout = '10min'`, `DateStyle = 'SQL, DMY'`, `TimeZone = 'Asia/Tokyo'`]) {
      await c.query(`ALTER DATABASE ${pg.escapeIdentifier(name)} SET ${setting}`);
    }
  });
  bouncer = await startPgBouncer(direct, POOL);
  const pooled = bouncer.urlOf(direct);
  await fillPool(pooled);
  const defaults = ['statement_timeout 5min, idle_in_transaction_session_timeout 10min, temp_buffers 8MB, DateStyle SQL, DMY, TimeZone Asia/Tokyo'];
  assert.deepEqual(await applicationSees(pooled), defaults, 'the pool before etl');

  const schema = await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: pooled } });
  assert.equal(schema.code, 0, schema.output);
  const staging = path.join(sample.work, 'pooled');
  await etlRun(pooled, staging, ['--full', '--no-wait']);
  assert.deepEqual(await applicationSees(pooled), defaults, "etl's settings reached the application's transactions");
  assert.equal(await advisoryLocks(direct), 0, 'an advisory lock outlived the load');
  // A load right after, refusing to wait: on a lock left behind it would refuse.
  await etlRun(pooled, staging, ['--no-wait']);
  await etlRun(pooled, staging, ['--no-wait']);
  assert.equal(await advisoryLocks(direct), 0, 'an advisory lock outlived the loads');
  // Two at once: the lock, held in one's transaction on one server connection, makes the other wait.
  // Whichever load takes it first, the other loads after it, unless it is the older run and the newer
  // one went first: then it is refused as older, as any run older than a loaded one is.
  const both = await Promise.all([0, 1].map(() => etl(['run', '--source', sample.dump, '--staging', staging, '--pipeline', PIPELINE, '--full', '--lock-timeout', '2m'], { cwd: sample.work, env: { DATABASE_URL: pooled } })));
  const outcomes = both.map((r) => (r.code === 0 ? 'loaded' : /\[run_older_than_loaded\]/.test(r.output) ? 'older' : r.output));
  assert.ok(outcomes.includes('loaded') && outcomes.every((o) => o === 'loaded' || o === 'older'), `two runs at once: ${outcomes.join('\n')}`);
  assert.equal(await advisoryLocks(direct), 0, 'an advisory lock outlived the loads');
  assert.deepEqual(await applicationSees(pooled), defaults);

  const plain = await servers.postgres.createDatabase('pooler direct');
  const r = await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: plain } });
  assert.equal(r.code, 0, r.output);
  await etlRun(plain, path.join(sample.work, 'direct'), ['--full']);
  const tables = [...(await loadPipeline(PIPELINE)).loadOrder];
  assert.deepEqual(await tableSums(direct, tables), await tableSums(plain, tables));
});

/** Waits until a statement of etl on `table` has run for a second (seen on a direct connection). */
async function etlBusyOn(direct: string, table: string): Promise<void> {
  await withClient(direct, async (c) => {
    for (let i = 0; i < 3000; i++) {
      const r = await c.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'etl' AND state = 'active' AND query LIKE $1 AND now() - query_start > interval '1 second'`, [`%${pg.escapeIdentifier(table)}%`]);
      if (r.rows.length > 0) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`etl ran no statement on ${table}`);
  });
}

test('Ctrl-C through PgBouncer in transaction pooling cancels the running statement: the load stops at once and rolls back', async () => {
  const direct = await servers.postgres.createDatabase('pooler cancel');
  const work = path.join(sample.work, 'cancel');
  const env = { DATABASE_URL: direct };
  assert.equal((await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: sample.work, env })).code, 0);
  const staged = ['--staging', work, '--pipeline', PIPELINE];
  assert.equal((await etl(['extract', '--full', '--source', sample.dump, ...staged], { cwd: sample.work, env })).code, 0);
  assert.equal((await etl(['transform', ...staged], { cwd: sample.work, env })).code, 0);
  // Every row written to users takes a second: the load's statement on it runs for minutes unless cancelled.
  await withClient(direct, async (c) => {
    await c.query(`CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(1); RETURN NEW; END$$`);
    await c.query(`CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION slow_row()`);
  });
  bouncer ??= await startPgBouncer(direct, POOL);
  const load = startEtl(['load', ...staged], { cwd: sample.work, env: { DATABASE_URL: bouncer.urlOf(direct) } });
  await etlBusyOn(direct, 'users');
  const signalled = Date.now();
  load.kill('SIGINT');
  const r = await load.done;
  const seconds = (Date.now() - signalled) / 1000;
  assert.notEqual(r.code, 0, r.output);
  assert.match(r.stderr, /interrupted/);
  assert.ok(seconds < 10, `the running statement was cancelled, not waited for: the load ended ${seconds} s after Ctrl-C`);
  const users = await withClient(direct, async (c) => (await c.query('SELECT count(*)::int AS n FROM users')).rows[0].n as number);
  assert.equal(users, 0, 'rolled back');
});
