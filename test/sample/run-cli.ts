// Runs `etl` as a user does: a child process, no TTY, NO_COLOR, in a chosen working directory.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ETL = path.join(REPO, 'bin/etl.ts');
// Absolute, so the CLI also runs from a working directory outside the repository.
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function runEtl(args: readonly string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<CliResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, NO_COLOR: '1', ...options.env })) if (v !== undefined) env[k] = v;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', TSX, ETL, ...args],
      { cwd: options.cwd ?? REPO, env, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}
