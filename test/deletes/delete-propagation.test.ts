// Delete propagation in runLoad against a real PostgreSQL holding the pipeline.yaml tables: rows
// whose key is not in the staged live set go, rows referencing them follow their column's
// on_missing policy (reject → deleted, set_null → nulled), in one transaction, and nothing happens
// without a staged live set or, unless forced, with an empty one.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import { applySchema } from '../../schema/apply.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { runLoad, type LoadReport } from '../../load/index.ts';
import { LoadError } from '../../errors/etl-error.ts';
import { stageRun, type StagedTable } from '../load/staged-run.ts';
import { postgresConfig } from '../load/model-fixture.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');
const T0 = '2024-01-01 00:00:00.000';

/** A staged run holding no row, whose tables `live` (table → keys) staged their live sets. */
async function stagedRun(dir: string, model: PipelineModel, live: Record<string, string[]>): Promise<string> {
  const data: Record<string, StagedTable> = {};
  for (const [table, keys] of Object.entries(live)) data[table] = { rows: [], keys: [], live: keys };
  return stageRun(dir, model, data);
}

async function seed(client: pg.Client): Promise<void> {
  const ins = async (table: string, row: Record<string, unknown>) => {
    const cols = Object.keys(row);
    await client.query(
      `INSERT INTO ${pg.escapeIdentifier(table)} (${cols.map((c) => pg.escapeIdentifier(c)).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
      Object.values(row),
    );
  };
  const base = { created_at: T0, updated_at: T0 };
  await ins('companies', { id: 'c1', name: 'Acme', ...base });
  for (const u of ['u1', 'u2', 'u3']) await ins('users', { id: u, firstname: u, lastname: u, email: `${u}@x.fr`, role: 'CUSTOMER', company_id: 'c1', ...base });
  await ins('events', { id: 'e1', name: 'E', type: 'webinar', start_date: T0, end_date: T0, company_id: 'c1', ...base });
  await ins('user_events', { user_id: 'u1', event_id: 'e1', ...base });
  await ins('user_events', { user_id: 'u2', event_id: 'e1', ...base });
  await ins('messages', { id: 'm1', sender_id: 'u2', receiver_id: 'u1', content: 'hi', ...base });
  await ins('messages', { id: 'm2', sender_id: 'u1', receiver_id: 'u3', content: 'hey', ...base });
  await ins('targets', { id: 't1', name: 'T', ...base });
  await ins('coachings', { id: 'co1', user_id: 'u1', diet_id: 'u2', status: 'S', ...base });
  await ins('coachings', { id: 'co2', user_id: 'u2', diet_id: 'u3', status: 'S', ...base });
  await ins('coaching_reasons', { coaching_id: 'co2', target_id: 't1', type: 'reason', ...base });
  await ins('appointments', { id: 'a1', user_id: 'u1', coaching_id: 'co2', start_date: T0, end_date: T0, ...base });
  await ins('users_logbook', { user_id: 'u2', day: '2024-01-01', ...base });
  await ins('users_logbook', { user_id: 'u1', day: '2024-01-01', ...base });
}

async function ids(client: pg.Client, table: string, column = 'id'): Promise<string[]> {
  const r = await client.query(`SELECT ${pg.escapeIdentifier(column)} AS k FROM ${pg.escapeIdentifier(table)} ORDER BY 1`);
  return r.rows.map((x: { k: string | null }) => String(x.k));
}

async function setup(t: { name: string; after(fn: () => unknown): void }) {
  const model = await loadPipeline(PIPELINE);
  const url = await servers.postgres.createDatabase(t.name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  await applySchema(client, model);
  await seed(client);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-deletes-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const load = (o: { tables?: string[]; allowDeleteAll?: boolean; runId?: string } = {}) =>
    runLoad({ model, stagingDir: dir, postgres: postgresConfig(url), ...o });
  return { model, client, dir, load };
}

function byTable(report: LoadReport) {
  return Object.fromEntries((report.deletions?.tables ?? []).map((x) => [x.table, x]));
}

test('a gone user takes its links, its messages and coachings (reject) and nulls the diets (set_null)', async (t) => {
  const { model, client, dir, load } = await setup(t);
  await stagedRun(dir, model, { users: ['u1', 'u3'], user_events: ['u1', 'u3'] });
  const loaded = await load();
  const report = loaded.deletions!;

  assert.deepEqual(await ids(client, 'users'), ['u1', 'u3']);
  assert.deepEqual(await ids(client, 'user_events', 'user_id'), ['u1']);
  assert.deepEqual(await ids(client, 'messages'), ['m2'], 'the message sent by u2 is refused, as a full load would');
  assert.deepEqual(await ids(client, 'coachings'), ['co1']);
  assert.deepEqual(await ids(client, 'coachings', 'diet_id'), ['null'], 'co1.diet_id (set_null) pointed at u2');
  assert.deepEqual(await ids(client, 'coaching_reasons', 'coaching_id'), [], 'co2 is gone, so are its reasons');
  assert.deepEqual(await ids(client, 'appointments'), [], 'a1 referenced co2');
  assert.deepEqual(await ids(client, 'users_logbook', 'user_id'), ['u1'], 'a dedupe table follows its foreign key');
  assert.deepEqual(await ids(client, 'events'), ['e1']);

  const r = byTable(loaded);
  assert.deepEqual(report.propagated, ['users', 'user_events']);
  assert.deepEqual({ ...r.users }, { table: 'users', live: 2, gone: 1, referencing: 0, nulled: 0, nulledColumns: {} });
  assert.equal(r.user_events!.gone, 1);
  assert.equal(r.user_events!.referencing, 0, 'counted once, as gone');
  assert.equal(r.messages!.referencing, 1);
  assert.equal(r.messages!.live, null);
  assert.equal(r.coachings!.referencing, 1);
  assert.equal(r.coachings!.nulled, 1);
  assert.deepEqual(r.coachings!.nulledColumns, { diet_id: 1 });
  assert.equal(r.coaching_reasons!.referencing, 1);
  assert.equal(r.appointments!.referencing, 1);
  assert.equal(r.users_logbook!.referencing, 1);
  assert.equal(report.deleted, 1 + 1 + 1 + 1 + 1 + 1 + 1);
  assert.equal(r.events, undefined, 'untouched tables are not listed');
});

test('nothing is deleted without a staged live set, or for tables this load did not merge', async (t) => {
  const { model, client, dir, load } = await setup(t);
  await stageRun(dir, model, { users: { rows: [], keys: [] } });
  const r1 = await load();
  assert.equal(r1.deletions, null);
  await stageRun(dir, model, { companies: { rows: [], keys: [] }, events: { rows: [], keys: [] }, users: { rows: [], keys: [], live: ['u1'] } });
  const r2 = await load({ tables: ['companies', 'events'] });
  assert.equal(r2.deletions, null);
  assert.deepEqual(await ids(client, 'users'), ['u1', 'u2', 'u3']);
});

test('an empty live set for a table holding rows is refused unless forced', async (t) => {
  const { model, client, dir, load } = await setup(t);
  const run = await stagedRun(dir, model, { companies: [] });
  await assert.rejects(load(), (e: unknown) => e instanceof LoadError && e.code === 'delete_all_refused' && /all 1 rows of companies/.test(e.message));
  assert.deepEqual(await ids(client, 'companies'), ['c1']);

  const r = byTable(await load({ runId: run, allowDeleteAll: true }));
  assert.equal(r.companies!.gone, 1);
  assert.equal(r.users!.nulled, 3, "users.company_id is set_null: the users stay");
  assert.equal(r.events!.nulled, 1);
  assert.deepEqual(await ids(client, 'companies'), []);
  assert.deepEqual(await ids(client, 'users'), ['u1', 'u2', 'u3']);
  assert.deepEqual(await ids(client, 'users', 'company_id'), ['null', 'null', 'null']);
});

test('an empty live set of a filtered table whose collection still has documents: the hint names the filter, not an empty collection', async (t) => {
  const { model, client, dir, load } = await setup(t);
  // The last menu became a webinar: events still has e1, menus (filter __t: menu) keeps no document.
  await client.query(`INSERT INTO menus (id, name, created_at, updated_at) VALUES ('e1', 'Menu', $1, $1)`, [T0]);
  await stagedRun(dir, model, { events: ['e1'], menus: [] });
  await assert.rejects(load(), (e: unknown) => {
    assert.ok(e instanceof LoadError && e.code === 'delete_all_refused', String(e));
    assert.match(e.message, /all 1 rows of menus/);
    assert.equal(e.hint, 'check the source database and collection names (extract warns about a missing collection); if no document of events matches the filter of menus ({"__t":"menu"}) any more, load again with --allow-delete-all. Nothing was changed');
    return true;
  });
  assert.deepEqual(await ids(client, 'menus'), ['e1']);
});

test('a live keys file that differs from the manifest is refused before anything is deleted', async (t) => {
  const { model, client, dir, load } = await setup(t);
  const run = await stagedRun(dir, model, { users: ['u1'] });
  await writeFile(path.join(runPaths(dir, run).transformDir, 'users.live.csv'), 'id\nu1\nu2\n');
  await assert.rejects(load(), /changed since transform wrote it/);
  assert.deepEqual(await ids(client, 'users'), ['u1', 'u2', 'u3']);
});
