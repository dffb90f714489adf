// `etl runs` (history from the manifests and the ledger) and `etl report` (one self-contained HTML
// file per run), on real runs loaded into a real PostgreSQL; the report is opened in a real headless
// Chromium from Debian's packages, and `etl pack` puts it first in the archive.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, beforeEach, describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import * as tar from 'tar';
import { useServers } from '../harness/index.ts';
import { CHROMIUM, ensureSystem } from '../../dev/servers/system-packages.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { withChromiumPage } from '../harness/chromium.ts';
import { ObjectId } from 'bson';
import { newProject, realRun, sampleCollections, writeDump } from '../audit/staged-run.ts';
import { createTables, withClient } from '../harness/schema.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { readManifest, type Manifest } from '../../staging/manifest.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { writeRunReport } from '../../report/write-report.ts';
import { etl, REPO } from '../harness/cli.ts';

const servers = useServers({ mongo: false });
const PIPELINE = path.join(REPO, 'pipeline.yaml');

let work = '';
let staging = '';
let dbUrl = '';
const runIds: string[] = [];

/** Two loaded runs of the same sample dump, made once for the file (the servers start in `before`). */
let made: Promise<void> | null = null;
function twoLoadedRuns(): Promise<void> {
  made ??= (async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'etl-cli-report-'));
    staging = path.join(work, 'runs');
    dbUrl = await servers.postgres.createDatabase('report_history');
    const dump = path.join(work, 'dump');
    assert.equal((await etl(['sample', '--scale', '2000', '--out', dump, '--quiet'], { cwd: work })).code, 0);
    for (let i = 0; i < 2; i++) {
      const r = await etl(['run', '--source', dump, '--full', '--quiet', '--json', '--staging', staging, '--pipeline', PIPELINE], { cwd: work, env: { DATABASE_URL: dbUrl } });
      assert.equal(r.code, 0, r.stderr);
      runIds.push((JSON.parse(r.stdout) as { runId: string }).runId);
    }
  })();
  return made;
}
after(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

const manifestOf = (runId: string): Promise<Manifest> => readManifest(runPaths(staging, runId));
const sum = <T>(rec: Record<string, T> | undefined, f: (x: T) => number) => Object.values(rec ?? {}).reduce((a, x) => a + f(x), 0);

interface Figures {
  tables: Record<string, Record<string, number | null>>;
  rejects: Record<string, number>;
  totals: Record<string, number | null>;
  historyRuns: string[];
  identities: number;
  broken: number;
  bars: number;
}

/** Reads the figures of the report from its data-* attributes, in the page. */
const READ_FIGURES = `(() => {
  const value = (el) => (el && el.getAttribute('data-value') !== null ? Number(el.getAttribute('data-value')) : null);
  const tables = {};
  for (const tr of document.querySelectorAll('#table-figures tbody tr')) {
    const row = {};
    for (const td of tr.querySelectorAll('td[data-field]')) row[td.getAttribute('data-field')] = value(td);
    tables[tr.getAttribute('data-key')] = row;
  }
  const rejects = {};
  for (const tr of document.querySelectorAll('#reject-reasons tbody tr')) rejects[tr.getAttribute('data-key')] = value(tr.querySelector('td[data-field=count]'));
  const totals = {};
  for (const e of document.querySelectorAll('#totals [data-field]')) totals[e.getAttribute('data-field')] = value(e);
  const historyRuns = [...document.querySelectorAll('#history tbody tr')].map((tr) => tr.getAttribute('data-key'));
  const identities = document.querySelectorAll('#identities tbody tr').length;
  const broken = document.querySelectorAll('#identities .bad').length;
  return { tables, rejects, totals, historyRuns, identities, broken, bars: document.querySelectorAll('#history svg rect').length };
})()`;

function assertFigures(shown: Figures, m: Manifest): void {
  assert.equal(shown.totals.documents, sum(m.stages.extract?.collections, (c) => c.documents));
  assert.equal(shown.totals.rows, sum(m.stages.transform?.tables, (t) => t.rows));
  assert.ok(shown.identities > 31, 'the count identities are listed');
  assert.equal(shown.broken, 0, 'and they all hold');
  for (const [table, t] of Object.entries(m.stages.transform!.tables)) {
    const l = m.stages.load!.tables[table]!;
    const s = shown.tables[table] ?? {};
    assert.deepEqual(
      [s.documents, s.rows, s.rejected, s.inserted, s.updated, s.load_rejected, s.nulled, s.orphaned],
      [t.documents, t.rows, t.rejected, l.inserted, l.updated, l.rejected, l.nulled, l.orphaned],
      table,
    );
    const loadRejects = Object.entries(shown.rejects).filter(([k]) => k.startsWith(`${table}/load/`)).reduce((a, [, n]) => a + n, 0);
    assert.equal(loadRejects, l.rejected + l.nulled, `${table}: rejects by reason add up`);
  }
  assert.deepEqual(shown.historyRuns.slice(-2), runIds, 'both runs in the history, oldest first, this one last');
  assert.ok(shown.bars >= 2 * 2, 'a bar per run and stage in the charts');
}

describe('etl runs', () => {
  beforeEach(twoLoadedRuns);
  test('lists each run with when, source, stage durations, documents, rows, rejects and loaded, from manifests and ledger', async () => {
    const json = await etl(['runs', '--json', '--staging', staging], { cwd: work, env: { DATABASE_URL: dbUrl } });
    assert.equal(json.code, 0, json.stderr);
    type Entry = { run_id: string; source: string; seconds: Record<string, number>; documents: number; rows: number; rejects: number; loaded: boolean; loaded_at: string; pending: number | null };
    const h = JSON.parse(json.stdout) as { ledger: { read: boolean }; runs: Entry[] };
    assert.equal(h.ledger.read, true);
    assert.deepEqual(h.runs.map((r) => r.run_id), [...runIds].reverse());
    for (const r of h.runs) {
      const m = await manifestOf(r.run_id);
      assert.equal(r.documents, 2000);
      assert.equal(r.rows, sum(m.stages.transform?.tables, (t) => t.rows));
      assert.equal(r.rejects, sum(m.stages.transform?.tables, (t) => t.rejected) + sum(m.stages.load?.tables, (t) => t.rejected));
      assert.match(r.source, /mongodump folder/);
      for (const s of ['extract', 'transform', 'load']) assert.ok(typeof r.seconds[s] === 'number' && r.seconds[s]! >= 0, `${s} seconds`);
      assert.equal(r.loaded, true);
      assert.match(r.loaded_at, /^\d{4}-\d\d-\d\dT/);
      assert.equal(r.pending, sum(m.stages.load?.tables, (t) => (t.pending?.rows ?? 0) + (t.pending?.nulls ?? 0)), 'pending: rows held back or with a NULL reference');
    }
    const text = await etl(['runs', '--staging', staging], { cwd: work, env: { DATABASE_URL: dbUrl } });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^run\s+when \(UTC\)\s+source\s+extract\s+transform\s+load\s+documents\s+rows\s+rejects\s+pending\s+loaded$/m);
    assert.match(text.stdout, new RegExp(`^\\* ${runIds[1]}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d\\s+mongodump.*\\s+[\\d.]+ s\\s+[\\d.]+ s\\s+[\\d.]+ s\\s+2,000\\s+[\\d,]+\\s+[\\d,]+\\s+[\\d,]+\\s+yes$`, 'm'));
    assert.match(text.stdout, /^ledger: postgresql:\/\/.*:\*\*\*@/m);
  });

  test('a run listed from the ledger alone has the rows it had with its files: a dedupe table counts its rows, not its contributions', async () => {
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'etl-cli-report-empty-'));
    try {
      const r = await etl(['runs', '--json', '--staging', elsewhere], { cwd: work, env: { DATABASE_URL: dbUrl } });
      assert.equal(r.code, 0, r.stderr);
      const h = JSON.parse(r.stdout) as { runs: { run_id: string; rows: number; staged: boolean }[] };
      for (const id of runIds) {
        const entry = h.runs.find((x) => x.run_id === id);
        assert.equal(entry?.staged, false, `${id} is listed from the ledger`);
        assert.equal(entry?.rows, sum((await manifestOf(id)).stages.transform?.tables, (t) => t.rows), id);
      }
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  test('a run the ledger knows but whose files were cleaned is listed, with the pending rows load recorded', async () => {
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    try {
      await client.query(`INSERT INTO etl_runs (run_id, table_name, pipeline_sha256, summary) VALUES ('20200101T000000000Z', 'users', 'x', $1)`, [
        JSON.stringify({ staged: 7, inserted: 5, updated: 2, deleted: 0, rejected: 1, pending: 4 }),
      ]);
    } finally {
      await client.end();
    }
    const r = await etl(['runs', '--staging', staging], { cwd: work, env: { DATABASE_URL: dbUrl } });
    assert.equal(r.code, 0, r.stderr);
    // Recorded without `run_tables` (as load did before it wrote that figure): the tables it staged
    // are not known, so it is listed by the tables it was loaded into, not as loaded whole; nor
    // without `run_rejected_before_load` what its extract and transform refused: its rejects are not
    // said (load's 1 alone would be fewer than it had).
    assert.match(r.stdout, /^ {2}20200101T000000000Z\s+2020-01-01 00:00\s+-\s+-\s+-\s+done\s+-\s+7\s+-\s+4\s+into 1 table \(cleaned\)$/m);
  });

  test('pending of a --tables run is what etl_pending holds after its load, the tables it did not stage too', async () => {
    const db = await servers.postgres.createDatabase('report_pending_tables');
    const runs = path.join(work, 'runs-pending');
    const run = async (extra: string[]) => {
      const r = await etl(['run', '--source', path.join(work, 'dump'), '--quiet', '--json', '--staging', runs, '--pipeline', PIPELINE, ...extra], { cwd: work, env: { DATABASE_URL: db } });
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { runId: string }).runId;
    };
    await run(['--full']);
    const waiting = async () => {
      const client = new pg.Client({ connectionString: db });
      await client.connect();
      try {
        return (await client.query<{ t: string; n: number }>('SELECT table_name AS t, count(*)::int AS n FROM etl_pending GROUP BY 1')).rows;
      } finally {
        await client.end();
      }
    };
    const before = await waiting();
    assert.ok(before.length > 0, 'the sample leaves rows pending');
    // A table that has nothing pending: the run's own tables say nothing of the others'.
    const table = (await loadPipeline(PIPELINE)).loadOrder.find((t) => !before.some((p) => p.t === t))!;
    const subset = await run(['--tables', table]);
    const after = await waiting();
    const json = await etl(['runs', '--json', '--staging', runs], { cwd: work, env: { DATABASE_URL: db } });
    assert.equal(json.code, 0, json.stderr);
    const entry = (JSON.parse(json.stdout) as { runs: { run_id: string; pending: number }[] }).runs.find((r) => r.run_id === subset);
    const total = after.reduce((a, p) => a + p.n, 0);
    assert.equal(entry?.pending, total, `etl runs: the pending rows after run ${subset} (--tables ${table}), every table's`);
    // Its files cleaned, the ledger alone says the same.
    await rm(path.join(runs, subset), { recursive: true });
    const cleaned = await etl(['runs', '--json', '--staging', runs], { cwd: work, env: { DATABASE_URL: db } });
    const fromLedger = (JSON.parse(cleaned.stdout) as { runs: { run_id: string; pending: number; staged: boolean }[] }).runs.find((r) => r.run_id === subset);
    assert.deepEqual(fromLedger && { staged: fromLedger.staged, pending: fromLedger.pending }, { staged: false, pending: total }, 'etl runs from the ledger: every table\'s pending rows');
  });

  test('an unreachable ledger is a note, not a failure: the staged runs are listed', async () => {
    const r = await etl(['runs', '--staging', staging], { cwd: work, env: { DATABASE_URL: 'postgresql://u:pw-x7@127.0.0.1:1/x' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ledger not read \(cannot connect to PostgreSQL/m);
    assert.equal((r.stdout.match(/^[* ] \d{8}T\d{9}Z/gm) ?? []).length, 2);
    assert.doesNotMatch(r.stdout + r.stderr, /pw-x7/);
  });
});

describe('etl report', () => {
  beforeEach(twoLoadedRuns);
  test('writes one self-contained HTML file into the run folder: no script, no external asset, no password', async () => {
    const r = await etl(['report', '--staging', staging], { cwd: work, env: { DATABASE_URL: dbUrl } });
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(staging, runIds[1]!, 'report.html');
    assert.match(r.stdout, new RegExp(`report of run ${runIds[1]}: ${file.replace(/[/.]/g, '\\$&')}`));
    const html = await readFile(file, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    assert.doesNotMatch(html, /<script|<link|<iframe|<img|@import|url\(/i);
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i);
    assert.ok(!html.includes(decodeURIComponent(new URL(dbUrl).password)), 'no password');
  });

  test('opens in headless Chromium without console errors or network requests; the numbers are the manifest\'s', async () => {
    await ensureSystem(CHROMIUM);
    const { chromium } = await import('playwright-core');
    const file = path.join(staging, runIds[1]!, 'report.html');
    // A fresh profile, removed after the file's tests (the browser is closed by then).
    const profile = await tempDir('etl-chromium-profile-');
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (req) => requests.push(req.url()));
      const response = await page.goto(`file://${file}`, { waitUntil: 'load' });
      assert.ok(response === null || response.ok(), 'the page loads');
      assert.deepEqual(problems, []);
      assert.deepEqual(requests, [`file://${file}`], 'no request but the page itself');
      assert.equal(await page.title(), `etl run ${runIds[1]}`);
      // A string, not a function: tsx would compile a function with helpers the page does not have.
      assertFigures((await page.evaluate(READ_FIGURES)) as Figures, await manifestOf(runIds[1]!));
      const png = process.env.REPORT_SCREENSHOT ?? path.join(profile, 'report.png');
      await page.screenshot({ path: png, fullPage: true });
      assert.ok((await stat(png)).size > 20_000, 'a screenshot with something on it');
    } finally {
      await browser.close();
    }
  });

  test('etl pack puts report.html first in the archive, and the archive still verifies', async (t) => {
    const out = path.join(await tempDir('etl-cli-pack-', t), 'run.tar.gz');
    const packed = await etl(['pack', '--staging', staging, '--out', out], { cwd: work });
    assert.equal(packed.code, 0, packed.stderr);
    const members: string[] = [];
    await tar.t({ file: out, onReadEntry: (e) => members.push(e.path) });
    assert.equal(members[0], `${runIds[1]}/report.html`);
    const verified = await etl(['verify', out, '--json'], { cwd: work });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });
});

describe('a packed report whose figures were changed', () => {
  test('etl verify names report.html (the archive verified OK with any figure of its report changed)', async (t) => {
    await twoLoadedRuns();
    const scratch = await tempDir('etl-report-tamper-', t);
    const out = path.join(scratch, 'run.tar.gz');
    assert.equal((await etl(['pack', '--staging', staging, '--out', out, '--quiet'], { cwd: work })).code, 0);
    const unpacked = path.join(scratch, 'unpacked');
    await mkdir(unpacked);
    const members: string[] = [];
    await tar.x({ file: out, cwd: unpacked, onReadEntry: (e) => members.push(e.path) });
    const report = path.join(unpacked, runIds[1]!, 'report.html');
    const html = await readFile(report, 'utf8');
    // The users row says one more row inserted than the load did: what an auditor reads first.
    const inserted = /(<tr data-key="users">.*?data-field="inserted" data-value=")(\d+)(">)([\d,]+)(<)/.exec(html)!;
    const more = Number(inserted[2]) + 1;
    const changed = html.replace(inserted[0], `${inserted[1]}${more}${inserted[3]}${more.toLocaleString('en-US')}${inserted[5]}`);
    assert.notEqual(changed, html);
    await writeFile(report, changed);
    const tampered = path.join(scratch, 'tampered.tar.gz');
    await tar.c({ file: tampered, gzip: true, cwd: unpacked, portable: true }, members.filter((m) => !m.endsWith('/')));
    const r = await etl(['verify', tampered], { cwd: scratch });
    assert.equal(r.code, 1, r.output);
    assert.match(r.stdout, /report\.html/, 'the report is named');
    const json = JSON.parse((await etl(['verify', tampered, '--json'], { cwd: scratch })).stdout) as { ok: boolean; mismatches: { check: string; file?: string }[] };
    assert.deepEqual(json.mismatches.map((m) => [m.check, m.file]), [['report', 'report.html']]);
    // The untouched archive still verifies.
    assert.equal((await etl(['verify', out, '--quiet'], { cwd: scratch })).code, 0);
  });
});

describe('the ids of the report', () => {
  test('are unique (the history section and its table were both id="history": a link to #history, getElementById, an auditor\'s script found one of them)', async () => {
    await twoLoadedRuns();
    const r = await etl(['report', '--staging', staging, '--no-ledger', '--quiet'], { cwd: work });
    assert.equal(r.code, 0, r.output);
    const html = await readFile(path.join(staging, runIds[1]!, 'report.html'), 'utf8');
    const ids = [...html.matchAll(/ id="([^"]*)"/g)].map((m) => m[1]!);
    assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], `ids: ${ids.join(', ')}`);
    assert.match(html, /<section id="history">/, 'the section keeps its id');
  });
});

