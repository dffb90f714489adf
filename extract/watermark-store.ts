// Reads the stored watermarks (etl_watermarks, written by load in its transaction). Extract only
// reads; a missing table means no table was ever loaded, so everything is read in full.
import type pg from 'pg';
import { EtlError } from '../model/errors.ts';
import { connectPostgres } from '../connect/postgres.ts';
import type { PostgresConfig } from '../connect/config.ts';

const UNDEFINED_TABLE = '42P01';

export async function readStoredWatermarks(postgres: PostgresConfig, secrets: readonly string[], tables: readonly string[]): Promise<Map<string, Date>> {
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
    const result = await client.query<{ table_name: string; watermark: Date }>(
      'SELECT "table_name", "watermark" FROM "etl_watermarks" WHERE "table_name" = ANY($1::text[])',
      [tables],
    );
    return new Map(result.rows.map((r) => [r.table_name, r.watermark]));
  } catch (cause) {
    if ((cause as { code?: string }).code === UNDEFINED_TABLE) return new Map();
    throw new EtlError('watermarks_unavailable', `cannot read etl_watermarks: ${(cause as Error).message}`, {
      hint: 'pass --full to extract everything without reading watermarks',
      cause,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}
