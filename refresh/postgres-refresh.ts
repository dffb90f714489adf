// `etl refresh postgres`: a copy of the remote PostgreSQL database replaces the local one. The
// local pg_dump reads the remote database through an SSH tunnel into a custom-format file (whole
// before anything local is touched), then pg_restore --clean --if-exists --no-owner loads it in
// ONE transaction: it either replaces the dumped objects entirely or changes nothing.
// Passwords reach pg_dump/pg_restore through PGPASSWORD, never the command line.
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { describePostgres, type EtlConfig, type PgRefreshFilters, type PostgresConfig } from '../connect/config.ts';
import { pgClientConfig } from '../connect/postgres.ts';
import { percentDecoded, redactText } from '../errors/redact.ts';
import { openSshSession } from '../connect/ssh-session.ts';
import { POSTGRES_TUNNEL_SETTINGS } from '../connect/endpoints.ts';
import { EtlError, SourceError, LoadError } from '../errors/etl-error.ts';
import { AtomicFileSink } from '../staging/atomic-file.ts';
import { ByteMeter, type ByteProgress } from './byte-meter.ts';
import { compiled, ident, qualified, runSql } from '../schema/sql.ts';
import { dumpFilePath, lastLines } from './dump-file.ts';
import { checkPgBinDir, pickPgTools, runChild, type PgTools } from './local-tools.ts';

type Env = Readonly<Record<string, string | undefined>>;

export type PgRefreshProgress =
  | { readonly phase: 'connect' }
  | ({ readonly phase: 'dump' } & ByteProgress)
  | { readonly phase: 'restore'; readonly elapsedMs: number };

export interface PgRefreshOptions {
  readonly config: EtlConfig;
  readonly filters: PgRefreshFilters;
  /** Folder for the dump file (default <staging>/dumps). */
  readonly outDir?: string;
  /** Keep the dump file after a successful restore (default true: it is the audit trail). */
  readonly keepDump?: boolean;
  /** Environment of local child processes (PATH, LANG…); PGPASSWORD is added per process. */
  readonly env: Env;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: PgRefreshProgress) => void;
  readonly now?: Date;
}

export interface PgRefreshReport {
  readonly kind: 'postgres';
  readonly server: string;
  readonly hostKeyFingerprint: string;
  readonly remote: string;
  readonly remoteServerVersion: string;
  readonly local: string;
  readonly localServerVersion: string;
  readonly pgDump: string;
  readonly pgDumpVersion: string;
  readonly file: string | null;
  readonly bytes: number;
  readonly sha256: string;
  readonly dumpSeconds: number;
  readonly restoreSeconds: number;
  /**
   * Tables the dump held, with their row counts read back from the local database; `data: false`
   * for tables restored as structure only (--exclude-table-data).
   */
  readonly tables: readonly { readonly table: string; readonly rows: number; readonly data: boolean }[];
}

function pgDumpFilterArgs(f: PgRefreshFilters): string[] {
  return [
    ...f.includeTables.map((t) => `--table=${t}`),
    ...f.excludeTables.map((t) => `--exclude-table=${t}`),
    ...f.includeSchemas.map((s) => `--schema=${s}`),
    ...f.excludeSchemas.map((s) => `--exclude-schema=${s}`),
    ...f.excludeTableData.map((t) => `--exclude-table-data=${t}`),
  ];
}

/** libpq connection arguments and environment for a PostgresConfig, the password in PGPASSWORD only. */
export function libpqArgs(p: PostgresConfig): { args: string[]; env: Record<string, string> } {
  if (p.connectionString) {
    // The password may sit after the user or in a `password` parameter: neither goes on the command
    // line (`ps` shows it to every user); p.password holds it, whichever it was.
    const u = new URL(p.connectionString);
    u.password = '';
    // Pair by pair, the others as written: URLSearchParams would re-encode them (a %20 as +, which libpq reads as +).
    // A name is compared decoded, as libpq reads it: ?pass%77ord= is the password too.
    u.search = u.search.slice(1).split('&').filter((pair) => percentDecoded(pair.split('=')[0]!) !== 'password').join('&');
    return { args: [`--dbname=${u.toString()}`], env: { ...libpqSettings(p), ...(p.password ? { PGPASSWORD: p.password } : {}) } };
  }
  return {
    args: [`--host=${p.host}`, `--port=${p.port}`, `--username=${p.user}`, `--dbname=${p.database}`],
    env: { ...libpqSettings(p), ...(p.password ? { PGPASSWORD: p.password } : {}) },
  };
}

