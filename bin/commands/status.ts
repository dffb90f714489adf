// `etl status`: per table the watermark and the last applied run, the staged runs not loaded yet,
// and the drift between pipeline.yaml and the database. The work is inspect/status.ts.
import type { Command, CommandContext } from '../command.ts';
import { paint, writeJson } from '../output.ts';
import { cutText, formatTable, wrapText } from '../../report/text-table.ts';
import { printableLine } from '../../errors/printable.ts';
import { parseFlags } from '../flags.ts';
import { commandConfig } from '../config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { renderNextReads, renderPending, runStatus, type StagedRunStatus, type StatusReport } from '../../inspect/status.ts';

const usage = `usage: etl status [--json] [--staging DIR] [--database-url URL] [--pipeline FILE]

Where the destination stands:
  - per table: the watermark the next incremental extract starts from (etl_watermarks), the last
    run applied to it and its figures (etl_runs: inserted, updated, unchanged, deleted, rejected,
    nulled, orphaned), or "never loaded"; whether its mapping changed since (fingerprint) and what
    the next run reads: incremental, or in full (mapping changed, never loaded, force_reimport);
  - the staged runs this database has not loaded (from the staging folder's manifests and etl_runs),
    with the stage to run next; a stage whose process died while it ran shows as "killed", with
    what recovers the run;
  - the drift between pipeline.yaml and the live tables (details: etl schema --check).
Works on a database where \`etl schema\` never ran. Reads only.

options:
  --staging DIR       staging folder (default: ETL_STAGING, else ./.etl/runs)
  --database-url URL  PostgreSQL (default: DATABASE_URL, else POSTGRES_*)
  --pipeline FILE     pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json              print the report as JSON on stdout
exit codes: 0 reported, 1 failure (database unreachable…), 2 usage or configuration error
`;

const command: Command = {
  summary: 'watermarks, last applied runs, staged runs not loaded, and drift',
  usage,
  async run(ctx: CommandContext): Promise<number> {
    const flags = parseFlags(ctx.argv, {
      json: { type: 'boolean' },
      staging: { type: 'string' },
      'database-url': { type: 'string' },
      pipeline: { type: 'string' },
    });
    const cfg = commandConfig(ctx, { pipeline: flags.pipeline, staging: flags.staging, databaseUrl: flags['database-url'] });
    const model = await loadPipeline(cfg.pipelineFile, { globalDateThreshold: cfg.globalDateThreshold });
    const ep = await openEndpoints(cfg, { needMongo: false, needPostgres: true, signal: ctx.signal });
    let report: StatusReport;
    try {
      report = await runStatus({ model, postgres: ep.postgres, secrets: cfg.secrets, stagingDir: cfg.stagingDir, describePostgres: ep.describe.postgres, signal: ctx.signal });
    } finally {
      await ep.close();
    }
    if (flags.json) writeJson(ctx.stdout, { ok: true, ...report });
    // --quiet keeps one line: the drift's headline, not the last difference of its list.
    else if (ctx.verbosity === 'quiet') ctx.stdout.write(`${driftHeadline(report, paint(ctx.stdout, ctx.env))}\n`);
    else ctx.stdout.write(renderStatus(report, paint(ctx.stdout, ctx.env)));
    return 0;
  },
};

const num = (v: unknown): number | string => (typeof v === 'number' ? v : '-');

/** The widest line `etl status` prints (its table is fitted to it). */
const WIDTH = 100;

