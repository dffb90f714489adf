// runLoad against a real PostgreSQL, on staged runs written by hand with the staging codecs.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runLoad, type LoadReport, type TableLoadReport } from '../../load/index.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { LoadError, StagingError } from '../../errors/etl-error.ts';
import { pipelineFromYaml } from '../harness/staged-run.ts';
import type { PipelineModel } from '../../model/types.ts';
import { stageRun } from './staged-run.ts';
import { chainModel, checksums, fixtureModel, postgresConfig, query, ts } from './model-fixture.ts';

const servers = useServers({ mongo: false });
const ALL = ['companies', 'users', 'messages', 'user_companies', 'tags', 'logbook', 'pairs', 'etl_watermarks', 'etl_runs'];

async function tempStaging(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-load-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function figures(report: LoadReport, table: string): Omit<TableLoadReport, 'table' | 'strategy' | 'merge' | 'rows' | 'rejectsFile' | 'truncated' | 'pending'> {
  const r = report.tables.find((x) => x.table === table);
  assert.ok(r, `no report for ${table}`);
  const { inserted, updated, unchanged, deleted, rejected, nulled, orphaned, duplicates, staged } = r;
  return { staged, inserted, updated, unchanged, deleted, rejected, nulled, orphaned, duplicates };
}

const f = (staged: number, o: Partial<Record<'inserted' | 'updated' | 'unchanged' | 'deleted' | 'rejected' | 'nulled' | 'orphaned' | 'duplicates', number>>) => ({
  staged,
  inserted: 0,
  updated: 0,
  unchanged: 0,
  deleted: 0,
  rejected: 0,
  nulled: 0,
  orphaned: 0,
  duplicates: 0,
  ...o,
});

/** The first run: every kind of row, a few broken references and duplicates. */
function firstRun() {
  return {
    companies: { rows: [['c1', ts('1 10:00:00'), ts('1 10:00:00'), 'Acme'], ['c2', ts('1 10:00:00'), ts('1 10:00:00'), 'Beta']] },
    users: {
      rows: [
        ['u1', ts('1 10:00:00'), ts('1 10:00:00'), 'Ann', 'c1', '1'],
        ['u2', ts('1 10:00:00'), ts('1 10:00:00'), 'Bob', 'c2', null],
        ['u3', ts('1 10:00:00'), ts('1 10:00:00'), 'Cy', 'c9', '-1'], // company deleted in the app → NULL
      ],
    },
    messages: {
      rows: [
        ['m1', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u2', 'hi,\n"there"\n!'], // two newlines: records and lines differ after it
        ['m2', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u9', 'to a deleted user'],
        ['m3', ts('1 10:00:00'), ts('1 10:00:00'), 'u8', 'u9', 'both gone'],
        ['m4', ts('1 10:00:00'), ts('1 10:00:00'), null, 'u1', ''],
      ],
    },
    user_companies: {
      keys: ['u1', 'u2', 'u3'],
      rows: [
        ['u1', 'c1', ts('1 10:00:00'), ts('1 10:00:00')],
        ['u1', 'c2', ts('1 10:00:00'), ts('1 10:00:00')],
        ['u2', 'c1', ts('1 10:00:00'), ts('1 10:00:00')],
        ['u2', 'c1', ts('1 10:00:00'), ts('1 10:00:00')], // an id twice in one array
        ['u3', 'c9', ts('1 10:00:00'), ts('1 10:00:00')], // dangling item: rejected alone
        ['u3', 'c1', ts('1 10:00:00'), ts('1 10:00:00')],
      ],
    },
    tags: { rows: [['u1', 'a', ts('1 10:00:00'), ts('1 10:00:00')], ['u1', 'a', ts('1 10:00:00'), ts('1 11:00:00')], ['u2', 'b', ts('1 10:00:00'), ts('1 10:00:00')]] },
    logbook: { rows: [['u1', '2024-03-07', ts('7 10:00:00'), ts('7 10:00:00')], ['u2', '2024-03-07', ts('7 10:00:00'), ts('7 10:00:00')]] },
    pairs: {
      rows: [
        ['u1', 'c1', ts('1 10:00:00'), ts('1 12:00:00')],
        ['u1', 'c1', ts('1 10:00:00'), ts('1 10:00:00')], // the same pair, older: the 12:00 one wins
      ],
    },
  };
}

/** The second, incremental run: updates, an older logbook document, a removed link, an emptied array. */
function secondRun() {
  return {
    companies: { rows: [['c1', ts('1 10:00:00'), ts('2 10:00:00'), 'Acme2']] },
    users: {
      rows: [
        ['u1', ts('1 10:00:00'), ts('1 10:00:00'), 'Ann', 'c1', '1'], // unchanged
        ['u2', ts('1 10:00:00'), ts('2 10:00:00'), 'Bob', 'c2', '5'], // updated
      ],
    },
    user_companies: {
      keys: ['u1', 'u2'],
      rows: [['u1', 'c1', ts('1 10:00:00'), ts('2 10:00:00')]], // u1 lost c2, its c1 link took the new date; u2's array emptied
    },
    logbook: {
      rows: [
        ['u1', '2024-03-07', ts('6 10:00:00'), ts('7 09:00:00')], // older than the row: unchanged
        ['u2', '2024-03-07', ts('7 10:00:00'), ts('7 18:00:00')], // newer: updated
        ['u1', '2024-03-08', ts('8 10:00:00'), ts('8 10:00:00')], // new day
      ],
    },
    pairs: { rows: [['u1', 'c1', ts('1 10:00:00'), ts('1 11:00:00')]] }, // older than 12:00: unchanged
  };
}

for (const [path, bulkRows] of [
  ['temp tables', undefined],
  ['the bulk paths', 1],
  // Small tables merged with their foreign keys in place (checks deferred, queued on them), larger
  // ones taking the bulk paths, which drop and re-add their own foreign keys.
  ['both paths in one load', 4],
] as const) {
test(`an initial load, then an incremental one, then the same run again (${path})`, async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const run1 = await stageRun(staging, model, firstRun(), { watermarks: { users: { from: null, next: '2024-03-10T00:00:00.000Z' } } });
  const events: string[] = [];
  const r1 = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), onProgress: (e) => events.push(e.kind), bulkRows });

  assert.equal(r1.runId, run1);
  assert.equal(r1.alreadyApplied, false);
  assert.deepEqual(figures(r1, 'companies'), f(2, { inserted: 2 }));
  assert.deepEqual(figures(r1, 'users'), f(3, { inserted: 3, nulled: 1 }));
  assert.deepEqual(figures(r1, 'messages'), f(4, { inserted: 2, rejected: 2 }));
  assert.deepEqual(figures(r1, 'user_companies'), f(6, { inserted: 4, rejected: 1, duplicates: 1 }));
  assert.deepEqual(figures(r1, 'tags'), f(3, { inserted: 2, duplicates: 1 }));
  assert.deepEqual(figures(r1, 'logbook'), f(2, { inserted: 2 }));
  assert.deepEqual(figures(r1, 'pairs'), f(2, { inserted: 1, duplicates: 1 }));
  assert.ok(events.includes('started') && events.includes('table_done') && events.includes('committing'));

  // Rejects: one line per refused row (the first missing column), set_null listed too.
  const paths = runPaths(staging, run1);
  const messageRejects = (await readFile(paths.loadRejects('messages'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(messageRejects, [
    { table: 'messages', key: { id: 'm2' }, file: 'transform/messages.csv', line: 5, column: 'receiver_id', value: 'u9', references: 'users(id)', reason: 'missing_reference', action: 'reject' },
    { table: 'messages', key: { id: 'm3' }, file: 'transform/messages.csv', line: 6, column: 'sender_id', value: 'u8', references: 'users(id)', reason: 'missing_reference', action: 'reject' },
  ]);
  const userRejects = (await readFile(paths.loadRejects('users'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(userRejects, [
    { table: 'users', key: { id: 'u3' }, file: 'transform/users.csv', line: 4, column: 'company_id', value: 'c9', references: 'companies(id)', reason: 'missing_reference', action: 'set_null' },
  ]);
  await assert.rejects(readFile(paths.loadRejects('companies')), { code: 'ENOENT' });

  assert.deepEqual(await query(url, `SELECT id, company_id, "order" FROM users ORDER BY id`), [
    { id: 'u1', company_id: 'c1', order: 1 },
    { id: 'u2', company_id: 'c2', order: null },
    { id: 'u3', company_id: null, order: -1 },
  ]);
  assert.deepEqual(await query(url, `SELECT id, content FROM messages ORDER BY id`), [
    { id: 'm1', content: 'hi,\n"there"\n!' },
    { id: 'm4', content: '' },
  ]);
  assert.deepEqual(await query(url, `SELECT user_id, company_id FROM user_companies ORDER BY 1, 2`), [
    { user_id: 'u1', company_id: 'c1' },
    { user_id: 'u1', company_id: 'c2' },
    { user_id: 'u2', company_id: 'c1' },
    { user_id: 'u3', company_id: 'c1' },
  ]);
  assert.deepEqual(await query(url, `SELECT user_id, tag, updated_at::text AS u FROM tags ORDER BY 1, 2`), [
    { user_id: 'u1', tag: 'a', u: '2024-03-01 11:00:00' },
    { user_id: 'u2', tag: 'b', u: '2024-03-01 10:00:00' },
  ]);
  assert.deepEqual(await query(url, `SELECT user_id, company_id, updated_at::text AS u FROM pairs`), [{ user_id: 'u1', company_id: 'c1', u: '2024-03-01 12:00:00' }]);
  const logbookIds1 = await query<{ id: number; user_id: string }>(url, `SELECT id, user_id FROM logbook ORDER BY id`);

  // Watermarks: per table, the run's extract watermark; the ledger has every table.
  assert.deepEqual(
    (await query(url, `SELECT table_name, watermark, run_id FROM etl_watermarks WHERE table_name IN ('users', 'tags') ORDER BY 1`)).map((r) => ({ ...r, watermark: (r.watermark as Date).toISOString() })),
    [
      { table_name: 'tags', watermark: '2024-03-10T00:00:00.000Z', run_id: run1 },
      { table_name: 'users', watermark: '2024-03-10T00:00:00.000Z', run_id: run1 },
    ],
  );
  assert.equal((await query(url, `SELECT count(*)::int AS n FROM etl_runs WHERE run_id = $1`, [run1]))[0]!.n, 7);
  const m1 = await readManifest(paths);
  assert.equal(m1.stages.load?.status, 'done');
  assert.equal(m1.stages.load?.tables.messages?.rejected, 2);
  assert.equal(m1.stages.load?.tables.messages?.rejects?.records, 2);
  assert.equal(m1.stages.load?.tables.users?.nulled, 1);

  // ── the incremental run ──
  const run2 = await stageRun(staging, model, secondRun(), { watermarks: { users: { from: '2024-03-09T00:00:00.000Z', next: '2024-03-09T12:00:00.000Z', next_basis: 'dump_dates' } } });
  const r2 = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), bulkRows });
  assert.equal(r2.runId, run2);
  assert.deepEqual(figures(r2, 'companies'), f(1, { updated: 1 }));
  assert.deepEqual(figures(r2, 'users'), f(2, { updated: 1, unchanged: 1 }));
  assert.deepEqual(figures(r2, 'user_companies'), f(1, { updated: 1, deleted: 2 }));
  assert.deepEqual(figures(r2, 'logbook'), f(3, { inserted: 1, updated: 1, unchanged: 1 }));
  assert.deepEqual(figures(r2, 'pairs'), f(1, { unchanged: 1 }));
  assert.deepEqual(
    r2.tables.map((x) => x.table),
    ['companies', 'users', 'user_companies', 'logbook', 'pairs'],
  );
  assert.deepEqual(await query(url, `SELECT user_id, company_id, updated_at::text AS u FROM user_companies ORDER BY 1, 2`), [
    { user_id: 'u1', company_id: 'c1', u: '2024-03-02 10:00:00' },
    { user_id: 'u3', company_id: 'c1', u: '2024-03-01 10:00:00' },
  ]);
  assert.deepEqual(await query(url, `SELECT user_id, day::text, created_at::text AS c, updated_at::text AS u FROM logbook ORDER BY 1, 2`), [
    { user_id: 'u1', day: '2024-03-07', c: '2024-03-07 10:00:00', u: '2024-03-07 10:00:00' },
    { user_id: 'u1', day: '2024-03-08', c: '2024-03-08 10:00:00', u: '2024-03-08 10:00:00' },
    { user_id: 'u2', day: '2024-03-07', c: '2024-03-07 10:00:00', u: '2024-03-07 18:00:00' },
  ]);
  // The SERIAL id of an updated row does not change.
  const logbookIds2 = await query<{ id: number; user_id: string }>(url, `SELECT id, user_id FROM logbook WHERE day = '2024-03-07' ORDER BY id`);
  assert.deepEqual(logbookIds2, logbookIds1);
  // A watermark never goes back (the second run's is older than the first's).
  assert.equal(((await query(url, `SELECT watermark FROM etl_watermarks WHERE table_name = 'users'`))[0]!.watermark as Date).toISOString(), '2024-03-10T00:00:00.000Z');
  // From a dump, whose newest date is all it guarantees, load says once which tables' watermark stays ahead.
  assert.deepEqual(r2.warnings.filter((w) => w.includes('watermark')), [
    `this dump's newest dates are before the watermark of users, user_companies, which stays where run ${run1} set it: the dump was taken before that run, or the newest documents of those tables' collections were deleted since. If it was taken before that run, its rows are older than PostgreSQL's: run etl run --full against the live server`,
  ]);

  // ── the same run again: nothing changes, and the report says so ──
  const before = await checksums(url, ALL);
  const r3 = await runLoad({ model, stagingDir: staging, runId: run2, postgres: postgresConfig(url) });
  assert.equal(r3.alreadyApplied, true);
  assert.deepEqual(r3.tables, []);
  assert.deepEqual(
    r3.skipped.map((s) => s.table),
    ['companies', 'users', 'user_companies', 'logbook', 'pairs'],
  );
  assert.deepEqual(await checksums(url, ALL), before);
  const m2 = await readManifest(runPaths(staging, run2));
  assert.equal(m2.stages.load?.already_applied, false, 'the manifest keeps the record of the load that applied the run');
  assert.equal(m2.stages.load?.tables.logbook?.inserted, 1);
});
}

test('a live run whose watermark is behind the table\'s (a larger margin): the watermark stays, and no warning is printed', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const run1 = await stageRun(staging, model, firstRun(), { watermarks: { users: { from: null, next: '2024-03-10T00:00:00.000Z', next_basis: 'server_clock' } } });
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  await stageRun(staging, model, secondRun(), { watermarks: { users: { from: '2024-03-09T00:00:00.000Z', next: '2024-03-09T12:00:00.000Z', next_basis: 'server_clock' } } });
  const r2 = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.deepEqual(r2.warnings.filter((w) => w.includes('watermark')), []);
  const stored = await query(url, `SELECT table_name, watermark, run_id FROM etl_watermarks WHERE table_name IN ('users', 'tags') ORDER BY 1`);
  assert.deepEqual(stored.map((r) => [r.table_name, (r.watermark as Date).toISOString(), r.run_id]), [
    ['tags', '2024-03-10T00:00:00.000Z', run1],
    ['users', '2024-03-10T00:00:00.000Z', run1],
  ]);
});

test('a failure in a later table rolls everything back, watermarks included, and names the file, line and column', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  await stageRun(staging, model, firstRun(), { watermarks: { users: { from: null, next: '2024-03-10T00:00:00.000Z' } } });
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  const before = await checksums(url, ALL);

  const bad = secondRun();
  bad.logbook.rows.push(['u2', '2024-02-30', ts('8 10:00:00'), ts('8 10:00:00')]);
  const run = await stageRun(staging, model, bad, { watermarks: { users: { from: null, next: '2024-04-01T00:00:00.000Z' } } });
  const error = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) }).then(
    () => assert.fail('the load should fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof LoadError, String(error));
  assert.equal(error.context.table, 'logbook');
  // A dedupe table is loaded from the row each document contributes (transform/<table>.contrib.csv).
  assert.equal(error.context.file, 'transform/logbook.contrib.csv');
  assert.equal(error.context.line, 5);
  assert.equal(error.context.sqlColumn, 'day');
  assert.match(error.message, /logbook.*transform\/logbook\.contrib\.csv line 5, column day: .*2024-02-30/);
  assert.doesNotMatch(error.message, /etl_stage_/);
  assert.deepEqual(await checksums(url, ALL), before, 'companies, users and user_companies were merged before the failure: all rolled back');
  const m = await readManifest(runPaths(staging, run));
  assert.equal(m.stages.load?.status, 'failed');
  assert.equal(m.stages.load?.error?.code, 'pg_22008');
});

