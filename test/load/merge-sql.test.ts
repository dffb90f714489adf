// The merge SQL, tested twice (as Kysely does): the exact text for a small model, then the same
// statements run on a real PostgreSQL, with a column named `order` and a table name holding `"`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import {
  copyStagingSql,
  createStagingTableSql,
  deleteStaleLinksSql,
  dropBatchDuplicatesSql,
  insertNewLinksSql,
  mergeShape,
  tempNames,
  updateChangedLinksSql,
  upsertSql,
} from '../../load/merge-sql.ts';
import { createTableSql } from '../../schema/ddl.ts';
import { col, table, timestamps, T } from './staged-run.ts';

const servers = useServers({ mongo: false });

const things = table({
  name: 'thi"ngs',
  columns: [col('id', { pk: true }), ...timestamps(), col('name', { type: T.varchar(5), nullable: false }), col('order', { type: T.smallint() })],
});

const links = table({
  name: 'links',
  strategy: 'explode',
  parent: 'thing_id',
  merge: 'delete_and_insert',
  unique: [['thing_id', 'other_id']],
  columns: [col('thing_id', { nullable: false }), col('other_id', { nullable: false }), ...timestamps()],
});

test('upsert SQL: quoted names, conflict on the primary key, unchanged rows skipped', () => {
  const s = mergeShape(things, tempNames(0));
  assert.equal(
    createStagingTableSql(s).sql,
    'CREATE TEMP TABLE "etl_stage_0" ("etl_line" bigint GENERATED ALWAYS AS IDENTITY (START WITH 2), "id" varchar NOT NULL, "created_at" timestamp NOT NULL, "updated_at" timestamp NOT NULL, "name" varchar(5) NOT NULL, "order" smallint) ON COMMIT DROP',
  );
  assert.equal(copyStagingSql(s, '(FORMAT csv, HEADER true)'), 'COPY "etl_stage_0" ("id", "created_at", "updated_at", "name", "order") FROM STDIN WITH (FORMAT csv, HEADER true)');
  const q = upsertSql(s);
  assert.deepEqual(q.parameters, []);
  assert.equal(
    q.sql,
    'WITH merged AS (INSERT INTO "thi""ngs" AS t ("id", "created_at", "updated_at", "name", "order") SELECT "id", "created_at", "updated_at", "name", "order" FROM "etl_stage_0" ' +
      'ON CONFLICT ("id") DO UPDATE SET "created_at" = EXCLUDED."created_at", "updated_at" = EXCLUDED."updated_at", "name" = EXCLUDED."name", "order" = EXCLUDED."order" ' +
      'WHERE (t."created_at", t."updated_at", t."name", t."order") IS DISTINCT FROM (EXCLUDED."created_at", EXCLUDED."updated_at", EXCLUDED."name", EXCLUDED."order") ' +
      'RETURNING (t.xmax = 0) AS inserted) SELECT count(*) FILTER (WHERE inserted)::bigint AS inserted, count(*) FILTER (WHERE NOT inserted)::bigint AS updated FROM merged',
  );
});

test('delete-and-insert SQL: scoped to the staged parents, matched on the unique constraint', () => {
  const s = mergeShape(links, tempNames(3));
  assert.equal(
    deleteStaleLinksSql(s).sql,
    'DELETE FROM "links" AS t WHERE t."thing_id" IN (SELECT k."thing_id" FROM "etl_keys_3" AS k UNION SELECT s2."thing_id" FROM "etl_stage_3" AS s2) ' +
      'AND NOT EXISTS (SELECT 1 FROM "etl_stage_3" AS s WHERE s."thing_id" = t."thing_id" AND s."other_id" = t."other_id")',
  );
  assert.equal(
    updateChangedLinksSql(s)!.sql,
    'UPDATE "links" AS t SET "created_at" = s."created_at", "updated_at" = s."updated_at" FROM "etl_stage_3" AS s WHERE t."thing_id" = s."thing_id" AND t."other_id" = s."other_id" ' +
      'AND (t."created_at", t."updated_at") IS DISTINCT FROM (s."created_at", s."updated_at")',
  );
});

