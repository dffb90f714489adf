// `etl load`: merges a staged run into PostgreSQL in one transaction. Progress per table on stderr
// (listr2), the per-table summary or --json on stdout.
import type { Command, CommandContext } from '../command.ts';
import { formatTable, paint, writeJson } from '../output.ts';
import { parseFlags } from '../flags.ts';
import { StageProgress, stageListr, type TaskView } from '../stage-progress.ts';
import { resolveConfig } from '../../connect/config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { UsageError } from '../../model/errors.ts';
import { runLoad, type LoadProgress, type LoadReport, type TableLoadReport } from '../../load/index.ts';
import { parseLockTimeout } from '../../load/lock.ts';

const usage = `usage: etl load [--run ID] [--staging DIR] [--pipeline FILE] [--tables a,b] [--dry-run]
                [--no-wait | --lock-timeout D] [--allow-delete-all] [--database-url URL] [--json]

Merges a staged run into PostgreSQL, in one transaction: each table's CSV is copied into a
temporary table, then merged (upsert, delete-and-insert of link tables, dedupe upsert) in load
order; rows referencing a missing row are rejected or set NULL as pipeline.yaml says, and listed in
<run>/load/<table>.rejects.ndjson; the watermarks advance in the same transaction. It all commits or
nothing changes. A run already loaded changes nothing. Missing tables are created first.
A run extracted with --propagate-deletes also deletes the rows whose document is gone (and the rows
referencing them, or sets those references NULL, as pipeline.yaml says).

options:
  --run ID            the staged run (default: the one <staging>/latest names)
  --tables a,b        only these tables (in load order)
  --dry-run           do all the work and report the figures, then roll back
  --no-wait           fail at once when another etl load is running (default: wait for it)
  --lock-timeout D    load: wait at most D (30s, 2m) for another etl load, then fail naming it
  --allow-delete-all  delete propagation: accept an empty _id set for a table holding rows
                      (by default refused: it more likely means a wrong source than an empty one)
  --database-url URL  the PostgreSQL database (default: DATABASE_URL, else POSTGRES_*)
  --staging DIR       staging folder (default: ETL_STAGING, else ./staging)
  --pipeline FILE     pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json              print the report as JSON on stdout (progress off)
exit codes: 0 done, 1 failed (nothing changed), 2 usage or configuration error
`;

export const LOAD_FLAGS = {
  run: { type: 'string' },
  staging: { type: 'string' },
  pipeline: { type: 'string' },
  tables: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  'lock-timeout': { type: 'string' },
  'allow-delete-all': { type: 'boolean' },
  'database-url': { type: 'string' },
  json: { type: 'boolean' },
} as const;

export function parseTables(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const tables = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (tables.length === 0) throw new UsageError('bad_arguments', '--tables needs at least one table name');
  return tables;
}

const n = (x: number) => x.toLocaleString('en-US');

/** `120 inserted, 3 updated, 2 rejected` — only the figures that are not zero. */
export function tableLine(r: TableLoadReport): string {
  const parts: string[] = [];
  for (const k of ['inserted', 'updated', 'unchanged', 'deleted', 'rejected', 'nulled', 'duplicates'] as const) if (r[k] > 0) parts.push(`${n(r[k])} ${k}`);
  if (r.truncated.length) parts.push(`truncated (cascade: ${r.truncated.join(', ')})`);
  return `${r.table}: ${n(r.staged)} staged${parts.length ? `, ${parts.join(', ')}` : ''}`;
}

/**
 * listr2 tasks mirroring the load's progress events: a first task until the plan is known, then
 * one per table, then the commit. The load itself runs beside them; its promise carries the error.
 */
export function loadTasks(ctx: CommandContext, json: boolean, run: (onProgress: (e: LoadProgress) => void) => Promise<LoadReport>) {
  let plan: { tables: readonly string[]; alreadyApplied: readonly string[]; runId: string } | null = null;
  let planned!: () => void;
  const planKnown = new Promise<void>((resolve) => (planned = resolve));
  let committing: { dryRun: boolean } | null = null;
  // The setup and commit steps are items too, so their lines follow the same rules as tables'.
  const SETUP = '\u0000setup';
  const COMMIT = '\u0000commit';
  const onProgress = (e: LoadProgress) => {
    switch (e.kind) {
      case 'waiting':
        progress.update(SETUP, { output: e.message });
        return;
      case 'plan':
        plan = { tables: e.tables, alreadyApplied: e.alreadyApplied, runId: e.runId };
        planned();
        return;
      case 'table_phase':
        progress.update(e.table, { output: e.phase });
        return;
      case 'table_done':
        progress.update(e.table, { title: tableLine(e.report), done: true });
        return;
      case 'committing':
        committing = { dryRun: e.dryRun };
        return;
    }
  };
  const progress = new StageProgress(run(onProgress));
  progress.stage.then(
    () => progress.update(COMMIT, { title: committing?.dryRun ? 'Rolled back (dry run): nothing changed' : 'Committed', done: true }),
    () => undefined,
  );

  const list = stageListr(ctx, json, [
    {
      title: 'Connecting, locking, checking what this run already applied',
      task: async (_c, task) => {
        progress.attach(SETUP, task as unknown as TaskView);
        await Promise.race([planKnown, progress.failed()]);
        const p = plan!;
        if (p.tables.length === 0) {
          task.title = p.alreadyApplied.length ? `Run ${p.runId} was already loaded: nothing to do` : `Run ${p.runId} holds no transformed table: nothing to load`;
          return;
        }
        task.title = `Loading run ${p.runId}: ${p.tables.length} table(s)${p.alreadyApplied.length ? ` (${p.alreadyApplied.length} already loaded, skipped)` : ''}`;
        const [commit] = progress.subtasks([COMMIT]);
        return task.newListr([...progress.subtasks(p.tables), { ...commit!, title: 'Commit' }] as never, { concurrent: false, exitOnError: true });
      },
    },
  ]);
  return { list, stage: progress.stage };
}

