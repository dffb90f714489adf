// `etl diff`: compares MongoDB, mapped through pipeline.yaml, with PostgreSQL, table by table.
// The work is inspect/diff.ts; this renders its report (a summary table, then the keys per table).
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { formatTable } from '../../report/text-table.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { UsageError } from '../../errors/etl-error.ts';
import { printableLine } from '../../errors/printable.ts';
import { selectTables } from '../../model/select-tables.ts';
import { runDiff, type DiffProgress, type DiffReport, type KeyValues, type TableDiff } from '../../inspect/diff.ts';
import { heartbeatMs } from '../progress/lines.ts';

const usage = `usage: etl diff [--tables a,b] [--deep] [--limit N] [--json]
                [--mongo-url URL] [--mongo-db NAME] [--database-url URL] [--pipeline FILE]

Compares MongoDB, mapped through pipeline.yaml, with PostgreSQL, table by table: what a full
extract, transform and load of the current documents would leave, against what the tables hold.
Per table: rows expected from MongoDB, rows in PostgreSQL, rows missing in PostgreSQL, and extra
rows in PostgreSQL whose document (or array item) is gone from MongoDB. A row is identified by its
key: the id (upsert tables), the (parent, item[, type]) pair or triple (link tables), the dedupe key
(users_logbook: (user_id, day), the Europe/Paris day; menu_recipes: (menu_id, recipe_id)).

Documents that transform would reject (an over-long name, a value of the wrong type…) are listed
as rejected, not as missing; a PostgreSQL row with their key is not extra (the document exists).
Documents before the date threshold are never extracted: skipped, and neither missing nor extra.
Rows whose reference (on_missing: reject) points at a row PostgreSQL lacks (a dangling id in
MongoDB), rows of a key two documents claim (_ids 77 and "77": duplicate_key), and rows holding a
value of a unique constraint other than the key that rows of other keys hold too (two users with one
email, where users declares [email] unique: duplicate_value, every one of them; NULLs never match)
are listed as refused, not as missing: a load refuses them too. Rejected and refused rows do
not make the databases differ; a PostgreSQL row of a key whose row a load refuses for a shared value
or because two documents claim it is extra (a load removes it). References are judged against the
rows PostgreSQL holds, as a load judges them: a row pointing at a row that is itself extra (its
document deleted from MongoDB) or missing (deleted by hand) counts in that row's table only; etl
repair settles both.
Memory stays bounded: the expected rows go to a temporary table.

options:
  --tables a,b        only these tables
  --deep              also compare every mapped column of the rows on both sides, as the load would
                      write them; lists the differing columns per key
  --limit N           keys listed per kind and table (default 10; 0: counts only)
  --mongo-url URL     MongoDB (default: MONGODB_URL)
  --mongo-db NAME     MongoDB database (default: MONGODB_DATABASE, else the URL's path)
  --database-url URL  PostgreSQL (default: DATABASE_URL, else POSTGRES_*)
  --pipeline FILE     pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json              print the report as JSON on stdout
TRANSFER_SOURCE / TRANSFER_DESTINATION = remote compare through SSH tunnels, as the other commands.
exit codes: 0 identical, 1 they differ (or a failure), 2 usage or configuration error
`;

const command: Command = {
  summary: 'compare MongoDB (through pipeline.yaml) with PostgreSQL: missing, extra, changed rows',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, {
      tables: { type: 'string' },
      deep: { type: 'boolean' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      'mongo-url': { type: 'string' },
      'mongo-db': { type: 'string' },
      'database-url': { type: 'string' },
      pipeline: { type: 'string' },
    });
    let limit = 10;
    if (flags.limit !== undefined) {
      if (!/^\d+$/.test(flags.limit)) throw new UsageError('bad_arguments', `--limit needs a whole number, got "${flags.limit}"`, { hint: 'see etl diff --help' });
      limit = Number(flags.limit);
    }
    const cfg = commandConfig(ctx, { pipeline: flags.pipeline, mongoUrl: flags['mongo-url'], mongoDatabase: flags['mongo-db'], databaseUrl: flags['database-url'] });
    const model = await loadPipeline(cfg.pipelineFile, { globalDateThreshold: cfg.globalDateThreshold });
    // Before any connection: a typo in --tables is a usage error, not a failed comparison.
    let wanted: string[] | null = null;
    if (flags.tables !== undefined) {
      wanted = flags.tables.split(',').map((t) => t.trim()).filter(Boolean);
      if (wanted.length === 0) throw new UsageError('bad_arguments', '--tables needs at least one table name', { hint: 'see etl diff --help' });
    }
    const tables = selectTables(model, wanted);

    const ep = await openEndpoints(cfg, { needMongo: true, needPostgres: true, signal: ctx.signal });
    let report: DiffReport;
    try {
      report = await runDiff({
        model,
        mongo: ep.mongo,
        postgres: ep.postgres,
        secrets: cfg.secrets,
        tables,
        deep: flags.deep === true,
        sampleSize: limit,
        describe: { mongo: ep.describe.mongo, postgres: ep.describe.postgres },
        signal: ctx.signal,
        // --quiet keeps the final line only: no line per table.
        onProgress: flags.json || ctx.verbosity === 'quiet' ? undefined : comparingLines(ctx),
      });
    } finally {
      await ep.close();
    }
    if (flags.json) writeJson(ctx.stdout, { ok: report.identical, ...report });
    else ctx.stdout.write(renderDiff(report, paint(ctx.stdout, ctx.env), { listed: ctx.verbosity !== 'quiet' }));
    return report.identical ? 0 : 1;
  },
};

