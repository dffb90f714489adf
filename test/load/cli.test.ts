// `etl load` as a user runs it: a child process, no TTY, NO_COLOR. Includes the crash tests: a load
// SIGKILLed during its COPY and during its merge leaves PostgreSQL as it was, and a re-run then
// gives tables identical to an uninterrupted load.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import type { Cell } from '../../staging/csv.ts';
import { stageRun } from './staged-run.ts';
import { checksums, query } from './model-fixture.ts';
import { LOAD_LOCK_KEY } from '../../load/lock.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { startEtl, type EtlProcess } from '../harness/cli.ts';

const servers = useServers({ mongo: false });
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PIPELINE = path.join(REPO, 'test/load/fixtures/pipeline.yaml');
const TABLES = ['companies', 'users', 'user_companies', 'etl_watermarks', 'etl_runs'];

function etl(args: readonly string[], env: Record<string, string> = {}): EtlProcess {
  return startEtl(args, { env });
}

async function tempStaging(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-load-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const stamp = '2024-03-01 10:00:00.000';

async function smallRun(staging: string, model: PipelineModel): Promise<string> {
  return stageRun(staging, model, {
    companies: { rows: [['c1', stamp, stamp, 'Acme']] },
    users: { rows: [['u1', stamp, stamp, 'Ann', 'c1', '3'], ['u2', stamp, stamp, 'Bob', 'c404', null]] },
    user_companies: { keys: ['u1', 'u2'], rows: [['u1', 'c1', stamp, stamp], ['u2', 'c404', stamp, stamp]] },
  });
}

test('etl load --json prints the report; the plain summary names every figure', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = await loadPipeline(PIPELINE);
  const run = await smallRun(staging, model);

  const dry = await etl(['load', '--staging', staging, '--pipeline', PIPELINE, '--database-url', url, '--dry-run']).done;
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^table\s+staged\s+inserted\s+updated\s+unchanged\s+deleted\s+rejected\s+nulled\s+duplicates\s+pending$/m);
  assert.match(dry.stdout, /^users\s+2\s+2\s+0\s+0\s+0\s+0\s+1\s+0\s+1$/m);
  assert.match(dry.stdout, /dry run: run \d+T\d+Z rolled back, nothing changed/);
  assert.doesNotMatch(dry.stdout + dry.stderr, new RegExp(servers.postgres.password));

  const r = await etl(['load', '--json', '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]).done;
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.ok, true);
  assert.equal(report.runId, run);
  assert.equal(report.run_id, run, 'the snake_case names of the first releases stay');
  assert.equal(report.dry_run, false);
  assert.equal(report.already_applied, false);
  assert.deepEqual(
    report.tables.map((x: { table: string; inserted: number; rejected: number; nulled: number }) => [x.table, x.inserted, x.rejected, x.nulled]),
    [
      ['companies', 1, 0, 0],
      ['users', 2, 0, 1],
      ['user_companies', 1, 1, 0],
    ],
  );
  assert.equal(report.tables[2].rejectsFile, 'load/user_companies.rejects.ndjson');

  const again = await etl(['load', '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]).done;
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`run ${run} was already loaded into .*: nothing changed`));
  const againJson = JSON.parse((await etl(['load', '--json', '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]).done).stdout);
  assert.ok(againJson.skipped.length > 0, "the tables already loaded from this run are listed");
  assert.equal(againJson.alreadyApplied, true);
  assert.deepEqual(againJson.tables, []);
});

test('etl load names the pending rows that landed and the NULL references it set back, in the tables it staged and in the others', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = await loadPipeline(PIPELINE);
  const args = ['--staging', staging, '--pipeline', PIPELINE, '--database-url', url];
  // u2's company c404 is missing: its company_id loads NULL (set_null) and its link is held back.
  await smallRun(staging, model);
  assert.equal((await etl(['load', ...args]).done).code, 0);
  const later = '2024-03-02 10:00:00.000';

  // c404 arrives in a run that stages companies only: users and user_companies change all the same.
  await stageRun(staging, model, { companies: { rows: [['c404', later, later, 'Late']] } });
  const only = await etl(['load', ...args]).done;
  assert.equal(only.code, 0, only.stderr);
  assert.deepEqual(await query(url, 'SELECT id, company_id FROM users ORDER BY 1'), [
    { id: 'u1', company_id: 'c1' },
    { id: 'u2', company_id: 'c404' },
  ]);
  assert.match(only.stdout, /^also changed \(tables this run did not stage\): users 0 deleted, 0 nulled, 0 landed, 1 resolved; user_companies 0 deleted, 0 nulled, 1 landed, 0 resolved$/m);

  // The same in a run that stages those tables too (other documents): the figures are not in inserted.
  const again = await servers.postgres.createDatabase(`${t.name} staged`);
  const staging2 = await tempStaging(t);
  const args2 = ['--staging', staging2, '--pipeline', PIPELINE, '--database-url', again];
  await smallRun(staging2, model);
  assert.equal((await etl(['load', ...args2]).done).code, 0);
  await stageRun(staging2, model, {
    companies: { rows: [['c404', later, later, 'Late']] },
    users: { rows: [['u3', later, later, 'Cy', 'c1', null]] },
    user_companies: { keys: ['u3'], rows: [['u3', 'c1', later, later]] },
  });
  const staged = await etl(['load', ...args2]).done;
  assert.equal(staged.code, 0, staged.stderr);
  assert.match(staged.stdout, /^users\s+1\s+1\s+0\s+0\s+0\s+0\s+0\s+0\s+0$/m);
  assert.match(staged.stdout, /^pending settled by this load \(the referenced row arrived; not in inserted or updated\): users 1 resolved; user_companies 1 landed$/m);
  assert.deepEqual(await query(again, 'SELECT user_id, company_id FROM user_companies ORDER BY 1'), [
    { user_id: 'u1', company_id: 'c1' },
    { user_id: 'u2', company_id: 'c404' },
    { user_id: 'u3', company_id: 'c1' },
  ]);
});

test('etl load of a run older than one already loaded is refused, naming both runs and what to do; its other tables load with --tables', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = await loadPipeline(PIPELINE);
  const args = ['--staging', staging, '--pipeline', PIPELINE, '--database-url', url];
  // Run A was extracted first and left unloaded; run B, extracted after a company was renamed, loads.
  const older = await stageRun(
    staging,
    model,
    {
      companies: { rows: [['c1', stamp, stamp, 'Acme']] },
      users: { rows: [['u1', stamp, stamp, 'Ann', 'c1', '3']] },
      user_companies: { keys: ['u1'], rows: [['u1', 'c1', stamp, stamp]] },
    },
    { now: new Date('2026-01-01T00:00:00.000Z') },
  );
  const renamed = '2026-01-02 10:00:00.000';
  const newer = await stageRun(staging, model, { companies: { rows: [['c1', stamp, renamed, 'Acme Renamed']] } });
  const b = await etl(['load', '--run', newer, ...args]).done;
  assert.equal(b.code, 0, b.stderr);
  const before = await checksums(url, TABLES);

  // Loading A would put back the old name, and the watermark (B's) would never read the company again.
  const a = await etl(['load', '--run', older, ...args]).done;
  assert.equal(a.code, 1, a.output);
  assert.match(a.stderr, new RegExp(`run ${older} is older than run ${newer}, already loaded into companies: .*refused`));
  assert.match(a.stderr, new RegExp(`etl run .*; etl load --run ${older} --tables users,user_companies loads only the tables no newer run has loaded\\. Nothing was changed`));
  assert.deepEqual(await checksums(url, TABLES), before, 'the refused load changed nothing');
  assert.equal((await readManifest(runPaths(staging, older))).stages.load, undefined, 'the refused run records no load');

  const rest = await etl(['load', '--run', older, '--tables', 'users,user_companies', ...args]).done;
  assert.equal(rest.code, 0, rest.stderr);
  assert.deepEqual(await query(url, 'SELECT id, name FROM companies'), [{ id: 'c1', name: 'Acme Renamed' }]);
  assert.deepEqual(await query(url, 'SELECT id, company_id FROM users'), [{ id: 'u1', company_id: 'c1' }]);
});

test('etl load: a bad flag exits 2; --no-wait while another load runs exits 1', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  await smallRun(staging, await loadPipeline(PIPELINE));
  const bad = await etl(['load', '--nope']).done;
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--nope/);

  const holder = new pg.Client({ connectionString: url });
  await holder.connect();
  t.after(() => holder.end());
  await holder.query('SELECT pg_advisory_lock($1::bigint)', [LOAD_LOCK_KEY]);
  const refused = await etl(['load', '--no-wait', '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]).done;
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /another etl load is running on this database/);
  assert.deepEqual(await query(url, `SELECT to_regclass('users') AS t`), [{ t: null }], 'nothing was created');
});

// ── crash tests ─────────────────────────────────────────────────────────────────────────────────

const USERS = 100_000;
const LINKS_PER_USER = 3;

async function bigRun(staging: string, model: PipelineModel): Promise<string> {
  const companies = 1000;
  return stageRun(staging, model, {
    companies: { rows: Array.from({ length: companies }, (_, i) => [`c${i}`, stamp, stamp, `company ${i}`]) },
    users: {
      rows: async function* (): AsyncGenerator<Cell[]> {
        for (let i = 0; i < USERS; i++) yield [`u${i}`, stamp, stamp, `user "${i}", with a comma`, i % 50 === 0 ? 'gone' : `c${i % companies}`, String(i % 100)];
      },
    },
    user_companies: {
      keys: Array.from({ length: USERS }, (_, i) => `u${i}`),
      rows: async function* (): AsyncGenerator<Cell[]> {
        for (let i = 0; i < USERS; i++) for (let j = 0; j < LINKS_PER_USER; j++) yield [`u${i}`, `c${(i + j) % companies}`, stamp, stamp];
      },
    },
  });
}

/** Polls pg_stat_activity until an `etl` backend runs a statement matching `pattern`. */
async function waitForStatement(url: string, pattern: string, timeoutMs = 120_000): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await client.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'etl' AND state = 'active' AND query LIKE $1`, [pattern]);
      if (r.rows.length) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`no etl statement like ${pattern} within ${timeoutMs} ms`);
  } finally {
    await client.end();
  }
}

async function waitForNoEtlBackend(url: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await query(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'etl'`);
    if (r[0]!.n === 0) return;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error('the killed load still has a backend');
}

