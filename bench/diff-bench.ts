// The diff benchmark: `etl diff --deep` of the live source against the database the load benchmark
// filled (or a load made for it), against the least work that reads the same data: a bare driver
// scan of the collections plus a sequential read of the tables (COPY … TO STDOUT), goal ≤ 1.2.
// Then `etl run --full` (live) into a fresh database, against the same bare scan, goal ≤ 1.2: the
// live whole run of issue 17 (goal 5). It runs last so the diff's figures are taken as before; the
// server's pages are as warm for it as for the scan (the diff read them all first).
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Benchmark } from './benchmarks.ts';
import { compare, workerStep, type StepFigures } from './figures.ts';
import type { WorkerOutcome } from './child.ts';
import type { JobBody } from './context.ts';
import { freshDatabase } from './postgres.ts';
import { postmasterPid, withServerCpu } from './server-cpu.ts';

type Env = Record<string, string>;
type Pids = { ferretdb: number | null; postgres: number | null };

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
  // The servers' CPU beside etl's: on 2 cores they share the cores etl uses.
  const pids: Pids = { ferretdb: live.server.pid, postgres: postmasterPid((await ctx.postgres()).dir) };
  try {
    const etl = await measured(ctx, pids, 'etl diff --deep', { kind: 'diff', database: live.database }, env);
    result.steps.etl = workerStep('etl diff --deep, live server vs PostgreSQL', etl.outcome, 'documents', 'documents', { rows: etl.outcome.figures.rows, identical: etl.outcome.figures.identical, ...etl.servers });
    result.details.identical = etl.outcome.figures.identical;
    result.details.totals = etl.outcome.figures.totals;
    if (etl.outcome.figures.identical !== true) result.notes.push('diff found differences between the source and the loaded database');
    const scan = await measured(ctx, pids, 'bare driver scan', { kind: 'scan-live', database: live.database }, env);
    result.steps.scan = workerStep(`bare driver scan (find({}), batchSize ${ctx.model.settings.batchSize}, decoded)`, scan.outcome, 'documents', 'documents', scan.servers);
    const read = await measured(ctx, pids, 'sequential read of the tables', { kind: 'scan-tables' }, env);
    result.steps.read = workerStep('sequential read of every table (COPY … TO STDOUT)', read.outcome, 'rows', 'rows', { bytes: read.outcome.figures.bytes, ...read.servers });
    const baseline = result.steps.scan.seconds + result.steps.read.seconds;
    result.details.baseline_seconds = Math.round(baseline * 100) / 100;
    result.notes.push(cpuNote('etl diff --deep', result.steps.etl), cpuNote('bare scan', result.steps.scan));
    result.comparisons.ratio = compare('etl diff --deep seconds ÷ (bare scan + table read) seconds', result.steps.etl.seconds / baseline, '<= 1.2', (r) => r <= 1.2);
    await liveRun(ctx, result, pids, live.database, env.BENCH_MONGODB_URL);
  } finally {
    await ctx.closeLive();
  }
};

/** A worker step, with the CPU FerretDB and PostgreSQL spent meanwhile (step details). */
async function measured(ctx: Parameters<Benchmark>[0], pids: Pids, step: string, body: JobBody, env: Env): Promise<{ outcome: WorkerOutcome; servers: Record<string, number | null> }> {
  const { result: outcome, ...servers } = await withServerCpu(pids, () => ctx.worker(step, body, { env }));
  return { outcome, servers };
}

/** `etl run --full` from the live server into a fresh database, against the bare scan. */
async function liveRun(ctx: Parameters<Benchmark>[0], result: Parameters<Benchmark>[1], pids: Pids, database: string, mongoUrl: string): Promise<void> {
  const url = await freshDatabase(await ctx.postgres(), 'etl_bench_run', ctx.model);
  const stagingDir = path.join(ctx.options.workDir, 'staging-run');
  try {
    const run = await measured(ctx, pids, 'etl run (live, --full)', { kind: 'run', stagingDir, database }, { BENCH_MONGODB_URL: mongoUrl, BENCH_DATABASE_URL: url });
    const f = run.outcome.figures;
    result.steps.run = workerStep('etl run --full, live server → PostgreSQL (stages overlapped)', run.outcome, 'documents', 'documents', { rows: f.rows, stage_seconds: f.stage_seconds, ...run.servers });
  } finally {
    await rm(stagingDir, { recursive: true, force: true });
  }
  result.notes.push(cpuNote('etl run', result.steps.run));
  const scan = result.steps.scan!;
  result.comparisons.run = compare('etl run (live) seconds ÷ bare scan seconds', result.steps.run.seconds / scan.seconds, '<= 1.2', (r) => r <= 1.2);
}

/** `etl run: 14.11 s wall; CPU s: etl 3.40, FerretDB 9.80, PostgreSQL 1.90 (2 cores)` */
function cpuNote(what: string, step: StepFigures): string {
  const d = step.details ?? {};
  const cpu = (v: unknown) => (typeof v === 'number' ? v.toFixed(2) : '–');
  return `${what}: ${step.seconds.toFixed(2)} s wall; CPU s: etl ${cpu(step.cpu_seconds)}, FerretDB ${cpu(d.ferretdb_cpu_seconds)}, PostgreSQL ${cpu(d.postgres_cpu_seconds)}`;
}
