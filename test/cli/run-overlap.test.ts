// `etl run` overlaps its stages (a collection is transformed while the next one is extracted), yet
// stages exactly what `etl extract && etl transform && etl load` stage: the same files, byte for
// byte (sha256 of every file of the run folder), and the same manifest sections, timestamps and
// durations aside. Checked on the sample, from a dump and from a live server (FerretDB).
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl, REPO, startEtl, useSampleDump } from '../harness/cli.ts';
import { runFiles, withoutTimes } from './run-compare.ts';

const servers = useServers();
const PIPELINE = path.join(REPO, 'pipeline.yaml');

const dumped = useSampleDump('etl-run-overlap-', 2000);

interface Staged {
  readonly runDir: string;
  readonly files: Record<string, string>;
  readonly manifest: Record<string, unknown>;
}

async function staged(staging: string, runId: string): Promise<Staged> {
  const runDir = path.join(staging, runId);
  return { runDir, files: await runFiles(runDir), manifest: JSON.parse(await readFile(path.join(runDir, 'manifest.json'), 'utf8')) as Record<string, unknown> };
}

/** `etl run` and the three commands, each into its own staging folder and empty database. */
async function bothWays(name: string, source: readonly string[]): Promise<{ run: Staged; stages: Staged; databases: [string, string] }> {
  const runDb = `${name}_run`;
  const stagesDb = `${name}_stages`;
  const [runUrl, stagesUrl] = [await servers.postgres.createDatabase(runDb), await servers.postgres.createDatabase(stagesDb)];
  const runStaging = path.join(dumped.work, `${name}-run`);
  const stagesStaging = path.join(dumped.work, `${name}-stages`);
  const common = ['--pipeline', PIPELINE, '--json'];

  const run = await etl(['run', ...source, '--full', '--staging', runStaging, ...common], { cwd: dumped.work, env: { DATABASE_URL: runUrl } });
  assert.equal(run.code, 0, run.stderr);
  const runId = (JSON.parse(run.stdout) as { runId: string }).runId;

  const env = { DATABASE_URL: stagesUrl };
  const extract = await etl(['extract', ...source, '--full', '--staging', stagesStaging, ...common], { cwd: dumped.work, env });
  assert.equal(extract.code, 0, extract.stderr);
  const stagesId = (JSON.parse(extract.stdout) as { runId: string }).runId;
  for (const stage of ['transform', 'load']) {
    const r = await etl([stage, '--staging', stagesStaging, ...common], { cwd: dumped.work, env });
    assert.equal(r.code, 0, `${stage}: ${r.stderr}`);
  }
  return { run: await staged(runStaging, runId), stages: await staged(stagesStaging, stagesId), databases: [runDb, stagesDb] };
}

function assertSameStaging(a: Staged, b: Staged, databases: readonly string[]): void {
  assert.ok(Object.keys(a.files).filter((f) => f.startsWith('transform/')).length >= 3 * 31, 'every table staged its files');
  assert.deepEqual(a.files, b.files, 'the same files, byte for byte');
  for (const stage of ['extract', 'transform', 'load']) {
    const sections = [a, b].map((s) => (s.manifest.stages as Record<string, unknown>)[stage]);
    assert.ok(sections[0], `a ${stage} section`);
    assert.deepEqual(withoutTimes(sections[0], ...databases), withoutTimes(sections[1], ...databases), `the ${stage} section`);
  }
  const { stages: _a, ...restA } = a.manifest;
  const { stages: _b, ...restB } = b.manifest;
  assert.deepEqual(withoutTimes(restA, ...databases), withoutTimes(restB, ...databases));
}

interface Sections {
  readonly extract: { ended_at: string; collections: Record<string, unknown> };
  readonly transform: { started_at: string; tables: Record<string, { collection: string; csv: { file: string } }> };
}

