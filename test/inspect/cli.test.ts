// `etl diff` and `etl status` as a user runs them: a child process, no TTY, NO_COLOR=1.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MongoClient } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { ID, model, PIPELINE, repair, seedMongo, seedPostgres } from './planted.ts';
import { etl as run, type CliResult } from '../harness/cli.ts';
import { deadPid, plantScratch } from '../harness/scratch.ts';

const servers = useServers();

// Nothing from the developer's environment or .env may point elsewhere.
function etl(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return run(args, { env: { TRANSFER_SOURCE: 'local', TRANSFER_DESTINATION: 'local', ETL_PIPELINE: PIPELINE, ...env } });
}

function assertNoSecret(r: CliResult, secret: string): void {
  assert.ok(secret.length >= 3, 'the test database URL carries a password');
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'no password in the output');
}

/** A MongoDB and a PostgreSQL holding the planted differences (./planted.ts). */
async function plantedPair(name: string) {
  const m = await model();
  const pgUrl = await servers.postgres.createDatabase(name);
  const mongo = await servers.mongo.newDatabase(name);
  await seedMongo(mongo.url, mongo.name);
  await seedPostgres(pgUrl, m);
  return { m, pgUrl, mongo };
}

test('etl diff: exit 1 with the planted keys, --json, then exit 0 once repaired', async (t) => {
  const { m, pgUrl, mongo } = await plantedPair(t.name);
  const password = decodeURIComponent(new URL(pgUrl).password);
  const flags = ['--database-url', pgUrl, '--mongo-url', mongo.url, '--mongo-db', mongo.name];
  // What a diff killed outright left (its expected rows of users_targets): the next diff removes it.
  const killed = await plantScratch('etl-diff-Killed', { pid: deadPid(), host: os.hostname() });
  t.after(() => rm(killed, { recursive: true, force: true }));

  const text = await etl(['diff', '--tables', 'users,users_targets,users_logbook', '--deep', ...flags]);
  assert.equal(text.code, 1, text.stderr);
  assert.deepEqual((await readdir(os.tmpdir())).filter((n) => n.startsWith('etl-diff-')), [], 'the killed diff’s folder and this one’s are gone');
  assertNoSecret(text, password);
  assert.match(text.stdout, /^users +2 +3 +1 +1 +1 +1 +0 +DIFF$/m, text.stdout);
  assert.match(text.stdout, new RegExp(`1 missing in PostgreSQL:\\n +${ID.U2}\\n`));
  assert.match(text.stdout, new RegExp(`1 extra in PostgreSQL .*:\\n +${ID.U3}\\n`));
  assert.match(text.stdout, new RegExp(`${ID.U1}: firstname`));
  assert.match(text.stdout, new RegExp(`${ID.ULONG} firstname: too_long`));
  assert.match(text.stdout, new RegExp(`\\(${ID.U1}, ${ID.T2}, health\\)`));
  assert.match(text.stdout, new RegExp(`\\(${ID.U1}, 2024-07-15\\)`));
  assert.match(text.stdout, /differences: 3 of 3 tables differ/);
  assert.ok(!text.stdout.includes('\u001b['), 'NO_COLOR: no escape sequences');

  const json = await etl(['diff', '--json', '--tables', 'menus', ...flags]);
  assert.equal(json.code, 1, json.stderr);
  assertNoSecret(json, password);
  const report = JSON.parse(json.stdout) as { ok: boolean; tables: { table: string; missing: { count: number; sample: { key: { id: string } }[] } }[] };
  assert.equal(report.ok, false);
  assert.deepEqual(report.tables.map((x) => [x.table, x.missing.count, x.missing.sample[0]?.key.id]), [['menus', 1, ID.M2]]);

  await repair(pgUrl);
  const same = await etl(['diff', '--deep', ...flags]);
  assert.equal(same.code, 0, same.stdout + same.stderr);
  assert.match(same.stdout, new RegExp(`identical: ${m.loadOrder.length} tables match`));
  assertNoSecret(same, password);
  // --quiet prints the final line alone: it cannot point to a list "above" that was not printed.
  const quiet = await etl(['diff', '--deep', '--quiet', ...flags]);
  assert.equal(quiet.code, 0, quiet.stdout + quiet.stderr);
  assert.match(quiet.stdout, new RegExp(`^identical: ${m.loadOrder.length} tables match \\(.+\\)\n$`), quiet.stdout);
  assert.doesNotMatch(quiet.stdout, /listed above/);
});

test('etl diff in a log: one line per table (its summary), no "comparing <table>…" line each; a heartbeat when slow', async (t) => {
  const { pgUrl, mongo } = await plantedPair(t.name);
  const flags = ['diff', '--tables', 'users,menus,users_targets', '--database-url', pgUrl, '--mongo-url', mongo.url, '--mongo-db', mongo.name];
  const r = await etl(flags);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, '', 'README: in logs at most one line per table, the summary table');
  // ETL_PROGRESS_SECONDS says how often a progress line may come: all but always here.
  const chatty = await etl(flags, { ETL_PROGRESS_SECONDS: '0.000001' });
  assert.equal(chatty.code, 1, chatty.stderr);
  assert.match(chatty.stderr, /^comparing (users|menus|users_targets) \((users|events)\)…$/m);
});

test('etl diff --quiet: the final line only, no progress line per table', async (t) => {
  const { pgUrl, mongo } = await plantedPair(t.name);
  const r = await etl(['diff', '--quiet', '--deep', '--tables', 'users,menus', '--database-url', pgUrl, '--mongo-url', mongo.url, '--mongo-db', mongo.name]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, '', 'no "comparing <table>…" lines');
  assert.match(r.stdout, /^differences: 2 of 2 tables differ .*\n$/);
});

