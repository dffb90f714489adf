// `npm run demo`: the main job on a fresh machine, end to end on sample data.
// Generates a Wappizy-shaped database as a mongodump directory, starts a throwaway PostgreSQL,
// runs `etl run` (extract → transform → load) on the dump exactly as a user would (same command,
// same progress output), writes the run's HTML report, prints the totals, and stops the server.
// Piped into a log it stays short: a line per stage, a line per table, the totals.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_STAGING } from '../connect/config.ts';
import { readManifest } from '../staging/manifest.ts';
import { resolveRun } from '../staging/run-folder.ts';
import { startThrowawayPostgres } from './servers/throwaway-postgres.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const etlBin = path.join(root, 'bin', 'etl.js');
const scale = Number(process.env.DEMO_SCALE ?? 20000);
const stagingDir = path.resolve(root, process.env.ETL_STAGING ?? DEFAULT_STAGING);

function etl(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  process.stderr.write(`\n$ etl ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [etlBin, ...args], { stdio: 'inherit', env, cwd: root });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 130 : 1)));
  });
}

/** `20,000 documents → 45,123 rows (12 rejected) → 44,800 inserted, 0 updated (323 refused at load)`, from the manifest. */
async function totals(): Promise<string> {
  const m = await readManifest(await resolveRun(stagingDir));
  const sum = <T>(rec: Record<string, T> | undefined, f: (x: T) => number) => Object.values(rec ?? {}).reduce((a, x) => a + f(x), 0);
  const n = (x: number) => x.toLocaleString('en-US');
  const documents = sum(m.stages.extract?.collections, (c) => c.documents);
  const rows = sum(m.stages.transform?.tables, (t) => t.rows);
  const rejected = sum(m.stages.transform?.tables, (t) => t.rejected);
  const inserted = sum(m.stages.load?.tables, (t) => t.inserted);
  const updated = sum(m.stages.load?.tables, (t) => t.updated);
  const refused = sum(m.stages.load?.tables, (t) => t.rejected);
  return `${n(documents)} documents → ${n(rows)} rows (${n(rejected)} rejected) → ${n(inserted)} inserted, ${n(updated)} updated (${n(refused)} refused at load)`;
}

/**
 * The caller's shell may hold libpq's variables for a real server (PGSSLMODE=require, PGOPTIONS with
 * a search_path, PGHOST…): the driver, and etl for what DATABASE_URL leaves out, would apply them to
 * the throwaway server, which then refuses the connection or has no schema to create in. Removed
 * from this process, so neither the server's readiness check nor the etl children see them.
 */
function forgetShellPostgresSettings(): void {
  for (const name of Object.keys(process.env)) if (/^(PG|POSTGRES_)/.test(name)) delete process.env[name];
}

async function main(): Promise<number> {
  const started = Date.now();
  forgetShellPostgresSettings();
  const work = await mkdtemp(path.join(os.tmpdir(), 'etl-demo-'));
  const dump = path.join(work, 'dump');
  process.stderr.write(`etl demo: ${scale.toLocaleString('en-US')} sample documents → staged run → throwaway PostgreSQL\n`);
  let pg: Awaited<ReturnType<typeof startThrowawayPostgres>> | null = null;
  const stopAll = async () => {
    await pg?.stop();
    await rm(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  try {
    pg = await startThrowawayPostgres();
    // The demo's environment: only the throwaway server, never a DATABASE_URL from the caller's shell.
    // PGSSLMODE, the one PostgreSQL setting etl takes from the checkout's .env beside a full URL, is set
    // here (the environment wins over .env): a .env for a real server must not ask this one for TLS.
    // The same for the mapping and the transfer modes a .env may set: the demo is the checkout's
    // pipeline.yaml on the sample, on this machine.
    const local = { ETL_PIPELINE: path.join(root, 'pipeline.yaml'), TRANSFER_SOURCE: 'local', TRANSFER_DESTINATION: 'local' };
    const env: NodeJS.ProcessEnv = { ...process.env, ...local, DATABASE_URL: pg.url, PGSSLMODE: 'disable', ETL_STAGING: stagingDir };
    delete env.MONGODB_URL;
    const steps: string[][] = [
      ['sample', '--scale', String(scale), '--out', dump, '--quiet'],
      ['run', '--source', dump, '--full'],
      ['report', '--quiet'],
    ];
    for (const step of steps) {
      const code = await etl(step, env);
      if (code !== 0) {
        process.stderr.write(`\netl demo: \`etl ${step[0]}\` exited with ${code}; stopping.\n`);
        return code;
      }
    }
    process.stderr.write(`\nStaged files (manifest, NDJSON, CSV, rejects) are in ${stagingDir}/; see them with \`npx etl runs\`, audit with \`npx etl pack\`.\n`);
    process.stderr.write(`etl demo: done: ${await totals()} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
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
