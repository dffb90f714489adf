// readManifest says why a run's manifest cannot be read: a run folder removed while a command ran
// (`etl clean` between finding the run and reading it) is said gone, not "has no manifest.json"; a
// manifest.json the system refuses to read says the system's reason, not that it is missing.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { test } from 'node:test';
import { StagingError } from '../../errors/etl-error.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { tempDir } from '../harness/temp-dir.ts';

const RUN = '20261208T031500123Z';

async function refusal(staging: string): Promise<StagingError> {
  const error = await readManifest(runPaths(staging, RUN)).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof StagingError, String(error));
  return error;
}

test('a run whose folder is gone: no_run, saying it was removed, naming the staging folder', async (t) => {
  const staging = await tempDir('etl-manifest-', t);
  const e = await refusal(staging);
  assert.equal(e.code, 'no_run');
  assert.equal(e.message, `staged run ${RUN} is gone from ${staging}: its folder was removed (by etl clean, or by hand)`);
  assert.match(e.hint ?? '', /etl runs/);
});

test('a run folder without manifest.json: no_manifest, as before', async (t) => {
  const staging = await tempDir('etl-manifest-', t);
  await mkdir(runPaths(staging, RUN).dir);
  const e = await refusal(staging);
  assert.equal(e.code, 'no_manifest');
  assert.equal(e.message, `run ${RUN} has no manifest.json (${runPaths(staging, RUN).manifest})`);
});

test('a manifest.json the system refuses to read: its reason, not "has no manifest.json"', async (t) => {
  const staging = await tempDir('etl-manifest-', t);
  await mkdir(runPaths(staging, RUN).manifest, { recursive: true });
  const e = await refusal(staging);
  assert.equal(e.code, 'bad_manifest');
  assert.equal(e.message, `cannot read the manifest of run ${RUN} (${runPaths(staging, RUN).manifest}): it is a folder, not a file`);
});
