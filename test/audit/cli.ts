// Runs the real `etl` command (bin/etl.js) in a child process, as a user or a CI job would: no TTY,
// NO_COLOR=1, and no MONGODB_URL / DATABASE_URL, so nothing can reach a database.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ETL = fileURLToPath(new URL('../../bin/etl.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function etl(args: readonly string[], cwd: string, env: Record<string, string> = {}): CliResult {
  const base = { ...process.env };
  for (const name of ['MONGODB_URL', 'DATABASE_URL', 'ETL_STAGING', 'ETL_PIPELINE', 'FORCE_COLOR']) delete base[name];
  const r = spawnSync(process.execPath, [ETL, ...args], { cwd, env: { ...base, NO_COLOR: '1', ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
