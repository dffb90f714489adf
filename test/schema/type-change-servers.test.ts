// `etl schema --allow type:<table>.<column>` on every PostgreSQL the README names (17 embedded, and
// Debian 12's 15): the rows whose value the new type cannot hold are counted, shown and deleted, then
// the column is altered. PostgreSQL 15 has no pg_input_is_valid (new in 16): the check must not need it.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { etl, STACK_LINE } from '../harness/cli.ts';
import { useServers, type Servers } from '../harness/index.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { applySchema } from '../../schema/apply.ts';
import { PIPELINE } from '../mirror/harness.ts';

/** users.population VARCHAR(255) → SMALLINT; users.phone VARCHAR(255) → VARCHAR(12); messages.content TEXT → JSONB. */
async function editedPipeline(dir: string): Promise<string> {
  let text = await readFile(PIPELINE, 'utf8');
  for (const [from, to] of [
    ['      - name: population\n        sql_type: VARCHAR(255)', '      - name: population\n        sql_type: SMALLINT'],
    ['      - name: phone\n        sql_type: VARCHAR(255)', '      - name: phone\n        sql_type: VARCHAR(12)'],
    ['      - name: content\n        sql_type: TEXT', '      - name: content\n        sql_type: JSONB'],
  ] as const) {
    assert.ok(text.includes(from), `pipeline.yaml holds ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  const file = path.join(dir, 'pipeline.yaml');
  await writeFile(file, text);
  return file;
}

/** Users whose population is a number (u1), words (u2), a number beyond SMALLINT (u3), none (u4); phones of 11 and 13 characters; one message of JSON, one of words. */
const ROWS = `
  INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, role, population, phone) VALUES
    ('u1', now(), now(), 'Ann', 'A', 'a@x.fr', 'CUSTOMER', '12', '06010203040'),
    ('u2', now(), now(), 'Bob', 'B', 'b@x.fr', 'CUSTOMER', 'ÉTUDIANT', '06010203040'),
    ('u3', now(), now(), 'Cid', 'C', 'c@x.fr', 'CUSTOMER', '70000', '06010203040'),
    ('u4', now(), now(), 'Dee', 'D', 'd@x.fr', 'CUSTOMER', NULL, '+330601020304');
  INSERT INTO messages (id, created_at, updated_at, content) VALUES
    ('m1', now(), now(), '{"a": 1}'),
    ('m2', now(), now(), 'hello');
`;

function suite(label: string, servers: Servers): void {
  test(`${label}: etl schema --allow type: deletes the rows the new types cannot hold, then alters the columns`, async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    t.after(() => client.end());
    await applySchema(client, await loadPipeline(PIPELINE));
    await client.query(ROWS);
    const file = await editedPipeline(await tempDir('etl-type-change-', t));
    const allow = ['--allow', 'type:users.population,type:users.phone,type:messages.content'];

    const check = await etl(['schema', '--check', '--pipeline', file, '--database-url', url]);
    assert.doesNotMatch(check.output, STACK_LINE);
    assert.equal(check.code, 1, check.output);
    assert.match(check.stdout, /SMALLINT may not hold what VARCHAR\(255\) holds: 2 row\(s\) hold a value it cannot take/, check.output);
    assert.match(check.stdout, /VARCHAR\(12\) may not hold what VARCHAR\(255\) holds: 1 row\(s\) hold a value it cannot take/, check.output);
    assert.match(check.stdout, /JSONB may not hold what TEXT holds: 1 row\(s\) hold a value it cannot take/, check.output);

    // With the --allow given, --check says what etl schema would do: the DELETE runs before the ALTER.
    const preview = await etl(['schema', '--check', '--pipeline', file, '--database-url', url, ...allow]);
    assert.equal(preview.code, 1, preview.output);
    assert.match(preview.stdout, /DELETE FROM "users" WHERE "population" IS NOT NULL AND .*;\n\s+ALTER TABLE "users" ALTER COLUMN "population" TYPE SMALLINT/, preview.output);
    assert.match(preview.stdout, /apply {4}users: .*SMALLINT may not hold what VARCHAR\(255\) holds: 2 row\(s\) hold a value it cannot take and are deleted/, preview.output);
    assert.match(preview.stdout, /apply {4}messages: .*JSONB may not hold what TEXT holds: 1 row\(s\) hold a value it cannot take and are deleted/, preview.output);
    assert.equal((await client.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 4, '--check deletes nothing');

    const r = await etl(['schema', '--yes', '--pipeline', file, '--database-url', url, ...allow]);
    assert.doesNotMatch(r.output, STACK_LINE);
    assert.equal(r.code, 0, r.output);
    assert.match(r.stdout, /deleted {2}users: 3 row\(s\) the new definition cannot hold/, r.output);
    assert.match(r.stdout, /deleted {2}messages: 1 row\(s\) the new definition cannot hold/, r.output);
    const users = await client.query<{ id: string; population: number | null }>('SELECT id, population FROM users ORDER BY id');
    assert.deepEqual(users.rows, [{ id: 'u1', population: 12 }], 'u2 (words), u3 (beyond SMALLINT) and u4 (a phone of 13 characters) are gone');
    const messages = await client.query<{ id: string; content: unknown }>('SELECT id, content FROM messages ORDER BY id');
    assert.deepEqual(messages.rows, [{ id: 'm1', content: { a: 1 } }]);
    const types = await client.query<{ c: string; t: string }>(
      `SELECT attrelid::regclass || '.' || attname AS c, format_type(atttypid, atttypmod) AS t FROM pg_attribute
        WHERE (attrelid, attname) IN (('users'::regclass, 'population'), ('users'::regclass, 'phone'), ('messages'::regclass, 'content')) ORDER BY 1`,
    );
    assert.deepEqual(types.rows, [
      { c: 'messages.content', t: 'jsonb' },
      { c: 'users.phone', t: 'character varying(12)' },
      { c: 'users.population', t: 'smallint' },
    ]);
    // Nothing of the check is left behind on the connection's session.
    const left = await client.query(`SELECT proname FROM pg_proc WHERE pronamespace::regnamespace::text LIKE 'pg_temp%'`);
    assert.deepEqual(left.rows, []);
  });
}

describe('PostgreSQL 17 (embedded)', () => {
  suite('PostgreSQL 17', useServers({ mongo: false }));
});

describe("Debian 12's PostgreSQL 15", () => {
  suite('PostgreSQL 15', useServers({ mongo: false, postgres: { binaries: 'system' } }));
});
