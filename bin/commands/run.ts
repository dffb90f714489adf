// `etl run`: extract → transform → load of one new staged run, the three at once, stopping at the
// first stage that fails (its error is rendered as that stage's own command would). The stages are
// composed here from bin/stages/*, fed by the previous one's events (CollectionFeed, StagedTables);
// each still reads only the previous stage's files.
import type { Command, CommandContext } from '../command.ts';
import { parseFlags } from '../flags.ts';
import { count, duration } from '../progress/meter.ts';
import { parseTables, runStageFlow, STAGE_FLAGS, writeWarnings } from '../stage-flow.ts';
import { EXTRACT_FLAGS, extractJson, extractOptions, extractStage, readExtractFlags } from '../stages/extract.ts';
import { LOAD_FLAGS, appliedFigures, checkLockFlags, loadJson, loadNotes, loadOptions, loadStage, pendingOf } from '../stages/load.ts';
import { transformJson, transformNotes, transformStage } from '../stages/transform.ts';
import { UsageError } from '../../errors/etl-error.ts';
import { formatTable } from '../../report/text-table.ts';
import type { ExtractOptions, ExtractReport } from '../../extract/index.ts';
import type { LoadOptions, LoadReport } from '../../load/index.ts';
import { StagedTables } from '../../staging/staged-tables.ts';
import { CollectionFeed, type TransformOptions, type TransformReport } from '../../transform/index.ts';
import type { ProgressView } from '../progress/view.ts';
import { removeAbandonedPartials } from '../../staging/run-writer.ts';

const usage = `usage: etl run [--tables a,b] [--full] [--since DATE] [--source URL|PATH] [--mongo-db NAME]
               [--propagate-deletes] [--allow-delete-all] [--allow-pipeline-change] [--dry-run]
               [--no-wait | --lock-timeout D] [--database-url URL] [--staging DIR] [--pipeline FILE]
               [--json]

Extracts a new staged run (incremental from the stored watermarks unless --full), transforms it
and loads it into PostgreSQL: \`etl extract && etl transform && etl load\` in one command, the stages
overlapped (a collection is transformed once extracted, a table loaded once its files are complete;
the load takes its lock when the run starts and commits once all is done). Stops at the first stage
that fails; the staged run stays for inspection or a re-run of the failed stage.

options (see etl extract / transform / load --help):
  --tables a,b          only these tables
  --full                read every document (ignore watermarks and date thresholds)
  --since DATE          read documents created or updated at or after DATE (after a table's
                        watermark, the watermark stays: the next run reads what was skipped)
  --source URL|PATH     a mongodb:// URL, or a mongodump output (folder or --archive file)
  --mongo-db NAME       the MongoDB database to read
  --propagate-deletes   also stage each collection's _id set, so load deletes the rows whose
                        document is gone (see etl extract --help)
  --allow-delete-all    load: accept an empty _id set for a table holding rows
  --allow-pipeline-change  (transform) accepted for symmetry: a new run uses one pipeline.yaml
  --dry-run             load: do all the work and report the figures, then roll back
  --no-wait             load: fail at once when another etl load is running
  --lock-timeout D      load: wait at most D (30s, 2m, 1h; a bare number is seconds) for another
                        etl load, then fail naming it
  --database-url URL    the PostgreSQL database (default: DATABASE_URL, else POSTGRES_*)
  --staging DIR         staging folder (default: ETL_STAGING, else ./.etl/runs)
  --pipeline FILE       pipeline file (default: ETL_PIPELINE, else ./pipeline.yaml)
  --json                print {extract, transform, load} reports as JSON on stdout (progress off)
exit codes: 0 done, 1 a stage failed, 2 usage or configuration error
`;

const RUN_FLAGS = {
  ...STAGE_FLAGS,
  ...EXTRACT_FLAGS,
  ...LOAD_FLAGS,
  run: { type: 'string' },
  'allow-pipeline-change': { type: 'boolean' },
} as const;

interface RunReport {
  readonly extract: ExtractReport;
  readonly transform: TransformReport;
  readonly load: LoadReport;
}

const command: Command = {
  summary: 'extract, transform and load in a row',
  usage,
  async run(ctx) {
    const flags = parseFlags(ctx.argv, RUN_FLAGS);
    checkLockFlags(flags);
    if (flags.run !== undefined) throw new UsageError('bad_arguments', '--run does not apply to etl run (it makes a new run)', { context: { flag: '--run' }, hint: 'use etl transform / etl load --run ID to re-run a stage' });
    const { live } = readExtractFlags(flags);
    const tables = parseTables(flags.tables);
    const tunnelPostgres = flags['database-url'] === undefined;
    return runStageFlow<RunReport>(ctx, {
      json: flags.json === true,
      multiStage: true,
      config: { pipeline: flags.pipeline, staging: flags.staging, databaseUrl: flags['database-url'], mongoUrl: live ? flags.source : undefined, mongoUrlFlag: '--source', mongoDatabase: flags['mongo-db'] },
      // TRANSFER_SOURCE / TRANSFER_DESTINATION=remote: SSH tunnels (explicit --source / --database-url are used as given).
      servers: () => ({ needMongo: live && flags.source === undefined, needPostgres: tunnelPostgres }),
      async work(env) {
        const postgres = tunnelPostgres ? env.endpoints.postgres : env.config.postgres;
        const extract = extractOptions(flags, env, tables, postgres);
        // One sweep of the staging folder for killed runs' leftovers, for the three stages.
        const abandoned = await removeAbandonedPartials(env.config.stagingDir);
        return overlapped(env.view, { ...extract, abandoned }, {
          transform: {
            model: env.model,
            stagingDir: env.config.stagingDir,
            tables: tables ?? null,
            allowPipelineChange: flags['allow-pipeline-change'] === true,
            signal: ctx.signal,
            abandoned,
          },
          load: (runId) => ({ ...loadOptions(flags, env, { runId, tables, postgres }), abandoned }),
        }, (warnings) => {
          if (ctx.verbosity !== 'quiet') writeWarnings(ctx, warnings);
        });
      },
      toJson: (r) => ({ ok: true, runId: r.extract.runId, extract: extractJson(r.extract), transform: transformJson(r.transform), load: loadJson(r.load) }),
      render: (r) => renderRun(ctx, r),
      finalLine: runLine,
    });
  },
};

