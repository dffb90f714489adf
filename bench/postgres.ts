// PostgreSQL for the bench: the DATABASE_URL server, or a throwaway embedded one (the test
// harness's startPostgres does both). Every benchmark gets a fresh database whose tables are
// created by schema/apply.ts, as `etl schema` would.
import pg from 'pg';
import type { PipelineModel } from '../model/types.ts';
import { applySchema } from '../schema/apply.ts';
import { ident } from '../schema/sql.ts';
import { startPostgres, type PgServer } from '../dev/servers/postgres.ts';

export type { PgServer };

export function startBenchPostgres(): Promise<PgServer> {
  return startPostgres();
}

export interface FreshDatabaseOptions {
  /**
   * Drop the tables' FOREIGN KEY constraints after creating them (primary keys and unique
   * constraints, hence every index, stay). The `psql \copy` baseline needs it: a plain COPY cannot
   * skip the rows whose reference is missing, which load rejects or sets to NULL.
   */
  readonly dropForeignKeys?: boolean;
}

/** A new, empty database (a leftover of that name is dropped first) with the pipeline's tables. */
export async function freshDatabase(server: PgServer, name: string, model: PipelineModel, options: FreshDatabaseOptions = {}): Promise<string> {
  const url = await server.createDatabase(name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applySchema(client, model);
    if (options.dropForeignKeys) {
      const { rows } = await client.query<{ table: string; name: string }>(
        `SELECT c.relname AS table, k.conname AS name
           FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.relname = ANY($1)`,
        [[...model.loadOrder]],
      );
      for (const r of rows) await client.query(`ALTER TABLE ${ident(r.table)} DROP CONSTRAINT ${ident(r.name)}`);
    }
  } finally {
    await client.end();
  }
  return url;
}

/** libpq environment for psql: the password travels in PGPASSWORD, never on a command line. */
export function libpqEnv(url: string): Record<string, string> {
  const u = new URL(url);
  const env: Record<string, string> = {
    PGHOST: u.hostname,
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username),
    PGDATABASE: decodeURIComponent(u.pathname.replace(/^\//, '')),
  };
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  return env;
}

/** A copy of a database (CREATE DATABASE … TEMPLATE): nobody may be connected to `source`. */
export async function copyDatabase(server: PgServer, source: string, name: string): Promise<string> {
  const url = await server.createDatabase(name);
  const target = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE ${ident(target)}`);
    await admin.query(`CREATE DATABASE ${ident(target)} TEMPLATE ${ident(decodeURIComponent(new URL(source).pathname.slice(1)))}`);
  } finally {
    await admin.end();
  }
  return url;
}

export interface StateTableSize {
  readonly rows: number;
  /** pg_total_relation_size: the table, its indexes and TOAST. */
  readonly bytes: number;
}

/** Rows and disk of the tool's state tables (etl_pending, etl_contrib_…). */
export async function stateTableSizes(url: string): Promise<Record<string, StateTableSize>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname = current_schema() AND (c.relname = 'etl_pending' OR c.relname LIKE 'etl\\_contrib\\_%') ORDER BY c.relname`,
    );
    const out: Record<string, StateTableSize> = {};
    for (const { name } of rows) {
      const r = (await client.query<{ n: string; bytes: string }>(`SELECT count(*)::bigint AS n, pg_total_relation_size($1::regclass)::bigint AS bytes FROM ${ident(name)}`, [ident(name)])).rows[0]!;
      out[name] = { rows: Number(r.n), bytes: Number(r.bytes) };
    }
    return out;
  } finally {
    await client.end();
  }
}
