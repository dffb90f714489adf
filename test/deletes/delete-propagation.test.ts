// load/delete-propagation.ts against a real PostgreSQL holding the pipeline.yaml tables: rows whose
// key is not in the staged live set go, rows referencing them follow their column's on_missing
// policy (reject → deleted, set_null → nulled), in one transaction, and nothing happens without a
// staged live set or, unless forced, with an empty one.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { applySchema } from '../../schema/apply.ts';
import { createRun, type RunPaths } from '../../staging/run-folder.ts';
import type { Manifest } from '../../staging/manifest.ts';
import { propagateDeletes, type DeletePropagationReport } from '../../load/delete-propagation.ts';
import { LoadError } from '../../model/errors.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');
const T0 = '2024-01-01 00:00:00.000';

/** A staged run whose transform section records live sets `keys` (table → [column, keys]). */
async function stagedRun(dir: string, live: Record<string, [string, string[]]>): Promise<{ paths: RunPaths; manifest: Manifest }> {
  const paths = await createRun(dir);
  const tables: Record<string, unknown> = {};
  for (const [table, [column, keys]] of Object.entries(live)) {
    const text = `${column}\n${keys.map((k) => `${k}\n`).join('')}`;
    const file = path.join(paths.transformDir, `${table}.live.csv`);
    await writeFile(file, text);
    tables[table] = {
      live: { file: paths.relative(file), bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex'), records: keys.length, column },
    };
  }
  const manifest = {
    format: 1,
    run_id: paths.runId,
    tool_version: 'test',
    pipeline_sha256: 'x',
    source: { kind: 'mongodb', description: 'test' },
    destination: null,
    stages: { transform: { status: 'done', started_at: T0, ended_at: T0, pipeline_sha256: 'x', tables } },
  } as unknown as Manifest;
  return { paths, manifest };
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
  return { model, client, dir };
}

function byTable(report: DeletePropagationReport) {
  return Object.fromEntries(report.tables.map((x) => [x.table, x]));
}

test('a gone user takes its links, its messages and coachings (reject) and nulls the diets (set_null)', async (t) => {
  const { model, client, dir } = await setup(t);
  const { paths, manifest } = await stagedRun(dir, { users: ['id', ['u1', 'u3']], user_events: ['user_id', ['u1', 'u3']] });
  await client.query('BEGIN');
  const report = await propagateDeletes({ client, model, paths, manifest, tables: [...model.loadOrder] });
  await client.query('COMMIT');

  assert.deepEqual(await ids(client, 'users'), ['u1', 'u3']);
  assert.deepEqual(await ids(client, 'user_events', 'user_id'), ['u1']);
  assert.deepEqual(await ids(client, 'messages'), ['m2'], 'the message sent by u2 is refused, as a full load would');
  assert.deepEqual(await ids(client, 'coachings'), ['co1']);
  assert.deepEqual(await ids(client, 'coachings', 'diet_id'), ['null'], 'co1.diet_id (set_null) pointed at u2');
  assert.deepEqual(await ids(client, 'coaching_reasons', 'coaching_id'), [], 'co2 is gone, so are its reasons');
  assert.deepEqual(await ids(client, 'appointments'), [], 'a1 referenced co2');
  assert.deepEqual(await ids(client, 'users_logbook', 'user_id'), ['u1'], 'a dedupe table follows its foreign key');
  assert.deepEqual(await ids(client, 'events'), ['e1']);

  const r = byTable(report);
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
  const { model, client, dir } = await setup(t);
  const none = await stagedRun(dir, {});
  const r1 = await propagateDeletes({ client, model, ...none, tables: [...model.loadOrder] });
  assert.deepEqual(r1, { propagated: [], tables: [], deleted: 0 });
  const staged = await stagedRun(dir, { users: ['id', ['u1']] });
  const r2 = await propagateDeletes({ client, model, ...staged, tables: ['companies', 'events'] });
  assert.equal(r2.deleted, 0);
  assert.deepEqual(await ids(client, 'users'), ['u1', 'u2', 'u3']);
});

test('an empty live set for a table holding rows is refused unless forced', async (t) => {
  const { model, client, dir } = await setup(t);
  const { paths, manifest } = await stagedRun(dir, { companies: ['id', []] });
  await client.query('BEGIN');
  await assert.rejects(
    propagateDeletes({ client, model, paths, manifest, tables: [...model.loadOrder] }),
    (e: unknown) => e instanceof LoadError && e.code === 'delete_all_refused' && /all 1 rows of companies/.test(e.message),
  );
  await client.query('ROLLBACK');
  assert.deepEqual(await ids(client, 'companies'), ['c1']);

  await client.query('BEGIN');
  const report = await propagateDeletes({ client, model, paths, manifest, tables: [...model.loadOrder], allowDeleteAll: true });
  await client.query('COMMIT');
  const r = byTable(report);
  assert.equal(r.companies!.gone, 1);
  assert.equal(r.users!.nulled, 3, "users.company_id is set_null: the users stay");
  assert.equal(r.events!.nulled, 1);
  assert.deepEqual(await ids(client, 'companies'), []);
  assert.deepEqual(await ids(client, 'users'), ['u1', 'u2', 'u3']);
  assert.deepEqual(await ids(client, 'users', 'company_id'), ['null', 'null', 'null']);
});

test('a live keys file that differs from the manifest is refused before anything is deleted', async (t) => {
  const { model, client, dir } = await setup(t);
  const { paths, manifest } = await stagedRun(dir, { users: ['id', ['u1']] });
  await writeFile(path.join(paths.transformDir, 'users.live.csv'), 'id\nu1\nu2\n');
  await client.query('BEGIN');
  await assert.rejects(propagateDeletes({ client, model, paths, manifest, tables: [...model.loadOrder] }), /not the file transform wrote/);
  await client.query('ROLLBACK');
  assert.deepEqual(await ids(client, 'users'), ['u1', 'u2', 'u3']);
});
