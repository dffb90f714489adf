// etl commands started at the same time on one staging folder, as an operator does: a cron job's
// stage still at work when someone else runs etl clean, etl run, etl extract. A proxy in front of
// FerretDB holds the read of `days`, so the other command provably runs while the stage is at work.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl, REPO, startEtl } from '../harness/cli.ts';
import { answer, mkfifoAt, nextRead } from '../harness/fifo-reads.ts';
import { holdFind } from '../harness/mongo-hold.ts';
import type { CleanReport } from '../../audit/clean.ts';
import { listRunIds } from '../../staging/run-folder.ts';
import { LOAD_LOCK_KEY } from '../../load/lock.ts';

const servers = useServers();
const PIPELINE = path.join(REPO, 'pipeline.yaml');
const HOUR_MS = 3600_000;

let work = '';
before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'etl-concurrent-'));
});
after(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

/** A MongoDB database holding the sample, and a proxy holding its `days` read. */
async function heldSource(t: { name: string; after: (fn: () => Promise<void>) => void }) {
  const mongo = await servers.mongo.newDatabase(t.name);
  const sample = await etl(['sample', '--scale', '2000', '--mongo-url', mongo.url, '--db', mongo.name, '--quiet'], { cwd: work });
  assert.equal(sample.code, 0, sample.stderr);
  const hold = await holdFind(mongo.url, 'days');
  t.after(() => hold.close());
  return { mongo, hold };
}

test('etl clean never removes a run whose extract is at work in a live process, however long ago its manifest was written', async (t) => {
  const { mongo, hold } = await heldSource(t);
  const staging = path.join(work, 'clean-live-extract');
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const from = (url: string) => ['--source', url, '--mongo-db', mongo.name, '--staging', staging, '--pipeline', PIPELINE];

  // The cron job's extract: its read of `days` goes on (held here: a collection that takes hours).
  const cron = startEtl(['extract', '--full', ...from(hold.url)], { cwd: work, env });
  // Whatever the test finds, the held extract does not outlive it.
  t.after(async () => {
    cron.kill('SIGKILL');
    await cron.done;
  });
  await hold.reached;
  const [busy] = await listRunIds(staging);
  assert.ok(busy, 'the held extract has its run folder');

  // Meanwhile an operator's etl run: a newer run, loaded.
  const operator = await etl(['run', ...from(mongo.url)], { cwd: work, env });
  assert.equal(operator.code, 0, operator.stderr);
  const [newest] = await listRunIds(staging);
  assert.ok(newest! > busy);

  // The held extract last wrote its manifest two hours ago (the collection it reads is that long).
  const manifest = path.join(staging, busy, 'manifest.json');
  const twoHoursAgo = new Date(Date.now() - 2 * HOUR_MS);
  await utimes(manifest, twoHoursAgo, twoHoursAgo);

  const clean = await etl(['clean', '--staging', staging, '--json'], { cwd: work });
  assert.equal(clean.code, 0, clean.stderr);
  const report = JSON.parse(clean.stdout) as CleanReport;
  assert.deepEqual(report.removed.map((r) => r.run_id), [], 'nothing removed: the older run is being extracted');
  assert.match(report.kept.find((k) => k.run_id === busy)?.reasons.join('; ') ?? '', new RegExp(`extract is at work in etl process ${cron.pid}`));
  assert.ok((await stat(manifest)).isFile(), 'the run folder is still there');

  hold.release();
  const ended = await cron.done;
  assert.equal(ended.code, 0, ended.stderr);
  const done = JSON.parse(await readFile(manifest, 'utf8')) as { stages: { extract: { status: string } } };
  assert.equal(done.stages.extract.status, 'done', 'the extract finished its run');
});

/** Waits until `ready()` (polling), or fails naming what it waited for. */
async function until(what: string, ready: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() > deadline) assert.fail(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The sample's tables made (`etl schema`) in a fresh database, and a run of the sample extracted from FerretDB and transformed into `<work>/<folder>`. */
async function transformedRun(t: { name: string }, folder: string) {
  const staging = path.join(work, folder);
  const dbUrl = await servers.postgres.createDatabase(t.name);
  const env = { DATABASE_URL: dbUrl };
  const flags = ['--staging', staging, '--pipeline', PIPELINE];
  const mongo = await servers.mongo.newDatabase(t.name);
  const sample = await etl(['sample', '--scale', '2000', '--mongo-url', mongo.url, '--db', mongo.name, '--quiet'], { cwd: work });
  assert.equal(sample.code, 0, sample.stderr);
  for (const args of [['schema', '--yes', '--pipeline', PIPELINE], ['extract', '--source', mongo.url, '--mongo-db', mongo.name, ...flags], ['transform', ...flags]]) {
    const r = await etl(args, { cwd: work, env });
    assert.equal(r.code, 0, r.stderr);
  }
  const [run] = await listRunIds(staging);
  return { staging, dbUrl, env, flags, run: run! };
}

/**
 * An `etl load` of the run that stops half-way, its rejects files open: another session holds the
 * last table until `release()`. Killed, and the session ended, when the test ends.
 */
async function loadHeldHalfWay(t: TestContext, dbUrl: string, env: Record<string, string>, flags: readonly string[], runDir: string) {
  const blocker = new pg.Client({ connectionString: dbUrl });
  await blocker.connect();
  t.after(() => blocker.end());
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE "days_logbooks_links" IN ACCESS EXCLUSIVE MODE');
  const load = startEtl(['load', ...flags], { cwd: work, env });
  t.after(async () => {
    load.kill('SIGKILL');
    await load.done;
  });
  await until('the load is half-way, its rejects files being written', async () => {
    const manifest = JSON.parse(await readFile(path.join(runDir, 'manifest.json'), 'utf8')) as { stages: { load?: { status: string } } };
    const files = await readdir(path.join(runDir, 'load')).catch(() => []);
    return manifest.stages.load?.status === 'running' && files.some((f) => f.endsWith('.partial'));
  });
  return { load, release: () => blocker.query('ROLLBACK') };
}

test('etl verify of a run another process is loading says the load is at work, not that the run is damaged', async (t) => {
  const { staging, dbUrl, env, flags, run } = await transformedRun(t, 'verify-while-loading');
  const runDir = path.join(staging, run);

  const { load, release } = await loadHeldHalfWay(t, dbUrl, env, flags, runDir);

  const verify = await etl(['verify', runDir, '--pipeline', PIPELINE], { cwd: work });
  assert.equal(verify.code, 1, verify.output);
  assert.doesNotMatch(verify.stdout, /MISMATCH/, 'a run being loaded is not reported as damaged');
  assert.match(verify.stderr, new RegExp(`^error: run ${run} cannot be verified while its load is at work in etl process ${load.pid} .*\\[stage_running\\]$`, 'm'));
  assert.match(verify.stderr, /^hint: run `etl verify` again once it has ended/m);

  // Once the load ends, the same run verifies.
  await release();
  const loaded = await load.done;
  assert.equal(loaded.code, 0, loaded.stderr);
  const again = await etl(['verify', runDir, '--pipeline', PIPELINE], { cwd: work });
  assert.equal(again.code, 0, again.output);
});

test('two etl extract at once: `latest` ends on the newer run, whichever finishes last', async (t) => {
  const { mongo, hold } = await heldSource(t);
  const staging = path.join(work, 'two-extracts');
  const from = (url: string) => ['extract', '--full', '--source', url, '--mongo-db', mongo.name, '--staging', staging, '--pipeline', PIPELINE];

  // The older extract reads `days` slowly (held); a newer one starts and ends meanwhile.
  const older = startEtl(from(hold.url), { cwd: work });
  t.after(async () => {
    older.kill('SIGKILL');
    await older.done;
  });
  await hold.reached;
  const newer = await etl(from(mongo.url), { cwd: work });
  assert.equal(newer.code, 0, newer.stderr);
  const [newest, oldest] = await listRunIds(staging);
  assert.equal((await readFile(path.join(staging, 'latest'), 'utf8')).trim(), newest);

  hold.release();
  const ended = await older.done;
  assert.equal(ended.code, 0, ended.stderr);
  assert.match(ended.output, new RegExp(`run in ${staging}/${oldest}$`, 'm'));
  assert.equal((await readFile(path.join(staging, 'latest'), 'utf8')).trim(), newest, '`latest` still names the newer run: the older one ending last does not take it back');
});

test('etl load waiting for the lock, while the same run is transformed again: it refuses once it has the lock, and loads nothing the manifest no longer holds', async (t) => {
  const { staging, dbUrl, env, flags, run } = await transformedRun(t, 'load-retransformed');
  const manifestOf = async () =>
    JSON.parse(await readFile(path.join(staging, run, 'manifest.json'), 'utf8')) as { stages: Record<string, { status: string; tables?: Record<string, unknown>; tables_kept?: string[] } | undefined> };
  const transformedTables = Object.keys((await manifestOf()).stages.transform!.tables!);

  // Another load holds the lock: this one waits, its plan made from the run as it was transformed.
  const holder = new pg.Client({ connectionString: dbUrl, application_name: 'nightly-etl' });
  await holder.connect();
  t.after(() => holder.end());
  await holder.query('SELECT pg_advisory_lock($1::bigint)', [LOAD_LOCK_KEY]);
  const load = startEtl(['load', '--run', run, ...flags], { cwd: work, env });
  t.after(async () => {
    load.kill('SIGKILL');
    await load.done;
  });
  await until('the load waits for the lock', async () => /waiting for another etl load to finish/.test(load.stderr));

  // Meanwhile someone transforms the run again, for one table (the other tables' files are kept).
  const again = await etl(['transform', '--run', run, '--tables', 'users', ...flags], { cwd: work, env });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual((await manifestOf()).stages.transform!.tables_kept, transformedTables.filter((x) => x !== 'users'));

  await holder.query('SELECT pg_advisory_unlock($1::bigint)', [LOAD_LOCK_KEY]);
  const refused = await load.done;
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.stderr, new RegExp(`^error: run ${run} was transformed again while this load waited .*\\[run_changed\\]$`, 'm'));
  assert.match(refused.stderr, new RegExp(`^hint: run \`etl load --run ${run}\` again`, 'm'));
  const afterRefusal = await manifestOf();
  assert.equal(afterRefusal.stages.load, undefined, 'the refused load recorded nothing');
  const rows = await holder.query('SELECT count(*)::int AS n FROM "users"').catch(() => ({ rows: [{ n: 0 }] }));
  assert.equal(rows.rows[0].n, 0, 'nothing was loaded');

  // Loaded again, it loads what the run now holds: users as transformed again, the rest as kept.
  const loaded = await etl(['load', '--run', run, ...flags], { cwd: work, env });
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.deepEqual(Object.keys((await manifestOf()).stages.load!.tables!).sort(), [...transformedTables].sort());
});

test('etl clean removing the run etl pack is reading: pack says the run was removed, writes no archive, no internal error', async (t) => {
  const staging = path.join(work, 'pack-cleaned');
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const dump = path.join(work, 'pack-cleaned-dump');
  const sample = await etl(['sample', '--scale', '200000', '--out', dump, '--quiet'], { cwd: work });
  assert.equal(sample.code, 0, sample.stderr);
  // Two loaded runs: the older is superseded, which etl clean removes.
  for (let i = 0; i < 2; i++) {
    const r = await etl(['run', '--source', dump, '--staging', staging, '--pipeline', PIPELINE], { cwd: work, env });
    assert.equal(r.code, 0, r.stderr);
  }
  const [, older] = await listRunIds(staging);
  const out = path.join(work, 'older.tar.gz');
  const pack = startEtl(['pack', '--run', older!, '--out', out, '--staging', staging], { cwd: work });
  t.after(async () => {
    pack.kill('SIGKILL');
    await pack.done;
  });
  await until('the pack writes its archive', async () => stat(`${out}.partial`).then(() => true, () => false));
  const clean = await etl(['clean', '--staging', staging, '--json'], { cwd: work });
  assert.equal(clean.code, 0, clean.stderr);
  assert.deepEqual((JSON.parse(clean.stdout) as CleanReport).removed.map((r) => r.run_id), [older]);
  let packEnded = false;
  void pack.done.then(() => (packEnded = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(packEnded, false, 'the pack was still reading the run when clean removed it (else this test proves nothing)');

  const packed = await pack.done;
  assert.equal(packed.code, 1, packed.output);
  assert.match(packed.stderr, new RegExp(`^error: run ${older} was removed while it was being packed \\(.+ is gone\\): nothing was written .*\\[run_changed\\]$`, 'm'));
  assert.doesNotMatch(packed.stderr, /internal error|ENOENT/);
  for (const file of [out, `${out}.partial`]) assert.equal(await stat(file).then(() => true, () => false), false, `${file} is not left`);
});

test('etl pack of a run whose extract is at work in another process says to wait for it, not to extract again', async (t) => {
  const { mongo, hold } = await heldSource(t);
  const staging = path.join(work, 'pack-while-extracting');
  const extract = startEtl(['extract', '--full', '--source', hold.url, '--mongo-db', mongo.name, '--staging', staging, '--pipeline', PIPELINE], { cwd: work });
  t.after(async () => {
    extract.kill('SIGKILL');
    await extract.done;
  });
  await hold.reached;
  const [busy] = await listRunIds(staging);

  const pack = await etl(['pack', '--run', busy!, '--staging', staging], { cwd: work });
  assert.equal(pack.code, 1, pack.output);
  assert.match(pack.stderr, new RegExp(`^error: run ${busy} cannot be packed: extract and transform must be done \\(extract running, transform not run, load not run\\)`, 'm'));
  assert.match(pack.stderr, new RegExp(`^hint: its extract is at work in etl process ${extract.pid}: wait for it to end \\(\`etl status\` shows the run\\), then transform the run and pack it$`, 'm'));
  hold.release();
  assert.equal((await extract.done).code, 0);
});

test('etl transform of a run whose load is starting (past its checks, not yet marked running) is refused, and the load loads the files it checked', async (t) => {
  const { staging, dbUrl, env, flags, run } = await transformedRun(t, 'transform-while-load-starts');
  const manifest = path.join(staging, run, 'manifest.json');
  const bytes = await readFile(manifest);

  // The load's reads of the manifest (test/harness/fifo-reads.ts): its plan, its check once it holds
  // the load lock; its third, as it writes its `running` section, is held.
  await mkfifoAt(manifest);
  const load = startEtl(['load', '--run', run, ...flags], { cwd: work, env });
  t.after(async () => {
    load.kill('SIGKILL');
    await load.done;
  });
  for (let read = 1; read <= 2; read++) await answer(await nextRead(manifest), bytes);
  const held = await nextRead(manifest);
  await writeFile(`${manifest}.test`, bytes);
  await rename(`${manifest}.test`, manifest);

  const transform = await etl(['transform', '--run', run, '--tables', 'users', ...flags], { cwd: work, env });
  await answer(held, bytes);
  const loaded = await load.done;

  assert.equal(transform.code, 1, `the transform is refused while the load starts:\n${transform.output}`);
  assert.match(transform.stderr, new RegExp(`^error: transform of run ${run} cannot start: another etl process \\(pid ${load.pid} on .+\\) is starting its load .*\\[stage_running\\]$`, 'm'));
  assert.equal(loaded.code, 0, loaded.output);
  const done = JSON.parse(await readFile(manifest, 'utf8')) as { stages: { transform: { tables: Record<string, unknown>; tables_kept?: string[] }; load: { status: string; tables: Record<string, unknown> } } };
  assert.equal(done.stages.transform.tables_kept, undefined, 'the run was not transformed again');
  assert.equal(done.stages.load.status, 'done');
  assert.deepEqual(Object.keys(done.stages.load.tables).sort(), Object.keys(done.stages.transform.tables).sort());
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  t.after(() => client.end());
  assert.ok((await client.query('SELECT count(*)::int AS n FROM "users"')).rows[0].n > 0, 'the users are loaded');
});

test('etl verify of a run whose load begins while it verifies says the run changed, not that it is damaged', async (t) => {
  const { staging, dbUrl, env, flags, run } = await transformedRun(t, 'load-while-verifying');
  const runDir = path.join(staging, run);
  const pipelineCopy = path.join(runDir, 'pipeline.yaml');
  const bytes = await readFile(pipelineCopy);

  // Verify reads the run's pipeline.yaml before it checks the files (test/harness/fifo-reads.ts): held there.
  await mkfifoAt(pipelineCopy);
  const verify = startEtl(['verify', runDir, '--pipeline', PIPELINE], { cwd: work });
  t.after(async () => {
    verify.kill('SIGKILL');
    await verify.done;
  });
  const held = await nextRead(pipelineCopy);
  await rm(pipelineCopy);
  await writeFile(pipelineCopy, bytes);

  // Meanwhile a load begins, and stops half-way.
  const { load, release } = await loadHeldHalfWay(t, dbUrl, env, flags, runDir);
  await answer(held, bytes);
  const verified = await verify.done;

  assert.equal(verified.code, 1, verified.output);
  assert.doesNotMatch(verified.stdout, /MISMATCH/, 'a run a load began on is not reported as damaged');
  assert.match(verified.stderr, new RegExp(`^error: run ${run} changed while it was being verified \\(its load began in etl process ${load.pid}\\): .*\\[run_changed\\]$`, 'm'));
  assert.match(verified.stderr, /^hint: run `etl verify` again once no stage is at work on it/m);

  await release();
  assert.equal((await load.done).code, 0);
  const again = await etl(['verify', runDir, '--pipeline', PIPELINE], { cwd: work });
  assert.equal(again.code, 0, again.output);
});

test('etl load of a run another load is loading into the same database waits, finds it applied, and leaves that load its own record', async (t) => {
  const { staging, dbUrl, env, flags, run } = await transformedRun(t, 'load-waits-for-load');
  const manifestOf = async () => JSON.parse(await readFile(path.join(staging, run, 'manifest.json'), 'utf8')) as { stages: { load?: Record<string, unknown> & { status: string } } };
  const session = async (name: string) => {
    const c = new pg.Client({ connectionString: dbUrl, application_name: name });
    await c.connect();
    t.after(() => c.end());
    return c;
  };

  // The first load stops half-way: another session holds its last table.
  const blocker = await session('blocker');
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE "days_logbooks_links" IN ACCESS EXCLUSIVE MODE');
  const first = startEtl(['load', '--run', run, ...flags], { cwd: work, env });
  t.after(async () => {
    first.kill('SIGKILL');
    await first.done;
  });
  await until('the first load is half-way', async () => (await manifestOf()).stages.load?.status === 'running');

  // A session queues for the load lock, then the second load: PostgreSQL grants the lock in that
  // order, so the second load goes on only once the first has ended, its record written.
  const queued = await session('queued');
  await queued.query('BEGIN');
  const queuedLock = queued.query('SELECT pg_advisory_xact_lock($1::bigint)', [LOAD_LOCK_KEY]);
  const waiting = async (app: string) =>
    (await blocker.query("SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1", [app])).rows[0].n > 0;
  await until('the session waits for the load lock', () => waiting('queued'));
  const second = startEtl(['load', '--run', run, ...flags], { cwd: work, env });
  t.after(async () => {
    second.kill('SIGKILL');
    await second.done;
  });
  await until('the second load waits for the lock', async () => /waiting for another etl load to finish/.test(second.stderr));

  await blocker.query('ROLLBACK');
  const loaded = await first.done;
  assert.equal(loaded.code, 0, loaded.output);
  await queuedLock;
  const record = (await manifestOf()).stages.load;
  assert.equal(record?.status, 'done');
  await queued.query('COMMIT');

  const again = await second.done;
  assert.equal(again.code, 0, again.output);
  assert.match(again.stdout, new RegExp(`^run ${run} was already loaded into .*: nothing changed`, 'm'));
  assert.deepEqual((await manifestOf()).stages.load, record, 'the first load keeps its own record');
});
