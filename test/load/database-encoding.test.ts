// A database whose encoding is not UTF8. MongoDB's text is Unicode: LATIN1 cannot hold "’" or
// "Nguyễn", and SQL_ASCII stores unchecked bytes and counts a VARCHAR's length in bytes, so a name of
// 200 accented characters no longer fits VARCHAR(255). Before, `etl schema` created the tables and
// the load failed at the first such value, the whole run rolled back, with a hint about the column's
// type ("the staged value cannot be read as the column's type", "widen sql_type"); now both refuse
// before they change anything, and say what the database needs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { etl, REPO, useSampleDump } from '../harness/cli.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(REPO, 'pipeline.yaml');
const sample = useSampleDump('etl-database-encoding-', 2_000);

/** A fresh database of `encoding` (dropped with the server's others); its URL. */
async function databaseOf(encoding: string, name: string): Promise<string> {
  const url = await servers.postgres.createDatabase(name);
  const admin = new pg.Client({ connectionString: await servers.postgres.createDatabase(`${name} admin`) });
  await admin.connect();
  try {
    const db = pg.escapeIdentifier(decodeURIComponent(new URL(url).pathname.slice(1)));
    await admin.query(`DROP DATABASE ${db}`);
    await admin.query(`CREATE DATABASE ${db} ENCODING '${encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  return url;
}

async function tablesIn(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = current_schema()`)).rows[0].n;
  } finally {
    await c.end();
  }
}

for (const encoding of ['LATIN1', 'SQL_ASCII']) {
  test(`a ${encoding} database: etl schema and the load refuse before changing anything, and say it needs UTF8`, async (t) => {
    const url = await databaseOf(encoding, t.name);
    const expected = new RegExp(`^error: PostgreSQL at postgresql://postgres:\\*\\*\\*@[^ ]+ stores text as ${encoding}( \\(unchecked bytes, lengths counted in bytes\\))?, not UTF8: it cannot mirror MongoDB's text exactly \\[database_not_utf8\\]$`, 'm');
    const hint = /^hint: nothing was changed; etl needs a UTF8 database: create one \(CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0\), point DATABASE_URL \(or --database-url\) at it and run `etl schema`$/m;

    const schema = await etl(['schema', '--yes', '--pipeline', PIPELINE, '--database-url', url], { cwd: sample.work });
    assert.equal(schema.code, 1, schema.output);
    assert.match(schema.stderr, expected);
    assert.match(schema.stderr, hint);
    assert.equal(await tablesIn(url), 0, 'etl schema created nothing');

    const run = await etl(['run', '--full', '--source', sample.dump, '--staging', path.join(sample.work, encoding), '--pipeline', PIPELINE, '--database-url', url], { cwd: sample.work });
    assert.equal(run.code, 1, run.output);
    assert.match(run.stderr, expected);
    assert.match(run.stderr, hint);
    assert.equal(await tablesIn(url), 0, 'the load created nothing');
  });
}
