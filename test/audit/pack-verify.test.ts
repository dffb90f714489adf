// etl pack → etl verify on a real staged run (extract from a bson dump + transform), then every kind
// of tampering verify must name, through the library and through the real command line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { packRun } from '../../audit/pack.ts';
import { verifyRun, type VerifyReport } from '../../audit/verify.ts';
import { StagingError } from '../../errors/etl-error.ts';
import { readManifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { ObjectId } from 'bson';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { copyOfRun, editManifest, newProject, realRun, writeDump, type RealRun } from './staged-run.ts';
import { etlSync, startEtl } from '../harness/cli.ts';
import { plantScratch } from '../harness/scratch.ts';
import { spawnSync } from 'node:child_process';

let run: RealRun;
let scratch: string;

before(async () => {
  run = await realRun();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'etl-audit-scratch-'));
});
after(async () => {
  await rm(run.cwd, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

const verifyTemps = async () => (await readdir(os.tmpdir())).filter((n) => n.startsWith('etl-verify-')).sort();

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('pack', () => {
  test('packs a finished run into one tar.gz whose files are the run, and verify passes on it', async () => {
    const report = await packRun({ stagingDir: run.stagingDir });
    assert.equal(report.run_id, run.runId);
    assert.equal(report.archive, path.join(run.stagingDir, `${run.runId}.tar.gz`));
    assert.deepEqual(report.stages, { extract: 'done', transform: 'done', load: null });
    assert.deepEqual(report.stages_included, ['extract', 'transform']);
    const bytes = await readFile(report.archive);
    assert.equal(report.bytes, bytes.length);
    assert.equal(report.sha256, sha256(bytes));
    assert.deepEqual(bytes.subarray(0, 2), Buffer.from([0x1f, 0x8b]), 'gzip magic');
    await assert.rejects(stat(`${report.archive}.partial`), 'no partial file left');

    const entries: string[] = [];
    await tar.list({ file: report.archive, onReadEntry: (e) => void entries.push(e.path) });
    const manifest = await readManifest(run.paths);
    const expected = [
      'report.html',
      'manifest.json',
      'pipeline.yaml',
      ...Object.values(manifest.stages.extract!.collections).map((c) => c.file),
      ...Object.values(manifest.stages.transform!.tables).flatMap((t) => [t.csv.file, t.rejects.file, ...(t.keys ? [t.keys.file] : []), ...(t.contrib ? [t.contrib.file] : [])]),
    ].map((f) => `${run.runId}/${f}`);
    assert.deepEqual([...entries].sort(), [...expected].sort());
    assert.equal(report.files, expected.length);
    // The packed bytes are the run's bytes.
    const unpacked = await mkdtemp(path.join(scratch, 'unpacked-'));
    await tar.extract({ file: report.archive, cwd: unpacked });
    for (const f of expected) {
      assert.deepEqual(await readFile(path.join(unpacked, f)), await readFile(path.join(run.stagingDir, f)), f);
    }

    const tempsBefore = await verifyTemps();
    const verified = await verifyRun({ target: report.archive, currentPipelineFile: run.pipelineFile });
    assert.deepEqual(verified.mismatches, []);
    assert.equal(verified.ok, true);
    assert.equal(verified.archive, report.archive);
    assert.equal(verified.files.checked, expected.length - 3, 'every file but report.html, manifest.json and pipeline.yaml');
    assert.deepEqual(verified.report, { file: 'report.html', present: true, compared: ['the totals', 'the rows per table', 'the count reconciliation'], differs: [] });
    assert.equal(verified.pipeline.current_differs, false);
    assert.ok(verified.identities.length >= 20 && verified.identities.every((i) => i.ok));
    assert.equal(verified.retransform.ran, true);
    assert.equal(verified.retransform.tables, 4);
    assert.equal(verified.retransform.files_identical, verified.retransform.files_compared);
    assert.equal(verified.retransform.files_compared, 13, 'csv, rejects and keys of 4 tables, and users_logbook.contrib.csv');
    // The temporary unpacked copy and the re-transform folder are gone.
    assert.deepEqual(await verifyTemps(), tempsBefore);
  });

  test("the archive's bytes are tar's own portable .tar.gz of the same files in the same order", async () => {
    const { stagingDir, dir } = await copyOfRun(run, scratch);
    const report = await packRun({ stagingDir });
    const entries: string[] = [];
    await tar.list({ file: report.archive, onReadEntry: (e) => void entries.push(e.path) });
    const reference = path.join(scratch, 'reference.tar.gz');
    await tar.create({ gzip: true, portable: true, cwd: stagingDir, file: reference }, entries);
    assert.equal(report.sha256, sha256(await readFile(reference)));
    await rm(dir, { recursive: true });
  });

  test('--out, and load rejects files travel when the run was loaded', async () => {
    const { stagingDir, dir } = await copyOfRun(run, scratch);
    const paths = runPaths(stagingDir, run.runId);
    const rejects = '{"table":"users_events","reason":"missing_reference"}\n';
    await writeFile(paths.loadRejects('users_events'), rejects);
    await editManifest(paths, (m) => {
      m.destination = { description: 'postgresql://etl:***@db.example.org:5432/smartdiet' };
      // Figures a load could give: every staged row inserted or rejected.
      const table = (rejected: number, file: string | null) => {
        const staged = m.stages.transform!.tables[file ? 'users_events' : 'users']!.rows;
        return {
          staged, inserted: staged - rejected, updated: 0, unchanged: 0, deleted: 0, rejected, nulled: 0, duplicates: 0, truncated: [],
          rejects: file ? { file, bytes: Buffer.byteLength(rejects), sha256: sha256(rejects), records: 1 } : null,
        };
      };
      m.stages.load = {
        status: 'done', started_at: '2026-01-01T00:00:00.000Z', ended_at: '2026-01-01T00:00:01.000Z', dry_run: false, already_applied: false,
        tables: { users: table(0, null), users_events: table(1, 'load/users_events.rejects.ndjson') },
      };
    });
    const out = path.join(scratch, 'shipped', 'run.tgz');
    const report = await packRun({ stagingDir, runId: run.runId, out });
    assert.equal(report.archive, out);
    assert.deepEqual(report.stages_included, ['extract', 'transform', 'load']);
    const entries: string[] = [];
    await tar.list({ file: out, onReadEntry: (e) => void entries.push(e.path) });
    assert.ok(entries.includes(`${run.runId}/load/users_events.rejects.ndjson`));
    const verified = await verifyRun({ target: out });
    assert.deepEqual(verified.mismatches, []);
    assert.ok(verified.identities.some((i) => i.name.startsWith('load: lines of the load rejects file') && i.table === 'users_events' && i.ok));
    await rm(dir, { recursive: true });
  });

  test('refuses a run whose transform did not finish, and says which stages are in', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await editManifest(runPaths(stagingDir, run.runId), (m) => {
      m.stages.transform!.status = 'failed';
    });
    await assert.rejects(packRun({ stagingDir, runId: run.runId }), (e: unknown) => {
      assert.ok(e instanceof StagingError);
      assert.equal(e.code, 'stage_not_done');
      assert.match(e.message, /extract done, transform failed, load not run/);
      return true;
    });
    assert.deepEqual((await readdir(stagingDir)).filter((n) => n.includes('.tar.gz')), [], 'no archive, not even partial');
    const cli = etlSync(['pack', '--staging', stagingDir, '--run', run.runId], { cwd: scratch });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /cannot be packed: extract and transform must be done \(extract done, transform failed, load not run\)/);
  });

  test('refuses a manifest holding a URL with a password or a password field, without printing it', async () => {
    for (const [change, pattern] of [
      [(m: any) => (m.source.description = 'mongodb://admin:hunter2secret@mongo.internal:27017/wappizy'), /manifest\.json line \d+ column \d+: a connection string with a password/],
      [(m: any) => (m.destination = { description: 'db', password: 'hunter2secret' }), /manifest\.json line \d+ column \d+: a password or secret setting/],
    ] as const) {
      const { stagingDir } = await copyOfRun(run, scratch);
      await editManifest(runPaths(stagingDir, run.runId), change);
      const cli = etlSync(['pack', '--staging', stagingDir, '--json'], { cwd: scratch });
      assert.equal(cli.code, 1, cli.stderr);
      const body = JSON.parse(cli.stdout);
      assert.equal(body.error.code, 'secret_in_run');
      assert.match(body.error.message, pattern);
      assert.doesNotMatch(cli.stdout + cli.stderr, /hunter2secret/);
      assert.deepEqual((await readdir(stagingDir)).filter((n) => n.includes('.tar.gz')), []);
    }
    // A redacted URL is what manifests hold: packed.
    const { stagingDir } = await copyOfRun(run, scratch);
    await editManifest(runPaths(stagingDir, run.runId), (m) => {
      m.source.description = 'mongodb://admin:***@mongo.internal:27017/wappizy';
    });
    assert.equal(etlSync(['pack', '--staging', stagingDir], { cwd: scratch }).code, 0);
  });

  test('refuses a configured secret found in the packed text, from the environment', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await appendFile(path.join(stagingDir, run.runId, 'pipeline.yaml'), '# s3cr3t-pass-value\n');
    // The manifest names the edited copy, so only the secret is wrong.
    const stored = await readFile(path.join(stagingDir, run.runId, 'pipeline.yaml'));
    await editManifest(runPaths(stagingDir, run.runId), (m) => {
      m.pipeline_sha256 = sha256(stored);
      m.stages.transform!.pipeline_sha256 = sha256(stored);
    });
    const cli = etlSync(['pack', '--staging', stagingDir], { cwd: scratch, env: { POSTGRES_PASSWORD: 's3cr3t-pass-value' } });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /pipeline\.yaml line \d+ column \d+: a configured password or passphrase/);
    assert.doesNotMatch(cli.stderr, /s3cr3t-pass-value/);
  });
});

