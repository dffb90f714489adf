// A document that extract can no longer stage (an edit nested a mapped field 101 levels deep, or
// named a field twice) is refused alone; the rows it held must leave on an incremental run as they
// do on a full one (a complete read keeps only what it staged), or the two disagree: the README's
// exact mirror ("after any incremental load every table equals what a full run of the current
// documents would give"). Dumps written byte by byte, loaded into a real PostgreSQL.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { runExtract } from '../../extract/index.ts';
import { runLoad } from '../../load/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { runTransform } from '../../transform/index.ts';
import { verifyRun } from '../../audit/verify.ts';
import { useServers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { writeFile } from 'node:fs/promises';
import { cleanSample, CORPUS_PIPELINE, goodThing, oid, writeSampleDump, type Sample } from '../hostile/corpus/sample.ts';
import { nestedValue, stringValue, withElement } from '../hostile/corpus/raw-bson.ts';

const servers = useServers({ mongo: false });
const EDITED = new Date(Date.UTC(2024, 2, 20));

/** The clean sample with thing 10 edited (a later update_date) so that extract refuses it. */
const edits: Record<string, (s: Sample) => void> = {
  'too_deep': (s) => {
    const { address: _address, ...rest } = goodThing(oid(10), { update_date: EDITED });
    s.things![0] = withElement(rest, 0x03, 'address', nestedValue(101));
  },
  'duplicate_field': (s) => void (s.things![0] = withElement(goodThing(oid(10), { update_date: EDITED }), 0x02, 'label', stringValue('twice'))),
};

async function contents(url: string): Promise<Record<string, string[]>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, string[]> = {};
    for (const table of ['owners', 'things', 'things_tags', 'daily', 'specials']) {
      out[table] = (await client.query(`SELECT t::text AS r FROM ${table} t`)).rows.map((r: { r: string }) => r.r).sort();
    }
    return out;
  } finally {
    await client.end();
  }
}

for (const [reason, edit] of Object.entries(edits)) {
  test(`a loaded document extract now refuses (${reason}): an incremental run removes its rows as a full run does, and names it in the keys files`, async (t: TestContext) => {
    const dir = await tempDir('etl-extract-rejected-', t);
    const pipelineFile = path.join(dir, 'pipeline.yaml');
    await writeFile(pipelineFile, CORPUS_PIPELINE);
    const model = await loadPipeline(pipelineFile);
    await writeSampleDump(path.join(dir, 'before'), cleanSample());
    const after = cleanSample();
    edit(after);
    await writeSampleDump(path.join(dir, 'after'), after);

    const run = async (url: string, staging: string, dump: string, full: boolean) => {
      const postgres = { connectionString: url, host: '', port: 0, database: '', user: '', password: null };
      const { runId } = await runExtract({ model, stagingDir: staging, source: { kind: 'dump', path: path.join(dir, dump) }, full, postgres });
      await runTransform({ model, stagingDir: staging, runId });
      await runLoad({ model, stagingDir: staging, runId, postgres });
      return runPaths(staging, runId);
    };
    const incremental = await servers.postgres.createDatabase(`${t.name} incremental`);
    await run(incremental, path.join(dir, 'staging'), 'before', true);
    const paths = await run(incremental, path.join(dir, 'staging'), 'after', false);
    const manifest = await readManifest(paths);
    assert.equal(manifest.stages.extract!.full, false, 'the second run is incremental');
    assert.deepEqual(manifest.stages.extract!.collections.things!.rejected_reasons, { [reason]: 1 });

    const full = await servers.postgres.createDatabase(`${t.name} full`);
    await run(full, path.join(dir, 'staging-full'), 'after', true);
    const mirrored = await contents(incremental);
    assert.deepEqual(mirrored, await contents(full));
    assert.ok(!mirrored.things!.some((r) => r.includes(oid(10).toHexString())), 'the refused document has no row');
    assert.ok(!mirrored.things_tags!.some((r) => r.includes(oid(10).toHexString())), 'nor links');
    for (const table of ['things', 'things_tags']) assert.equal(manifest.stages.transform!.tables[table]!.extract_rejected, 1, `${table}: the refused document is in its scope`);
    assert.deepEqual((await verifyRun({ target: paths.dir })).mismatches, []);
  });
}
