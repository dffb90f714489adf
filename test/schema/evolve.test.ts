// Schema evolution on a real PostgreSQL: a database made from the shipped pipeline.yaml, holding a
// few rows, then pipeline.yaml edited as a user would. `applySchema(…, { alter: true })` (what
// `etl schema --yes` runs) applies what loses nothing, refuses what loses or may reject data unless
// `--allow` names it, and refuses everything when the rows break a key the YAML adds.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel } from '../../model/types.ts';
import { EtlError } from '../../errors/etl-error.ts';
import { applySchema, previewSchema } from '../../schema/apply.ts';
import { checkDrift } from '../../schema/drift.ts';
import { ensureSchema } from '../../load/ledger.ts';

const SHIPPED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');

type Ctx = { name: string; after: (fn: () => Promise<void>) => void };

function replaceOnce(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `pipeline.yaml holds ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

/** pipeline.yaml with the edits applied ([from, to] pairs), as a model. */
async function variant(t: Ctx, edits: readonly [string, string][]): Promise<PipelineModel> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-evolve-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let text = await readFile(SHIPPED, 'utf8');
  for (const [from, to] of edits) text = replaceOnce(text, from, to);
  await writeFile(path.join(dir, 'pipeline.yaml'), text);
  return loadPipeline(path.join(dir, 'pipeline.yaml'));
}

const col = (name: string, type: string, extra = '') => `      - name: ${name}\n        sql_type: ${type}\n${extra}`;
const NOT_NULL = '        nullable: false\n';

/** Three users of one company; u3 has a long phone and no insurer. */
const ROWS = `
  INSERT INTO companies VALUES ('c1', now(), now(), 'Acme');
  INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, role, company_id, phone, insurer, population) VALUES
    ('u1', now(), now(), 'Ann', 'A', 'ann@x.fr', 'CUSTOMER', 'c1', '0601', 'MAIF', 'p1'),
    ('u2', now(), now(), 'Bob', 'B', 'bob@x.fr', 'CUSTOMER', 'c1', '0602', 'MAIF', 'p2'),
    ('u3', now(), now(), 'Cid', 'C', 'cid@x.fr', 'COACH', 'c1', '+33 6 01 02 03 04 05 06', NULL, 'p3');