/** A first, small run, so that the big one merges into tables that already hold rows. */
async function baseRun(staging: string, model: PipelineModel): Promise<string> {
  return stageRun(staging, model, {
    companies: { rows: [['c0', stamp, stamp, 'first']] },
    users: { rows: Array.from({ length: 1000 }, (_, i) => [`u${i * 7}`, stamp, stamp, 'before', 'c0', null]) },
    user_companies: { keys: ['u0', 'u7'], rows: [['u0', 'c0', stamp, stamp], ['u7', 'c0', stamp, stamp]] },
  });
}

// Into empty tables the big batches are COPYed straight into the tables (the bulk path); into
// tables holding rows they go through temp tables and a merge.
for (const [moment, pattern, base] of [
  ['during COPY into empty tables', 'COPY "users"%', false],
  ['during the merge', 'WITH merged AS (INSERT INTO "users"%', true],
] as const) {
  test(`a load SIGKILLed ${moment} leaves PostgreSQL as it was; a re-run equals an uninterrupted load`, async (t) => {
    const reference = await servers.postgres.createDatabase(`${t.name} reference`);
    const url = await servers.postgres.createDatabase(t.name);
    const staging = await tempStaging(t);
    const model = await loadPipeline(PIPELINE);
    if (base) {
      const first = await baseRun(staging, model);
      for (const db of [reference, url]) {
        const r = await etl(['load', '--run', first, '--staging', staging, '--pipeline', PIPELINE, '--database-url', db]).done;
        assert.equal(r.code, 0, r.stderr);
      }
    }
    const run = await bigRun(staging, model);
    const args = ['load', '--json', '--run', run, '--staging', staging, '--pipeline', PIPELINE];

    const clean = await etl([...args, '--database-url', reference]).done;
    assert.equal(clean.code, 0, clean.stderr);
    const expected = await checksums(reference, TABLES.slice(0, 3));

    const before = await checksums(url, TABLES);
    const victim = etl([...args, '--database-url', url]);
    await waitForStatement(url, pattern);
    victim.kill('SIGKILL');
    const killed = await victim.done;
    assert.equal(killed.signal, 'SIGKILL');
    await waitForNoEtlBackend(url);
    assert.deepEqual(await checksums(url, TABLES), before, 'nothing of the killed load stayed');

    const rerun = await etl([...args, '--database-url', url]).done;
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(await checksums(url, TABLES.slice(0, 3)), expected);
    const report = JSON.parse(rerun.stdout);
    assert.equal(report.tables[1].staged, USERS);
    assert.equal(report.tables[1].nulled, USERS / 50);
    assert.equal(report.tables[2].inserted + report.tables[2].unchanged + report.tables[2].rejected, USERS * LINKS_PER_USER);
  });
}

