// A full disk, simulated by the `.partial` file a write goes through being a link to /dev/full
// (every write to it fails with ENOSPC, as on a full disk): the error names the file and says the
// disk is full, and the manifest writer leaves no 0-byte manifest.json.<pid>.partial behind.
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { StagingError } from '../../errors/etl-error.ts';
import { readManifest, writeManifest } from '../../staging/manifest.ts';
import { createRun, setLatest } from '../../staging/run-folder.ts';
import { etlSync } from '../harness/cli.ts';
import { realRun, type RealRun } from '../audit/staged-run.ts';

let run: RealRun;
before(async () => {
  run = await realRun();
});
after(() => rm(run.cwd, { recursive: true, force: true }));

/** The partial file this process writes a small file through (writeFileAtomic). */
const ownPartial = (file: string) => `${file}.${process.pid}.partial`;
const absent = (file: string) => lstat(file).then(() => false, () => true);

function diskFull(file: string): (e: unknown) => true {
  return (e: unknown) => {
    assert.ok(e instanceof StagingError, String(e));
    assert.equal(e.code, 'disk_full');
    assert.equal(e.message, `cannot write ${file}: the disk is full (ENOSPC: no space left on device)`);
    assert.match(e.hint ?? '', /free space on the disk that holds .*df -h/);
    return true;
  };
}

test('the manifest writer: names manifest.json, leaves no partial, keeps the previous manifest', async () => {
  const before = await readFile(run.paths.manifest, 'utf8');
  await symlink('/dev/full', ownPartial(run.paths.manifest));
  const manifest = await readManifest(run.paths);
  await assert.rejects(writeManifest(run.paths, { ...manifest, run_id: manifest.run_id }), diskFull(run.paths.manifest));
  assert.ok(await absent(ownPartial(run.paths.manifest)), 'no manifest.json.<pid>.partial left');
  assert.equal(await readFile(run.paths.manifest, 'utf8'), before);
});

test('the latest pointer: names the file, leaves no partial', async () => {
  const latest = path.join(run.stagingDir, 'latest');
  await symlink('/dev/full', ownPartial(latest));
  await assert.rejects(setLatest(run.stagingDir, run.runId), diskFull(latest));
  assert.ok(await absent(ownPartial(latest)));
});

test('a staged file during transform: exit 1 naming the file and a full disk, no stack', async () => {
  const csvPartial = `${run.paths.transformCsv('users')}.partial`;
  await symlink('/dev/full', csvPartial);
  const r = etlSync(['transform', '--run', run.runId, '--staging', run.stagingDir, '--pipeline', run.pipelineFile], { cwd: run.cwd });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot write ${csvPartial.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the disk is full \\(ENOSPC: no space left on device\\)`));
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack');
  assert.deepEqual((await readdir(run.paths.dir)).filter((f) => f.startsWith('manifest.json.')), [], 'no partial manifest left');
  await rm(csvPartial, { force: true });
});

test('a staging folder that cannot be made: a StagingError naming it, not a raw errno', async () => {
  const notAFolder = path.join(run.cwd, 'pipeline.yaml', 'staging');
  await assert.rejects(createRun(notAFolder), (e: unknown) => {
    assert.ok(e instanceof StagingError, String(e));
    assert.equal(e.code, 'staging_not_writable');
    assert.ok(e.message.startsWith(`cannot create the staging folder ${notAFolder}: `), e.message);
    return true;
  });
});