/**
 * The settings besides host, port, user and database (TLS, its files, application name, timeout,
 * options) as libpq's variables, so pg_dump and pg_restore connect as etl does whatever form
 * DATABASE_URL took (a URL's own parameters still win over them).
 */
function libpqSettings(p: PostgresConfig): Record<string, string> {
  const pairs: [string, string | number | null | undefined][] = [
    ['PGSSLMODE', p.sslmode],
    ['PGSSLROOTCERT', p.sslFiles?.rootcert],
    ['PGSSLCERT', p.sslFiles?.cert],
    ['PGSSLKEY', p.sslFiles?.key],
    ['PGAPPNAME', p.applicationName],
    ['PGCONNECT_TIMEOUT', p.connectTimeoutSeconds],
    ['PGOPTIONS', p.options],
  ];
  return Object.fromEntries(pairs.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, String(v)]));
}

async function withClient<T>(cfg: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...cfg, connectionTimeoutMillis: 15_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const SERVER_VERSION = compiled("SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n");

async function serverVersion(c: pg.Client): Promise<{ text: string; major: number }> {
  const row = (await runSql<{ v: string; n: string }>(c, SERVER_VERSION)).rows[0]!;
  return { text: row.v.split(' ')[0]!, major: Math.floor(Number(row.n) / 10000) };
}

/**
 * The local server's version, and whether the database is missing (pg_restore needs it: it is
 * created just before the restore, once the dump is whole, so a refresh that fails earlier leaves
 * nothing behind).
 */
async function localServer(p: PostgresConfig, secrets: readonly string[]): Promise<{ text: string; major: number; missing: boolean }> {
  const cfg = pgClientConfig(p);
  try {
    return { ...(await withClient(cfg, serverVersion)), missing: false };
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') {
      throw new LoadError('postgres_unreachable', `cannot connect to the local PostgreSQL ${describePostgres(p)}: ${redactText((err as Error).message, secrets)}`, {
        hint: 'check DATABASE_URL or POSTGRES_HOST/PORT/DATABASE/USER/PASSWORD',
        cause: err,
      });
    }
  }
  return { ...(await withClient(adminConfig(p), serverVersion)), missing: true };
}

/** The same server, its `postgres` database: where CREATE DATABASE runs. */
function adminConfig(p: PostgresConfig): pg.ClientConfig {
  const cfg = pgClientConfig(p);
  return p.connectionString ? { ...cfg, connectionString: withDatabase(p.connectionString, 'postgres') } : { ...cfg, database: 'postgres' };
}

