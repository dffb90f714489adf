// A load whose process died (SIGKILL between its first rejects line and its manifest's `done`) leaves
// its rejects files as `*.partial`. The next load into the same database settles that run from the
// ledger, whichever run it loads itself: rolled back → the unfinished files go; committed → they
// become the run's rejects files and its manifest section is rebuilt (recovered_from_ledger). A run
// whose writer is still alive is left alone. Found by test/mirror/crash-randomized.test.ts. A load
// handed its command's sweep (etl run) checks each run it lists again before it touches it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runLoad } from '../../load/index.ts';
import { readManifest, updateManifest } from '../../staging/manifest.ts';
import { runPaths, type RunPaths } from '../../staging/run-folder.ts';
import { removeAbandonedPartials } from '../../staging/run-writer.ts';
import { freshDatabaseAndStaging, stageRun } from './staged-run.ts';
import { danglingReferences, fixtureModel, postgresConfig } from './model-fixture.ts';

const servers = useServers({ mongo: false });
const model = fixtureModel();

const setup = (t: { name: string; after(fn: () => unknown): void }) => freshDatabaseAndStaging(servers, t, 'abandoned-loads');

const data = danglingReferences;

/** The pid of a process that has ended. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

/** What the disk holds when the load's process died after its rejects files were written, before its manifest said done. */
async function dieMidLoad(paths: RunPaths, pid: number, rejectFiles: readonly string[]): Promise<void> {
  await updateManifest(paths, (m) => {
    const load = m.stages.load!;
    m.stages.load = { status: 'running', started_at: load.started_at, ended_at: null, error: null, dry_run: false, already_applied: false, tables: {}, skipped: [], writer: { pid, host: os.hostname() } };
  });
  for (const f of rejectFiles) await rename(path.join(paths.loadDir, f), path.join(paths.loadDir, `${f}.partial`));
}

const loadDir = async (paths: RunPaths) => (await readdir(paths.loadDir)).sort();

test('a load that died before COMMIT: the next load of another run removes its unfinished rejects files', async (t) => {
  const { url, staging } = await setup(t);
  const postgres = postgresConfig(url);
  const dead = runPaths(staging, await stageRun(staging, model, data()));
  // A dry run writes what a load writes on disk and leaves the ledger without the run (rolled back).
  await runLoad({ model, stagingDir: staging, postgres, runId: dead.runId, dryRun: true });
  const rejectFiles = await loadDir(dead);
  assert.deepEqual(rejectFiles, ['messages.rejects.ndjson', 'users.rejects.ndjson']);
  await dieMidLoad(dead, deadPid(), rejectFiles);
  const alive = runPaths(staging, await stageRun(staging, model, data()));
  await runLoad({ model, stagingDir: staging, postgres, runId: alive.runId, dryRun: true });
  await dieMidLoad(alive, process.pid, rejectFiles);

  const next = await stageRun(staging, model, data());
  await runLoad({ model, stagingDir: staging, postgres, runId: next });
  assert.deepEqual(await loadDir(dead), [], 'rolled back: its unfinished rejects files are gone');
  assert.equal((await readManifest(dead)).stages.load!.status, 'running', 'nothing else changed: the run is loadable again');
  assert.deepEqual(await loadDir(alive), rejectFiles.map((f) => `${f}.partial`), 'a load whose process is alive is left alone');
});

test('a load that died after COMMIT: the next load of another run recovers its rejects files and manifest from the ledger', async (t) => {
  const { url, staging } = await setup(t);
  const postgres = postgresConfig(url);
  const dead = runPaths(staging, await stageRun(staging, model, data()));
  await runLoad({ model, stagingDir: staging, postgres, runId: dead.runId });
  const committed = (await readManifest(dead)).stages.load!;
  const rejectFiles = await loadDir(dead);
  assert.deepEqual(rejectFiles, ['messages.rejects.ndjson', 'users.rejects.ndjson']);
  await dieMidLoad(dead, deadPid(), rejectFiles);
  // A partial file the ledger does not vouch for (bytes the process was still writing) goes.
  await writeFile(path.join(dead.loadDir, 'companies.rejects.ndjson.partial'), '{"half":');

  const next = await stageRun(staging, model, data());
  await runLoad({ model, stagingDir: staging, postgres, runId: next });
  assert.deepEqual(await loadDir(dead), rejectFiles, 'the .partial files became the rejects files');
  const recovered = (await readManifest(dead)).stages.load!;
  assert.equal(recovered.status, 'done');
  assert.equal(recovered.recovered_from_ledger, true);
  assert.deepEqual(recovered.tables, committed.tables);
  assert.equal(recovered.writer, undefined);
});

test("a load handed its command's sweep settles a dead load it lists, and leaves one that another load took up since", async (t) => {
  const { url, staging } = await setup(t);
  const postgres = postgresConfig(url);
  const runs: RunPaths[] = [];
  for (let i = 0; i < 2; i++) {
    const paths = runPaths(staging, await stageRun(staging, model, data()));
    await runLoad({ model, stagingDir: staging, postgres, runId: paths.runId, dryRun: true });
    runs.push(paths);
  }
  for (const paths of runs) await dieMidLoad(paths, deadPid(), await loadDir(paths));
  const [dead, takenUp] = runs as [RunPaths, RunPaths];
  const rejectFiles = ['messages.rejects.ndjson.partial', 'users.rejects.ndjson.partial'];
  const swept = await removeAbandonedPartials(staging);
  assert.deepEqual(swept.runs.map((r) => r.paths.runId).sort(), [dead.runId, takenUp.runId].sort());
  // Since the sweep, another etl load (alive: this process) took the second run up.
  await updateManifest(takenUp, (m) => {
    m.stages.load!.writer = { pid: process.pid, host: os.hostname() };
  });

  const next = await stageRun(staging, model, data());
  await runLoad({ model, stagingDir: staging, postgres, runId: next, abandoned: swept });
  assert.deepEqual(await loadDir(dead), [], 'rolled back: its unfinished rejects files are gone');
  assert.deepEqual(await loadDir(takenUp), rejectFiles, 'a load at work on it now: left alone');
});
