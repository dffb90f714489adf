// DDL from the model, twice (Kysely style): the exact text for a small table, then applied to a
// real PostgreSQL and read back through information_schema (not through our own catalog reader)
// for every table of the shipped pipeline: columns, types, nullability, keys, foreign keys.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { withClient } from '../harness/schema.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { applySchema, schemaSql } from '../../schema/apply.ts';
import { checkDrift } from '../../schema/drift.ts';
import { constraintName, createTableSql } from '../../schema/ddl.ts';
import { compiled, ident, identList, qualified, runSql } from '../../schema/sql.ts';
import { stateTables } from '../../schema/state-tables.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHIPPED = path.join(ROOT, 'pipeline.yaml');
const ODD = path.join(ROOT, 'test/fixtures/pipelines/odd-names.yaml');

describe('sql.ts', () => {
  test('ident quotes every name and doubles quotes inside', () => {
    assert.equal(ident('users'), '"users"');
    assert.equal(ident('order'), '"order"');
    assert.equal(ident('say "hi"'), '"say ""hi"""');
    assert.equal(ident('x"; DROP TABLE users; --'), '"x""; DROP TABLE users; --"');
    assert.equal(qualified('public', 'order'), '"public"."order"');
    assert.equal(identList(['a', 'order']), '"a", "order"');
    assert.throws(() => ident(''), TypeError);
  });

  test('a compiled statement keeps values out of the SQL text', () => {
    const values = ["o'brien@example.com", 'ADMIN', 'DIET'];
    const q = compiled(`SELECT * FROM ${ident('users')} WHERE ${ident('email')} = $1 AND ${ident('role')} IN ($2, $3)`, values);
    values.push('changed afterwards');
    assert.equal(q.sql, 'SELECT * FROM "users" WHERE "email" = $1 AND "role" IN ($2, $3)');
    assert.deepEqual(q.parameters, ["o'brien@example.com", 'ADMIN', 'DIET']);
    assert.ok(Object.isFrozen(q));
    assert.ok(Object.isFrozen(q.parameters));
  });

  test('constraint names follow PostgreSQL and stay within 63 bytes', () => {
    assert.equal(constraintName('users', ['id'], 'pkey'), 'users_pkey');
    assert.equal(constraintName('users_targets', ['user_id', 'target_id', 'type'], 'key'), 'users_targets_user_id_target_id_type_key');
    assert.equal(constraintName('events', ['company_id'], 'fkey'), 'events_company_id_fkey');
    const long = constraintName('users_quizzs_links_questions', ['user_quizz_id', 'user_quizz_question_id'], 'key');
    assert.ok(Buffer.byteLength(long) <= 63, long);
    assert.match(long, /^users_quizzs_links_questions_user_quizz_id_.*_[0-9a-f]{8}_key$/);
    assert.notEqual(long, constraintName('users_quizzs_links_questions', ['user_quizz_id', 'user_quizz_question_idx'], 'key'));
  });
});

describe('createTableSql', () => {
  test('exact DDL for a table with odd names, a unique constraint and foreign keys', async () => {
    const model = await loadPipeline(ODD);
    assert.equal(
      createTableSql(model.tables.get('weird "table"')!),
      [
        'CREATE TABLE IF NOT EXISTS "weird ""table""" (',
        '  "code" VARCHAR(20) NOT NULL,',
        '  "order" SMALLINT NOT NULL,',
        '  "say ""hi""" TEXT,',
        '  CONSTRAINT "weird ""table""_pkey" PRIMARY KEY ("code"),',
        '  CONSTRAINT "weird ""table""_order_say ""hi""_key" UNIQUE ("order", "say ""hi""")',
        ')',
      ].join('\n'),
    );
    assert.equal(
      createTableSql(model.tables.get('select')!),
      [
        'CREATE TABLE IF NOT EXISTS "select" (',
        '  "id" VARCHAR NOT NULL,',
        '  "created_at" TIMESTAMP NOT NULL,',
        '  "updated_at" TIMESTAMP NOT NULL,',
        '  "weird_code" VARCHAR(20),',
        '  "user" VARCHAR,',
        '  CONSTRAINT "select_pkey" PRIMARY KEY ("id"),',
        '  CONSTRAINT "select_weird_code_fkey" FOREIGN KEY ("weird_code") REFERENCES "weird ""table""" ("code") DEFERRABLE INITIALLY IMMEDIATE,',
        '  CONSTRAINT "select_user_fkey" FOREIGN KEY ("user") REFERENCES "select" ("id") DEFERRABLE INITIALLY IMMEDIATE',
        ')',
      ].join('\n'),
    );
  });

  test('SERIAL columns are created as SERIAL', async () => {
    const model = await loadPipeline(SHIPPED);
    assert.match(createTableSql(model.tables.get('users_logbook')!), /^ {2}"id" SERIAL NOT NULL,$/m);
  });
});