test('etl run of a dump stages the files and manifest of extract, transform and load run one after the other', async () => {
  const { run, stages, databases } = await bothWays('overlap_dump', ['--source', dumped.dump]);
  assertSameStaging(run, stages, databases);
  // The stages overlapped: the first collection's tables were staged before the last collection was.
  const { extract, transform } = run.manifest.stages as Sections;
  assert.ok(transform.started_at < extract.ended_at, `transform started ${transform.started_at}, before the extract ended ${extract.ended_at}`);
  const collections = Object.keys(extract.collections);
  const firstCsv = Object.values(transform.tables).find((t) => t.collection === collections[0])!.csv.file;
  const mtime = async (file: string) => (await stat(path.join(run.runDir, file))).mtimeMs;
  const lastExtract = `extract/${collections.at(-1)}.ndjson`;
  assert.ok((await mtime(firstCsv)) < (await mtime(lastExtract)), `${firstCsv} was complete before ${lastExtract}`);
  // The comparison sees one byte changed anywhere, the manifest left as it is.
  const users = path.join(run.runDir, 'transform', 'users.csv');
  const bytes = await readFile(users);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 2) ^ 1, bytes.length - 2);
  await writeFile(users, bytes);
  const changed = { ...run, files: await runFiles(run.runDir) };
  assert.throws(() => assertSameStaging(changed, stages, databases), /the same files, byte for byte/);
});

test('etl run of a live server stages the files and manifest of extract, transform and load run one after the other', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const sample = await etl(['sample', '--scale', '1000', '--mongo-url', mongo.url, '--db', mongo.name, '--quiet'], { cwd: dumped.work });
  assert.equal(sample.code, 0, sample.stderr);
  const { run, stages, databases } = await bothWays('overlap_live', ['--source', mongo.url, '--mongo-db', mongo.name]);
  assertSameStaging(run, stages, databases);
});

/** What an error says, wherever the run folder is. */
const errorLines = (stderr: string, staging: string) =>
  stderr
    .split('\n')
    .filter((l) => /^(error|hint):/.test(l))
    .map((l) => l.replaceAll(staging, '<staging>').replace(/\d{8}T\d{9}Z/g, '<run>'));

async function onlyRun(staging: string): Promise<Staged> {
  const ids = (await readdir(staging)).filter((n) => /^\d{8}T\d{9}Z$/.test(n));
  assert.equal(ids.length, 1, `one run in ${staging}`);
  return staged(staging, ids[0]!);
}

test('an extract failing on a corrupt .bson leaves what etl extract leaves: no transform file, no transform section, the same error', async () => {
  const damaged = path.join(dumped.work, 'damaged');
  await cp(dumped.dump, damaged, { recursive: true });
  // users is the 12th collection read: the transform of those before it is done by then.
  const file = path.join(damaged, 'wappizy', 'users.bson');
  const bytes = await readFile(file);
  bytes.writeInt32LE(-5, bytes.readInt32LE(0) + bytes.readInt32LE(bytes.readInt32LE(0)));
  await writeFile(file, bytes);
  const runStaging = path.join(dumped.work, 'damaged-run');
  const extractStaging = path.join(dumped.work, 'damaged-extract');
  const url = await servers.postgres.createDatabase('overlap_damaged');
  const flags = ['--source', damaged, '--full', '--pipeline', PIPELINE];
  const run = await etl(['run', ...flags, '--staging', runStaging], { cwd: dumped.work, env: { DATABASE_URL: url } });
  const extract = await etl(['extract', ...flags, '--staging', extractStaging], { cwd: dumped.work, env: { DATABASE_URL: url } });
  assert.equal(extract.code, 1, extract.stderr);
  assert.match(extract.stderr, /users\.bson/);
  assert.equal(run.code, 1, run.stderr);
  assert.deepEqual(errorLines(run.stderr, runStaging), errorLines(extract.stderr, extractStaging));

  const [a, b] = [await onlyRun(runStaging), await onlyRun(extractStaging)];
  assert.deepEqual(await readdir(path.join(a.runDir, 'transform')), [], 'no transform file');
  assert.deepEqual(a.files, b.files);
  const stages = a.manifest.stages as Record<string, { status: string }>;
  assert.deepEqual(Object.keys(stages), ['extract']);
  assert.equal(stages.extract!.status, 'failed');
  assert.deepEqual(withoutTimes(a.manifest, runStaging), withoutTimes(b.manifest, extractStaging));
  assert.equal((await readFile(path.join(runStaging, 'latest')).catch(() => null)), null, 'latest not set');
});

