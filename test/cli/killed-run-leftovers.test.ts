// A stage SIGKILLed while it writes leaves the `*.partial` files it was writing in its run folder;
// the next stage command removes them (running again is how a user recovers from a crash), and
// leaves alone those of a run whose process is still alive. Found by
// test/mirror/crash-randomized.test.ts (the load's side: test/load/abandoned-loads.test.ts).
// Such a run shows as `killed` (not `running`, forever) in etl status, etl runs and etl report, with
// what recovers it, and etl clean removes it by the rules of a failed run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useServers } from '../harness/index.ts';
import { etl, REPO, startEtl, useSampleDump } from '../harness/cli.ts';
import { readManifest, updateManifest, type StageName } from '../../staging/manifest.ts';
import type { CleanReport } from '../../audit/clean.ts';
import type { RunHistory } from '../../report/run-history.ts';
import type { StatusReport } from '../../inspect/status.ts';
import { listRunIds, runPaths } from '../../staging/run-folder.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(REPO, 'pipeline.yaml');

const sample = useSampleDump('etl-killed-run-', 3000);

/** Every `*.partial` file under a folder, relative to it. */
async function partials(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && e.name.endsWith('.partial')).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

/**
 * Starts `etl args…`, SIGKILLs it once `ready()`, and returns the run it left with unfinished files;
 * tries again (a new run each time) when the kill came after the files it saw were finished.
 */
async function killWhileWriting(staging: string, args: readonly string[], env: Record<string, string>, ready: () => Promise<boolean>): Promise<string> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const victim = startEtl(args, { cwd: sample.work, env });
    const deadline = Date.now() + 120_000;
    let exited = false;
    void victim.done.then(() => (exited = true));
    while (!(await ready()) && !exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    victim.kill('SIGKILL');
    const killed = await victim.done;
    const [run] = await listRunIds(staging);
    if (killed.signal === 'SIGKILL' && run !== undefined && (await partials(path.join(staging, run))).length > 0) return run;
  }
  assert.fail('no kill landed while files were being written (else this test proves nothing)');
}

test('an etl extract SIGKILLed mid-write: the next etl extract removes its *.partial files, not those of a live run', async () => {
  const staging = path.join(sample.work, 'staging');
  const args = ['extract', '--source', sample.dump, '--full', '--staging', staging, '--pipeline', PIPELINE];
  const killed = await killWhileWriting(staging, args, {}, async () => {
    const [run] = await listRunIds(staging);
    return run !== undefined && (await partials(path.join(staging, run))).some((f) => f.startsWith(`extract${path.sep}`));
  });
  const left = await partials(path.join(staging, killed));

  // The same leftovers in a run whose writer is this (live) process: another etl still at sample.work.
  const alive = runPaths(staging, '20200101T000000000Z');
  await cp(path.join(staging, killed), alive.dir, { recursive: true });
  await updateManifest(alive, (m) => {
    m.stages.extract!.writer = { pid: process.pid, host: os.hostname() };
  });

  const again = await etl(args, { cwd: sample.work });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await partials(path.join(staging, killed)), [], 'the killed run keeps no unfinished file');
  assert.deepEqual(await partials(alive.dir), left, "a live run's files are left alone");
});

test('an etl run SIGKILLed while it loads the last tables, once its transform is done: the next etl run removes its *.partial files', async (t) => {
  const staging = path.join(sample.work, 'staging-run');
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const args = ['run', '--source', sample.dump, '--staging', staging, '--pipeline', PIPELINE];
  // Transformed, and loading: the rejects files of the tables loaded so far are still unfinished.
  const killed = await killWhileWriting(staging, args, env, async () => {
    const [run] = await listRunIds(staging);
    if (run === undefined || !(await partials(path.join(staging, run))).some((f) => f.startsWith(`load${path.sep}`))) return false;
    return (await readManifest(runPaths(staging, run)).catch(() => null))?.stages.transform?.status === 'done';
  });

  const runs = await etl(['runs', '--json', '--no-ledger', '--staging', staging], { cwd: sample.work });
  const shown = (JSON.parse(runs.stdout) as RunHistory).runs.find((r) => r.run_id === killed)!;
  assert.deepEqual(shown.stages, { extract: 'done', transform: 'done', load: 'killed' });
  assert.match(shown.hint ?? '', new RegExp(`its load was killed \\(its process is gone\\): \`etl load --run ${killed}\` loads it`));

  const again = await etl(args, { cwd: sample.work, env });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await partials(staging), [], 'no unfinished file is left');
});

