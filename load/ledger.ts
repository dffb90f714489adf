// The load's state in PostgreSQL, written in the load's own transaction: the tables (created when
// missing, inside the transaction, so a failed or dry load leaves no trace), the ledger of applied
// runs (etl_runs) and the watermarks the next extract starts from (etl_watermarks).
import type pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { schemaSql } from '../schema/apply.ts';
import { existingTables } from '../schema/catalog.ts';
import { RUNS_TABLE, WATERMARKS_TABLE } from '../schema/state-tables.ts';
import { ident } from '../schema/sql.ts';
import { advanceWatermarkSql, appliedTablesSql, forgetWatermarkSql, recordRunSql, watermarkOfSql } from './merge-sql.ts';

const runs = ident(RUNS_TABLE);
const watermarks = ident(WATERMARKS_TABLE);

/** Creates the missing tables of the model and the state tables. Call inside the transaction. */
export async function ensureSchema(client: pg.Client, model: PipelineModel): Promise<string[]> {
  // The same key `etl schema` takes, so the two never race between the check and the CREATE.
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('etl schema'))`);
  const wanted = schemaSql(model);
  const present = await existingTables(
    client,
    wanted.map((w) => w.table),
  );
  const created: string[] = [];
  for (const { table, sql } of wanted) {
    if (present.has(table)) continue;
    await client.query(sql);
    created.push(table);
  }
  return created;
}

/** Tables of this run already loaded, with when. */
export async function appliedTables(client: pg.Client, runId: string): Promise<Map<string, string>> {
  const q = appliedTablesSql(runs);
  const r = await client.query<{ table_name: string; loaded_at: Date }>(q.sql, [runId]);
  return new Map(r.rows.map((row) => [row.table_name, row.loaded_at.toISOString()]));
}

export async function recordTable(client: pg.Client, runId: string, table: string, pipelineSha256: string, summary: unknown): Promise<void> {
  await client.query(recordRunSql(runs).sql, [runId, table, pipelineSha256, JSON.stringify(summary)]);
}

export async function advanceWatermark(client: pg.Client, table: string, watermark: string, runId: string): Promise<void> {
  await client.query(advanceWatermarkSql(watermarks).sql, [table, watermark, runId]);
}

export async function forgetWatermark(client: pg.Client, table: string): Promise<void> {
  await client.query(forgetWatermarkSql(watermarks).sql, [table]);
}

export async function watermarkOf(client: pg.Client, table: string): Promise<Date | null> {
  const r = await client.query<{ watermark: Date }>(watermarkOfSql(watermarks).sql, [table]);
  return r.rows[0]?.watermark ?? null;
}