/** The --json document: the report, plus the snake_case names the manifest uses for its flags. */
export function loadJson(report: LoadReport) {
  return { ok: true, ...report, run_id: report.runId, dry_run: report.dryRun, already_applied: report.alreadyApplied };
}

/** The summary printed after a load (stdout), warnings on stderr. */
export function renderLoadReport(ctx: CommandContext, report: LoadReport): void {
  const color = paint(ctx.stdout, ctx.env);
  if (report.alreadyApplied) {
    const when = report.skipped.map((s) => s.loadedAt).sort()[0];
    ctx.stdout.write(`run ${report.runId} was already loaded into ${report.destination}${when ? ` (at ${when})` : ''}: nothing changed\n`);
  } else {
    const headers = ['table', 'staged', 'inserted', 'updated', 'unchanged', 'deleted', 'rejected', 'nulled', 'duplicates'];
    const rows = report.tables.map((t) => [t.table, t.staged, t.inserted, t.updated, t.unchanged, t.deleted, t.rejected, t.nulled, t.duplicates]);
    ctx.stdout.write(formatTable(headers, rows));
    for (const t of report.tables) if (t.rejectsFile) ctx.stdout.write(`${t.table}: ${n(t.rejected)} rejected, ${n(t.nulled)} set NULL, listed in ${t.rejectsFile}\n`);
    if (report.deletions) {
      ctx.stdout.write('\ndeleted because their document is gone (delete propagation):\n');
      ctx.stdout.write(
        formatTable(
          ['table', 'live ids', 'gone', 'referencing', 'nulled'],
          report.deletions.tables.map((d) => [d.table, d.live === null ? '-' : d.live, d.gone, d.referencing, d.nulled]),
        ),
      );
    }
    if (report.truncated.length) ctx.stdout.write(`${color.yellow('truncated (TRUNCATE … CASCADE):')} ${report.truncated.join(', ')}\n`);
    if (report.skipped.length) ctx.stdout.write(`already loaded from this run, skipped: ${report.skipped.map((s) => s.table).join(', ')}\n`);
    ctx.stdout.write(
      report.dryRun
        ? `${color.yellow('dry run:')} run ${report.runId} rolled back, nothing changed in ${report.destination}\n`
        : `${color.green('loaded')} run ${report.runId} into ${report.destination}\n`,
    );
  }
  for (const w of report.warnings) ctx.stderr.write(`${color.yellow('warning:')} ${w}\n`);
}

const command: Command = {
  summary: 'merge a staged run into PostgreSQL in one transaction',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, LOAD_FLAGS);
    const json = flags.json === true;
    const tables = parseTables(flags.tables);
    const config = resolveConfig({ flags: { pipeline: flags.pipeline, staging: flags.staging, databaseUrl: flags['database-url'] }, env: ctx.env, cwd: ctx.cwd });
    const model = await loadPipeline(config.pipelineFile, { globalDateThreshold: config.globalDateThreshold });
    // TRANSFER_DESTINATION=remote: PostgreSQL through an SSH tunnel (an explicit --database-url is used as given).
    const endpoints = await openEndpoints(config, { needMongo: false, needPostgres: flags['database-url'] === undefined, signal: ctx.signal });
    try {
      const { list, stage } = loadTasks(ctx, json, (onProgress) =>
        runLoad({
          model,
          stagingDir: config.stagingDir,
          runId: flags.run ?? null,
          tables: tables ?? null,
          dryRun: flags['dry-run'] === true,
          postgres: flags['database-url'] === undefined ? endpoints.postgres : config.postgres,
          secrets: config.secrets,
          lock: flags['no-wait'] ? 'fail' : flags['lock-timeout'] !== undefined ? { timeoutMs: parseLockTimeout(flags['lock-timeout']) } : 'wait',
          allowDeleteAll: flags['allow-delete-all'] === true,
          signal: ctx.signal,
          onProgress,
        }),
      );
      await list.run().catch(() => undefined);
      const report = await stage; // throws the stage's error, rendered by bin/render-error.ts
      if (json) writeJson(ctx.stdout, loadJson(report));
      else renderLoadReport(ctx, report);
      return 0;
    } finally {
      await endpoints.close();
    }
  },
};

export default command;
