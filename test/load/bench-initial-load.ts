// Benchmark (not a test): the initial load of a staged run into empty tables, `etl load` against
// `psql \copy` of the same CSVs into the same empty tables, in one transaction each.
//   npx tsx test/load/bench-initial-load.ts <staging dir> [run id]
// Baselines: psql into the tables `etl schema` creates (primary keys, unique constraints and
// foreign keys: the same indexes and the same per-row foreign-key checks), and psql into the same
// tables without their foreign keys (indexes only).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPostgres } from '../harness/index.ts';
import { withClient } from '../harness/schema.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { applySchema } from '../../schema/apply.ts';
import { ident, identList } from '../../schema/sql.ts';
import { COPY_CSV_OPTIONS } from '../../staging/csv.ts';
import { readManifest } from '../../staging/manifest.ts';
import { resolveRun } from '../../staging/run-folder.ts';
import { runLoad } from '../../load/index.ts';
import { postgresConfig } from './model-fixture.ts';

const [stagingDir, runId] = process.argv.slice(2);
if (!stagingDir) throw new Error('usage: bench-initial-load.ts <staging dir> [run id]');
const PSQL = process.env.BENCH_PSQL ?? '/usr/bin/psql';

const paths = await resolveRun(stagingDir, runId ?? null);
const manifest = await readManifest(paths);
const model = await loadPipeline(paths.pipelineCopy);
const tables = model.loadOrder.filter((t) => manifest.stages.transform?.tables[t]);
const rows = tables.reduce((a, t) => a + manifest.stages.transform!.tables[t]!.rows, 0);
const server = await startPostgres();

async function psqlCopy(url: string): Promise<number> {
  const script = path.join(os.tmpdir(), `bench-copy-${process.pid}.sql`);
  const lines = tables.map((t) => `\\copy ${ident(t)} (${identList(model.tables.get(t)!.stagedColumns.map((c) => c.name))}) FROM '${paths.transformCsv(t)}' WITH ${COPY_CSV_OPTIONS}`);
  await writeFile(script, `${lines.join('\n')}\n`);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) =>
    execFile(PSQL, ['-X', '-q', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '-f', script, url], { maxBuffer: 1 << 26 }, (e, _o, stderr) => (e ? reject(new Error(stderr)) : resolve())),
  );
  return (performance.now() - t0) / 1000;
}

try {
  const line = (label: string, seconds: number) => `${label.padEnd(44)} ${seconds.toFixed(2).padStart(7)} s  ${Math.round(rows / seconds).toLocaleString('en-US').padStart(9)} rows/s`;
  console.log(`run ${paths.runId}: ${tables.length} tables, ${rows.toLocaleString('en-US')} staged rows`);

  const etlUrl = await server.createDatabase('bench_etl');
  await withClient(etlUrl, (c) => applySchema(c, model));
  const t0 = performance.now();
  const report = await runLoad({ model, stagingDir, runId: paths.runId, postgres: postgresConfig(etlUrl) });
  const etlSeconds = (performance.now() - t0) / 1000;
  const inserted = report.tables.reduce((a, t) => a + t.inserted, 0);
  console.log(line('etl load (empty tables)', etlSeconds), ` (${inserted.toLocaleString('en-US')} inserted)`);

  const fkUrl = await server.createDatabase('bench_psql_fk');
  await withClient(fkUrl, (c) => applySchema(c, model));
  try {
    const fkSeconds = await psqlCopy(fkUrl);
    console.log(line('psql \\copy, same tables (keys + FKs)', fkSeconds), ` ratio ${(etlSeconds / fkSeconds).toFixed(2)}×`);
  } catch (e) {
    // The sample has dangling references, as production does: a plain COPY cannot load it.
    console.log(`psql \\copy, same tables (keys + FKs): fails: ${(e as Error).message.split('\n').find((l) => l.includes('ERROR'))?.trim()}`);
  }

  const idxUrl = await server.createDatabase('bench_psql_idx');
  await withClient(idxUrl, async (c) => {
    await applySchema(c, model);
    const fks = await c.query<{ rel: string; con: string }>(`SELECT conrelid::regclass::text AS rel, conname AS con FROM pg_constraint WHERE contype = 'f'`);
    for (const f of fks.rows) await c.query(`ALTER TABLE ${f.rel} DROP CONSTRAINT ${ident(f.con)}`);
  });
  const idxSeconds = await psqlCopy(idxUrl);
  console.log(line('psql \\copy, same tables without FKs', idxSeconds), ` ratio ${(etlSeconds / idxSeconds).toFixed(2)}×`);
} finally {
  await server.stop();
}