/** The first run loaded, then the second run's companies and users only (`--tables`), and the load section that left. */
async function partlyLoadedRun(t: { name: string; after(fn: () => unknown): void }) {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  await stageRun(staging, model, firstRun(), { watermarks: { users: { from: null, next: '2024-03-10T00:00:00.000Z' } } });
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  const run = await stageRun(staging, model, secondRun(), { watermarks: { users: { from: null, next: '2024-04-01T00:00:00.000Z' } } });
  const first = await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url), tables: ['companies', 'users'] });
  const loaded = (await readManifest(runPaths(staging, run))).stages.load!;
  return { url, staging, model, run, first, loaded };
}

test('a failed load of the rest of a partly loaded run keeps the record of the tables loaded before it', async (t) => {
  const { url, staging, model, run, first, loaded } = await partlyLoadedRun(t);
  // The rest fails in the middle: every statement on logbook raises.
  await query(url, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused'; END$$`);
  await query(url, 'CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON logbook FOR EACH STATEMENT EXECUTE FUNCTION refuse()');
  await assert.rejects(runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url) }), /refused/);
  const failed = (await readManifest(runPaths(staging, run))).stages.load!;
  assert.equal(failed.status, 'failed');
  // companies and users landed (etl_runs says so): the failure after them does not erase their figures.
  assert.deepEqual(Object.keys(failed.tables).sort(), first.tables.map((x) => x.table).sort());
  assert.deepEqual(failed.tables, loaded.tables);
  assert.deepEqual(failed.pending, loaded.pending, 'what etl_pending held after the load that committed');
  // A second failure of the rest keeps them too.
  await assert.rejects(runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url) }), /refused/);
  const again = (await readManifest(runPaths(staging, run))).stages.load!;
  assert.equal(again.status, 'failed');
  assert.deepEqual(again.tables, loaded.tables);
  assert.deepEqual(again.pending, loaded.pending);
  // The rest loads once the trigger is gone, and the record holds every table of the run.
  await query(url, 'DROP TRIGGER refuse ON logbook');
  await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url) });
  const done = (await readManifest(runPaths(staging, run))).stages.load!;
  assert.equal(done.status, 'done');
  assert.deepEqual(Object.keys(done.tables).sort(), ['companies', 'logbook', 'pairs', 'user_companies', 'users']);
  assert.deepEqual(done.tables.users, loaded.tables.users);
});

