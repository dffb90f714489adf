// Runs one measured step in a child process and reads back its figures and its peak RSS.
// Peak RSS comes from GNU time (`/usr/bin/time -v -o FILE`, "Maximum resident set size") when it is
// installed, else from the worker's own process.resourceUsage().maxRSS (psql then has none).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import type { WorkerJob, WorkerResult } from './worker-protocol.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const GNU_TIME = '/usr/bin/time';
const TASKSET = '/usr/bin/taskset';

export interface ChildFigures {
  /** Wall time of the whole child process (start-up and module loading included). */
  readonly processSeconds: number;
  /** Peak resident set size, MiB. */
  readonly peakRssMiB: number | null;
  readonly rssSource: 'gnu-time' | 'resourceUsage' | null;
  /** User + system CPU seconds of the child (GNU time only). */
  readonly cpuSeconds: number | null;
  readonly exitCode: number;
  /** The last lines of its stderr (or stdout for psql). */
  readonly outputTail: string;
  readonly stdout: string;
}

export interface SpawnOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Pin to one CPU with taskset (the transform benchmark measures one core). */
  readonly oneCore?: boolean;
  readonly signal?: AbortSignal;
}

export const hasGnuTime = (): boolean => existsSync(GNU_TIME);
export const canPinCpu = (): boolean => existsSync(TASKSET);

/** Runs `command args` under GNU time (when present), collecting stdout and a tail of stderr. */
export async function runMeasured(command: string, args: readonly string[], scratch: string, options: SpawnOptions = {}): Promise<ChildFigures> {
  const timeFile = `${scratch}.time`;
  let argv = [command, ...args];
  if (options.oneCore && canPinCpu()) argv = [TASKSET, '-c', '0', ...argv];
  const gnuTime = hasGnuTime();
  if (gnuTime) argv = [GNU_TIME, '-v', '-o', timeFile, ...argv];
  const started = performance.now();
  // Its own process group, so an interruption ends the whole step (GNU time, taskset, node) and not
  // just the GNU time wrapper, which would leave the worker running.
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const killGroup = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  };
  options.signal?.addEventListener('abort', killGroup, { once: true });
  process.once('exit', killGroup);
  let stdout = '';
  let stderr = '';
  // Reading through async iteration keeps each pipe flowing without 'data' handlers.
  const collect = async (stream: NodeJS.ReadableStream, into: (s: string) => void) => {
    for await (const chunk of stream) into(String(chunk));
  };
  const outDone = collect(child.stdout!, (s) => {
    stdout = (stdout + s).slice(-1_000_000);
  });
  const errDone = collect(child.stderr!, (s) => {
    stderr = (stderr + s).slice(-16_000);
  });
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
  }).finally(() => {
    options.signal?.removeEventListener('abort', killGroup);
    process.off('exit', killGroup);
  });
  await Promise.all([outDone, errDone]);
  const processSeconds = (performance.now() - started) / 1000;
  let peakRssMiB: number | null = null;
  let cpuSeconds: number | null = null;
  if (gnuTime && existsSync(timeFile)) {
    const text = await readFile(timeFile, 'utf8');
    await rm(timeFile, { force: true });
    const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
    if (kb) peakRssMiB = Number(kb[1]) / 1024;
    const user = /User time \(seconds\): ([\d.]+)/.exec(text);
    const sys = /System time \(seconds\): ([\d.]+)/.exec(text);
    if (user && sys) cpuSeconds = Number(user[1]) + Number(sys[1]);
  }
  return {
    processSeconds,
    peakRssMiB,
    rssSource: peakRssMiB !== null ? 'gnu-time' : null,
    cpuSeconds,
    exitCode,
    outputTail: (stderr || stdout).split('\n').slice(-30).join('\n'),
    stdout,
  };
}

export interface WorkerOutcome extends ChildFigures {
  readonly figures: Record<string, unknown>;
  /** Seconds the step itself took, measured inside the worker. */
  readonly seconds: number;
}

export class StepFailed extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(`${step}: ${message}`);
  }
}

/** Runs a bench/worker.ts job in a child process; throws StepFailed when the step failed. */
export async function runWorker(step: string, job: WorkerJob, scratch: string, options: SpawnOptions = {}): Promise<WorkerOutcome> {
  const jobFile = `${scratch}.job.json`;
  const resultFile = `${scratch}.result.json`;
  await writeFile(jobFile, JSON.stringify(job));
  await rm(resultFile, { force: true });
  const child = await runMeasured(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'worker.ts'), jobFile, resultFile], scratch, options);
  let result: WorkerResult | null = null;
  try {
    result = JSON.parse(await readFile(resultFile, 'utf8')) as WorkerResult;
  } catch {
    result = null;
  }
  await rm(jobFile, { force: true });
  await rm(resultFile, { force: true });
  if (!result) throw new StepFailed(step, `the worker exited with ${child.exitCode} and no result:\n${child.outputTail}`);
  if (!result.ok) throw new StepFailed(step, `${result.error.code}: ${result.error.message}`);
  const peak = child.peakRssMiB ?? result.maxRssKb / 1024;
  return {
    ...child,
    // The step's own CPU (user + system, every thread), as measured by the worker; GNU time's
    // figure includes Node's start-up and module loading.
    cpuSeconds: result.cpuSeconds ?? child.cpuSeconds,
    peakRssMiB: peak,
    rssSource: child.peakRssMiB !== null ? 'gnu-time' : 'resourceUsage',
    figures: result.figures,
    seconds: Number(result.figures.seconds),
  };
}
