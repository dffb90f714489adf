// Drift: change a database created from the shipped pipeline behind the tool's back, check that
// checkDrift names the difference and its fixing DDL, run that DDL, and check that drift is gone.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { applySchema } from '../../schema/apply.ts';
import { checkDrift, type DriftFinding } from '../../schema/drift.ts';
import type { PipelineModel } from '../../model/types.ts';

const SHIPPED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');

describe('checkDrift', () => {
  const servers = useServers({ mongo: false });
  let model: PipelineModel;

  /** A fresh database with the schema applied, altered by `sql`; returns the findings. */
  async function driftAfter(testName: string, sql: readonly string[], check: (findings: readonly DriftFinding[], client: pg.Client) => Promise<void>) {
    model ??= await loadPipeline(SHIPPED);
    const url = await servers.postgres.createDatabase(testName);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await applySchema(client, model);
      assert.equal((await checkDrift(client, model)).clean, true, 'clean right after applySchema');
      for (const s of sql) await client.query(s);
      const report = await checkDrift(client, model);
      assert.equal(report.clean, report.findings.length === 0);
      await check(report.findings, client);
    } finally {
      await client.end();
    }
  }

  /** Runs each fix that is not a comment, then expects no drift at all. */
  async function applyFixes(client: pg.Client, findings: readonly DriftFinding[]) {
    for (const f of findings) for (const sql of f.fix) if (!sql.startsWith('--')) await client.query(sql);
    const after = await checkDrift(client, model);
    assert.deepEqual(after.findings, [], 'the fix DDL makes the database match');
  }

  test('a dropped column: reported with ADD COLUMN; the fix makes it clean', async (t) => {
    await driftAfter(t.name, ['ALTER TABLE users DROP COLUMN phone'], async (findings, client) => {
      assert.deepEqual(findings, [
        {
          table: 'users',
          column: 'phone',
          kind: 'missing_column',
          expected: 'VARCHAR(255)',
          actual: null,
          message: 'column "users"."phone" is missing',
          fix: ['ALTER TABLE "users" ADD COLUMN "phone" VARCHAR(255)'],
        },
      ]);
      await applyFixes(client, findings);
    });
  });

  test('a type change: character varying(255) → text is reported with ALTER COLUMN TYPE', async (t) => {
    await driftAfter(t.name, ['ALTER TABLE users ALTER COLUMN email TYPE TEXT', 'ALTER TABLE appointments ALTER COLUMN "order" TYPE integer'], async (findings, client) => {
      assert.deepEqual(
        findings.map((f) => [f.table, f.column, f.kind, f.expected, f.actual]),
        [
          ['users', 'email', 'type', 'VARCHAR(255)', 'TEXT'],
          ['appointments', 'order', 'type', 'SMALLINT', 'INTEGER'],
        ],
      );
      assert.deepEqual(findings[0]!.fix, ['ALTER TABLE "users" ALTER COLUMN "email" TYPE VARCHAR(255) USING "email"::VARCHAR(255)']);
      assert.deepEqual(findings[1]!.fix, ['ALTER TABLE "appointments" ALTER COLUMN "order" TYPE SMALLINT USING "order"::SMALLINT']);
      await applyFixes(client, findings);
    });
  });

  test('a dropped NOT NULL is reported with SET NOT NULL (and an added one with DROP NOT NULL)', async (t) => {
    await driftAfter(t.name, ['ALTER TABLE users ALTER COLUMN email DROP NOT NULL', 'ALTER TABLE users ALTER COLUMN phone SET NOT NULL'], async (findings, client) => {
      assert.deepEqual(
        findings.map((f) => [f.column, f.kind, f.expected, f.actual, f.fix]),
        [
          ['email', 'nullability', 'NOT NULL', 'NULL', ['ALTER TABLE "users" ALTER COLUMN "email" SET NOT NULL']],
          ['phone', 'nullability', 'NULL', 'NOT NULL', ['ALTER TABLE "users" ALTER COLUMN "phone" DROP NOT NULL']],
        ],
      );
      await applyFixes(client, findings);
    });
  });

  test('an extra column is reported, its drop only suggested as a comment', async (t) => {
    await driftAfter(t.name, ['ALTER TABLE users ADD COLUMN nickname text'], async (findings, client) => {
      assert.equal(findings.length, 1);
      assert.equal(findings[0]!.kind, 'extra_column');
      assert.equal(findings[0]!.column, 'nickname');
      assert.deepEqual(findings[0]!.fix, ['-- ALTER TABLE "users" DROP COLUMN "nickname"']);
      for (const f of findings) for (const sql of f.fix) if (!sql.startsWith('--')) await client.query(sql);
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'`);
      assert.equal(rows[0].n, 1, 'never dropped');
    });
  });

  test('missing keys: primary key, unique constraint, foreign key', async (t) => {
    await driftAfter(
      t.name,
      [
        'ALTER TABLE users_targets DROP CONSTRAINT users_targets_user_id_target_id_type_key',
        'ALTER TABLE messages DROP CONSTRAINT messages_sender_id_fkey',
        'ALTER TABLE ingredients DROP CONSTRAINT ingredients_pkey',
      ],
      async (findings, client) => {
        assert.deepEqual(
          findings.map((f) => [f.table, f.kind, f.fix]),
          [
            ['ingredients', 'primary_key', ['ALTER TABLE "ingredients" ADD CONSTRAINT "ingredients_pkey" PRIMARY KEY ("id")']],
            ['users_targets', 'missing_unique', ['ALTER TABLE "users_targets" ADD CONSTRAINT "users_targets_user_id_target_id_type_key" UNIQUE ("user_id", "target_id", "type")']],
            ['messages', 'missing_foreign_key', ['ALTER TABLE "messages" ADD CONSTRAINT "messages_sender_id_fkey" FOREIGN KEY ("sender_id") REFERENCES "users" ("id") DEFERRABLE INITIALLY IMMEDIATE']],
          ],
        );
        await applyFixes(client, findings);
      },
    );
  });

  test('a foreign key pointing elsewhere and an extra unique index are reported', async (t) => {
    await driftAfter(
      t.name,
      [
        'ALTER TABLE messages DROP CONSTRAINT messages_receiver_id_fkey',
        'ALTER TABLE messages ADD CONSTRAINT messages_receiver_id_fkey FOREIGN KEY (receiver_id) REFERENCES companies (id)',
        'CREATE UNIQUE INDEX users_email_idx ON users (email)',
      ],
      async (findings) => {
        assert.deepEqual(
          findings.map((f) => [f.table, f.kind, f.expected, f.actual]),
          [
            ['users', 'extra_unique', null, '(email)'],
            ['messages', 'missing_foreign_key', 'users(id)', null],
            ['messages', 'extra_foreign_key', null, '(receiver_id) → companies(id)'],
          ],
        );
        assert.match(findings[2]!.fix[0]!, /^-- ALTER TABLE "messages" DROP CONSTRAINT "messages_receiver_id_fkey"/);
      },
    );
  });

  test('a SERIAL that lost its sequence, and a missing table', async (t) => {
    await driftAfter(
      t.name,
      ['ALTER TABLE users_logbook ALTER COLUMN id DROP DEFAULT', 'DROP SEQUENCE users_logbook_id_seq', 'DROP TABLE days_logbooks_links', 'DROP TABLE etl_runs'],
      async (findings, client) => {
        assert.deepEqual(
          findings.map((f) => [f.table, f.column, f.kind, f.expected, f.actual]),
          [
            ['users_logbook', 'id', 'type', 'SERIAL', 'INTEGER'],
            ['days_logbooks_links', null, 'missing_table', 'table', null],
            ['etl_runs', null, 'missing_table', 'table', null],
          ],
        );
        assert.match(findings[1]!.fix[0]!, /^CREATE TABLE IF NOT EXISTS "days_logbooks_links"/);
        await applyFixes(client, findings);
        const { rows } = await client.query(
          `INSERT INTO companies VALUES ('c', now(), now(), 'n');
           INSERT INTO users (id, created_at, updated_at, firstname, lastname, email, role) VALUES ('u', now(), now(), 'a', 'b', 'e', 'r');
           INSERT INTO users_logbook (user_id, day, created_at, updated_at) VALUES ('u', '2024-01-01', now(), now()) RETURNING id`,
        ).then((r) => (r as unknown as pg.QueryResult[])[2]!);
        assert.equal(rows[0].id, 1, 'the restored sequence numbers rows again');
      },
    );
  });
});