interface Later {
  readonly transform: Omit<TransformOptions, 'onProgress' | 'runId' | 'extractFeed' | 'stagedTables'>;
  readonly load: (runId: string) => Omit<LoadOptions, 'onProgress' | 'stagedTables'>;
}

interface Running {
  feed: CollectionFeed;
  transform: Promise<TransformReport>;
  load: Promise<LoadReport>;
}

/**
 * The three stages at once: each collection is transformed as soon as the extract has staged it
 * (while the next is read), and the load starts with the run (lock, BEGIN, tables ensured), taking
 * each table in load order once the transform says its files are final. What is staged, loaded and
 * recorded, and what a failure leaves, is what `etl extract && etl transform && etl load` leave:
 * the transform writes its manifest section only once the extract is done and removes its files if
 * the extract fails; the load writes the manifest only once the transform is done, and rolls back
 * and records nothing if either fails (their error is the one reported). A load that fails early
 * holds its error until the extract and the transform have ended, as if it had run after them.
 */
async function overlapped(view: ProgressView, extractOptions: Omit<ExtractOptions, 'onProgress'>, later: Later, extractWarnings: (warnings: readonly string[]) => void): Promise<RunReport> {
  const staged = new StagedTables();
  const fed: { run?: Running } = {};
  const extracting = extractStage(view, { ...extractOptions, withDone: (m) => fed.run?.feed.withDone(m) }, (e) => {
    if (e.kind === 'started') {
      const feed = new CollectionFeed(e.collections);
      const transform = transformStage(view, { ...later.transform, runId: e.runId, extractFeed: feed, stagedTables: staged });
      transform.then(() => staged.end(), (error: unknown) => staged.fail(error));
      const load = loadStage(view, { ...later.load(e.runId), stagedTables: staged });
      load.catch(() => undefined); // awaited once the others are over
      fed.run = { feed, transform, load };
    } else if (e.kind === 'collection_done') fed.run?.feed.push({ collection: e.collection, record: e.record });
  });
  let extract: ExtractReport;
  try {
    extract = await extracting;
  } catch (error) {
    fed.run?.feed.fail(error);
    staged.fail(error);
    await Promise.allSettled([fed.run?.transform, fed.run?.load]);
    throw error;
  }
  const { feed, transform, load } = fed.run!;
  feed.end();
  try {
    return { extract, transform: await transform, load: await load };
  } catch (error) {
    // A failed transform is reported, not the load it stopped.
    await load.catch(() => undefined);
    // The extract ended: its warnings (a collection missing from the source…) may say why, as the
    // error's hint may point at them; a finished run prints them with its summary.
    extractWarnings(extract.warnings);
    throw error;
  }
}

/** One line per table, all three stages: what was read, staged and applied. */
function renderRun(ctx: CommandContext, r: RunReport): void {
  writeWarnings(ctx, r.extract.warnings);
  const loaded = new Map(r.load.tables.map((t) => [t.table, t]));
  const rows = r.transform.tables.map((t) => {
    const l = loaded.get(t.table);
    // Load's figures as etl load prints them: an upsert or explode table's rows are inserted, updated,
    // unchanged, rejected by load or duplicates (a dedupe table's duplicates are contributions that lost).
    const applied = l ? [l.inserted, l.updated, l.unchanged, l.rejected, l.duplicates, l.deleted, pendingOf(l)] : ['-', '-', '-', '-', '-', '-', '-'];
    return [t.table, t.documents, t.rows, t.rejected, ...applied];
  });
  const headers = ['table', 'documents', 'rows', 'rejected', 'inserted', 'updated', 'unchanged', 'load rejected', 'duplicates', 'deleted', 'pending'];
  ctx.stdout.write(formatTable(headers, rows));
  transformNotes(ctx, r.transform);
  loadNotes(ctx, r.load);
}

/**
 * `run X: 20,000 documents → 45,123 rows (12 rejected) → 44,800 inserted, … into DEST in 3.40 s (stages
 * overlapped: extract …)`: each stage's span from its start to its end; they run at once, so they add up to more.
 */
function runLine(r: RunReport, ms: number): string {
  const span = (a: string, b: string) => duration(Date.parse(b) - Date.parse(a));
  const rows = r.transform.tables.reduce((a, t) => a + t.rows, 0);
  const rejected = r.transform.tables.reduce((a, t) => a + t.rejected, 0);
  const applied = r.load.dryRun ? 'rolled back (dry run) in' : r.load.alreadyApplied ? 'already loaded in' : 'loaded into';
  return (
    `run ${r.extract.runId}: ${count(r.extract.documents)} documents → ${count(rows)} rows (${count(rejected)} rejected) → ` +
    `${appliedFigures(r.load)} at load; ${applied} ${r.load.destination} ` +
    `in ${duration(ms)} (stages overlapped: extract ${span(r.extract.startedAt, r.extract.endedAt)}, transform ${span(r.transform.startedAt, r.transform.endedAt)}, load ${span(r.load.startedAt, r.load.endedAt)})`
  );
}

export default command;
