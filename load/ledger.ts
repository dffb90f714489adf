// The load's state in PostgreSQL, written in the load's own transaction: the tables (created when
// missing, inside the transaction, so a failed or dry load leaves no trace), the ledger of applied
// runs (etl_runs) and the watermarks the next extract starts from (etl_watermarks).
import type pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { createMissing, lockSchema } from '../schema/apply.ts';
import { RUNS_TABLE, WATERMARKS_TABLE } from '../schema/state-tables.ts';
import { ident } from '../schema/sql.ts';
import { fingerprintToStore, type PlannedMapping } from '../model/fingerprint.ts';
import { advanceWatermarkSql, appliedTablesSql, fingerprintOfSql, forgetWatermarkSql, recordRunSql, watermarkOfSql } from './merge-sql.ts';

const runs = ident(RUNS_TABLE);
const watermarks = ident(WATERMARKS_TABLE);

/**
 * Creates the missing tables of the model and the state tables, and adds to existing state tables the
 * columns this version declares (schema/state-tables.ts). Call inside the transaction.
 */
export async function ensureSchema(client: pg.Client, model: PipelineModel): Promise<string[]> {
  // The same key `etl schema` takes, so the two never race between the check and the CREATE.
  await lockSchema(client);
  return (await createMissing(client, model)).created;
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

/**
 * Advances the table's watermark and stores the mapping fingerprint the rows now follow: `current`
 * (the model's) when the run was planned with it and read the table in full or found it unchanged;
 * otherwise the stored one stays, so the next extract still reads in full (fingerprintToStore).
 */
export async function advanceWatermark(
  client: pg.Client,
  table: string,
  watermark: string,
  runId: string,
  mapping: { current: string; planned: PlannedMapping | null },
): Promise<void> {
  const r = await client.query<{ fingerprint: string | null }>(fingerprintOfSql(watermarks).sql, [table]);
  const fingerprint = fingerprintToStore(mapping.current, r.rows[0]?.fingerprint ?? null, mapping.planned);
  await client.query(advanceWatermarkSql(watermarks).sql, [table, watermark, runId, fingerprint]);
}

export async function forgetWatermark(client: pg.Client, table: string): Promise<void> {
  await client.query(forgetWatermarkSql(watermarks).sql, [table]);
}

export async function watermarkOf(client: pg.Client, table: string): Promise<Date | null> {
  const r = await client.query<{ watermark: Date }>(watermarkOfSql(watermarks).sql, [table]);
  return r.rows[0]?.watermark ?? null;
}