/** A database, a staging folder and a first run loaded into it by `etl load`. */
async function loadedBase(t: { name: string; after(fn: () => unknown): void }) {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = await loadPipeline(PIPELINE);
  const first = await baseRun(staging, model);
  assert.equal((await etl(['load', '--run', first, '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]).done).code, 0);
  return { url, staging, model };
}

test('Ctrl-C during the merge cancels the statement, rolls back and exits non-zero', async (t) => {
  const { url, staging, model } = await loadedBase(t);
  const run = await bigRun(staging, model);
  const before = await checksums(url, TABLES);
  const started = etl(['load', '--run', run, '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]);
  await waitForStatement(url, 'WITH merged AS (INSERT INTO "users"%');
  const t0 = Date.now();
  started.kill('SIGINT');
  const r = await started.done;
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /interrupted/);
  assert.ok(Date.now() - t0 < 10_000, 'the running statement was cancelled, not waited for');
  await waitForNoEtlBackend(url);
  assert.deepEqual(await checksums(url, TABLES), before);
  assert.equal((await readManifest(runPaths(staging, run))).stages.load?.status, 'failed');
});

test('Ctrl-C after a table wrote its rejects file, at the end of its step: no rejects file (.partial or not) stays', async (t) => {
  const { url, staging, model } = await loadedBase(t);
  // u2 names company c404, which is missing: NULLed, so the users step writes a rejects file.
  const run = await stageRun(staging, model, {
    companies: { rows: [] },
    users: { rows: [['u1', stamp, stamp, 'Ann', 'c0', '3'], ['u2', stamp, stamp, 'Bob', 'c404', null]] },
    user_companies: { keys: [], rows: [] },
  });
  await holdStepsAtTheirEnd(url);
  try {
    const started = etl(['load', '--run', run, '--tables', 'users', '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]);
    await heldAtAStepsEnd(url, started);
    assert.deepEqual(await readdir(runPaths(staging, run).loadDir), ['users.rejects.ndjson.partial'], 'the moment: its rejects file written');
    started.kill('SIGINT');
    const r = await started.done;
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, /interrupted/);
  } finally {
    await query(url, 'DROP EVENT TRIGGER slow_drop');
  }
  assert.equal((await readManifest(runPaths(staging, run))).stages.load?.status, 'failed');
  assert.deepEqual(await readdir(runPaths(staging, run).loadDir).catch(() => []), [], 'nothing left in load/');
});

test('a load of a run while another process loads it into another database: refused (stage_running), nothing written by the second', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const elsewhere = await servers.postgres.createDatabase(`${t.name} elsewhere`);
  const staging = await tempStaging(t);
  const run = await smallRun(staging, await loadPipeline(PIPELINE));
  const args = ['load', '--run', run, '--staging', staging, '--pipeline', PIPELINE, '--database-url'];
  await holdStepsAtTheirEnd(url);
  try {
    const first = etl([...args, url]);
    await heldAtAStepsEnd(url, first);
    const files = await readdir(runPaths(staging, run).loadDir);
    // Both would write load/<table>.rejects.ndjson.partial, and the manifest's one load section.
    const second = await etl([...args, elsewhere]).done;
    assert.equal(second.code, 1, second.output);
    assert.match(second.stderr, new RegExp(`^error: load of run ${run} cannot start: its load is running in another etl process \\(pid \\d+, since .*\\[stage_running\\]$`, 'm'));
    assert.deepEqual(await readdir(runPaths(staging, run).loadDir), files, 'the first load\'s files untouched');
    assert.deepEqual(await query(elsewhere, `SELECT to_regclass('users') IS NULL AS empty`), [{ empty: true }]);
    first.kill('SIGINT');
    await first.done;
  } finally {
    await query(url, 'DROP EVENT TRIGGER slow_drop');
  }
  // Once it ended, the run loads there.
  const after = await etl([...args, elsewhere]).done;
  assert.equal(after.code, 0, after.output);
});

/** Every load step ends by dropping its temp tables: an event trigger makes it sleep there, its files written. */
async function holdStepsAtTheirEnd(url: string): Promise<void> {
  await query(url, `CREATE FUNCTION slow_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(60); END $$`);
  await query(url, 'CREATE EVENT TRIGGER slow_drop ON sql_drop EXECUTE FUNCTION slow_drop()');
}

/** Waits until `started` sleeps at the end of a step (holdStepsAtTheirEnd); fails if it ended first. */
async function heldAtAStepsEnd(url: string, started: EtlProcess): Promise<void> {
  let ended = false;
  void started.done.then(() => (ended = true));
  for (;;) {
    assert.equal(ended, false, `etl load ended before it dropped its temp tables:\n${started.output}`);
    const sleeping = await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'etl' AND wait_event = 'PgSleep'`);
    if (sleeping[0]!.n > 0) return;
    await new Promise((res) => setTimeout(res, 20));
  }
}

test('a PostgreSQL user that may read but not write the tables: exit 1, the table and a hint about privileges, nothing changed', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = await loadPipeline(PIPELINE);
  const first = await smallRun(staging, model);
  assert.equal((await etl(['load', '--run', first, '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]).done).code, 0);
  const role = `reader_${process.pid}`;
  const database = new URL(url).pathname.slice(1);
  await query(url, `CREATE ROLE ${role} LOGIN PASSWORD 'reader-pw'`);
  t.after(() => query(url, `DROP OWNED BY ${role}; DROP ROLE ${role}`));
  await query(url, `GRANT CONNECT ON DATABASE "${database}" TO ${role}; GRANT USAGE ON SCHEMA public TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
  const reader = new URL(url);
  reader.username = role;
  reader.password = 'reader-pw';
  const before = await checksums(url, TABLES);
  const run = await smallRun(staging, model);
  const r = await etl(['load', '--run', run, '--staging', staging, '--pipeline', PIPELINE, '--database-url', reader.toString()]).done;
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, /^error: \w+: .*permission denied for table \w+ \[pg_42501\]/m);
  assert.match(r.stderr, /^hint: nothing was changed in PostgreSQL \(the load was rolled back\); the PostgreSQL user lacks a privilege etl needs/m);
  assert.doesNotMatch(r.output, /reader-pw/);
  assert.deepEqual(await checksums(url, TABLES), before);
});

test('a load whose connection an administrator ends (pg_terminate_backend): exit 1, pg_57P01, a hint that the server ended it and to load again', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = await loadPipeline(PIPELINE);
  const run = await bigRun(staging, model);
  const started = etl(['load', '--run', run, '--staging', staging, '--pipeline', PIPELINE, '--database-url', url]);
  await waitForStatement(url, 'COPY "users"%');
  await query(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'etl' AND query LIKE 'COPY "users"%'`);
  const r = await started.done;
  assert.equal(r.code, 1, r.output);
  // PostgreSQL's notice (pg_57P01) or, when the socket closed first, the client's words (load_failed:
  // "connection error", "Connection terminated", "read ECONNRESET", as the timing falls).
  assert.match(r.stderr, /^error: users: .*(terminating connection due to administrator command \[pg_57P01\]|(connection error|Connection terminated|ECONNRESET|EPIPE).*\[load_failed\])/im);
  assert.match(r.stderr, /^hint: nothing was changed in PostgreSQL \(the load was rolled back\); the server ended the connection .*: run the load again/m);
  assert.equal((await readManifest(runPaths(staging, run))).stages.load?.status, 'failed');
});