test('etl diff lists a key as a terminal may show it: an _id of 1,000 characters holding escape sequences is cut and escaped', async (t) => {
  const { pgUrl, mongo } = await plantedPair(t.name);
  // Under the 1,024 bytes of a key (mapping/key-size.ts): a longer one is refused (key_too_long), not missing.
  const hostile = `\u001b]0;pwned\u0007\u001b[2J${'Z'.repeat(1000)}\u009b31m`;
  const client = new MongoClient(mongo.url);
  await client.connect();
  try {
    // Missing in PostgreSQL: diff lists its key.
    await client.db(mongo.name).collection<{ _id: string; [field: string]: unknown }>('users').insertOne({ _id: hostile, creation_date: new Date('2024-01-01T00:00:00Z'), update_date: new Date('2024-01-01T00:00:00Z'), firstname: 'Eve', lastname: 'Vil', email: 'eve@example.fr', role: 'CUSTOMER' });
  } finally {
    await client.close();
  }
  const r = await etl(['diff', '--tables', 'users', '--database-url', pgUrl, '--mongo-url', mongo.url, '--mongo-db', mongo.name]);
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.output, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'a control character printed raw');
  assert.match(r.stdout, /^ +\\u001b\]0;pwned\\u0007\\u001b\[2JZ+… \(\d[\d,]* more characters\)/m, r.stdout.slice(0, 3000));
  for (const line of r.stdout.split('\n')) assert.ok(line.length < 600, `a line of ${line.length} characters`);
});

test('etl diff: usage and configuration errors exit 2', async (t) => {
  const r1 = await etl(['diff', '--tables', 'users,nope', '--database-url', 'postgresql://u:sekret@127.0.0.1:1/x']);
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, /unknown table "nope"/);
  assert.ok(!r1.stderr.includes('sekret'));
  const r2 = await etl(['diff', '--bogus']);
  assert.equal(r2.code, 2);
  const r3 = await etl(['diff', '--limit', 'ten']);
  assert.equal(r3.code, 2);
  const r4 = await etl(['diff', '--pipeline', path.join(os.tmpdir(), 'no-such-pipeline.yaml')]);
  assert.equal(r4.code, 2);
});

test('etl status: before any load, then --json; no password', async (t) => {
  const pgUrl = await servers.postgres.createDatabase(t.name);
  const password = decodeURIComponent(new URL(pgUrl).password);
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-status-cli-'));
  t.after(() => rm(staging, { recursive: true, force: true }));

  const text = await etl(['status', '--database-url', pgUrl, '--staging', staging]);
  assert.equal(text.code, 0, text.stderr);
  assertNoSecret(text, password);
  assert.match(text.stdout, /never loaded: the state tables .* run `etl schema`/);
  assert.match(text.stdout, /^users +none \(full next\) +never loaded/m);
  assert.match(text.stdout, /no staged runs in /);
  assert.match(text.stdout, /drift: \d+ difference/);

  const json = await etl(['status', '--json', '--staging', staging], { DATABASE_URL: pgUrl });
  assert.equal(json.code, 0, json.stderr);
  assertNoSecret(json, password);
  const report = JSON.parse(json.stdout) as { ok: boolean; stateTables: boolean; tables: unknown[] };
  assert.equal(report.stateTables, false);
  assert.equal(report.tables.length, (await model()).loadOrder.length);

  // After `etl schema`, a hand-written ledger row and watermark, and a staged run not loaded.
  const m = await model();
  const pg = (await import('pg')).default;
  const { applySchema } = await import('../../schema/apply.ts');
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  await applySchema(client, m);
  await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ('20240301T100000000Z', 'users', $1, $2)`, [
    m.sha256,
    JSON.stringify({ staged: 7, inserted: 5, updated: 2, unchanged: 0, deleted: 0, rejected: 0, nulled: 3 }),
  ]);
  await client.query(`INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ('users', '2024-03-01T09:55:00Z', '20240301T100000000Z')`);
  await client.end();
  const { stagedRun } = await import('./staged-manifest.ts');
  const at = '2024-03-02T10:00:00.000Z';
  await stagedRun(staging, '20240302T100000000Z', {
    extract: { status: 'done', started_at: at, ended_at: at, full: false, server_started_at: at, tables: ['users'], collections: {} },
    transform: { status: 'done', started_at: at, ended_at: at, pipeline_sha256: m.sha256, tables: { users: {} } },
  });
  const loaded = await etl(['status', '--database-url', pgUrl, '--staging', staging]);
  assert.equal(loaded.code, 0, loaded.stderr);
  assertNoSecret(loaded, password);
  assert.match(loaded.stdout, /^users +2024-03-01 09:55:00 +20240301T100000000Z +5 +2 +0 +0$/m, loaded.stdout);
  assert.match(loaded.stdout, /^companies +none \(full next\) +never loaded/m);
  assert.match(loaded.stdout, /1 of \d+ tables loaded/);
  assert.match(loaded.stdout, /20240302T100000000Z .*next: etl load --run 20240302T100000000Z/);
  assert.match(loaded.stdout, /no drift/);

  const down = await etl(['status', '--database-url', 'postgresql://u:sekret@127.0.0.1:1/x', '--staging', staging]);
  assert.equal(down.code, 1);
  assert.ok(!down.stderr.includes('sekret') && !down.stdout.includes('sekret'));
});
