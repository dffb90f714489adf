// The one way tests run the real `etl` command (bin/etl.js, as `npx etl` does): a child process, as
// a user or a CI job would run it: no TTY, NO_COLOR=1, and none of the caller's etl configuration
// (nor libpq's PG* variables, nor an SSH agent) unless the test passes it.
//
//   const r = await etl(['validate'], { cwd: dir, env: { DATABASE_URL: url } });   // { code, stdout, stderr, output }
//   const run = startEtl(['load', ...]); …; run.kill('SIGINT'); const r = await run.done;
//   const r = etlSync(['pack'], { cwd: dir });                                     // blocking, same environment
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const ETL_BIN = fileURLToPath(new URL('../../bin/etl.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved as they arrived (what a terminal would show). */
  readonly output: string;
}

export interface CliOptions {
  /** Working directory (default: the repository). */
  readonly cwd?: string;
  /** Variables on top of the clean environment; `undefined` removes one. */
  readonly env?: Record<string, string | undefined>;
  readonly uid?: number;
  readonly gid?: number;
  /** Killed (SIGKILL) after this long (default 600 s, the suite's test timeout). */
  readonly timeoutMs?: number;
  /** A command the etl command runs under, e.g. ['/usr/bin/time', '-v'] to measure its memory. */
  readonly wrap?: readonly string[];
}

/** The variables that configure etl (or libpq, or an SSH login), none of them inherited. */
const CONFIGURATION = /^(PG|POSTGRES_|MONGODB_|ETL_|TRANSFER_|REMOTE_)|^(DATABASE_URL|GLOBAL_DATE_THRESHOLD|SSH_AUTH_SOCK|FORCE_COLOR|LISTR_FORCE_TTY)$/;

/** The caller's environment without etl's configuration, NO_COLOR=1, then `extra` (undefined removes). */
export function cliEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !CONFIGURATION.test(k)) env[k] = v;
  env.NO_COLOR = '1';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function command(args: readonly string[], wrap: readonly string[] = []): [string, string[]] {
  const line = [...wrap, process.execPath, ETL_BIN, ...args];
  return [line[0]!, line.slice(1)];
}

function spawnOptions(o: CliOptions): SpawnOptions {
  const options: SpawnOptions = { cwd: o.cwd ?? REPO, env: cliEnv(o.env), stdio: ['ignore', 'pipe', 'pipe'] };
  if (o.uid !== undefined) options.uid = o.uid;
  if (o.gid !== undefined) options.gid = o.gid;
  return options;
}

export interface EtlProcess {
  /** What it printed so far (read while it runs, e.g. to wait for a line). */
  readonly stdout: string;
  readonly stderr: string;
  readonly output: string;
  readonly pid: number | undefined;
  /** Settles when the process has exited and its output is read. */
  readonly done: Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `etl args…`; `done` gives the exit code, the signal and the output. */
export function startEtl(args: readonly string[], options: CliOptions = {}): EtlProcess {
  const [file, argv] = command(args, options.wrap);
  const child = spawn(file, argv, spawnOptions(options));
  const seen = { stdout: '', stderr: '', output: '' };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => ((seen.stdout += s), (seen.output += s)));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => ((seen.stderr += s), (seen.output += s)));
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.once('error', (e) => (clearTimeout(timer), reject(e)));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...seen });
    });
  });
  return {
    get stdout() {
      return seen.stdout;
    },
    get stderr() {
      return seen.stderr;
    },
    get output() {
      return seen.output;
    },
    pid: child.pid,
    done,
    kill: (signal) => child.kill(signal),
  };
}

/** Runs `etl args…` to the end. */
export function etl(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startEtl(args, options).done;
}

/**
 * A temp folder for the test file, holding `etl sample --scale <scale> --out <folder>/dump`: made
 * before the file's tests, removed after them. `work` and `dump` are set once `before` has run.
 */
export function useSampleDump(prefix: string, scale: number): { readonly work: string; readonly dump: string } {
  const made = { work: '', dump: '' };
  before(async () => {
    made.work = await mkdtemp(path.join(os.tmpdir(), prefix));
    made.dump = path.join(made.work, 'dump');
    const r = await etl(['sample', '--scale', String(scale), '--out', made.dump, '--quiet'], { cwd: made.work });
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => (made.work ? rm(made.work, { recursive: true, force: true }) : undefined));
  return made;
}

/** Runs `etl args…` to the end, blocking (for tests written as plain sequences of commands). */
export function etlSync(args: readonly string[], options: CliOptions = {}): CliResult {
  const [file, argv] = command(args, options.wrap);
  const r = spawnSync(file, argv, { ...spawnOptions(options), encoding: 'utf8', timeout: options.timeoutMs ?? 600_000 });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, output: r.stdout + r.stderr };
}

/** A stack trace line as Node prints them. */
export const STACK_LINE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;
