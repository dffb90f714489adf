// Reads the stored watermarks and mapping fingerprints (etl_watermarks, written by load in its
// transaction). Extract only reads; a missing table means no table was ever loaded, so everything is
// read in full; a missing fingerprint column (a database `etl schema` has not migrated yet) means
// every watermark was stored without one.
import type pg from 'pg';
import { EtlError } from '../model/errors.ts';
import { connectPostgres } from '../connect/postgres.ts';
import type { PostgresConfig } from '../connect/config.ts';

const UNDEFINED_TABLE = '42P01';
const UNDEFINED_COLUMN = '42703';

export interface StoredState {
  readonly watermarks: Map<string, Date>;
  /** By table with a watermark: the fingerprint stored with it, null when none. */
  readonly fingerprints: Map<string, string | null>;
  /** By table with a watermark but no fingerprint: the pipeline.yaml sha256 of its last applied run. */
  readonly lastPipelines: Map<string, string>;
}

export async function readStoredWatermarks(postgres: PostgresConfig, secrets: readonly string[], tables: readonly string[]): Promise<Map<string, Date>> {
  return (await readStoredState(postgres, secrets, tables)).watermarks;
}

export async function readStoredState(postgres: PostgresConfig, secrets: readonly string[], tables: readonly string[]): Promise<StoredState> {
  let client: pg.Client;
  try {
    client = await connectPostgres(postgres, secrets);
  } catch (cause) {
    const base = cause instanceof EtlError ? cause.message : String(cause);
    throw new EtlError('watermarks_unavailable', `cannot read the watermarks of the previous loads: ${base}`, {
      hint: 'start PostgreSQL (or fix DATABASE_URL / POSTGRES_*), or pass --full to extract everything without reading watermarks',
      cause,
    });
  }
  try {
    const rows = await selectState(client, tables);
    const unrecorded = rows.filter((r) => (r.fingerprint ?? null) === null).map((r) => r.table_name);
    return {
      watermarks: new Map(rows.map((r) => [r.table_name, r.watermark])),
      fingerprints: new Map(rows.map((r) => [r.table_name, r.fingerprint ?? null])),
      lastPipelines: unrecorded.length ? await lastPipelines(client, unrecorded) : new Map(),
    };
  } catch (cause) {
    if ((cause as { code?: string }).code === UNDEFINED_TABLE) return { watermarks: new Map(), fingerprints: new Map(), lastPipelines: new Map() };
    throw new EtlError('watermarks_unavailable', `cannot read etl_watermarks: ${(cause as Error).message}`, {
      hint: 'pass --full to extract everything without reading watermarks',
      cause,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

type Row = { table_name: string; watermark: Date; fingerprint?: string | null };

async function selectState(client: pg.Client, tables: readonly string[]): Promise<Row[]> {
  try {
    const r = await client.query<Row>('SELECT "table_name", "watermark", "fingerprint" FROM "etl_watermarks" WHERE "table_name" = ANY($1::text[])', [tables]);
    return r.rows;
  } catch (cause) {
    if ((cause as { code?: string }).code !== UNDEFINED_COLUMN) throw cause;
    const r = await client.query<Row>('SELECT "table_name", "watermark" FROM "etl_watermarks" WHERE "table_name" = ANY($1::text[])', [tables]);
    return r.rows;
  }
}

/**
 * Per table, the pipeline.yaml sha256 of the run applied last (etl_runs; absent: none recorded).
 * Repair runs do not count: they re-read a few documents, not the table.
 */
async function lastPipelines(client: pg.Client, tables: readonly string[]): Promise<Map<string, string>> {
  try {
    const r = await client.query<{ table_name: string; pipeline_sha256: string }>(
      'SELECT DISTINCT ON ("table_name") "table_name", "pipeline_sha256" FROM "etl_runs" WHERE "table_name" = ANY($1::text[]) ' +
        `AND NOT coalesce(("summary"->>'repair')::boolean, false) ORDER BY "table_name", "loaded_at" DESC, "run_id" DESC`,
      [tables],
    );
    return new Map(r.rows.map((row) => [row.table_name, row.pipeline_sha256]));
  } catch (cause) {
    if ((cause as { code?: string }).code === UNDEFINED_TABLE) return new Map();
    throw cause;
  }
}
