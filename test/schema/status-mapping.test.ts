// `etl status` says per table whether its mapping changed since its last load and what the next run
// reads: incremental from its watermark, or in full (mapping changed, mapping not recorded by an
// older etl, never loaded, or with another table of its collection), within 100 columns.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { pipelineFingerprints } from '../../model/fingerprint.ts';
import { applySchema } from '../../schema/apply.ts';
import { renderNextReads, runStatus } from '../../inspect/status.ts';
import { renderStatus } from '../../bin/commands/status.ts';

const SHIPPED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');
const servers = useServers({ mongo: false });
const postgresOf = (url: string) => ({ connectionString: url, host: '', port: 0, database: '', user: '', password: null });
const plain = { red: String, green: String, yellow: String, dim: String, bold: String };

test('per table: the mapping state and what the next run reads', async (t) => {
  const model = await loadPipeline(SHIPPED);
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-status-mapping-'));
  t.after(() => rm(staging, { recursive: true, force: true }));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applySchema(client, model);
    const fingerprints = pipelineFingerprints(model);
    for (const name of model.loadOrder) {
      if (name === 'companies') continue; // never loaded
      const fingerprint = name === 'users' ? 'sha256:an-older-mapping' : name === 'menus' ? null : fingerprints.get(name);
      await client.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id, fingerprint) VALUES ($1, '2024-03-01T09:55:00Z', 'r1', $2)`, [name, fingerprint]);
      // menus: loaded by an older etl (no fingerprint) with another pipeline.yaml.
      const sha = name === 'menus' ? 'another-pipeline-sha256' : model.sha256;
      await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ('r1', $1, $2, '{}')`, [name, sha]);
    }
  } finally {
    await client.end();
  }
  const report = await runStatus({ model, postgres: postgresOf(url), stagingDir: staging, describePostgres: 'test' });
  const by = new Map(report.tables.map((x) => [x.table, x]));
  assert.deepEqual(
    ['users', 'users_targets', 'menus', 'events', 'companies', 'offers'].map((n) => [n, by.get(n)!.mapping, by.get(n)!.next.reason, by.get(n)!.next.from, by.get(n)!.next.fullBecauseOf]),
    [
      ['users', 'changed', 'mapping_changed', null, []],
      ['users_targets', 'unchanged', 'watermark', null, ['users']],
      ['menus', 'unrecorded', 'mapping_changed', null, []],
      ['events', 'unchanged', 'watermark', null, ['menus']],
      ['companies', 'new', 'never_loaded', null, []],
      ['offers', 'unchanged', 'watermark', '2024-03-01T09:55:00.000Z', []],
    ],
  );
  const lines = renderNextReads(report.tables);
  assert.equal(lines[0], 'next run (etl run / etl extract, without --full or --since):');
  assert.ok(lines.includes('  full read, mapping changed: users'), lines.join('\n'));
  assert.ok(lines.includes('  full read, loaded by an older etl with another pipeline.yaml: menus'));
  assert.ok(lines.includes('  full read, never loaded: companies'));
  assert.ok(lines.some((l) => /^  full read with users \(same collection\): user_events, users_targets$/.test(l)), lines.join("\n"));
  assert.match(lines.at(-1)!, /^ {2}incremental from the watermark: \d+ table\(s\)$/);
  for (const l of lines) assert.ok(l.length <= 100, `within 100 columns: ${l}`);
  const text = renderStatus(report, plain);
  assert.ok(text.includes('  full read, mapping changed: users\n'));
});