async function createLocalDatabase(p: PostgresConfig): Promise<void> {
  const database = p.connectionString ? decodeURIComponent(new URL(p.connectionString).pathname.slice(1)) : p.database;
  await withClient(adminConfig(p), (c) => runSql(c, compiled(`CREATE DATABASE ${ident(database)}`)));
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(db)}`;
  return u.toString();
}

/** What a refresh works with once the tunnel is open. */
interface RefreshContext {
  readonly o: PgRefreshOptions;
  readonly remoteText: string;
  readonly file: string;
  readonly tunnelled: PostgresConfig;
  readonly tools: PgTools;
}

export async function runPostgresRefresh(o: PgRefreshOptions): Promise<PgRefreshReport> {
  const { config, signal } = o;
  const remote = config.remote.postgres;
  const remoteText = describePostgres(remote);
  await checkPgBinDir(config.refresh.pgBinDir);
  o.onProgress?.({ phase: 'connect' });
  const local = await localServer(config.postgres, config.secrets);
  const file = await dumpFilePath(config, o.outDir, o.now, remote.database, '.pgdump');
  const session = await openSshSession({ ssh: config.remote.ssh, signal });
  try {
    const fwd = await session.forward(remote.host, remote.port, POSTGRES_TUNNEL_SETTINGS);
    const tunnelled: PostgresConfig = { ...remote, connectionString: null, host: '127.0.0.1', port: fwd.localPort };
    const remoteVersion = await remoteServer(tunnelled, remoteText, session.target, config.secrets);
    const tools = await pickPgTools({ serverMajor: remoteVersion.major, serverVersion: remoteVersion.text, pgBinDir: config.refresh.pgBinDir, env: o.env });
    const ctx: RefreshContext = { o, remoteText, file, tunnelled, tools };
    const dumped = await dumpRemote(ctx);
    // The tunnel is no longer needed: close it before the (possibly long) restore.
    await session.close();
    if (local.missing) await createLocalDatabase(config.postgres);
    const restoreSeconds = await restoreLocal(ctx);
    const tables = await countRestored(ctx);
    const keep = o.keepDump ?? true;
    if (!keep) await rm(file, { force: true });
    return {
      kind: 'postgres',
      server: session.target,
      hostKeyFingerprint: session.hostKey.fingerprint,
      remote: `${remoteText} via SSH ${session.target}`,
      remoteServerVersion: remoteVersion.text,
      local: describePostgres(config.postgres) + (local.missing ? ' (created)' : ''),
      localServerVersion: local.text,
      pgDump: tools.pgDump,
      pgDumpVersion: tools.version.text,
      file: keep ? file : null,
      ...dumped,
      restoreSeconds,
      tables,
    };
  } finally {
    await session.close();
  }
}

async function remoteServer(tunnelled: PostgresConfig, remoteText: string, sshTarget: string, secrets: readonly string[]): Promise<{ text: string; major: number }> {
  try {
    return await withClient(pgClientConfig(tunnelled), serverVersion);
  } catch (err) {
    throw new SourceError('remote_postgres_unreachable', `cannot connect to the remote PostgreSQL ${remoteText} through SSH ${sshTarget}: ${redactText((err as Error).message, secrets)}`, {
      hint: 'check REMOTE_POSTGRES_PORT, REMOTE_POSTGRES_DATABASE, REMOTE_POSTGRES_USER and REMOTE_POSTGRES_PASSWORD',
      cause: err,
    });
  }
}

/** The remote database, whole, into the dump file (appears only when pg_dump succeeded). */
async function dumpRemote({ o, remoteText, file, tunnelled, tools }: RefreshContext): Promise<{ bytes: number; sha256: string; dumpSeconds: number }> {
  const started = Date.now();
  const remoteConn = libpqArgs(tunnelled);
  const sink = new AtomicFileSink(file);
  try {
    const meter = new ByteMeter((p) => o.onProgress?.({ phase: 'dump', ...p }));
    const dump = await runChild(tools.pgDump, ['--format=custom', '--no-password', ...remoteConn.args, ...pgDumpFilterArgs(o.filters)], {
      env: { ...o.env, ...remoteConn.env, PGAPPNAME: 'etl refresh' },
      signal: o.signal,
      secrets: o.config.secrets,
      stdoutTo: (stdout) => pipeline(stdout, meter, sink, { signal: o.signal }),
    });
    if (dump.code !== 0) {
      throw new SourceError('pg_dump_failed', `pg_dump of ${remoteText} failed (exit ${dump.code ?? dump.signal}):\n${lastLines(dump.stderr, 15)}`, {
        hint: o.filters.includeTables.length ? 'a --include-table pattern that matches no table makes pg_dump fail' : undefined,
      });
    }
    const figures = await sink.commit();
    return { bytes: figures.bytes, sha256: figures.sha256, dumpSeconds: (Date.now() - started) / 1000 };
  } catch (error) {
    await sink.discard().catch(() => undefined);
    throw error;
  }
}

/** pg_restore into the local database in one transaction; returns its seconds. */
async function restoreLocal({ o, file, tools }: RefreshContext): Promise<number> {
  const started = Date.now();
  const tick = setInterval(() => o.onProgress?.({ phase: 'restore', elapsedMs: Date.now() - started }), 1000);
  const localConn = libpqArgs(o.config.postgres);
  let restore;
  try {
    o.onProgress?.({ phase: 'restore', elapsedMs: 0 });
    restore = await runChild(
      tools.pgRestore,
      ['--clean', '--if-exists', '--no-owner', '--no-acl', '--single-transaction', '--exit-on-error', '--no-password', ...localConn.args, file],
      { env: { ...o.env, ...localConn.env, PGAPPNAME: 'etl refresh' }, signal: o.signal, secrets: o.config.secrets },
    );
  } finally {
    clearInterval(tick);
  }
  if (restore.code !== 0) {
    const localText = describePostgres(o.config.postgres);
    throw new LoadError('pg_restore_failed', `pg_restore into ${localText} failed (exit ${restore.code ?? restore.signal}); it ran in one transaction, so the local database is unchanged:\n${lastLines(restore.stderr, 15)}`, {
      hint: `the dump is kept: ${file}`,
    });
  }
  return (Date.now() - started) / 1000;
}

/** What arrived: the tables whose data the dump holds, counted in the local database. */
async function countRestored({ o, file, tools }: RefreshContext): Promise<{ table: string; rows: number; data: boolean }[]> {
  const list = await listTables(tools.pgRestore, file, o.env, o.signal);
  return withClient(pgClientConfig(o.config.postgres), async (c) => {
    const local = (await runSql<{ schema: string; table: string }>(c, LOCAL_TABLES)).rows;
    const out: { table: string; rows: number; data: boolean }[] = [];
    for (const entry of list) {
      const t = tableOfEntry(entry.rest, local);
      if (!t) continue;
      const r = await runSql<{ n: string }>(c, compiled(`SELECT count(*) AS n FROM ${qualified(t.schema, t.table)}`));
      out.push({ table: `${t.schema}.${t.table}`, rows: Number(r.rows[0]!.n), data: entry.data });
    }
    return out;
  });
}

const LOCAL_TABLES = compiled(
  "SELECT n.nspname AS schema, c.relname AS \"table\" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')",
);

/**
 * The table a `--list` entry names. Its text is `<schema> <table> <owner>`, unquoted, so a blank in a
 * name makes it ambiguous: it is the restored table whose `<schema> <table> ` begins it (the longest).
 */
function tableOfEntry(rest: string, local: readonly { schema: string; table: string }[]): { schema: string; table: string } | null {
  let best: { schema: string; table: string } | null = null;
  for (const t of local) {
    const prefix = `${t.schema} ${t.table} `;
    if (`${rest} `.startsWith(prefix) && (!best || prefix.length > best.schema.length + best.table.length + 2)) best = t;
  }
  return best;
}

/** `pg_restore --list`: the TABLE entries (`<schema> <table> <owner>`), and whether a TABLE DATA entry carries their rows. */
async function listTables(pgRestore: string, file: string, env: Env, signal?: AbortSignal): Promise<{ rest: string; data: boolean }[]> {
  const chunks: Buffer[] = [];
  const r = await runChild(pgRestore, ['--list', file], {
    env,
    signal,
    stdoutTo: (stdout) =>
      pipeline(
        stdout,
        new Writable({
          write(chunk: Buffer, _e, cb) {
            chunks.push(chunk);
            cb();
          },
        }),
      ),
  });
  if (r.code !== 0) throw new EtlError('pg_restore_failed', `pg_restore --list ${file} failed: ${r.stderr}`);
  const tables = new Map<string, { rest: string; data: boolean }>();
  // e.g. `215; 1259 16386 TABLE public users postgres` and `3345; 0 16390 TABLE DATA public users postgres`
  for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
    const m = /^\d+; \d+ \d+ TABLE (DATA )?(.+)$/.exec(line);
    if (!m) continue;
    const entry = tables.get(m[2]!) ?? { rest: m[2]!, data: false };
    if (m[1]) entry.data = true;
    tables.set(m[2]!, entry);
  }
  return [...tables.values()];
}
