// What load trusts and what it recovers (issue 13, items 6 and 7): a staged CSV whose manifest record
// carries no checksum is refused, whatever its bytes; a load that committed but died before writing
// its manifest section is recovered by the next attempt from the ledger, rejects files included, so
// the run verifies.
import assert from 'node:assert/strict';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runLoad } from '../../load/index.ts';
import { readManifest, updateManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { StagingError } from '../../errors/etl-error.ts';
import { verifyRun } from '../../audit/verify.ts';
import { freshDatabaseAndStaging, stageRun } from './staged-run.ts';
import { danglingReferences, fixtureModel, postgresConfig, query } from './model-fixture.ts';

const servers = useServers({ mongo: false });
const model = fixtureModel();

const setup = (t: { name: string; after(fn: () => unknown): void }) => freshDatabaseAndStaging(servers, t, 'integrity');

const data = danglingReferences;

for (const how of ['deleted', 'empty'] as const) {
  test(`a staged CSV whose checksum is ${how} in the manifest is refused, edited or not`, async (t) => {
    const { url, staging } = await setup(t);
    const run = await stageRun(staging, model, data());
    const paths = runPaths(staging, run);
    await updateManifest(paths, (m) => {
      const csv = m.stages.transform!.tables.users!.csv as { sha256?: string };
      if (how === 'deleted') delete csv.sha256;
      else csv.sha256 = '';
    });
    const file = paths.transformCsv('users');
    await writeFile(file, (await readFile(file, 'utf8')).replace('Ann', 'Eve'));
    await assert.rejects(
      runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) }),
      (e: unknown) => e instanceof StagingError && e.code === 'checksum_missing' && /transform\/users\.csv/.test(e.message),
    );
    assert.deepEqual(await query(url, `SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'users' AND schemaname = 'public'`), [{ n: 0 }], 'rolled back: not even created');
  });
}

test('a staged CSV removed from the run: staged_file_missing says it does not exist and to transform again', async (t) => {
  const { url, staging } = await setup(t);
  const run = await stageRun(staging, model, data());
  const paths = runPaths(staging, run);
  await rm(paths.transformCsv('users'));
  await assert.rejects(runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) }), (e: unknown) => {
    assert.ok(e instanceof StagingError, String(e));
    assert.equal(e.code, 'staged_file_missing');
    assert.equal(e.message, `cannot read transform/users.csv of run ${run}: it does not exist`);
    assert.equal(e.hint, `the run is damaged: run \`etl transform --run ${run}\` again`);
    return true;
  });
  assert.deepEqual(await query(url, `SELECT to_regclass('users') IS NULL AS gone`), [{ gone: true }], 'nothing was loaded');
});

test('a load that committed but died before its manifest section is recovered from the ledger; the run verifies', async (t) => {
  const { url, staging } = await setup(t);
  const run = await stageRun(staging, model, data());
  const paths = runPaths(staging, run);
  const done = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  const committed = (await readManifest(paths)).stages.load!;
  assert.equal(committed.status, 'done');
  const rejectFiles = (await readdir(paths.loadDir)).filter((f) => f.endsWith('.rejects.ndjson')).sort();
  assert.deepEqual(rejectFiles, ['messages.rejects.ndjson', 'users.rejects.ndjson']);

  // What the disk holds after a crash between COMMIT and the manifest write.
  await updateManifest(paths, (m) => {
    m.stages.load = { status: 'running', started_at: committed.started_at, ended_at: null, error: null, dry_run: false, already_applied: false, tables: {}, skipped: [] };
  });
  for (const f of rejectFiles) await rename(path.join(paths.loadDir, f), path.join(paths.loadDir, `${f}.partial`));

  const again = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.equal(again.alreadyApplied, true);
  const recovered = (await readManifest(paths)).stages.load!;
  assert.equal(recovered.status, 'done');
  assert.equal(recovered.recovered_from_ledger, true);
  assert.deepEqual(recovered.tables, committed.tables);
  assert.deepEqual((await readdir(paths.loadDir)).sort(), rejectFiles, 'the .partial files became the rejects files');
  assert.equal(done.tables.find((x) => x.table === 'messages')!.rejected, 1);

  const verified = await verifyRun({ target: paths.dir, retransform: false });
  const loadProblems = verified.mismatches.filter((m) => (m.file ?? '').startsWith('load/') || (m.field ?? '').startsWith('stages.load'));
  assert.deepEqual(loadProblems, []);
});

test('a run whose load/ folder is missing still loads and writes its rejects files', async (t) => {
  const { url, staging } = await setup(t);
  const run = await stageRun(staging, model, data());
  const paths = runPaths(staging, run);
  await rm(paths.loadDir, { recursive: true });
  const r = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.equal(r.tables.find((x) => x.table === 'messages')!.rejected, 1);
  assert.deepEqual((await readdir(paths.loadDir)).sort(), ['messages.rejects.ndjson', 'users.rejects.ndjson']);
  assert.deepEqual(await query(url, `SELECT id FROM messages`), []);
});