describe('--out naming a folder, and --run latest', () => {
  test('etl pack and etl report --out FOLDER: a usage error before any work, nothing written beside it', async (t) => {
    await twoLoadedRuns();
    const folder = await tempDir('etl-cli-out-', t);
    for (const [command, example] of [['pack', 'tar.gz'], ['report', 'html']] as const) {
      const r = await etl([command, '--staging', staging, '--out', folder], { cwd: work });
      assert.equal(r.code, 2, `${command}: ${r.output}`);
      assert.match(r.stderr, new RegExp(`^error: --out ${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is a folder`, 'm'));
      assert.match(r.stderr, new RegExp(`^hint: .*--out .*\\.${example.replace('.', '\\.')}`, 'm'));
      assert.doesNotMatch(r.output, /EISDIR|^\s+at /m);
    }
    assert.deepEqual(await readdir(folder), []);
    assert.deepEqual((await readdir(path.dirname(folder))).filter((n) => n.endsWith('.partial')), [], 'no FOLDER.partial beside it');
  });

  test('--run latest is the run <staging>/latest names', async () => {
    await twoLoadedRuns();
    const r = await etl(['report', '--staging', staging, '--run', 'latest', '--no-ledger', '--json'], { cwd: work });
    assert.equal(r.code, 0, r.output);
    assert.equal((JSON.parse(r.stdout) as { run_id: string }).run_id, runIds[1]);
  });
});

