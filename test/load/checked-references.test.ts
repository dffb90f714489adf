// Rows whose references load checked itself are written without PostgreSQL's per-row RI checks
// (session_replication_role = replica, load/checked-references.ts) only where that silences nothing
// else: a table with a trigger of its own still has it fired, and a role that may not set the
// parameter loads through the fallback (foreign keys dropped and re-created) with the same outcome.
// Either way the refused and NULLed references are those of a full check, and the foreign keys end
// present and validated.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { runLoad } from '../../load/index.ts';
import { applySchema } from '../../schema/apply.ts';
import { runPaths } from '../../staging/run-folder.ts';
import pg from 'pg';
import { freshDatabaseAndStaging, stageRun } from './staged-run.ts';
import { fixtureModel, postgresConfig, query, ts } from './model-fixture.ts';

const servers = useServers({ mongo: false });
const model = fixtureModel();

const data = () => ({
  companies: { rows: [['c1', ts('1 10:00:00'), ts('1 10:00:00'), 'Acme']] },
  users: {
    rows: [
      ['u1', ts('1 10:00:00'), ts('1 10:00:00'), 'Ann', 'c1', '1'],
      ['u2', ts('1 10:00:00'), ts('1 10:00:00'), 'Bob', 'c9', null],
    ],
  },
  messages: {
    rows: [
      ['m1', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u2', 'hello'],
      ['m2', ts('1 10:00:00'), ts('1 10:00:00'), 'u1', 'u9', 'to nobody'],
    ],
  },
});

async function setup(t: { name: string; after(fn: () => unknown): void }) {
  const { url, staging } = await freshDatabaseAndStaging(servers, t, 'checked-refs');
  const run = await stageRun(staging, model, data());
  return { url, staging, run };
}

async function assertOutcome(url: string, staging: string, run: string): Promise<void> {
  assert.deepEqual(await query(url, `SELECT id, company_id FROM users ORDER BY id`), [
    { id: 'u1', company_id: 'c1' },
    { id: 'u2', company_id: null },
  ]);
  assert.deepEqual(await query(url, `SELECT id FROM messages ORDER BY id`), [{ id: 'm1' }]);
  const rejects = (await readFile(runPaths(staging, run).loadRejects('messages'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { column: string; value: string; line: number });
  assert.deepEqual(rejects.map((r) => [r.column, r.value, r.line]), [['receiver_id', 'u9', 3]]);
  const fks = await query<{ name: string; validated: boolean }>(url, `SELECT conname AS name, convalidated AS validated FROM pg_constraint WHERE contype = 'f' AND conrelid = 'messages'::regclass ORDER BY 1`);
  assert.deepEqual(fks, [
    { name: 'messages_receiver_id_fkey', validated: true },
    { name: 'messages_sender_id_fkey', validated: true },
  ]);
}

test('a table with a trigger of its own has it fired on a bulk load, references still checked exactly', async (t) => {
  const { url, staging, run } = await setup(t);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applySchema(client, model);
    await client.query(`CREATE TABLE seen (id text)`);
    await client.query(`CREATE FUNCTION note_message() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO seen VALUES (NEW.id); RETURN NEW; END $$`);
    await client.query(`CREATE TRIGGER note AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION note_message()`);
  } finally {
    await client.end();
  }
  await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(url), bulkRows: 1 });
  // The trigger saw every row the COPY wrote (m2 was then refused and deleted).
  assert.deepEqual(await query(url, `SELECT id FROM seen ORDER BY id`), [{ id: 'm1' }, { id: 'm2' }]);
  await assertOutcome(url, staging, run);
});

test('a role that may not set session_replication_role loads through the fallback, same outcome', async (t) => {
  const { url, staging, run } = await setup(t);
  const role = `etl_owner_${process.pid}`;
  const database = new URL(url).pathname.slice(1);
  await query(url, `CREATE ROLE ${role} LOGIN PASSWORD 'owner-pw' NOSUPERUSER`);
  t.after(async () => {
    await query(url, `DROP OWNED BY ${role}`).catch(() => undefined);
    await query(url, `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });
  await query(url, `ALTER DATABASE "${database}" OWNER TO ${role}`);
  await query(url, `ALTER SCHEMA public OWNER TO ${role}`);
  const owner = new URL(url);
  owner.username = role;
  owner.password = 'owner-pw';
  for (const bulkRows of [1, 1000]) {
    await query(url, `DROP TABLE IF EXISTS messages, user_companies, tags, logbook, pairs, users, companies, etl_runs, etl_watermarks, etl_pending, etl_claims CASCADE`);
    await runLoad({ model, stagingDir: staging, runId: run, postgres: postgresConfig(owner.toString()), bulkRows });
    await assertOutcome(url, staging, run);
  }
});