test('the statements run on PostgreSQL: duplicates, upsert counts, delete-and-insert', async (t) => {
  const url = await servers.postgres.createDatabase(t.name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  await client.query(createTableSql(things));
  await client.query(createTableSql(links));
  await client.query('BEGIN');

  // ── upsert ──
  const s = mergeShape(things, tempNames(0));
  await client.query(createStagingTableSql(s).sql);
  await client.query(
    `INSERT INTO "etl_stage_0" ("id", "created_at", "updated_at", "name", "order") VALUES
       ('a', '2024-01-01', '2024-01-01', 'one', 1), ('b', '2024-01-01', '2024-01-01', 'two', NULL), ('a', '2024-01-01', '2024-01-02', 'uno', 2)`,
  );
  const dup = await client.query(dropBatchDuplicatesSql(s).sql);
  assert.equal(dup.rowCount, 1, 'the first "a" is dropped: the last row of a key wins');
  let r = await client.query(upsertSql(s).sql);
  assert.deepEqual(r.rows[0], { inserted: '2', updated: '0' });
  const rows = await client.query(`SELECT id, name, "order" FROM "thi""ngs" ORDER BY id`);
  assert.deepEqual(rows.rows, [
    { id: 'a', name: 'uno', order: 2 },
    { id: 'b', name: 'two', order: null },
  ]);
  // Same rows again: nothing rewritten; one changed row: one update.
  r = await client.query(upsertSql(s).sql);
  assert.deepEqual(r.rows[0], { inserted: '0', updated: '0' });
  await client.query(`UPDATE "etl_stage_0" SET "order" = 7 WHERE id = 'b'`);
  r = await client.query(upsertSql(s).sql);
  assert.deepEqual(r.rows[0], { inserted: '0', updated: '1' });

  // ── delete-and-insert ──
  await client.query(`INSERT INTO links VALUES ('p1', 'x', '2024-01-01', '2024-01-01'), ('p1', 'y', '2024-01-01', '2024-01-01'), ('p2', 'x', '2024-01-01', '2024-01-01'), ('p3', 'z', '2024-01-01', '2024-01-01')`);
  const l = mergeShape(links, tempNames(1));
  await client.query(createStagingTableSql(l).sql);
  await client.query(`CREATE TEMP TABLE "etl_keys_1" ("thing_id" varchar NOT NULL)`);
  // p1 keeps x (timestamps changed) and loses y, gains w twice (an id twice in one array); p2's array emptied; p3 not staged.
  await client.query(`INSERT INTO "etl_keys_1" VALUES ('p1'), ('p2')`);
  await client.query(
    `INSERT INTO "etl_stage_1" ("thing_id", "other_id", "created_at", "updated_at") VALUES
       ('p1', 'x', '2024-01-01', '2024-02-01'), ('p1', 'w', '2024-01-01', '2024-02-01'), ('p1', 'w', '2024-01-01', '2024-02-01')`,
  );
  assert.equal((await client.query(dropBatchDuplicatesSql(l).sql)).rowCount, 1);
  assert.equal((await client.query(deleteStaleLinksSql(l).sql)).rowCount, 2, 'p1→y and p2→x');
  assert.equal((await client.query(updateChangedLinksSql(l)!.sql)).rowCount, 1, 'p1→x');
  assert.equal((await client.query(insertNewLinksSql(l).sql)).rowCount, 1, 'p1→w');
  const after = await client.query(`SELECT thing_id, other_id, updated_at::text AS u FROM links ORDER BY 1, 2`);
  assert.deepEqual(after.rows, [
    { thing_id: 'p1', other_id: 'w', u: '2024-02-01 00:00:00' },
    { thing_id: 'p1', other_id: 'x', u: '2024-02-01 00:00:00' },
    { thing_id: 'p3', other_id: 'z', u: '2024-01-01 00:00:00' },
  ]);
  await client.query('ROLLBACK');
  // The hostile name did not hurt anything.
  const exists = await client.query(`SELECT to_regclass('"thi""ngs"') IS NOT NULL AS ok`);
  assert.equal(exists.rows[0].ok, true);
});