describe('report of a run with rejected rows', () => {
  test('rejects by reason with a few examples each: values cut short, configured secrets never shown', async (t) => {
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const collections = sampleCollections();
    const secret = 'hunter2-Secret-Value';
    collections.users!.push({ ...collections.users![0]!, _id: new ObjectId('65f0000000000000000000aa'), name: `${secret}${'x'.repeat(300)}` });
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, collections);
    const model = await loadPipeline(project.pipelineFile);
    const extracted = await runExtract({ model, stagingDir: project.stagingDir, source: { kind: 'dump', path: dump }, full: true });
    await runTransform({ model, stagingDir: project.stagingDir, runId: extracted.runId });
    const m = await readManifest(runPaths(project.stagingDir, extracted.runId));
    const r = await writeRunReport({ stagingDir: project.stagingDir, secrets: [secret] });
    const html = await readFile(r.file, 'utf8');
    assert.ok(!html.includes(secret), 'the configured secret is not in the report');
    const users = m.stages.transform!.tables.users!;
    assert.ok(users.rejected >= 2);
    const counts = [...html.matchAll(/<tr data-key="users\/transform\/([a-z_]+)">.*?data-field="count" data-value="(\d+)"/g)].map((x) => [x[1], Number(x[2])] as const);
    assert.deepEqual(new Set(counts.map(([reason]) => reason)), new Set(['null_in_not_null', 'too_long']));
    assert.equal(counts.reduce((a, [, n]) => a + n, 0), users.rejected);
    const tooLong = /<tr data-key="users\/transform\/too_long">.*?<\/tr>/s.exec(html)![0];
    const value = /name = <span class="mono">([^<]*)<\/span>/.exec(tooLong)![1]!.replaceAll('&quot;', '"');
    assert.equal(value.length, 60, `a value cut to 60 characters: ${value}`);
    assert.ok(value.endsWith('…') && value.startsWith('"***x'), value);
  });
});