/** `2026-12-04 18:45:30` (UTC) from an ISO instant. */
function shortInstant(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

/** A staged run not loaded here: its id, stages and the command to run next; notes on a second line. */
function unloadedRunLines(run: StagedRunStatus, color: ReturnType<typeof paint>): string[] {
  const mark = (st: string | null) => (st === 'done' ? '✓' : st === null ? '-' : st);
  const stages = `extract ${mark(run.stages.extract)}  transform ${mark(run.stages.transform)}  load ${mark(run.stages.load)}`;
  // Table names come from the run's manifest and etl_runs: their controls escaped, like any input.
  const next = printableLine(run.problem ? `damaged: ${run.problem}` : nextText(run.nextCommand));
  const notes: string[] = [];
  // Loaded here in part (etl load --tables): the partly loaded note says so; else it went elsewhere.
  if (run.manifestLoad === 'done' && run.loadedTables.length === 0) notes.push('its manifest says loaded (into another database?)');
  if (run.manifestLoad === 'dry_run') notes.push('dry run only');
  if (run.loadedTables.length) notes.push(`partly loaded: ${run.loadedTables.join(', ')}`);
  if (run.olderThanLoaded) notes.push(`older than a run already loaded into ${run.refusedTables.join(', ')}: etl load refuses ${run.refusedTables.length > 1 ? 'them' : 'it'}`);
  // The next step is the line's point: said whole, on a line of its own when it does not fit.
  const head = `  ${run.runId}  ${stages}`;
  const lines = head.length + 2 + next.length <= WIDTH ? [`${head}  ${next}`] : [head, ...wrapText(next, WIDTH, '    ')];
  if (notes.length) lines.push(color.dim(cutText(printableLine(`    (${notes.join('; ')})`), WIDTH)));
  // Said whole: what to do about a killed run is the line a user needs.
  if (run.hint) lines.push(...wrapText(run.hint, WIDTH, '    ').map((l) => color.yellow(l)));
  return lines;
}

/** The command to run next on a staged run (inspect/status.ts, the same in --json), said with why when it is not the run's own stage. */
function nextText(command: string | null): string {
  if (command === null) return 'extract not complete';
  return command === 'etl run' ? 'next: etl run (a newer run is loaded: etl load refuses this one)' : `next: ${command}`;
}

export function renderStatus(r: StatusReport, color: ReturnType<typeof paint>): string {
  const out: string[] = [];
  out.push(`PostgreSQL ${r.destination}`);
  // Folder names are input (a checkout's, a flag's): shown with their controls escaped.
  out.push(`pipeline.yaml ${printableLine(r.pipeline.file)} (sha256 ${r.pipeline.sha256.slice(0, 12)}…)`);
  if (r.notice) out.push(color.yellow(r.notice));
  out.push('');

  const rows = r.tables.map((t) => {
    const f = t.lastRun?.figures ?? {};
    return [
      t.table,
      t.watermark ? shortInstant(t.watermark.at) : 'none (full next)',
      t.lastRun ? `${t.lastRun.runId}${t.lastRun.pipelineChanged ? ' *' : ''}` : 'never loaded',
      num(f.inserted),
      num(f.updated),
      num(f.deleted),
      num(f.rejected),
    ];
  });
  // Generic: a column added later shrinks the watermark (then the run) before the line overflows.
  const headers = ['table', 'watermark (UTC)', 'last run', 'ins', 'upd', 'del', 'rej'];
  out.push(formatTable(headers, rows, { maxWidth: WIDTH, minWidths: [undefined, 10, 12] }).trimEnd());
  out.push(color.dim("ins, upd, del, rej: rows the last run's load inserted, updated, deleted, rejected (all: --json)"));
  const loaded = r.tables.filter((t) => t.loaded).length;
  out.push(`${loaded} of ${r.tables.length} tables loaded${r.tables.some((t) => t.lastRun?.pipelineChanged) ? '; * = loaded with another pipeline.yaml than the current one' : ''}`);
  if (r.unknownTables.length) out.push(color.yellow(printableLine(`state rows for tables pipeline.yaml does not have: ${r.unknownTables.join(', ')}`)));
  out.push(...renderNextReads(r.tables));
  out.push(...renderPending(r.tables));

  out.push('');
  if (r.unloadedRuns.length === 0) {
    out.push(r.stagedRuns === 0 ? `no staged runs in ${printableLine(r.staging)}` : `every staged run in ${printableLine(r.staging)} is loaded (${r.stagedRuns})`);
  } else {
    out.push(`staged runs not loaded into this database (${r.unloadedRuns.length} of ${r.stagedRuns}, newest first):`);
    for (const run of r.unloadedRuns) out.push(...unloadedRunLines(run, color));
  }

  out.push('');
  if (r.drift.clean) out.push(driftHeadline(r, color));
  else {
    out.push(`${driftHeadline(r, color)}:`);
    const shown = r.drift.findings.slice(0, 10);
    for (const f of shown) out.push(cutText(printableLine(`  ${f.message}`), WIDTH));
    if (r.drift.findings.length > shown.length) out.push(`  … and ${r.drift.findings.length - shown.length} more`);
  }
  return `${out.join('\n')}\n`;
}

function driftHeadline(r: StatusReport, color: ReturnType<typeof paint>): string {
  if (r.drift.clean) return `${color.green('no drift:')} the database matches pipeline.yaml`;
  return `${color.yellow(`drift: ${r.drift.findings.length} difference(s)`)} between the database and pipeline.yaml (etl schema --check prints the fixing DDL)`;
}

export default command;
