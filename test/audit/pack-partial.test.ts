// An `etl pack` killed with SIGKILL mid-way leaves FILE.partial (bytes not yet all scanned) next
// to the archive it was writing. Nothing may take it for an archive: `etl verify` says what it is,
// the next `etl pack` to FILE refuses it while it may still be a live pack's, and removes it (saying
// so) once it is stale; `--out` never names a .partial.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { runPaths } from '../../staging/run-folder.ts';
import { copyOfRun, editManifest, realRun, type RealRun } from './staged-run.ts';
import { etlSync, startEtl } from '../harness/cli.ts';

let run: RealRun;
let scratch: string;
before(async () => {
  run = await realRun();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'etl-pack-partial-'));
});
after(async () => {
  await rm(run.cwd, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

/** A recorded extract file of `mb` MB of random base64 lines (barely compressible: slow to pack). */
async function plantNoise(stagingDir: string, mb: number): Promise<void> {
  const file = 'extract/noise.ndjson';
  const out = createWriteStream(path.join(stagingDir, run.runId, file));
  const hash = createHash('sha256');
  let bytes = 0;
  let lines = 0;
  while (bytes < mb << 20) {
    const line = `{"n":${lines},"noise":"${randomBytes(48 << 10).toString('base64')}"}\n`;
    hash.update(line);
    bytes += line.length;
    lines += 1;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  await editManifest(runPaths(stagingDir, run.runId), (m) => {
    (m.stages.extract!.collections.users as unknown as Record<string, unknown>).noise = { file, bytes, sha256: hash.digest('hex'), records: lines };
  });
}

test('a pack killed with SIGKILL: its .partial is never verified, refused while fresh, removed (and said so) once stale', async () => {
  const { stagingDir } = await copyOfRun(run, scratch);
  await plantNoise(stagingDir, 160);
  const archive = path.join(stagingDir, `${run.runId}.tar.gz`);
  const partial = `${archive}.partial`;

  const pack = startEtl(['pack', '--staging', stagingDir], { cwd: scratch });
  const started = Date.now();
  while (((await stat(partial).catch(() => null))?.size ?? 0) < 1 << 20) {
    assert.ok(Date.now() - started < 120_000, `no .partial after 2 min: ${pack.stderr}`);
    await sleep(5);
  }
  pack.kill('SIGKILL');
  assert.equal((await pack.done).signal, 'SIGKILL');
  assert.deepEqual((await readdir(stagingDir)).filter((n) => n.includes('.tar.gz')), [`${run.runId}.tar.gz.partial`]);

  const verified = etlSync(['verify', partial, '--json'], { cwd: scratch });
  assert.equal(verified.code, 1, verified.stdout);
  const error = JSON.parse(verified.stdout).error;
  assert.equal(error.code, 'bad_archive');
  assert.match(error.message, /\.tar\.gz\.partial is an unfinished archive, not one to verify: what an etl pack was writing when it stopped/);

  // Just killed: as far as anyone can tell, a pack may still be writing it.
  const fresh = etlSync(['pack', '--staging', stagingDir], { cwd: scratch });
  assert.equal(fresh.code, 1, fresh.stderr);
  assert.match(fresh.stderr, /another etl pack seems to be writing .*\.tar\.gz\.partial \(written \d+ (ms|s) ago\): not packing over it/);
  assert.ok((await stat(partial)).size >= 1 << 20, 'the .partial is left alone');

  // Two minutes later nobody wrote it: stale, removed, said so, and the run packs.
  const twoMinutesAgo = new Date(Date.now() - 120_000);
  await utimes(partial, twoMinutesAgo, twoMinutesAgo);
  const later = etlSync(['pack', '--staging', stagingDir, '--json'], { cwd: scratch });
  assert.equal(later.code, 0, later.stderr);
  assert.match(later.stderr, /note: removed .*\.tar\.gz\.partial \([\d.]+ MB, last written 2 min ago\): an unfinished archive left by an etl pack that did not end/);
  const report = JSON.parse(later.stdout);
  assert.match(report.removed_partial, /^removed .*\.partial/);
  assert.equal(report.archive, archive);
  assert.deepEqual((await readdir(stagingDir)).filter((n) => n.includes('.tar.gz')), [`${run.runId}.tar.gz`]);
  assert.equal((await stat(archive)).size, report.bytes);
});

test('--out never names a .partial (usage error, exit 2)', () => {
  const r = etlSync(['pack', '--staging', run.stagingDir, '--out', path.join(scratch, 'x.tar.gz.partial')], { cwd: scratch });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /a name ending in \.partial is what etl gives unfinished files/);
});