test('a dry run of a partly loaded run leaves the record of the load that committed; the real load after it keeps every table', async (t) => {
  const { url, staging, model, run, loaded } = await partlyLoadedRun(t);
  const before = await checksums(url, ALL);

  const dry = await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url), dryRun: true });
  assert.ok(dry.tables.length > 0, 'the dry run reports the rest of the run');
  assert.deepEqual(await checksums(url, ALL), before);
  assert.deepEqual((await readManifest(runPaths(staging, run))).stages.load, loaded, 'the record of what PostgreSQL holds, as the load that committed left it');
  assert.ok(dry.warnings.some((w) => /dry run.*not recorded/.test(w) && w.includes('companies') && w.includes('users')), dry.warnings.join('\n'));

  // A dry run that fails leaves it too.
  await query(url, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused'; END$$`);
  await query(url, 'CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON logbook FOR EACH STATEMENT EXECUTE FUNCTION refuse()');
  await assert.rejects(runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url), dryRun: true }), /refused/);
  assert.deepEqual((await readManifest(runPaths(staging, run))).stages.load, loaded);
  await query(url, 'DROP TRIGGER refuse ON logbook');

  await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url) });
  const done = (await readManifest(runPaths(staging, run))).stages.load!;
  assert.equal(done.status, 'done');
  assert.equal(done.dry_run, false);
  assert.deepEqual(Object.keys(done.tables).sort(), ['companies', 'logbook', 'pairs', 'user_companies', 'users']);
  assert.deepEqual(done.tables.users, loaded.tables.users);

  // Every table applied: a dry run says so and rewrites nothing either.
  const again = await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url), dryRun: true });
  assert.equal(again.alreadyApplied, true);
  assert.deepEqual((await readManifest(runPaths(staging, run))).stages.load, done);
});

