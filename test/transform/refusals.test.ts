// What transform refuses, and how the command says it: an extract that did not finish, a pipeline
// that changed since the extract, a damaged extract file, an unknown table; exit codes of the CLI.
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ObjectId } from 'bson';
import { EtlError } from '../../errors/etl-error.ts';
import { spawnSync } from 'node:child_process';
import { readManifest, updateManifest } from '../../staging/manifest.ts';
import { runTransform } from '../../transform/index.ts';
import { PIPELINE_FILE, pipelineModel, stageRun, removeStagedRuns } from './staged-run.ts';
import { etl as run, type CliResult } from '../harness/cli.ts';

after(removeStagedRuns);

const ROOT = new URL('../../', import.meta.url).pathname;
const company = (n: number) => ({ _id: new ObjectId(`67000000000000000000000${n}`), creation_date: new Date('2024-01-01T00:00:00Z'), update_date: new Date('2024-01-02T00:00:00Z'), name: `C${n}` });

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<EtlError> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof EtlError, String(error));
  assert.equal(error.code, code, error.message);
  return error;
}

function etl(args: string[], cwd = ROOT): Promise<CliResult> {
  return run(args, { cwd });
}

describe('refusals', () => {
  test('an extract that is not done: refused, nothing written, the message names the run', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1)] }, { extractStatus: 'running' });
    const error = await rejectsWith(runTransform({ model, stagingDir: run.stagingDir }), 'stage_not_done');
    assert.match(error.message, new RegExp(run.paths.runId));
    assert.match(error.hint ?? '', /etl extract/);
    assert.equal((await readManifest(run.paths)).stages.transform, undefined);
  });

  test('an extract whose process was killed: refused saying so, and what recovers the run', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1)] }, { extractStatus: 'running' });
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    await updateManifest(run.paths, (m) => {
      m.stages.extract!.writer = { pid: gone, host: os.hostname() };
    });
    const error = await rejectsWith(runTransform({ model, stagingDir: run.stagingDir }), 'stage_not_done');
    assert.equal(error.message, `extract of run ${run.paths.runId} was killed (its process is gone): its files are not complete`);
    assert.match(error.hint ?? '', /the next `etl run`\/`etl extract` reads its documents again/);
    assert.equal((await readManifest(run.paths)).stages.extract!.status, 'running', 'the manifest is left as it was');
  });

  test('a pipeline.yaml changed since the extract: refused naming both hashes, unless allowed', async () => {
    const model = await pipelineModel();
    const old = 'f'.repeat(64);
    const run = await stageRun(model, { companies: [company(1)] }, { pipelineSha256: old });
    const error = await rejectsWith(runTransform({ model, stagingDir: run.stagingDir }), 'pipeline_changed');
    assert.match(error.message, new RegExp(old));
    assert.match(error.message, new RegExp(model.sha256));
    assert.match(error.hint ?? '', /--allow-pipeline-change/);

    const report = await runTransform({ model, stagingDir: run.stagingDir, allowPipelineChange: true });
    assert.equal(report.pipelineChanged, true);
    const section = (await readManifest(run.paths)).stages.transform!;
    assert.equal(section.status, 'done');
    assert.equal(section.pipeline_sha256, model.sha256);
    assert.equal(section.pipeline_changed, true);
  });

  test('an extract file that is not the one the manifest describes: refused, the section marked failed', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1), company(2)] });
    await appendFile(run.paths.extractFile('companies'), `${JSON.stringify({ _id: { $oid: '670000000000000000000009' } })}\n`);
    const error = await rejectsWith(runTransform({ model, stagingDir: run.stagingDir }), 'extract_mismatch');
    // The one wording every staged extract file's check uses (documents, ids, requested, recompute keys).
    assert.match(
      error.message,
      /^extract\/companies\.ndjson of run \S+ is not the file the extract manifest describes: read 3 records, \d+ bytes, sha256 [0-9a-f]{64}; the manifest says 2 records, \d+ bytes, sha256 [0-9a-f]{64}$/,
    );
    assert.equal(error.context.file, run.paths.extractFile('companies'));
    assert.equal(error.context.collection, 'companies');
    assert.match(error.hint ?? '', /etl extract.*etl repair/);
    const section = (await readManifest(run.paths)).stages.transform!;
    assert.equal(section.status, 'failed');
    assert.equal(section.error?.code, 'extract_mismatch');
    // No half-written file is left behind, under its final name or as a .partial.
    await assert.rejects(readFile(run.paths.transformCsv('companies')));
    await assert.rejects(readFile(`${run.paths.transformCsv('companies')}.partial`));
  });

  test('an extract file removed from the run, or a folder in its place: missing_extract_file naming it, the section marked failed', async () => {
    const model = await pipelineModel();
    for (const replace of [false, true]) {
      const run = await stageRun(model, { companies: [company(1), company(2)] });
      const file = run.paths.extractFile('companies');
      await rm(file);
      if (replace) await mkdir(file);
      const error = await rejectsWith(runTransform({ model, stagingDir: run.stagingDir }), 'missing_extract_file');
      assert.equal(error.message, `run ${run.paths.runId} ${replace ? 'has a folder, not a file, at' : 'has no'} extract/companies.ndjson`);
      assert.equal(error.context.file, file);
      assert.match(error.hint ?? '', /etl extract/);
      const section = (await readManifest(run.paths)).stages.transform!;
      assert.equal(section.status, 'failed');
      assert.equal(section.error?.code, 'missing_extract_file');
    }
  });

  test('etl transform of a run another live etl process is transforming or loading: refused (stage_running), its files untouched; a dead writer does not hold it', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1), company(2)] });
    const section = (pid: number) => ({ status: 'running' as const, started_at: '2026-12-06T10:00:00.000Z', ended_at: null, writer: { pid, host: os.hostname() } });
    for (const stage of ['transform', 'load'] as const) {
      // This test's process is alive and is not the etl child: the other writer.
      await updateManifest(run.paths, (m) => void Object.assign(m.stages, { [stage]: section(process.pid) }));
      const r = await etl(['transform', '--run', run.paths.runId, '--staging', run.stagingDir, '--pipeline', PIPELINE_FILE]);
      assert.equal(r.code, 1, r.output);
      assert.match(r.stderr, new RegExp(`^error: transform of run ${run.paths.runId} cannot start: its ${stage} is running in another etl process \\(pid ${process.pid}, since 2026-12-06T10:00:00.000Z\\)`, 'm'));
      assert.match(r.stderr, /\[stage_running\]/);
      const m = await readManifest(run.paths);
      assert.equal(m.stages[stage]!.status, 'running', 'its section untouched');
      await updateManifest(run.paths, (x) => void delete x.stages[stage]);
    }
    // A writer whose process is gone was killed: the transform goes ahead.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    await updateManifest(run.paths, (m) => void Object.assign(m.stages, { transform: section(gone) }));
    const ok = await etl(['transform', '--run', run.paths.runId, '--staging', run.stagingDir, '--pipeline', PIPELINE_FILE]);
    assert.equal(ok.code, 0, ok.output);
  });

  test('--tables: a subset; an unknown table is a usage error; a table whose collection was not extracted is refused', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1)], targets: [] });
    const report = await runTransform({ model, stagingDir: run.stagingDir, tables: ['companies'] });
    assert.deepEqual(report.tables.map((t) => t.table), ['companies']);
    const error = await rejectsWith(runTransform({ model, stagingDir: run.stagingDir, tables: ['nope'] }), 'unknown_table');
    assert.equal(error.exitCode, 2);
    await rejectsWith(runTransform({ model, stagingDir: run.stagingDir, tables: ['users'] }), 'not_extracted');
    // Without --tables, tables of collections not in the run are listed, not an error.
    const all = await runTransform({ model, stagingDir: run.stagingDir });
    assert.deepEqual(all.tables.map((t) => t.table), ['companies', 'targets']);
    assert.ok(all.notExtracted.includes('users'));
  });
});

