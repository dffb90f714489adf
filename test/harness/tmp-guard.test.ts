// The check behind `npm test`: a test file that leaves a temporary folder behind fails, naming it,
// and the folder is removed all the same; a clean file passes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function runFixture(tmp: string, leak: boolean): Promise<{ code: number | null; out: string }> {
  const args = ['--import', 'tsx', '--import', './test/harness/tmp-guard.ts', '--test', 'test/harness/leak.fixture.ts'];
  // A test file's children inherit NODE_TEST_CONTEXT, which makes `node --test` refuse to run files.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO, env: { ...env, TMPDIR: tmp, LEAK: leak ? '1' : '0' }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, out: stdout + stderr });
    });
  });
}

test('a test file that leaves an etl-* folder behind fails and names it; the folder is removed anyway', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'etl-guard-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const leaky = await runFixture(tmp, true);
  assert.equal(leaky.code, 1, leaky.out);
  assert.match(leaky.out, /left behind in the temporary folder: etl-leaky-\w+/);
  const clean = await runFixture(tmp, false);
  assert.equal(clean.code, 0, clean.out);
  // Only the shared compile cache of tsx may stay.
  assert.deepEqual((await readdir(tmp)).filter((n) => !n.startsWith('tsx-')), []);
});
