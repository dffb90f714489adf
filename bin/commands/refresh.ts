// `etl refresh mongo|postgres`: local copies of the remote databases, through SSH. Progress on
// stderr, the report on stdout (text or --json). Replacing a local database asks first on a terminal;
// elsewhere it needs --yes.
import readline from 'node:readline/promises';
import { parseCommandLine } from '../flags.ts';
import type { Readable } from 'node:stream';
import type { Command, CommandContext } from '../command.ts';
import { commandConfig } from '../config.ts';
import { writeJson } from '../output.ts';
import { formatTable } from '../../report/text-table.ts';
import { describeMongo, describePostgres, type EtlConfig } from '../../connect/config.ts';
import { sshTarget } from '../../connect/ssh-session.ts';
import { EtlError, UsageError } from '../../errors/etl-error.ts';
import { runMongoRefresh, runPostgresRefresh, type PgRefreshFilters } from '../../refresh/index.ts';

const usage = `usage: etl refresh mongo [--restore] [--yes] [--out DIR] [--json]
       etl refresh postgres [--yes] [--include-table T]... [--exclude-table T]...
                            [--include-schema S]... [--exclude-schema S]...
                            [--exclude-table-data T]... [--out DIR] [--no-keep-dump] [--json]

mongo     runs mongodump (REMOTE_MONGODUMP_COMMAND, default "mongodump") ON the SSH server
          (REMOTE_SERVER_URL) against REMOTE_MONGODB_URL / REMOTE_MONGODB_DATABASE, and streams the
          gzipped archive to <out>/<timestamp>-<db>.archive.gz. Read it with
          \`etl extract --source <file>\`; --restore also loads it into the local MongoDB
          (MONGODB_URL, MONGODB_DATABASE) with the local mongorestore, replacing its collections.
postgres  dumps the remote database (REMOTE_POSTGRES_*) through an SSH tunnel with the local
          pg_dump (-Fc) into <out>/<timestamp>-<db>.pgdump, then replaces the local database's
          objects (POSTGRES_* / DATABASE_URL) with pg_restore --clean --if-exists --no-owner,
          in one transaction. Filters default to POSTGRES_INCLUDE_TABLES, POSTGRES_EXCLUDE_TABLES,
          POSTGRES_INCLUDE_SCHEMAS, POSTGRES_EXCLUDE_SCHEMAS, POSTGRES_EXCLUDE_DATA_TABLES
          (comma lists).
          PG_BIN_DIR picks pg_dump/pg_restore when the ones found are older than the remote server.

options:
  --yes, -y              replace the local database without asking (required when not on a terminal)
  --out DIR              where the dump file goes (default <staging>/dumps)
  --include-table T      only this table (pg_dump --table pattern; repeatable)
  --exclude-table T      not this table (repeatable)
  --include-schema S     only this schema (repeatable)
  --exclude-schema S     not this schema (repeatable)
  --exclude-table-data T this table's structure but not its rows (repeatable)
  --no-keep-dump         delete the .pgdump file after a successful restore
  --restore              (mongo) restore the archive into the local MongoDB
  --staging DIR          staging folder (default ETL_STAGING, else ./.etl/runs)
  --dotenv FILE          read the configuration from FILE instead of ./.env
  --json                 print the report as JSON on stdout
SSH: REMOTE_SERVER_URL, REMOTE_SERVER_PORT (22), REMOTE_SERVER_USER, REMOTE_SERVER_PASSWORD or
     REMOTE_SERVER_KEY_FILE (+ REMOTE_SERVER_KEY_PASSPHRASE) or ssh-agent; the host key must be in
     REMOTE_SERVER_KNOWN_HOSTS (default ~/.ssh/known_hosts) or equal REMOTE_SERVER_HOST_KEY
     (SHA256:…).
exit codes: 0 done, 1 failed, 2 usage or configuration error
`;

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** One progress line, rewritten in place on a terminal, printed every few seconds elsewhere. */
function progressPrinter(ctx: CommandContext, enabled: boolean) {
  const tty = ctx.stderr.isTTY === true;
  let last = 0;
  let pending = false;
  return {
    update(text: string, force = false) {
      if (!enabled) return;
      const now = Date.now();
      if (!force && now - last < (tty ? 200 : 5_000)) return;
      last = now;
      if (tty) {
        ctx.stderr.write(`\r\u001b[2K${text}`);
        pending = true;
      } else ctx.stderr.write(`${text}\n`);
    },
    line(text: string) {
      if (!enabled) return;
      if (pending) ctx.stderr.write('\n');
      pending = false;
      ctx.stderr.write(`${text}\n`);
    },
    end() {
      if (pending) ctx.stderr.write('\n');
      pending = false;
    },
  };
}

