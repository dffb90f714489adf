// The named benchmarks. Each runs its measured steps in child processes (bench/worker.ts, psql)
// and compares them with the baseline and goal of the issue:
//   extract      live: etl extract vs a bare driver scan, docs/s ratio, goal ≥ 0.8
//                dump: etl extract vs a bare BSON file read, time ratio, goal ≤ 2
//   transform    documents/s on one core (taskset -c 0), goal ≥ 200,000; then every core (worker
//                threads), whose staged files must be the one-core run's, byte for byte
//   load         initial load into empty tables vs psql \copy of the same files, time ratio, goal ≤ 1.3;
//                the whole dump path (extract + transform + load vs bare BSON read + psql \copy), goal ≤ 2
//   incremental  (incremental.ts) extract+transform+load after 1 % of the source changed vs the full
//                run, goal < 5 %; its load vs the same merge written by hand, goal ≤ 1.5; state tables
//   diff         etl diff --deep vs a bare driver scan + a sequential read of the tables, goal ≤ 1.2
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readManifest } from '../staging/manifest.ts';
import { runPaths } from '../staging/run-folder.ts';
import type { BenchContext } from './context.ts';
import { round } from './dataset.ts';
import { diff } from './diff-bench.ts';
import { compare, stepFigures, workerStep, type Comparison, type StepFigures } from './figures.ts';
import { canPinCpu } from './child.ts';
import { incremental } from './incremental.ts';
import { freshDatabase, stateTableSizes } from './postgres.ts';
import { psqlCopy, stagedCopies } from './psql-copy.ts';

export const BENCH_NAMES = ['extract', 'transform', 'load', 'incremental', 'diff'] as const;
export type BenchName = (typeof BENCH_NAMES)[number];

export const TRANSFORM_GOAL_DOCS_PER_S = 200_000;

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
  ctx.path.extract = result.steps.dump_etl;
  ctx.path.bareRead = result.steps.dump_baseline;
  result.comparisons.dump = compare('etl extract seconds ÷ bare BSON read seconds', result.steps.dump_etl.seconds / result.steps.dump_baseline.seconds, '<= 2', (r) => r <= 2);
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
  const one = await ctx.worker('transform, one core', { kind: 'transform', stagingDir: ctx.dumpStaging, runId, threads: 1 }, { oneCore: true });
  result.steps.etl = workerStep(pinned ? 'etl transform, one core (taskset -c 0)' : 'etl transform, one thread (not pinned: no taskset)', one, 'documents', 'documents', {
    rows_written: one.figures.rows,
    rows_rejected: one.figures.rejected,
  });
  const all = await ctx.worker('transform, every core', { kind: 'transform', stagingDir: ctx.dumpStaging, runId });
  ctx.dumpRunTransformed = true;
  const threads = Number(all.figures.threads);
  result.steps.parallel = workerStep(`etl transform, ${threads} thread${threads > 1 ? 's' : ''} (${os.availableParallelism()} cores)`, all, 'documents', 'documents', { threads });
  ctx.path.transform = result.steps.parallel;
  const same = sameFiles(one.figures.files, all.figures.files);
  result.details.pinned_to_one_core = pinned;
  result.details.staged_files_identical = same;
  // What the scope files add to the staged output (their time is inside the transform's).
  for (const k of ['staged_bytes', 'keys_bytes', 'keys_lines', 'contrib_bytes', 'contrib_lines']) result.details[k] = one.figures[k];
  if (!same) result.notes.push('the staged files of the one-thread and the parallel transform differ (sha256): a bug');
  result.comparisons.goal = compare(
    `one-core documents/s ÷ ${TRANSFORM_GOAL_DOCS_PER_S.toLocaleString('en-US')}`,
    result.steps.etl.per_second / TRANSFORM_GOAL_DOCS_PER_S,
    '>= 1',
    (r) => r >= 1,
  );
  result.comparisons.cores = compare(`${threads}-thread documents/s ÷ one-core documents/s`, result.steps.parallel.per_second / result.steps.etl.per_second, null, null);
};

/** Both runs staged the same files with the same sha256. */
function sameFiles(a: unknown, b: unknown): boolean {
  const x = a as Record<string, string>;
  const y = b as Record<string, string>;
  const keys = Object.keys(x).sort();
  return keys.length > 0 && keys.join() === Object.keys(y).sort().join() && keys.every((k) => x[k] === y[k]);
}

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
  ctx.loadedUrl = loadUrl;
  result.steps.etl = workerStep('etl load, initial, into empty tables', etl, 'rows', 'rows', {
    inserted: etl.figures.inserted,
    rejected: etl.figures.rejected,
    nulled: etl.figures.nulled,
    duplicates: etl.figures.duplicates,
    tables: etl.figures.tables,
  });
  result.details.state_tables = await stateTableSizes(loadUrl);

  const copyUrl = await freshDatabase(pg, 'etl_bench_copy', ctx.model, { dropForeignKeys: true });
  ctx.log('  psql \\copy of the same files…');
  const copy = await psqlCopy(copyUrl, stagedCopies(ctx.model, paths, manifest, tables), ctx.scratch('psql-copy'));
  ctx.log(`  psql \\copy: ${copy.processSeconds.toFixed(2)} s`);
  result.steps.baseline = stepFigures('psql \\copy, same files, same empty indexed tables (no FKs)', copy, copy.processSeconds, copy.rows, 'rows', { tables: copy.tables });
  result.comparisons.ratio = compare('etl load seconds ÷ psql \\copy seconds', result.steps.etl.seconds / result.steps.baseline.seconds, '<= 1.3', (r) => r <= 1.3);
  result.notes.push(
    'psql \\copy baseline: the tables keep their primary keys and unique constraints (every index) but not their foreign keys, ' +
      'which a plain COPY cannot satisfy for rows whose reference is missing (load rejects them or sets them to NULL); ' +
      "a dedupe table's contributions file goes into its contributions table, as load reads it",
  );
  ctx.path.load = result.steps.etl;
  ctx.path.copy = result.steps.baseline;
  await wholePath(ctx, result);
};

/** The whole dump path: extract + transform (every core) + load against bare BSON read + psql \copy. */
async function wholePath(ctx: BenchContext, result: BenchmarkResult): Promise<void> {
  if (!ctx.path.bareRead) {
    const dump = await ctx.dump();
    const bare = await ctx.worker('bare BSON read', { kind: 'scan-dump', dumpDir: dump.dumpDir, database: dump.database });
    ctx.path.bareRead = workerStep('bare BSON read of the .bson files', bare, 'documents', 'documents');
    result.steps.dump_baseline = ctx.path.bareRead;
  }
  const { extract, transform, load, bareRead, copy } = ctx.path;
  if (!extract || !transform || !load || !bareRead || !copy) return;
  const etlSeconds = extract.seconds + transform.seconds + load.seconds;
  const limitSeconds = bareRead.seconds + copy.seconds;
  const cpu = [extract, transform, load].map((s) => s.cpu_seconds ?? 0).reduce((a, b) => a + b, 0);
  result.details.whole_path = { etl_seconds: round(etlSeconds), etl_cpu_seconds: round(cpu), extract: extract.seconds, transform: transform.seconds, load: load.seconds, bare_read: bareRead.seconds, psql_copy: copy.seconds, limit_seconds: round(limitSeconds) };
  result.comparisons.path = compare('dump path: (extract + transform + load) seconds ÷ (bare BSON read + psql \\copy) seconds', etlSeconds / limitSeconds, '<= 2', (r) => r <= 2);
}

export const BENCHMARKS: Record<BenchName, Benchmark> = { extract, transform, load, incremental, diff };
