// `etl extract`: reads the collections the pipeline needs from MongoDB (or a mongodump output) into
// a new staged run. Progress per collection on stderr (listr2), a summary table or --json on stdout.
import path from 'node:path';
import type { Command, CommandContext } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { formatTable, writeJson } from '../output.ts';
import { StageProgress, stageListr } from '../stage-progress.ts';
import { isMongoSource, resolveConfig } from '../../connect/config.ts';
import { openEndpoints } from '../../connect/endpoints.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { UsageError } from '../../model/errors.ts';
import { runExtract, type ExtractProgressEvent, type ExtractReport, type ExtractSource } from '../../extract/index.ts';

const usage = `usage: etl extract [--tables a,b] [--staging DIR] [--pipeline FILE] [--full] [--since DATE]
                   [--propagate-deletes] [--source URL|PATH] [--mongo-db NAME] [--json]

Reads every collection the pipeline needs, once each, into a new staged run
(<staging>/<run>/extract/<collection>.ndjson) and points <staging>/latest at it.
Incremental by default: documents created or updated at or after each table's watermark
(stored in PostgreSQL by the previous load, minus a safety margin); tables never loaded are read in full.

options:
  --tables a,b      only the collections feeding these tables
  --full            read everything (ignore watermarks and date thresholds; PostgreSQL not needed)
  --since DATE      read documents created or updated at or after DATE (e.g. 2024-03-01 or an ISO instant)
  --propagate-deletes
                    also stage each collection's full _id set (<collection>.ids.ndjson, a second
                    pass, ids only), so load deletes the rows whose document is gone, and the rows
                    referencing them; every upsert and explode table (without the flag: the tables
                    with propagate_deletes: true). Dedupe tables are not covered
  --source URL|PATH a mongodb:// or mongodb+srv:// URL (live server), or a mongodump output:
                    a dump folder, a database folder of .bson/.bson.gz files, or an --archive file
  --mongo-db NAME   the database to read (default: MONGODB_DATABASE, or the one the dump holds)
  --staging DIR     staging folder (default: ETL_STAGING, else ./staging)
  --pipeline FILE   pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json            print the report as JSON on stdout (progress off)
exit codes: 0 done, 1 failed, 2 usage or configuration error
`;

function parseSince(text: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError('bad_since', `--since: "${text}" is not a date`, { hint: 'use 2024-03-01 (midnight UTC) or an ISO instant like 2024-03-01T10:00:00Z' });
  }
  return d;
}

function isMongoUrl(text: string): boolean {
  return isMongoSource(text);
}

function rate(documents: number, ms: number): string {
  return ms > 0 ? `${Math.round((documents * 1000) / ms).toLocaleString('en-US')} docs/s` : '';
}

function progressLine(e: Extract<ExtractProgressEvent, { type: 'collection-progress' }>): string {
  const of = e.total !== null ? ` of ${e.total.toLocaleString('en-US')}` : '';
  const scanned = e.scanned !== e.documents ? ` (${e.scanned.toLocaleString('en-US')} read)` : '';
  return `${e.documents.toLocaleString('en-US')}${of} documents${scanned}, ${rate(e.documents, e.elapsedMs)}`;
}

/** One listr2 task per collection, driven by the stage's progress events. */
function progressTasks(ctx: CommandContext, json: boolean, run: (onProgress: (e: ExtractProgressEvent) => void) => Promise<ExtractReport>) {
  let collections: readonly string[] = [];
  let started!: () => void;
  const runStarted = new Promise<void>((resolve) => (started = resolve));
  const onProgress = (e: ExtractProgressEvent) => {
    if (e.type === 'run-started') {
      collections = e.collections;
      started();
      return;
    }
    if (e.collection === null) return;
    if (e.type === 'collection-progress') progress.update(e.collection, { output: progressLine(e) });
    else if (e.type === 'collection-retry') progress.update(e.collection, { output: `connection lost (${e.error}); reconnecting, attempt ${e.attempt}` });
    else if (e.type === 'collection-ids-progress') progress.update(e.collection, { output: `${e.ids.toLocaleString('en-US')} ids (delete propagation)` });
    else if (e.type === 'collection-resorting') progress.update(e.collection, { output: 'dump not in _id order: sorting on disk' });
    else if (e.type === 'warning') progress.update(e.collection, { output: `warning: ${e.message}` });
    else if (e.type === 'collection-done') {
      const speed = rate(e.record.documents, e.seconds * 1000);
      progress.update(e.collection, { title: `${e.collection}: ${e.record.documents.toLocaleString('en-US')} documents${speed ? `, ${speed}` : ''}`, done: true });
    }
  };
  const progress = new StageProgress(run(onProgress));
  const list = stageListr(ctx, json, [
    {
      title: 'Connecting and reading watermarks',
      task: async (_c, task) => {
        await Promise.race([runStarted, progress.failed()]);
        task.title = `Extracting ${collections.length} collection(s)`;
        return task.newListr(progress.subtasks(collections), { concurrent: false, exitOnError: true });
      },
    },
  ]);
  return { list, stage: progress.stage };
}

