// Resolves the run's configuration once: flags, then the environment, then `.env` in the working
// directory, then defaults. The result is frozen and passed down; no other module reads process.env.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from '../model/errors.ts';
import { redactUrl } from './redact.ts';

export type Side = 'local' | 'remote';

export interface MongoConfig {
  /** May hold credentials: print only through describeMongo(). */
  readonly url: string;
  readonly database: string;
}

export interface PostgresConfig {
  readonly connectionString: string | null;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Never printed. */
  readonly password: string | null;
}

export interface SshConfig {
  readonly host: string | null;
  readonly port: number;
  readonly user: string | null;
  readonly password: string | null;
  readonly privateKeyFile: string | null;
  readonly passphrase: string | null;
  readonly knownHostsFile: string | null;
  readonly hostKeyFingerprint: string | null;
  /** SSH_AUTH_SOCK: keys held by a running ssh-agent are tried too. */
  readonly agentSocket: string | null;
}

export interface RemoteConfig {
  readonly ssh: SshConfig;
  readonly mongo: MongoConfig;
  readonly postgres: PostgresConfig;
  /** REMOTE_MONGODUMP_COMMAND: how `etl refresh mongo` runs mongodump on the server (a shell fragment). */
  readonly mongodumpCommand: string;
}

/** Defaults of `etl refresh postgres` (the original tool's POSTGRES_* filter variables). */
export interface RefreshConfig {
  readonly includeTables: readonly string[];
  readonly excludeTables: readonly string[];
  readonly includeSchemas: readonly string[];
  readonly excludeSchemas: readonly string[];
  readonly excludeTableData: readonly string[];
  /** PG_BIN_DIR: where pg_dump/pg_restore live when the ones on PATH do not fit the server. */
  readonly pgBinDir: string | null;
}

export interface EtlConfig {
  readonly cwd: string;
  readonly pipelineFile: string;
  readonly stagingDir: string;
  readonly mongo: MongoConfig;
  /** False when MONGODB_URL came from the built-in default (no flag, environment or .env named one). */
  readonly mongoUrlConfigured: boolean;
  readonly postgres: PostgresConfig;
  readonly transferSource: Side;
  readonly transferDestination: Side;
  readonly remote: RemoteConfig;
  readonly refresh: RefreshConfig;
  /** GLOBAL_DATE_THRESHOLD: overrides settings.date_threshold of pipeline.yaml. */
  readonly globalDateThreshold: Date | null;
  /** Every secret value, so error text can be scrubbed of them. */
  readonly secrets: readonly string[];
}

/** Flags that override the environment (all optional). */
export interface ConfigFlags {
  readonly pipeline?: string;
  readonly staging?: string;
  readonly mongoUrl?: string;
  readonly mongoDatabase?: string;
  readonly databaseUrl?: string;
  readonly envFile?: string;
}

