// PostgreSQL connections. One place builds pg's configuration, so every command connects alike.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { ConfigError, EtlError } from '../errors/etl-error.ts';
import { describePostgres, unreachableHint, type PostgresConfig } from './config.ts';
import { parsePostgresConnectionString, type PostgresParts, type SslMode } from './postgres-connection.ts';
import { connectionStringSecrets, redactText } from '../errors/redact.ts';
import { watchForEnd } from '../errors/connection-ended.ts';
import { COMMIT, compiled, ROLLBACK, runSql, type CompiledQuery } from '../schema/sql.ts';

/**
 * pg's settings, every one given explicitly, so the driver's own reading of process.env cannot
 * override what resolveConfig decided. Only a missing password is left to the driver: it then reads
 * PGPASSWORD or ~/.pgpass (PGPASSFILE), as libpq does.
 */
export function pgClientConfig(p: PostgresConfig): pg.ClientConfig {
  // The URL's own parts win (a config spread from another with only its URL changed must reach
  // that URL); resolveConfig has filled the parts the URL leaves out into the fields.
  const parts: PostgresParts = p.connectionString ? parsePostgresConnectionString(p.connectionString, 'the PostgreSQL connection string') : {};
  const timeout = parts.connectTimeoutSeconds ?? p.connectTimeoutSeconds ?? null;
  const options = parts.options ?? p.options ?? null;
  return {
    host: parts.host ?? (p.host || 'localhost'),
    port: parts.port ?? (p.port || 5432),
    database: parts.database ?? (p.database || 'postgres'),
    user: parts.user ?? (p.user || 'postgres'),
    password: parts.password ?? p.password ?? undefined,
    ssl: sslOptions(parts.sslmode ?? p.sslmode ?? null, parts.sslFiles ?? p.sslFiles ?? undefined),
    application_name: parts.applicationName ?? p.applicationName ?? 'etl',
    ...(timeout !== null ? { connectionTimeoutMillis: timeout * 1000 } : {}),
    ...(options !== null ? { options } : {}),
  };
}

/**
 * libpq's sslmode in node's TLS terms. allow and prefer mean "TLS if the server offers it"; pg
 * cannot fall back from TLS to plain, so they connect without TLS (README, Configuration).
 */
function sslOptions(mode: SslMode | null, files: PostgresParts['sslFiles'] | undefined): false | ConnectionOptions {
  if (mode === null || mode === 'disable' || mode === 'allow' || mode === 'prefer') return false;
  const read = (file: string | undefined, what: string): string | undefined => {
    if (!file) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (cause) {
      throw new ConfigError(`cannot read the ${what} ${file} (sslmode=${mode}): ${(cause as Error).message}`, [], { cause });
    }
  };
  const ca = read(files?.rootcert, 'root certificate (sslrootcert)');
  const tls: ConnectionOptions = { ca, cert: read(files?.cert, 'client certificate (sslcert)'), key: read(files?.key, 'client key (sslkey)') };
  // require: encrypted, server not checked (unless a root certificate is given: then as verify-ca).
  if (mode === 'require' && !ca) return { ...tls, rejectUnauthorized: false };
  // verify-ca (and require with a root certificate): the chain is checked, the host name is not.
  if (mode === 'require' || mode === 'verify-ca') return { ...tls, checkServerIdentity: () => undefined };
  return tls;
}

/**
 * The session etl assumes, whatever the database's or the role's defaults (ALTER DATABASE … SET), as
 * pg_dump sets its own: pg reads timestamps only in the ISO DateStyle (in another, the watermarks came
 * back null and the load failed), etl compares the dates PostgreSQL writes as text with those
 * transform staged, and no instant may depend on the server's zone. For the session: a pooler in
 * transaction pooling (PgBouncer) keeps these two per client, so they never reach another client's
 * transactions on the same server connection.
 */
const SESSION_SETTINGS = `SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'`;

