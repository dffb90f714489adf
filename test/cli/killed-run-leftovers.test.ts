// A stage SIGKILLed while it writes leaves the `*.partial` files it was writing in its run folder;
// the next stage command removes them (running again is how a user recovers from a crash), and
// leaves alone those of a run whose process is still alive. Found by
// test/mirror/crash-randomized.test.ts (the load's side: test/load/abandoned-loads.test.ts).
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { etl, REPO, startEtl } from '../harness/cli.ts';
import { updateManifest } from '../../staging/manifest.ts';
import { listRunIds, runPaths } from '../../staging/run-folder.ts';

const PIPELINE = path.join(REPO, 'pipeline.yaml');

let work = '';
let dump = '';
before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'etl-killed-run-'));
  dump = path.join(work, 'dump');
  const r = await etl(['sample', '--scale', '3000', '--out', dump, '--quiet'], { cwd: work });
  assert.equal(r.code, 0, r.stderr);
});
after(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

/** Every `*.partial` file under a folder, relative to it. */
async function partials(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && e.name.endsWith('.partial')).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

test('an etl extract SIGKILLed mid-write: the next etl extract removes its *.partial files, not those of a live run', async () => {
  const staging = path.join(work, 'staging');
  const args = ['extract', '--source', dump, '--full', '--staging', staging, '--pipeline', PIPELINE];
  const victim = startEtl(args, { cwd: work });
  const deadline = Date.now() + 120_000;
  let exited = false;
  void victim.done.then(() => (exited = true));
  while ((await partials(staging)).length === 0 && !exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  victim.kill('SIGKILL');
  assert.equal((await victim.done).signal, 'SIGKILL', 'killed while writing');
  const [killed] = await listRunIds(staging);
  const left = await partials(path.join(staging, killed!));
  assert.ok(left.length > 0, 'the kill left unfinished files (else this test proves nothing)');

  // The same leftovers in a run whose writer is this (live) process: another etl still at work.
  const alive = runPaths(staging, '20200101T000000000Z');
  await cp(path.join(staging, killed!), alive.dir, { recursive: true });
  await updateManifest(alive, (m) => {
    m.stages.extract!.writer = { pid: process.pid, host: os.hostname() };
  });

  const again = await etl(args, { cwd: work });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await partials(path.join(staging, killed!)), [], 'the killed run keeps no unfinished file');
  assert.deepEqual(await partials(alive.dir), left, "a live run's files are left alone");
});
