// A folder that cannot be made where the file system refuses every new entry (/proc): Node's
// mkdir({ recursive: true }) never returns there (mkdir says ENOENT though the parent exists, and it
// retries for ever), so `etl sample --out /proc/x` hung, deaf to SIGTERM. Every command that makes
// folders fails at once instead, exit 1, naming the folder.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { realRun, type RealRun } from '../audit/staged-run.ts';
import { etl } from '../harness/cli.ts';

// Far more than a failing command needs, far less than the test's own timeout: a hang is a failure here.
const SOON_MS = 30_000;

async function failsAtOnce(args: readonly string[], cwd: string, folder: string): Promise<void> {
  for (const json of [false, true]) {
    const started = Date.now();
    const r = await etl([...args, ...(json ? ['--json'] : [])], { cwd, timeoutMs: SOON_MS });
    const what = `etl ${args.join(' ')}${json ? ' --json' : ''}`;
    assert.equal(r.signal, null, `${what} hung (killed after ${Date.now() - started} ms)`);
    assert.equal(r.code, 1, `${what}: ${r.output}`);
    assert.ok(r.output.includes(folder), `${what} names ${folder}: ${r.output}`);
    assert.match(r.output, /write_failed/);
    assert.doesNotMatch(r.output, /internal error|^\s+at /m);
  }
}

describe('a folder under /proc', () => {
  let run: RealRun;
  before(async () => {
    run = await realRun();
  });
  after(() => rm(run.cwd, { recursive: true, force: true }));

  test('etl sample --out /proc/<x>: exit 1 at once, naming the folder', async () => {
    await failsAtOnce(['sample', '--out', '/proc/etl-sample-x', '--scale', '100'], run.cwd, '/proc/etl-sample-x');
  });

  test('etl pack --out /proc/<x>/run.tar.gz and etl extract --staging /proc/<x>: the same', async () => {
    await failsAtOnce(['pack', '--out', '/proc/etl-pack-x/run.tar.gz'], run.cwd, '/proc/etl-pack-x');
    await failsAtOnce(['extract', '--full', '--source', path.join(run.cwd, 'dump', 'wappizy'), '--staging', '/proc/etl-staging-x'], run.cwd, '/proc/etl-staging-x');
  });
});
