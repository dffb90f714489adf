// `etl run`: extract → transform → load of one new staged run, stopping at the first stage that
// fails (its error is rendered as that stage's own command would). The stages are called through
// their entry points; each still reads only the previous stage's files.
import path from 'node:path';
import type { Command, CommandContext } from '../command.ts';
import { formatTable, writeJson } from '../output.ts';
import { stageListr } from '../stage-progress.ts';
import { parseFlags } from '../flags.ts';
import { LOAD_FLAGS, loadJson, loadTasks, parseTables, renderLoadReport } from './load.ts';
import { isMongoSource, resolveConfig } from '../../connect/config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { UsageError } from '../../model/errors.ts';
import { runExtract, type ExtractProgressEvent, type ExtractReport, type ExtractSource } from '../../extract/index.ts';
import { runTransform, type TransformProgress, type TransformReport } from '../../transform/index.ts';
import { runLoad } from '../../load/index.ts';
import { parseLockTimeout } from '../../load/lock.ts';

const usage = `usage: etl run [--tables a,b] [--full] [--since DATE] [--source URL|PATH] [--mongo-db NAME]
               [--propagate-deletes] [--allow-delete-all] [--allow-pipeline-change] [--dry-run]
               [--no-wait | --lock-timeout D] [--database-url URL] [--staging DIR] [--pipeline FILE] [--json]

Extracts a new staged run (incremental from the stored watermarks unless --full), transforms it
and loads it into PostgreSQL: \`etl extract && etl transform && etl load\` in one command. Stops at
the first stage that fails; the staged run stays for inspection or a re-run of the failed stage.

options (see etl extract / transform / load --help):
  --tables a,b          only these tables
  --full                read every document (ignore watermarks and date thresholds)
  --since DATE          read documents created or updated at or after DATE
  --source URL|PATH     a mongodb:// URL, or a mongodump output (folder or --archive file)
  --mongo-db NAME       the MongoDB database to read
  --propagate-deletes   also stage each collection's _id set, so load deletes the rows whose
                        document is gone (see etl extract --help)
  --allow-delete-all    load: accept an empty _id set for a table holding rows
  --allow-pipeline-change  (transform) accepted for symmetry; a new run always uses one pipeline.yaml
  --dry-run             load: do all the work and report the figures, then roll back
  --no-wait             load: fail at once when another etl load is running
  --lock-timeout D      load: wait at most D (30s, 2m) for another etl load, then fail naming it
  --database-url URL    the PostgreSQL database (default: DATABASE_URL, else POSTGRES_*)
  --staging DIR         staging folder (default: ETL_STAGING, else ./staging)
  --pipeline FILE       pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json                print {extract, transform, load} reports as JSON on stdout (progress off)
exit codes: 0 done, 1 a stage failed, 2 usage or configuration error
`;

function parseSince(text: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError('bad_since', `--since: "${text}" is not a date`, { hint: 'use 2024-03-01 (midnight UTC) or an ISO instant like 2024-03-01T10:00:00Z' });
  }
  return d;
}

/** One listr2 task for a whole stage, its output line following the stage's progress. */
async function stageTask<R>(ctx: CommandContext, json: boolean, title: string, work: (setOutput: (line: string) => void) => Promise<R>, done: (r: R) => string): Promise<R> {
  let output: { output: string; title: string } | null = null;
  let last = '';
  const setOutput = (line: string) => {
    last = line;
    if (output) output.output = line;
  };
  const stage = work(setOutput);
  const list = stageListr(ctx, json, [
    {
      title,
      task: async (_c, task) => {
        output = task as unknown as { output: string; title: string };
        if (last) task.output = last;
        const r = await stage;
        task.title = done(r);
      },
    },
  ]);
  await list.run().catch(() => undefined);
  return stage; // throws the stage's own error
}