/** A real run whose load failed: a trigger on users raises `raise` (RAISE EXCEPTION's arguments). */
async function failedLoad(t: TestContext, raise: string) {
  const url = await servers.postgres.createDatabase(t.name);
  const run = await realRun();
  t.after(() => rm(run.cwd, { recursive: true, force: true }));
  await createTables(url, await loadPipeline(run.pipelineFile));
  await withClient(url, (c) =>
    c.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION ${raise}; END$$;
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON users FOR EACH STATEMENT EXECUTE FUNCTION refuse()`),
  );
  const loaded = await etl(['load'], { cwd: run.cwd, env: { DATABASE_URL: url } });
  assert.equal(loaded.code, 1, loaded.output.slice(0, 2000));
  return { url, run };
}

describe('report of a run whose stage failed', () => {
  test('says which stage failed, the error it recorded and what to do (it said "not loaded (failed)" and no more)', async (t) => {
    const { run } = await failedLoad(t, `'users are read-only today'`);
    const reported = await etl(['report', '--no-ledger'], { cwd: run.cwd });
    assert.equal(reported.code, 0, reported.output);
    const html = await readFile(path.join(run.paths.dir, 'report.html'), 'utf8');
    assert.match(html, /<dt>result<\/dt><dd>not loaded \(failed\)<\/dd>/);
    assert.match(html, new RegExp(`<dt>load failed</dt><dd>users: [^<]*users are read-only today \\[pg_P0001\\]; fix what the error names, then run \`etl load --run ${run.runId}\` again</dd>`));

    // etl runs says why as well (it said `failed` in the load column, and no more).
    const runs = await etl(['runs', '--no-ledger'], { cwd: run.cwd });
    assert.equal(runs.code, 0, runs.output);
    assert.match(runs.stdout, new RegExp(`^${run.runId}: its load failed: users: .*users are read-only today \\[pg_P0001\\]; fix what the error names, then run \`etl load --run ${run.runId}\` again$`, 'm'));
    const json = JSON.parse((await etl(['runs', '--no-ledger', '--json'], { cwd: run.cwd })).stdout) as { runs: { run_id: string; failures: { stage: string; code: string }[] }[] };
    assert.deepEqual(json.runs.find((r) => r.run_id === run.runId)?.failures.map((f) => [f.stage, f.code]), [['load', 'pg_P0001']]);
  });
});

