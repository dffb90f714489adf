// `npm run bench [-- <names…>] [--scale N] [--seed S] [--json FILE] [--cache-dir DIR] [--keep]`
// Named benchmarks over a generated dataset cached under bench/.cache/<scale>-<seed>/; each measured
// step runs in a child process. Prints a table on stdout (progress on stderr) and writes the result
// document to --json FILE (default bench/results/<timestamp>.json). See bench/README.md.
import { rmSync } from 'node:fs';
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { loadPipeline } from '../model/load-pipeline.ts';
import { MAX_SCALE } from '../sample/generate.ts';
import { BENCH_NAMES, BENCHMARKS, type BenchmarkResult, type BenchName } from './benchmarks.ts';
import { hasGnuTime, REPO_ROOT } from './child.ts';
import { BenchContext } from './context.ts';
import { cacheDirFor } from './dataset.ts';
import { gitInfo, machineInfo } from './machine.ts';
import { formatResults } from './report.ts';

const DEFAULT_SCALE = 1_000_000;
const DEFAULT_SEED = 1;

const usage = `usage: npm run bench -- [extract|transform|load|incremental|diff|all]… [--scale N] [--seed S]
                       [--json FILE] [--cache-dir DIR] [--keep]

  names            benchmarks to run (default: all), always in the order extract, transform, load,
                   incremental, diff
  --scale N        documents in the generated dataset (default ${DEFAULT_SCALE.toLocaleString('en-US')}; 500 to 1,000,000,000)
  --seed S         generator seed (default ${DEFAULT_SEED}; 0 to 4,294,967,295)
  --json FILE      where the result document goes (default bench/results/<timestamp>.json)
  --cache-dir DIR  where datasets are kept (default bench/.cache)
  --keep           keep the staged runs of this bench (default: removed at the end)
environment: DATABASE_URL (else a throwaway embedded PostgreSQL), MONGODB_URL (else FerretDB)
exit codes: 0 every benchmark ran (goals met or not), 1 one failed, 2 a bad argument
`;

class UsageProblem extends Error {}

/**
 * `npm run bench` runs in the package root whatever folder it is typed in, and names that folder in
 * INIT_CWD: relative paths the user gives are meant from there.
 */
const typedIn = process.env.INIT_CWD ?? process.cwd();
const fromWhereTyped = (file: string) => path.resolve(typedIn, file);
/** A path as the user can use it where they typed: relative below that folder, else absolute. */
function shownFromWhereTyped(file: string): string {
  const relative = path.relative(typedIn, file);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

const MIN_BENCH_SCALE = 500;
/** The generator's seed is a 32-bit integer (sample/generate.ts). */
const MAX_SEED = 0xffffffff;

/** A value the generator would refuse, refused here: before a dataset folder is made, exit 2. */
function within(flag: string, value: number, min: number, max: number, whyMin = ''): void {
  const n = (x: number) => x.toLocaleString('en-US');
  if (value < min || value > max) throw new UsageProblem(`${flag} must be from ${n(min)} to ${n(max)}${value < min ? whyMin : ''}, got ${n(value)}`);
}

function parseCount(flag: string, text: string): number {
  const clean = text.replace(/[_,]/g, '');
  if (!/^\d+$/.test(clean)) throw new UsageProblem(`${flag} must be a whole number, got "${text}"`);
  return Number(clean);
}

function parse(argv: readonly string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        scale: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'string' },
        'cache-dir': { type: 'string' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageProblem((error as Error).message);
  }
  const { values, positionals } = parsed;
  const wanted = new Set<BenchName>();
  for (const name of positionals.length ? positionals : ['all']) {
    if (name === 'all') BENCH_NAMES.forEach((n) => wanted.add(n));
    else if ((BENCH_NAMES as readonly string[]).includes(name)) wanted.add(name as BenchName);
    else throw new UsageProblem(`unknown benchmark "${name}" (known: ${BENCH_NAMES.join(', ')}, all)`);
  }
  const scale = values.scale !== undefined ? parseCount('--scale', values.scale) : DEFAULT_SCALE;
  within('--scale', scale, MIN_BENCH_SCALE, MAX_SCALE, ' (every collection gets its floor of documents)');
  const seed = values.seed !== undefined ? parseCount('--seed', values.seed) : DEFAULT_SEED;
  within('--seed', seed, 0, MAX_SEED);
  return {
    help: values.help === true,
    names: BENCH_NAMES.filter((n) => wanted.has(n)),
    scale,
    seed,
    json: values.json,
    cacheRoot: values['cache-dir'] !== undefined ? fromWhereTyped(values['cache-dir']) : path.join(REPO_ROOT, 'bench', '.cache'),
    keep: values.keep === true,
  };
}

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