test('Ctrl-C while extracting leaves what an interrupted etl extract leaves: no transform file, no transform section', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const sample = await etl(['sample', '--scale', '3000', '--mongo-url', mongo.url, '--db', mongo.name, '--quiet'], { cwd: dumped.work });
  assert.equal(sample.code, 0, sample.stderr);
  const staging = path.join(dumped.work, 'interrupted');
  const url = await servers.postgres.createDatabase('overlap_interrupted');
  const started = startEtl(['run', '--source', mongo.url, '--mongo-db', mongo.name, '--full', '--staging', staging, '--pipeline', PIPELINE], { cwd: dumped.work, env: { DATABASE_URL: url } });
  // Interrupted once a few collections are staged and some transformed, before the last one is.
  const manifest = async () => {
    const ids = await readdir(staging).catch(() => []);
    const id = ids.find((n) => /^\d{8}T\d{9}Z$/.test(n));
    return id ? (JSON.parse(await readFile(path.join(staging, id, 'manifest.json'), 'utf8').catch(() => '{}')) as { stages?: Sections }) : {};
  };
  for (;;) {
    const m = await manifest();
    const transformed = m.stages ? (await readdir(path.join(staging, (await readdir(staging)).find((n) => /^\d{8}T\d{9}Z$/.test(n))!, 'transform'))).length : 0;
    if (Object.keys(m.stages?.extract?.collections ?? {}).length >= 3 && transformed > 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  started.kill('SIGINT');
  const r = await started.done;
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /interrupted/);
  const run = await onlyRun(staging);
  const stages = run.manifest.stages as Record<string, { status: string; error: { code: string } }>;
  assert.deepEqual(Object.keys(stages), ['extract'], 'no transform section');
  assert.equal(stages.extract!.status, 'failed');
  assert.equal(stages.extract!.error.code, 'interrupted');
  assert.deepEqual(await readdir(path.join(run.runDir, 'transform')), [], 'no transform file');
});

test('Ctrl-C while loading leaves what an interrupted etl load leaves: the load recorded failed (interrupted), nothing applied, not "killed"', async () => {
  const staging = path.join(dumped.work, 'interrupted-load');
  const url = await servers.postgres.createDatabase('overlap_interrupted_load');
  const schema = await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: dumped.work, env: { DATABASE_URL: url } });
  assert.equal(schema.code, 0, schema.stderr);
  // Another session holds a table the load writes, so the load is surely under way when Ctrl-C comes.
  const blocker = new pg.Client({ connectionString: url });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE users_logbook IN ACCESS EXCLUSIVE MODE');
    const started = startEtl(['run', '--source', dumped.dump, '--full', '--staging', staging, '--pipeline', PIPELINE], { cwd: dumped.work, env: { DATABASE_URL: url } });
    let ended = false;
    void started.done.then(() => (ended = true));
    for (;;) {
      // pg_stat_activity is read once per transaction: the blocker's, open, would see it frozen.
      await blocker.query('SELECT pg_stat_clear_snapshot()');
      const waiting = await blocker.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
      if (waiting.rowCount! > 0) break;
      assert.equal(ended, false, `etl run ended before it waited for the lock:\n${started.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    started.kill('SIGINT');
    const r = await started.done;
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, /interrupted by SIGINT/);
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
  const run = await onlyRun(staging);
  const stages = run.manifest.stages as Record<string, { status: string; error: { code: string } | null }>;
  assert.equal(stages.transform!.status, 'done');
  assert.equal(stages.load!.status, 'failed', 'the load is recorded failed, as etl load records an interrupted load');
  assert.equal(stages.load!.error!.code, 'interrupted');
  assert.deepEqual(await readdir(path.join(run.runDir, 'load')).catch(() => []), [], 'no rejects file of the rolled-back load');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    assert.equal((await db.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 0, 'nothing applied');
  } finally {
    await db.end();
  }
  const status = await etl(['status', '--staging', staging, '--pipeline', PIPELINE], { cwd: dumped.work, env: { DATABASE_URL: url } });
  assert.doesNotMatch(status.stdout, /killed/, status.stdout);
  assert.match(status.stdout, /load failed/, status.stdout);
});