test('--dry-run: the same figures and rejects file, then nothing changed', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const run = await stageRun(staging, model, firstRun());
  const before = await checksums(url, ALL);
  const dry = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), dryRun: true });
  assert.equal(dry.dryRun, true);
  assert.deepEqual(figures(dry, 'messages'), f(4, { inserted: 2, rejected: 2 }));
  assert.deepEqual(await checksums(url, ALL), before, 'not even the tables were created');
  const rejects = await readFile(runPaths(staging, run).loadRejects('messages'), 'utf8');
  assert.equal(rejects.trim().split('\n').length, 2);
  assert.equal((await readManifest(runPaths(staging, run))).stages.load?.dry_run, true);
  // A real load afterwards gives the same figures.
  const real = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  // Figures equal; only the time rows were first held back (pending.since) differs between the two.
  const withoutSince = (r: LoadReport) => r.tables.map((x) => ({ ...x, pending: { ...x.pending, since: x.pending.since === null ? null : 'set' } }));
  assert.deepEqual(withoutSince(real), withoutSince(dry));
});

test('force_reimport + truncate_before_import: TRUNCATE … CASCADE, every emptied table named', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  await stageRun(staging, fixtureModel(), firstRun());
  await runLoad({ model: fixtureModel(), stagingDir: staging, postgres: postgresConfig(url) });

  const model = fixtureModel({ truncateCompanies: true });
  // Only companies is read in full by this run; users' tables incrementally.
  await stageRun(
    staging,
    model,
    { companies: { rows: [['c1', ts('1 10:00:00'), ts('1 10:00:00'), 'Acme']] } },
    { watermarks: { users: { from: '2024-03-09T00:00:00.000Z', next: '2024-03-20T00:00:00.000Z' } } },
  );
  const r = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.deepEqual(r.tables[0]!.truncated, ['companies', 'pairs', 'user_companies', 'users', 'logbook', 'messages', 'tags']);
  assert.deepEqual(r.truncated, r.tables[0]!.truncated);
  assert.deepEqual(figures(r, 'companies'), f(1, { inserted: 1 }));
  for (const t2 of ['users', 'messages', 'user_companies', 'tags', 'logbook', 'pairs']) {
    assert.equal((await query(url, `SELECT count(*)::int AS n FROM ${t2}`))[0]!.n, 0, `${t2} emptied`);
  }
  // The emptied tables lost their watermark, so the next extract reads them in full.
  assert.deepEqual(
    (await query(url, `SELECT table_name FROM etl_watermarks ORDER BY 1`)).map((x) => x.table_name),
    ['companies'],
  );
  assert.ok(r.warnings.some((w) => w.startsWith('users was emptied by TRUNCATE companies CASCADE')));
});

