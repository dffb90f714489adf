// Reads the stored watermarks and mapping fingerprints (etl_watermarks, written by load in its
// transaction; the statements are schema/state-reads.ts's). Extract only reads; a missing table means
// no table was ever loaded, so everything is read in full; a missing fingerprint column (a database
// `etl schema` has not migrated yet) means every watermark was stored without one.
import type pg from 'pg';
import { EtlError } from '../errors/etl-error.ts';
import { accessHint } from '../errors/codes.ts';
import { connectPostgres, inTransaction } from '../connect/postgres.ts';
import type { PostgresConfig } from '../connect/config.ts';
import { StateReads } from '../schema/state-reads.ts';


export interface StoredState {
  readonly watermarks: Map<string, Date>;
  /** By table with a watermark: the fingerprint stored with it, null when none. */
  readonly fingerprints: Map<string, string | null>;
  /** By table with a watermark but no fingerprint: the pipeline.yaml sha256 of its last applied run. */
  readonly lastPipelines: Map<string, string>;
  /** By table: the identities of the documents claiming a key another document claims too (etl_claims). */
  readonly contested: Map<string, string[]>;
  /** By table: the documents a load found gone (etl_gone), as their rows' key text. */
  readonly gone: Map<string, string[]>;
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
    return await inTransaction(client, () => readState(client, tables));
  } catch (cause) {
    throw new EtlError('watermarks_unavailable', `cannot read etl_watermarks: ${(cause as Error).message}`, {
      hint: accessHint(cause) ?? 'pass --full to extract everything without reading watermarks',
      cause,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function readState(client: pg.Client, tables: readonly string[]): Promise<StoredState> {
  const state = await StateReads.open(client);
  const rows = (await state.watermarkRows(tables)) ?? [];
  const unrecorded = rows.filter((r) => r.fingerprint === null).map((r) => r.table);
  const last = unrecorded.length ? await state.lastRuns(unrecorded, false) : null;
  return {
    watermarks: new Map(rows.map((r) => [r.table, r.watermark])),
    fingerprints: new Map(rows.map((r) => [r.table, r.fingerprint])),
    lastPipelines: new Map([...(last?.values() ?? [])].map((r) => [r.table, r.pipelineSha256])),
    contested: await state.contestedClaims(tables),
    gone: await state.goneKeys(tables),
  };
}