describe('verify names every mismatch (CLI, exit 1)', () => {
  const verifyCli = (target: string, cwd = scratch) => etlSync(['verify', target], { cwd });

  test('a byte changed in one CSV', async () => {
    const { dir } = await copyOfRun(run, scratch);
    const file = path.join(dir, 'transform', 'users.csv');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('Ada', 'Adb'));
    const r = verifyCli(dir);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /\[sha256\] transform\/users\.csv: expected [0-9a-f]{64}, found [0-9a-f]{64}/);
    assert.match(r.stdout, /\[retransform\] transform\/users\.csv: .*first difference at line 2: re-transformed ".*Ada.*", staged ".*Adb.*"/);
    assert.doesNotMatch(r.stdout, /users_events\.csv/);
  });

  test('a line removed from an NDJSON file', async () => {
    const { dir } = await copyOfRun(run, scratch);
    const file = path.join(dir, 'extract', 'users.ndjson');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.splice(1, 1);
    await writeFile(file, lines.join('\n'));
    const r = verifyCli(dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /\[records\] extract\/users\.ndjson: expected 4 lines, found 3 lines/);
    assert.match(r.stdout, /\[bytes\] extract\/users\.ndjson: expected \d+, found \d+/);
    assert.match(r.stdout, /re-transform: not run \(the staged NDJSON does not match the manifest \(extract\/users\.ndjson\)\)/);
  });

  test('a count edited in the manifest', async () => {
    const { stagingDir, dir } = await copyOfRun(run, scratch);
    await editManifest(runPaths(stagingDir, run.runId), (m) => {
      m.stages.transform!.tables.users!.rows = 4;
    });
    const r = verifyCli(dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /\[count\] table users: expected rows = data rows of the CSV, found 4 = 3/);
    assert.match(r.stdout, /\[count\] table users: expected documents = rows \+ rejected \+ Σ skipped, found 4 = 4 rows \+ 1 rejected \+ 0 skipped \(= 5\)/);
    assert.match(r.stdout, /\[retransform\] table users stages\.transform\.tables\.users\.rows: expected 4, found 3 \(re-transformed\)/);
  });

  test('a recorded file missing, and an unrecorded one added', async () => {
    const { dir } = await copyOfRun(run, scratch);
    await rm(path.join(dir, 'transform', 'users_events.keys.csv'));
    await writeFile(path.join(dir, 'extract', 'notes.txt'), 'hello\n');
    const r = etlSync(['verify', dir, '--json'], { cwd: scratch });
    assert.equal(r.code, 1);
    const report = JSON.parse(r.stdout) as VerifyReport;
    assert.equal(report.ok, false);
    assert.ok(report.mismatches.some((m) => m.check === 'missing' && m.file === 'transform/users_events.keys.csv' && m.found === 'missing'));
    assert.ok(report.mismatches.some((m) => m.check === 'extra' && m.file === 'extract/notes.txt'));
    assert.equal(report.files.missing, 1);
    assert.equal(report.files.extra, 1);
  });

  test('a stored pipeline.yaml that is not the one the manifest names', async () => {
    const { dir } = await copyOfRun(run, scratch);
    await appendFile(path.join(dir, 'pipeline.yaml'), '# edited\n');
    const r = verifyCli(dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /\[pipeline\] pipeline\.yaml: expected sha256 [0-9a-f]{64}, found sha256 [0-9a-f]{64}/);
    assert.match(r.stdout, /re-transform: not run/);
  });

  test('tampering inside an archive', async () => {
    const { stagingDir, dir } = await copyOfRun(run, scratch);
    const file = path.join(dir, 'transform', 'users_logbook.csv');
    await writeFile(file, (await readFile(file, 'utf8')).replace('2024-03-07', '2024-03-09'));
    const archive = path.join(scratch, 'tampered.tar.gz');
    await tar.create({ gzip: true, cwd: stagingDir, file: archive }, [run.runId]);
    const r = verifyCli(archive);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /\[sha256\] transform\/users_logbook\.csv/);
    assert.match(r.stdout, /\[retransform\] transform\/users_logbook\.csv/);
  });

  test('a CSV that no longer parses: the same rows, parse and sha256 findings from the folder and from an archive', async () => {
    const { stagingDir, dir } = await copyOfRun(run, scratch);
    const file = path.join(dir, 'transform', 'users.csv');
    // Same size, one stray quote: the bytes still hash, the rows cannot be counted.
    await writeFile(file, (await readFile(file, 'utf8')).replace('Ada', 'A"a'));
    const archive = path.join(scratch, 'unparsable.tar.gz');
    await tar.create({ gzip: true, cwd: stagingDir, file: archive }, [run.runId]);
    const findings = (target: string) => {
      const r = etlSync(['verify', target, '--json'], { cwd: scratch });
      assert.equal(r.code, 1, r.stderr);
      return (JSON.parse(r.stdout) as VerifyReport).mismatches.filter((m) => m.file === 'transform/users.csv' && m.check !== 'retransform');
    };
    const fromFolder = findings(dir);
    assert.deepEqual(fromFolder.map((m) => m.check).sort(), ['parse', 'sha256']);
    assert.match(fromFolder.find((m) => m.check === 'parse')!.found, /quote/i);
    assert.deepEqual(findings(archive), fromFolder);
  });

  test('an archive holding a link or a file beside the run folder: named, never unpacked', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await symlink('/etc/hostname', path.join(stagingDir, run.runId, 'transform', 'sneaky.csv'));
    await writeFile(path.join(stagingDir, 'README.txt'), 'beside the run\n');
    const archive = path.join(scratch, 'crafted.tar.gz');
    await tar.create({ gzip: true, cwd: stagingDir, file: archive }, [run.runId, 'README.txt']);
    const report = JSON.parse(etlSync(['verify', archive, '--json'], { cwd: scratch }).stdout) as VerifyReport;
    assert.equal(report.ok, false);
    const extras = report.mismatches.filter((m) => m.check === 'extra').map((m) => m.file).sort();
    assert.deepEqual(extras, ['README.txt', `${run.runId}/transform/sneaky.csv`].sort());
    assert.equal(report.retransform.ran, true);
  });
});