describe('etl transform (CLI)', () => {
  test('exit 0 with a summary table; --json prints the report only', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1), company(2)] });
    const plain = await etl(['transform', '--staging', run.stagingDir, '--pipeline', PIPELINE_FILE]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^table\s+documents\s+rows\s+rejected\s+skipped$/m);
    assert.match(plain.stdout, /^companies\s+2\s+2\s+0\s+0$/m);
    const json = await etl(['transform', '--staging', run.stagingDir, '--run', run.paths.runId, '--pipeline', PIPELINE_FILE, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const body = JSON.parse(json.stdout) as { ok: boolean; runId: string; tables: { table: string; rows: number }[] };
    assert.equal(body.ok, true);
    assert.equal(body.runId, run.paths.runId);
    assert.equal(typeof (body as { durationMs?: unknown }).durationMs, 'number', 'durationMs, as the first releases printed it');
    assert.deepEqual(body.tables.map((t) => [t.table, t.rows]), [['companies', 2]]);
  });

  test('exit 1 for an unfinished extract, naming the run and what to do', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1)] }, { extractStatus: 'failed' });
    const r = await etl(['transform', '--staging', run.stagingDir, '--pipeline', PIPELINE_FILE]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`extract of run ${run.paths.runId} is "failed"`));
    assert.match(r.stderr, /hint: .*etl extract/);
  });

  test('etl load of a run never transformed: the hint gives the command that makes it whole, not "again"', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1)] });
    const r = await etl(['load', '--staging', run.stagingDir, '--pipeline', PIPELINE_FILE, '--database-url', 'postgresql://etl@127.0.0.1:1/x']);
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, new RegExp(`^error: transform of run ${run.paths.runId} never ran: .*\\[stage_not_done\\]$`, 'm'));
    assert.match(r.stderr, new RegExp(`^hint: run \`etl transform --run ${run.paths.runId}\` first, then load it$`, 'm'));
  });

  test('exit 1 for a changed pipeline; exit 2 for a bad flag or an unknown table', async () => {
    const model = await pipelineModel();
    const run = await stageRun(model, { companies: [company(1)] });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-changed-'));
    const changed = path.join(dir, 'pipeline.yaml');
    await writeFile(changed, `${await readFile(PIPELINE_FILE, 'utf8')}\n# edited\n`);
    const r = await etl(['transform', '--staging', run.stagingDir, '--pipeline', changed]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /pipeline\.yaml changed since run/);
    assert.match(r.stderr, /--allow-pipeline-change/);
    const allowed = await etl(['transform', '--staging', run.stagingDir, '--pipeline', changed, '--allow-pipeline-change']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal((await etl(['transform', '--staging', run.stagingDir, '--bogus'])).code, 2);
    assert.equal((await etl(['transform', '--staging', run.stagingDir, '--pipeline', PIPELINE_FILE, '--tables', 'nope'])).code, 2);
    await rm(dir, { recursive: true, force: true });
  });
});
