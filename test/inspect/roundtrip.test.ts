// The whole chain on a Wappizy-shaped sample: extract → transform → load, then `diff --deep` must
// find nothing — every row a load wrote compares equal, and the rows the load refused (dangling
// references in the sample) are reported as refused with the load's own count, never as missing.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { runLoad } from '../../load/index.ts';
import { runDiff } from '../../inspect/diff.ts';
import { PIPELINE } from './planted.ts';
import { etl } from '../harness/cli.ts';

const servers = useServers();

async function sample(url: string, db: string, scale: number): Promise<number | null> {
  const r = await etl(['sample', '--scale', String(scale), '--mongo-url', url, '--db', db]);
  if (r.code !== 0) process.stderr.write(r.stderr);
  return r.code;
}

test('after a full load of the sample, diff --deep finds no difference', async (t) => {
  const m = await loadPipeline(PIPELINE);
  const pgUrl = await servers.postgres.createDatabase(t.name);
  const mongo = await servers.mongo.newDatabase(t.name);
  assert.equal(await sample(mongo.url, mongo.name, 3000), 0);
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-roundtrip-'));
  t.after(() => rm(staging, { recursive: true, force: true }));
  const postgres = { connectionString: pgUrl, host: '', port: 0, database: '', user: '', password: null };
  const source = { url: mongo.url, database: mongo.name };

  await runExtract({ model: m, stagingDir: staging, source: { kind: 'mongodb', mongo: source }, postgres, full: true });
  const transformed = await runTransform({ model: m, stagingDir: staging });
  const loaded = await runLoad({ model: m, stagingDir: staging, postgres });
  const r = await runDiff({ model: m, mongo: source, postgres, deep: true });

  const differing = r.tables.filter((x) => !x.identical).map((x) => ({ table: x.table, missing: x.missing.sample, extra: x.extra.sample, different: x.different?.sample }));
  assert.deepEqual(differing, []);
  assert.equal(r.identical, true);
  for (const tr of r.tables) {
    const ld = loaded.tables.find((x) => x.table === tr.table)!;
    const tf = transformed.tables.find((x) => x.table === tr.table)!;
    assert.equal(tr.refused.count, ld.rejected, `${tr.table}: refused = rows the load rejected`);
    assert.equal(tr.rejected.count, tf.rejected, `${tr.table}: rejected = rows transform rejected`);
    assert.equal(tr.postgres.rows, tr.mongo.rows - tr.refused.count, `${tr.table}: every other expected row is there`);
  }
  assert.ok(r.totals.refused > 0, 'the sample holds dangling references');
});
