// Keys too long for a PostgreSQL index (mapping/key-size.ts) on a live source: a user whose `_id`
// is 3,000 characters, a logbook whose dedupe key holds such a user, a user linked to such a target.
// `etl run` refuses their rows (key_too_long) and loads the rest; `etl diff --deep` then finds the
// database identical to the source, those rows counted as rejected, not as missing. Before, the run
// failed whole ("index row size … exceeds btree version 4 maximum 2704").
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { MongoClient, ObjectId } from 'mongodb';
import { useServers } from '../harness/index.ts';
import { etl, REPO } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

const servers = useServers();
const PIPELINE = path.join(REPO, 'pipeline.yaml');

/** `length` hex characters no compression shortens. */
function incompressible(length: number): string {
  let text = '';
  for (let block = 'long key'; text.length < length; ) text += block = createHash('sha256').update(block).digest('hex');
  return text.slice(0, length);
}

test('keys too long to index on a live source: etl run refuses their rows (key_too_long), etl diff --deep finds the rest identical', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const pgUrl = await servers.postgres.createDatabase(t.name);
  const work = await tempDir('etl-diff-long-keys-', t);
  const env = { DATABASE_URL: pgUrl, MONGODB_URL: mongo.url, MONGODB_DATABASE: mongo.name, ETL_PIPELINE: PIPELINE, ETL_STAGING: path.join(work, 'runs') };
  assert.equal((await etl(['sample', '--scale', '300', '--mongo-url', mongo.url, '--db', mongo.name, '--quiet'], { env })).code, 0);

  const long = incompressible(3_000);
  const when = new Date('2024-05-01T08:00:00Z');
  const client = new MongoClient(mongo.url);
  await client.connect();
  try {
    const db = client.db(mongo.name);
    const user = { firstname: 'Ana', lastname: 'Long', email: 'ana@example.fr', role: 'CUSTOMER', creation_date: when, update_date: when };
    await db.collection('users').insertOne({ _id: long as unknown as ObjectId, ...user });
    await db.collection('users').insertOne({ _id: new ObjectId(), ...user, email: 'linked@example.fr', targets: [long] });
    await db.collection('coachinglogbooks').insertOne({ _id: new ObjectId(), user: long, day: when, creation_date: when, update_date: when });
  } finally {
    await client.close();
  }

  assert.equal((await etl(['schema', '--yes'], { env, cwd: work })).code, 0);
  const run = await etl(['run', '--full', '--json'], { env, cwd: work });
  assert.equal(run.code, 0, run.stderr);
  const { runId } = JSON.parse(run.stdout) as { runId: string };
  const reasons = async (table: string) =>
    (await readFile(path.join(work, 'runs', runId, 'transform', `${table}.rejects.ndjson`), 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { column: string; reason: string })
      .filter((r) => r.reason === 'key_too_long')
      .map((r) => r.column);
  assert.deepEqual(await reasons('users'), ['id']);
  // The long-_id user refused whole (its parent key), then the other user's link to the long target.
  assert.deepEqual(await reasons('users_targets'), ['user_id', 'target_id']);
  assert.deepEqual(await reasons('users_logbook'), ['user_id']);

  const diff = await etl(['diff', '--deep'], { env, cwd: work });
  assert.equal(diff.code, 0, diff.stdout + diff.stderr);
  assert.match(diff.stdout, /^identical: /m);
});
