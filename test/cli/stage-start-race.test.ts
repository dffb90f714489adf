// Two stages of one run started together, as a cron job's and an operator's: each reads the
// manifest (is another process at work on the run?) and then writes its `running` section. The
// second process below makes its check while the first is held between its check and its mark: the
// run's manifest is a FIFO for the first one's reads (test/harness/fifo-reads.ts), so the first
// waits, mid-start, until the test answers (staging/start-lock.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { etl, REPO, startEtl, useSampleDump } from '../harness/cli.ts';
import { answer, mkfifoAt, nextRead } from '../harness/fifo-reads.ts';
import { listRunIds } from '../../staging/run-folder.ts';

const PIPELINE = path.join(REPO, 'pipeline.yaml');
const sample = useSampleDump('etl-start-race-', 1000);

test('two etl transform of one run started together: the one that checks while the other starts is refused (stage_running), the files are whole', async (t) => {
  const staging = path.join(sample.work, 'two-transforms');
  t.after(() => rm(staging, { recursive: true, force: true }));
  const flags = ['--staging', staging, '--pipeline', PIPELINE];
  const extracted = await etl(['extract', '--full', '--source', sample.dump, ...flags], { cwd: sample.work });
  assert.equal(extracted.code, 0, extracted.stderr);
  const [run] = await listRunIds(staging);
  const manifest = path.join(staging, run!, 'manifest.json');
  const bytes = await readFile(manifest);

  await mkfifoAt(manifest);
  const first = startEtl(['transform', '--run', run!, ...flags], { cwd: sample.work });
  t.after(async () => {
    first.kill('SIGKILL');
    await first.done;
  });
  // The first transform's read of the manifest, before its checks.
  await answer(await nextRead(manifest), bytes);
  // Its read as it writes its `running` section: it is held here, past its checks, not yet marked.
  const held = await nextRead(manifest);
  await writeFile(`${manifest}.test`, bytes);
  await rename(`${manifest}.test`, manifest); // the others read a file again

  const second = await etl(['transform', '--run', run!, ...flags], { cwd: sample.work });
  await answer(held, bytes);
  const ended = await first.done;

  assert.equal(second.code, 1, `the second transform is refused while the first starts:\n${second.output}`);
  assert.match(second.stderr, new RegExp(`^error: transform of run ${run} cannot start: another etl process \\(pid ${first.pid} on .+\\) is starting its transform .*\\[stage_running\\]$`, 'm'));
  assert.match(second.stderr, new RegExp(`^hint: wait for it to end \\(\`etl status\` shows the run\\), then run \`etl transform --run ${run}\` again`, 'm'));
  assert.equal(ended.code, 0, ended.output);
  const verify = await etl(['verify', run!, ...flags], { cwd: sample.work });
  assert.equal(verify.code, 0, verify.output);
});

test("a start lock left by a process that died holding it is removed by the next stage; one a live process holds refuses the run, saying what it does", async (t) => {
  const staging = path.join(sample.work, 'left-lock');
  t.after(() => rm(staging, { recursive: true, force: true }));
  const flags = ['--staging', staging, '--pipeline', PIPELINE];
  const extracted = await etl(['extract', '--full', '--source', sample.dump, ...flags], { cwd: sample.work });
  assert.equal(extracted.code, 0, extracted.stderr);
  const [run] = await listRunIds(staging);
  const lock = path.join(staging, `${run}.starting`);

  // Held by a live process of this host (this test's): refused, naming it and the lock.
  await writeFile(lock, `${JSON.stringify({ pid: process.pid, host: os.hostname() })}\n`);
  const refused = await etl(['transform', '--run', run!, ...flags], { cwd: sample.work });
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.stderr, new RegExp(`^error: transform of run ${run} cannot start: another etl process \\(pid ${process.pid} on ${os.hostname()}\\) is starting a stage of it \\(at ${lock}\\) \\[stage_running\\]$`, 'm'));
  assert.match(refused.stderr, new RegExp(`if process ${process.pid} on ${os.hostname()} is not etl, remove ${lock}$`, 'm'));
  assert.equal(JSON.parse(await readFile(path.join(staging, run!, 'manifest.json'), 'utf8')).stages.transform, undefined, 'nothing recorded');

  // Held by etl clean, removing the run: said so.
  await writeFile(lock, `${JSON.stringify({ pid: process.pid, host: os.hostname(), doing: 'clean' })}\n`);
  const removing = await etl(['transform', '--run', run!, ...flags], { cwd: sample.work });
  assert.equal(removing.code, 1, removing.output);
  assert.match(removing.stderr, new RegExp(`^error: transform of run ${run} cannot start: another etl process \\(pid ${process.pid} on ${os.hostname()}\\) is removing it \\(etl clean\\) .*\\[stage_running\\]$`, 'm'));

  // Left by a process that is gone: removed, and the transform runs.
  const gone = spawnSync(process.execPath, ['-e', '']).pid;
  await writeFile(lock, `${JSON.stringify({ pid: gone, host: os.hostname() })}\n`);
  const transformed = await etl(['transform', '--run', run!, ...flags], { cwd: sample.work });
  assert.equal(transformed.code, 0, transformed.output);
  assert.deepEqual((await readdir(staging)).sort(), [run, 'latest'].sort(), 'no lock, nor its partial file, left');
});
