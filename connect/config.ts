// Resolves the run's configuration once: flags, then the environment, then `.env` in the working
// directory, then defaults. The result is frozen and passed down; no other module reads process.env.
// A setting that is wrong is a ConfigError (exit 2) naming the flag, the variable or the .env line.
import path from 'node:path';
import { ConfigError } from '../errors/etl-error.ts';
import { settingsReader, type SettingsReader } from './config-source.ts';
import { resolvePostgres, type PostgresConfig } from './postgres-config.ts';
import { ConnectionString } from 'mongodb-connection-string-url';
import { connectionStringSecrets, quotedConnectionString, quotedSettingValue, redactText } from '../errors/redact.ts';
import { INSTANT_SHAPE, parseInstant } from '../model/instant.ts';

export type { PostgresConfig } from './postgres-config.ts';

export type Side = 'local' | 'remote';

export interface MongoConfig {
  /** May hold credentials: print only through describeMongo(). */
  readonly url: string;
  readonly database: string;
  /** Where the URL was given (a flag, or a variable and its .env line), for messages; absent: the default. */
  readonly origin?: string;
  /**
   * What describeMongo() says instead of the URL: set when the URL is a tunnel's local end
   * (127.0.0.1:<a port that changes each run>), to name the server as configured and the SSH hop.
   */
  readonly shownAs?: string;
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

/** pg_dump's filters for `etl refresh postgres` (the original tool's POSTGRES_* filter variables). */
export interface PgRefreshFilters {
  /** pg_dump --table patterns: only these tables (and what they own). */
  readonly includeTables: readonly string[];
  /** pg_dump --exclude-table patterns. */
  readonly excludeTables: readonly string[];
  readonly includeSchemas: readonly string[];
  readonly excludeSchemas: readonly string[];
  /** pg_dump --exclude-table-data: structure only. */
  readonly excludeTableData: readonly string[];
}

/** Defaults of `etl refresh postgres`. */
export interface RefreshConfig extends PgRefreshFilters {
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
  /** The flag `mongoUrl` came from, for messages (default `--mongo-url`; extract and run: `--source`). */
  readonly mongoUrlFlag?: string;
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

/**
 * The hint of a server not reached: the flag or variables (and .env lines) its settings came from,
 * or, when none was given, `unconfigured` (which default was tried, where to set one).
 */
export function unreachableHint(origin: string | undefined, unconfigured: string): string {
  const reachable = 'that the server is running and reachable from here';
  return origin ? `check ${origin}, and ${reachable}` : `${unconfigured} (and check ${reachable})`;
}

export function resolveConfig({ flags = {}, env, cwd }: ResolveConfigInput): EtlConfig {
  const r = settingsReader(env, cwd, flags.envFile);
  const pg = resolvePostgres(r, flags.databaseUrl);
  const mongoUrlFlag = flags.mongoUrlFlag ?? '--mongo-url';
  const mongoUrl = r.flagOr(mongoUrlFlag, flags.mongoUrl, 'MONGODB_URL');
  if (mongoUrl) checkMongoUrl(mongoUrl.value, mongoUrl.where);
  const mongo: MongoConfig = {
    url: mongoUrl?.value ?? 'mongodb://localhost:27017',
    ...(mongoUrl ? { origin: mongoUrl.where } : {}),
    // Flags win over the environment: a --mongo-url (--source) naming a database wins over MONGODB_DATABASE.
    database: flags.mongoDatabase ?? (mongoUrl?.where === mongoUrlFlag ? databaseFromUrl(mongoUrl.value) : undefined) ?? r.get('MONGODB_DATABASE') ?? databaseFromUrl(mongoUrl?.value) ?? 'default',
  };
  const remote = resolveRemote(r, mongo, pg.postgres);
  const secrets = [
    ...pg.secrets,
    ...connectionStringSecrets(mongo.url),
    remote.ssh.password,
    remote.ssh.passphrase,
    remote.postgres.password,
    ...connectionStringSecrets(remote.mongo.url),
  ].filter((s): s is string => typeof s === 'string' && s.length > 0);

  return Object.freeze({
    cwd,
    pipelineFile: path.resolve(cwd, flags.pipeline ?? r.get('ETL_PIPELINE') ?? 'pipeline.yaml'),
    stagingDir: path.resolve(cwd, flags.staging ?? r.get('ETL_STAGING') ?? DEFAULT_STAGING),
    mongo: Object.freeze(mongo),
    mongoUrlConfigured: mongoUrl !== undefined,
    postgres: Object.freeze(pg.postgres),
    transferSource: side(r, 'TRANSFER_SOURCE'),
    transferDestination: side(r, 'TRANSFER_DESTINATION'),
    remote: Object.freeze(remote),
    refresh: refreshConfig(r),
    globalDateThreshold: dateThreshold(r),
    secrets: Object.freeze([...new Set(secrets)]),
  });
}

const SIDES: readonly Side[] = ['local', 'remote'];

function side(r: SettingsReader, name: string): Side {
  const s = r.read(name);
  const raw = (s?.value ?? 'local').toLowerCase();
  if (raw !== 'local' && raw !== 'remote') throw new ConfigError(`${s!.where} must be "local" or "remote", got ${quotedSettingValue(s!.value, SIDES)}`, [], { context: { variable: name } });
  return raw;
}

function resolveRemote(r: SettingsReader, mongo: MongoConfig, postgres: PostgresConfig): RemoteConfig {
  const remoteUrl = r.read('REMOTE_MONGODB_URL');
  // As MONGODB_URL: refused here, not sent as is to the server (refresh runs mongodump with it).
  if (remoteUrl) checkMongoUrl(remoteUrl.value, remoteUrl.where);
  return {
    ssh: {
      host: r.get('REMOTE_SERVER_URL') ?? null,
      port: r.port('REMOTE_SERVER_PORT', 22),
      user: r.get('REMOTE_SERVER_USER') ?? null,
      password: r.get('REMOTE_SERVER_PASSWORD') ?? null,
      privateKeyFile: r.get('REMOTE_SERVER_KEY_FILE') ?? null,
      passphrase: r.get('REMOTE_SERVER_KEY_PASSPHRASE') ?? null,
      knownHostsFile: r.get('REMOTE_SERVER_KNOWN_HOSTS') ?? null,
      hostKeyFingerprint: r.get('REMOTE_SERVER_HOST_KEY') ?? null,
      agentSocket: r.get('SSH_AUTH_SOCK') ?? null,
    },
    mongo: {
      url: remoteUrl?.value ?? 'mongodb://localhost:27017',
      ...(remoteUrl ? { origin: remoteUrl.where } : {}),
      database: r.get('REMOTE_MONGODB_DATABASE') ?? mongo.database,
    },
    postgres: {
      connectionString: null,
      // As seen from the SSH server: the tunnel's far end.
      host: r.get('REMOTE_POSTGRES_HOST') ?? 'localhost',
      port: r.port('REMOTE_POSTGRES_PORT', 5432),
      database: r.get('REMOTE_POSTGRES_DATABASE') ?? postgres.database,
      user: r.get('REMOTE_POSTGRES_USER') ?? postgres.user,
      password: r.get('REMOTE_POSTGRES_PASSWORD') ?? null,
      origin: 'REMOTE_POSTGRES_HOST, REMOTE_POSTGRES_PORT, REMOTE_POSTGRES_DATABASE, REMOTE_POSTGRES_USER and REMOTE_POSTGRES_PASSWORD (as seen from the SSH server)',
    },
    mongodumpCommand: r.get('REMOTE_MONGODUMP_COMMAND') ?? 'mongodump',
  };
}

function refreshConfig(r: SettingsReader): RefreshConfig {
  const list = (name: string): readonly string[] =>
    Object.freeze((r.get(name) ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0));
  return Object.freeze({
    includeTables: list('POSTGRES_INCLUDE_TABLES'),
    excludeTables: list('POSTGRES_EXCLUDE_TABLES'),
    includeSchemas: list('POSTGRES_INCLUDE_SCHEMAS'),
    excludeSchemas: list('POSTGRES_EXCLUDE_SCHEMAS'),
    excludeTableData: list('POSTGRES_EXCLUDE_DATA_TABLES'),
    pgBinDir: r.get('PG_BIN_DIR') ?? null,
  });
}

function dateThreshold(r: SettingsReader): Date | null {
  const s = r.read('GLOBAL_DATE_THRESHOLD');
  if (s === undefined) return null;
  const d = parseInstant(s.value);
  if (d === null) {
    throw new ConfigError(`${s.where} is not a date: ${quotedSettingValue(s.value, INSTANT_SHAPE)} (expected e.g. 2024-01-31 or 2024-01-31T00:00:00Z)`, [], { context: { variable: 'GLOBAL_DATE_THRESHOLD' } });
  }
  return d;
}

/** A MongoDB URL must start with mongodb:// or mongodb+srv://; anything else is named, without its password. */
function checkMongoUrl(url: string, where: string): void {
  if (/^mongodb(\+srv)?:\/\//i.test(url)) return;
  throw new ConfigError(`${where} is not a MongoDB connection string: it must start with mongodb:// or mongodb+srv:// (got ${quotedConnectionString(url)})`, [], {
    hint: 'write it as mongodb://<user>@<host>:27017/<database>, the password after the user and a colon (percent-encode its special characters)',
    context: { variable: where },
  });
}

/** What may be printed about the MongoDB source. */
export function describeMongo(m: MongoConfig): string {
  if (m.shownAs !== undefined) return m.shownAs;
  return `${redactText(m.url, connectionStringSecrets(m.url))} (database ${m.database})`;
}

/** What may be printed about the PostgreSQL destination. */
export function describePostgres(p: PostgresConfig): string {
  if (p.shownAs !== undefined) return p.shownAs;
  if (p.connectionString) return redactText(p.connectionString, connectionStringSecrets(p.connectionString));
  return `postgresql://${p.user}@${p.host}:${p.port}/${p.database}`;
}

function databaseFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    // The driver's own parser: a WHATWG URL refuses several hosts (a replica set's h1,h2,h3).
    const name = new ConnectionString(url).pathname.replace(/^\//, '');
    return name ? decodeURIComponent(name) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `--source` names a live server (true) or a dump on disk (false). Text shaped like a connection
 * string that is not one (`mongodb//<user>:<password>@<host>`, `mongodb:<user>:<password>@<host>`) is refused here rather
 * than taken for a path, which an error would print with its password.
 */
export function isMongoSource(text: string, where = '--source'): boolean {
  if (/^mongodb(\+srv)?:\/\//i.test(text)) return true;
  if (/^mongo(db)?(\+srv)?[:/]/i.test(text) || connectionStringSecrets(text).length > 0) checkMongoUrl(text, where);
  return false;
}
