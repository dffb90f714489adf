// A unique constraint beside the key a table merges on (`users` declaring [email] and [phone]
// unique): a full run refuses every row holding a value rows of other keys hold too (duplicate_value,
// neither wins; NULLs never match), so `etl diff` counts such a row as refused, not missing, and a
// PostgreSQL row of such a key as one a full run does not leave (extra). The PostgreSQL side is
// loaded before the clash exists; the clash is then made in MongoDB.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { uniqueEmailPipeline } from '../mirror/harness.ts';

const servers = useServers();

const id = (n: number) => `64b00000000000000000000${n}`;
const A = id(1);
const B = id(2);
const C = id(3);
const D = id(4);
const E = id(5);
const F = id(6);

/** The shipped pipeline with users' email and phone unique. */
async function uniqueEmailAndPhone(dir: string): Promise<string> {
  const file = await uniqueEmailPipeline(dir);
  const yaml = await readFile(file, 'utf8');
  const email = '    unique_constraints:\n      - [email]\n';
  assert.ok(yaml.includes(email), 'uniqueEmailPipeline has changed: update the test');
  await writeFile(file, yaml.replace(email, `${email}      - [phone]\n`));
  return file;
}

const when = new Date('2024-05-01T08:00:00Z');
const user = (n: string, email: string, phone?: string) => ({ _id: new ObjectId(n), firstname: 'Ana', lastname: 'Lee', email, ...(phone ? { phone } : {}), role: 'CUSTOMER', creation_date: when, update_date: when });

interface Keyed {
  readonly key: { readonly id: string };
  readonly sourceId?: string | null;
  readonly column?: string;
  readonly reason?: string;
}
interface UsersDiff {
  readonly identical: boolean;
  readonly mongo: { readonly rows: number };
  readonly postgres: { readonly rows: number };
  readonly missing: { readonly count: number; readonly sample: readonly Keyed[] };
  readonly refused: { readonly count: number; readonly byColumn: Record<string, number>; readonly contested: number; readonly sharedValues?: number; readonly sample: readonly Keyed[] };
  readonly extra: { readonly count: number; readonly sharedValues?: number; readonly sample: readonly Keyed[] };
  readonly different: { readonly count: number } | null;
}

test('rows sharing a value of another unique constraint: refused duplicate_value, not missing; the one PostgreSQL holds is reported; NULLs never match', async (t) => {
  const mongo = await servers.mongo.newDatabase(t.name);
  const pgUrl = await servers.postgres.createDatabase(t.name);
  const work = await tempDir('etl-diff-shared-values-', t);
  const pipeline = await uniqueEmailAndPhone(work);
  const env = { DATABASE_URL: pgUrl, MONGODB_URL: mongo.url, MONGODB_DATABASE: mongo.name, ETL_PIPELINE: pipeline, ETL_STAGING: path.join(work, 'runs') };

  // A and B without a phone (NULLs: no clash), C with one. A fresh database: no unique index on email.
  const client = new MongoClient(mongo.url);
  await client.connect();
  const users = client.db(mongo.name).collection('users');
  try {
    await users.insertMany([user(A, 'a@example.fr'), user(B, 'b@example.fr'), user(C, 'c@example.fr', '+33100000000')]);
    assert.equal((await etl(['schema', '--yes'], { env, cwd: work })).code, 0);
    const run = await etl(['run', '--full', '--json'], { env, cwd: work });
    assert.equal(run.code, 0, run.output);

    // D takes A's email, E takes C's phone; F is new and clashes with nobody (no phone either). A's
    // firstname changes too: its row is extra, not also different.
    await users.insertMany([user(D, 'a@example.fr'), user(E, 'e@example.fr', '+33100000000'), user(F, 'f@example.fr')]);
    await users.updateOne({ _id: new ObjectId(A) }, { $set: { firstname: 'Anna' } });
  } finally {
    await client.close();
  }

  const json = await etl(['diff', '--json', '--deep', '--tables', 'users'], { env, cwd: work });
  assert.equal(json.code, 1, json.output);
  const diff = (JSON.parse(json.stdout) as { tables: UsersDiff[] }).tables[0]!;
  assert.deepEqual({ mongo: diff.mongo.rows, postgres: diff.postgres.rows }, { mongo: 6, postgres: 3 });
  assert.deepEqual(diff.missing.sample.map((m) => m.key.id), [F], 'D and E are refused by a full run, not missing');
  assert.deepEqual(
    { count: diff.refused.count, byColumn: diff.refused.byColumn, contested: diff.refused.contested, sharedValues: diff.refused.sharedValues },
    { count: 2, byColumn: {}, contested: 0, sharedValues: 2 },
  );
  assert.deepEqual(diff.refused.sample, [
    { key: { id: D }, sourceId: D, column: 'email', reason: 'duplicate_value' },
    { key: { id: E }, sourceId: E, column: 'phone', reason: 'duplicate_value' },
  ]);
  // A full run refuses A's and C's rows too: PostgreSQL holds rows it does not leave.
  assert.deepEqual({ count: diff.extra.count, sharedValues: diff.extra.sharedValues }, { count: 2, sharedValues: 2 });
  assert.deepEqual(diff.extra.sample, [
    { key: { id: A }, column: 'email', reason: 'duplicate_value' },
    { key: { id: C }, column: 'phone', reason: 'duplicate_value' },
  ]);
  assert.equal(diff.different?.count, 0, 'a row that should not be there is extra, not different too');
  assert.equal(diff.identical, false);

  const text = await etl(['diff', '--tables', 'users'], { env, cwd: work });
  assert.equal(text.code, 1, text.output);
  assert.match(text.stdout, /^users +6 +3 +1 +2 +- +0 +2 +DIFF$/m, text.stdout);
  assert.match(text.stdout, new RegExp(`2 extra in PostgreSQL \\(no MongoDB document maps to them any more, or a load refuses their document's row: 2 duplicate_value\\):\\n +${A} \\[duplicate_value: email\\], ${C} \\[duplicate_value: phone\\]\\n`));
  assert.match(text.stdout, new RegExp(`2 refused, not counted as missing: a load refuses them too, rows of other keys hold their value of a unique constraint \\(2 duplicate_value\\):\\n +${D} \\[duplicate_value: email\\], ${E} \\[duplicate_value: phone\\]\\n`));

  // What a load of the new rule leaves: A's and C's rows gone (waiting in etl_pending); F deleted from MongoDB.
  const db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
  try {
    await db.query('DELETE FROM users WHERE id = ANY($1)', [[A, C]]);
  } finally {
    await db.end();
  }
  const mc = new MongoClient(mongo.url);
  await mc.connect();
  try {
    await mc.db(mongo.name).collection('users').deleteOne({ _id: new ObjectId(F) });
  } finally {
    await mc.close();
  }
  const same = await etl(['diff', '--deep', '--tables', 'users'], { env, cwd: work });
  assert.equal(same.code, 0, same.output);
  assert.match(same.stdout, /^users +5 +1 +0 +0 +0 +0 +4 +OK$/m, same.stdout);
  assert.match(same.stdout, new RegExp(`4 refused, not counted as missing: .*\\(4 duplicate_value\\):\\n +${A} \\[duplicate_value: email\\], ${C} \\[duplicate_value: phone\\], ${D} \\[duplicate_value: email\\], ${E} \\[duplicate_value: phone\\]\\n`));
  assert.match(same.stdout, /^identical: 1 table match \(4 refused for a missing reference, a contested key or a shared unique value: listed above\)$/m);
});
