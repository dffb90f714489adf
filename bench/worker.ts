// One measured step of the bench, run in a child process of its own so its peak RSS is its own:
//   node --import tsx bench/worker.ts <job.json> <result.json>
// The job names what to run; connection strings come from the environment (BENCH_DATABASE_URL,
// BENCH_MONGODB_URL), never from the job file. The result file gets the step's figures, the time
// the step itself took (module loading excluded) and process.resourceUsage().maxRSS.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { resolveConfig } from '../connect/config.ts';
import { runExtract } from '../extract/index.ts';
import { runLoad } from '../load/index.ts';
import { loadPipeline } from '../model/load-pipeline.ts';
import { runTransform } from '../transform/index.ts';
import { bareBsonRead, bareDriverScan } from './baselines.ts';
import { mutateSource, writeChangedCopy } from './mutate.ts';
import type { WorkerJob, WorkerResult } from './worker-protocol.ts';

async function run(job: WorkerJob): Promise<Record<string, unknown>> {
  const model = await loadPipeline(job.pipeline);
  // A folder without a .env: the bench decides every setting itself.
  const config = resolveConfig({
    flags: {
      databaseUrl: process.env.BENCH_DATABASE_URL,
      mongoUrl: process.env.BENCH_MONGODB_URL,
      mongoDatabase: 'database' in job ? job.database : undefined,
    },
    env: {},
    cwd: job.workDir,
  });
  const collections = model.collections.map((c) => c.name);
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  switch (job.kind) {
    case 'extract': {
      const report = await runExtract({
        model,
        stagingDir: job.stagingDir,
        source: job.source === 'dump' ? { kind: 'dump', path: job.dumpDir!, database: job.database } : { kind: 'mongodb', mongo: config.mongo, secrets: config.secrets },
        postgres: job.usePostgres ? config.postgres : undefined,
        secrets: config.secrets,
        full: job.full,
      });
      const seconds = elapsed();
      return { seconds, documents: report.documents, bytes: report.bytes, run_id: report.runId, full: report.full };
    }
    case 'transform': {
      const report = await runTransform({ model, stagingDir: job.stagingDir, runId: job.runId });
      const seconds = elapsed();
      const rows = report.tables.reduce((a, t) => a + t.rows, 0);
      const rejected = report.tables.reduce((a, t) => a + t.rejected, 0);
      return { seconds, documents: report.documentsRead, rows, rejected, stage_ms: Date.parse(report.endedAt) - Date.parse(report.startedAt), tables: report.tables.map((t) => t.table) };
    }
    case 'load': {
      const report = await runLoad({ model, stagingDir: job.stagingDir, runId: job.runId, postgres: config.postgres, secrets: config.secrets });
      const seconds = elapsed();
      const sum = (k: 'staged' | 'inserted' | 'updated' | 'unchanged' | 'deleted' | 'rejected' | 'nulled' | 'duplicates') => report.tables.reduce((a, t) => a + t[k], 0);
      return {
        seconds,
        rows: sum('staged'),
        inserted: sum('inserted'),
        updated: sum('updated'),
        unchanged: sum('unchanged'),
        deleted: sum('deleted'),
        rejected: sum('rejected'),
        nulled: sum('nulled'),
        duplicates: sum('duplicates'),
        tables: report.tables.length,
      };
    }
    case 'scan-live': {
      const figures = await bareDriverScan(config.mongo.url, job.database, collections, model.settings.batchSize);
      return { seconds: elapsed(), documents: figures.documents, per_collection: figures.perCollection };
    }
    case 'scan-dump': {
      const figures = await bareBsonRead(path.join(job.dumpDir, job.database), collections);
      return { seconds: elapsed(), documents: figures.documents, bytes: figures.bytes, per_collection: figures.perCollection };
    }
    case 'mutate': {
      const change = job.mode === 'copy' ? writeChangedCopy : mutateSource;
      const figures = await change(model, config.mongo.url, job.database, path.join(job.dumpDir, job.dumpDatabase));
      return { seconds: elapsed(), ...figures };
    }
  }
}

async function main(): Promise<void> {
  const [jobFile, resultFile] = process.argv.slice(2);
  if (!jobFile || !resultFile) throw new Error('usage: worker.ts <job.json> <result.json>');
  const job = JSON.parse(await readFile(jobFile, 'utf8')) as WorkerJob;
  let result: WorkerResult;
  try {
    const figures = await run(job);
    result = { ok: true, figures, maxRssKb: process.resourceUsage().maxRSS };
  } catch (error) {
    const e = error as { code?: string; message?: string; stack?: string };
    result = { ok: false, error: { code: e.code ?? 'internal', message: e.message ?? String(error), stack: e.stack ?? null }, maxRssKb: process.resourceUsage().maxRSS };
  }
  await writeFile(resultFile, JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench worker: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
