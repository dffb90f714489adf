// One measured step of the bench, run in a child process of its own so its peak RSS is its own:
//   node --import tsx bench/worker.ts <job.json> <result.json>
// The job names what to run; connection strings come from the environment (BENCH_DATABASE_URL,
// BENCH_MONGODB_URL), never from the job file. The result file gets the step's figures, the time
// the step itself took (module loading excluded) and process.resourceUsage().maxRSS.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { Writable } from 'node:stream';
import { resolveConfig } from '../connect/config.ts';
import { runExtract } from '../extract/index.ts';
import { runLoad } from '../load/index.ts';
import { loadPipeline } from '../model/load-pipeline.ts';
import { runTransform } from '../transform/index.ts';
import { runDiff } from '../inspect/diff.ts';
import type { TransformTableReport } from '../transform/index.ts';
import { bareBsonRead, bareDriverScan, scanTables } from './baselines.ts';
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
      const report = await runTransform({ model, stagingDir: job.stagingDir, runId: job.runId, threads: job.threads });
      const seconds = elapsed();
      const rows = report.tables.reduce((a, t) => a + t.rows, 0);
      const rejected = report.tables.reduce((a, t) => a + t.rejected, 0);
      // What each staged file is (sha256 and bytes): one thread and several must write the same.
      const files: Record<string, string> = {};
      let stagedBytes = 0;
      for (const t of report.tables) {
        for (const f of [t.csv, t.keys, t.rejects, t.contrib]) {
          if (!f) continue;
          files[f.file] = f.sha256;
          stagedBytes += f.bytes;
        }
      }
      const scope = stagedCost(report.tables);
      return { seconds, documents: report.documentsRead, rows, rejected, threads: report.threads, staged_bytes: stagedBytes, ...scope, stage_ms: Date.parse(report.endedAt) - Date.parse(report.startedAt), tables: report.tables.map((t) => t.table), files };
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
    case 'diff': {
      const report = await runDiff({ model, mongo: config.mongo, postgres: config.postgres, secrets: config.secrets, deep: true, sampleSize: 3 });
      const seconds = elapsed();
      const documents = report.tables.reduce((a, t) => a + t.mongo.documents, 0);
      const rows = report.tables.reduce((a, t) => a + (t.postgres.rows ?? 0), 0);
      return { seconds, documents, rows, identical: report.identical, totals: report.totals };
    }
    case 'run': {
      const report = await etlRun(job);
      return { seconds: elapsed(), ...report };
    }
    case 'scan-tables': {
      const figures = await scanTables(process.env.BENCH_DATABASE_URL!, model.loadOrder);
      return { seconds: elapsed(), rows: figures.rows, bytes: figures.bytes };
    }
    case 'mutate': {
      const change = job.mode === 'copy' ? writeChangedCopy : mutateSource;
      const figures = await change(model, config.mongo.url, job.database, path.join(job.dumpDir, job.dumpDatabase));
      return { seconds: elapsed(), ...figures };
    }
  }
}

/**
 * `etl run --full --json` as the command line runs it (bin/commands/run.ts: a collection transformed
 * while the next is extracted, a table loaded once its files are complete), in this process so its
 * CPU time is measured with it.
 */
async function etlRun(job: Extract<WorkerJob, { kind: 'run' }>): Promise<Record<string, unknown>> {
  const { default: command } = await import('../bin/commands/run.ts');
  const out: Buffer[] = [];
  const stdout = new Writable({ write: (chunk: Buffer, _enc, done) => (out.push(chunk), done()) });
  const argv = ['--full', '--json', '--source', process.env.BENCH_MONGODB_URL!, '--mongo-db', job.database];
  argv.push('--database-url', process.env.BENCH_DATABASE_URL!, '--staging', job.stagingDir, '--pipeline', job.pipeline);
  const code = await command.run({ argv, env: {}, cwd: job.workDir, stdout, stderr: new Writable({ write: (_c, _e, done) => done() }), signal: new AbortController().signal, verbosity: 'quiet' });
  type Span = { startedAt: string; endedAt: string };
  const report = JSON.parse(Buffer.concat(out).toString('utf8')) as { extract: Span & { documents: number }; transform: Span; load: Span & { tables: { staged: number }[] } };
  if (code !== 0) throw new Error(`etl run exited ${code}`);
  // Each stage's own span (the three overlap: load starts with the run and commits at the end).
  const span = (s: Span) => (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000;
  const stages = { extract: span(report.extract), transform: span(report.transform), load: span(report.load) };
  return { documents: report.extract.documents, rows: report.load.tables.reduce((a, t) => a + t.staged, 0), stage_seconds: stages };
}

/** What the scope files cost: keys files (every table) and contributions files (dedupe tables). */
function stagedCost(tables: readonly TransformTableReport[]): Record<string, number> {
  let keysBytes = 0;
  let keysLines = 0;
  let contribBytes = 0;
  let contribLines = 0;
  for (const t of tables) {
    keysBytes += t.keys?.bytes ?? 0;
    keysLines += t.keys?.records ?? 0;
    contribBytes += t.contrib?.bytes ?? 0;
    contribLines += t.contrib?.records ?? 0;
  }
  return { keys_bytes: keysBytes, keys_lines: keysLines, contrib_bytes: contribBytes, contrib_lines: contribLines };
}

async function main(): Promise<void> {
  const [jobFile, resultFile] = process.argv.slice(2);
  if (!jobFile || !resultFile) throw new Error('usage: worker.ts <job.json> <result.json>');
  const job = JSON.parse(await readFile(jobFile, 'utf8')) as WorkerJob;
  let result: WorkerResult;
  try {
    // CPU of the step itself (every thread of the process), like `seconds` without the start-up.
    const before = process.cpuUsage();
    const figures = await run(job);
    const cpu = process.cpuUsage(before);
    result = { ok: true, figures, maxRssKb: process.resourceUsage().maxRSS, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
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