test('two loads at once: the second waits for the lock, or refuses with --no-wait', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  await stageRun(staging, model, firstRun());
  const pg = (await import('pg')).default;
  const holder = new pg.Client({ connectionString: url });
  await holder.connect();
  t.after(() => holder.end());
  await holder.query(`SELECT pg_advisory_lock(7310587252226089316)`);

  await assert.rejects(runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), lock: 'fail' }), (e: unknown) => {
    assert.ok(e instanceof LoadError);
    assert.equal(e.code, 'load_locked');
    assert.match(e.message, /another etl load is running on this database \(PostgreSQL backend pid \d+\)/);
    return true;
  });

  const waiting: (string | null)[] = [];
  let done = false;
  const loading = runLoad({
    model,
    stagingDir: staging,
    postgres: postgresConfig(url),
    onProgress: (e) => {
      if (e.kind === 'waiting') waiting.push(e.message);
    },
  }).finally(() => {
    done = true;
  });
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(done, false, 'the load waits while the lock is held');
  assert.equal(waiting.length, 1);
  assert.match(waiting[0]!, /^waiting for another etl load/);
  await holder.query(`SELECT pg_advisory_unlock(7310587252226089316)`);
  const report = await loading;
  assert.equal(report.tables.length, 7);
  assert.deepEqual(waiting.slice(1), [null], 'then says it no longer waits');
});