const command: Command = {
  summary: 'read MongoDB (or a mongodump) into a new staged run',
  usage,
  async run(ctx) {
    const values = parseFlags(ctx.argv, {
      tables: { type: 'string' },
      staging: { type: 'string' },
      pipeline: { type: 'string' },
      full: { type: 'boolean' },
      since: { type: 'string' },
      'propagate-deletes': { type: 'boolean' },
      source: { type: 'string' },
      'mongo-db': { type: 'string' },
      json: { type: 'boolean' },
    });
    const json = values.json === true;
    if (values.full && values.since) throw new UsageError('bad_arguments', '--full and --since cannot be used together');
    const since = values.since !== undefined ? parseSince(values.since) : null;
    const tables = values.tables !== undefined ? values.tables.split(',').map((t) => t.trim()).filter(Boolean) : undefined;
    if (tables !== undefined && tables.length === 0) throw new UsageError('bad_arguments', '--tables needs at least one table name');

    const live = values.source === undefined || isMongoUrl(values.source);
    const config = resolveConfig({
      flags: {
        pipeline: values.pipeline,
        staging: values.staging,
        mongoUrl: live ? values.source : undefined,
        mongoDatabase: values['mongo-db'],
      },
      env: ctx.env,
      cwd: ctx.cwd,
    });
    const model = await loadPipeline(config.pipelineFile, { globalDateThreshold: config.globalDateThreshold });
    // TRANSFER_SOURCE / TRANSFER_DESTINATION=remote: MongoDB and the watermarks' PostgreSQL through
    // SSH tunnels. An explicit --source is used as given.
    const tunnelMongo = live && values.source === undefined;
    const endpoints = await openEndpoints(config, { needMongo: tunnelMongo, needPostgres: values.full !== true, signal: ctx.signal });
    try {
      const source: ExtractSource = live
        ? { kind: 'mongodb', mongo: tunnelMongo ? endpoints.mongo : config.mongo, secrets: config.secrets }
        : { kind: 'dump', path: path.resolve(ctx.cwd, values.source!), database: values['mongo-db'] ?? null };

      const { list, stage } = progressTasks(ctx, json, (onProgress) =>
        runExtract({
          model,
          stagingDir: config.stagingDir,
          source,
          postgres: endpoints.postgres,
          secrets: config.secrets,
          tables,
          full: values.full === true,
          since,
          propagateDeletes: values['propagate-deletes'] === true,
          globalDateThreshold: config.globalDateThreshold,
          signal: ctx.signal,
          onProgress,
        }),
      );
      await list.run().catch(() => undefined);
      const report = await stage; // throws the stage's error, rendered by bin/render-error.ts

      if (json) {
        writeJson(ctx.stdout, report);
        return 0;
      }
      const rows = report.collections.map((c) => [c.collection, c.documents, c.bytes, c.watermark.from ?? 'full', c.seconds.toFixed(2)] as const);
      ctx.stdout.write(formatTable(['collection', 'documents', 'bytes', 'watermark from', 'seconds'], rows.map((r) => [...r])));
      for (const w of report.warnings) ctx.stderr.write(`warning: ${w}\n`);
      const p = report.propagate_deletes;
      if (p) {
        const staged = report.collections.filter((c) => c.ids).map((c) => `${c.collection} (${c.ids!.documents.toLocaleString('en-US')})`);
        ctx.stdout.write(`delete propagation: _id sets staged for ${staged.length ? staged.join(', ') : 'no collection'}; tables ${p.tables.join(', ') || '(none)'}\n`);
        if (p.unsupported.length) ctx.stdout.write(`  not propagated (dedupe tables): ${p.unsupported.map((u) => u.table).join(', ')}; their rows follow deleted parents by foreign key\n`);
      }
      ctx.stdout.write(`${report.documents.toLocaleString('en-US')} documents, ${report.bytes.toLocaleString('en-US')} bytes in ${report.run_dir}\n`);
      return 0;
    } finally {
      await endpoints.close();
    }
  },
};

export default command;
