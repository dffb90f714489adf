// A run taken all the way: extract (bson dump) → transform → load into a real PostgreSQL. Its load
// rejects travel in the archive, verify passes on it with no database reachable, `etl runs` shows it
// loaded, and `etl clean` keeps it as the newest loaded run.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, rm, writeFile } from 'node:fs/promises';
import * as tar from 'tar';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runLoad } from '../../load/index.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { readManifest } from '../../staging/manifest.ts';
import type { VerifyReport } from '../../audit/verify.ts';
import type { RunsReport } from '../../audit/runs.ts';
import type { CleanReport } from '../../audit/clean.ts';
import { newProject, realRun, sampleCollections, writeDump, type RealRun } from './staged-run.ts';
import { etlSync } from '../harness/cli.ts';
import { createTables, withClient } from '../harness/schema.ts';

const servers = useServers({ mongo: false });

test('a loaded run: packed with its load rejects, verified without databases, listed loaded, kept by clean', async (t) => {
  const { url, run } = await loadedRealRun(t);
  const manifest = await readManifest(run.paths);
  assert.equal(manifest.stages.load?.status, 'done');
  // User 3 was rejected by transform (no name): its link row has no user to point at.
  const linkRejects = manifest.stages.load!.tables.users_events!.rejects;
  assert.ok(linkRejects && linkRejects.records >= 1, 'users_events has load rejects');

  const packed = etlSync(['pack', '--json'], { cwd: run.cwd });
  assert.equal(packed.code, 0, packed.stderr);
  const report = JSON.parse(packed.stdout);
  assert.deepEqual(report.stages_included, ['extract', 'transform', 'load']);
  const entries: string[] = [];
  await tar.list({ file: report.archive, onReadEntry: (e) => void entries.push(e.path) });
  assert.ok(entries.includes(`${run.runId}/${linkRejects.file}`), `${linkRejects.file} in the archive`);
  // The manifest names the destination without its password.
  assert.doesNotMatch(JSON.stringify(manifest), new RegExp(`:${new URL(url).password || 'no-password-in-url'}@`));

  // The child has neither MONGODB_URL nor DATABASE_URL; the server is not asked for anything.
  const verified = etlSync(['verify', report.archive, '--json'], { cwd: path.dirname(run.cwd) });
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const v = JSON.parse(verified.stdout) as VerifyReport;
  assert.equal(v.stages.load, 'done');
  assert.ok(v.identities.some((i) => i.table === 'users_events' && i.name.startsWith('load: lines of the load rejects file = rejected + nulled') && i.ok));
  assert.ok(v.identities.some((i) => i.table === 'users' && i.name.startsWith('load: rows staged') && i.ok));

  const runs = JSON.parse(etlSync(['runs', '--json'], { cwd: run.cwd }).stdout) as RunsReport;
  assert.equal(runs.runs[0]!.loaded, true);
  assert.deepEqual(runs.runs[0]!.stages_done, ['extract', 'transform', 'load']);
  const cleaned = JSON.parse(etlSync(['clean', '--json'], { cwd: run.cwd }).stdout) as CleanReport;
  assert.deepEqual(cleaned.removed, []);
  assert.match(cleaned.kept[0]!.reasons.join(), /newest loaded run/);
});

/** A real run loaded (with `tables`: only those) into a fresh database, removed when the test ends. */
async function loadedRealRun(t: TestContext, tables?: readonly string[]) {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const model = await loadPipeline(run.pipelineFile);
  await createTables(url, model);
  const postgres = { connectionString: url, host: '', port: 0, database: '', user: '', password: null };
  await runLoad({ model, stagingDir: run.stagingDir, runId: run.runId, postgres, ...(tables ? { tables: [...tables] } : {}) });
  return { url, run, model, postgres };
}

/** A real run loaded with `--tables users,events` (2 of its 4 tables) into a fresh database. */
const partlyLoadedRun = (t: TestContext) => loadedRealRun(t, ['users', 'events']);

/** The run's line in `etl runs` and its entry in `etl runs --json`. */
function listed(run: RealRun, env: Record<string, string>) {
  const text = etlSync(['runs'], { cwd: run.cwd, env });
  assert.equal(text.code, 0, text.stderr);
  const json = etlSync(['runs', '--json'], { cwd: run.cwd, env });
  return { line: text.stdout.split('\n').find((l) => l.includes(run.runId))!, entry: JSON.parse(json.stdout).runs[0] };
}

test('a run loaded with --tables is listed partly loaded (with and without the ledger), and so is its report, until the rest is loaded', async (t) => {
  const { url, run, model, postgres } = await partlyLoadedRun(t);
  for (const env of [{}, { DATABASE_URL: url }] as Record<string, string>[]) {
    const { line, entry } = listed(run, env);
    assert.match(line, /partly \(2 of 4 tables\)\s*$/, `${JSON.stringify(Object.keys(env))}: ${line}`);
    assert.equal(entry.loaded, true);
    assert.equal(entry.loaded_tables, 2);
    assert.equal(entry.tables, 4);
  }
  const reported = etlSync(['report', '--out', path.join(run.cwd, 'r.html')], { cwd: run.cwd });
  assert.equal(reported.code, 0, reported.stderr);
  assert.match(await readFile(path.join(run.cwd, 'r.html'), 'utf8'), /partly loaded into [^<]*\(2 table\(s\): events, users\)/);

  await runLoad({ model, stagingDir: run.stagingDir, runId: run.runId, postgres });
  const { line, entry } = listed(run, { DATABASE_URL: url });
  assert.match(line, /\byes\s*$/, line);
  assert.equal(entry.loaded_tables, 4);
});

