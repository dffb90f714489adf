// Which PostgreSQL server, database and user, from the flag, the environment and `.env`. The
// precedence (README, "Configuration"):
//   1. --database-url, else DATABASE_URL: a URL or libpq's keyword form; the POSTGRES_* variables
//      are then ignored, and what the string leaves out comes from the PG* variables, as libpq does;
//   2. otherwise each part on its own: POSTGRES_HOST, else PGHOST, else localhost (and likewise
//      PORT, DATABASE, USER, PASSWORD);
//   3. PGSSLMODE when the string sets no sslmode; with no password anywhere the driver reads
//      ~/.pgpass (or PGPASSFILE).
import { ConfigError } from '../errors/etl-error.ts';
import type { SettingsReader } from './config-source.ts';
import { parsePostgresConnectionString, SSL_MODES, type PostgresParts, type SslMode } from './postgres-connection.ts';
import { connectionStringSecrets, quotedSettingValue } from '../errors/redact.ts';

export interface PostgresConfig {
  /** The URL given (DATABASE_URL / --database-url), or null. May hold a password: print only through describePostgres(). */
  readonly connectionString: string | null;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Never printed. Null: the driver looks in ~/.pgpass. */
  readonly password: string | null;
  /** PGSSLMODE or the string's sslmode; null or absent: no TLS. */
  readonly sslmode?: SslMode | null;
  readonly applicationName?: string | null;
  readonly connectTimeoutSeconds?: number | null;
  readonly options?: string | null;
  readonly sslFiles?: PostgresParts['sslFiles'] | null;
  /** Where the settings were given (the flag or variable, and its .env line), for messages; absent: nowhere, all defaults. */
  readonly origin?: string;
  /**
   * What describePostgres() says instead of host and port: set when they are a tunnel's local end
   * (127.0.0.1:<a port that changes each run>), to name the server as configured and the SSH hop.
   */
  readonly shownAs?: string;
}

export interface ResolvedPostgres {
  readonly postgres: PostgresConfig;
  /** Secret values met on the way (passwords, also of strings that did not parse). */
  readonly secrets: readonly string[];
}

export function resolvePostgres(r: SettingsReader, databaseUrlFlag: string | undefined): ResolvedPostgres {
  const given = r.flagOr('--database-url', databaseUrlFlag, 'DATABASE_URL');
  const sslFromEnv = sslModeOf(r);
  if (given) {
    const parts = parsePostgresConnectionString(given.value, given.where);
    const isUrl = /^postgres(?:ql)?:\/\//i.test(given.value);
    const password = parts.password ?? r.get('PGPASSWORD') ?? null;
    const postgres: PostgresConfig = {
      // Keyword strings are not URLs: the parts say everything (refresh and describe read URLs).
      connectionString: isUrl ? given.value : null,
      host: parts.host ?? r.get('PGHOST') ?? 'localhost',
      port: parts.port ?? r.port('PGPORT', 5432),
      database: parts.database ?? r.get('PGDATABASE') ?? 'postgres',
      user: parts.user ?? r.get('PGUSER') ?? 'postgres',
      password,
      sslmode: parts.sslmode ?? sslFromEnv,
      applicationName: parts.applicationName ?? null,
      connectTimeoutSeconds: parts.connectTimeoutSeconds ?? null,
      options: parts.options ?? null,
      sslFiles: parts.sslFiles ?? null,
      origin: given.where,
    };
    return { postgres, secrets: [...connectionStringSecrets(given.value), ...(password ? [password] : [])] };
  }
  const password = r.get('POSTGRES_PASSWORD') ?? r.get('PGPASSWORD') ?? null;
  const portName = r.get('POSTGRES_PORT') !== undefined ? 'POSTGRES_PORT' : 'PGPORT';
  const postgres: PostgresConfig = {
    connectionString: null,
    host: r.get('POSTGRES_HOST') ?? r.get('PGHOST') ?? 'localhost',
    port: r.port(portName, 5432),
    database: r.get('POSTGRES_DATABASE') ?? r.get('POSTGRES_DB') ?? r.get('PGDATABASE') ?? 'postgres',
    user: r.get('POSTGRES_USER') ?? r.get('PGUSER') ?? 'postgres',
    password,
    sslmode: sslFromEnv,
    ...partsOrigin(r),
  };
  return { postgres, secrets: password ? [password] : [] };
}

const PART_VARIABLES = ['POSTGRES_HOST', 'PGHOST', 'POSTGRES_PORT', 'PGPORT', 'POSTGRES_DATABASE', 'POSTGRES_DB', 'PGDATABASE', 'POSTGRES_USER', 'PGUSER', 'POSTGRES_PASSWORD', 'PGPASSWORD'];

/** The POSTGRES_* and PG* variables that were set, where: what to check when the server is not reached. */
function partsOrigin(r: SettingsReader): { origin?: string } {
  const set = PART_VARIABLES.flatMap((name) => r.read(name)?.where ?? []);
  return set.length > 0 ? { origin: `the POSTGRES_* and PG* variables (set: ${set.join(', ')}; the rest default)` } : {};
}

function sslModeOf(r: SettingsReader): SslMode | null {
  const s = r.read('PGSSLMODE');
  if (s === undefined) return null;
  if (!(SSL_MODES as readonly string[]).includes(s.value)) {
    throw new ConfigError(`${s.where} must be one of ${SSL_MODES.join(', ')}, got ${quotedSettingValue(s.value, SSL_MODES)}`, [], { context: { variable: 'PGSSLMODE' } });
  }
  return s.value as SslMode;
}
