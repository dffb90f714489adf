// The named benchmarks. Each runs its measured steps in child processes (bench/worker.ts, psql)
// and compares them with the baseline and goal of the issue:
//   extract      live: etl extract vs a bare driver scan, docs/s ratio, goal ≥ 0.8
//                dump: etl extract vs a bare BSON file read (informational, no goal)
//   transform    documents/s on one core (taskset -c 0), goal ≥ 100,000
//   load         initial load into empty tables vs psql \copy of the same CSVs, time ratio, goal ≤ 1.5
//   incremental  extract+transform+load after 1 % of the source changed vs the full run, goal < 5 %
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { readManifest } from '../staging/manifest.ts';
import { runPaths } from '../staging/run-folder.ts';
import type { BenchContext } from './context.ts';
import { openScratchLiveDataset, round } from './dataset.ts';
import { compare, stepFigures, workerStep, type Comparison, type StepFigures } from './figures.ts';
import { canPinCpu } from './child.ts';
import { freshDatabase } from './postgres.ts';
import { psqlCopy, stagedCopies } from './psql-copy.ts';
import { startFerretDbOn, type BenchMongoServer } from './mongo-server.ts';

export const BENCH_NAMES = ['extract', 'transform', 'load', 'incremental'] as const;
export type BenchName = (typeof BENCH_NAMES)[number];

export const TRANSFORM_GOAL_DOCS_PER_S = 100_000;

export interface BenchmarkResult {
  readonly name: BenchName;
  status: 'done' | 'failed';
  error?: string;
  /** Measured steps by key, in the order they ran. */
  readonly steps: Record<string, StepFigures>;
  readonly comparisons: Record<string, Comparison>;
  readonly notes: string[];
  readonly details: Record<string, unknown>;
}

export type Benchmark = (ctx: BenchContext, result: BenchmarkResult) => Promise<void>;

const ratioOf = (a: StepFigures, b: StepFigures) => (b.per_second > 0 ? a.per_second / b.per_second : null);

const extract: Benchmark = async (ctx, result) => {
  const dump = await ctx.dump();
  // The etl step runs first: the baseline then reads files (or a server) the etl step just warmed,
  // which can only favour the baseline.
  const etlDump = await ctx.worker('extract from dump', {
    kind: 'extract',
    stagingDir: ctx.dumpStaging,
    source: 'dump',
    dumpDir: dump.dumpDir,
    database: dump.database,
    full: true,
    usePostgres: false,
  });
  ctx.dumpRunId = String(etlDump.figures.run_id);
  result.steps.dump_etl = workerStep('etl extract, dump → NDJSON', etlDump, 'documents', 'documents', { bytes_written: etlDump.figures.bytes });
  const bare = await ctx.worker('bare BSON read', { kind: 'scan-dump', dumpDir: dump.dumpDir, database: dump.database });
  result.steps.dump_baseline = workerStep('bare BSON read of the .bson files', bare, 'documents', 'documents', { bytes_read: bare.figures.bytes });
  result.comparisons.dump = compare('etl docs/s ÷ bare BSON read docs/s', ratioOf(result.steps.dump_etl, result.steps.dump_baseline), null, null);
  if (result.steps.dump_etl.count !== result.steps.dump_baseline.count) {
    result.notes.push(`dump: etl extracted ${result.steps.dump_etl.count} documents, the bare read decoded ${result.steps.dump_baseline.count}`);
  }

  const live = await ctx.liveDataset();
  result.details.live_server = live.server.description;
  result.details.live_load_seconds = live.loadSeconds;
  const env = { BENCH_MONGODB_URL: live.server.url };
  const liveStaging = path.join(ctx.options.workDir, 'staging-live');
  const etlLive = await ctx.worker(
    'extract from live server',
    { kind: 'extract', stagingDir: liveStaging, source: 'live', database: live.database, full: true, usePostgres: false },
    { env },
  );
  result.steps.live_etl = workerStep('etl extract, live server → NDJSON', etlLive, 'documents', 'documents', { bytes_written: etlLive.figures.bytes });
  // The staged copy of the live read is not needed again: free the disk before the next step.
  await rm(liveStaging, { recursive: true, force: true });
  const scan = await ctx.worker('bare driver scan', { kind: 'scan-live', database: live.database }, { env });
  // Nothing else reads this server (incremental works on a copy): free its memory now.
  await ctx.closeLive();
  result.steps.live_baseline = workerStep(`bare driver scan (find({}), batchSize ${ctx.model.settings.batchSize}, decoded)`, scan, 'documents', 'documents');
  result.comparisons.live = compare('etl docs/s ÷ bare driver scan docs/s', ratioOf(result.steps.live_etl, result.steps.live_baseline), '>= 0.8', (r) => r >= 0.8);
  if (result.steps.live_etl.count !== result.steps.live_baseline.count) {
    result.notes.push(`live: etl extracted ${result.steps.live_etl.count} documents, the bare scan read ${result.steps.live_baseline.count}`);
  }
};

