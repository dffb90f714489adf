// `etl extract` as a user runs it: spawned without a TTY, NO_COLOR=1; exit codes, --json, messages.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, truncate } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient, ObjectId, type Document } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { stateTablesSql } from '../../schema/state-tables.ts';
import { makeEvents, makeRecipes, makeUsers, writeDumpFolder } from './dump-writer.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { etl as run, type CliResult } from '../harness/cli.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/pipeline.yaml');
const servers = useServers();

function etl(args: string[], env: Record<string, string> = {}, cwd = HERE): Promise<CliResult> {
  return run(args, { cwd, env });
}

async function dump(): Promise<{ dir: string; staging: string }> {
  const dir = await tempDir('etl-cli-');
  await writeDumpFolder(path.join(dir, 'dump/appdb'), { users: makeUsers(25, { decimal: true }), events: makeEvents(3), recipes: makeRecipes(4) });
  return { dir, staging: path.join(dir, 'staging') };
}

test('a dump with --json: exit 0, only the report on stdout, numbers as in the manifest', async () => {
  const { dir, staging } = await dump();
  const r = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--source', path.join(dir, 'dump'), '--full', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.ok, true);
  const manifest = JSON.parse(await readFile(path.join(staging, report.runId, 'manifest.json'), 'utf8'));
  for (const c of report.collections) {
    assert.equal(c.documents, manifest.stages.extract.collections[c.collection].documents);
    assert.equal(c.sha256, manifest.stages.extract.collections[c.collection].sha256);
  }
  assert.equal(report.collections.find((c: { collection: string }) => c.collection === 'users').documents, 25);
  assert.equal((await readFile(path.join(staging, 'latest'), 'utf8')).trim(), report.runId);
});

test('plain output: the summary table and the run folder on stdout; no per-collection lines in logs', async () => {
  const { dir, staging } = await dump();
  const r = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--source', path.join(dir, 'dump/appdb'), '--full']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^collection\s+documents\s+bytes\s+watermark from\s+seconds$/m);
  assert.match(r.stdout, /^users\s+25\s+[\d,]+\s+full\s+[\d.]+$/m);
  assert.match(r.stdout, new RegExp(`in ${staging.replace(/[/.]/g, '\\$&')}/\\d{8}T\\d{9}Z`));
  assert.doesNotMatch(r.stderr, /users/, 'the table on stdout lists the collections once');
  assert.match(r.stderr, /warning: ghosts: collection "ghosts" does not exist/);
  assert.doesNotMatch(r.stdout + r.stderr, /\u001b\[/, 'no colour codes under NO_COLOR without a TTY');
});

test('exit 2 for bad flags and unknown tables; exit 1 for a damaged dump (file and offset named)', async () => {
  const { dir, staging } = await dump();
  const bad = await etl(['extract', '--pipeline', PIPELINE, '--nope']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--nope/);
  const since = await etl(['extract', '--pipeline', PIPELINE, '--since', 'yesterday-ish']);
  assert.equal(since.code, 2);
  const tables = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--source', path.join(dir, 'dump'), '--tables', 'users,nope', '--json']);
  assert.equal(tables.code, 2);
  assert.equal(JSON.parse(tables.stdout).error.code, 'unknown_table');
  const typo = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--source', path.join(dir, 'dump'), '--tables', 'user,user_event']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^error: unknown tables "user" \(did you mean "users"\?\), "user_event" \(did you mean "user_events"\?\) in --tables/m);
  const file = path.join(dir, 'dump/appdb/users.bson');
  await truncate(file, 1000);
  const damaged = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--source', path.join(dir, 'dump'), '--full']);
  assert.equal(damaged.code, 1);
  assert.ok(damaged.stderr.includes(file), damaged.stderr);
  assert.match(damaged.stderr, /byte offset \d+/);
});

test('live: incremental by default reads watermarks from PostgreSQL; unreachable PostgreSQL → exit 1 with the --full hint', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const pgUrl = await servers.postgres.createDatabase(t.name);
  const client = new MongoClient(mongo.url);
  await client.connect();
  // ObjectIds minted before the watermark (2024-02-29), so the dates alone decide what is read.
  const users = makeUsers(12).map((u, i): Document => ({ ...u, _id: new ObjectId(`65e000000000000000${i.toString(16).padStart(6, '0')}`) }));
  await client.db(mongo.name).collection('users').insertMany(users);
  await client.close();
  const db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
  for (const sql of stateTablesSql()) await db.query(sql);
  await db.query("INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ('users', '2024-03-08T00:00:00Z', 'x'), ('user_events', '2024-03-08T00:00:00Z', 'x')");
  await db.end();
  const staging = await tempDir('etl-cli-live-');
  const env = { MONGODB_URL: mongo.url, DATABASE_URL: pgUrl };
  const r = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--tables', 'users,user_events', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.collections[0].watermark.from, '2024-03-08T00:00:00.000Z');
  const expected = users.filter((u) => u.creation_date >= new Date('2024-03-08') || u.update_date >= new Date('2024-03-08')).length;
  assert.equal(report.collections[0].documents, expected);
  assert.ok(expected > 0 && expected < 12);
  const down = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--tables', 'users'], { ...env, DATABASE_URL: 'postgresql://postgres:pw-x9@127.0.0.1:1/none' });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot read the watermarks/);
  assert.match(down.stderr, /--full/);
  assert.doesNotMatch(down.stderr, /pw-x9/);
  const full = await etl(['extract', '--pipeline', PIPELINE, '--staging', staging, '--tables', 'users', '--full', '--json'], { ...env, DATABASE_URL: 'postgresql://postgres:pw-x9@127.0.0.1:1/none' });
  assert.equal(full.code, 0, full.stderr);
  assert.equal(JSON.parse(full.stdout).collections[0].documents, 12);
});
