// The initial load's large COPYs in PostgreSQL's binary format (load/copy-format.ts): the outcome
// must be the CSV's, row for row, whatever the values; a value the encoder does not write, a column
// altered to another type, or a value PostgreSQL refuses all go through the CSV COPY, so the rows
// and the errors are exactly what they were. Which COPYs ran is read from the statements the load
// sent (a spy on pg.Client#query that only records).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { useServers } from '../harness/index.ts';
import { createTables } from '../harness/schema.ts';
import { runLoad } from '../../load/index.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { timestampText } from '../../mapping/convert.ts';
import type { Cell } from '../../staging/csv.ts';
import { pipelineFromYaml } from '../harness/staged-run.ts';
import { stageRun, type StagedTable } from './staged-run.ts';
import { postgresConfig, query, TIMESTAMPS } from './model-fixture.ts';

const servers = useServers({ mongo: false });

const model = pipelineFromYaml(`tables:
  kinds:
    include_base: true
    additional_columns:
      - name: short
        sql_type: VARCHAR(5)
      - name: body
        sql_type: TEXT
      - name: small
        sql_type: SMALLINT
      - name: whole
        sql_type: INTEGER
      - name: big
        sql_type: BIGINT
      - name: flag
        sql_type: BOOLEAN
      - name: born
        sql_type: DATE
      - name: doc
        sql_type: JSONB
  notes:
    include_base: true
    additional_columns:
      - name: kind_id
        sql_type: VARCHAR
        foreign_key: kinds(id)
      - name: other_id
        sql_type: VARCHAR
        foreign_key: kinds(id)
        on_missing: set_null
  log:
    strategy: dedupe
    dedupe_key: [kind_id, day]
    latest_by: updated_at
    columns:
      - name: id
        sql_type: SERIAL
        primary_key: true
      - name: kind_id
        sql_type: VARCHAR
        nullable: false
        foreign_key: kinds(id)
      - name: day
        sql_type: DATE
        nullable: false${TIMESTAMPS}
    unique_constraints:
      - [kind_id, day]
`);

const t = (ms: number): string => timestampText(ms);
const at = t(Date.UTC(2024, 2, 1, 10));

/** Rows with the values a converter can write, the edges of each type among them. */
function kindsRows(): Cell[][] {
  const edge: Cell[][] = [
    ['k1', at, at, 'ab', 'plain', '0', '0', '0', 'true', '2024-02-29', '{"a": 1}'],
    ['k2', t(Date.UTC(1, 0, 1) - 0), t(Date.UTC(9999, 11, 31, 23, 59, 59, 999)), '', '', '-32768', '-2147483648', '-9223372036854775808', 'false', '0001-01-01', '[]'],
    ['k3', t(Date.UTC(1999, 11, 31, 23, 59, 59, 999)), t(Date.UTC(2000, 0, 1, 0, 0, 0, 1)), 'éàü€😀'.slice(0, 5), 'a,b "quoted"\nnext line\r\nand a CR\r', '32767', '2147483647', '9223372036854775807', null, '9999-12-31', '"\\u00e9 text"'],
    ['k4', t(Date.UTC(1899, 11, 31, 23, 59, 59, 999)), t(Date.UTC(2287, 0, 1)), null, '\\.', null, null, '-4503599627370497', 'true', '1600-02-29', null],
    ['k5', t(Date.UTC(1970, 0, 1)), t(-1), '😀😀😀😀😀', 'x'.repeat(100_000), '-1', '-1', '-1', 'false', '1900-03-01', '{"nested": {"é": [1, 2.5, null, true]}}'],
  ];
  // A seeded spread of ordinary values.
  let seed = 7;
  const next = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) % n);
  for (let i = 0; i < 300; i += 1) {
    const ms = Date.UTC(1900, 0, 1) + next(2_000_000) * 1_000_003 * 3;
    edge.push([`r${i}`, t(ms), t(ms + next(1000)), next(3) === 0 ? null : String(next(99999)), `text ${i}${next(5) === 0 ? ',"' : ''}`, String(next(65536) - 32768), String(next(2_000_000) - 1_000_000), String(next(2_147_483_647) * 4_000_000), next(2) ? 'true' : 'false', t(ms).slice(0, 10), `{"i": ${i}}`]);
  }
  return edge;
}

const data: Record<string, StagedTable> = {
  kinds: { rows: kindsRows() },
  notes: { rows: [['n1', at, at, 'k1', 'k2'], ['n2', at, at, 'k9', null], ['n3', at, at, 'k3', 'k8'], ['n4', at, at, null, null]] },
  log: {
    rows: [['k1', '2024-03-01', at, at], ['k1', '2024-03-01', at, t(Date.UTC(2024, 2, 2))], ['k2', '2024-03-01', at, at], ['k9', '2024-03-02', at, at]],
    docs: ['l1', 'l2', 'l3', 'l4'],
  },
};

/** The COPY statements a load sends, as PostgreSQL receives them. */
function spyCopies(): { statements: string[]; stop: () => void } {
  const statements: string[] = [];
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const text = (args[0] as { text?: unknown } | undefined)?.text;
    if (typeof text === 'string' && text.startsWith('COPY')) statements.push(text);
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  return { statements, stop: () => (pg.Client.prototype.query = original) };
}