/** What information_schema says about one table, in the model's vocabulary. */
async function describeLive(client: pg.Client, table: string) {
  const columns = await client.query<{ column_name: string; data_type: string; len: number | null; is_nullable: string; column_default: string | null }>(
    `SELECT column_name, data_type, character_maximum_length AS len, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  const constraints = await client.query<{ constraint_name: string; constraint_type: string; columns: string[] }>(
    `SELECT tc.constraint_name, tc.constraint_type,
            array_agg(kcu.column_name::text ORDER BY kcu.ordinal_position) AS columns
       FROM information_schema.table_constraints tc
       JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
      WHERE tc.table_schema = current_schema() AND tc.table_name = $1
      GROUP BY tc.constraint_name, tc.constraint_type`,
    [table],
  );
  const fks = await client.query<{ constraint_name: string; ref_table: string; ref_column: string }>(
    `SELECT rc.constraint_name, ccu.table_name AS ref_table, ccu.column_name AS ref_column
       FROM information_schema.referential_constraints rc
       JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.unique_constraint_name AND ccu.constraint_schema = rc.unique_constraint_schema
       JOIN information_schema.table_constraints tc ON tc.constraint_name = rc.constraint_name AND tc.table_schema = rc.constraint_schema
      WHERE tc.table_schema = current_schema() AND tc.table_name = $1`,
    [table],
  );
  const typeText = (c: (typeof columns.rows)[number]) => {
    if (c.data_type === 'character varying') return c.len === null ? 'VARCHAR' : `VARCHAR(${c.len})`;
    if (c.data_type === 'integer' && c.column_default?.startsWith('nextval(')) return 'SERIAL';
    if (c.data_type === 'timestamp without time zone') return 'TIMESTAMP';
    return c.data_type.toUpperCase();
  };
  return {
    columns: columns.rows.map((c) => ({ name: c.column_name, type: typeText(c), nullable: c.is_nullable === 'YES' })),
    primaryKey: constraints.rows.find((c) => c.constraint_type === 'PRIMARY KEY')?.columns ?? [],
    uniques: constraints.rows
      .filter((c) => c.constraint_type === 'UNIQUE')
      .map((c) => c.columns)
      .sort(),
    foreignKeys: constraints.rows
      .filter((c) => c.constraint_type === 'FOREIGN KEY')
      .map((c) => {
        const ref = fks.rows.find((f) => f.constraint_name === c.constraint_name)!;
        return `${c.columns.join(',')}->${ref.ref_table}(${ref.ref_column})`;
      })
      .sort(),
  };
}

function expected(t: TableModel) {
  return {
    columns: t.columns.map((c) => ({ name: c.name, type: c.sqlTypeText, nullable: c.nullable })),
    primaryKey: [...t.primaryKey],
    uniques: t.uniqueConstraints.map((u) => [...u]).sort(),
    foreignKeys: t.columns
      .filter((c) => c.foreignKey)
      .map((c) => `${c.name}->${c.foreignKey!.table}(${c.foreignKey!.column})`)
      .sort(),
  };
}

describe('applySchema on a real PostgreSQL', () => {
  const servers = useServers({ mongo: false });

  test('creates every table of the shipped pipeline as the YAML says, then the state tables', async (t) => {
    const model: PipelineModel = await loadPipeline(SHIPPED);
    const url = await servers.postgres.createDatabase(t.name);
    await withClient(url, async (client) => {
      const report = await applySchema(client, model);
      assert.deepEqual(report.created, [...model.loadOrder, ...stateTables(model).map((x) => x.name)]);
      assert.deepEqual(report.existing, []);
      for (const name of model.loadOrder) {
        assert.deepEqual(await describeLive(client, name), expected(model.tables.get(name)!), name);
      }
      const watermarks = await describeLive(client, 'etl_watermarks');
      assert.deepEqual(watermarks.columns, [
        { name: 'table_name', type: 'TEXT', nullable: false },
        { name: 'watermark', type: 'TIMESTAMP WITH TIME ZONE', nullable: false },
        { name: 'run_id', type: 'TEXT', nullable: false },
        { name: 'updated_at', type: 'TIMESTAMP WITH TIME ZONE', nullable: false },
        { name: 'fingerprint', type: 'TEXT', nullable: true },
      ]);
      assert.deepEqual(watermarks.primaryKey, ['table_name']);
      const runs = await describeLive(client, 'etl_runs');
      assert.deepEqual(runs.primaryKey, ['run_id', 'table_name']);
      assert.deepEqual(
        runs.columns.map((c) => `${c.name} ${c.type}${c.nullable ? '' : ' NOT NULL'}`),
        ['run_id TEXT NOT NULL', 'table_name TEXT NOT NULL', 'pipeline_sha256 TEXT NOT NULL', 'loaded_at TIMESTAMP WITH TIME ZONE NOT NULL', 'summary JSONB NOT NULL'],
      );
      // A dedupe table's SERIAL really counts; the foreign key really refuses a dangling user.
      await client.query(`INSERT INTO companies VALUES ('c1', now(), now(), 'Acme')`);
      await client.query(`INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, role, company_id) VALUES ('u1', now(), now(), 'A', 'B', 'a@b.c', 'CUSTOMER', 'c1')`);
      const { rows } = await client.query(`INSERT INTO users_logbook (user_id, day, created_at, updated_at) VALUES ('u1', '2024-03-07', now(), now()) RETURNING id`);
      assert.equal(rows[0].id, 1);
      await assert.rejects(client.query(`INSERT INTO users_logbook (user_id, day, created_at, updated_at) VALUES ('u1', '2024-03-07', now(), now())`), /users_logbook_user_id_day_key/);
      await assert.rejects(client.query(`INSERT INTO messages VALUES ('m1', now(), now(), 'ghost', NULL, 'hi')`), /messages_sender_id_fkey/);

      assert.deepEqual((await checkDrift(client, model)).findings, []);
    });
  });

  test('is idempotent: a second run creates nothing and reports what exists', async (t) => {
    const model = await loadPipeline(SHIPPED);
    const url = await servers.postgres.createDatabase(t.name);
    await withClient(url, async (client) => {
      await applySchema(client, model);
      await client.query(`INSERT INTO companies VALUES ('c1', now(), now(), 'Acme')`);
      const again = await applySchema(client, model);
      assert.deepEqual(again.created, []);
      assert.deepEqual(again.existing, [...model.loadOrder, ...stateTables(model).map((x) => x.name)]);
      assert.deepEqual(again.statements, []);
      const { rows } = await client.query('SELECT count(*)::int AS n FROM companies');
      assert.equal(rows[0].n, 1, 'existing data untouched');
      // Only what is missing is created.
      await client.query('DROP TABLE days_logbooks_links');
      const third = await applySchema(client, model);
      assert.deepEqual(third.created, ['days_logbooks_links']);
      assert.equal((await checkDrift(client, model)).clean, true);
    });
  });

  test('the "order" column and names holding a quote work', async (t) => {
    const model = await loadPipeline(ODD);
    const url = await servers.postgres.createDatabase(t.name);
    await withClient(url, async (client) => {
      await applySchema(client, model);
      for (const name of model.loadOrder) assert.deepEqual(await describeLive(client, name), expected(model.tables.get(name)!), name);
      const weird = model.tables.get('weird "table"')!;
      const insert = compiled(`INSERT INTO ${ident(weird.name)} (${identList(weird.columns.map((c) => c.name))}) VALUES ($1, $2, $3)`, ['A', 3, 'hello']);
      await runSql(client, insert);
      const { rows } = await client.query(`SELECT "order", "say ""hi""" AS say FROM "weird ""table"""`);
      assert.deepEqual(rows, [{ order: 3, say: 'hello' }]);
      assert.equal((await checkDrift(client, model)).clean, true);
    });
  });

  test('a failed CREATE rolls everything back and names the table', async (t) => {
    const model = await loadPipeline(SHIPPED);
    const url = await servers.postgres.createDatabase(t.name);
    await withClient(url, async (client) => {
      // A "companies" without a key on id: users' foreign key to it cannot be created.
      await client.query('CREATE TABLE companies (id VARCHAR)');
      await assert.rejects(applySchema(client, model), (e: unknown) => e instanceof Error && /cannot create table "events"/.test(e.message));
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname = 'ingredients'`);
      assert.equal(rows[0].n, 0, 'nothing created');
    });
  });

  test('schemaSql lists every CREATE in load order then the state tables', async () => {
    const model = await loadPipeline(SHIPPED);
    const all = schemaSql(model);
    assert.deepEqual(
      all.map((s) => s.table),
      [...model.loadOrder, ...stateTables(model).map((x) => x.name)],
    );
    for (const s of all) assert.match(s.sql, /^CREATE TABLE IF NOT EXISTS "/);
  });
});
