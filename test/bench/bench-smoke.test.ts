// Smoke test of `npm run bench`: a tiny scale, real servers (embedded PostgreSQL, or DATABASE_URL;
// FerretDB, or MONGODB_URL), and checks of the result document's shape and figures. Not a timed
// test: no figure is compared with a goal here, only checked to be a real, positive measurement.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCALE = 2000;

function runBench(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'index.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    const read = async (stream: NodeJS.ReadableStream, add: (s: string) => void) => {
      for await (const chunk of stream) add(String(chunk));
    };
    const done = Promise.all([read(child.stdout, (s) => (stdout += s)), read(child.stderr, (s) => (stderr += s))]);
    child.once('error', reject);
    child.once('close', (code) => void done.then(() => resolve({ code, stdout, stderr })));
  });
}

interface Step {
  details?: Record<string, unknown>;
  label: string;
  seconds: number;
  process_seconds: number;
  count: number;
  unit: string;
  per_second: number;
  peak_rss_mib: number | null;
}

function assertStep(step: Step | undefined, what: string, unit: 'documents' | 'rows'): Step {
  assert.ok(step, `${what}: step missing`);
  assert.equal(step.unit, unit, `${what}: unit`);
  assert.ok(step.seconds > 0, `${what}: seconds ${step.seconds}`);
  assert.ok(step.process_seconds >= step.seconds * 0.5, `${what}: process seconds ${step.process_seconds}`);
  assert.ok(step.count > 0, `${what}: count ${step.count}`);
  assert.ok(step.per_second > 0, `${what}: per second ${step.per_second}`);
  assert.ok(step.peak_rss_mib !== null && step.peak_rss_mib > 1, `${what}: peak RSS ${step.peak_rss_mib}`);
  return step;
}

test('npm run bench -- all --scale 2000 writes a complete result document', { timeout: 300_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-bench-smoke-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const jsonFile = path.join(dir, 'result.json');
  const cacheRoot = path.join(dir, 'cache');

  const run = await runBench(['all', '--scale', String(SCALE), '--json', jsonFile, '--cache-dir', cacheRoot]);
  assert.equal(run.code, 0, `bench exited with ${run.code}\n${run.stderr.slice(-4000)}`);
  assert.match(run.stdout, /^benchmark\s+step\s+seconds/m);
  assert.match(run.stdout, /goal >= 0\.8/);

  const doc = JSON.parse(await readFile(jsonFile, 'utf8'));
  assert.equal(doc.format, 1);
  assert.equal(doc.scale, SCALE);
  assert.equal(doc.seed, 1);
  assert.equal(doc.complete, true);
  assert.deepEqual(doc.benchmarks_requested, ['extract', 'transform', 'load', 'incremental', 'diff']);
  assert.ok(doc.git.commit === null || /^[0-9a-f]{40}$/.test(doc.git.commit), `commit ${doc.git.commit}`);
  assert.ok(doc.machine.cores >= 1 && doc.machine.memory_gib > 0);
  assert.equal(doc.dataset.documents, SCALE);
  assert.ok(doc.dataset.generate_seconds > 0);

  const extract = doc.benchmarks.extract;
  assert.equal(extract.status, 'done', extract.error);
  for (const key of ['dump_etl', 'dump_baseline', 'live_etl', 'live_baseline']) {
    assert.equal(assertStep(extract.steps[key], `extract.${key}`, 'documents').count, SCALE, `extract.${key} reads every document`);
  }
  assert.ok(extract.comparisons.live.ratio > 0);
  assert.equal(extract.comparisons.live.goal, '>= 0.8');
  assert.equal(typeof extract.comparisons.live.met, 'boolean');
  assert.ok(extract.comparisons.dump.ratio > 0);
  assert.equal(extract.comparisons.dump.goal, '<= 2');

  const transform = doc.benchmarks.transform;
  assert.equal(transform.status, 'done', transform.error);
  assert.equal(assertStep(transform.steps.etl, 'transform', 'documents').count, SCALE);
  assert.equal(assertStep(transform.steps.parallel, 'transform, every core', 'documents').count, SCALE);
  assert.ok(transform.steps.etl.cpu_seconds > 0, 'the step CPU time is reported');
  assert.equal(transform.details.staged_files_identical, true, 'one thread and every core stage the same bytes');
  assert.ok(transform.details.keys_bytes > 0 && transform.details.contrib_bytes > 0, 'the scope files are measured');
  assert.ok(transform.comparisons.goal.ratio > 0);
  assert.equal(transform.comparisons.goal.goal, '>= 1');
  assert.equal(typeof transform.comparisons.goal.met, 'boolean');

  const load = doc.benchmarks.load;
  assert.equal(load.status, 'done', load.error);
  const loaded = assertStep(load.steps.etl, 'load', 'rows');
  const copied = assertStep(load.steps.baseline, 'psql copy', 'rows');
  assert.equal(copied.count, loaded.count, 'psql \\copy read the same staged rows as load');
  assert.ok(load.comparisons.ratio.ratio > 0);
  assert.equal(load.comparisons.ratio.goal, '<= 1.3');
  // The whole dump path: extract + transform + load against bare BSON read + psql \copy.
  assert.ok(load.comparisons.path.ratio > 0);
  assert.equal(load.comparisons.path.goal, '<= 2');
  assert.ok(load.details.whole_path.etl_seconds > 0 && load.details.whole_path.limit_seconds > 0);
  assert.ok(load.details.state_tables.etl_pending.rows >= 0, JSON.stringify(load.details.state_tables));

  const incremental = doc.benchmarks.incremental;
  assert.equal(incremental.status, 'done', incremental.error);
  for (const which of ['full', 'incremental']) {
    assertStep(incremental.steps[`${which}_extract`], `${which} extract`, 'documents');
    assertStep(incremental.steps[`${which}_transform`], `${which} transform`, 'documents');
    assertStep(incremental.steps[`${which}_load`], `${which} load`, 'rows');
  }
  assert.equal(incremental.steps.full_extract.count, SCALE, 'the full run reads every document');
  const change = incremental.details.change;
  assert.ok(change.documents_changed > 0 && change.updated > 0 && change.inserted > 0 && change.array_items_removed > 0, JSON.stringify(change));
  assert.equal(change.documents_changed, change.updated + change.inserted + change.array_items_removed);
  // The documents changed after the full run are exactly what the incremental extract reads.
  assert.equal(incremental.steps.incremental_extract.count, change.documents_changed);
  assert.ok(incremental.steps.incremental_load.details.inserted > 0 && incremental.steps.incremental_load.details.updated > 0);
  assert.ok(incremental.comparisons.ratio.ratio > 0);
  assert.equal(incremental.comparisons.ratio.goal, '< 0.05');
  // The same merge written by hand, on a copy of the database the full run left.
  assertStep(incremental.steps.incremental_hand_merge, 'hand-written merge', 'rows');
  assert.ok(incremental.comparisons.merge.ratio > 0);
  assert.equal(incremental.comparisons.merge.goal, '<= 1.5');
  for (const which of ['full', 'incremental']) {
    const state = incremental.details[`state_tables_after_${which}`];
    assert.ok(state.etl_pending && state.etl_contrib_users_logbook.rows > 0, JSON.stringify(state));
  }

  const diff = doc.benchmarks.diff;
  assert.equal(diff.status, 'done', diff.error);
  assert.equal(assertStep(diff.steps.etl, 'diff', 'documents').details?.identical, true, 'the loaded database equals its source');
  assertStep(diff.steps.scan, 'bare scan', 'documents');
  assertStep(diff.steps.read, 'table read', 'rows');
  assert.equal(diff.comparisons.ratio.goal, '<= 1.2');
  assert.ok(diff.comparisons.ratio.ratio > 0);
  assert.equal(assertStep(diff.steps.run, 'etl run (live)', 'documents').count, SCALE, 'etl run reads every document');
  assert.ok(diff.steps.run.details.rows > 0, 'etl run loads rows');
  assert.equal(diff.comparisons.run.goal, '<= 1.2');

  // The dataset is cached for the next run; the bench's own staged runs are gone.
  const cacheDir = path.join(cacheRoot, `${SCALE}-1`);
  assert.ok(existsSync(path.join(cacheDir, 'dump.json')));
  assert.ok(existsSync(path.join(cacheDir, 'ferretdb.json')));
  assert.deepEqual((await readdir(cacheDir)).filter((n) => n.startsWith('work-')), []);
});

