// Keys files read ahead of their step (load/read-ahead.ts): a complete read with no claim kept reads
// its keys file in the client only, and that read now starts at the load's first step. What the step
// does with it must not change: the bytes are verified against the manifest when the step gets them,
// and a document whose `_id` is not its key's text is still seen.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runLoad } from '../../load/index.ts';
import { StagingError } from '../../errors/etl-error.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { stageRun } from './staged-run.ts';
import { chainModel, postgresConfig, query, ts } from './model-fixture.ts';

const servers = useServers({ mongo: false });

const model = chainModel({ meals: false });

const at = ts('1 10:00:00');

async function tempStaging(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-load-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a keys file read ahead is still verified by its step: one edited after transform is refused, nothing loaded', async (t) => {
  const staging = await tempStaging(t);
  const runId = await stageRun(staging, model, {
    plans: { rows: [['p1', at, at]], complete: true },
    days: { rows: [['d1', at, at, 'p1'], ['d2', at, at, 'p1']], complete: true },
  });
  const keys = runPaths(staging, runId).transformKeys('days');
  // Same records, other bytes: only the checksum tells.
  await writeFile(keys, (await readFile(keys, 'utf8')).replace('d2', 'd3'));
  const url = await servers.postgres.createDatabase(t.name);
  await assert.rejects(runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) }), (e: unknown) => {
    assert.ok(e instanceof StagingError, String(e));
    assert.equal(e.code, 'staged_file_changed');
    assert.match(e.message, /transform\/days\.keys\.csv/);
    return true;
  });
  assert.deepEqual(await query(url, `SELECT to_regclass('plans') IS NULL AS gone`), [{ gone: true }], 'the transaction was rolled back');
});

test('a keys file read ahead still shows a document whose _id is not its key, whose key another document claims', async (t) => {
  const staging = await tempStaging(t);
  await stageRun(staging, model, {
    plans: { rows: [['p1', at, at]], complete: true },
    // Two documents convert to the key d1: an ObjectId one and one whose `_id` is the string "d1".
    days: { rows: [['d1', at, at, 'p1'], ['d1', at, at, 'p1'], ['d2', at, at, 'p1']], keys: ['d1', 'd1', 'd2'], identities: [null, '"d1"', null], complete: true },
  });
  const url = await servers.postgres.createDatabase(t.name);
  const report = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  const days = report.tables.find((r) => r.table === 'days')!;
  assert.equal(days.rejected, 2, 'both rows of the contested key are refused (without the identity: one of them loaded)');
  assert.deepEqual(await query(url, `SELECT id FROM days ORDER BY id`), [{ id: 'd2' }]);
});