const command: Command = {
  summary: 'extract, transform and load in a row',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, {
      ...LOAD_FLAGS,
      full: { type: 'boolean' },
      since: { type: 'string' },
      source: { type: 'string' },
      'mongo-db': { type: 'string' },
      'allow-pipeline-change': { type: 'boolean' },
      'propagate-deletes': { type: 'boolean' },
    });
    if (flags.run !== undefined) throw new UsageError('bad_arguments', '--run does not apply to etl run (it makes a new run)', { hint: 'use etl transform / etl load --run ID to re-run a stage' });
    if (flags.full && flags.since) throw new UsageError('bad_arguments', '--full and --since cannot be used together');
    const json = flags.json === true;
    const tables = parseTables(flags.tables);
    const since = flags.since !== undefined ? parseSince(flags.since) : null;
    const live = flags.source === undefined || isMongoSource(flags.source);
    const config = resolveConfig({
      flags: {
        pipeline: flags.pipeline,
        staging: flags.staging,
        databaseUrl: flags['database-url'],
        mongoUrl: live ? flags.source : undefined,
        mongoDatabase: flags['mongo-db'],
      },
      env: ctx.env,
      cwd: ctx.cwd,
    });
    const model = await loadPipeline(config.pipelineFile, { globalDateThreshold: config.globalDateThreshold });
    // TRANSFER_SOURCE / TRANSFER_DESTINATION=remote: SSH tunnels (explicit --source / --database-url are used as given).
    const tunnelMongo = live && flags.source === undefined;
    const tunnelPostgres = flags['database-url'] === undefined;
    const endpoints = await openEndpoints(config, { needMongo: tunnelMongo, needPostgres: tunnelPostgres, signal: ctx.signal });
    const postgres = tunnelPostgres ? endpoints.postgres : config.postgres;
    try {
      const source: ExtractSource = live
        ? { kind: 'mongodb', mongo: tunnelMongo ? endpoints.mongo : config.mongo, secrets: config.secrets }
        : { kind: 'dump', path: path.resolve(ctx.cwd, flags.source!), database: flags['mongo-db'] ?? null };

      const extract: ExtractReport = await stageTask(
        ctx,
        json,
        'Extract',
        (setOutput) =>
          runExtract({
            model,
            stagingDir: config.stagingDir,
            source,
            postgres,
            secrets: config.secrets,
            tables,
            full: flags.full === true,
            since,
            propagateDeletes: flags['propagate-deletes'] === true,
            globalDateThreshold: config.globalDateThreshold,
            signal: ctx.signal,
            onProgress: (e: ExtractProgressEvent) => {
              if (e.type === 'collection-progress') setOutput(`${e.collection}: ${e.documents.toLocaleString('en-US')} documents`);
              else if (e.type === 'collection-done') setOutput(`${e.collection}: done`);
            },
          }),
        (r) => `Extract: ${r.documents.toLocaleString('en-US')} documents into run ${r.run_id}`,
      );

      const transform: TransformReport = await stageTask(
        ctx,
        json,
        'Transform',
        (setOutput) =>
          runTransform({
            model,
            stagingDir: config.stagingDir,
            runId: extract.run_id,
            tables: tables ?? null,
            allowPipelineChange: flags['allow-pipeline-change'] === true,
            signal: ctx.signal,
            onProgress: (e: TransformProgress) => {
              if (e.kind === 'documents') setOutput(`${e.collection}: ${e.done.toLocaleString('en-US')} of ${e.total.toLocaleString('en-US')} documents`);
              else if (e.kind === 'table_done') setOutput(`${e.table}: ${e.record.rows.toLocaleString('en-US')} rows`);
            },
          }),
        (r) => `Transform: ${r.tables.reduce((a, t) => a + t.rows, 0).toLocaleString('en-US')} rows in ${r.tables.length} table(s)`,
      );

      const { list, stage } = loadTasks(ctx, json, (onProgress) =>
        runLoad({
          model,
          stagingDir: config.stagingDir,
          runId: extract.run_id,
          tables: tables ?? null,
          dryRun: flags['dry-run'] === true,
          postgres,
          secrets: config.secrets,
          lock: flags['no-wait'] ? 'fail' : flags['lock-timeout'] !== undefined ? { timeoutMs: parseLockTimeout(flags['lock-timeout']) } : 'wait',
          allowDeleteAll: flags['allow-delete-all'] === true,
          signal: ctx.signal,
          onProgress,
        }),
      );
      await list.run().catch(() => undefined);
      const load = await stage;

      if (json) {
        writeJson(ctx.stdout, { ok: true, runId: extract.run_id, extract, transform, load: loadJson(load) });
        return 0;
      }
      // Extract's warnings (a collection read in full because a table's mapping changed …).
      for (const w of extract.warnings) ctx.stderr.write(`warning: ${w}\n`);
      ctx.stdout.write(
        formatTable(
          ['collection', 'documents', 'watermark from'],
          extract.collections.map((c) => [c.collection, c.documents, c.watermark.from ?? 'full']),
        ),
      );
      ctx.stdout.write('\n');
      ctx.stdout.write(
        formatTable(
          ['table', 'documents', 'rows', 'rejected', 'skipped'],
          transform.tables.map((t) => [t.table, t.documents, t.rows, t.rejected, Object.values(t.skipped).reduce((a, b) => a + b, 0)]),
        ),
      );
      ctx.stdout.write('\n');
      renderLoadReport(ctx, load);
      return 0;
    } finally {
      await endpoints.close();
    }
  },
};

export default command;