/** Per COPY target among `tables`, the formats it was COPYed in, in order. */
function formats(statements: readonly string[], tables: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of statements) {
    const table = /^COPY "([^"]+)"/.exec(s)?.[1];
    if (table && tables.includes(table)) (out[table] ??= []).push(s.includes('FORMAT binary') ? 'binary' : 'csv');
  }
  return out;
}

async function schemaOnly(url: string, alter?: string): Promise<void> {
  await createTables(url, model);
  if (alter) await query(url, alter);
}

/** Everything a load leaves: every row as text (in key order), the pending entries, the rejects files. */
async function outcome(url: string, staging: string, runId: string): Promise<Record<string, unknown>> {
  const rows = (sql: string) => query(url, sql);
  const paths = runPaths(staging, runId);
  const rejects: Record<string, string> = {};
  for (const name of ['kinds', 'notes', 'log']) rejects[name] = await readFile(paths.loadRejects(name), 'utf8').catch(() => '(none)');
  return {
    kinds: await rows(`SELECT k::text AS row FROM kinds k ORDER BY id`),
    notes: await rows(`SELECT n::text AS row FROM notes n ORDER BY id`),
    log: await rows(`SELECT l::text AS row FROM log l ORDER BY id`),
    contributions: await rows(`SELECT c::text AS row FROM etl_contrib_log c ORDER BY _id`),
    pending: await rows(`SELECT table_name, row_key, owner, kind, row, missing FROM etl_pending ORDER BY table_name, row_key::text`),
    rejects,
  };
}

/** The ordinary path (batch temp tables, CSV) and the direct one (bulkRows 1: binary where it can) from the same staged run. */
async function bothPaths(name: string, staged: Record<string, StagedTable>, alter?: string) {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-binary-'));
  try {
    const runId = await stageRun(staging, model, staged);
    const ordinary = await servers.postgres.createDatabase(`${name} ordinary`);
    await schemaOnly(ordinary, alter);
    await runLoad({ model, stagingDir: staging, postgres: postgresConfig(ordinary) });
    const expected = await outcome(ordinary, staging, runId);
    const direct = await servers.postgres.createDatabase(`${name} direct`);
    await schemaOnly(direct, alter);
    const spy = spyCopies();
    try {
      await runLoad({ model, stagingDir: staging, postgres: postgresConfig(direct), bulkRows: 1 });
    } finally {
      spy.stop();
    }
    return { expected, got: await outcome(direct, staging, runId), copies: formats(spy.statements, ['kinds', 'notes', 'etl_contrib_log']) };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

test('a first load COPYs in binary every value a converter writes, with the rows, pending entries and rejects of the CSV', async (t) => {
  const { expected, got, copies } = await bothPaths(t.name, data);
  assert.deepEqual(got, expected);
  assert.deepEqual(copies, { kinds: ['binary'], notes: ['binary'], etl_contrib_log: ['binary'] });
  assert.equal((expected.kinds as unknown[]).length, 305);
  assert.match((expected.rejects as Record<string, string>).notes!, /k9/);
});

test('a value the encoder does not write (a timestamp without milliseconds) sends that table as CSV, with the same rows', async (t) => {
  const rows = kindsRows();
  rows[1]![1] = '2024-03-01 10:00:00';
  const { expected, got, copies } = await bothPaths(t.name, { ...data, kinds: { rows } });
  assert.deepEqual(got, expected);
  assert.deepEqual(copies, { kinds: ['binary', 'csv'], notes: ['binary'], etl_contrib_log: ['binary'] });
});

test('a column altered to another type than pipeline.yaml says (TIMESTAMPTZ, the role in another time zone) is COPYed as CSV, each staged UTC wall time the instant it stands for', async (t) => {
  const alter = `ALTER TABLE kinds ALTER COLUMN created_at TYPE timestamptz; ALTER ROLE CURRENT_USER SET timezone = 'America/New_York'`;
  const { expected, got, copies } = await bothPaths(t.name, data, alter);
  assert.deepEqual(got, expected);
  assert.deepEqual(copies, { kinds: ['csv'], notes: ['binary'], etl_contrib_log: ['binary'] });
  // etl's sessions are in UTC whatever the role sets (connect/postgres.ts), so the CSV's 10:00 is 10:00
  // UTC, shown here in the role's New York; before, the session read it as 10:00 in New York.
  assert.match((expected.kinds as { row: string }[])[0]!.row, /2024-03-01 05:00:00-05/);
});

test('a value PostgreSQL refuses is reported at its CSV line and column, as the CSV COPY reports it', async (t) => {
  const staging = await mkdtemp(path.join(os.tmpdir(), 'etl-binary-'));
  t.after(() => rm(staging, { recursive: true, force: true }));
  const rows = kindsRows();
  rows[1]![3] = 'sixsix';
  await stageRun(staging, model, { kinds: { rows } });
  const url = await servers.postgres.createDatabase(t.name);
  await schemaOnly(url);
  const spy = spyCopies();
  try {
    await assert.rejects(runLoad({ model, stagingDir: staging, postgres: postgresConfig(url), bulkRows: 1 }), (error: Error) => {
      assert.match(error.message, /kinds\.csv line 3, column short: value too long/);
      return true;
    });
  } finally {
    spy.stop();
  }
  assert.deepEqual(formats(spy.statements, ['kinds']), { kinds: ['binary', 'csv'] });
  assert.deepEqual(await query(url, `SELECT count(*)::int AS n FROM kinds`), [{ n: 0 }]);
});