test('a partly loaded run whose files are gone is listed from etl_runs as partly loaded, cleaned; one loaded before etl_runs said how many tables a run staged is listed by the tables it was loaded into', async (t) => {
  const { url, run } = await partlyLoadedRun(t);
  // As `etl clean` or another machine leaves it: the ledger alone remembers the run.
  await rm(run.paths.dir, { recursive: true });
  await rm(path.join(run.stagingDir, 'latest'), { force: true });

  const { line, entry } = listed(run, { DATABASE_URL: url });
  assert.match(line, /partly \(2 of 4 tables\) \(cleaned\)\s*$/, line);
  assert.deepEqual([entry.loaded, entry.tables, entry.loaded_tables, entry.staged], [true, 4, 2, false]);

  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`UPDATE etl_runs SET summary = summary - 'run_tables'`).finally(() => client.end());
  const older = listed(run, { DATABASE_URL: url });
  assert.match(older.line, /into 2 tables \(cleaned\)\s*$/, older.line);
  assert.deepEqual([older.entry.tables, older.entry.loaded_tables], [null, 2]);
});

test('etl clean: a nightly run whose load failed goes once the next night\'s incremental run is loaded into the same database', async (t) => {
  const { url, run: first, model, postgres } = await loadedRealRun(t);
  // What `etl run` does each night: extract from the stored watermarks, transform, load.
  const nightly = async () => {
    const { runId } = await runExtract({ model, stagingDir: first.stagingDir, source: { kind: 'dump', path: path.join(first.cwd, 'dump', 'wappizy') }, postgres });
    await runTransform({ model, stagingDir: first.stagingDir, runId });
    return runId;
  };

  const failed = await nightly();
  // The server refuses the load's ledger entry: the load fails after it began, rolled back.
  const refuse = `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$;
    CREATE TRIGGER refuse BEFORE INSERT ON etl_runs FOR EACH STATEMENT EXECUTE FUNCTION refuse()`;
  await withClient(url, (c) => c.query(refuse));
  await assert.rejects(runLoad({ model, stagingDir: first.stagingDir, runId: failed, postgres }), /refused by test/);
  await withClient(url, (c) => c.query('DROP TRIGGER refuse ON etl_runs'));
  const a = await readManifest(runPaths(first.stagingDir, failed));
  assert.equal(a.stages.load?.status, 'failed');
  assert.ok(a.destination?.description, 'the failed load recorded its destination');
  assert.ok(Object.values(a.stages.extract!.collections).every((c) => typeof c.watermark?.from === 'string'), 'an incremental read');

  const kept = JSON.parse(etlSync(['clean', '--json'], { cwd: first.cwd }).stdout) as CleanReport;
  assert.match(kept.kept.find((k) => k.run_id === failed)!.reasons.join(), /not yet loaded \(load failed\)/);

  const next = await nightly();
  await runLoad({ model, stagingDir: first.stagingDir, runId: next, postgres });
  const cleaned = etlSync(['clean', '--json'], { cwd: first.cwd });
  assert.equal(cleaned.code, 0, cleaned.stderr);
  const report = JSON.parse(cleaned.stdout) as CleanReport;
  assert.deepEqual(report.removed.map((r) => [r.run_id, r.reason]).sort(), [
    [first.runId, `loaded, superseded by loaded run ${next}`],
    [failed, `not loaded (load failed), superseded by loaded run ${next}, whose extract covered its changes`],
  ]);
  assert.deepEqual(report.kept.map((k) => k.run_id), [next]);
});

test('etl runs: a run transformed with --tables users, then loaded, is listed loaded with 1 of the pipeline\'s 4 tables', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const project = await newProject();
  t.after(() => rm(project.cwd, { recursive: true, force: true }));
  const dump = path.join(project.cwd, 'dump', 'wappizy');
  await writeDump(dump, sampleCollections());
  const model = await loadPipeline(project.pipelineFile);
  await createTables(url, model);
  const { runId } = await runExtract({ model, stagingDir: project.stagingDir, source: { kind: 'dump', path: dump }, full: true });
  await runTransform({ model, stagingDir: project.stagingDir, runId, tables: ['users'] });
  await runLoad({ model, stagingDir: project.stagingDir, runId, postgres: { connectionString: url, host: '', port: 0, database: '', user: '', password: null } });
  const run = { ...project, runId, paths: runPaths(project.stagingDir, runId) };
  for (const env of [{}, { DATABASE_URL: url }] as Record<string, string>[]) {
    const { line, entry } = listed(run, env);
    assert.match(line, /\byes \(1 of 4 pipeline tables\)\s*$/, `${JSON.stringify(Object.keys(env))}: ${line}`);
    assert.deepEqual([entry.loaded, entry.tables, entry.loaded_tables, entry.pipeline_tables], [true, 1, 1, 4]);
  }
});

test('verify: load figures edited in the manifest (one more row inserted than staged) are named, table and identity', async (t) => {
  const { run } = await loadedRealRun(t);
  const before = etlSync(['verify', run.paths.dir, '--json'], { cwd: run.cwd });
  assert.equal(before.code, 0, before.stdout + before.stderr);
  const holds = (JSON.parse(before.stdout) as VerifyReport).identities.filter((i) => i.name.startsWith('load: staged = inserted'));
  assert.ok(holds.length >= 3 && holds.every((i) => i.ok), JSON.stringify(holds));

  const manifestFile = path.join(run.paths.dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
  manifest.stages.load.tables.users.inserted += 1;
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  const after = etlSync(['verify', run.paths.dir], { cwd: run.cwd });
  assert.equal(after.code, 1, after.stdout + after.stderr);
  assert.match(after.stdout, /\[count\] table users: expected load: staged = inserted \+ updated \+ unchanged \+ rejected \+ duplicates/);
});