async function main(): Promise<number> {
  let args;
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageProblem)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${usage}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(usage);
    return 0;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const startedAt = new Date();
  const cacheDir = cacheDirFor(args.cacheRoot, args.scale, args.seed);
  const workDir = path.join(cacheDir, `work-${stamp(startedAt)}-${process.pid}`);
  const jsonFile = args.json !== undefined ? fromWhereTyped(args.json) : path.join(REPO_ROOT, 'bench', 'results', `${stamp(startedAt)}.json`);
  // Ctrl-C: the test harness's hooks stop the embedded PostgreSQL and exit at once, so the staged
  // runs (gigabytes at 1M) are removed from an exit hook; each finished benchmark is already in the
  // result file.
  const removeWorkDir = () => {
    if (!args.keep) rmSync(workDir, { recursive: true, force: true });
  };
  process.once('exit', removeWorkDir);
  // Every step reads the same pipeline.yaml, even if the working tree's copy is edited meanwhile
  // (a stage refuses a run whose pipeline changed since its extract).
  await mkdir(workDir, { recursive: true });
  const pipelineFile = path.join(workDir, 'pipeline.yaml');
  await copyFile(path.join(REPO_ROOT, 'pipeline.yaml'), pipelineFile);
  const model = await loadPipeline(pipelineFile);
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const ctx = new BenchContext(model, {
    scale: args.scale,
    seed: args.seed,
    pipelineFile,
    cacheDir,
    workDir,
    mongoUrl: process.env.MONGODB_URL || undefined,
    keep: args.keep,
    log,
    signal: controller.signal,
  });
  const [git, machine] = [await gitInfo(), machineInfo()];
  log(`etl bench: ${args.names.join(', ')} at scale ${args.scale.toLocaleString('en-US')} (seed ${args.seed}); ${machine.cores} cores, ${machine.memory_gib} GiB`);
  const results: BenchmarkResult[] = [];
  const dataset: Record<string, unknown> = {};
  const writeResult = async (complete: boolean) => {
    const endedAt = new Date();
    const live = results.find((r) => r.details.live_load_seconds !== undefined)?.details;
    if (live) dataset.live_load_seconds = live.live_load_seconds;
    const document = {
      format: 1,
      tool: 'etl bench',
      /** false while the bench runs (or when it was interrupted): the benchmarks listed are those finished. */
      complete,
      started_at: startedAt.toISOString(),
      ended_at: endedAt.toISOString(),
      seconds: Math.round((endedAt.getTime() - startedAt.getTime()) / 100) / 10,
      git,
      machine,
      load_average_at_end: os.loadavg().map((l) => Math.round(l * 100) / 100),
      peak_rss_source: hasGnuTime() ? 'GNU time -v (Maximum resident set size) of each child' : 'process.resourceUsage().maxRSS of each worker',
      pipeline_sha256: model.sha256,
      scale: args.scale,
      seed: args.seed,
      benchmarks_requested: args.names,
      dataset,
      setup: ctx.setup,
      benchmarks: Object.fromEntries(results.map((r) => [r.name, r])),
    };
    await mkdir(path.dirname(jsonFile), { recursive: true });
    await writeFile(`${jsonFile}.partial`, `${JSON.stringify(document, null, 2)}\n`);
    await rename(`${jsonFile}.partial`, jsonFile);
  };
  try {
    const dump = await ctx.dump();
    Object.assign(dataset, {
      documents: dump.documents,
      dump_bytes: dump.bytes,
      dump_cached: dump.cached,
      generate_seconds: dump.generateSeconds,
      per_collection: dump.plan,
    });
    for (const name of args.names) {
      log(`\n[${name}]`);
      const result: BenchmarkResult = { name, status: 'done', steps: {}, comparisons: {}, notes: [], details: {} };
      results.push(result);
      try {
        await BENCHMARKS[name](ctx, result);
      } catch (error) {
        result.status = 'failed';
        result.error = (error as Error)?.message ?? String(error);
        log(`  ${name} failed: ${result.error}`);
      }
      await writeResult(false);
      if (controller.signal.aborted) break;
    }
  } finally {
    await ctx.close();
    removeWorkDir();
    if (args.keep) log(`staged runs kept in ${workDir}`);
  }
  await writeResult(true);

  process.stdout.write(`\netl bench — scale ${args.scale.toLocaleString('en-US')}, seed ${args.seed}, commit ${git.commit?.slice(0, 12) ?? 'unknown'}${git.dirty ? ' (dirty)' : ''}, ${machine.cores} cores, ${machine.memory_gib} GiB\n`);
  process.stdout.write(formatResults(results));
  process.stdout.write(`\nresults: ${shownFromWhereTyped(jsonFile)}\n`);
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
