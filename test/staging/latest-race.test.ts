// Two extracts into one staging folder end close together, as a cron job's and an operator's do:
// each reads `latest` and then writes it (staging/run-folder.ts advanceLatest), and no lock orders
// the two. `latest` must end on the newer run whichever order their reads and writes take.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeManifest, type Manifest } from '../../staging/manifest.ts';
import { advanceLatest, runPaths } from '../../staging/run-folder.ts';
import { runManifest } from '../harness/staged-run.ts';
import { mkfifoAt } from '../harness/fifo-reads.ts';
import { tempDir } from '../harness/temp-dir.ts';

/** A run whose extract is done, as an extract records it before it moves `latest`. */
async function extractedRun(stagingDir: string, runId: string): Promise<void> {
  const paths = runPaths(stagingDir, runId);
  await mkdir(paths.dir, { recursive: true });
  const at = '2026-12-01T00:00:00.000Z';
  const extract = { status: 'done', started_at: at, ended_at: at, collections: {} } as unknown as NonNullable<Manifest['stages']['extract']>;
  await writeManifest(paths, runManifest(paths, 'f'.repeat(64), { extract }));
}

test('an older extract that read `latest` before a newer one set it leaves `latest` on the newer run', async (t) => {
  const stagingDir = await tempDir('etl-latest-race-', t);
  const before = '20261130T000000000Z';
  const older = '20261201T000000000Z';
  const newer = '20261201T000000001Z';
  await extractedRun(stagingDir, older);
  await extractedRun(stagingDir, newer);
  const latest = path.join(stagingDir, 'latest');

  // `latest` is a FIFO for the older run's read: the read waits until this test writes, so the newer
  // run's extract ends, and sets `latest`, between the older run's read and its write.
  await mkfifoAt(latest);
  const olderEnds = advanceLatest(stagingDir, older);
  const fifo = await open(latest, 'w'); // opens once the older run's read has opened it
  await rm(latest);
  assert.equal(await advanceLatest(stagingDir, newer), true, 'the newer run sets `latest`');
  assert.equal((await readFile(latest, 'utf8')).trim(), newer);
  // The older run reads what `latest` held before either ended, and goes on to write.
  await fifo.write(`${before}\n`);
  await fifo.close();
  const olderTookIt = await olderEnds;
  assert.equal((await readFile(latest, 'utf8')).trim(), newer, '`latest` names the newer run');
  assert.equal(olderTookIt, false, 'the older run says it left `latest` on a newer run');
});

test('a newer run still being extracted does not hold `latest` back: it moves it itself once done', async (t) => {
  const stagingDir = await tempDir('etl-latest-race-', t);
  const [older, newer] = ['20261201T000000000Z', '20261201T000000001Z'];
  await extractedRun(stagingDir, older);
  await mkdir(runPaths(stagingDir, newer).dir); // its extract is at work: no section done yet
  assert.equal(await advanceLatest(stagingDir, older), true);
  assert.equal((await readFile(path.join(stagingDir, 'latest'), 'utf8')).trim(), older);
});