test('an etl run SIGKILLed while it extracts, its transform already writing: etl runs and etl report say the transform was killed, not "-" / "not run"', async (t) => {
  const staging = path.join(sample.work, 'staging-overlap');
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const args = ['run', '--source', sample.dump, '--staging', staging, '--pipeline', PIPELINE];
  // etl run records the transform's section once the extract is done; its files are written from the start.
  const transformUnrecorded = async (run: string) =>
    (await readManifest(runPaths(staging, run)).catch(() => null))?.stages.transform === undefined && (await partials(path.join(staging, run))).some((f) => f.startsWith(`transform${path.sep}`));
  let killed: string | undefined;
  for (let attempt = 1; attempt <= 5 && killed === undefined; attempt++) {
    const tried = await killWhileWriting(staging, args, env, async () => {
      const [run] = await listRunIds(staging);
      return run !== undefined && (await transformUnrecorded(run));
    });
    if (await transformUnrecorded(tried)) killed = tried;
    else await rm(path.join(staging, tried), { recursive: true });
  }
  assert.ok(killed, 'no kill landed while the transform wrote files the manifest did not record yet');
  const manifest = await readManifest(runPaths(staging, killed));
  assert.equal(manifest.stages.transform, undefined, 'the manifest is left as the process left it');

  const runs = await etl(['runs', '--json', '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.equal(runs.code, 0, runs.stderr);
  const shown = (JSON.parse(runs.stdout) as RunHistory).runs.find((r) => r.run_id === killed)!;
  assert.deepEqual([shown.stages.extract, shown.stages.transform], ['killed', 'killed']);
  const text = await etl(['runs', '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.match(text.stdout, new RegExp(`${killed}\\s.*\\skilled\\s+killed\\s`), text.stdout);

  const html = path.join(sample.work, 'overlap-report.html');
  const report = await etl(['report', '--run', killed, '--out', html, '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.equal(report.code, 0, report.stderr);
  const page = await readFile(html, 'utf8');
  assert.match(page, /<td[^>]*>transform<\/td><td[^>]*>killed: started, never ended, its files were being written<\/td>/);
  await rm(html);
});

/**
 * A run as a SIGKILL of `etl run` mid-transform leaves it, its load already writing (etl run records
 * the load's section once the transform is done; its rejects files are written from the start): the
 * transform running with its process gone, no load section, and a load rejects file being written.
 */
async function runKilledWhileTransforming(staging: string): Promise<string> {
  for (const args of [['extract', '--source', sample.dump, '--full'], ['transform']]) {
    const r = await etl([...args, '--staging', staging, '--pipeline', PIPELINE], { cwd: sample.work });
    assert.equal(r.code, 0, r.stderr);
  }
  const [run] = await listRunIds(staging);
  const paths = runPaths(staging, run!);
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  await updateManifest(paths, (m) => {
    m.stages.transform = { ...m.stages.transform!, status: 'running', writer: { pid: deadPid, host: os.hostname() } };
    delete m.stages.load;
  });
  const [table] = Object.keys((await readManifest(paths)).stages.transform!.tables ?? {});
  await mkdir(paths.loadDir, { recursive: true });
  await writeFile(`${paths.loadRejects(table!)}.partial`, '');
  return run!;
}

test('an etl run SIGKILLed while it transforms, its load already writing: etl status shows the load killed, not "-"', async (t) => {
  const staging = path.join(sample.work, 'staging-load-begun-status');
  const run = await runKilledWhileTransforming(staging);
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const status = await etl(['status', '--json', '--staging', staging, '--pipeline', PIPELINE], { cwd: sample.work, env });
  assert.equal(status.code, 0, status.stderr);
  const shown = (JSON.parse(status.stdout) as StatusReport).unloadedRuns.find((r) => r.runId === run)!;
  assert.deepEqual(shown.stages, { extract: 'done', transform: 'killed', load: 'killed' });
  const text = await etl(['status', '--staging', staging, '--pipeline', PIPELINE], { cwd: sample.work, env });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^  ${run}  extract ✓  transform killed  load killed(  |$)`, 'm'), text.stdout);
});

test('an etl run SIGKILLed while it transforms, its load already writing: etl report\'s result says the load was killed, not that it never ran', async () => {
  const staging = path.join(sample.work, 'staging-load-begun-report');
  const run = await runKilledWhileTransforming(staging);
  const html = path.join(sample.work, 'load-begun-report.html');
  const report = await etl(['report', '--run', run, '--out', html, '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.equal(report.code, 0, report.stderr);
  const page = await readFile(html, 'utf8');
  assert.match(page, /<dt>result<\/dt><dd>not loaded \(killed: started, never ended, its files were being written\)<\/dd>/);
  assert.doesNotMatch(page, /load never ran/);
  await rm(html);
});

/** A copy of `run` whose running `stage` names another writer: one alive, or one on another host. */
async function copyWithWriter(staging: string, run: string, copy: string, stage: StageName, writer: { pid: number; host: string }): Promise<string> {
  const paths = runPaths(staging, copy);
  await cp(path.join(staging, run), paths.dir, { recursive: true });
  await updateManifest(paths, (m) => {
    m.stages[stage]!.writer = writer;
  });
  return copy;
}

test('an etl run SIGKILLed while it extracts shows as killed in etl status, etl runs and etl report; once a newer run is loaded etl clean removes it', async (t) => {
  const staging = path.join(sample.work, 'staging-view');
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const args = ['run', '--source', sample.dump, '--staging', staging, '--pipeline', PIPELINE];
  const killed = await killWhileWriting(staging, args, env, async () => {
    const [run] = await listRunIds(staging);
    return run !== undefined && (await partials(path.join(staging, run))).some((f) => f.startsWith(`extract${path.sep}`));
  });
  assert.equal((await readManifest(runPaths(staging, killed))).stages.extract!.status, 'running', 'the manifest is left as the process left it');
  // Not certain: a writer alive (this process), or one on another host whose pid is free here.
  const alive = await copyWithWriter(staging, killed, '20200101T000000000Z', 'extract', { pid: process.pid, host: os.hostname() });
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const elsewhere = await copyWithWriter(staging, killed, '20200102T000000000Z', 'extract', { pid: deadPid, host: `not-${os.hostname()}` });
  const hint = new RegExp(`its extract was killed \\(its process is gone\\): the next \`etl run\`/\`etl extract\` reads its documents again`);

  const runs = await etl(['runs', '--json', '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.equal(runs.code, 0, runs.stderr);
  const listed = new Map((JSON.parse(runs.stdout) as RunHistory).runs.map((r) => [r.run_id, r]));
  // etl run's transform and load may have begun writing before the kill (their sections come once the stage before is done): killed too, then.
  const begun = async (dir: string) => ((await readdir(dir, { withFileTypes: true })).some((e) => e.isFile()) ? 'killed' : null);
  const paths = runPaths(staging, killed);
  assert.deepEqual(listed.get(killed)!.stages, { extract: 'killed', transform: await begun(paths.transformDir), load: await begun(paths.loadDir) });
  assert.match(listed.get(killed)!.hint ?? '', hint);
  for (const id of [alive, elsewhere]) assert.deepEqual([listed.get(id)!.stages.extract, listed.get(id)!.hint], ['running', null], id);
  const runsText = await etl(['runs', '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.match(runsText.stdout, new RegExp(`${killed}\\s.*\\skilled\\s`));
  assert.match(runsText.stdout, new RegExp(`^${killed}: ${hint.source}`, 'm'));
  assert.doesNotMatch(runsText.stdout, new RegExp(`^${alive}:`, 'm'));

  const status = await etl(['status', '--json', '--staging', staging, '--pipeline', PIPELINE], { cwd: sample.work, env });
  assert.equal(status.code, 0, status.stderr);
  const unloaded = new Map((JSON.parse(status.stdout) as StatusReport).unloadedRuns.map((r) => [r.runId, r]));
  assert.deepEqual(unloaded.get(killed)!.stages, { extract: 'killed', transform: await begun(paths.transformDir), load: await begun(paths.loadDir) });
  assert.match(unloaded.get(killed)!.hint ?? '', hint);
  for (const id of [alive, elsewhere]) assert.deepEqual([unloaded.get(id)!.stages.extract, unloaded.get(id)!.hint], ['running', null], id);
  const statusText = await etl(['status', '--staging', staging, '--pipeline', PIPELINE], { cwd: sample.work, env });
  assert.equal(statusText.code, 0, statusText.stderr);
  const mark = async (dir: string) => (await begun(dir)) ?? '-';
  assert.match(statusText.stdout, new RegExp(`^  ${killed}  extract killed  transform ${await mark(paths.transformDir)}  load ${await mark(paths.loadDir)}(  |$)`, 'm'));
  assert.match(statusText.stdout, /^ {4}its extract was killed \(its process is gone\): the next `etl run`\/`etl extract`/m);
  assert.match(statusText.stdout, new RegExp(`^  ${alive}  extract running`, 'm'));
  const runLines = statusText.stdout.slice(statusText.stdout.indexOf('staged runs not loaded')).split('\n\n')[0]!.split('\n');
  assert.ok(runLines.every((l) => l.length <= 100), `the staged runs keep to 100 columns:\n${runLines.join('\n')}`);

  const html = path.join(sample.work, 'killed-report.html');
  const report = await etl(['report', '--run', killed, '--out', html, '--no-ledger', '--staging', staging], { cwd: sample.work });
  assert.equal(report.code, 0, report.stderr);
  const page = await readFile(html, 'utf8');
  assert.match(page, /<td[^>]*>extract<\/td><td[^>]*>killed<\/td>/);
  assert.match(page, /its extract was killed \(its process is gone\)/);
  assert.doesNotMatch(page, />running</);

  // The next run recovers (its leftovers go) and is loaded: the killed run is superseded.
  const next = await etl(args, { cwd: sample.work, env });
  assert.equal(next.code, 0, next.stderr);
  const cleaned = await etl(['clean', '--json', '--staging', staging], { cwd: sample.work });
  assert.equal(cleaned.code, 0, cleaned.stderr);
  const clean = JSON.parse(cleaned.stdout) as CleanReport;
  assert.deepEqual(clean.removed.map((r) => r.run_id), [killed]);
  assert.match(clean.removed[0]!.reason, new RegExp(`^killed \\(extract killed, transform not run, load not run\\), older than loaded run ${clean.newest_loaded}$`));
  for (const id of [alive, elsewhere]) assert.match(clean.kept.find((k) => k.run_id === id)!.reasons.join('; '), /a stage is marked running and the manifest changed within the hour/, id);
  assert.deepEqual((await listRunIds(staging)).sort(), [alive, elsewhere, clean.newest_loaded!].sort());
});

/** Notes each listing of a folder by an etl process (test/harness/readdir-notes.preload.mjs). */
const READDIR_NOTES = fileURLToPath(new URL('../harness/readdir-notes.preload.mjs', import.meta.url));

test('etl run scans the staging folder for killed runs once for its three stages; a stage command alone scans it once', async (t) => {
  const staging = path.join(sample.work, 'staging-scans');
  const env = { DATABASE_URL: await servers.postgres.createDatabase(t.name) };
  const common = ['--staging', staging, '--pipeline', PIPELINE];
  const first = await etl(['run', '--source', sample.dump, ...common], { cwd: sample.work, env });
  assert.equal(first.code, 0, first.stderr);
  // A scan lists the load folder of every run; only a scan lists that of a run no stage works on.
  const [older] = await listRunIds(staging);
  const notes = path.join(sample.work, 'readdir-notes');
  const noting = {
    ...env,
    READDIR_WATCH: runPaths(staging, older!).loadDir,
    READDIR_NOTES: notes,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(READDIR_NOTES).href}`.trim(),
  };
  const scans = async (args: readonly string[]): Promise<number> => {
    await rm(notes, { force: true });
    const r = await etl([...args, ...common], { cwd: sample.work, env: noting });
    assert.equal(r.code, 0, r.stderr);
    return (await readFile(notes, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  };
  assert.equal(await scans(['run', '--source', sample.dump]), 1, 'etl run');
  assert.equal(await scans(['extract', '--source', sample.dump]), 1, 'etl extract');
  assert.equal(await scans(['transform']), 1, 'etl transform');
  assert.equal(await scans(['load']), 1, 'etl load');
});