/**
 * "comparing <table>…" on stderr: each table on a terminal or with --verbose; in a log at most one a
 * heartbeat (ETL_PROGRESS_SECONDS), since the summary table already has a line per table.
 */
function comparingLines(ctx: CommandContext): (e: DiffProgress) => void {
  const every = ctx.stderr.isTTY === true || ctx.verbosity === 'verbose' ? 0 : heartbeatMs(ctx.env);
  let last = Date.now();
  return (e) => {
    if (e.kind !== 'table_start' || Date.now() - last < every) return;
    last = Date.now();
    ctx.stderr.write(`comparing ${e.table} (${e.collection})…\n`);
  };
}

/** A value of a document as the list shows it: an `_id` may be any string, long or holding terminal controls. */
const valueText = (v: string): string => printableLine(v, 100);

const keyText = (k: KeyValues): string => {
  const values = Object.values(k).map((v) => (v === null ? 'NULL' : valueText(v)));
  return values.length === 1 ? values[0]! : `(${values.join(', ')})`;
};

const counts = (c: Readonly<Record<string, number>>): string =>
  Object.entries(c)
    .map(([k, v]) => `${v.toLocaleString('en-US')} ${k}`)
    .join(', ');

/** `listed`: the per-table list is shown (not under --quiet, which keeps the final line alone). */
export function renderDiff(r: DiffReport, color: ReturnType<typeof paint>, o: { readonly listed: boolean } = { listed: true }): string {
  const out: string[] = [];
  out.push(`MongoDB ${r.source} (through pipeline.yaml) against PostgreSQL ${r.destination}${r.deep ? ', deep' : ''}`, '');
  const dash = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v);
  const rows = r.tables.map((t) => [
    t.table,
    t.mongo.rows,
    t.postgres.rows === null ? 'absent' : t.postgres.rows,
    t.missing.count,
    t.extra.count,
    r.deep ? dash(t.different?.count) : '-',
    t.rejected.count,
    t.refused.count,
    t.identical ? 'OK' : 'DIFF',
  ]);
  const table = formatTable(['table', 'mongo', 'postgres', 'missing', 'extra', 'different', 'rejected', 'refused', 'status'], rows);
  out.push(table.replace(/ (OK|DIFF)$/gm, (_m, s: string) => ` ${s === 'OK' ? color.green(s) : color.yellow(s)}`).trimEnd());

  for (const t of r.tables) {
    const details = tableDetails(t, r.sampleSize);
    if (details.length === 0) continue;
    out.push('', color.bold(`${t.table}`) + color.dim(` (${t.collection}, ${t.strategy}, key ${t.key.length > 1 ? `(${t.key.join(', ')})` : t.key[0]})`));
    out.push(...details.map((l) => `  ${l}`));
  }

  out.push('');
  const tot = r.totals;
  if (r.identical) {
    const shared = r.tables.some((t) => (t.refused.sharedValues ?? 0) > 0);
    const apart = [
      tot.rejected ? `${tot.rejected.toLocaleString('en-US')} rejected by the type contract` : '',
      tot.refused ? `${tot.refused.toLocaleString('en-US')} refused for a missing reference${shared ? ', a contested key or a shared unique value' : ' or a contested key'}` : '',
    ].filter(Boolean);
    const where = o.listed ? 'listed above' : 'etl diff without --quiet lists them';
    out.push(`${color.green('identical:')} ${tot.tables} table${tot.tables === 1 ? '' : 's'} match${apart.length ? ` (${apart.join(', ')}: ${where})` : ''}`);
  } else {
    const parts = [`${tot.missing.toLocaleString('en-US')} missing`, `${tot.extra.toLocaleString('en-US')} extra`];
    if (r.deep) parts.push(`${tot.different.toLocaleString('en-US')} different`);
    out.push(`${color.yellow('differences:')} ${tot.differing} of ${tot.tables} table${tot.tables === 1 ? '' : 's'} differ (${parts.join(', ')} rows)`);
  }
  return `${out.join('\n')}\n`;
}

