// A process killed while it wrote the run's manifest (its `running` section) leaves that version as
// `manifest.json.<pid>.partial` (`manifest.json.partial` from an etl of before): when whole, it
// names the stage and its writer, so the next stage command knows the run was killed and removes
// its unfinished files.
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Manifest } from '../../staging/manifest.ts';
import { abandonedRun, removeAbandonedPartials } from '../../staging/run-writer.ts';
import { realRun, type RealRun } from '../audit/staged-run.ts';
import { deadPid } from '../harness/scratch.ts';

let run: RealRun;
before(async () => {
  run = await realRun();
});
after(() => (run ? rm(run.cwd, { recursive: true, force: true }) : undefined));

for (const name of [(pid: number) => `manifest.json.${pid}.partial`, () => 'manifest.json.partial']) {
  test(`a whole ${name(0).replace('0', '<pid>')} whose load is running, its writer gone: the run is abandoned and its unfinished files go`, async () => {
    const manifest = JSON.parse(await readFile(run.paths.manifest, 'utf8')) as Manifest;
    assert.equal(await abandonedRun(run.paths), null, 'the manifest alone says nothing runs');
    const pid = deadPid();
    const unfinished = path.join(run.paths.dir, name(pid));
    const writing = { ...manifest, stages: { ...manifest.stages, load: { status: 'running', started_at: new Date().toISOString(), writer: { pid, host: os.hostname() } } } };
    await writeFile(unfinished, JSON.stringify(writing));
    const csv = `${run.paths.transformCsv('users')}.partial`;
    await writeFile(csv, 'half');
    const found = await abandonedRun(run.paths);
    assert.equal(found?.manifest.stages.load?.status, 'running');
    await removeAbandonedPartials(run.stagingDir);
    assert.deepEqual((await readdir(run.paths.transformDir)).filter((f) => f.endsWith('.partial')), []);
    assert.deepEqual((await readdir(run.paths.dir)).filter((f) => f.endsWith('.partial')), []);
  });
}