const transform: Benchmark = async (ctx, result) => {
  const runId = await ctx.ensureDumpExtracted();
  const pinned = canPinCpu();
  const outcome = await ctx.worker('transform', { kind: 'transform', stagingDir: ctx.dumpStaging, runId }, { oneCore: true });
  ctx.dumpRunTransformed = true;
  result.steps.etl = workerStep(pinned ? 'etl transform, one core (taskset -c 0)' : 'etl transform (not pinned: no taskset)', outcome, 'documents', 'documents', {
    rows_written: outcome.figures.rows,
    rows_rejected: outcome.figures.rejected,
  });
  result.details.pinned_to_one_core = pinned;
  result.comparisons.goal = compare(
    `documents/s ÷ ${TRANSFORM_GOAL_DOCS_PER_S.toLocaleString('en-US')}`,
    result.steps.etl.per_second / TRANSFORM_GOAL_DOCS_PER_S,
    '>= 1',
    (r) => r >= 1,
  );
};

const load: Benchmark = async (ctx, result) => {
  const runId = await ctx.ensureDumpTransformed();
  const pg = await ctx.postgres();
  result.details.postgres = pg.external ? 'DATABASE_URL server' : `embedded PostgreSQL ${pg.majorVersion} (fsync off)`;
  const paths = runPaths(ctx.dumpStaging, runId);
  const manifest = await readManifest(paths);
  const staged = new Set(Object.keys(manifest.stages.transform?.tables ?? {}));
  const tables = ctx.model.loadOrder.filter((t) => staged.has(t));

  const loadUrl = await freshDatabase(pg, 'etl_bench_load', ctx.model);
  const etl = await ctx.worker('load into empty tables', { kind: 'load', stagingDir: ctx.dumpStaging, runId }, { env: { BENCH_DATABASE_URL: loadUrl } });
  result.steps.etl = workerStep('etl load, initial, into empty tables', etl, 'rows', 'rows', {
    inserted: etl.figures.inserted,
    rejected: etl.figures.rejected,
    nulled: etl.figures.nulled,
    duplicates: etl.figures.duplicates,
    tables: etl.figures.tables,
  });

  const copyUrl = await freshDatabase(pg, 'etl_bench_copy', ctx.model, { dropForeignKeys: true });
  ctx.log('  psql \\copy of the same CSVs…');
  const copy = await psqlCopy(copyUrl, stagedCopies(ctx.model, paths, manifest, tables), ctx.scratch('psql-copy'));
  ctx.log(`  psql \\copy: ${copy.processSeconds.toFixed(2)} s`);
  result.steps.baseline = stepFigures('psql \\copy, same CSVs, same empty indexed tables (no FKs)', copy, copy.processSeconds, copy.rows, 'rows', { tables: copy.tables });
  result.comparisons.ratio = compare('etl load seconds ÷ psql \\copy seconds', result.steps.etl.seconds / result.steps.baseline.seconds, '<= 1.5', (r) => r <= 1.5);
  result.notes.push(
    'psql \\copy baseline: the tables keep their primary keys and unique constraints (every index) but not their foreign keys, ' +
      'which a plain COPY cannot satisfy for rows whose reference is missing (load rejects them or sets them to NULL)',
  );
};