async function confirm(ctx: CommandContext, what: string): Promise<void> {
  const stdin = ((ctx as { stdin?: Readable & { isTTY?: boolean } }).stdin ?? process.stdin) as Readable & { isTTY?: boolean };
  if (stdin.isTTY !== true) {
    throw new UsageError('confirmation_required', `refusing to replace ${what} without confirmation: not running on a terminal`, {
      hint: 'pass --yes to confirm (nothing was changed)',
    });
  }
  const rl = readline.createInterface({ input: stdin, output: ctx.stderr });
  try {
    const answer = await rl.question(`This REPLACES ${what} with the remote copy. Continue? [y/N] `, { signal: ctx.signal });
    if (!/^y(es)?$/i.test(answer.trim())) {
      throw new EtlError('cancelled', 'cancelled: nothing was changed');
    }
  } finally {
    rl.close();
  }
}

function filtersFrom(values: Record<string, unknown>, config: EtlConfig): PgRefreshFilters {
  const list = (flag: string, fallback: readonly string[]): readonly string[] => {
    const v = values[flag] as string[] | undefined;
    return v && v.length ? v.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean) : fallback;
  };
  return {
    includeTables: list('include-table', config.refresh.includeTables),
    excludeTables: list('exclude-table', config.refresh.excludeTables),
    includeSchemas: list('include-schema', config.refresh.includeSchemas),
    excludeSchemas: list('exclude-schema', config.refresh.excludeSchemas),
    excludeTableData: list('exclude-table-data', config.refresh.excludeTableData),
  };
}

const REFRESH_FLAGS = {
  yes: { type: 'boolean', short: 'y' },
  out: { type: 'string' },
  'include-table': { type: 'string', multiple: true },
  'exclude-table': { type: 'string', multiple: true },
  'include-schema': { type: 'string', multiple: true },
  'exclude-schema': { type: 'string', multiple: true },
  'exclude-table-data': { type: 'string', multiple: true },
  'no-keep-dump': { type: 'boolean' },
  restore: { type: 'boolean' },
  staging: { type: 'string' },
  json: { type: 'boolean' },
} as const;

type RefreshValues = ReturnType<typeof parseCommandLine<typeof REFRESH_FLAGS>>['values'];

/** The flags, and the target (mongo or postgres) with the flags that apply to it. */
function parseRefreshFlags(argv: readonly string[]): { target: 'mongo' | 'postgres'; values: RefreshValues } {
  const { values, positionals } = parseCommandLine(argv, REFRESH_FLAGS, { positionals: true, hint: 'see `etl refresh --help`' });
  const target = positionals[0];
  if (positionals.length !== 1 || (target !== 'mongo' && target !== 'postgres')) {
    throw new UsageError('bad_arguments', positionals.length === 0 ? 'say what to refresh: `etl refresh mongo` or `etl refresh postgres`' : `unknown refresh target "${positionals.join(' ')}" (expected mongo or postgres)`, {
      hint: 'see `etl refresh --help`',
    });
  }
  const pgOnly = ['include-table', 'exclude-table', 'include-schema', 'exclude-schema', 'exclude-table-data', 'no-keep-dump'].filter((k) => values[k as keyof typeof values] !== undefined);
  if (target === 'mongo' && pgOnly.length) throw new UsageError('bad_arguments', `--${pgOnly[0]} applies to \`etl refresh postgres\` only`);
  if (target === 'postgres' && values.restore) throw new UsageError('bad_arguments', '--restore applies to `etl refresh mongo` only (postgres always restores)');
  return { target, values };
}

interface RefreshRun {
  readonly ctx: CommandContext;
  readonly values: RefreshValues;
  readonly config: EtlConfig;
  readonly progress: ReturnType<typeof progressPrinter>;
  /** user@host:port of the SSH server. */
  readonly server: string;
}

