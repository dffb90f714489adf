// Runs the real `etl` command (bin/etl.js, as `npx etl` does) in a child process, as a user or a
// CI job would: no TTY, NO_COLOR=1, and none of the caller's etl configuration variables unless
// the test passes them.
import { spawn, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const ETL_BIN = fileURLToPath(new URL('../../bin/etl.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const CONFIG_VARIABLES = ['MONGODB_URL', 'MONGODB_DATABASE', 'DATABASE_URL', 'ETL_STAGING', 'ETL_PIPELINE', 'FORCE_COLOR', 'ETL_DEBUG', 'LISTR_FORCE_TTY'];

export function cliEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !CONFIG_VARIABLES.includes(k) && !k.startsWith('POSTGRES_')) env[k] = v;
  env.NO_COLOR = '1';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function etl(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string | undefined>; uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<CliResult> {
  const spawnOptions: SpawnOptions = { cwd: options.cwd ?? REPO, env: cliEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] };
  if (options.uid !== undefined) spawnOptions.uid = options.uid;
  if (options.gid !== undefined) spawnOptions.gid = options.gid;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ETL_BIN, ...args], spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A stack trace line as Node prints them. */
export const STACK_LINE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;