test('npm run bench -- --help fits 100 columns and exits 0; a bad --scale or --seed or an unknown benchmark exits 2 saying so', async (t) => {
  const cacheRoot = await mkdtemp(path.join(os.tmpdir(), 'etl-bench-usage-'));
  t.after(() => rm(cacheRoot, { recursive: true, force: true }));
  const help = await runBench(['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.deepEqual(help.stdout.split('\n').filter((line) => [...line].length > 100), [], 'lines wider than 100 columns');
  assert.match(help.stdout, /^exit codes: 0 /m);
  const cases: [string[], RegExp][] = [
    [['transform', '--scale', 'abc'], /^bench: --scale must be a whole number, got "abc"$/m],
    [['nosuch'], /^bench: unknown benchmark "nosuch" \(known: extract, transform, load, incremental, diff, all\)$/m],
    // Beyond what the generator makes: refused before anything is generated or made in the cache.
    [['transform', '--scale', '2000000000'], /^bench: --scale must be from 500 to 1,000,000,000, got 2,000,000,000$/m],
    [['transform', '--scale', '499'], /^bench: --scale must be from 500 to 1,000,000,000 \(every collection gets its floor of documents\), got 499$/m],
    [['transform', '--seed', '4294967296'], /^bench: --seed must be from 0 to 4,294,967,295, got 4,294,967,296$/m],
  ];
  for (const [args, message] of cases) {
    const r = await runBench([...args, '--cache-dir', cacheRoot]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  assert.deepEqual(await readdir(cacheRoot), []);
});

test('npm run bench from another folder: a relative --json and --cache-dir are taken from where it was typed', { timeout: 300_000 }, async (t) => {
  // npm runs the script in the package root, and says where it was typed in INIT_CWD.
  const typedIn = await mkdtemp(path.join(os.tmpdir(), 'etl-bench-cwd-'));
  const strayJson = path.join(ROOT, 'etl-bench-cwd-test.json');
  const strayCache = path.join(ROOT, 'etl-bench-cwd-cache');
  t.after(() => Promise.all([typedIn, strayJson, strayCache].map((p) => rm(p, { recursive: true, force: true }))));
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const args = ['--prefix', ROOT, 'run', '--silent', 'bench', '--', 'transform', '--scale', '500', '--json', 'etl-bench-cwd-test.json', '--cache-dir', 'etl-bench-cwd-cache'];
    const child = spawn('npm', args, { cwd: typedIn, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  assert.equal(r.code, 0, r.stderr.slice(-4000));
  assert.ok(existsSync(path.join(typedIn, 'etl-bench-cwd-test.json')), `the result is where it was typed:\n${r.stdout}`);
  assert.ok(existsSync(path.join(typedIn, 'etl-bench-cwd-cache', '500-1', 'dump.json')));
  assert.ok(!existsSync(strayJson) && !existsSync(strayCache), 'nothing written into the checkout');
  assert.match(r.stdout, /^results: etl-bench-cwd-test\.json$/m);
});
