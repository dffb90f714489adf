// The load's state in PostgreSQL, written in the load's own transaction: the tables (created when
// missing, inside the transaction, so a failed or dry load leaves no trace), the ledger of applied
// runs (etl_runs) and the watermarks the next extract starts from (etl_watermarks). Their SQL lives
// here, beside the code that owns that state.
import type pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { schemaSql } from '../schema/apply.ts';
import { existingTables } from '../schema/catalog.ts';
import { RUNS_TABLE, WATERMARKS_TABLE } from '../schema/state-tables.ts';
import { compiled, ident, runSql, type CompiledQuery } from '../schema/sql.ts';

const runs = ident(RUNS_TABLE);
const watermarks = ident(WATERMARKS_TABLE);

/** The same key `etl schema` takes, so the two never race between the check and the CREATE. */
const schemaLockSql = compiled(`SELECT pg_advisory_xact_lock(hashtext('etl schema'))`);

/**
 * Creates the missing tables of the model and the state tables, and makes the model's foreign keys
 * deferrable (load defers them to its COMMIT). Call inside the transaction.
 */
export async function ensureSchema(client: pg.Client, model: PipelineModel): Promise<string[]> {
  await runSql(client, schemaLockSql);
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
  await makeForeignKeysDeferrable(client, model);
  return created;
}

/** Foreign keys of the model's tables created NOT DEFERRABLE (by an older version of etl). */
function rigidForeignKeysSql(tables: readonly string[]): CompiledQuery {
  return compiled(
    `SELECT cl.relname AS tbl, c.conname AS name FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid ` +
      `WHERE c.contype = 'f' AND NOT c.condeferrable AND c.conrelid = ANY (SELECT to_regclass(quote_ident(t)) FROM unnest($1::text[]) AS t)`,
    [tables],
  );
}

async function makeForeignKeysDeferrable(client: pg.Client, model: PipelineModel): Promise<void> {
  const rigid = await runSql(client, rigidForeignKeysSql(model.loadOrder));
  for (const row of rigid.rows as { tbl: string; name: string }[]) {
    await client.query(`ALTER TABLE ${ident(row.tbl)} ALTER CONSTRAINT ${ident(row.name)} DEFERRABLE INITIALLY IMMEDIATE`);
  }
}

/** Tables of this run already loaded, with when. */
export async function appliedTables(client: pg.Client, runId: string): Promise<Map<string, { loadedAt: string; summary: unknown }>> {
  const r = await runSql(client, compiled(`SELECT table_name, loaded_at, summary FROM ${runs} WHERE run_id = $1`, [runId]));
  return new Map((r.rows as { table_name: string; loaded_at: Date; summary: unknown }[]).map((row) => [row.table_name, { loadedAt: row.loaded_at.toISOString(), summary: row.summary }]));
}

export async function recordTable(client: pg.Client, runId: string, table: string, pipelineSha256: string, summary: unknown): Promise<void> {
  await runSql(
    client,
    compiled(`INSERT INTO ${runs} (run_id, table_name, pipeline_sha256, summary) VALUES ($1, $2, $3, $4::jsonb)`, [runId, table, pipelineSha256, JSON.stringify(summary)]),
  );
}

/** Advances a table's watermark, never backwards. */
export async function advanceWatermark(client: pg.Client, table: string, watermark: string, runId: string): Promise<void> {
  await runSql(
    client,
    compiled(
      `INSERT INTO ${watermarks} AS w (table_name, watermark, run_id, updated_at) VALUES ($1, $2::timestamptz, $3, now()) ` +
        `ON CONFLICT (table_name) DO UPDATE SET ` +
        `run_id = CASE WHEN EXCLUDED.watermark >= w.watermark THEN EXCLUDED.run_id ELSE w.run_id END, ` +
        `watermark = GREATEST(w.watermark, EXCLUDED.watermark), updated_at = now()`,
      [table, watermark, runId],
    ),
  );
}

/** Forgets a table's watermark, so the next extract reads its collection in full. */
export async function forgetWatermark(client: pg.Client, table: string): Promise<void> {
  await runSql(client, compiled(`DELETE FROM ${watermarks} WHERE table_name = $1`, [table]));
}

export async function watermarkOf(client: pg.Client, table: string): Promise<Date | null> {
  const r = await runSql(client, compiled(`SELECT watermark FROM ${watermarks} WHERE table_name = $1`, [table]));
  return (r.rows[0] as { watermark: Date } | undefined)?.watermark ?? null;
}
