// `etl run` loads while it still extracts (issue 17 goal 5): the load starts with the run and takes
// each table, in load order, once the transform says its files are final. Yet PostgreSQL, the run
// folder and the manifest end exactly as `etl extract && etl transform && etl load` leave them, for
// a full run and an incremental one after edits, and failures leave what they leave there. A proxy
// in front of FerretDB holds the read of `days` (the last collection) so the tests act while the
// extract is provably half-way.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl, REPO, startEtl, type CliResult } from '../harness/cli.ts';
import { holdFind } from '../harness/mongo-hold.ts';
import { EditGenerator } from '../mirror/edits.ts';
import { query } from '../mirror/harness.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { LOAD_LOCK_KEY } from '../../load/lock.ts';
import { assertSameDatabase, databaseState, runFiles, withoutTimes } from './run-compare.ts';

const servers = useServers();
const PIPELINE = path.join(REPO, 'pipeline.yaml');
const model = await loadPipeline(PIPELINE);
/** The tables the load can take while `days` is held: every one before days' tables in load order. */
const BEFORE_DAYS = model.loadOrder.slice(0, model.loadOrder.indexOf('days'));

let work = '';
before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'etl-run-load-'));
});
after(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

interface Staged {
  readonly runDir: string;
  readonly files: Record<string, string>;
  readonly manifest: { stages: Record<string, { status: string; error?: { code: string } | null } | undefined> } & Record<string, unknown>;
}

async function onlyRunDir(staging: string, known: readonly string[] = []): Promise<string> {
  const ids = (await readdir(staging)).filter((n) => /^\d{8}T\d{9}Z$/.test(n) && !known.includes(n));
  assert.equal(ids.length, 1, `one new run in ${staging}`);
  return path.join(staging, ids[0]!);
}

const manifestOf = async (runDir: string): Promise<Staged['manifest']> => JSON.parse(await readFile(path.join(runDir, 'manifest.json'), 'utf8')) as Staged['manifest'];

/** A finished run: its files' sha256 and its manifest. */
async function onlyRun(staging: string, known: readonly string[] = []): Promise<Staged> {
  const runDir = await onlyRunDir(staging, known);
  return { runDir, files: await runFiles(runDir), manifest: await manifestOf(runDir) };
}

/**
 * A run still being written: its files' names only (hashing them would race with the renames of
 * files the extract and transform complete meanwhile) and its manifest (replaced whole, never torn).
 */
async function runInFlight(staging: string): Promise<{ names: string[]; manifest: Staged['manifest'] }> {
  const runDir = await onlyRunDir(staging);
  const names = (await readdir(runDir, { recursive: true })).map((n) => String(n));
  return { names, manifest: await manifestOf(runDir) };
}

/** What an error says, wherever the run folder is. */
const errorLines = (stderr: string, staging: string) =>
  stderr
    .split('\n')
    .filter((l) => /^(error|hint):/.test(l))
    .map((l) =>
      l
        .replaceAll(staging, '<staging>')
        .replace(/\d{8}T\d{9}Z/g, '<run>')
        .replace(/\(PostgreSQL backend pid \d+\)[^[]*/, '(<holder>) '),
    );

function assertSameRun(a: Staged, b: Staged, names: readonly string[]): void {
  assert.deepEqual(a.files, b.files, 'the same files, byte for byte');
  assert.deepEqual(withoutTimes(a.manifest, ...names), withoutTimes(b.manifest, ...names), 'the same manifest, timestamps aside');
}

interface World {
  readonly mongo: { readonly name: string; readonly url: string };
  /** The database `etl run` loads, and the one the three commands load; their names. */
  readonly runUrl: string;
  readonly stagesUrl: string;
  readonly names: readonly [string, string];
  readonly runStaging: string;
  readonly stagesStaging: string;
}

async function world(t: { name: string }, tag: string): Promise<World> {
  const mongo = await servers.mongo.newDatabase(t.name);
  const sample = await etl(['sample', '--scale', '2000', '--mongo-url', mongo.url, '--db', mongo.name, '--quiet'], { cwd: work });
  assert.equal(sample.code, 0, sample.stderr);
  const names = [`ovl_${tag}_run`, `ovl_${tag}_stages`] as const;
  const [runUrl, stagesUrl] = [await servers.postgres.createDatabase(names[0]), await servers.postgres.createDatabase(names[1])];
  return { mongo, runUrl, stagesUrl, names, runStaging: path.join(work, `${tag}-run`), stagesStaging: path.join(work, `${tag}-stages`) };
}

const sourceFlags = (w: World, url = w.mongo.url) => ['--source', url, '--mongo-db', w.mongo.name, '--pipeline', PIPELINE];

/**
 * `etl extract && etl transform && etl load` into the second database; the last command's result.
 * `extra` goes to extract, `loadExtra` to load, `everyStage` to all three (--tables).
 */
async function threeCommands(w: World, extra: readonly string[], loadExtra: readonly string[] = [], everyStage: readonly string[] = []): Promise<CliResult> {
  const env = { DATABASE_URL: w.stagesUrl };
  const extract = await etl(['extract', ...sourceFlags(w), '--staging', w.stagesStaging, ...extra, ...everyStage], { cwd: work, env });
  assert.equal(extract.code, 0, extract.stderr);
  const transform = await etl(['transform', '--staging', w.stagesStaging, '--pipeline', PIPELINE, ...everyStage], { cwd: work, env });
  assert.equal(transform.code, 0, transform.stderr);
  return etl(['load', '--staging', w.stagesStaging, '--pipeline', PIPELINE, ...loadExtra, ...everyStage], { cwd: work, env });
}

async function runIds(staging: string): Promise<string[]> {
  return (await readdir(staging).catch(() => [])).filter((n) => /^\d{8}T\d{9}Z$/.test(n));
}

/** One `etl run` and the three commands, each into its own database and staging folder; both must agree. */
async function bothWays(w: World, extra: readonly string[]): Promise<void> {
  const known = [await runIds(w.runStaging), await runIds(w.stagesStaging)];
  const run = await etl(['run', ...sourceFlags(w), '--staging', w.runStaging, ...extra], { cwd: work, env: { DATABASE_URL: w.runUrl } });
  assert.equal(run.code, 0, run.stderr);
  const load = await threeCommands(w, extra);
  assert.equal(load.code, 0, load.stderr);
  assertSameRun(await onlyRun(w.runStaging, known[0]), await onlyRun(w.stagesStaging, known[1]), w.names);
  await assertSameDatabase(w.runUrl, w.stagesUrl, 'etl run against the three commands');
}

/** Replaces database `copy` with a copy of `from` (watermarks and ledger included). */
async function copyDatabase(from: string, copy: string): Promise<void> {
  const admin = new pg.Client({ connectionString: servers.postgres.url });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE ${pg.escapeIdentifier(copy)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(copy)} TEMPLATE ${pg.escapeIdentifier(from)}`);
  } finally {
    await admin.end();
  }
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('etl run loads PostgreSQL as the three commands do: a full run of the sample with its rejects, then an incremental run after edits', async (t) => {
  const w = await world(t, 'ident');
  await bothWays(w, ['--full']);
  const run = await onlyRun(w.runStaging);
  const rejects = (prefix: string) => Object.keys(run.files).filter((f) => f.startsWith(prefix) && f.endsWith('.rejects.ndjson'));
  assert.ok(rejects('load/').length > 0, 'the load refused rows (load/*.rejects.ndjson), compared byte for byte');
  const state = await databaseState(w.runUrl);
  for (const table of ['etl_pending', 'etl_runs', 'etl_watermarks', 'users_logbook', 'etl_contrib_users_logbook']) assert.ok(state[table]?.length, `${table} holds rows`);

  // Both databases start the incremental run from the same state (watermarks included), so both
  // extracts read the same documents.
  await copyDatabase(w.names[0], w.names[1]);
  const client = new MongoClient(w.mongo.url);
  try {
    await client.connect();
    const edits = await (await EditGenerator.open(client.db(w.mongo.name), 17)).applyRound(60);
    assert.equal(edits.length, 60);
  } finally {
    await client.close();
  }
  await bothWays(w, []);
  const incremental = await onlyRun(w.runStaging, [path.basename(run.runDir)]);
  const collections = (incremental.manifest.stages.extract as unknown as { collections: Record<string, { watermark: { from: string | null } }> }).collections;
  assert.ok(Object.values(collections).some((c) => c.watermark.from !== null), 'an incremental read');
});

test('etl run --tables and --dry-run load and record what the three commands do with the same flags', async (t) => {
  const w = await world(t, 'flags');
  // A parent, a dedupe table and a late table with its links: the load waits for each in turn.
  const tables = ['--tables', 'users,users_logbook,days,days_contents_links'];
  const before = [await databaseState(w.runUrl), await databaseState(w.stagesUrl)];
  for (const extra of [['--dry-run'], []]) {
    const known = [await runIds(w.runStaging), await runIds(w.stagesStaging)];
    const run = await etl(['run', ...sourceFlags(w), '--full', '--staging', w.runStaging, ...tables, ...extra], { cwd: work, env: { DATABASE_URL: w.runUrl } });
    assert.equal(run.code, 0, run.stderr);
    const load = await threeCommands(w, ['--full'], extra, tables);
    assert.equal(load.code, 0, load.stderr);
    const [a, b] = [await onlyRun(w.runStaging, known[0]), await onlyRun(w.stagesStaging, known[1])];
    const staged = (a.manifest.stages.transform as { tables?: object } | undefined)?.tables ?? {};
    assert.deepEqual(Object.keys(staged).sort(), ['days', 'days_contents_links', 'users', 'users_logbook'], 'only the tables asked for');
    assertSameRun(a, b, w.names);
    if (extra.length > 0) assert.deepEqual([await databaseState(w.runUrl), await databaseState(w.stagesUrl)], before, 'a dry run changes nothing');
    else await assertSameDatabase(w.runUrl, w.stagesUrl, `etl run ${tables.join(' ')} against the three commands`);
  }
  assert.ok(Number((await query(w.runUrl, 'SELECT count(*)::int AS n FROM users_logbook'))[0]!.n) > 0, 'the subset was loaded');
});

test('etl run loads each table once its files are final, in load order, while the extract still reads; the lock is taken at the start', async (t) => {
  const w = await world(t, 'order');
  const hold = await holdFind(w.mongo.url, 'days');
  t.after(() => hold.close());
  const started = startEtl(['run', '--verbose', ...sourceFlags(w, hold.url), '--full', '--staging', w.runStaging], { cwd: work, env: { DATABASE_URL: w.runUrl } });
  t.after(() => started.kill('SIGKILL'));
  await hold.reached;
  // While days is held, the load takes every table before days' own.
  const loaded = (table: string) => new RegExp(`\\] load ${table}: [\\d,]+ staged`).test(started.stderr);
  await waitFor(`the load of ${BEFORE_DAYS.at(-1)} while days is held:\n${started.stderr}`, () => loaded(BEFORE_DAYS.at(-1)!));
  const run = await runInFlight(w.runStaging);
  assert.ok(!run.names.includes(path.join('extract', 'days.ndjson')), 'days is not extracted yet');
  assert.equal(run.manifest.stages.transform, undefined, 'no transform section yet');
  assert.equal(run.manifest.stages.load, undefined, 'no load section yet');
  const locks = new pg.Client({ connectionString: w.runUrl });
  await locks.connect();
  try {
    const r = await locks.query(`SELECT pg_try_advisory_lock($1::bigint) AS ok`, [LOAD_LOCK_KEY]);
    assert.equal(r.rows[0].ok, false, 'the load holds its lock');
  } finally {
    await locks.end();
  }
  hold.release();
  const r = await started.done;
  assert.equal(r.code, 0, r.stderr);

  // Every table's first load line comes after its collection's transform line, in load order.
  const lines = r.stderr.split('\n');
  const first = (re: RegExp) => lines.findIndex((l) => re.test(l));
  const starts = model.loadOrder.map((table) => first(new RegExp(`\\] load ${table}: `)));
  for (const [i, table] of model.loadOrder.entries()) {
    const collection = model.tables.get(table)!.collection;
    const transformed = first(new RegExp(`\\] transform ${collection}: [\\d,]+ documents →`));
    assert.ok(transformed >= 0 && starts[i]! > transformed, `${table} loaded after ${collection} was transformed`);
  }
  assert.deepEqual([...starts].sort((a, b) => a - b), starts, 'tables loaded in load order');
});

/** The rows of both databases, to prove that a failure changed nothing. */
async function unchanged(w: World, before: Record<string, string[]>): Promise<void> {
  assert.deepEqual(await databaseState(w.runUrl), before, 'PostgreSQL unchanged');
}

test('an extract failing while the load is under way leaves PostgreSQL unchanged and what etl extract leaves', async (t) => {
  const w = await world(t, 'xfail');
  const full = await etl(['run', ...sourceFlags(w), '--full', '--staging', path.join(work, 'xfail-first')], { cwd: work, env: { DATABASE_URL: w.runUrl } });
  assert.equal(full.code, 0, full.stderr);
  const state = await databaseState(w.runUrl);
  const hold = await holdFind(w.mongo.url, 'days');
  t.after(() => hold.close());
  const started = startEtl(['run', '--verbose', ...sourceFlags(w, hold.url), '--full', '--staging', w.runStaging], { cwd: work, env: { DATABASE_URL: w.runUrl } });
  t.after(() => started.kill('SIGKILL'));
  await hold.reached;
  await waitFor('the load of a table while days is held', () => new RegExp(`\\] load ${BEFORE_DAYS.at(-1)}: [\\d,]+ staged`).test(started.stderr));
  hold.fail('refused by the test');
  const r = await started.done;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /error: reading days failed: refused by the test/);
  await unchanged(w, state);
  const run = await onlyRun(w.runStaging);
  assert.deepEqual(Object.keys(run.manifest.stages), ['extract'], 'no transform or load section');
  assert.equal(run.manifest.stages.extract!.status, 'failed');
  assert.ok(!(await readdir(run.runDir)).includes('load'), 'no load folder');
  assert.deepEqual(await readdir(path.join(run.runDir, 'transform')).catch(() => []), [], 'no transform file');
});

test('a load refused at once (another load holds the lock, --no-wait) fails as etl load does after the extract and the transform', async (t) => {
  const w = await world(t, 'locked');
  const holders = [w.runUrl, w.stagesUrl].map((url) => new pg.Client({ connectionString: url }));
  for (const c of holders) {
    await c.connect();
    await c.query('SELECT pg_advisory_lock($1::bigint)', [LOAD_LOCK_KEY]);
  }
  t.after(() => Promise.all(holders.map((c) => c.end())));
  const [before1, before2] = [await databaseState(w.runUrl), await databaseState(w.stagesUrl)];
  const run = await etl(['run', ...sourceFlags(w), '--full', '--no-wait', '--staging', w.runStaging], { cwd: work, env: { DATABASE_URL: w.runUrl } });
  const load = await threeCommands(w, ['--full'], ['--no-wait']);
  assert.equal(load.code, 1, load.stderr);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /another etl load is running/);
  assert.deepEqual(errorLines(run.stderr, w.runStaging), errorLines(load.stderr, w.stagesStaging));
  const [a, b] = [await onlyRun(w.runStaging), await onlyRun(w.stagesStaging)];
  assert.equal(a.manifest.stages.transform!.status, 'done', 'extract and transform went to their end');
  assertSameRun(a, b, w.names);
  assert.deepEqual([await databaseState(w.runUrl), await databaseState(w.stagesUrl)], [before1, before2], 'PostgreSQL unchanged');
});

test('a load failing in a step while the extract still reads holds its error: extract and transform end, then load is recorded failed, as etl load records it', async (t) => {
  const w = await world(t, 'stepfail');
  // Both databases refuse the ingredients rows (a CHECK no name passes), the first table loaded.
  for (const url of [w.runUrl, w.stagesUrl]) {
    const schema = await etl(['schema', '--pipeline', PIPELINE], { cwd: work, env: { DATABASE_URL: url } });
    assert.equal(schema.code, 0, schema.stderr);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`ALTER TABLE ingredients ADD CONSTRAINT no_rows CHECK (false) NOT VALID`);
    await c.end();
  }
  const before = await databaseState(w.runUrl);
  const rollbacks = async () => Number((await query(w.runUrl, 'SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()'))[0]!.xact_rollback);
  const rolledBack = await rollbacks();
  const hold = await holdFind(w.mongo.url, 'days');
  t.after(() => hold.close());
  const started = startEtl(['run', ...sourceFlags(w, hold.url), '--full', '--staging', w.runStaging], { cwd: work, env: { DATABASE_URL: w.runUrl } });
  t.after(() => started.kill('SIGKILL'));
  await hold.reached;
  // The load fails on ingredients and rolls back while days is held; the run waits for the extract.
  await waitFor('the load to roll back while days is held', async () => (await rollbacks()) > rolledBack);
  assert.equal((await runInFlight(w.runStaging)).manifest.stages.load, undefined, 'nothing recorded while the extract runs');
  hold.release();
  const run = await started.done;
  const load = await threeCommands(w, ['--full']);
  assert.equal(load.code, 1, load.stderr);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /no_rows/);
  assert.deepEqual(errorLines(run.stderr, w.runStaging), errorLines(load.stderr, w.stagesStaging));
  const [a, b] = [await onlyRun(w.runStaging), await onlyRun(w.stagesStaging)];
  assert.equal(a.manifest.stages.load!.status, 'failed');
  // The run read through the proxy: its port aside, the source is the same.
  assertSameRun(a, b, [...w.names, new URL(hold.url).host, new URL(w.mongo.url).host]);
  await unchanged(w, before);
});
