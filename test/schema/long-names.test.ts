// Names etl derives from pipeline.yaml's table and column names (constraint names, the dedupe
// state table etl_contrib_<table> and its index, the sequence a column changed to SERIAL gets) stay
// within PostgreSQL's 63 bytes without two becoming one, and reach the catalog exactly as etl
// computes them: a name cut inside a UTF-16 pair would reach PostgreSQL as U+FFFD, a name etl then
// never finds again (drift forever). Run through the real `etl schema` against a real PostgreSQL.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { withClient } from '../harness/schema.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

/** A lone UTF-16 surrogate: half of a character, sent to PostgreSQL as U+FFFD. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

// 62 and 63 bytes: the derived names (…_pkey, …_fkey, …_key, etl_contrib_…) need a hash, and the
// cut before it falls inside an emoji (4 bytes, 2 UTF-16 units).
const UPSERT_TABLE = `aa${'😀'.repeat(15)}`;
const DEDUPE_TABLE = `aaa${'😀'.repeat(15)}`;
const SERIALS_TABLE = 'a'.repeat(60);

const TIMESTAMPS = `
      - name: created_at
        sql_type: TIMESTAMP
        nullable: false
      - name: updated_at
        sql_type: TIMESTAMP
        nullable: false`;

const emojiPipeline = `tables:
  companies:
    include_base: true
  "${UPSERT_TABLE}":
    mongo_collection: users
    include_base: true
    additional_columns:
      - name: company_id
        sql_type: VARCHAR
        foreign_key: companies(id)
  "${DEDUPE_TABLE}":
    mongo_collection: logs
    strategy: dedupe
    dedupe_key: [user_id, day]
    latest_by: updated_at
    columns:
      - name: id
        sql_type: SERIAL
        primary_key: true
      - name: user_id
        sql_type: VARCHAR
        nullable: false
      - name: day
        sql_type: DATE
        nullable: false${TIMESTAMPS}
    unique_constraints:
      - [user_id, day]
`;

/** A 60-byte table name with two columns whose `<table>_<column>_seq` agree on their first 63 bytes. */
const serialsPipeline = (type: string) => `tables:
  ${SERIALS_TABLE}:
    mongo_collection: users
    columns:
      - name: id
        sql_type: VARCHAR
        primary_key: true
      - name: xyz1
        sql_type: ${type}
      - name: xyz2
        sql_type: ${type}
`;

describe('names derived from long table and column names', () => {
  const servers = useServers({ mongo: false });

  test('multi-byte names: etl schema creates every derived name whole, and etl schema --check then finds no drift', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const dir = await tempDir('etl-long-names-', t);
    await writeFile(path.join(dir, 'pipeline.yaml'), emojiPipeline);
    const env = { DATABASE_URL: url };
    const created = await etl(['schema', '--yes'], { cwd: dir, env });
    assert.equal(created.code, 0, created.output);

    const names = await withClient(url, async (c) => {
      const relations = await c.query<{ name: string }>(`SELECT relname AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace`);
      const constraints = await c.query<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE connamespace = 'public'::regnamespace`);
      return [...relations.rows, ...constraints.rows].map((r) => r.name);
    });
    for (const name of names) {
      assert.ok(!name.includes('\ufffd'), `${JSON.stringify(name)} reached PostgreSQL with a character cut in half`);
      assert.ok(Buffer.byteLength(name) <= 63, name);
    }
    assert.ok(names.some((n) => n.startsWith('etl_contrib_aaa😀')), names.join('\n'));

    const check = await etl(['schema', '--check'], { cwd: dir, env });
    assert.equal(check.code, 0, `no drift right after etl schema\n${check.output}`);
    assert.doesNotMatch(check.output, LONE_SURROGATE);
  });

  test('two columns changed to SERIAL get a sequence each, however long the table name', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const dir = await tempDir('etl-long-serials-', t);
    const env = { DATABASE_URL: url };
    await writeFile(path.join(dir, 'pipeline.yaml'), serialsPipeline('INTEGER'));
    const created = await etl(['schema', '--yes'], { cwd: dir, env });
    assert.equal(created.code, 0, created.output);
    await withClient(url, (c) => c.query(`INSERT INTO ${SERIALS_TABLE} (id, xyz1, xyz2) VALUES ('a', 7, 40)`));

    await writeFile(path.join(dir, 'pipeline.yaml'), serialsPipeline('SERIAL'));
    const changed = await etl(['schema', '--yes'], { cwd: dir, env });
    assert.equal(changed.code, 0, changed.output);

    await withClient(url, async (c) => {
      const defaults = await c.query<{ column_name: string; seq: string }>(
        `SELECT column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq FROM information_schema.columns WHERE table_name = $1 AND column_name LIKE 'xyz%' ORDER BY column_name`,
        [SERIALS_TABLE],
      );
      assert.equal(defaults.rows.length, 2);
      const [one, two] = defaults.rows.map((r) => r.seq);
      assert.ok(one && two, `each column owns its sequence: ${JSON.stringify(defaults.rows)}`);
      assert.notEqual(one, two, 'the two SERIAL columns share one sequence');
      const row = await c.query<{ xyz1: number; xyz2: number }>(`INSERT INTO ${SERIALS_TABLE} (id) VALUES ('b') RETURNING xyz1, xyz2`);
      assert.deepEqual(row.rows[0], { xyz1: 8, xyz2: 41 }, 'each sequence follows its own column');
    });
    const check = await etl(['schema', '--check'], { cwd: dir, env });
    assert.equal(check.code, 0, check.output);
  });
});