const incremental: Benchmark = async (ctx, result) => {
  const dump = await ctx.dump();
  const { scale, seed, cacheDir, workDir, mongoUrl } = ctx.options;
  const live = await openScratchLiveDataset(cacheDir, workDir, scale, seed, mongoUrl, ctx.log);
  result.details.live_server = live.server.description;
  result.details.scratch_copy_seconds = live.prepareSeconds;
  const changedDir = path.join(workDir, 'ferretdb-changed');
  let source: BenchMongoServer = live.server;
  try {
    const pg = await ctx.postgres();
    const pgUrl = await freshDatabase(pg, 'etl_bench_incremental', ctx.model);
    const staging = path.join(workDir, 'staging-incremental');
    const cycle = async (which: 'full' | 'incremental') => {
      const env = { BENCH_MONGODB_URL: source.url, BENCH_DATABASE_URL: pgUrl };
      const ex = await ctx.worker(`${which}: extract (live)`, { kind: 'extract', stagingDir: staging, source: 'live', database: live.database, full: false, usePostgres: true }, { env });
      const runId = String(ex.figures.run_id);
      const tr = await ctx.worker(`${which}: transform`, { kind: 'transform', stagingDir: staging, runId }, { env });
      const ld = await ctx.worker(`${which}: load`, { kind: 'load', stagingDir: staging, runId }, { env });
      result.steps[`${which}_extract`] = workerStep(`${which} run: extract (live, watermarks)`, ex, 'documents', 'documents', { read_in_full: ex.figures.full });
      result.steps[`${which}_transform`] = workerStep(`${which} run: transform`, tr, 'documents', 'documents');
      result.steps[`${which}_load`] = workerStep(`${which} run: load`, ld, 'rows', 'rows', {
        inserted: ld.figures.inserted,
        updated: ld.figures.updated,
        unchanged: ld.figures.unchanged,
        deleted: ld.figures.deleted,
      });
      // The run's staged files are not needed any more (keeps the disk use of a 1M bench down).
      await rm(runPaths(staging, runId).dir, { recursive: true, force: true });
      return round(ex.seconds + tr.seconds + ld.seconds);
    };
    const fullSeconds = await cycle('full');

    // The change. A MongoDB server is changed in place; FerretDB updates scan a collection for each
    // document they change, so there the changed source is written whole into a new FerretDB.
    const changeStarted = performance.now();
    let mode: 'in-place' | 'copy' = 'in-place';
    if (!source.external) {
      mode = 'copy';
      await source.stop();
      await rm(path.join(workDir, 'ferretdb-scratch'), { recursive: true, force: true });
      source = await startFerretDbOn(changedDir);
    }
    const change = await ctx.worker('change 1% of the source', { kind: 'mutate', dumpDir: dump.dumpDir, dumpDatabase: dump.database, database: live.database, mode }, { env: { BENCH_MONGODB_URL: source.url } });
    result.details.change = {
      how: mode === 'in-place' ? 'updated in place on the live server' : 'the changed source written whole into a new FerretDB (see README)',
      documents_changed: change.figures.changed,
      updated: change.figures.updated,
      inserted: change.figures.inserted,
      array_items_removed: change.figures.itemsRemoved,
      seconds: round((performance.now() - changeStarted) / 1000),
    };
    const incrementalSeconds = await cycle('incremental');
    result.details.full_seconds = fullSeconds;
    result.details.incremental_seconds = incrementalSeconds;
    result.comparisons.ratio = compare('incremental e+t+l seconds ÷ full e+t+l seconds', incrementalSeconds / fullSeconds, '< 0.05', (r) => r < 0.05);
    const picked = result.steps.incremental_extract!.count;
    const changed = Number(change.figures.changed);
    if (picked < changed) result.notes.push(`the incremental extract read ${picked} documents but ${changed} were changed`);
  } finally {
    await source.stop();
    if (source !== live.server) await live.server.stop();
    if (!mongoUrl) {
      await rm(path.join(workDir, 'ferretdb-scratch'), { recursive: true, force: true });
      await rm(changedDir, { recursive: true, force: true });
    }
  }
};

export const BENCHMARKS: Record<BenchName, Benchmark> = { extract, transform, load, incremental };
