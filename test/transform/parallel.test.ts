// A transform whose collections are shared between worker threads writes exactly the files of a
// single-thread transform: the sha256 of every staged file and the manifest's records are the same.
// A failure inside a worker reaches the caller as the same EtlError, and the manifest records it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { StagingError } from '../../errors/etl-error.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runTransform } from '../../transform/index.ts';
import { fromWire, toWire } from '../../transform/parallel.ts';
import { pipelineModel, removeStagedRuns, stageSampleRun } from './staged-run.ts';

after(removeStagedRuns);

async function digests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex');
  return out;
}

test('two threads stage every file byte for byte as one thread does', async () => {
  const model = await pipelineModel();
  const run = await stageSampleRun(model, { scale: 3000 });
  const single = await runTransform({ model, stagingDir: run.stagingDir, runId: run.paths.runId, threads: 1 });
  assert.equal(single.threads, 1);
  const singleFiles = await digests(run.paths.transformDir);
  const singleTables = (await readManifest(run.paths)).stages.transform!.tables;

  const parallel = await runTransform({ model, stagingDir: run.stagingDir, runId: run.paths.runId, threads: 2 });
  assert.equal(parallel.threads, 2, 'the collections were shared with a worker thread');
  const parallelFiles = await digests(run.paths.transformDir);
  assert.ok(Object.keys(singleFiles).length >= 3 * model.tables.size, `every table's files (${Object.keys(singleFiles).length})`);
  assert.deepEqual(parallelFiles, singleFiles);
  assert.deepEqual((await readManifest(run.paths)).stages.transform!.tables, singleTables);
  assert.deepEqual(parallel.tables, single.tables);
  assert.equal(parallel.documentsRead, single.documentsRead);
});

test('an error crosses from a worker thread with its class, code, context and hint', () => {
  const original = new StagingError('extract_mismatch', 'damaged', { context: { collection: 'users', file: '/x' }, hint: 'run etl extract' });
  const back = fromWire(structuredClone(toWire(original)));
  assert.ok(back instanceof StagingError);
  assert.deepEqual([back.code, back.message, back.context, back.hint, back.exitCode], ['extract_mismatch', 'damaged', { collection: 'users', file: '/x' }, 'run etl extract', 1]);
  const io = fromWire(structuredClone(toWire(Object.assign(new Error('no space'), { code: 'ENOSPC' }))));
  assert.equal((io as NodeJS.ErrnoException).code, 'ENOSPC');
});

test('a failure while the collections are shared is the same StagingError, recorded in the manifest', async () => {
  const model = await pipelineModel();
  const run = await stageSampleRun(model, { scale: 1000 });
  await appendFile(run.paths.extractFile('ingredients'), '{"_id":"extra"}\n');
  const error = await runTransform({ model, stagingDir: run.stagingDir, runId: run.paths.runId, threads: 2 }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof StagingError, `a StagingError, got ${String(error)}`);
  assert.equal(error.code, 'extract_mismatch');
  assert.equal(error.context.collection, 'ingredients');
  assert.match(error.hint ?? '', /etl extract/);
  const section = (await readManifest(run.paths)).stages.transform!;
  assert.equal(section.status, 'failed');
  assert.equal(section.error?.code, 'extract_mismatch');
});