describe('verify on a machine without databases', () => {
  test('an archive verifies through the CLI with MONGODB_URL and DATABASE_URL unset (exit 0, --json)', async () => {
    const archive = path.join(scratch, 'ship', `${run.runId}.tar.gz`);
    const packed = etlSync(['pack', '--staging', run.stagingDir, '--out', archive, '--json'], { cwd: scratch });
    assert.equal(packed.code, 0, packed.stderr);
    assert.equal(JSON.parse(packed.stdout).archive, archive);
    // An auditor's folder: no pipeline.yaml, no staging, no servers.
    const auditor = await mkdtemp(path.join(scratch, 'auditor-'));
    const r = etlSync(['verify', archive, '--json'], { cwd: auditor });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as VerifyReport;
    assert.equal(report.ok, true);
    assert.equal(report.run_id, run.runId);
    assert.equal(report.pipeline.current_file, null);
    assert.equal(report.retransform.ran, true);
    const human = etlSync(['verify', archive], { cwd: auditor });
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`OK: run ${run.runId} is exactly what its manifest says`));
    // csv, rejects and keys of the 4 tables, and users_logbook's contributions.
    assert.match(human.stdout, /re-transform: 4 tables, 13 of 13 files byte-identical/);
  });

  test('a changed ./pipeline.yaml after extract: verify says so and passes with the stored copy', async () => {
    const project = await mkdtemp(path.join(scratch, 'project-'));
    const { dir } = await copyOfRun(run, scratch);
    // Today's mapping renames a column: a re-transform with it would differ.
    await writeFile(path.join(project, 'pipeline.yaml'), (await readFile(run.pipelineFile, 'utf8')).replace('- name: email', '- name: mail'));
    const r = etlSync(['verify', dir], { cwd: project });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /note: .*pipeline\.yaml differs from the pipeline\.yaml this run was made with .*: verifying with the run's stored copy/);
    assert.match(r.stdout, /OK: run/);
    const json = JSON.parse(etlSync(['verify', dir, '--json'], { cwd: project }).stdout) as VerifyReport;
    assert.equal(json.pipeline.current_differs, true);
    assert.equal(json.ok, true);
  });

  test('usage errors exit 2', () => {
    assert.equal(etlSync(['verify'], { cwd: scratch }).code, 2);
    assert.equal(etlSync(['verify', 'a', 'b'], { cwd: scratch }).code, 2);
    assert.equal(etlSync(['verify', '--bogus', 'a'], { cwd: scratch }).code, 2);
    const missing = etlSync(['verify', path.join(scratch, 'nope.tar.gz')], { cwd: scratch });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
  });

  test('a --pipeline that does not exist is a configuration error (exit 2), not a comparison silently left out', async () => {
    const { dir } = await copyOfRun(run, scratch);
    const nope = path.join(scratch, 'no-such-pipeline.yaml');
    const r = etlSync(['verify', dir, '--pipeline', nope], { cwd: scratch });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^error: --pipeline ${nope.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no such file`, 'm'));
    assert.equal(r.stdout, '');
  });
});

describe('verify after a verify that was killed', () => {
  test('the next etl verify removes the unpacked copy a killed verify left, and nothing of a live one', async (t) => {
    const archive = (await packRun({ stagingDir: run.stagingDir })).archive;
    t.after(() => rm(archive, { force: true }));
    // A verify that will never finish reading its archive: it waits on a FIFO no one writes.
    const fifo = path.join(scratch, 'never.tar.gz');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    t.after(() => rm(fifo, { force: true }));
    const before = await verifyTemps();
    const stuck = startEtl(['verify', fifo], { cwd: scratch });
    let left: string[] = [];
    for (let i = 0; i < 600 && left.length === 0; i += 1) {
      await new Promise((r) => setTimeout(r, 50));
      left = (await verifyTemps()).filter((n) => !before.includes(n));
    }
    assert.equal(left.length, 1, `the stuck verify made its folder (${stuck.stderr})`);
    stuck.kill('SIGKILL');
    assert.equal((await stuck.done).signal, 'SIGKILL');
    assert.deepEqual((await verifyTemps()).filter((n) => !before.includes(n)), left, 'a killed verify leaves its folder');
    // One of a verify still at work (this test process) is left alone.
    const alive = await plantScratch('etl-verify-Alive1', { pid: process.pid, host: os.hostname() });
    t.after(() => rm(alive, { recursive: true, force: true }));

    const r = etlSync(['verify', archive], { cwd: scratch });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual((await verifyTemps()).filter((n) => !before.includes(n)), ['etl-verify-Alive1'], 'the killed verify’s folder is gone, the live one kept');
  });
});

describe('progress lines (runs of 64 MiB or more)', () => {
  let big: RealRun;
  before(async () => {
    // 48 events of 1.5 MiB each: 72 MiB of extract NDJSON (and as much CSV), enough for progress lines.
    const project = await newProject();
    const events = Array.from({ length: 48 }, (_, i) => ({ _id: new ObjectId(), title: String(i % 10).repeat(1_500_000), creation_date: new Date(0), update_date: new Date(0) }));
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, { events });
    const model = await loadPipeline(project.pipelineFile);
    const extracted = await runExtract({ model, stagingDir: project.stagingDir, source: { kind: 'dump', path: dump }, full: true });
    await runTransform({ model, stagingDir: project.stagingDir, runId: extracted.runId });
    big = { ...project, runId: extracted.runId, paths: runPaths(project.stagingDir, extracted.runId) };
  });
  after(() => rm(big.cwd, { recursive: true, force: true }));

  test('verify and pack write them on stderr, and --quiet keeps the final line only', () => {
    const verbose = etlSync(['verify', big.paths.dir], { cwd: big.cwd });
    assert.equal(verbose.code, 0, verbose.output);
    assert.match(verbose.stderr, /^verifying: /m, 'a run this size shows its progress');
    const quiet = etlSync(['verify', big.paths.dir, '--quiet'], { cwd: big.cwd });
    assert.equal(quiet.code, 0, quiet.output);
    assert.equal(quiet.stderr, '');
    assert.match(quiet.stdout, /^OK: run \S+ is exactly what its manifest says\n$/);
    const packed = etlSync(['pack', '--quiet', '--out', path.join(big.cwd, 'a.tar.gz')], { cwd: big.cwd });
    assert.equal(packed.code, 0, packed.output);
    assert.equal(packed.stderr, '');
    assert.equal(packed.stdout.split('\n').filter(Boolean).length, 1, packed.stdout);
  });
});

describe('report.html, which no checksum covers', () => {
  test('an archive whose report was removed is a mismatch; a folder without one is said, not called verified (verify said OK and never named the report)', async () => {
    const { stagingDir, dir } = await copyOfRun(run, scratch);
    const archive = path.join(scratch, 'with-report.tar.gz');
    const packed = etlSync(['pack', '--staging', stagingDir, '--out', archive], { cwd: scratch });
    assert.equal(packed.code, 0, packed.output);
    // The archive as shipped, less its report: re-packed by hand, every other entry as it was.
    const unpacked = await mkdtemp(path.join(scratch, 'unpacked-'));
    const members: string[] = [];
    await tar.extract({ file: archive, cwd: unpacked, onReadEntry: (e) => void members.push(e.path) });
    assert.equal(members[0], `${run.runId}/report.html`);
    const without = path.join(scratch, 'without-report.tar.gz');
    await tar.create({ gzip: true, portable: true, cwd: unpacked, file: without }, members.slice(1).filter((m) => !m.endsWith('/')));
    const fromArchive = etlSync(['verify', without], { cwd: scratch });
    assert.equal(fromArchive.code, 1, fromArchive.output);
    assert.match(fromArchive.stdout, /\[missing\] report\.html: expected present \(`etl pack` puts the run's report first in every archive\), found missing/);
    assert.match(fromArchive.stdout, /^report\.html: missing from the archive$/m);

    const whole = etlSync(['verify', archive], { cwd: scratch });
    assert.equal(whole.code, 0, whole.output);
    assert.match(whole.stdout, /^files: \d+ checked \([^)]*: every file manifest\.json records, and pipeline\.yaml\)/m);
    assert.match(whole.stdout, /^report\.html: the totals, the rows per table, the count reconciliation match manifest\.json; the rest of the page is covered by no checksum$/m);

    await rm(path.join(dir, 'report.html'));
    const fromFolder = etlSync(['verify', dir, '--json'], { cwd: scratch });
    assert.equal(fromFolder.code, 0, fromFolder.output);
    assert.deepEqual((JSON.parse(fromFolder.stdout) as VerifyReport).report, { file: 'report.html', present: false, compared: [], differs: [] });
    const text = etlSync(['verify', dir], { cwd: scratch });
    assert.match(text.stdout, /^report\.html: none in the run folder, not checked \(`etl report` writes it\)$/m);
    await rm(unpacked, { recursive: true });
    await rm(stagingDir, { recursive: true });
  });
});