test('a staged file that does not match its manifest is refused before anything changes', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const data = firstRun();
  await stageRun(staging, model, { ...data, users: { ...data.users, recordRows: 2 } });
  const before = await checksums(url, ALL);
  await assert.rejects(runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) }), (e: unknown) => {
    assert.ok(e instanceof StagingError, String(e));
    assert.equal(e.code, 'row_count_mismatch');
    assert.match(e.message, /transform\/users\.csv: COPY read 3 rows, the manifest records 2/);
    return true;
  });
  assert.deepEqual(await checksums(url, ALL), before);
});

test('--tables loads a subset; an unknown table is a usage error', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const run = await stageRun(staging, model, firstRun());
  const r = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), tables: ['users', 'companies'] });
  assert.deepEqual(
    r.tables.map((x) => x.table),
    ['companies', 'users'],
  );
  await assert.rejects(runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), tables: ['nope'] }), { code: 'unknown_table' });
  // The rest of the run loads later; the tables already loaded are skipped and named.
  const rest = await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url) });
  assert.equal(rest.alreadyApplied, false);
  assert.deepEqual(
    rest.skipped.map((s) => s.table),
    ['companies', 'users'],
  );
  assert.equal(rest.tables.length, 5);
  const m = await readManifest(runPaths(staging, run));
  assert.deepEqual(Object.keys(m.stages.load!.tables).sort(), ['companies', 'logbook', 'messages', 'pairs', 'tags', 'user_companies', 'users']);
});

test('a run read from after the watermark (--since a later date) leaves the watermark where it was, and says so; a run read from before it moves it', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const watermark = async () => ((await query<{ w: Date; r: string }>(url, `SELECT watermark AS w, run_id AS r FROM etl_watermarks WHERE table_name = 'companies'`))[0]!);
  const first = await stageRun(staging, model, { companies: firstRun().companies }, { watermarks: { companies: { from: null, next: '2024-03-10T00:00:00.000Z' } } });
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  // Read from 2024-03-12 only: a company changed on 2024-03-11 was not read, and the next run must read it.
  await stageRun(staging, model, { companies: secondRun().companies }, { watermarks: { companies: { from: '2024-03-12T00:00:00.000Z', next: '2024-03-20T00:00:00.000Z' } } });
  const r = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.deepEqual(await watermark(), { w: new Date('2024-03-10T00:00:00.000Z'), r: first });
  assert.ok(
    r.warnings.includes('this run read companies from 2024-03-12T00:00:00.000Z, after their watermark: the watermark stays where it was, so the next run reads the documents changed in between'),
    r.warnings.join('\n'),
  );
  assert.deepEqual(await query(url, `SELECT name FROM companies WHERE id = 'c1'`), [{ name: 'Acme2' }]);
  // From the watermark (or before it): the watermark moves to what the run guarantees.
  const third = await stageRun(staging, model, { companies: secondRun().companies }, { watermarks: { companies: { from: '2024-03-10T00:00:00.000Z', next: '2024-03-21T00:00:00.000Z' } } });
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.deepEqual(await watermark(), { w: new Date('2024-03-21T00:00:00.000Z'), r: third });
});

for (const bulkRows of [undefined, 1]) {
  test(`a value the column cannot hold names the table, file, line and column (${bulkRows ? 'COPY into the table' : 'COPY into a temp table'})`, async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const staging = await tempStaging(t);
    const model = fixtureModel();
    await stageRun(staging, model, { companies: { rows: [['c1', ts('1 10:00:00'), ts('1 10:00:00'), 'Acme'], ['c2', ts('1 10:00:00'), ts('1 10:00:00'), 'Longer']] } });
    const error = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), bulkRows }).then(
      () => assert.fail('the load should fail'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof LoadError, String(error));
    assert.equal(error.code, 'pg_22001');
    assert.deepEqual([error.context.table, error.context.file, error.context.line, error.context.sqlColumn], ['companies', 'transform/companies.csv', 3, 'name']);
    assert.match(error.message, /^companies: .*transform\/companies\.csv line 3, column name: value too long for type character varying\(5\)/);
    assert.match(error.hint ?? '', /nothing was changed/);
    assert.deepEqual(await query(url, `SELECT to_regclass('companies') AS t`), [{ t: null }], 'not even the tables stayed');
  });
}

