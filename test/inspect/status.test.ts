// runStatus on a real PostgreSQL: before anything exists, then with hand-written state rows and a
// staging folder holding a loaded run, an unloaded transformed run and an extract-only run.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { stateTables } from '../../schema/state-tables.ts';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { runStatus } from '../../inspect/status.ts';
import { renderStatus } from '../../bin/commands/status.ts';
import { paint } from '../../bin/output.ts';
import { applySchema } from '../../schema/apply.ts';
import type { Queryable } from '../../schema/sql.ts';
import { StateReads, type WatermarkRow } from '../../schema/state-reads.ts';
import { stagedRun } from './staged-manifest.ts';
import { model } from './planted.ts';

const servers = useServers({ mongo: false });

const postgresOf = (url: string) => ({ connectionString: url, host: '', port: 0, database: '', user: '', password: null });

async function tempDir(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-status-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A database with the pipeline's schema and state tables, filled by `fill`; its URL. */
async function stateDatabase(t: { name: string }, m: Awaited<ReturnType<typeof model>>, fill: (client: pg.Client) => Promise<void>): Promise<string> {
  const url = await servers.postgres.createDatabase(t.name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applySchema(client, m);
    await fill(client);
  } finally {
    await client.end();
  }
  return url;
}

const at = '2024-03-01T10:00:00.000Z';
const done = { status: 'done', started_at: at, ended_at: at };
const extracted = (tables: string[]) => ({ ...done, full: true, server_started_at: at, tables, collections: {} });
const transformed = (tables: string[]) => ({ ...done, pipeline_sha256: 'x', tables: Object.fromEntries(tables.map((t) => [t, { rows: 1 }])) });

test('status before any load: never loaded, run etl schema, every table missing', async (t) => {
  const m = await model();
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempDir(t);
  await stagedRun(staging, '20240301T100000000Z', { extract: extracted(['users']), transform: transformed(['users']) });
  const r = await runStatus({ model: m, postgres: postgresOf(url), stagingDir: staging });
  assert.equal(r.stateTables, false);
  assert.match(r.notice ?? '', /never loaded.*etl schema/);
  assert.equal(r.tables.length, m.loadOrder.length);
  assert.ok(r.tables.every((x) => !x.loaded && x.watermark === null && x.lastRun === null));
  assert.equal(r.drift.clean, false);
  assert.equal(r.drift.findings.filter((f) => f.kind === 'missing_table').length, m.loadOrder.length + stateTables(m).length);
  assert.deepEqual(
    r.unloadedRuns.map((x) => [x.runId, x.next]),
    [['20240301T100000000Z', 'load']],
  );
  assert.equal(r.stagedRuns, 1);
});

test('status with state rows and staged runs', async (t) => {
  const m = await model();
  const url = await stateDatabase(t, m, async (client) => {
    const summary = { staged: 12, inserted: 10, updated: 1, unchanged: 1, deleted: 0, rejected: 2, nulled: 1, duplicates: 0, truncated: [], rejects: null };
    await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, loaded_at, summary) VALUES ($1, 'users', $2, $3, $4)`, [
      '20240201T100000000Z',
      'old-sha',
      '2024-02-01T10:05:00Z',
      JSON.stringify({ ...summary, inserted: 99 }),
    ]);
    await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, loaded_at, summary) VALUES ($1, 'users', $2, $3, $4)`, [
      '20240301T100000000Z',
      m.sha256,
      '2024-03-01T10:05:00Z',
      JSON.stringify(summary),
    ]);
    await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ($1, 'retired_table', $2, '{}')`, ['20240301T100000000Z', m.sha256]);
    await client.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ('users', $1, $2)`, ['2024-03-01T09:55:00Z', '20240301T100000000Z']);
  });
  const staging = await tempDir(t);
  // Loaded (etl_runs has it): not listed. Transformed, not loaded: next load. Extract only: next transform.
  await stagedRun(staging, '20240301T100000000Z', { extract: extracted(['users']), transform: transformed(['users']), load: { ...done, dry_run: false, already_applied: false, tables: {} } });
  await stagedRun(staging, '20240302T100000000Z', { extract: extracted(['users', 'companies']), transform: transformed(['users', 'companies']), load: { ...done, dry_run: true, already_applied: false, tables: {} } });
  await stagedRun(staging, '20240303T100000000Z', { extract: extracted(['users']) });
  await stagedRun(staging, '20240101T100000000Z', { extract: extracted(['users']), transform: transformed(['users']) });
  // Older than users' loaded run, with a table no run loaded: --tables may still load companies.
  await stagedRun(staging, '20240201T120000000Z', { extract: extracted(['users', 'companies']), transform: transformed(['users', 'companies']) });
  await mkdir(path.join(staging, '20240304T100000000Z')); // no manifest

  const r = await runStatus({ model: m, postgres: postgresOf(url), stagingDir: staging });
  assert.equal(r.stateTables, true);
  assert.equal(r.notice, null);
  const users = r.tables.find((x) => x.table === 'users')!;
  assert.equal(users.loaded, true);
  assert.deepEqual(users.watermark && { at: users.watermark.at, runId: users.watermark.runId }, { at: '2024-03-01T09:55:00.000Z', runId: '20240301T100000000Z' });
  assert.equal(users.lastRun?.runId, '20240301T100000000Z');
  assert.equal(users.lastRun?.pipelineChanged, false);
  assert.equal(users.lastRun?.figures.inserted, 10);
  assert.equal(users.lastRun?.figures.nulled, 1);
  assert.equal(users.runsApplied, 2);
  const companies = r.tables.find((x) => x.table === 'companies')!;
  assert.equal(companies.loaded, false);
  assert.equal(companies.watermark, null);
  assert.deepEqual(r.unknownTables, ['retired_table']);
  assert.deepEqual(
    r.unloadedRuns.map((x) => ({ id: x.runId, next: x.next, load: x.manifestLoad, older: x.olderThanLoaded, problem: x.problem !== null })),
    [
      { id: '20240304T100000000Z', next: null, load: null, older: false, problem: true },
      { id: '20240303T100000000Z', next: 'transform', load: null, older: false, problem: false },
      { id: '20240302T100000000Z', next: 'load', load: 'dry_run', older: false, problem: false },
      { id: '20240201T120000000Z', next: 'load', load: null, older: true, problem: false },
      { id: '20240101T100000000Z', next: 'load', load: null, older: true, problem: false },
    ],
  );
  assert.equal(r.stagedRuns, 6);
  // --json says the command to run next as the text does (`next` is the stage, which etl load may refuse).
  assert.deepEqual(
    r.unloadedRuns.map((x) => x.nextCommand),
    [null, 'etl transform --run 20240303T100000000Z', 'etl load --run 20240302T100000000Z', 'etl load --run 20240201T120000000Z --tables companies', 'etl run'],
  );
  // What etl status prints next for each: never a load that etl load refuses.
  const text = renderStatus(r, paint({ isTTY: false }, {}));
  assert.match(text, /20240302T100000000Z .* next: etl load --run 20240302T100000000Z$/m);
  assert.match(text, /20240201T120000000Z .*\n {4}next: etl load --run 20240201T120000000Z --tables companies\n/);
  assert.match(text, /20240101T100000000Z .*\n {4}next: etl run \(a newer run is loaded: etl load refuses this one\)\n/);
  assert.match(text, /older than a run already loaded into users: etl load refuses it/);
  assert.equal(r.drift.clean, true, `drift: ${r.drift.findings.map((f) => f.message).join('; ')}`);
});