export interface ResolveConfigInput {
  readonly flags?: ConfigFlags;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

/** Staged runs go here by default: out of the source tree of a checkout (git ignores .etl/). */
export const DEFAULT_STAGING = '.etl/runs';

export function resolveConfig({ flags = {}, env, cwd }: ResolveConfigInput): EtlConfig {
  const envFile = path.resolve(cwd, flags.envFile ?? '.env');
  if (flags.envFile && !existsSync(envFile)) {
    throw new ConfigError(`env file not found: ${envFile}`);
  }
  const dotenv = existsSync(envFile) ? parseDotenv(readFileSync(envFile)) : {};
  // The process environment wins over .env, as dotenv does by default.
  const get = (name: string): string | undefined => {
    const v = env[name] ?? dotenv[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const int = (name: string, fallback: number): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new ConfigError(`${name} must be a port number, got "${raw}"`);
    return n;
  };
  const side = (name: string): Side => {
    const raw = (get(name) ?? 'local').toLowerCase();
    if (raw !== 'local' && raw !== 'remote') throw new ConfigError(`${name} must be "local" or "remote", got "${raw}"`);
    return raw;
  };

  const postgres: PostgresConfig = {
    connectionString: flags.databaseUrl ?? get('DATABASE_URL') ?? null,
    host: get('POSTGRES_HOST') ?? 'localhost',
    port: int('POSTGRES_PORT', 5432),
    database: get('POSTGRES_DATABASE') ?? get('POSTGRES_DB') ?? 'postgres',
    user: get('POSTGRES_USER') ?? 'postgres',
    password: get('POSTGRES_PASSWORD') ?? null,
  };
  const mongo: MongoConfig = {
    url: flags.mongoUrl ?? get('MONGODB_URL') ?? 'mongodb://localhost:27017',
    database: flags.mongoDatabase ?? get('MONGODB_DATABASE') ?? databaseFromUrl(flags.mongoUrl ?? get('MONGODB_URL')) ?? 'default',
  };
  const remote: RemoteConfig = {
    ssh: {
      host: get('REMOTE_SERVER_URL') ?? null,
      port: int('REMOTE_SERVER_PORT', 22),
      user: get('REMOTE_SERVER_USER') ?? null,
      password: get('REMOTE_SERVER_PASSWORD') ?? null,
      privateKeyFile: get('REMOTE_SERVER_KEY_FILE') ?? null,
      passphrase: get('REMOTE_SERVER_KEY_PASSPHRASE') ?? null,
      knownHostsFile: get('REMOTE_SERVER_KNOWN_HOSTS') ?? null,
      hostKeyFingerprint: get('REMOTE_SERVER_HOST_KEY') ?? null,
      agentSocket: get('SSH_AUTH_SOCK') ?? null,
    },
    mongo: {
      url: get('REMOTE_MONGODB_URL') ?? 'mongodb://localhost:27017',
      database: get('REMOTE_MONGODB_DATABASE') ?? mongo.database,
    },
    postgres: {
      connectionString: null,
      // As seen from the SSH server: the tunnel's far end.
      host: get('REMOTE_POSTGRES_HOST') ?? 'localhost',
      port: int('REMOTE_POSTGRES_PORT', 5432),
      database: get('REMOTE_POSTGRES_DATABASE') ?? postgres.database,
      user: get('REMOTE_POSTGRES_USER') ?? postgres.user,
      password: get('REMOTE_POSTGRES_PASSWORD') ?? null,
    },
    mongodumpCommand: get('REMOTE_MONGODUMP_COMMAND') ?? 'mongodump',
  };
  const list = (name: string): readonly string[] =>
    Object.freeze((get(name) ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0));
  const refresh: RefreshConfig = Object.freeze({
    includeTables: list('POSTGRES_INCLUDE_TABLES'),
    excludeTables: list('POSTGRES_EXCLUDE_TABLES'),
    includeSchemas: list('POSTGRES_INCLUDE_SCHEMAS'),
    excludeSchemas: list('POSTGRES_EXCLUDE_SCHEMAS'),
    excludeTableData: list('POSTGRES_EXCLUDE_DATA_TABLES'),
    pgBinDir: get('PG_BIN_DIR') ?? null,
  });

  const thresholdRaw = get('GLOBAL_DATE_THRESHOLD');
  let globalDateThreshold: Date | null = null;
  if (thresholdRaw !== undefined) {
    globalDateThreshold = new Date(thresholdRaw);
    if (Number.isNaN(globalDateThreshold.getTime())) {
      throw new ConfigError(`GLOBAL_DATE_THRESHOLD is not a date: "${thresholdRaw}" (expected e.g. 2024-01-31 or 2024-01-31T00:00:00Z)`);
    }
  }

  const secrets = [
    postgres.password,
    passwordOfUrl(postgres.connectionString),
    passwordOfUrl(mongo.url),
    remote.ssh.password,
    remote.ssh.passphrase,
    remote.postgres.password,
    passwordOfUrl(remote.mongo.url),
  ].filter((s): s is string => typeof s === 'string' && s.length > 0);

  return Object.freeze({
    cwd,
    pipelineFile: path.resolve(cwd, flags.pipeline ?? get('ETL_PIPELINE') ?? 'pipeline.yaml'),
    stagingDir: path.resolve(cwd, flags.staging ?? get('ETL_STAGING') ?? DEFAULT_STAGING),
    mongo: Object.freeze(mongo),
    mongoUrlConfigured: (flags.mongoUrl ?? get('MONGODB_URL')) !== undefined,
    postgres: Object.freeze(postgres),
    transferSource: side('TRANSFER_SOURCE'),
    transferDestination: side('TRANSFER_DESTINATION'),
    remote: Object.freeze(remote),
    refresh,
    globalDateThreshold,
    secrets: Object.freeze(secrets),
  });
}

/** What may be printed about the MongoDB source. */
export function describeMongo(m: MongoConfig): string {
  return `${redactUrl(m.url)} (database ${m.database})`;
}

/** What may be printed about the PostgreSQL destination. */
export function describePostgres(p: PostgresConfig): string {
  if (p.connectionString) return redactUrl(p.connectionString);
  return `postgresql://${p.user}@${p.host}:${p.port}/${p.database}`;
}

function passwordOfUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return u.password ? decodeURIComponent(u.password) : null;
  } catch {
    return null;
  }
}

function databaseFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const name = new URL(url).pathname.replace(/^\//, '');
    return name ? decodeURIComponent(name) : undefined;
  } catch {
    return undefined;
  }
}
