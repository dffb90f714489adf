// `etl transform --tables users` on a run already transformed in full (an operator redoing one
// table): the run's transform section, the files of its transform folder and what `etl load` loads
// must agree, so `etl verify` (folder and archive) passes, load loads every table and `etl runs` says
// so. When the earlier transform cannot be kept (made with another pipeline.yaml), its other
// tables' files go with their records, and the command says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import type { VerifyReport } from '../../audit/verify.ts';
import type { RunsReport } from '../../audit/runs.ts';
import { realRun, type RealRun } from './staged-run.ts';
import { etlSync, startEtl } from '../harness/cli.ts';
import { createTables, withClient } from '../harness/schema.ts';

const servers = useServers({ mongo: false });

const ALL = ['users', 'events', 'users_events', 'users_logbook'];

function etlOk(run: RealRun, args: string[], env: Record<string, string> = {}) {
  const r = etlSync(args, { cwd: run.cwd, env });
  assert.equal(r.code, 0, `etl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r;
}

function verifies(run: RealRun, target: string): VerifyReport {
  const r = etlSync(['verify', target, '--json'], { cwd: run.cwd });
  const report = JSON.parse(r.stdout) as VerifyReport;
  assert.deepEqual(report.mismatches, [], `etl verify ${target}`);
  assert.equal(r.code, 0, r.stderr);
  return report;
}

test('a subset re-transform keeps the other tables: verify passes on the folder and the archive, load loads every table, runs says so', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const before = await readManifest(run.paths);

  const redone = etlOk(run, ['transform', '--tables', 'users']);
  const v = verifies(run, run.paths.dir);
  assert.equal(v.retransform.tables, 4);
  const packed = JSON.parse(etlOk(run, ['pack', '--json']).stdout);
  verifies(run, packed.archive);

  const model = await loadPipeline(run.pipelineFile);
  await createTables(url, model);
  etlOk(run, ['load'], { DATABASE_URL: url });
  const counts = await withClient(url, async (c) => {
    const out: Record<string, number> = {};
    for (const table of ALL) out[table] = Number((await c.query(`SELECT count(*) AS n FROM "${table}"`)).rows[0].n);
    return out;
  });
  // Every table of the run is in PostgreSQL (users_events loses the links of user 3, rejected by transform).
  assert.deepEqual(counts, { users: 3, events: 3, users_events: 3, users_logbook: 2 });
  const runs = JSON.parse(etlOk(run, ['runs', '--json'], { DATABASE_URL: url }).stdout) as RunsReport;
  const entry = runs.runs[0]!;
  assert.equal(entry.loaded, true);
  assert.equal(entry.tables, 4);
  assert.equal(entry.loaded_tables, 4);
  const section = (await readManifest(run.paths)).stages.transform!;
  assert.equal(entry.rows, ALL.reduce((a, table) => a + section.tables[table]!.rows, 0));

  // The section is the earlier one with users' record redone (the same bytes: same documents, same mapping).
  assert.equal(section.status, 'done');
  assert.deepEqual(Object.keys(section.tables), ALL);
  assert.deepEqual(section.tables_kept, ['events', 'users_events', 'users_logbook']);
  for (const table of ALL) assert.deepEqual(section.tables[table]!.csv, before.stages.transform!.tables[table]!.csv, `${table}: the same file`);
  assert.match(redone.stdout, /^kept from the run's earlier transform \(etl load loads them too\): events, users_events, users_logbook$/m);
  const json = JSON.parse(etlOk(run, ['transform', '--tables', 'users', '--json']).stdout);
  assert.deepEqual(json.tables.map((r: { table: string }) => r.table), ['users']);
  assert.deepEqual(json.kept, ['events', 'users_events', 'users_logbook']);
  verifies(run, run.paths.dir);
  // The report's transform times are the redo's: it says so.
  etlOk(run, ['report', '--no-ledger']);
  const html = await readFile(path.join(run.paths.dir, 'report.html'), 'utf8');
  assert.match(html, /<tr data-key="transform"><td data-field="stage">transform<\/td><td data-field="status">done \(--tables: 1 of 4 table\(s\) redone; 3 kept from an earlier transform of the run\)<\/td>/);
});

test('a subset re-transform with another pipeline.yaml removes the other tables\' files with their records, and says so', async (t) => {
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  await appendFile(run.pipelineFile, '# edited after the run was transformed\n');

  const redone = etlOk(run, ['transform', '--tables', 'users', '--allow-pipeline-change']);
  const m = await readManifest(run.paths);
  assert.deepEqual(Object.keys(m.stages.transform!.tables), ['users']);
  assert.equal(m.stages.transform!.tables_kept, undefined);
  assert.deepEqual((await readdir(run.paths.transformDir)).sort(), ['users.csv', 'users.keys.csv', 'users.rejects.ndjson']);
  assert.match(redone.stdout, /^removed the files of the run's earlier transform of events, users_events, users_logbook: the earlier transform used another pipeline\.yaml \(sha256 [0-9a-f]{64}\); transform them again \(--tables\) for etl load to load them from this run$/m);
});

test('a subset re-transform of a run extracted with --tables keeps what the section said of the tables the run does not hold', async (t) => {
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  etlOk(run, ['extract', '--full', '--tables', 'users', '--source', path.join(run.cwd, 'dump', 'wappizy')]);
  etlOk(run, ['transform']);
  const runDir = path.join(run.stagingDir, (await readFile(path.join(run.stagingDir, 'latest'), 'utf8')).trim());
  etlOk(run, ['transform', '--tables', 'users_events']);
  verifies(run, runDir);
  const section = JSON.parse(await readFile(path.join(runDir, 'manifest.json'), 'utf8')).stages.transform;
  assert.deepEqual(Object.keys(section.tables), ['users', 'users_events']);
  assert.deepEqual(section.tables_kept, ['users']);
  assert.deepEqual(section.not_extracted, ['events', 'users_logbook']);
});

test('a subset re-transform that failed, done again, still keeps the tables it had kept (not the ones a failed transform wrote)', async (t) => {
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  const users = path.join(run.paths.dir, 'extract', 'users.ndjson');
  const staged = await readFile(users);
  await appendFile(users, '{"_id":"damage"}\n');
  const failed = etlSync(['transform', '--tables', 'users'], { cwd: run.cwd });
  assert.equal(failed.code, 1, failed.output);
  const section = (await readManifest(run.paths)).stages.transform!;
  assert.deepEqual([section.status, section.tables_kept], ['failed', ['events', 'users_events', 'users_logbook']]);

  await writeFile(users, staged);
  const redone = etlOk(run, ['transform', '--tables', 'users']);
  assert.match(redone.stdout, /^kept from the run's earlier transform \(etl load loads them too\): events, users_events, users_logbook$/m);
  assert.deepEqual(Object.keys((await readManifest(run.paths)).stages.transform!.tables), ALL);
  verifies(run, run.paths.dir);
});

test('a subset transformed after a full transform that was killed leaves no file of that one beside its own: verify passes', async (t) => {
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  etlOk(run, ['extract', '--full', '--source', path.join(run.cwd, 'dump', 'wappizy')]);
  const runDir = path.join(run.stagingDir, (await readFile(path.join(run.stagingDir, 'latest'), 'utf8')).trim());
  const transformDir = path.join(runDir, 'transform');
  // events.ndjson a named pipe nobody writes: the transform blocks there, having written the other collections' tables.
  const events = path.join(runDir, 'extract', 'events.ndjson');
  const staged = await readFile(events);
  await rm(events);
  execFileSync('mkfifo', [events]);
  const transform = startEtl(['transform'], { cwd: run.cwd, timeoutMs: 60_000 });
  const users = path.join(transformDir, 'users.csv');
  while (!(await stat(users).then(() => true, () => false))) await sleep(20);
  await sleep(200);
  transform.kill('SIGKILL');
  assert.equal((await transform.done).signal, 'SIGKILL');
  const written = (await readdir(transformDir)).sort();
  await rm(events);
  await writeFile(events, staged);

  etlOk(run, ['transform', '--tables', 'users_events']);
  assert.deepEqual(Object.keys((await readManifest(runPaths(run.stagingDir, path.basename(runDir)))).stages.transform!.tables), ['users_events']);
  assert.deepEqual((await readdir(transformDir)).sort(), ['users_events.csv', 'users_events.keys.csv', 'users_events.rejects.ndjson'], `the killed transform had written ${written.join(', ')}`);
  verifies(run, runDir);
});