test('the state reads of `etl status` ask the catalog once: which state tables exist, fingerprint column included', async (t) => {
  const m = await model();
  const url = await servers.postgres.createDatabase(t.name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  const sent: string[] = [];
  // The real connection, its statements noted on the way.
  const noting = { query: (text: string, values?: unknown[]) => (sent.push(text), client.query(text, values)) } as Queryable;
  const readAll = async () => {
    sent.length = 0;
    const state = await StateReads.open(noting);
    return [await state.watermarkRows(null), await state.lastRuns(null), await state.appliedRuns(), await state.pendingCounts()];
  };
  assert.deepEqual(await readAll(), [null, null, null, null], 'never loaded: no state table');
  assert.equal(sent.length, 1, sent.join('\n'));

  await applySchema(client, m);
  await client.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id, fingerprint) VALUES ('users', $1, 'r1', 'fp')`, [at]);
  const [watermarks, lastRuns, applied, pending] = await readAll();
  assert.deepEqual((watermarks as WatermarkRow[]).map((w) => [w.table, w.runId, w.fingerprint]), [['users', 'r1', 'fp']]);
  assert.deepEqual([lastRuns, applied, pending].map((x) => (x as Map<string, unknown>).size), [0, 0, 0]);
  assert.equal(sent.filter((s) => s.includes('pg_catalog')).length, 1, sent.join('\n'));
  assert.equal(sent.length, 5, 'one catalog read, then one statement a read');
});

test('a run partly loaded here is not said to be loaded into another database; one etl_runs does not know is', async (t) => {
  const m = await model();
  const url = await stateDatabase(t, m, async (client) => {
    await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ('20240301T100000000Z', 'users', $1, '{}')`, [m.sha256]);
  });
  const staging = await tempDir(t);
  const loadDone = { ...done, dry_run: false, already_applied: false, tables: {} };
  // etl load --tables users: its manifest's load is done, etl_runs has users only.
  await stagedRun(staging, '20240301T100000000Z', { extract: extracted(['users', 'companies']), transform: transformed(['users', 'companies']), load: loadDone });
  await stagedRun(staging, '20240302T100000000Z', { extract: extracted(['users']), transform: transformed(['users']), load: loadDone });
  const text = renderStatus(await runStatus({ model: m, postgres: postgresOf(url), stagingDir: staging }), paint({ isTTY: false }, {}));
  assert.match(text, /^ {4}\(partly loaded: users\)$/m);
  assert.match(text, /20240302T100000000Z .*\n {4}\(its manifest says loaded \(into another database\?\)\)$/m);
  assert.equal(text.match(/another database/g)?.length, 1, text);
});

