// What `etl` prints, on sample data against a real PostgreSQL: in logs (no TTY) a line per table at
// most, nothing repeated, every stage and `run` ending with totals and elapsed time; --quiet
// prints the final line only; --verbose prints per-batch lines; `status` fits 100 columns; the live
// task list follows stderr's terminal even when stdout is redirected; the demo's log is short.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { useServers } from '../harness/index.ts';
import { ETL_BIN, etl, REPO, useSampleDump, type CliResult } from '../harness/cli.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(REPO, 'pipeline.yaml');
const TABLES = 31;
/** A final line: totals, then the elapsed time. */
const ELAPSED = /in \d+(\.\d+)? s|in \d+ min \d+ s/;

const sample = useSampleDump('etl-cli-output-', 2000);

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');
const lastLine = (text: string) => lines(text).at(-1) ?? '';

async function staging(name: string): Promise<string> {
  return path.join(await mkdtemp(path.join(sample.work, `${name}-`)), 'runs');
}

function cli(args: string[], dbName: string, stagingDir: string, env: Record<string, string> = {}): Promise<CliResult> {
  return servers.postgres.createDatabase(dbName).then((url) => etl([...args, '--staging', stagingDir, '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url, ...env } }));
}

function assertNoRepeats(text: string): void {
  const seen = new Set<string>();
  for (const l of lines(text)) {
    assert.ok(!seen.has(l), `line printed twice: ${l}`);
    seen.add(l);
  }
}

describe('in logs (stderr and stdout not a terminal)', () => {
  test('etl run: a line per stage, a line per table, the totals and elapsed time last; nothing repeated', async () => {
    const s = await staging('run');
    const r = await cli(['run', '--source', sample.dump, '--full'], 'output_run', s);
    assert.equal(r.code, 0, r.stderr);
    const all = `${r.stderr}${r.stdout}`;
    assert.ok(lines(all).length <= TABLES + 10, `${lines(all).length} lines:\n${all}`);
    assertNoRepeats(all);
    assert.deepEqual(lines(r.stderr).map((l) => l.split(':')[0]), ['extract', 'transform', 'load'], r.stderr);
    for (const l of lines(r.stderr)) assert.match(l, ELAPSED);
    assert.match(lastLine(r.stdout), /^run \d{8}T\d{9}Z: [\d,]+ documents → [\d,]+ rows .* [\d,]+ inserted.* in /);
    assert.match(lastLine(r.stdout), ELAPSED);
    assert.doesNotMatch(all, /[❯›]/);
  });

  test('etl run: its table says what load did with every staged row (a second run of the same dump: all unchanged)', async () => {
    const s = await staging('run-twice');
    const url = await servers.postgres.createDatabase('output_run_twice');
    const run = () => etl(['run', '--source', sample.dump, '--full', '--staging', s, '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url } });
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    const again = await run();
    assert.equal(again.code, 0, again.stderr);
    const [header, , ...body] = lines(again.stdout).filter((l) => !/^(rejected|pending|run |report|deleted|warning)/.test(l));
    const names = header!.split(/\s{2,}/);
    const rows = body.map((l) => Object.fromEntries(l.split(/\s{2,}/).map((cell, i) => [names[i]!, i === 0 ? cell : Number(cell.replace(/,/g, ''))])));
    assert.equal(rows.length, TABLES, again.stdout);
    const users = rows.find((r) => r.table === 'users')!;
    const dedupe = new Set([...(await loadPipeline(PIPELINE)).tables.values()].filter((t) => t.mergeKind === 'dedupe_upsert').map((t) => t.name));
    assert.ok(dedupe.size > 0, 'pipeline.yaml has dedupe tables');
    assert.ok((users.unchanged as number) > 0 && users.inserted === 0 && users.updated === 0, JSON.stringify(users));
    for (const r of rows) {
      if (dedupe.has(r.table as string)) continue; // its duplicates are contributions that lost
      const applied = ['inserted', 'updated', 'unchanged', 'load rejected', 'duplicates'].reduce((a, k) => a + (r[k] as number), 0);
      assert.equal(applied, r.rows, `${r.table}: ${JSON.stringify(r)}`);
    }
  });

  test('etl extract, transform and load each end with their totals and elapsed time; no per-table progress lines', async () => {
    const s = await staging('stages');
    const url = await servers.postgres.createDatabase('output_stages');
    const env = { DATABASE_URL: url };
    const flags = ['--staging', s, '--pipeline', PIPELINE];
    const extract = await etl(['extract', '--source', sample.dump, '--full', ...flags], { cwd: sample.work, env });
    assert.equal(extract.code, 0, extract.stderr);
    assert.match(lastLine(extract.stdout), /^extract: 2,000 documents from 22 collection\(s\) .* in /);
    const transform = await etl(['transform', ...flags], { cwd: sample.work, env });
    assert.equal(transform.code, 0, transform.stderr);
    assert.match(lastLine(transform.stdout), /^transform: 2,000 documents → [\d,]+ rows in 31 table\(s\), [\d,]+ rejected, .* in /);
    const load = await etl(['load', ...flags], { cwd: sample.work, env });
    assert.equal(load.code, 0, load.stderr);
    assert.match(lastLine(load.stdout), /^load: [\d,]+ rows into 31 table\(s\): [\d,]+ inserted, .* in .*; run \d{8}T\d{9}Z loaded into postgresql:\/\//);
    // The rows load took are the rows transform staged: a dedupe table counts its rows, not the contributions they come from.
    const staged = /→ ([\d,]+) rows in/.exec(lastLine(transform.stdout))![1];
    assert.equal(/^load: ([\d,]+) rows into/.exec(lastLine(load.stdout))![1], staged, `${lastLine(transform.stdout)}\n${lastLine(load.stdout)}`);
    for (const r of [extract, transform, load]) {
      assert.match(lastLine(r.stdout), ELAPSED);
      assert.equal(r.stderr, '', 'nothing on stderr but warnings and errors');
      assertNoRepeats(r.stdout);
    }
  });

  test('--quiet: the final line only; --verbose: a line per batch and per item, timestamped', async () => {
    const s = await staging('quiet');
    const url = await servers.postgres.createDatabase('output_quiet');
    const env = { DATABASE_URL: url };
    const flags = ['--staging', s, '--pipeline', PIPELINE];
    // The final line of the commands that are not stages says what they did too, never a line of their listing.
    const finalLine = async (args: readonly string[], expected: RegExp): Promise<void> => {
      const r = await etl([...args, '--quiet'], { cwd: sample.work, env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(lines(r.stdout).length, 1, r.stdout);
      assert.match(r.stdout, expected);
    };
    await finalLine(['schema', '--dry-run', '--pipeline', PIPELINE], /^-- 38 CREATE TABLE statements: 31 table\(s\) of pipeline.yaml, 7 of etl's state \(--dry-run: nothing applied\)$/m);
    await finalLine(['schema', '--yes', '--pipeline', PIPELINE], /^postgresql:\/\/.*: 38 table\(s\) created, 0 already there; 0 change\(s\) applied to existing tables$/m);
    for (const args of [['extract', '--source', sample.dump, '--full'], ['transform'], ['load']]) {
      const r = await etl([...args, ...flags, '--quiet'], { cwd: sample.work, env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(lines(r.stdout).length, 1, r.stdout);
      assert.match(r.stdout, ELAPSED);
    }
    await finalLine(['runs', '--staging', s], /^1 run \(.*; \* = latest\)$/m);
    const verbose = await etl(['transform', ...flags, '--verbose'], { cwd: sample.work, env });
    assert.equal(verbose.code, 0, verbose.stderr);
    assert.match(verbose.stderr, /^\[ *[\d.]+ s\] transform Transform run \d{8}T\d{9}Z: 31 table\(s\)/m);
    assert.match(verbose.stderr, /^\[ *[\d.]+ s\] transform users: \d[\d,]* of 1,?\d+ documents/m);
    assert.match(verbose.stderr, /^\[ *[\d.]+ s\] transform users: 160 documents → [\d,]+ rows/m);
    assert.match(verbose.stderr, /^\[ *[\d.]+ s\] transform done: transform: 2,000 documents/m);
  });

  test('--quiet where a list of findings ends the output: the final line is their headline, never their last item', async () => {
    const s = await staging('quiet-findings');
    const url = await servers.postgres.createDatabase('output_quiet_findings');
    const env = { DATABASE_URL: url };
    const loaded = await etl(['run', '--source', sample.dump, '--full', '--quiet', '--staging', s, '--pipeline', PIPELINE], { cwd: sample.work, env });
    assert.equal(loaded.code, 0, loaded.stderr);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('ALTER TABLE users ADD COLUMN extra_col integer');
    await client.end();
    const quiet = async (args: readonly string[], code: number, headline: RegExp): Promise<void> => {
      const r = await etl([...args, '--quiet'], { cwd: sample.work, env });
      assert.equal(r.code, code, r.output);
      assert.equal(lines(r.stdout).length, 1, r.stdout);
      assert.match(r.stdout, headline, `etl ${args[0]} --quiet`);
    };
    await quiet(['schema', '--check', '--pipeline', PIPELINE], 1, /^etl schema would apply 0 change\(s\) and refuse 1\b/);
    await quiet(['status', '--staging', s, '--pipeline', PIPELINE], 0, /^drift: 1 difference\(s\) between the database and pipeline\.yaml/);
    // A run folder with one byte more in a CSV: verify finds several mismatches.
    const run = path.join(s, (await readFile(path.join(s, 'latest'), 'utf8')).trim());
    const copy = path.join(path.dirname(s), 'tampered');
    await cp(run, copy, { recursive: true });
    await appendFile(path.join(copy, 'transform', 'users.csv'), 'x\n');
    await quiet(['verify', copy], 1, /^MISMATCH: \d+ differences/);
  });

  test('etl status fits 100 columns', async () => {
    const s = await staging('status');
    const url = await servers.postgres.createDatabase('output_status');
    const loaded = await etl(['run', '--source', sample.dump, '--full', '--quiet', '--staging', s, '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url } });
    assert.equal(loaded.code, 0, loaded.stderr);
    const r = await etl(['status', '--staging', s, '--pipeline', PIPELINE], { cwd: sample.work, env: { DATABASE_URL: url } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^users\s/m);
    for (const l of r.stdout.split('\n')) assert.ok(l.length <= 100, `${l.length} columns: ${l}`);
  });
});

describe('on a terminal', () => {
  test('the live task list follows stderr: with stdout redirected to a file it still runs, and the file holds the summary only', async () => {
    const s = await staging('tty');
    const first = await cli(['extract', '--source', sample.dump, '--full', '--quiet'], 'output_tty', s);
    assert.equal(first.code, 0, first.stderr);
    const out = path.join(sample.work, 'summary.txt');
    const typescript = path.join(sample.work, 'typescript');
    // script(1) gives the command a terminal (sized: a 0×0 one cannot show a list); stdout goes to a file.
    const inner = `stty cols 100 rows 40; NO_COLOR=1 ${process.execPath} ${ETL_BIN} transform --staging ${s} --pipeline ${PIPELINE} > ${out}`;
    await new Promise<void>((resolve, reject) =>
      execFile('script', ['-qfec', inner, typescript], { cwd: sample.work, timeout: 120_000 }, (e) => (e ? reject(e) : resolve())),
    );
    const screen = await readFile(typescript, 'utf8');
    assert.match(screen, /\u001b\[2K/, 'the list is redrawn in place');
    assert.match(screen, /transform: 2,000 documents → [\d,]+ rows/);
    const summary = await readFile(out, 'utf8');
    assert.match(summary, /^table\s+documents\s+rows\s+rejected\s+skipped$/m);
    assert.doesNotMatch(summary, /\u001b/);
    assert.match(lastLine(summary), /^transform: 2,000 documents/);
  });
});

describe('npm run demo', () => {
  test('piped into a log: under 80 lines, ending with the totals and the elapsed time', async () => {
    const s = await staging('demo');
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile('bash', ['-c', 'npm run --silent demo 2>&1 | cat'], { cwd: REPO, env: { ...process.env, ETL_STAGING: s, DEMO_SCALE: '2000', DATABASE_URL: '' }, timeout: 300_000, maxBuffer: 1 << 24 }, (e, out) =>
        resolve({ code: e ? 1 : 0, out }),
      );
    });
    assert.equal(r.code, 0, r.out);
    assert.ok(lines(r.out).length < 80, `${lines(r.out).length} lines:\n${r.out}`);
    assert.match(lastLine(r.out), /^etl demo: done: 2,000 documents → [\d,]+ rows .* → [\d,]+ inserted, .* in [\d.]+ s$/);
    assertNoRepeats(r.out.replace(/^\$ etl .*$/gm, ''));
  });

  test("libpq variables in the caller's shell (PGSSLMODE, PGOPTIONS, PGHOST…) do not reach the throwaway server's connections", async () => {
    const s = await staging('demo-pg-env');
    const shell = { PGSSLMODE: 'require', PGOPTIONS: '-c search_path=nowhere', PGHOST: '/nonexistent', PGPORT: '1', PGUSER: 'nobody', PGPASSWORD: 'x', PGDATABASE: 'nope' };
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile('npm', ['run', '--silent', 'demo'], { cwd: REPO, env: { ...process.env, ...shell, ETL_STAGING: s, DEMO_SCALE: '2000', DATABASE_URL: '' }, timeout: 120_000, maxBuffer: 1 << 24 }, (e, stdout, stderr) =>
        resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
    assert.equal(r.code, 0, r.out);
    assert.match(lastLine(r.out), /^etl demo: done: 2,000 documents → /);
  });

  test("a .env in the checkout, for the user's real servers, mapping and remote mode, does not reach the demo", async (t) => {
    // The demo's etl runs in the checkout, where the README has users put their .env.
    const dotenv = path.join(REPO, '.env');
    if (existsSync(dotenv)) return t.skip('this checkout has a .env of its own, left alone');
    // Also the user's own mapping and remote mode: the demo is the bundled sample, pipeline.yaml, locally.
    const remote = 'TRANSFER_SOURCE=remote\nTRANSFER_DESTINATION=remote\nREMOTE_SERVER_URL=127.0.0.1\nREMOTE_SERVER_PORT=1\n';
    await writeFile(dotenv, `DATABASE_URL=postgresql://u:p@127.0.0.1:1/x\nPGSSLMODE=require\nPGPASSWORD=x\nMONGODB_URL=mongodb://127.0.0.1:1/x\nETL_PIPELINE=their-own-pipeline.yaml\n${remote}`);
    t.after(() => rm(dotenv, { force: true }));
    const s = await staging('demo-dotenv');
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile('npm', ['run', '--silent', 'demo'], { cwd: REPO, env: { ...process.env, ETL_STAGING: s, DEMO_SCALE: '2000', DATABASE_URL: '' }, timeout: 120_000, maxBuffer: 1 << 24 }, (e, stdout, stderr) =>
        resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
    assert.equal(r.code, 0, r.out);
    assert.match(lastLine(r.out), /^etl demo: done: 2,000 documents → /);
  });
});