/**
 * What etl's transactions run with, whatever the database's defaults: a load is one transaction of
 * long statements that waits, idle, for transform's next table (etl run), and a timeout meant for the
 * application's queries would kill it on every large run. For the transaction only (SET LOCAL): set
 * for the session, through a pooler in transaction pooling they stayed on the server connection and
 * lifted the database's timeouts for the application's next transactions there. Sent with the BEGIN,
 * in one message: the database's idle_in_transaction_session_timeout cannot strike between the two.
 */
export function beginTransaction(isolation: 'REPEATABLE READ' | null = null): CompiledQuery {
  const begin = isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN';
  // transaction_timeout is PostgreSQL 17's (an older server has no such setting and would refuse SET).
  const transaction = `SELECT set_config('transaction_timeout', '0', true) WHERE current_setting('transaction_timeout', true) IS NOT NULL`;
  return compiled(`${begin}; SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0; ${transaction}`);
}

/** Runs `work` in a transaction of its own with etl's transaction settings: committed when it returns, rolled back when it throws. */
export async function inTransaction<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
  await runSql(client, beginTransaction());
  try {
    const result = await work();
    await runSql(client, COMMIT);
    return result;
  } catch (error) {
    await runSql(client, ROLLBACK).catch(() => undefined);
    throw error;
  }
}

/**
 * etl mirrors MongoDB's text exactly, and that text is Unicode: a database of another encoding
 * cannot hold every string (LATIN1 has no "’", no "Nguyễn"), or, SQL_ASCII, stores unchecked bytes
 * and counts a VARCHAR's length in bytes where transform counts characters. Refused before anything
 * is written, not at the first such value of a load (which then failed whole).
 */
export function requireUtf8(encoding: string, destination: string): void {
  if (encoding === 'UTF8') return;
  const what = encoding === 'SQL_ASCII' ? ' (unchecked bytes, lengths counted in bytes)' : '';
  throw new EtlError('database_not_utf8', `PostgreSQL at ${destination} stores text as ${encoding}${what}, not UTF8: it cannot mirror MongoDB's text exactly`, {
    hint: "nothing was changed; etl needs a UTF8 database: create one (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0), point DATABASE_URL (or --database-url) at it and run `etl schema`",
  });
}

const SERVER_ENCODING = compiled(`SELECT current_setting('server_encoding') AS encoding`);

/** requireUtf8 for the database `client` is connected to (read in a transaction, as every read: etl's timeouts, not the database's). */
export async function requireUtf8Database(client: pg.Client, destination: string): Promise<void> {
  const { rows } = await inTransaction(client, () => runSql<{ encoding: string }>(client, SERVER_ENCODING));
  requireUtf8(rows[0]!.encoding, destination);
}

/** Connects one client with etl's session settings, or throws an EtlError that names the server without its password. */
export async function connectPostgres(p: PostgresConfig, secrets: readonly string[] = []): Promise<pg.Client> {
  const client = new pg.Client(pgClientConfig(p));
  // Before connect: a server that ends the connection while etl is between two queries is then
  // named by the next one, instead of crashing etl (errors/connection-ended.ts).
  watchForEnd(client);
  try {
    await client.connect();
  } catch (cause) {
    throw unreachable(p, secrets, cause);
  }
  try {
    await client.query(SESSION_SETTINGS);
  } catch (cause) {
    await client.end().catch(() => undefined);
    throw unreachable(p, secrets, cause);
  }
  return client;
}

function unreachable(p: PostgresConfig, secrets: readonly string[], cause: unknown): EtlError {
  const known = [...secrets, ...(p.password ? [p.password] : []), ...(p.connectionString ? connectionStringSecrets(p.connectionString) : [])];
  const reason = redactText(cause instanceof Error ? cause.message : String(cause), known);
  return new EtlError('postgres_unreachable', `cannot connect to PostgreSQL at ${describePostgres(p)}: ${reason}`, {
    hint: unreachableHint(p.origin, `no PostgreSQL is configured, so etl tried ${describePostgres(p)}: set DATABASE_URL (environment or .env) or pass --database-url`),
    cause,
  });
}
