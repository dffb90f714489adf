// `npm run demo`: the main job on a fresh machine, end to end on sample data.
// Generates a Wappizy-shaped database as a mongodump directory, starts a throwaway PostgreSQL,
// runs `etl extract`, `etl transform` and `etl load` from the dump exactly as a user would (same
// command, same progress output), prints where the staged files are, and stops the server.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { startThrowawayPostgres } from './throwaway-postgres.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const etlBin = path.join(root, 'bin', 'etl.js');
const scale = Number(process.env.DEMO_SCALE ?? 20000);
const stagingDir = path.resolve(process.env.ETL_STAGING ?? path.join(root, 'staging'));

function etl(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  process.stderr.write(`\n$ etl ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [etlBin, ...args], { stdio: 'inherit', env, cwd: root });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 130 : 1)));
  });
}

async function main(): Promise<number> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-demo-'));
  const dump = path.join(work, 'dump');
  process.stderr.write(`etl demo: ${scale.toLocaleString('en-US')} sample documents → staged run → throwaway PostgreSQL\n`);
  const pg = await startThrowawayPostgres();
  const stopAll = async () => {
    await pg.stop();
    await rm(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  try {
    // The demo's environment: only the throwaway server, never a DATABASE_URL from the caller's shell.
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: pg.url, ETL_STAGING: stagingDir };
    delete env.MONGODB_URL;
    const steps: string[][] = [
      ['sample', '--scale', String(scale), '--out', dump],
      ['extract', '--source', dump, '--full'],
      ['transform'],
      ['load'],
    ];
    for (const step of steps) {
      const code = await etl(step, env);
      if (code !== 0) {
        process.stderr.write(`\netl demo: \`etl ${step[0]}\` exited with ${code}; stopping.\n`);
        return code;
      }
    }
    process.stderr.write(`\netl demo: done. Staged files (manifest, NDJSON, CSV, rejects) are in ${stagingDir}/\n`);
    process.stderr.write(`Inspect them with \`npx etl runs\`, or audit a run with \`npx etl pack\` then \`npx etl verify <archive>\`.\n`);
    return 0;
  } finally {
    await stopAll();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`etl demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
