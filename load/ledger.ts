// The load's state in PostgreSQL, written in the load's own transaction: the tables (created when
// missing, inside the transaction, so a failed or dry load leaves no trace), the ledger of applied
// runs (etl_runs) and the watermarks the next extract starts from (etl_watermarks). Their SQL lives
// here, beside the code that owns that state.
import type pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { createMissing, lockSchema, type SchemaLockWait } from '../schema/apply.ts';
import { RUNS_TABLE, WATERMARKS_TABLE } from '../schema/state-tables.ts';
import { compiled, ident, runSql, type CompiledQuery } from '../schema/sql.ts';
import { fingerprintToStore, type PlannedMapping } from '../model/fingerprint.ts';

const runs = ident(RUNS_TABLE);
const watermarks = ident(WATERMARKS_TABLE);

/**
 * Creates the missing tables of the model and the state tables (adding to existing state tables the
 * columns this version declares), and makes the model's foreign keys deferrable (load defers them to
 * its COMMIT). Call inside the transaction.
 */
export async function ensureSchema(client: pg.Client, model: PipelineModel, wait: SchemaLockWait = {}): Promise<string[]> {
  // The same key `etl schema` takes, so the two never race between the check and the CREATE.
  await lockSchema(client, wait);
  const created = (await createMissing(client, model)).created;
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
    await runSql(client, compiled(`ALTER TABLE ${ident(row.tbl)} ALTER CONSTRAINT ${ident(row.name)} DEFERRABLE INITIALLY IMMEDIATE`));
  }
}

/** Tables of this run already loaded, with when. */
export async function appliedTables(client: pg.Client, runId: string): Promise<Map<string, { loadedAt: string; summary: unknown }>> {
  const r = await runSql(client, compiled(`SELECT table_name, loaded_at, summary FROM ${runs} WHERE run_id = $1`, [runId]));
  return new Map((r.rows as { table_name: string; loaded_at: Date; summary: unknown }[]).map((row) => [row.table_name, { loadedAt: row.loaded_at.toISOString(), summary: row.summary }]));
}

/** One ledger row a table of the run. */
export interface LedgerEntry {
  readonly table: string;
  readonly summary: unknown;
}

/** The ledger rows of the run's tables, in one statement. */
export async function recordTables(client: pg.Client, runId: string, pipelineSha256: string, entries: readonly LedgerEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await runSql(
    client,
    compiled(
      `INSERT INTO ${runs} (run_id, table_name, pipeline_sha256, summary) SELECT $1, e.t, $2, e.s FROM unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS e(t, s, n) ORDER BY e.n`,
      [runId, pipelineSha256, entries.map((e) => e.table), entries.map((e) => JSON.stringify(e.summary))],
    ),
  );
}

/** A table's watermark row as the load found it when it started. */
export interface StoredWatermark {
  readonly watermark: Date;
  readonly fingerprint: string | null;
  /** The run that set the watermark. */
  readonly runId: string;
}

/**
 * The watermarks of `tables` when the load starts. Only the load itself writes them afterwards, each
 * table's once (advanceWatermark, or forgetWatermark, after which it no longer advances).
 */
export async function storedWatermarks(client: pg.Client, tables: readonly string[]): Promise<Map<string, StoredWatermark>> {
  const r = await runSql(client, compiled(`SELECT table_name, watermark, fingerprint, run_id FROM ${watermarks} WHERE table_name = ANY ($1::text[])`, [tables]));
  type Row = { table_name: string; watermark: Date; fingerprint: string | null; run_id: string };
  return new Map((r.rows as Row[]).map((row) => [row.table_name, { watermark: row.watermark, fingerprint: row.fingerprint, runId: row.run_id }]));
}

/**
 * Advances the table's watermark (never backwards) and stores the mapping fingerprint the rows now
 * follow: `current` (the model's) when the run was planned with it and read the table in full or
 * found it unchanged; otherwise the stored one stays, so the next extract still reads in full
 * (model/fingerprint.ts fingerprintToStore).
 */
export async function advanceWatermark(
  client: pg.Client,
  table: string,
  watermark: string,
  runId: string,
  mapping: { current: string; planned: PlannedMapping | null },
  stored: StoredWatermark | undefined,
): Promise<void> {
  const fingerprint = fingerprintToStore(mapping.current, stored, mapping.planned);
  await runSql(
    client,
    compiled(
      `INSERT INTO ${watermarks} AS w (table_name, watermark, run_id, updated_at, fingerprint) VALUES ($1, $2::timestamptz, $3, now(), $4) ` +
        `ON CONFLICT (table_name) DO UPDATE SET ` +
        `run_id = CASE WHEN EXCLUDED.watermark >= w.watermark THEN EXCLUDED.run_id ELSE w.run_id END, ` +
        `watermark = GREATEST(w.watermark, EXCLUDED.watermark), updated_at = now(), fingerprint = EXCLUDED.fingerprint`,
      [table, watermark, runId, fingerprint],
    ),
  );
}

/**
 * The tables of `tables` whose watermark a run newer than `runId` set, with that run, in load order
 * of `tables` (run ids sort as the instants their extracts started).
 */
export async function newerRunsLoaded(client: pg.Client, runId: string, tables: readonly string[]): Promise<{ table: string; runId: string }[]> {
  const r = await runSql(client, compiled(`SELECT table_name, run_id FROM ${watermarks} WHERE table_name = ANY ($1::text[]) AND run_id > $2`, [tables, runId]));
  const newer = new Map((r.rows as { table_name: string; run_id: string }[]).map((row) => [row.table_name, row.run_id]));
  return tables.filter((t) => newer.has(t)).map((t) => ({ table: t, runId: newer.get(t)! }));
}

/** Forgets a table's watermark, so the next extract reads its collection in full. */
export async function forgetWatermark(client: pg.Client, table: string): Promise<void> {
  await runSql(client, compiled(`DELETE FROM ${watermarks} WHERE table_name = $1`, [table]));
}
