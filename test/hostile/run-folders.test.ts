// Names that would lead a stage out of the staging folder are refused by the first stage that sees
// them: a `latest` file or a --run holding a path, table and collection names that cannot be file
// names (validate, with the line); and `etl clean` says what it really freed for a linked run.
import assert from 'node:assert/strict';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cleanRuns } from '../../audit/clean.ts';
import { DEFAULT_STAGING } from '../../connect/config.ts';
import { runLoad } from '../../load/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { StagingError, UsageError } from '../../errors/etl-error.ts';
import { runTransform } from '../../transform/index.ts';
import { updateManifest } from '../../staging/manifest.ts';
import { runPaths, setLatest } from '../../staging/run-folder.ts';
import { etlSync } from '../harness/cli.ts';
import { PIPELINE_YAML, realRun, type RealRun } from '../audit/staged-run.ts';

let run: RealRun;
let root: string;
before(async () => {
  run = await realRun();
  root = await mkdtemp(path.join(os.tmpdir(), 'etl-hostile-runs-'));
});
after(async () => {
  await rm(run.cwd, { recursive: true, force: true });
  await rm(root, { recursive: true, force: true });
});

/** A project whose staging folder is empty but whose `latest` may point anywhere, and a run folder elsewhere. */
async function projectWithRunElsewhere(): Promise<{ cwd: string; stagingDir: string; elsewhere: string }> {
  const cwd = await mkdtemp(path.join(root, 'project-'));
  await writeFile(path.join(cwd, 'pipeline.yaml'), PIPELINE_YAML);
  // The default staging folder of a project (connect/config.ts DEFAULT_STAGING).
  const stagingDir = path.join(cwd, DEFAULT_STAGING);
  await mkdir(stagingDir, { recursive: true });
  const elsewhere = path.join(cwd, 'elsewhere');
  await cp(run.paths.dir, path.join(elsewhere, run.runId), { recursive: true });
  // An extracted run, not yet transformed: transform would write into it.
  await updateManifest(runPaths(elsewhere, run.runId), (m) => {
    delete m.stages.transform;
  });
  await rm(path.join(elsewhere, run.runId, 'transform'), { recursive: true });
  await mkdir(path.join(elsewhere, run.runId, 'transform'));
  return { cwd, stagingDir, elsewhere };
}

const OFFLINE = { connectionString: 'postgresql://etl@127.0.0.1:1/none', host: '', port: 0, database: '', user: '', password: null };

describe('run ids have a strict shape', () => {
  test('`latest` holding ../../elsewhere/<run>: transform and load refuse; nothing is written there', async () => {
    const p = await projectWithRunElsewhere();
    await writeFile(path.join(p.stagingDir, 'latest'), `../elsewhere/${run.runId}\n`);
    const r = etlSync(['transform'], { cwd: p.cwd });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\.etl\/runs\/latest does not name a run: it holds "\.\.\/elsewhere\/\d{8}T\d{9}Z", expected a run id/);
    assert.deepEqual(await readdir(path.join(p.elsewhere, run.runId, 'transform')), [], 'transform wrote nothing elsewhere');

    const model = await loadPipeline(path.join(p.cwd, 'pipeline.yaml'));
    await assert.rejects(runTransform({ model, stagingDir: p.stagingDir }), (e: unknown) => e instanceof StagingError && e.code === 'bad_latest');
    await assert.rejects(runLoad({ model, stagingDir: p.stagingDir, postgres: OFFLINE }), (e: unknown) => e instanceof StagingError && e.code === 'bad_latest');
  });

  test('--run ../../elsewhere/<run>: a usage error (exit 2) for transform, load and pack', async () => {
    const p = await projectWithRunElsewhere();
    const sneaky = `../elsewhere/${run.runId}`;
    for (const command of ['transform', 'load', 'pack']) {
      const r = etlSync([command, '--run', sneaky], { cwd: p.cwd, env: { DATABASE_URL: 'postgresql://etl@127.0.0.1:1/none' } });
      assert.equal(r.code, 2, `${command}: ${r.stderr}`);
      assert.match(r.stderr, /--run must be a run id such as 20261124T101500123Z \(or latest\), got "\.\.\/elsewhere\//, command);
    }
    assert.deepEqual(await readdir(path.join(p.elsewhere, run.runId, 'transform')), []);
    const model = await loadPipeline(path.join(p.cwd, 'pipeline.yaml'));
    await assert.rejects(runTransform({ model, stagingDir: p.stagingDir, runId: path.join(p.elsewhere, run.runId) }), (e: unknown) => e instanceof UsageError && e.code === 'bad_run_id');
  });

  test('setLatest refuses what is not a run id', async () => {
    await assert.rejects(setLatest(root, '../x'), (e: unknown) => e instanceof StagingError);
  });
});

describe('table and collection names that cannot be file names', () => {
  test('etl validate reports each with its line (exit 2), before transform could refuse it', async () => {
    const cwd = await mkdtemp(path.join(root, 'names-'));
    const yaml = PIPELINE_YAML.replace('  events:\n    include_base: true', '  events:\n    mongo_collection: ../events\n    include_base: true').replace(
      '  users_logbook:\n',
      '  "users/logbook":\n',
    );
    await writeFile(path.join(cwd, 'pipeline.yaml'), yaml);
    const lines = yaml.split('\n');
    const lineOf = (text: string) => lines.findIndex((l) => l.includes(text)) + 1;
    const r = etlSync(['validate'], { cwd });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const out = r.stdout + r.stderr;
    assert.match(out, new RegExp(`pipeline\\.yaml:${lineOf('mongo_collection: ../events')}:\\d+ tables\\.events\\.mongo_collection: mongo_collection "\\.\\./events" cannot be used: it starts with "\\."`));
    assert.match(out, new RegExp(`pipeline\\.yaml:${lineOf('"users/logbook":')}:\\d+ tables\\.users/logbook: table name "users/logbook" cannot be used: it holds "/"`));
  });
});

describe('etl clean and a run that is a link', () => {
  test('the link is removed, its target is left, and no space is said to be freed', async () => {
    const stagingDir = await mkdtemp(path.join(root, 'staging-'));
    const elsewhere = await mkdtemp(path.join(root, 'elsewhere-'));
    // Two loaded runs: the older one may go. It lives elsewhere, linked into the staging folder.
    const older = '20240101T000000000Z';
    const newer = '20240102T000000000Z';
    for (const id of [older, newer]) {
      await cp(run.paths.dir, path.join(stagingDir, id), { recursive: true });
      await updateManifest(runPaths(stagingDir, id), (m) => {
        m.run_id = id;
        m.stages.load = { status: 'done', started_at: '2024-01-01T00:00:00.000Z', ended_at: '2024-01-01T00:00:01.000Z', dry_run: false, already_applied: false, tables: {} };
      });
    }
    await rename(path.join(stagingDir, older), path.join(elsewhere, older));
    await symlink(path.join(elsewhere, older), path.join(stagingDir, older));
    await setLatest(stagingDir, newer);

    const report = await cleanRuns({ stagingDir });
    assert.deepEqual(report.removed.map((r) => r.run_id), [older]);
    assert.equal(report.removed[0]!.bytes, 0);
    assert.equal(report.freed_bytes, 0);
    assert.match(report.removed[0]!.reason, /it is a link to .*: only the link is removed, the folder it points to is left \(nothing freed\)/);
    await assert.rejects(lstat(path.join(stagingDir, older)), 'the link is gone');
    assert.ok((await readFile(path.join(elsewhere, older, 'manifest.json'), 'utf8')).length > 0, 'the target is intact');
  });
});