async function refreshMongo({ ctx, values, config, progress, server }: RefreshRun): Promise<number> {
  if (values.restore && !values.yes) await confirm(ctx, `the local MongoDB database ${describeMongo(config.mongo)}`);
  progress.line(`refresh mongo: mongodump of ${config.remote.mongo.database} on the SSH server ${server}`);
  let report;
  try {
    report = await runMongoRefresh({
      config,
      outDir: values.out,
      restore: values.restore === true,
      env: ctx.env,
      signal: ctx.signal,
      onProgress: (p) => {
        if (p.phase === 'download') progress.update(`  receiving archive: ${formatBytes(p.bytes)} (${formatBytes(p.bytesPerSecond)}/s)`);
        else if (p.phase === 'restore') progress.line('  restoring into the local MongoDB with mongorestore…');
      },
    });
  } finally {
    progress.end();
  }
  if (values.json) writeJson(ctx.stdout, { ok: true, ...report });
  else {
    ctx.stdout.write(
      formatTable(['archive', 'bytes', 'seconds', 'rate'], [[report.file, report.bytes, report.seconds.toFixed(1), `${formatBytes(report.bytesPerSecond)}/s`]]) +
        `sha256 ${report.sha256}\n` +
        `server ${report.server} (host key ${report.hostKeyFingerprint})\n` +
        (report.restored ? `restored into ${report.restored.into}\n` : `read it with: etl extract --source ${report.file}\n`),
    );
  }
  return 0;
}

async function refreshPostgres({ ctx, values, config, progress, server }: RefreshRun): Promise<number> {
  const filters = filtersFrom(values, config);
  if (!values.yes) await confirm(ctx, `the local PostgreSQL database ${describePostgres(config.postgres)}`);
  progress.line(`refresh postgres: ${config.remote.postgres.database} through the SSH server ${server} → ${describePostgres(config.postgres)}`);
  let report;
  try {
    report = await runPostgresRefresh({
      config,
      filters,
      outDir: values.out,
      keepDump: values['no-keep-dump'] !== true,
      env: ctx.env,
      signal: ctx.signal,
      onProgress: (p) => {
        if (p.phase === 'dump') progress.update(`  pg_dump: ${formatBytes(p.bytes)} (${formatBytes(p.bytesPerSecond)}/s)`);
        else if (p.phase === 'restore') progress.update(`  pg_restore: ${(p.elapsedMs / 1000).toFixed(0)} s`, p.elapsedMs === 0);
      },
    });
  } finally {
    progress.end();
  }
  if (values.json) writeJson(ctx.stdout, { ok: true, ...report });
  else {
    ctx.stdout.write(
      formatTable(['table', 'rows'], report.tables.map((t) => [t.data ? t.table : `${t.table} (structure only)`, t.rows])) +
        `${report.tables.length} table${report.tables.length === 1 ? '' : 's'} restored into ${report.local} (PostgreSQL ${report.localServerVersion})\n` +
        `from ${report.remote} (PostgreSQL ${report.remoteServerVersion}), pg_dump ${report.pgDumpVersion}\n` +
        `dump ${formatBytes(report.bytes)} in ${report.dumpSeconds.toFixed(1)} s, restore ${report.restoreSeconds.toFixed(1)} s` +
        (report.file ? `, kept at ${report.file}` : '') +
        `\nsha256 ${report.sha256}\n`,
    );
  }
  return 0;
}

const command: Command = {
  summary: 'refresh a local copy of the remote MongoDB (mongodump archive) or PostgreSQL over SSH',
  usage,
  async run(ctx) {
    const { target, values } = parseRefreshFlags(ctx.argv);
    const config = commandConfig(ctx, { staging: values.staging });
    // --json and --quiet (errors and the final line only) print no progress.
    const progress = progressPrinter(ctx, values.json !== true && ctx.verbosity !== 'quiet');
    // Configuration mistakes (no SSH server or user) stop before any question or connection.
    const ssh = sshTarget(config.remote.ssh);
    const run: RefreshRun = { ctx, values, config, progress, server: `${ssh.user}@${ssh.host}:${ssh.port}` };
    return target === 'mongo' ? refreshMongo(run) : refreshPostgres(run);
  },
};

export default command;