test('the bulk path refuses rows of a table other tables reference, and still re-adds its foreign keys', async (t) => {
  // Deleting the refused rows from the table queues checks for the tables referencing it, which
  // kept PostgreSQL from re-adding the table's own foreign keys ("pending trigger events").
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = chainModel({ meals: true });
  const at = ts('1 10:00:00');
  await stageRun(staging, model, {
    plans: { rows: [['p1', at, at]] },
    days: { rows: [['d1', at, at, 'p1'], ['d2', at, at, 'p9'], ['d3', at, at, null]] },
    meals: { rows: [['m1', at, at, 'd1'], ['m2', at, at, 'd2']] },
  });
  const report = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), bulkRows: 1 });
  assert.deepEqual(figures(report, 'days'), f(3, { inserted: 2, rejected: 1 }));
  assert.deepEqual(figures(report, 'meals'), f(2, { inserted: 1, rejected: 1 }));
  assert.deepEqual(await query(url, `SELECT id FROM days ORDER BY id`), [{ id: 'd1' }, { id: 'd3' }]);
  const fks = await query(url, `SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('days'::regclass, 'meals'::regclass) ORDER BY conname`);
  assert.deepEqual(fks, [{ conname: 'days_plan_id_fkey' }, { conname: 'meals_day_id_fkey' }]);
});

test('a first load of a dedupe table whose contributions repeat a document keeps its last line', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  await stageRun(staging, model, {
    users: { rows: [['u1', ts('1 10:00:00'), ts('1 10:00:00'), 'Ann', null, null]] },
    logbook: {
      // Document a is staged twice (a dump repeating an _id): its second line moved it to the 8th.
      rows: [
        ['u1', '2024-03-07', ts('7 10:00:00'), ts('7 12:00:00')],
        ['u1', '2024-03-07', ts('7 08:00:00'), ts('7 09:00:00')],
        ['u1', '2024-03-08', ts('8 10:00:00'), ts('8 11:00:00')],
      ],
      docs: ['a', 'b', 'a'],
    },
  });
  await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.deepEqual(await query(url, `SELECT user_id, day::text, updated_at::text FROM logbook ORDER BY day`), [
    { user_id: 'u1', day: '2024-03-07', updated_at: '2024-03-07 09:00:00' },
    { user_id: 'u1', day: '2024-03-08', updated_at: '2024-03-08 11:00:00' },
  ]);
  assert.deepEqual(await query(url, `SELECT _id, day::text FROM etl_contrib_logbook ORDER BY _id`), [
    { _id: 'a', day: '2024-03-08' },
    { _id: 'b', day: '2024-03-07' },
  ]);
});

