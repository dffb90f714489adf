// The incremental benchmark: a full run (extract from the live server with watermarks, transform,
// load into a fresh database), 1 % of the source changed, then the same three steps again.
// Compared: the incremental run with the full one (goal < 5 %), and its load with the same merge
// written by hand (hand-merge.ts) on a copy of the database as the full run left it (goal ≤ 1.5).
// Reported: what the state tables (etl_pending, etl_contrib_…) hold and weigh after each run.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { readManifest } from '../staging/manifest.ts';
import { runPaths } from '../staging/run-folder.ts';
import type { Benchmark } from './benchmarks.ts';
import type { BenchContext } from './context.ts';
import { openScratchLiveDataset, round } from './dataset.ts';
import { compare, stepFigures, workerStep } from './figures.ts';
import { handMergeScript } from './hand-merge.ts';
import { startFerretDbOn, type BenchMongoServer } from './mongo-server.ts';
import { copyDatabase, freshDatabase, stateTableSizes } from './postgres.ts';
import { psqlScript } from './psql-copy.ts';

export const incremental: Benchmark = async (ctx, result) => {
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
    let mergeUrl = '';
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
      result.details[`state_tables_after_${which}`] = await stateTableSizes(pgUrl);
      if (which === 'full') mergeUrl = await copyDatabase(pg, pgUrl, 'etl_bench_hand_merge');
      else await handMerge(ctx, result, mergeUrl, staging, runId);
      // The run's staged files are not needed any more (keeps the disk use of a 1M bench down), unless --keep.
      if (!ctx.options.keep) await rm(runPaths(staging, runId).dir, { recursive: true, force: true });
      return round(ex.seconds + tr.seconds + ld.seconds);
    };
    const fullSeconds = await cycle('full');
    source = await changeSource(ctx, result, source, dump, live.database, changedDir);
    const incrementalSeconds = await cycle('incremental');
    result.details.full_seconds = fullSeconds;
    result.details.incremental_seconds = incrementalSeconds;
    result.comparisons.ratio = compare('incremental e+t+l seconds ÷ full e+t+l seconds', incrementalSeconds / fullSeconds, '< 0.05', (r) => r < 0.05);
    const picked = result.steps.incremental_extract!.count;
    const changed = Number((result.details.change as { documents_changed: unknown }).documents_changed);
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

/**
 * The change. A MongoDB server is changed in place; FerretDB updates scan a collection for each
 * document they change, so there the changed source is written whole into a new FerretDB.
 */
async function changeSource(
  ctx: BenchContext,
  result: Parameters<Benchmark>[1],
  source: BenchMongoServer,
  dump: { dumpDir: string; database: string },
  database: string,
  changedDir: string,
): Promise<BenchMongoServer> {
  const changeStarted = performance.now();
  let mode: 'in-place' | 'copy' = 'in-place';
  let server = source;
  if (!source.external) {
    mode = 'copy';
    await source.stop();
    await rm(path.join(ctx.options.workDir, 'ferretdb-scratch'), { recursive: true, force: true });
    server = await startFerretDbOn(changedDir);
  }
  const change = await ctx.worker('change 1% of the source', { kind: 'mutate', dumpDir: dump.dumpDir, dumpDatabase: dump.database, database, mode }, { env: { BENCH_MONGODB_URL: server.url } });
  result.details.change = {
    how: mode === 'in-place' ? 'updated in place on the live server' : 'the changed source written whole into a new FerretDB (see README)',
    documents_changed: change.figures.changed,
    updated: change.figures.updated,
    inserted: change.figures.inserted,
    array_items_removed: change.figures.itemsRemoved,
    seconds: round((performance.now() - changeStarted) / 1000),
  };
  return server;
}

/** The incremental run's staged files merged by hand into the copy of the database the full run left. */
async function handMerge(ctx: BenchContext, result: Parameters<Benchmark>[1], url: string, staging: string, runId: string): Promise<void> {
  const paths = runPaths(staging, runId);
  const script = await handMergeScript(ctx.model, paths, await readManifest(paths));
  ctx.log('  incremental: the same merge written by hand (psql)…');
  const child = await psqlScript(url, script, ctx.scratch('hand-merge'));
  ctx.log(`  incremental: hand-written merge ${child.processSeconds.toFixed(2)} s`);
  const load = result.steps.incremental_load!;
  result.steps.incremental_hand_merge = stepFigures('the same merge written by hand (psql, one transaction)', child, child.processSeconds, load.count, 'rows');
  result.comparisons.merge = compare('incremental load seconds ÷ hand-written merge seconds', load.seconds / child.processSeconds, '<= 1.5', (r) => r <= 1.5);
}