function tableDetails(t: TableDiff, limit: number): string[] {
  const lines: string[] = [];
  const more = (shown: number, count: number) => (count > shown ? ` … and ${(count - shown).toLocaleString('en-US')} more` : '');
  const list = (items: string[], count: number) => (items.length ? `${items.join(', ')}${more(items.length, count)}` : '');
  if (t.problem) lines.push(`cannot compare: ${t.problem.message}`);
  if (t.missing.count) {
    lines.push(`${t.missing.count.toLocaleString('en-US')} missing in PostgreSQL${limit ? ':' : ''}`);
    if (limit) lines.push(`  ${list(t.missing.sample.map((m) => keyText(m.key)), t.missing.count)}`);
  }
  if (t.extra.count) {
    const refusals = [
      ...(t.extra.contested ? [`${t.extra.contested.toLocaleString('en-US')} duplicate_key`] : []),
      ...(t.extra.sharedValues ? [`${t.extra.sharedValues.toLocaleString('en-US')} duplicate_value`] : []),
    ];
    const refused = refusals.length ? `, or a load refuses their document's row: ${refusals.join(', ')}` : '';
    lines.push(`${t.extra.count.toLocaleString('en-US')} extra in PostgreSQL (no MongoDB document maps to them any more${refused})${limit ? ':' : ''}`);
    if (limit) lines.push(`  ${list(t.extra.sample.map((e) => `${keyText(e.key)}${e.reason ? ` [${e.reason}: ${e.column}]` : ''}`), t.extra.count)}`);
  }
  if (t.different?.count) {
    lines.push(`${t.different.count.toLocaleString('en-US')} different (${counts(t.different.byColumn)})${limit ? ':' : ''}`);
    for (const d of t.different.sample) lines.push(`  ${keyText(d.key)}: ${d.columns.join(', ')}`);
    if (t.different.count > t.different.sample.length && limit) lines.push(`  … and ${(t.different.count - t.different.sample.length).toLocaleString('en-US')} more`);
  }
  if (t.different?.notCompared.length) lines.push(`not compared (absent from PostgreSQL): ${t.different.notCompared.join(', ')}`);
  if (t.rejected.count) {
    const stale = t.rejected.inPostgres ? `; PostgreSQL holds an older row for ${t.rejected.inPostgres.toLocaleString('en-US')} of them` : '';
    lines.push(`${t.rejected.count.toLocaleString('en-US')} rejected by the type contract, not counted as missing (${counts(t.rejected.byReason)})${stale}${limit ? ':' : ''}`);
    if (limit) {
      lines.push(`  ${list(t.rejected.sample.map((x) => `${valueText(x.sourceId)}${x.column ? ` ${x.column}` : ''}: ${x.reason}`), t.rejected.count)}`);
    }
  }
  if (t.refused.count) {
    const by = Object.keys(t.refused.byColumn).join(', ');
    const why = [
      ...(by ? [`their ${by} points at a row PostgreSQL lacks (${counts(t.refused.byColumn)})`] : []),
      ...(t.refused.contested ? [`two documents claim their key (${t.refused.contested.toLocaleString('en-US')} duplicate_key)`] : []),
      ...(t.refused.sharedValues ? [`rows of other keys hold their value of a unique constraint (${t.refused.sharedValues.toLocaleString('en-US')} duplicate_value)`] : []),
    ];
    lines.push(`${t.refused.count.toLocaleString('en-US')} refused, not counted as missing: a load refuses them too, ${why.join('; ')}${limit ? ':' : ''}`);
    if (limit) lines.push(`  ${list(t.refused.sample.map((x) => `${keyText(x.key)} [${refusedTag(x)}]`), t.refused.count)}`);
  }
  return lines;
}

/** What a refused row's sample says after its key: the reference column, `duplicate_key`, or `duplicate_value: <the constraint's columns>`. */
function refusedTag(x: TableDiff['refused']['sample'][number]): string {
  if (x.reason === 'duplicate_key') return 'duplicate_key';
  return x.reason === 'duplicate_value' ? `duplicate_value: ${x.column}` : x.column;
}

export default command;
