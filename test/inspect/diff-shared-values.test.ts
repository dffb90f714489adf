// A unique constraint beside the key a table merges on (`users` declaring [email] and [phone]
// unique): a full run refuses every row holding a value rows of other keys hold too (duplicate_value,
// neither wins; NULLs never match), so `etl diff` counts such a row as refused, not missing, and a
// PostgreSQL row of such a key as one a full run does not leave (extra). The PostgreSQL side is
// loaded before the clash exists; the clash is then made in MongoDB. etl repair takes up every
// holder (the rows a full run removes, and those it keeps pending with no entry), so that its load
// sees them all.
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
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runDiff } from '../../inspect/diff.ts';
import { RepairScopes } from '../../inspect/repair-scope.ts';

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

/**
 * PostgreSQL loaded by `etl run --full` from users A, B (no phone: NULLs, no clash) and C; then, in
 * MongoDB, D takes A's email, E takes C's phone, F is new and clashes with nobody, and A's firstname
 * changes.
 */
async function clashed(t: { name: string; after: (fn: () => unknown) => void }) {
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

    // D takes A's email, E takes C's phone, F clashes with nobody; A's firstname changes (its row is
    // extra, not also different).
    await users.insertMany([user(D, 'a@example.fr'), user(E, 'e@example.fr', '+33100000000'), user(F, 'f@example.fr')]);
    await users.updateOne({ _id: new ObjectId(A) }, { $set: { firstname: 'Anna' } });
  } finally {
    await client.close();
  }

  return { mongo, pgUrl, work, pipeline, env };
}

/** Removes rows from PostgreSQL and documents from MongoDB by hand. */
async function remove(pgUrl: string, mongo: { url: string; name: string }, rows: readonly string[], documents: readonly string[]): Promise<void> {
  const db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
  try {
    await db.query('DELETE FROM users WHERE id = ANY($1)', [rows]);
  } finally {
    await db.end();
  }
  const mc = new MongoClient(mongo.url);
  await mc.connect();
  try {
    await mc.db(mongo.name).collection('users').deleteMany({ _id: { $in: documents.map((d) => new ObjectId(d)) } });
  } finally {
    await mc.close();
  }
}

test('rows sharing a value of another unique constraint: refused duplicate_value, not missing; the one PostgreSQL holds is reported; NULLs never match', async (t) => {
  const { mongo, pgUrl, env, work } = await clashed(t);
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
  await remove(pgUrl, mongo, [A, C], [F]);
  const same = await etl(['diff', '--deep', '--tables', 'users'], { env, cwd: work });
  assert.equal(same.code, 0, same.output);
  assert.match(same.stdout, /^users +5 +1 +0 +0 +0 +0 +4 +OK$/m, same.stdout);
  assert.match(same.stdout, new RegExp(`4 refused, not counted as missing: .*\\(4 duplicate_value\\):\\n +${A} \\[duplicate_value: email\\], ${C} \\[duplicate_value: phone\\], ${D} \\[duplicate_value: email\\], ${E} \\[duplicate_value: phone\\]\\n`));
  assert.match(same.stdout, /^identical: 1 table match \(4 refused for a missing reference, a contested key or a shared unique value: listed above\)$/m);
});

/** The documents of users etl repair would read again (none: null). */
async function repairScope(pipeline: string, pgUrl: string, mongo: { url: string; name: string }): Promise<string[] | null> {
  const repairScopes = new RepairScopes();
  await runDiff({
    model: await loadPipeline(pipeline),
    mongo: { url: mongo.url, database: mongo.name },
    postgres: { connectionString: pgUrl, host: '', port: 0, database: '', user: '', password: null },
    tables: ['users'],
    deep: true,
    repairScopes,
  });
  return repairScopes.scopes.find((s) => s.table === 'users')?.documents.slice() ?? null;
}

test('etl repair takes up every holder of a shared value: the rows a full run removes and the rows it keeps pending without an entry', async (t) => {
  const { mongo, pgUrl, pipeline } = await clashed(t);
  // A and C go (their rows are extra), F is missing, D and E wait in etl_pending in a full run: read
  // with A and C, the load sees both holders of each value.
  assert.deepEqual(await repairScope(pipeline, pgUrl, mongo), [A, C, D, E, F]);

  // As a load leaves it: A's and C's rows gone; without the pending entries a full run keeps, the four are read again.
  await remove(pgUrl, mongo, [A, C], [F]);
  assert.deepEqual(await repairScope(pipeline, pgUrl, mongo), [A, C, D, E]);
  // The entries a load keeps for them (kind row, waiting for no reference): nothing to repair.
  const db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
  try {
    for (const k of [A, C, D, E]) {
      await db.query(
        `INSERT INTO etl_pending (table_name, row_key, owner, kind, row, missing, run_id, seen_run) VALUES ('users', $1, $2, 'row', '{}', '{}', 'r1', 'r1')`,
        [JSON.stringify([k]), k],
      );
    }
  } finally {
    await db.end();
  }
  assert.equal(await repairScope(pipeline, pgUrl, mongo), null);
});
