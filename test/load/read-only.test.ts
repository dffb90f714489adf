// A DATABASE_URL that accepts no writes: a read replica's address (a standby), or a database whose
// transactions are read-only by default (ALTER DATABASE … SET default_transaction_read_only = on, as a
// team may set on a reporting copy). Before, the load read its whole run and failed at the first temp
// table with "ingredients: COPY failed: cannot execute CREATE TABLE in a read-only transaction" and a
// hint that said only that nothing changed; `etl schema` failed with a hint to run `etl schema
// --check`. Now both say the database accepts no writes and what to do.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl, REPO, STACK_LINE, useSampleDump } from '../harness/cli.ts';

const servers = useServers({ mongo: false });
const sample = useSampleDump('etl-read-only-', 100);
const PIPELINE = path.join(REPO, 'pipeline.yaml');

async function readOnly(url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`ALTER DATABASE ${pg.escapeIdentifier(name)} SET default_transaction_read_only = on`);
  } finally {
    await client.end();
  }
}

const READ_ONLY = /accepts no writes/;
const WHAT_TO_DO = /hint: .*(primary|default_transaction_read_only)/;

test('etl run into a database whose transactions are read-only: exit 1 before anything is loaded, saying the database accepts no writes and what to do', async () => {
  const url = await servers.postgres.createDatabase('read only load');
  const schema = await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url } });
  assert.equal(schema.code, 0, schema.output);
  await readOnly(url);
  const r = await etl(['run', '--full', '--source', sample.dump, '--staging', path.join(sample.work, 'runs'), '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url } });
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, READ_ONLY);
  assert.match(r.stderr, WHAT_TO_DO);
  assert.doesNotMatch(r.stderr, /COPY failed/);
  assert.doesNotMatch(r.output, STACK_LINE);
});

test('etl schema into a read-only database: exit 1, saying the database accepts no writes and what to do', async () => {
  const url = await servers.postgres.createDatabase('read only schema');
  await readOnly(url);
  const r = await etl(['schema', '--yes', '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url } });
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, READ_ONLY);
  assert.match(r.stderr, WHAT_TO_DO);
  assert.doesNotMatch(r.output, STACK_LINE);
});