describe('rejects of every stage, staged or cleaned', () => {
  /**
   * A loaded run that refused something at each stage: a users document without `_id` (extract:
   * missing_id), one without a name (transform: null_in_not_null), a link to a user transform
   * refused (load: missing_reference).
   */
  async function loadedRunWithRejects(t: { name: string; after: (fn: () => unknown) => void }) {
    const url = await servers.postgres.createDatabase(t.name);
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const collections = sampleCollections();
    const { _id: _drop, ...noId } = collections.users![0]!;
    collections.users!.push({ ...noId, name: 'No id' });
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, collections);
    const r = await etl(['run', '--source', dump, '--quiet', '--json'], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.equal(r.code, 0, r.output);
    const runId = (JSON.parse(r.stdout) as { runId: string }).runId;
    const m = await readManifest(runPaths(project.stagingDir, runId));
    const stage = {
      extract: sum(m.stages.extract?.collections, (c) => c.rejected ?? 0),
      transform: sum(m.stages.transform?.tables, (x) => x.rejected),
      load: sum(m.stages.load?.tables, (x) => x.rejected),
    };
    assert.deepEqual(Object.values(stage).map((n) => n > 0), [true, true, true], `a reject at every stage: ${JSON.stringify(stage)}`);
    return { url, project, runId, stage, total: stage.extract + stage.transform + stage.load };
  }

  test('etl runs counts the rejects of every stage, and the same once the run\'s files are cleaned (the ledger said only load\'s)', async (t) => {
    const { url, project, runId, total } = await loadedRunWithRejects(t);
    const rejectsOf = async () => {
      const r = await etl(['runs', '--json'], { cwd: project.cwd, env: { DATABASE_URL: url } });
      assert.equal(r.code, 0, r.output);
      const entry = (JSON.parse(r.stdout) as { runs: { run_id: string; rejects: number | null; staged: boolean }[] }).runs.find((x) => x.run_id === runId);
      return entry && { staged: entry.staged, rejects: entry.rejects };
    };
    assert.deepEqual(await rejectsOf(), { staged: true, rejects: total }, 'staged: extract + transform + load rejects');
    await rm(runPaths(project.stagingDir, runId).dir, { recursive: true });
    assert.deepEqual(await rejectsOf(), { staged: false, rejects: total }, 'cleaned: the same figure, from the ledger');
    const text = await etl(['runs'], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.match(text.stdout, new RegExp(`^ {2}${runId}\\s.*\\s${total}\\s+\\d+\\s+yes \\(cleaned\\)$`, 'm'));
  });

  test('etl status says its rej column is what the last run\'s load rejected (users said 0 after a run that rejected users at transform)', async (t) => {
    const { url, project, runId } = await loadedRunWithRejects(t);
    const r = await etl(['status'], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.equal(r.code, 0, r.output);
    const m = await readManifest(runPaths(project.stagingDir, runId));
    assert.ok(m.stages.transform!.tables.users!.rejected > 0 && m.stages.load!.tables.users!.rejected === 0, 'users: rejected at transform, none at load');
    assert.match(r.stdout, new RegExp(`^users\\s+\\S+ \\S+\\s+${runId}\\s+\\d+\\s+\\d+\\s+\\d+\\s+0$`, 'm'), 'users: rej 0, the load figure');
    assert.match(r.stdout, /^ins, upd, del, rej: rows the last run's load inserted, updated, deleted, rejected \(/m, 'the legend says whose figures they are');
  });

  test('etl report lists the documents extract refused by reason, and counts them in its total', async (t) => {
    const { project, runId, stage, total } = await loadedRunWithRejects(t);
    const r = await etl(['report', '--no-ledger'], { cwd: project.cwd });
    assert.equal(r.code, 0, r.output);
    const html = await readFile(path.join(runPaths(project.stagingDir, runId).dir, 'report.html'), 'utf8');
    const row = /<tr data-key="users\/extract\/missing_id">.*?<\/tr>/s.exec(html)?.[0] ?? '';
    assert.match(row, new RegExp(`data-field="count" data-value="${stage.extract}"`), 'the extract reject, by reason');
    assert.match(row, /No id/, 'with the document as an example');
    // Named by where it was read (it has no _id): its rank in the read and its byte in the dump file.
    // And what extract found, as a transform reject names its column (it said "- = " and no more).
    assert.match(row, /<li><span class="mono">document \d+ of [^<]*users\.bson at byte \d+<\/span> the document has no _id: <span class="mono">/, 'the example says which document it is, and what is wrong with it');
    assert.match(html, new RegExp(`<strong data-field="rejected" data-value="${total}">`), 'the total: every stage\'s rejects');
  });
});

describe('the watermarks of a report', () => {
  test('a dump older than the watermark: the report does not say its load stored the run\'s "after", and shows the load\'s warning', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const run = async (collections: ReturnType<typeof sampleCollections>, name: string) => {
      const dump = path.join(project.cwd, name, 'wappizy');
      await writeDump(dump, collections);
      const r = await etl(['run', '--source', dump, '--quiet', '--json'], { cwd: project.cwd, env: { DATABASE_URL: url } });
      assert.equal(r.code, 0, r.output);
      return (JSON.parse(r.stdout) as { runId: string }).runId;
    };
    // First a dump whose events were edited today, then the sample's (dated 2024): its events' "after" is behind.
    const today = sampleCollections();
    for (const e of today.events!) e.update_date = new Date();
    const first = await run(today, 'dump-today');
    const older = await run(sampleCollections(), 'dump-2024');
    const stored = await withClient(url, (c) => c.query<{ run_id: string; w: Date }>(`SELECT run_id, watermark AS w FROM etl_watermarks WHERE table_name = 'events'`));
    assert.equal(stored.rows[0]?.run_id, first, 'events keeps the watermark the first run set');
    const r = await etl(['report', '--no-ledger'], { cwd: project.cwd });
    assert.equal(r.code, 0, r.output);
    const html = await readFile(path.join(runPaths(project.stagingDir, older).dir, 'report.html'), 'utf8');
    const next = /<tr data-key="events">.*?data-field="next">([^<]*)</s.exec(html)?.[1];
    assert.ok(next !== undefined && Date.parse(next) < stored.rows[0]!.w.getTime(), `events: the run's "after" (${next}) is behind the watermark PostgreSQL keeps`);
    assert.doesNotMatch(html, /a load of this run stores “after” for the collection's tables/, 'not said of every collection');
    assert.match(html, /<dt>load warning<\/dt><dd>this dump&#39;s newest dates are before the watermark of [^<]*events/, 'the load\'s warning, naming the table');
  });
});

describe('a damaged manifest said by etl runs and etl status', () => {
  test('the problem is shown bounded, its controls escaped, a credential in it scrubbed (a hostile key went out raw, 5,000 characters long)', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const staging = await tempDir('etl-damaged-manifest-', t);
    const runId = '20240301T100000000Z';
    await mkdir(path.join(staging, runId));
    // A name the manifest check quotes in its refusal: terminal controls, a great length, a URL with a password.
    const key = `\u001b[2J\u001b[31m\u009bEVIL${'x'.repeat(5000)} postgres://u:pw-hostile@h/db`;
    const manifest = { format: 1, run_id: runId, tool_version: '0.1.0', pipeline_sha256: 'x', source: { description: 'd' }, stages: { extract: { status: 'done', collections: { [key]: 1 } } } };
    await writeFile(path.join(staging, runId, 'manifest.json'), JSON.stringify(manifest));
    for (const args of [['runs', '--no-ledger'], ['status', '--pipeline', PIPELINE]]) {
      const r = await etl([...args, '--staging', staging], { env: { DATABASE_URL: url } });
      assert.equal(r.code, 0, r.output);
      assert.match(r.stdout, /is not a manifest etl wrote/, `etl ${args[0]} says the manifest is damaged`);
      assert.doesNotMatch(r.stdout, /[\u001b\u009b]/, `etl ${args[0]}: no terminal control`);
      assert.doesNotMatch(r.stdout, /pw-hostile/, `etl ${args[0]}: no password`);
      const longest = Math.max(...r.stdout.split('\n').map((l) => l.length));
      assert.ok(longest <= 1_100, `etl ${args[0]}: lines bounded (${longest})`);
    }
  });
});

describe('a manifest\'s source said by etl runs', () => {
  test('its controls are escaped (a run folder from elsewhere rewrote the terminal)', async (t) => {
    const staging = await tempDir('etl-source-controls-', t);
    const runId = '20240301T100000000Z';
    await mkdir(path.join(staging, runId));
    const manifest = { format: 1, run_id: runId, tool_version: '0.1.0', pipeline_sha256: 'x', source: { description: '\u001b[2J\u009b31mdump' }, stages: {} };
    await writeFile(path.join(staging, runId, 'manifest.json'), JSON.stringify(manifest));
    const r = await etl(['runs', '--no-ledger', '--staging', staging]);
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.stdout, /[\u001b\u009b]/, 'no terminal control');
    assert.match(r.stdout, /\\u001b\[2J/, 'the control, escaped');
  });
});

describe('a manifest\'s source holding a bidi control, said by etl runs', () => {
  test('the control is escaped (U+202E turned the rest of the line around on a terminal that orders text by direction)', async (t) => {
    const staging = await tempDir('etl-source-bidi-', t);
    const runId = '20240301T100000000Z';
    await mkdir(path.join(staging, runId));
    const manifest = { format: 1, run_id: runId, tool_version: '0.1.0', pipeline_sha256: 'x', source: { description: '\u202ed\u2067' }, stages: {} };
    await writeFile(path.join(staging, runId, 'manifest.json'), JSON.stringify(manifest));
    const r = await etl(['runs', '--no-ledger', '--staging', staging]);
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.stdout, /[\u202e\u2067]/, 'no bidi control');
    assert.match(r.stdout, /\\u202ed\\u2067/, 'the controls, escaped');
  });
});

describe('folder names said by etl runs and etl status', () => {
  test('the staging folder and pipeline.yaml are shown with their controls escaped (a folder named with ESC [2J cleared the terminal)', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const parent = await tempDir('etl-folder-controls-', t);
    const hostile = path.join(parent, 'runs\u001b[2J\u202e');
    await mkdir(hostile);
    await writeFile(path.join(hostile, 'pipeline.yaml'), await readFile(PIPELINE));
    await createTables(url, await loadPipeline(PIPELINE));
    const runs = await etl(['runs', '--staging', hostile], { env: { DATABASE_URL: url } });
    const status = await etl(['status', '--staging', hostile, '--pipeline', path.join(hostile, 'pipeline.yaml')], { env: { DATABASE_URL: url } });
    for (const [name, r] of [['runs', runs], ['status', status]] as const) {
      assert.equal(r.code, 0, `${name}: ${r.output}`);
      assert.doesNotMatch(r.stdout, /[\u001b\u202e]/, `etl ${name}: no control`);
      assert.match(r.stdout, /runs\\u001b\[2J\\u202e/, `etl ${name}: the folder, its controls escaped`);
    }
  });
});

describe('the file etl report and etl pack say they wrote', () => {
  test('is shown with its controls escaped (a folder named with ESC [2J cleared the terminal)', async (t) => {
    await twoLoadedRuns();
    const folder = path.join(await tempDir('etl-out-controls-', t), 'out\u001b[2J\u202e');
    await mkdir(folder);
    const report = await etl(['report', '--staging', staging, '--no-ledger', '--out', path.join(folder, 'r.html')], { cwd: work });
    const pack = await etl(['pack', '--staging', staging, '--out', path.join(folder, 'r.tar.gz')], { cwd: work });
    for (const [name, r] of [['report', report], ['pack', pack]] as const) {
      assert.equal(r.code, 0, `${name}: ${r.output}`);
      assert.doesNotMatch(r.stdout, /[\u001b\u202e]/, `etl ${name}: no control`);
      assert.match(r.stdout, /out\\u001b\[2J\\u202e\/r\./, `etl ${name}: the file, its controls escaped`);
    }
  });
});

describe('a loaded run transformed again with another pipeline.yaml', () => {
  test('is refused: its files stay those its load record and PostgreSQL\'s rows came from (the report said the counts do not reconcile)', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, sampleCollections());
    const r = await etl(['run', '--source', dump, '--quiet', '--json'], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.equal(r.code, 0, r.output);
    const runId = (JSON.parse(r.stdout) as { runId: string }).runId;
    const paths = runPaths(project.stagingDir, runId);
    const before = await readFile(paths.manifest, 'utf8');
    await writeFile(project.pipelineFile, (await readFile(project.pipelineFile, 'utf8')).replace(/name: age\n {8}sql_type: INTEGER/, 'name: age\n        sql_type: SMALLINT'));
    const again = await etl(['transform', '--run', runId, '--tables', 'users', '--allow-pipeline-change'], { cwd: project.cwd });
    assert.equal(again.code, 1, again.output);
    assert.match(again.stderr, new RegExp(`^error: run ${runId} was loaded \\(events, users, users_events, users_logbook\\) from files transformed with another pipeline\\.yaml`, 'm'));
    assert.match(again.stderr, /^hint: .*etl run/m);
    assert.equal(await readFile(paths.manifest, 'utf8'), before, 'the manifest is as the load left it');
    const reported = await etl(['report', '--no-ledger', '--run', runId], { cwd: project.cwd });
    assert.equal(reported.code, 0, reported.output);
    assert.match(await readFile(path.join(paths.dir, 'report.html'), 'utf8'), /counts <span class="ok">reconcile<\/span>/);
  });
});

describe('a dry-run loaded run transformed again with another pipeline.yaml', () => {
  test('drops the dry run\'s record of the earlier files: the run is not loaded and its counts reconcile (its dry run described files it no longer held)', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, sampleCollections());
    for (const args of [['extract', '--source', dump, '--full'], ['transform'], ['load', '--dry-run']]) {
      const r = await etl([...args, '--quiet'], { cwd: project.cwd, env: { DATABASE_URL: url } });
      assert.equal(r.code, 0, `${args[0]}: ${r.output}`);
    }
    const runId = (await readFile(path.join(project.stagingDir, 'latest'), 'utf8')).trim();
    const paths = runPaths(project.stagingDir, runId);
    assert.equal((await readManifest(paths)).stages.load?.dry_run, true);
    await writeFile(project.pipelineFile, (await readFile(project.pipelineFile, 'utf8')).replace(/name: age\n {8}sql_type: INTEGER/, 'name: age\n        sql_type: SMALLINT'));
    const again = await etl(['transform', '--run', runId, '--tables', 'users', '--allow-pipeline-change'], { cwd: project.cwd });
    assert.equal(again.code, 0, again.output);
    assert.match(again.stderr, /^warning: the record of the run's dry-run load went/m, 'it says the dry run\'s record went');
    const m = await readManifest(paths);
    assert.equal(m.stages.load, undefined, 'no load record of files the run no longer holds');
    assert.deepEqual(await readdir(paths.loadDir).catch(() => []), [], 'nor its rejects files');
    const runs = JSON.parse((await etl(['runs', '--json', '--no-ledger'], { cwd: project.cwd })).stdout) as { runs: { run_id: string; stages: { load: string | null }; pending: number | null }[] };
    assert.deepEqual(runs.runs.find((x) => x.run_id === runId) && { load: runs.runs.find((x) => x.run_id === runId)!.stages.load, pending: runs.runs.find((x) => x.run_id === runId)!.pending }, { load: null, pending: null });
    // etl verify refuses to re-derive CSVs made with another pipeline.yaml than the stored one, by design: its counts hold.
    const verified = await etl(['verify', paths.dir], { cwd: project.cwd });
    assert.match(verified.stdout, /^counts: (\d+) of \1 identities hold$/m, verified.output);
    const reported = await etl(['report', '--no-ledger', '--run', runId], { cwd: project.cwd });
    assert.equal(reported.code, 0, reported.output);
    assert.match(await readFile(path.join(paths.dir, 'report.html'), 'utf8'), /counts <span class="ok">reconcile<\/span>/);
  });
});

