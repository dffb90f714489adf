// The diff benchmark: `etl diff --deep` of the live source against the database the load benchmark
// filled (or a load made for it), against the least work that reads the same data: a bare driver
// scan of the collections plus a sequential read of the tables (COPY … TO STDOUT), goal ≤ 1.2.
// Then `etl run --full` (live) into a fresh database, against the same bare scan, goal ≤ 1.2: the
// live whole run of issue 17 (goal 5). It runs last so the diff's figures are taken as before; the
// server's pages are as warm for it as for the scan (the diff read them all first).
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Benchmark } from './benchmarks.ts';
import { compare, workerStep } from './figures.ts';
import { freshDatabase } from './postgres.ts';

export const diff: Benchmark = async (ctx, result) => {
  let url = ctx.loadedUrl;
  if (!url) {
    const runId = await ctx.ensureDumpTransformed();
    url = await freshDatabase(await ctx.postgres(), 'etl_bench_load', ctx.model);
    const loaded = await ctx.worker('prepare: load', { kind: 'load', stagingDir: ctx.dumpStaging, runId }, { env: { BENCH_DATABASE_URL: url } });
    ctx.setup.load = workerStep('load (preparation)', loaded, 'rows', 'rows');
    ctx.loadedUrl = url;
  }
  const live = await ctx.liveDataset();
  result.details.live_server = live.server.description;
  const env = { BENCH_MONGODB_URL: live.server.url, BENCH_DATABASE_URL: url };
  try {
    const etl = await ctx.worker('etl diff --deep', { kind: 'diff', database: live.database }, { env });
    result.steps.etl = workerStep('etl diff --deep, live server vs PostgreSQL', etl, 'documents', 'documents', { rows: etl.figures.rows, identical: etl.figures.identical });
    result.details.identical = etl.figures.identical;
    result.details.totals = etl.figures.totals;
    if (etl.figures.identical !== true) result.notes.push('diff found differences between the source and the loaded database');
    const scan = await ctx.worker('bare driver scan', { kind: 'scan-live', database: live.database }, { env });
    result.steps.scan = workerStep(`bare driver scan (find({}), batchSize ${ctx.model.settings.batchSize}, decoded)`, scan, 'documents', 'documents');
    const read = await ctx.worker('sequential read of the tables', { kind: 'scan-tables' }, { env });
    result.steps.read = workerStep('sequential read of every table (COPY … TO STDOUT)', read, 'rows', 'rows', { bytes: read.figures.bytes });
    const baseline = result.steps.scan.seconds + result.steps.read.seconds;
    result.details.baseline_seconds = Math.round(baseline * 100) / 100;
    result.comparisons.ratio = compare('etl diff --deep seconds ÷ (bare scan + table read) seconds', result.steps.etl.seconds / baseline, '<= 1.2', (r) => r <= 1.2);
    await liveRun(ctx, result, live.database, env.BENCH_MONGODB_URL);
  } finally {
    await ctx.closeLive();
  }
};

/** `etl run --full` from the live server into a fresh database, against the bare scan. */
async function liveRun(ctx: Parameters<Benchmark>[0], result: Parameters<Benchmark>[1], database: string, mongoUrl: string): Promise<void> {
  const url = await freshDatabase(await ctx.postgres(), 'etl_bench_run', ctx.model);
  const stagingDir = path.join(ctx.options.workDir, 'staging-run');
  try {
    const run = await ctx.worker('etl run (live, --full)', { kind: 'run', stagingDir, database }, { env: { BENCH_MONGODB_URL: mongoUrl, BENCH_DATABASE_URL: url } });
    result.steps.run = workerStep('etl run --full, live server → PostgreSQL (stages overlapped)', run, 'documents', 'documents', { rows: run.figures.rows, stage_seconds: run.figures.stage_seconds });
  } finally {
    await rm(stagingDir, { recursive: true, force: true });
  }
  const scan = result.steps.scan!;
  result.comparisons.run = compare('etl run (live) seconds ÷ bare scan seconds', result.steps.run.seconds / scan.seconds, '<= 1.2', (r) => r <= 1.2);
}