`;

describe('etl schema applies what loses nothing and refuses the rest', () => {
  const servers = useServers({ mongo: false });
  let shipped: PipelineModel;

  /** A database with the shipped schema and ROWS, altered by `sql`. */
  async function database(t: Ctx, sql: readonly string[] = []): Promise<pg.Client> {
    shipped ??= await loadPipeline(SHIPPED);
    const url = await servers.postgres.createDatabase(t.name);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    t.after(() => client.end());
    await applySchema(client, shipped);
    await client.query(ROWS);
    for (const s of sql) await client.query(s);
    return client;
  }

  const columnOf = async (client: pg.Client, table: string, column: string) =>
    (
      await client.query<{ type: string; notnull: boolean }>(
        `SELECT format_type(atttypid, atttypmod) AS type, attnotnull AS notnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
        [table, column],
      )
    ).rows[0] ?? null;

  test('lossless: new column, widened types, dropped NOT NULL, NOT NULL without NULLs, new unique and foreign keys, deferrable keys', async (t) => {
    const client = await database(t, [
      'ALTER TABLE messages DROP CONSTRAINT messages_sender_id_fkey',
      // An older etl made its foreign keys NOT DEFERRABLE.
      'ALTER TABLE users DROP CONSTRAINT users_company_id_fkey',
      'ALTER TABLE users ADD CONSTRAINT users_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies (id)',
    ]);
    const before = await checkDrift(client, shipped);
    assert.deepEqual(
      before.findings.map((f) => [f.table, f.kind]),
      [
        ['users', 'foreign_key_not_deferrable'],
        ['messages', 'missing_foreign_key'],
      ],
      'drift sees the non-deferrable key',
    );
    const model = await variant(t, [
      [col('phone', 'VARCHAR(255)'), col('phone', 'VARCHAR(255)') + col('phone_copy', 'VARCHAR(255)')],
      [col('role', 'VARCHAR(100)', NOT_NULL), col('role', 'VARCHAR(255)', NOT_NULL)],
      [col('duration # days', 'SMALLINT'), col('duration # days', 'INTEGER')],
      ['  companies:\n    include_base: true\n    additional_columns:\n' + col('name', 'VARCHAR(255)', NOT_NULL), '  companies:\n    include_base: true\n    unique_constraints:\n      - [name]\n    additional_columns:\n' + col('name', 'TEXT', NOT_NULL)],
      [col('firstname', 'VARCHAR(255)', NOT_NULL), col('firstname', 'VARCHAR(255)')],
      [col('population', 'VARCHAR(255)'), col('population', 'VARCHAR(255)', NOT_NULL)],
    ]);
    const { decision, plan } = await previewSchema(client, model, []);
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(decision.refused, []);
    assert.deepEqual(
      decision.apply.map((c) => [c.kind, c.table, c.column]),
      [
        ['add_column', 'users', 'phone_copy'],
        ['change_type', 'companies', 'name'],
        ['change_type', 'offers', 'duration'],
        ['change_type', 'users', 'role'],
        ['nullability', 'users', 'population'],
        // A NOT NULL dropped comes after the primary keys (a column leaving a key keeps it until then).
        ['nullability', 'users', 'firstname'],
        ['add_unique', 'companies', null],
        ['add_foreign_key', 'messages', 'sender_id'],
        ['make_deferrable', 'users', 'company_id'],
      ],
    );
    const report = await applySchema(client, model, { alter: true });
    assert.equal(report.applied.length, 9);
    assert.deepEqual(report.deletedRows, {});
    assert.deepEqual((await checkDrift(client, model)).findings, [], 'the database now matches the edited pipeline');
    assert.deepEqual(await columnOf(client, 'users', 'phone_copy'), { type: 'character varying(255)', notnull: false });
    assert.deepEqual(await columnOf(client, 'offers', 'duration'), { type: 'integer', notnull: true });
    assert.deepEqual(await columnOf(client, 'companies', 'name'), { type: 'text', notnull: true });
    assert.deepEqual(await columnOf(client, 'users', 'firstname'), { type: 'character varying(255)', notnull: false });
    assert.deepEqual(await columnOf(client, 'users', 'population'), { type: 'character varying(255)', notnull: true });
    const fks = await client.query(`SELECT conname, condeferrable, condeferred FROM pg_constraint WHERE contype = 'f' AND NOT (condeferrable AND NOT condeferred)`);
    assert.deepEqual(fks.rows, [], 'every foreign key is DEFERRABLE INITIALLY IMMEDIATE');
    const { rows } = await client.query('SELECT id, phone FROM users ORDER BY id');
    assert.equal(rows.length, 3, 'no row lost');
  });

  test('a new unique constraint or foreign key the rows break: reported with examples, nothing applied', async (t) => {
    const client = await database(t, [
      'ALTER TABLE messages DROP CONSTRAINT messages_sender_id_fkey',
      `INSERT INTO messages (id, created_at, updated_at, sender_id, content) VALUES ('m1', now(), now(), 'ghost', 'hi')`,
      `UPDATE users SET lastname = 'Same'`,
    ]);
    const model = await variant(t, [
      [col('phone', 'VARCHAR(255)'), col('phone', 'VARCHAR(255)') + col('phone_copy', 'VARCHAR(255)')],
      ['      birthday: birthdate\n      company: company_id\n    export_order: 2\n', '      birthday: birthdate\n      company: company_id\n    unique_constraints:\n      - [lastname]\n    export_order: 2\n'],
    ]);
    const { plan } = await previewSchema(client, model, []);
    assert.deepEqual(
      plan.problems.map((p) => [p.table, p.count, p.examples]),
      [
        ['users', 1, ['(lastname) = (Same) in 3 rows']],
        ['messages', 1, ['(id) = (m1): sender_id = "ghost"']],
      ],
    );
    await assert.rejects(applySchema(client, model, { alter: true }), (e: unknown) => {
      assert.ok(e instanceof EtlError);
      assert.equal(e.code, 'schema_data_conflict');
      assert.match(e.message, /nothing was applied/);
      assert.match(e.message, /e\.g\. \(lastname\) = \(Same\) in 3 rows/);
      assert.match(e.message, /sender_id = "ghost"/);
      return true;
    });
    assert.equal(await columnOf(client, 'users', 'phone_copy'), null, 'not even the lossless change');
  });

  test('a dropped column, a narrowed type, NOT NULL over NULLs: refused with DDL and reason; applied when --allow names them', async (t) => {
    const client = await database(t);
    const model = await variant(t, [
      [col('sso_id', 'VARCHAR(255)'), ''],
      [col('phone', 'VARCHAR(255)'), col('phone', 'VARCHAR(20)')],
      [col('insurer', 'VARCHAR(255)'), col('insurer', 'VARCHAR(255)', NOT_NULL)],
    ]);
    const refused = (await previewSchema(client, model, [])).decision;
    assert.deepEqual(refused.apply, []);
    assert.deepEqual(
      refused.refused.map((c) => [c.kind, c.allow, c.deletesRows]),
      [
        ['change_type', 'type:users.phone', 1],
        ['nullability', 'not-null:users.insurer', 1],
        ['drop_column', 'drop-column:users.sso_id', 0],
      ],
    );
    const [type, notNull, drop] = refused.refused;
    assert.match(type!.risk!, /VARCHAR\(20\) may not hold what VARCHAR\(255\) holds: 1 row\(s\) hold a value it cannot take and are deleted/);
    assert.deepEqual(type!.sql, [
      `DELETE FROM "users" WHERE "phone" IS NOT NULL AND NOT pg_input_is_valid("phone"::text, 'VARCHAR(20)')`,
      'ALTER TABLE "users" ALTER COLUMN "phone" TYPE VARCHAR(20) USING "phone"::VARCHAR(20)',
    ]);
    assert.match(notNull!.risk!, /the 1 row\(s\) holding NULL are deleted/);
    assert.deepEqual(drop!.sql, ['ALTER TABLE "users" DROP COLUMN "sso_id"']);
    assert.match(drop!.risk!, /its values are lost/);

    // Without --allow: nothing changes.
    const none = await applySchema(client, model, { alter: true });
    assert.equal(none.applied.length, 0);
    assert.equal(none.refused.length, 3);
    assert.deepEqual(await columnOf(client, 'users', 'phone'), { type: 'character varying(255)', notnull: false });
    assert.notEqual(await columnOf(client, 'users', 'sso_id'), null);

    // Each applied when named; the rows a full run would reject go.
    const report = await applySchema(client, model, { alter: true, allow: ['type:users.phone', 'not-null:users.insurer', 'drop-column:users.sso_id', 'drop-column:users.nope'] });
    assert.deepEqual(report.refused, []);
    assert.deepEqual(report.unusedAllows, ['drop-column:users.nope']);
    assert.deepEqual(report.deletedRows, { users: 1 });
    assert.deepEqual(await columnOf(client, 'users', 'phone'), { type: 'character varying(20)', notnull: false });
    assert.deepEqual(await columnOf(client, 'users', 'insurer'), { type: 'character varying(255)', notnull: true });
    assert.equal(await columnOf(client, 'users', 'sso_id'), null);
    const { rows } = await client.query('SELECT id FROM users ORDER BY id');
    assert.deepEqual(rows.map((r) => r.id), ['u1', 'u2'], 'u3 (long phone, no insurer) is gone');
    assert.deepEqual((await checkDrift(client, model)).findings, []);
  });

  test('a renamed column looks like drop + add: refused as a rename; --allow rename-column keeps the values', async (t) => {
    const client = await database(t);
    const model = await variant(t, [[col('population', 'VARCHAR(255)'), col('segment', 'VARCHAR(255)')]]);
    const { decision } = await previewSchema(client, model, []);
    assert.deepEqual(decision.apply, []);
    assert.deepEqual(
      decision.refused.map((c) => [c.kind, c.column, c.allow, c.neededByLoad]),
      [
        ['rename_column', 'segment', 'rename-column:users.population=segment', true],
        ['add_column', 'segment', 'add-column:users.segment', true],
        ['drop_column', 'population', 'drop-column:users.population', false],
      ],
    );
    assert.deepEqual(decision.refused[0]!.sql, ['ALTER TABLE "users" RENAME COLUMN "population" TO "segment"']);
    const report = await applySchema(client, model, { alter: true, allow: ['rename-column:users.population=segment'] });
    assert.deepEqual(report.applied.map((c) => c.kind), ['rename_column']);
    assert.deepEqual(report.refused, [], 'the add and the drop it replaces are not offered any more');
    const { rows } = await client.query('SELECT segment FROM users ORDER BY id');
    assert.deepEqual(rows.map((r) => r.segment), ['p1', 'p2', 'p3']);
    assert.deepEqual((await checkDrift(client, model)).findings, []);
  });

  test('a rename seen as drop + add: dropping the old column also adds the new one', async (t) => {
    const client = await database(t);
    const model = await variant(t, [[col('population', 'VARCHAR(255)'), col('segment', 'VARCHAR(255)')]]);
    const report = await applySchema(client, model, { alter: true, allow: ['drop-column:users.population'] });
    assert.deepEqual(report.applied.map((c) => [c.kind, c.column]), [['add_column', 'segment'], ['drop_column', 'population']]);
    assert.deepEqual(report.refused, [], 'nothing is left to rename');
  });

  test('a new NOT NULL column on a table with rows is added nullable, NOT NULL once filled', async (t) => {
    const client = await database(t);
    const model = await variant(t, [[col('phone', 'VARCHAR(255)'), col('phone', 'VARCHAR(255)') + col('nickname', 'VARCHAR(255)', NOT_NULL)]]);
    const report = await applySchema(client, model, { alter: true });
    assert.match(report.applied[0]!.message, /NOT NULL once filled: run `etl schema` again/);
    assert.deepEqual(await columnOf(client, 'users', 'nickname'), { type: 'character varying(255)', notnull: false });
    await client.query(`UPDATE users SET nickname = firstname`);
    const again = await applySchema(client, model, { alter: true });
    assert.deepEqual(again.applied.map((c) => [c.kind, c.column]), [['nullability', 'nickname']]);
    assert.deepEqual(await columnOf(client, 'users', 'nickname'), { type: 'character varying(255)', notnull: true });
  });

  test('a primary key dropped or moved off the columns of a unique constraint pipeline.yaml keeps: one etl schema leaves the unique constraint in place', async (t) => {
    const client = await database(t);
    const LOGBOOK_ID = "      - name: id # PostgreSQL's own sequence, not the MongoDB _id\n        sql_type: SERIAL\n        primary_key: true\n";
    const LOGBOOK_KEY = col('user_id', 'VARCHAR', NOT_NULL + '        foreign_key: users(id)\n') + col('day', 'DATE', NOT_NULL) + col('created_at', 'TIMESTAMP', NOT_NULL);
    const keyed = (c: string) => c.replace(NOT_NULL, `${NOT_NULL}        primary_key: true\n`);
    const byDay: [string, string][] = [
      ['    dedupe_key: [user_id, day]\n', '    dedupe_key: [user_id, day, created_at]\n'],
      ['      - [user_id, day]\n    export_order: 3', '      - [user_id, day, created_at]\n    export_order: 3'],
    ];
    const pkOnKey: [string, string] = [LOGBOOK_ID + LOGBOOK_KEY, LOGBOOK_ID.replace('        primary_key: true\n', '') + LOGBOOK_KEY.split(/(?=      - name: )/).map(keyed).join('')];
    // users_logbook's primary key moves to (user_id, day, created_at), then its dedupe key (and
    // unique constraint) becomes those columns: the primary key already covers them.
    await applySchema(client, await variant(t, [pkOnKey]), { alter: true, allow: ['primary-key:users_logbook'] });
    const both = await variant(t, [pkOnKey, ...byDay]);
    await applySchema(client, both, { alter: true });
    assert.deepEqual((await checkDrift(client, both)).findings, []);
    // The key goes back to the SERIAL id: (user_id, day, created_at) must stay unique (load merges on it).
    const back = await variant(t, byDay);
    const report = await applySchema(client, back, { alter: true, allow: ['primary-key:users_logbook'] });
    assert.deepEqual(report.refused, []);
    assert.deepEqual((await checkDrift(client, back)).findings, [], 'one etl schema makes the database match pipeline.yaml');
  });

  test('a primary key moved off a column pipeline.yaml then declares nullable: refused without --allow primary-key (the column keeps its NOT NULL, nothing fails); with it, the key moves and the NOT NULL goes', async (t) => {
    const client = await database(t);
    const LOGBOOK_DAY = col('day', 'DATE', NOT_NULL);
    // users_logbook keyed by (id, coaching_id), a column that is NOT NULL only as part of the key.
    const keyed = await variant(t, [[LOGBOOK_DAY, LOGBOOK_DAY + col('coaching_id', 'VARCHAR', '        primary_key: true\n')]]);
    await applySchema(client, keyed, { alter: true, allow: ['primary-key:users_logbook'] });
    assert.deepEqual((await checkDrift(client, keyed)).findings, []);
    // The key goes back to the SERIAL id alone: coaching_id, declared nullable, is then nullable.
    const back = await variant(t, [[LOGBOOK_DAY, LOGBOOK_DAY + col('coaching_id', 'VARCHAR')]]);
    const refused = await applySchema(client, back, { alter: true });
    assert.deepEqual(refused.refused.map((c) => c.allow), ['primary-key:users_logbook']);
    assert.deepEqual(await columnOf(client, 'users_logbook', 'coaching_id'), { type: 'character varying', notnull: true }, 'refused: the key still holds coaching_id');
    const report = await applySchema(client, back, { alter: true, allow: ['primary-key:users_logbook'] });
    assert.deepEqual(report.refused, []);
    assert.deepEqual(await columnOf(client, 'users_logbook', 'coaching_id'), { type: 'character varying', notnull: false });
    assert.deepEqual((await checkDrift(client, back)).findings, [], 'one etl schema makes the database match pipeline.yaml');
  });

  test('a dedupe key narrowed back together with a primary key on it, over rows the wider key made: one row per key stays, the key is added', async (t) => {
    const client = await database(t);
    const wider = await variant(t, [
      ['    dedupe_key: [menu_id, recipe_id]\n', '    dedupe_key: [menu_id, recipe_id, created_at]\n'],
      ['      - [menu_id, recipe_id]\n', '      - [menu_id, recipe_id, created_at]\n'],
    ]);
    await applySchema(client, wider, { alter: true });
    // Two documents of one (menu, recipe): two rows under the wider key. A run loaded the table.
    await client.query(`
      INSERT INTO recipes VALUES ('r1', now(), now(), 'Soup');
      INSERT INTO menus VALUES ('m1', now(), now(), 'Winter');
      INSERT INTO menu_recipes VALUES ('m1', 'r1', '2024-01-01', '2024-01-01'), ('m1', 'r1', '2024-02-01', '2024-02-01');
      INSERT INTO etl_watermarks (table_name, watermark, run_id, fingerprint) VALUES ('menu_recipes', now(), 'r1', 'sha256:${'0'.repeat(64)}');
    `);
    const keyed = await variant(t, [
      [col('menu_id', 'VARCHAR', NOT_NULL), col('menu_id', 'VARCHAR', `${NOT_NULL}        primary_key: true\n`)],
      [col('recipe_id', 'VARCHAR', NOT_NULL + '        foreign_key: recipes(id)\n'), col('recipe_id', 'VARCHAR', `${NOT_NULL}        primary_key: true\n        foreign_key: recipes(id)\n`)],
    ]);
    const report = await applySchema(client, keyed, { alter: true });
    assert.deepEqual(report.refused, []);
    assert.deepEqual((await checkDrift(client, keyed)).findings, []);
    const { rows } = await client.query('SELECT menu_id, recipe_id FROM menu_recipes');
    assert.deepEqual(rows, [{ menu_id: 'm1', recipe_id: 'r1' }], 'one row per new key until the next run recomputes it');
  });

  test('a dedupe table whose column an older etl retyped without its contributions: etl schema gives the contributions the table\'s type', async (t) => {
    // users_logbook.day became TIMESTAMP (pipeline.yaml and table), etl_contrib_users_logbook.day stayed DATE:
    // every run would store the contributions cut to a DATE and recompute the keys from them.
    const client = await database(t, [
      'ALTER TABLE users_logbook ALTER COLUMN day TYPE TIMESTAMP',
      `INSERT INTO etl_contrib_users_logbook (_id, user_id, day, created_at, updated_at) VALUES ('d1', 'u1', '2024-03-06', now(), now())`,
    ]);
    const day = '      - name: day\n        sql_type: DATE\n';
    const model = await variant(t, [[day, day.replace('DATE', 'TIMESTAMP')]]);
    const drift = await checkDrift(client, model);
    assert.deepEqual(drift.findings.map((f) => [f.table, f.column, f.kind]), [['etl_contrib_users_logbook', 'day', 'state_column_type']]);
    const report = await applySchema(client, model, { alter: true });
    assert.deepEqual(report.refused, []);
    assert.deepEqual(await columnOf(client, 'etl_contrib_users_logbook', 'day'), { type: 'timestamp without time zone', notnull: false });
    const { rows } = await client.query(`SELECT _id, to_char(day, 'YYYY-MM-DD HH24:MI') AS day FROM etl_contrib_users_logbook`);
    assert.deepEqual(rows, [{ _id: 'd1', day: '2024-03-06 00:00' }], 'the contribution is kept, converted');
    assert.equal((await checkDrift(client, model)).clean, true);
  });

  test('state tables: a column a newer etl declares is added by etl schema and by load\'s ensureSchema', async (t) => {
    const client = await database(t, ['ALTER TABLE etl_watermarks DROP COLUMN fingerprint', `INSERT INTO etl_watermarks (table_name, watermark, run_id) VALUES ('users', now(), 'r1')`]);
    const drift = await checkDrift(client, shipped);
    assert.deepEqual(drift.findings.map((f) => [f.table, f.column, f.kind]), [['etl_watermarks', 'fingerprint', 'missing_state_column']]);
    const report = await applySchema(client, shipped);
    assert.deepEqual(report.statements, ['ALTER TABLE "etl_watermarks" ADD COLUMN IF NOT EXISTS "fingerprint" TEXT']);
    assert.deepEqual(await columnOf(client, 'etl_watermarks', 'fingerprint'), { type: 'text', notnull: false });
    const { rows } = await client.query('SELECT table_name, fingerprint FROM etl_watermarks');
    assert.deepEqual(rows, [{ table_name: 'users', fingerprint: null }], 'the stored watermark is kept');

    await client.query('ALTER TABLE etl_watermarks DROP COLUMN fingerprint');
    await client.query('BEGIN');
    await ensureSchema(client, shipped);
    await client.query('COMMIT');
    assert.deepEqual(await columnOf(client, 'etl_watermarks', 'fingerprint'), { type: 'text', notnull: false });
    assert.equal((await checkDrift(client, shipped)).clean, true);
  });
});