describe('a run whose load was killed after it committed', () => {
  test('etl runs counts its load\'s rejects from the ledger, and its report says the ledger records it loaded (it said fewer rejects, and "not loaded")', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, sampleCollections());
    const r = await etl(['run', '--source', dump, '--quiet', '--json'], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.equal(r.code, 0, r.output);
    const runId = (JSON.parse(r.stdout) as { runId: string }).runId;
    const paths = runPaths(project.stagingDir, runId);
    const m = await readManifest(paths);
    const loadRejected = sum(m.stages.load?.tables, (x) => x.rejected);
    const total = sum(m.stages.extract?.collections, (c) => c.rejected ?? 0) + sum(m.stages.transform?.tables, (x) => x.rejected) + loadRejected;
    assert.ok(loadRejected > 0, 'the load rejected rows');
    // As a load killed between its COMMIT and its manifest's record leaves the run: running, its process gone.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const load = m.stages.load!;
    m.stages.load = { status: 'running', started_at: load.started_at, ended_at: null, error: null, dry_run: false, already_applied: false, tables: {}, skipped: [], writer: { pid: deadPid, host: os.hostname() } } as typeof load;
    await writeFile(paths.manifest, `${JSON.stringify(m, null, 2)}\n`);

    const runs = await etl(['runs', '--json'], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.equal(runs.code, 0, runs.output);
    const entry = (JSON.parse(runs.stdout) as { runs: { run_id: string; stages: { load: string }; loaded: boolean; rejects: number }[] }).runs.find((x) => x.run_id === runId);
    assert.deepEqual(entry && { load: entry.stages.load, loaded: entry.loaded, rejects: entry.rejects }, { load: 'killed', loaded: true, rejects: total });

    const reported = await etl(['report', '--run', runId], { cwd: project.cwd, env: { DATABASE_URL: url } });
    assert.equal(reported.code, 0, reported.output);
    const result = /<dt>result<\/dt><dd>([^<]*)<\/dd>/.exec(await readFile(path.join(paths.dir, 'report.html'), 'utf8'))?.[1] ?? '';
    assert.doesNotMatch(result, /^not loaded/, result);
    assert.match(result, /the ledger .* records its load of 4 table\(s\)/, result);
  });
});

