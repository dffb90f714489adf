// A parent's key index built after its COPY (load/indexes.ts): in a first load its referencing
// tables are still empty, so their foreign keys are dropped and re-added around the fill. The
// outcome must be the ordinary path's: rows, etl_pending, rejects files and the catalog (every
// constraint, index and trigger as it was). A referencing table that already holds a row keeps the
// old behaviour: the index stays and is filled row by row.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { createTables } from '../harness/schema.ts';
import { runLoad } from '../../load/index.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { stageRun } from './staged-run.ts';
import { chainModel, postgresConfig, query, ts } from './model-fixture.ts';

const servers = useServers({ mongo: false });

const model = chainModel({ meals: true, mealsPlan: true });

const at = ts('1 10:00:00');
const data = {
  plans: { rows: [['p1', at, at], ['p2', at, at]] },
  days: { rows: [['d1', at, at, 'p1'], ['d2', at, at, 'p9'], ['d3', at, at, null], ['d4', at, at, 'p2']] },
  meals: { rows: [['m1', at, at, 'd1', 'p1'], ['m2', at, at, 'd2', 'p2'], ['m3', at, at, 'd3', 'p8'], ['m4', at, at, 'd4', null]] },
};

const schemaOnly = (url: string): Promise<void> => createTables(url, model);

/** The index oids of a table: a rebuilt index gets a new one. */
const indexOids = (url: string, table: string) => query(url, `SELECT indexrelid::int AS oid FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`, [table]);

/** Everything the load leaves: rows, pending entries (their run and time aside), the catalog. */
async function outcome(url: string): Promise<Record<string, unknown>> {
  const rows = async (table: string) => query(url, `SELECT * FROM ${table} ORDER BY id`);
  return {
    plans: await rows('plans'),
    days: await rows('days'),
    meals: await rows('meals'),
    pending: await query(url, `SELECT table_name, row_key, owner, kind, row, missing FROM etl_pending ORDER BY table_name, row_key::text`),
    constraints: await query(
      url,
      `SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def, condeferrable, condeferred, convalidated FROM pg_constraint WHERE conrelid IN ('plans'::regclass, 'days'::regclass, 'meals'::regclass) ORDER BY 1, 2`,
    ),
    indexes: await query(url, `SELECT indexrelid::regclass::text AS i, pg_get_indexdef(indexrelid) AS def, indisclustered FROM pg_index WHERE indrelid IN ('plans'::regclass, 'days'::regclass, 'meals'::regclass) ORDER BY 1`),
    triggers: await query(
      url,
      `SELECT tgrelid::regclass::text AS t, tgfoid::regproc::text AS f, tgconstrrelid::regclass::text AS other, tgenabled, tgdeferrable, tginitdeferred, tgtype FROM pg_trigger WHERE tgrelid IN ('plans'::regclass, 'days'::regclass, 'meals'::regclass) ORDER BY 1, 2, 3, 7`,
    ),
  };
}

async function rejectsFiles(staging: string, runId: string): Promise<Record<string, string>> {
  const paths = runPaths(staging, runId);
  const out: Record<string, string> = {};
  for (const t of ['days', 'meals']) out[t] = await readFile(paths.loadRejects(t), 'utf8');
  return out;
}

test('a parent whose referencing tables are empty has its key index built after its COPY, with the outcome of the ordinary path', async (t) => {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-load-'));
  t.after(() => rm(staging, { recursive: true, force: true }));
  const runId = await stageRun(staging, model, data);

  const ordinary = await servers.postgres.createDatabase(`${t.name} ordinary`);
  await schemaOnly(ordinary);
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(ordinary) });
  const expected = { ...(await outcome(ordinary)), rejects: await rejectsFiles(staging, runId) };

  const bulk = await servers.postgres.createDatabase(`${t.name} bulk`);
  await schemaOnly(bulk);
  const before = { plans: await indexOids(bulk, 'plans'), days: await indexOids(bulk, 'days') };
  const report = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(bulk), bulkRows: 1 });
  assert.deepEqual({ ...(await outcome(bulk)), rejects: await rejectsFiles(staging, runId) }, expected);
  assert.deepEqual(
    report.tables.map((r) => [r.table, r.inserted, r.rejected, r.nulled]),
    [['plans', 2, 0, 0], ['days', 3, 1, 0], ['meals', 3, 1, 1]],
  );
  // The path was taken: the parents' key indexes were re-created (new oids).
  assert.notDeepEqual(await indexOids(bulk, 'plans'), before.plans);
  assert.notDeepEqual(await indexOids(bulk, 'days'), before.days);
});

test('a parent referenced by a table that holds a row keeps its key index during the COPY', async (t) => {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-load-'));
  t.after(() => rm(staging, { recursive: true, force: true }));
  await stageRun(staging, model, { plans: data.plans, days: data.days });
  const url = await servers.postgres.createDatabase(t.name);
  await schemaOnly(url);
  // A meal that references no day: days is empty, meals is not.
  await query(url, `INSERT INTO meals (id, created_at, updated_at, day_id, plan_id) VALUES ('m0', $1, $1, NULL, NULL)`, [at]);
  const before = { plans: await indexOids(url, 'plans'), days: await indexOids(url, 'days') };
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), bulkRows: 1 });
  assert.deepEqual(await indexOids(url, 'days'), before.days, 'meals holds a row: days keeps its index');
  assert.deepEqual(await indexOids(url, 'plans'), before.plans, 'meals holds a row: plans keeps its index');
  assert.deepEqual(await query(url, `SELECT id, plan_id FROM days ORDER BY id`), [
    { id: 'd1', plan_id: 'p1' },
    { id: 'd3', plan_id: null },
    { id: 'd4', plan_id: 'p2' },
  ]);
  const fks = await query(url, `SELECT conname FROM pg_constraint WHERE contype = 'f' ORDER BY conname`);
  assert.deepEqual(fks, [{ conname: 'days_plan_id_fkey' }, { conname: 'meals_day_id_fkey' }, { conname: 'meals_plan_id_fkey' }]);
});