test('a first load of a dedupe table lists a refused row with its record in the contributions file', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const staging = await tempStaging(t);
  const model = fixtureModel();
  const runId = await stageRun(staging, model, {
    users: { rows: [['u1', ts('1 10:00:00'), ts('1 10:00:00'), 'Ann', null, null]] },
    logbook: {
      rows: [
        ['u1', '2024-03-07', ts('7 10:00:00'), ts('7 12:00:00')],
        ['u9', '2024-03-07', ts('7 08:00:00'), ts('7 09:00:00')], // user deleted in the app
        ['u1', '2024-03-08', ts('8 10:00:00'), ts('8 11:00:00')],
        ['u9', '2024-03-09', ts('9 08:00:00'), ts('9 09:00:00')],
      ],
      docs: ['d1', 'd2', 'd3', 'd4'],
    },
  });
  const report = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
  assert.deepEqual(figures(report, 'logbook'), f(4, { inserted: 2, rejected: 2 }));
  const rejects = (await readFile(runPaths(staging, runId).loadRejects('logbook'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { line: number; value: string });
  assert.deepEqual(rejects.map((r) => [r.line, r.value]), [[3, 'u9'], [5, 'u9']]);
  assert.equal((await query(url, `SELECT count(*)::int AS n FROM etl_contrib_logbook`))[0]!.n, 4, 'every contribution is kept');
});

/**
 * `people` and a dedupe table `visits` of them keyed by (person_id, day): `person` is the YAML of
 * person_id's column after its type, `more` the columns between day and updated_at.
 */
function visitsModel(person: string, more = ''): PipelineModel {
  return pipelineFromYaml(`tables:
  people:
    include_base: true
  visits:
    strategy: dedupe
    dedupe_key: [person_id, day]
    latest_by: updated_at
    columns:
      - name: id
        sql_type: SERIAL
        primary_key: true
      - name: person_id
        sql_type: VARCHAR
${person}
      - name: day
        sql_type: DATE
        nullable: false
${more}      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false
    unique_constraints:
      - [person_id, day]
`);
}

test('a first complete load of a dedupe table into an empty table gives the rows, pending entries and rejects of the general path', async (t) => {
  // Only the winners of keys a contribution of which misses a reference go through the batch there
  // (contributions.ts suspectsIntoBatch); the others go from the sort straight into the table.
  const model = visitsModel(
    `        nullable: false
        foreign_key: people(id)`,
    `      - name: guide_id
        sql_type: VARCHAR
        foreign_key: people(id)
        on_missing: set_null
`,
  );
  const at = ts('1 10:00:00');
  const visits = {
    rows: [
      ['p2', '2024-03-01', 'p1', ts('1 12:00:00')], // wins over d, whose guide is missing
      ['p1', '2024-03-01', 'p9', ts('1 12:00:00')], // wins: its guide is NULLed and kept pending
      ['p9', '2024-03-01', null, ts('1 12:00:00')], // a missing person: refused
      ['p1', '2024-03-02', null, ts('2 12:00:00')],
      ['p2', '2024-03-01', 'p8', ts('1 10:00:00')],
      ['p1', '2024-03-01', 'p2', ts('1 11:00:00')],
      ['p3', '2024-03-03', 'p1', ts('3 12:00:00')], // a missing person: refused
    ],
    docs: ['c', 'a', 'e', 'g', 'd', 'b', 'h'],
  };
  const outcome = async (complete: boolean) => {
    const url = await servers.postgres.createDatabase(`${t.name} ${complete}`);
    const staging = await tempStaging(t);
    const run = await stageRun(staging, model, { people: { rows: [['p1', at, at], ['p2', at, at]] }, visits: { ...visits, complete } });
    const report = await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
    return {
      figures: figures(report, 'visits'),
      rows: await query(url, `SELECT id, person_id, day::text, guide_id, updated_at::text AS u FROM visits ORDER BY id`),
      pending: await query(url, `SELECT row_key, owner, kind, row, missing FROM etl_pending ORDER BY row_key::text`),
      rejects: await readFile(runPaths(staging, run).loadRejects('visits'), 'utf8'),
    };
  };
  const fast = await outcome(true);
  assert.deepEqual(fast.figures, f(7, { inserted: 3, rejected: 2, nulled: 1, duplicates: 2 }));
  assert.deepEqual(fast.rows, [
    { id: 1, person_id: 'p1', day: '2024-03-01', guide_id: null, u: '2024-03-01 12:00:00' },
    { id: 2, person_id: 'p1', day: '2024-03-02', guide_id: null, u: '2024-03-02 12:00:00' },
    { id: 3, person_id: 'p2', day: '2024-03-01', guide_id: 'p1', u: '2024-03-01 12:00:00' },
  ]);
  assert.deepEqual(
    fast.pending.map((p) => [p.row_key, p.kind, p.missing]),
    [
      [['p1', '2024-03-01'], 'null', { guide_id: 'p9' }],
      [['p3', '2024-03-03'], 'row', { person_id: 'p3' }],
      [['p9', '2024-03-01'], 'row', { person_id: 'p9' }],
    ],
  );
  const rejects = fast.rejects.trim().split('\n').map((l) => JSON.parse(l) as { line: number; column: string; action: string });
  assert.deepEqual(rejects.map((r) => [r.line, r.column, r.action]), [[3, 'guide_id', 'set_null'], [4, 'person_id', 'reject'], [8, 'person_id', 'reject']]);
  const general = await outcome(false);
  assert.deepEqual(general, fast);
});

test('a first complete load NULLs a set_null reference that is part of the dedupe key as the general path does', async (t) => {
  // The key of such a row changes when its reference is NULLed: the row must still be the batch's
  // (NULLed), never the sort's winner with the missing reference.
  const model = visitsModel(`        foreign_key: people(id)
        on_missing: set_null`);
  const at = ts('1 10:00:00');
  const visits = {
    rows: [
      ['p1', '2024-03-01', ts('1 12:00:00')],
      ['p9', '2024-03-01', ts('1 12:00:00')], // a missing person: NULLed, kept pending
      ['p9', '2024-03-01', ts('1 11:00:00')],
    ],
    docs: ['a', 'b', 'c'],
  };
  const outcome = async (complete: boolean) => {
    const url = await servers.postgres.createDatabase(`${t.name} ${complete}`);
    const staging = await tempStaging(t);
    await stageRun(staging, model, { people: { rows: [['p1', at, at]] }, visits: { ...visits, complete } });
    await runLoad({ model, stagingDir: staging, postgres: postgresConfig(url) });
    return {
      rows: await query(url, `SELECT id, person_id, day::text, updated_at::text AS u FROM visits ORDER BY id`),
      pending: await query(url, `SELECT row_key, kind, missing FROM etl_pending ORDER BY row_key::text`),
    };
  };
  const fast = await outcome(true);
  assert.ok(fast.rows.every((r) => r.person_id !== 'p9'), `no row keeps the missing person: ${JSON.stringify(fast.rows)}`);
  assert.deepEqual(fast, await outcome(false));
});