describe('the stage timings of a run loaded in two parts', () => {
  test('the load row says its times are the last load\'s, and when the earlier one loaded its tables (it showed the last load alone)', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const dump = path.join(project.cwd, 'dump', 'wappizy');
    await writeDump(dump, sampleCollections());
    for (const args of [['extract', '--source', dump, '--full'], ['transform'], ['load', '--tables', 'users,events'], ['load']]) {
      const r = await etl([...args, '--quiet'], { cwd: project.cwd, env: { DATABASE_URL: url } });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.output}`);
    }
    const runId = (await readFile(path.join(project.stagingDir, 'latest'), 'utf8')).trim();
    const m = await readManifest(runPaths(project.stagingDir, runId));
    const earlier = (m.stages.load?.skipped ?? []).map((x) => x.loaded_at).sort()[0];
    assert.ok(earlier && earlier < m.stages.load!.started_at, 'the first load came before the one the section times');
    const reported = await etl(['report', '--no-ledger'], { cwd: project.cwd });
    assert.equal(reported.code, 0, reported.output);
    const row = /<tr data-key="load">.*?<\/tr>/s.exec(await readFile(path.join(runPaths(project.stagingDir, runId).dir, 'report.html'), 'utf8'))?.[0] ?? '';
    assert.match(row, new RegExp(`data-field="status">done \\(the last load of the run: events, users loaded by an earlier one at ${earlier}\\)<`), row);
  });
});

describe('bidi and terminal controls from the data, in the report', () => {
  test('are shown as \\uXXXX: an _id holding U+202E no longer turns the rest of its example (column, value) around, nor a dump folder\'s name the source line', async (t) => {
    const project = await newProject();
    t.after(() => rm(project.cwd, { recursive: true, force: true }));
    const collections = sampleCollections();
    // No name (NOT NULL): rejected at transform, its _id and its column shown as the example.
    collections.users!.push({ _id: '\u202eevil-id\u2066', email: 'e@example.org', creation_date: new Date('2024-03-01T00:00:00Z'), update_date: new Date('2024-03-01T00:00:00Z') });
    const dump = path.join(project.cwd, 'dump\u001b[31m\u202e', 'wappizy');
    await writeDump(dump, collections);
    for (const args of [['extract', '--source', dump, '--full'], ['transform'], ['report', '--no-ledger']]) {
      const r = await etl([...args, '--quiet'], { cwd: project.cwd });
      assert.equal(r.code, 0, `${args[0]}: ${r.output}`);
    }
    const runId = (await readdir(project.stagingDir)).find((n) => /^\d{8}T/.test(n))!;
    const html = await readFile(path.join(runPaths(project.stagingDir, runId).dir, 'report.html'), 'utf8');
    assert.doesNotMatch(html, /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/, 'no bidi control left to reorder what follows it');
    assert.doesNotMatch(html, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no terminal control');
    assert.match(html, /<li><span class="mono">&quot;\\u202eevil-id\\u2066&quot;<\/span> name = <span class="mono">null<\/span><\/li>/, 'the example, its controls escaped');
    assert.match(html, /<dt>source<\/dt><dd>mongodump folder [^<]*dump\\u001b\[31m\\u202e\/wappizy/, 'the source, its controls escaped');
  });
});

describe('a failed load whose error quotes a megabyte', () => {
  test('the report shows the message bounded, and its page stays as wide as the window (it held the whole megabyte, on one line 9.5 million pixels wide)', async (t) => {
    const { run } = await failedLoad(t, `'refused: %', repeat('Z', 1000000)`);
    const reported = await etl(['report', '--no-ledger'], { cwd: run.cwd });
    assert.equal(reported.code, 0, reported.output.slice(0, 2000));
    const file = path.join(run.paths.dir, 'report.html');
    const html = await readFile(file, 'utf8');
    const failure = /<dt>load failed<\/dt><dd>([^<]*)<\/dd>/.exec(html)?.[1] ?? '';
    assert.match(failure, /^users: [^<]*refused: Z+… \([\d,]+ more characters\) \[pg_P0001\]; fix what the error names/, failure.slice(0, 300));
    assert.ok(failure.length < 1_300, `the message bounded (${failure.length.toLocaleString('en-US')} characters)`);
    assert.ok((await stat(file)).size < 200_000, 'the page does not carry the megabyte');

    await withChromiumPage(t, async (page) => {
      await page.goto(`file://${file}`, { waitUntil: 'load' });
      const widths = (await page.evaluate('({ page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth })')) as { page: number; window: number };
      assert.ok(widths.page <= widths.window, `the page fits the window: ${JSON.stringify(widths)}`);
    });
  });
});

