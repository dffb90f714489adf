// PostgreSQL connections. One place builds pg's configuration, so every command connects alike.
import pg from 'pg';
import { EtlError } from '../model/errors.ts';
import { describePostgres, type PostgresConfig } from './config.ts';
import { redactText } from './redact.ts';

export function pgClientConfig(p: PostgresConfig): pg.ClientConfig {
  if (p.connectionString) return { connectionString: p.connectionString, application_name: 'etl' };
  return {
    host: p.host,
    port: p.port,
    database: p.database,
    user: p.user,
    password: p.password ?? undefined,
    application_name: 'etl',
  };
}

/** Connects one client, or throws an EtlError that names the server without its password. */
export async function connectPostgres(p: PostgresConfig, secrets: readonly string[] = []): Promise<pg.Client> {
  const client = new pg.Client(pgClientConfig(p));
  try {
    await client.connect();
  } catch (cause) {
    const reason = redactText(cause instanceof Error ? cause.message : String(cause), secrets);
    throw new EtlError('postgres_unreachable', `cannot connect to PostgreSQL at ${describePostgres(p)}: ${reason}`, {
      hint: 'check DATABASE_URL or POSTGRES_HOST/PORT/DATABASE/USER/PASSWORD, and that the server is running',
      cause,
    });
  }
  return client;
}
