// Scratch folders of a killed command are removed by the next command of the same kind, and nothing
// else is: a folder that names no owner, names a live one, or another host's, stays.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { makeScratchDir, removeAbandoned } from '../../staging/scratch-dir.ts';
import { deadPid, plantScratch } from '../harness/scratch.ts';

const here = os.hostname();

test('makeScratchDir names its owner and removes the folders of its prefix whose owner is gone, only those', async (t) => {
  const live = spawn('sleep', ['60']);
  t.after(() => live.kill());
  const planted = {
    dead: await plantScratch('etl-verify-Dead01', { pid: deadPid(), host: here }),
    alive: await plantScratch('etl-verify-Live01', { pid: live.pid!, host: here }),
    elsewhere: await plantScratch('etl-verify-Else01', { pid: deadPid(), host: `${here}-other` }),
    unowned: await plantScratch('etl-verify-NoOwn1', null),
    damaged: await plantScratch('etl-verify-Bad001', null),
    // Not of the form mkdtemp gives the prefix (a test's folder, another tool's).
    otherShape: await plantScratch('etl-verify-bomb-Dead02', { pid: deadPid(), host: here }),
    otherPrefix: await plantScratch('etl-diff-Dead03', { pid: deadPid(), host: here }),
  };
  await writeFile(path.join(planted.damaged, '.etl-owner.json'), '{"pid": ');
  t.after(async () => {
    for (const dir of Object.values(planted)) await rm(dir, { recursive: true, force: true });
  });

  const dir = await makeScratchDir('etl-verify-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual(JSON.parse(await readFile(path.join(dir, '.etl-owner.json'), 'utf8')), { pid: process.pid, host: here });
  const left = (await readdir(os.tmpdir())).filter((n) => n.startsWith('etl-'));
  assert.deepEqual(left.sort(), [path.basename(dir), 'etl-diff-Dead03', 'etl-verify-Bad001', 'etl-verify-Else01', 'etl-verify-Live01', 'etl-verify-NoOwn1', 'etl-verify-bomb-Dead02'].sort());

  // This process's own folder is in use: a second one leaves it.
  assert.deepEqual(await removeAbandoned('etl-verify-'), []);
  assert.deepEqual(await removeAbandoned('etl-diff-'), ['etl-diff-Dead03']);
});