describe('a failed load whose error quotes a megabyte, in the manifest', () => {
  test('manifest.json keeps the message bounded, its start and its end, and etl runs --json stays small (the manifest held the whole megabyte)', async (t) => {
    const { run } = await failedLoad(t, `'refused: %', repeat('Z', 1000000) || ' END-OF-MESSAGE'`);
    assert.ok((await stat(run.paths.manifest)).size < 50_000, `manifest.json is ${(await stat(run.paths.manifest)).size.toLocaleString('en-US')} bytes`);
    const error = (await readManifest(run.paths)).stages.load!.error!;
    assert.equal(error.code, 'pg_P0001');
    assert.match(error.message, /^users: [^]*refused: Z+… \([\d,]+ characters left out\) …Z+ END-OF-MESSAGE$/, error.message.slice(0, 300));
    assert.ok(error.message.length <= 4_100, `${error.message.length} characters`);

    const json = await etl(['runs', '--no-ledger', '--json'], { cwd: run.cwd });
    assert.equal(json.code, 0, json.stderr);
    assert.ok(json.stdout.length < 50_000, `etl runs --json wrote ${json.stdout.length.toLocaleString('en-US')} characters`);
    const text = await etl(['runs', '--no-ledger'], { cwd: run.cwd });
    assert.ok(text.stdout.split('\n').every((l) => l.length < 1_000), 'every line of etl runs readable');
  });
});

describe('the chart of the last runs\' durations', () => {
  test('in Chromium, its axis and each run\'s bars end at the run\'s wall time, not at the sum of stages etl run overlaps (a 3 s run was drawn ~3 times as long)', async (t) => {
    await twoLoadedRuns();
    const html = path.join(await tempDir('etl-report-chart-', t), 'report.html');
    const r = await etl(['report', '--staging', staging, '--no-ledger', '--out', html], { cwd: work });
    assert.equal(r.code, 0, r.stderr);
    // Wall time of each run: its first stage's start to its last stage's end.
    const walls: number[] = [];
    for (const id of runIds) {
      const stages = Object.values((await manifestOf(id)).stages);
      walls.push((Math.max(...stages.map((s) => Date.parse(s!.ended_at!))) - Math.min(...stages.map((s) => Date.parse(s!.started_at)))) / 1000);
      const summed = stages.reduce((a, s) => a + (Date.parse(s!.ended_at!) - Date.parse(s!.started_at)) / 1000, 0);
      assert.ok(summed > walls.at(-1)! * 1.2, `etl run overlapped its stages (${summed} s of stages in ${walls.at(-1)} s), else this test proves nothing`);
    }
    await withChromiumPage(t, async (page) => {
      await page.goto(`file://${html}`, { waitUntil: 'load' });
      // The axis labels (their values and heights) and, per run, how high its drawn bars reach, as laid out.
      const drawn = (await page.evaluate(`(() => {
        const svg = document.querySelector('svg[aria-label^="duration per run"]');
        const axis = [...svg.querySelectorAll('line')].map((l, i) => ({ value: Number(svg.querySelectorAll('text[text-anchor=end]')[i].textContent), y: l.getBoundingClientRect().top }));
        const runs = [...svg.querySelectorAll('g[data-key]')].map((g) => ({ run: g.getAttribute('data-key'), top: Math.min(...[...g.querySelectorAll('rect')].map((e) => e.getBoundingClientRect().top)) }));
        return { axis, runs };
      })()`)) as { axis: { value: number; y: number }[]; runs: { run: string; top: number }[] };
      const top = Math.max(...drawn.axis.map((a) => a.value));
      assert.ok(Math.abs(top - Math.max(...walls)) <= 0.1, `the axis ends at the longest wall time (${Math.max(...walls)} s), not at ${top} s`);
      const zero = drawn.axis.find((a) => a.value === 0)!.y;
      const full = drawn.axis.find((a) => a.value === top)!.y;
      assert.deepEqual(drawn.runs.map((x) => x.run), runIds, 'a group of bars per run, oldest first');
      for (const [i, x] of drawn.runs.entries()) {
        const reaches = ((zero - x.top) / (zero - full)) * top;
        assert.ok(Math.abs(reaches - walls[i]!) <= Math.max(0.05, top * 0.02), `${x.run}: its bars reach ${reaches.toFixed(2)} s, its wall time is ${walls[i]} s`);
      }
    });
  });
});