test('a run newer than the watermark\'s run is not said to be refused, though a later run (--since after the watermark) was loaded: etl load refuses by the watermark\'s run', async (t) => {
  const m = await model();
  const url = await stateDatabase(t, m, async (client) => {
    const summary = { staged: 1, inserted: 1, updated: 0, unchanged: 0, deleted: 0, rejected: 0, nulled: 0, duplicates: 0, truncated: [], rejects: null };
    for (const runId of ['20240301T100000000Z', '20240305T100000000Z']) {
      await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ($1, 'users', $2, $3)`, [runId, m.sha256, JSON.stringify(summary)]);
    }
    // The later run read from after the watermark: the watermark, and the run that set it, stayed.
    await client.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ('users', $1, $2)`, ['2024-03-01T09:55:00Z', '20240301T100000000Z']);
  });
  const staging = await tempDir(t);
  await stagedRun(staging, '20240303T100000000Z', { extract: extracted(['users']), transform: transformed(['users']) });
  const r = await runStatus({ model: m, postgres: postgresOf(url), stagingDir: staging });
  assert.deepEqual(
    r.unloadedRuns.map((x) => ({ id: x.runId, older: x.olderThanLoaded, refused: x.refusedTables })),
    [{ id: '20240303T100000000Z', older: false, refused: [] }],
  );
  assert.match(renderStatus(r, paint({ isTTY: false }, {})), /20240303T100000000Z .* next: etl load --run 20240303T100000000Z$/m);
});

test('names from a run folder or the state tables are shown with their controls escaped (a table name in a manifest or in etl_runs reached the terminal raw)', async (t) => {
  const m = await model();
  const hostile = '\u001b[2J\u009b31mevil';
  const url = await stateDatabase(t, m, async (client) => {
    await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ('20240305T100000000Z', 'users', $1, '{}'), ('20240305T100000000Z', $2, $1, '{}')`, [m.sha256, hostile]);
    await client.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ('users', $1, '20240305T100000000Z')`, ['2024-03-05T09:55:00Z']);
  });
  const staging = await tempDir(t);
  // Older than the run that set users' watermark: etl load --tables may load the rest, named in the next step.
  await stagedRun(staging, '20240303T100000000Z', { extract: extracted(['users', hostile]), transform: transformed(['users', hostile]) });
  const r = await runStatus({ model: m, postgres: postgresOf(url), stagingDir: staging });
  assert.deepEqual(r.unloadedRuns.map((x) => x.refusedTables), [['users']]);
  const text = renderStatus(r, paint({ isTTY: false }, {}));
  assert.match(text, /--tables \\u001b\[2J\\u009b31mevil/, 'the next step names the table, escaped');
  assert.match(text, /state rows for tables pipeline\.yaml does not have: .*\\u001b\[2J/, 'the unknown table, escaped');
  assert.doesNotMatch(text, /[\u001b\u009b]/, 'no terminal control');
});
