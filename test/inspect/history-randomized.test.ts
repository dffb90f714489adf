// The randomized proof that the run history and the audit report say what is true, across the ways
// runs really end. A generated sample in FerretDB and a full run, then rounds: random edits
// (test/mirror/edits.ts), then a random mix of endings, each drawn with the seed's Rng:
//   run         `etl run` (--json or text), of every table or of a --tables subset, sometimes
//               --propagate-deletes;
//   stages      `etl extract [--tables]`, `etl transform`, `etl load`;
//   partial     extract, transform, `etl load --tables` of some of the run's tables;
//   dry-run     extract, transform, `etl load --dry-run` (PostgreSQL unchanged); or a dry run of the
//               rest of a partly loaded run (PostgreSQL and the run's manifest unchanged);
//   extracted   an extract never transformed; transformed: a transform never loaded;
//   older       an older staged run loaded after a newer one (refused: run_older_than_loaded, exit 1);
//   reload      a loaded run loaded again (already loaded, nothing changes);
//   failed      a load that fails in the middle: a statement trigger on a staged table raises, the
//               transaction rolls back (exit 1); of a new run, or of the rest of a partly loaded one;
//   locked      a load that gives up waiting for the load lock (--lock-timeout, exit 1);
//   next        the next step `etl status` suggests for a staged run not loaded, run: it must succeed;
//   clean       `etl clean --keep K`: it removes only runs its rules let go (loaded or unfinished, older
//               than the newest loaded run, not latest); `etl runs` then lists them from etl_runs alone.
// After each, against the truth (the staged folders and files on disk, etl_runs, etl_watermarks,
// etl_pending, the rows of PostgreSQL before and after):
//   `etl runs --json` and its text: one entry per run (staged folders ∪ etl_runs), its stages as the
//   endings left them, durations for the stages that ended, documents / rows / rejects as the staged
//   files hold them (= the manifest), pending = the etl_pending rows its last load left, loaded =
//   etl_runs has it;
//   `etl status --json` and its text: the last run per table (etl_runs) whose figures are its
//   manifest's, the watermarks, etl_pending per table, the staged runs not loaded;
//   `etl report --json` and the HTML page of the run the ending touched: totals, per-table load
//   figures (none for a load that did not commit), stage statuses and the history's loaded column;
//   a failed, refused, locked, dry or repeated load: PostgreSQL (rows and etl_* tables) unchanged,
//   and the run's manifest unchanged where the load refused before starting.
//
// Replay or extend a seed:
//   HISTORY_SEEDS=7 HISTORY_ROUNDS=3 HISTORY_ENDINGS=6 HISTORY_EDITS=80 HISTORY_SCALE=300 \
//     node --import tsx --test --test-timeout=1800000 test/inspect/history-randomized.test.ts
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { etl, STACK_LINE, type CliResult } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { EditGenerator } from '../mirror/edits.ts';
import { contents, firstCells, integers, lineCount, loadRejects, Mirror, query } from '../mirror/harness.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { readManifest, type Manifest, type StageName } from '../../staging/manifest.ts';
import type { LoadTableRecord } from '../../staging/manifest-load.ts';
import { isRunId, runPaths } from '../../staging/run-folder.ts';
import { LOAD_LOCK_KEY } from '../../load/lock.ts';
import { covers } from '../mirror/clean-oracle.ts';

const servers = useServers();

const SEEDS = integers('HISTORY_SEEDS', [1]);
const [ROUNDS] = integers('HISTORY_ROUNDS', [1]) as [number];
const [ENDINGS] = integers('HISTORY_ENDINGS', [5]) as [number];
const [EDITS] = integers('HISTORY_EDITS', [40]) as [number];
const [SCALE] = integers('HISTORY_SCALE', [200]) as [number];

type Ending = 'run' | 'stages' | 'partial' | 'dry-run' | 'extracted' | 'transformed' | 'older' | 'reload' | 'failed' | 'locked' | 'next' | 'clean';

const ENDING_WEIGHTS: readonly (readonly [Ending, number])[] = [
  ['run', 3],
  ['stages', 2],
  ['partial', 1],
  ['dry-run', 1],
  ['extracted', 1],
  ['transformed', 1],
  ['older', 2],
  ['reload', 1],
  ['failed', 2],
  ['locked', 1],
  ['next', 2],
  ['clean', 1],
];

type Status = 'done' | 'failed' | null;

/** What the endings did to a run, as the test knows it. */
interface RunRecord {
  stages: Record<StageName, Status>;
  dryRun: boolean;
  /** etl_pending rows (all tables) right after its last committed load; null: never committed. */
  pendingAfter: number | null;
  /** etl clean removed its folder. */
  cleaned?: boolean;
  /** The tables it staged, as its manifest said when etl clean removed it (null: none). */
  stagedTables?: number | null;
}

/** What PostgreSQL and the staging folder hold: the truth every figure is checked against. */
interface Truth {
  /** Staged run folders on disk. */
  readonly staged: readonly string[];
  /** etl_runs: per run, the tables loaded from it. */
  readonly ledger: ReadonlyMap<string, ReadonlySet<string>>;
  /** etl_runs: per table, the last run loaded (as etl status orders them) and its summary. */
  readonly last: ReadonlyMap<string, { runId: string; summary: LoadTableRecord }>;
  readonly watermarks: ReadonlyMap<string, string>;
  readonly pending: ReadonlyMap<string, { rows: number; nulls: number }>;
  readonly pendingTotal: number;
}

async function readTruth(m: Mirror): Promise<Truth> {
  const staged = (await readdir(m.incrementalStaging)).filter(isRunId).sort();
  const ledgerRows = await query<{ run_id: string; table_name: string }>(m.incrementalUrl, 'SELECT run_id, table_name FROM etl_runs');
  const ledger = new Map<string, Set<string>>();
  for (const r of ledgerRows) ledger.set(r.run_id, (ledger.get(r.run_id) ?? new Set()).add(r.table_name));
  const lastRows = await query<{ run_id: string; table_name: string; summary: LoadTableRecord }>(
    m.incrementalUrl,
    'SELECT DISTINCT ON (table_name) run_id, table_name, summary FROM etl_runs ORDER BY table_name, loaded_at DESC, run_id DESC',
  );
  const watermarks = await query<{ table_name: string; run_id: string }>(m.incrementalUrl, 'SELECT table_name, run_id FROM etl_watermarks');
  const pendingRows = await query<{ t: string; kind: string; n: number }>(m.incrementalUrl, 'SELECT table_name AS t, kind, count(*)::int AS n FROM etl_pending GROUP BY 1, 2');
  const pending = new Map<string, { rows: number; nulls: number }>();
  for (const r of pendingRows) {
    const p = pending.get(r.t) ?? { rows: 0, nulls: 0 };
    if (r.kind === 'row') p.rows += r.n;
    else p.nulls += r.n;
    pending.set(r.t, p);
  }
  return {
    staged,
    ledger,
    last: new Map(lastRows.map((r) => [r.table_name, { runId: r.run_id, summary: r.summary }])),
    watermarks: new Map(watermarks.map((w) => [w.table_name, w.run_id])),
    pending,
    pendingTotal: pendingRows.reduce((a, r) => a + r.n, 0),
  };
}

/** Every row of the pipeline's tables and of etl_* (the state tables), as digests: equal when nothing changed. */
async function databaseDigest(m: Mirror): Promise<Record<string, string>> {
  const state = await query<{ t: string }>(m.incrementalUrl, "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'etl\\_%' ORDER BY 1");
  const out = await contents(m.incrementalUrl, m.tables);
  for (const { t } of state) {
    const [r] = await query<{ h: string }>(m.incrementalUrl, `SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS h FROM ${pg.escapeIdentifier(t)} AS x`);
    out[t] = r!.h;
  }
  return out;
}

/** One figure that is not true. */
interface Mismatch {
  readonly where: string;
  readonly expected: unknown;
  readonly reported: unknown;
}

/** The truth the checks compare against, and their findings. */
class Checker {
  readonly found: Mismatch[] = [];

  same(where: string, expected: unknown, reported: unknown): void {
    if (JSON.stringify(expected) !== JSON.stringify(reported)) this.found.push({ where, expected, reported });
  }
}

/** The figures of a load record, as the reports print them. */
const figures = (f: LoadTableRecord) => ({ staged: f.staged, inserted: f.inserted, updated: f.updated, unchanged: f.unchanged, deleted: f.deleted, rejected: f.rejected, nulled: f.nulled, orphaned: f.orphaned, duplicates: f.duplicates, pending: f.pending });

const total = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** What a run's staged files hold: documents extracted, rows transformed, rejects (documents extract refused, rows transform and a committed load refused). */
async function stagedCounts(dir: string, manifest: Manifest): Promise<{ documents: number | null; rows: number | null; rejects: number | null }> {
  const s = manifest.stages;
  const documents = s.extract ? total(await Promise.all(Object.values(s.extract.collections).map((c) => lineCount(path.join(dir, c.file))))) : null;
  if (!s.transform) return { documents, rows: null, rejects: null };
  const tables = Object.values(s.transform.tables);
  const rows = total(await Promise.all(tables.map(async (t) => (await firstCells(path.join(dir, t.csv.file))).length)));
  const transformRejects = total(await Promise.all(tables.map((t) => lineCount(path.join(dir, t.rejects.file)))));
  // The documents extract could not stage count too: they are refused before any row exists.
  const extractRejects = total(await Promise.all(Object.values(s.extract?.collections ?? {}).map((c) => (c.rejects ? lineCount(path.join(dir, c.rejects.file)) : 0))));
  // A load rejects file has a line per row and column, a set_null line for a reference set NULL: the rows it refuses count.
  const loadRejected = s.load ? total(await Promise.all(Object.keys(s.load.tables).map(async (t) => (await loadRejects(dir, t)).reject.length))) : 0;
  return { documents, rows, rejects: extractRejects + transformRejects + loadRejected };
}

interface HistoryEntry {
  run_id: string;
  stages: Record<StageName, string | null>;
  seconds: Record<StageName, number | null>;
  documents: number | null;
  rows: number | null;
  rejects: number | null;
  pending: number | null;
  loaded: boolean;
  tables: number | null;
  loaded_tables: number | null;
  staged: boolean;
  latest: boolean;
}

/** The tables a run holds (transformed ones, else extracted ones), as etl status and etl load see them. */
function runTables(manifest: Manifest): string[] {
  const s = manifest.stages;
  if (s.transform?.status === 'done') return Object.keys(s.transform.tables);
  return s.extract?.tables ?? Object.values(s.extract?.collections ?? {}).flatMap((c) => c.tables ?? []);
}

/** One seed's world: the mirror, the draws, what each ending did to each run, and the log to replay. */
class History {
  readonly rng: Rng;
  readonly runs = new Map<string, RunRecord>();
  readonly log: string[] = [];
  /** Endings that happened (not only drawn), for the not-vacuous check. */
  readonly happened = new Map<string, number>();

  constructor(
    readonly m: Mirror,
    readonly seed: number,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0x4157));
  }

  say(line: string): void {
    this.log.push(line);
  }

  count(what: string): void {
    this.happened.set(what, (this.happened.get(what) ?? 0) + 1);
  }

  /** `etl <args>` on the incremental database and staging folder; it must exit `code`, without a stack trace. */
  async etl(args: readonly string[], code = 0): Promise<CliResult> {
    const r = await etl(args, { env: this.m.incrementalEnv, timeoutMs: 300_000 });
    this.say(`  etl ${args.filter((a) => !a.includes('://') && !a.startsWith('/')).join(' ')}: exit ${r.code ?? r.signal}`);
    assert.equal(r.code, code, `etl ${args.join(' ')} exits ${code}:\n${r.output}\n${this.log.join('\n')}`);
    assert.doesNotMatch(r.output, STACK_LINE, `etl ${args[0]} printed a stack trace:\n${r.output}`);
    return r;
  }

  stage(command: 'extract' | 'transform' | 'load' | 'run', extra: readonly string[] = [], code = 0): Promise<CliResult> {
    return this.etl(this.m.incrementalArgs(command, extra), code);
  }

  async latest(): Promise<string> {
    return (await readFile(path.join(this.m.incrementalStaging, 'latest'), 'utf8')).trim();
  }

  record(runId: string): RunRecord {
    let r = this.runs.get(runId);
    if (!r) this.runs.set(runId, (r = { stages: { extract: null, transform: null, load: null }, dryRun: false, pendingAfter: null }));
    return r;
  }

  /** A load of `runId` committed: its pending figure is what etl_pending holds now. */
  async committed(runId: string): Promise<void> {
    const r = this.record(runId);
    r.stages.load = 'done';
    r.dryRun = false;
    r.pendingAfter = (await readTruth(this.m)).pendingTotal;
  }

  subset(): string[] {
    const tables = new Set<string>();
    for (let n = this.rng.int(1, 4); tables.size < n; ) tables.add(this.rng.pick(this.m.tables));
    return this.m.tables.filter((t) => tables.has(t));
  }

  propagate(): string[] {
    return this.rng.chance(0.4) ? ['--propagate-deletes'] : [];
  }

  /** A new run extracted (of `tables`, else every table) and, when asked, transformed; returns its id. */
  async extract(extra: readonly string[], transform: boolean): Promise<string> {
    await this.stage('extract', extra);
    const runId = await this.latest();
    this.record(runId).stages.extract = 'done';
    if (transform) {
      await this.stage('transform');
      this.record(runId).stages.transform = 'done';
    }
    return runId;
  }

  /** Runs the ending; returns the run it touched. */
  async end(ending: Ending): Promise<string | null> {
    switch (ending) {
      case 'run':
        return this.fullRun();
      case 'stages':
        return this.stages();
      case 'partial':
        return this.partial();
      case 'dry-run':
        return this.dryRun();
      case 'extracted':
        this.count('extracted');
        return this.extract(this.rng.chance(0.5) ? ['--tables', this.subset().join(',')] : [], false);
      case 'transformed':
        this.count('transformed');
        return this.extract(this.rng.chance(0.5) ? ['--tables', this.subset().join(',')] : [], true);
      case 'older':
        return this.older();
      case 'reload':
        return this.reload();
      case 'failed':
        return this.failed();
      case 'locked':
        return this.locked();
      case 'next':
        return this.next();
      case 'clean':
        return this.clean();
    }
  }

  async fullRun(): Promise<string> {
    const tables = this.rng.chance(0.4) ? ['--tables', this.subset().join(',')] : [];
    const json = this.rng.chance(0.5) ? ['--json'] : [];
    await this.stage('run', [...tables, ...this.propagate(), ...json]);
    const runId = await this.latest();
    const r = this.record(runId);
    r.stages.extract = r.stages.transform = 'done';
    await this.committed(runId);
    this.count(tables.length ? 'run --tables' : 'run');
    return runId;
  }

  async stages(): Promise<string> {
    const tables = this.rng.chance(0.5) ? ['--tables', this.subset().join(',')] : [];
    const runId = await this.extract([...tables, ...this.propagate()], true);
    await this.stage('load', this.rng.chance(0.5) ? ['--json'] : []);
    await this.committed(runId);
    this.count(tables.length ? 'stages --tables' : 'stages');
    return runId;
  }

  /** A run of every table, loaded into some of them only (`etl load --tables`). */
  async partial(): Promise<string> {
    const runId = await this.partlyLoad();
    this.count('partial');
    return runId;
  }

  async partlyLoad(): Promise<string> {
    const runId = await this.extract(this.propagate(), true);
    await this.stage('load', ['--tables', this.subset().join(',')]);
    await this.committed(runId);
    return runId;
  }

  async dryRun(): Promise<string> {
    // Of the rest of a partly loaded run: PostgreSQL and the record of the load that committed stay as they are.
    if (this.rng.chance(0.5)) {
      // None yet: make one (a run of every table, loaded into some of them).
      const rests = (await this.partlyLoaded()).map((r) => r.runId);
      const runId = rests.length > 0 ? this.rng.pick(rests) : await this.partlyLoad();
      await this.unchanged('etl load --dry-run of the rest', runId, true, () => this.stage('load', ['--run', runId, '--dry-run']));
      this.count('dry-run of the rest');
      return runId;
    }
    const runId = await this.extract(this.propagate(), true);
    await this.unchanged('etl load --dry-run', runId, false, () => this.stage('load', ['--dry-run']));
    const r = this.record(runId);
    r.stages.load = 'done';
    r.dryRun = true;
    this.count('dry-run');
    return runId;
  }

  /**
   * `act` leaves PostgreSQL as it was (rows and state tables), and, when `manifestToo`, the run's
   * manifest byte for byte (a load refused before it started records nothing).
   */
  async unchanged(what: string, runId: string, manifestToo: boolean, act: () => Promise<unknown>): Promise<void> {
    const file = path.join(this.m.incrementalStaging, runId, 'manifest.json');
    const before = await databaseDigest(this.m);
    const manifest = await readFile(file, 'utf8');
    await act();
    const after = await databaseDigest(this.m);
    const changed = Object.keys(before).filter((t) => before[t] !== after[t]);
    assert.deepEqual(changed, [], `${what} of run ${runId} changed PostgreSQL: ${changed.join(', ')}\n${this.log.join('\n')}`);
    if (manifestToo) assert.equal(await readFile(file, 'utf8'), manifest, `${what} of run ${runId} changed its manifest\n${this.log.join('\n')}`);
  }

  /** A staged run, transformed and not loaded, older than a run loaded into one of its tables, loaded: refused. */
  async older(): Promise<string> {
    const truth = await readTruth(this.m);
    let candidates: string[] = [];
    for (const [id, r] of this.runs) {
      if (r.cleaned) continue;
      const refused = (await tablesOf(this, id)).some((t) => setByNewer(truth, t, id));
      if (r.stages.transform === 'done' && !truth.ledger.has(id) && refused) candidates.push(id);
    }
    if (candidates.length === 0) {
      // Make one: a run transformed, then a newer run of every table loaded.
      const runId = await this.extract([], true);
      await this.fullRunOfEverything();
      candidates = [runId];
    }
    const runId = this.rng.pick(candidates.sort());
    await this.unchanged('etl load of an older run', runId, true, async () => {
      const r = await this.stage('load', ['--run', runId], 1);
      assert.match(r.stderr, /run_older_than_loaded|is older than run/, `the refusal names its reason:\n${r.output}`);
    });
    this.count('older (refused)');
    return runId;
  }

  async fullRunOfEverything(): Promise<void> {
    await this.stage('run');
    const runId = await this.latest();
    const r = this.record(runId);
    r.stages.extract = r.stages.transform = 'done';
    await this.committed(runId);
  }

  /** A run every table of which is loaded, loaded again: already loaded, nothing changes. */
  async reload(): Promise<string | null> {
    const truth = await readTruth(this.m);
    const complete: string[] = [];
    for (const id of truth.staged) {
      const loaded = truth.ledger.get(id);
      const tables = await tablesOf(this, id);
      if (loaded && tables.length > 0 && tables.every((t) => loaded.has(t))) complete.push(id);
    }
    if (complete.length === 0) return null;
    const runId = this.rng.pick(complete);
    await this.unchanged('etl load of a loaded run', runId, true, async () => {
      const r = await this.stage('load', ['--run', runId]);
      assert.match(r.stdout, /was already loaded/, `a second load says the run was already loaded:\n${r.output}`);
    });
    this.count('reload');
    return runId;
  }

  /**
   * A load that fails in the middle: a statement trigger raises on a staged table that is not the
   * first (every statement on it, rows or none); the whole transaction rolls back.
   */
  async failed(): Promise<string> {
    const rests = await this.partlyLoaded();
    const rest = rests.length > 0 && this.rng.chance(0.6) ? this.rng.pick(rests) : null;
    const runId = rest?.runId ?? (await this.extract(this.rng.chance(0.3) ? ['--tables', this.subset().join(',')] : [], true));
    const tables = rest?.tables ?? (await tablesOf(this, runId));
    const table = tables.length > 1 ? this.rng.pick(tables.slice(1)) : tables[0]!;
    const name = pg.escapeIdentifier(table);
    await query(this.m.incrementalUrl, `CREATE OR REPLACE FUNCTION etl_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused by the history test'; END$$`);
    await query(this.m.incrementalUrl, `CREATE TRIGGER etl_test_refuse BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${name} FOR EACH STATEMENT EXECUTE FUNCTION etl_test_refuse()`);
    this.say(`  a trigger refuses every statement on ${table}`);
    try {
      await this.unchanged('a load that failed', runId, false, async () => {
        const r = await this.stage('load', ['--run', runId, ...(this.rng.chance(0.5) ? ['--json'] : [])], 1);
        assert.match(r.output, /refused by the history test/, `the failure says what failed:\n${r.output}`);
      });
    } finally {
      await query(this.m.incrementalUrl, `DROP TRIGGER etl_test_refuse ON ${name}`);
      await query(this.m.incrementalUrl, 'DROP FUNCTION etl_test_refuse()');
    }
    this.record(runId).stages.load = 'failed';
    this.count('failed');
    return runId;
  }

  /** Runs loaded into some of their tables whose other tables no newer run was loaded into (a load of them is not refused). */
  async partlyLoaded(): Promise<{ runId: string; tables: string[] }[]> {
    const truth = await readTruth(this.m);
    const out: { runId: string; tables: string[] }[] = [];
    for (const [runId, loaded] of truth.ledger) {
      if (!truth.staged.includes(runId)) continue;
      const rest = (await tablesOf(this, runId)).filter((t) => !loaded.has(t));
      if (rest.length > 0 && rest.every((t) => !setByNewer(truth, t, runId))) out.push({ runId, tables: rest });
    }
    return out.sort((a, b) => a.runId.localeCompare(b.runId));
  }

  /** A load that gives up waiting for the load lock another session holds (--lock-timeout): nothing recorded. */
  async locked(): Promise<string> {
    const runId = await this.extract(this.propagate(), true);
    const holder = new pg.Client({ connectionString: this.m.incrementalUrl });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [LOAD_LOCK_KEY]);
      await this.unchanged('a load that gave up waiting for the lock', runId, true, async () => {
        const r = await this.stage('load', ['--lock-timeout', '1s'], 1);
        assert.match(r.stderr, /gave up waiting/, `the load says it gave up waiting:\n${r.output}`);
      });
    } finally {
      await holder.end();
    }
    this.count('locked');
    return runId;
  }

  /**
   * `etl clean --keep K`: the runs it removes are loaded ones older than the newest loaded run (or
   * unfinished ones older than it), and not-loaded ones a newer loaded run superseded (it went into
   * the same database, etl_runs has it in every table they transformed, and it read each collection
   * they read from the same watermark or an earlier one), never one a load could still take; their
   * folders go, and the ledger alone remembers them (`etl runs`: "yes (cleaned)", or "partly (…)
   * (cleaned)"). Null when it removes nothing.
   */
  async clean(): Promise<string | null> {
    const before = await readTruth(this.m);
    const manifests = new Map<string, Manifest>();
    for (const id of before.staged) manifests.set(id, await readManifest(runPaths(this.m.incrementalStaging, id)));
    const loaded = (m: Manifest) => m.stages.load?.status === 'done' && !m.stages.load.dry_run;
    const newestLoaded = [...manifests].filter(([, m]) => loaded(m)).map(([id]) => id).sort().at(-1) ?? '';
    const r = await this.etl(['clean', '--staging', this.m.incrementalStaging, '--keep', String(this.rng.int(1, 3)), '--json']);
    const removed = (JSON.parse(r.stdout) as { removed: { run_id: string }[] }).removed.map((x) => x.run_id);
    if (removed.length === 0) return null;
    const after = await readTruth(this.m);
    assert.deepEqual(after.staged, before.staged.filter((id) => !removed.includes(id)), 'etl clean removed exactly the folders it names');
    const latest = await this.latest();
    for (const id of removed) {
      const m = manifests.get(id)!;
      const superseded = m.stages.transform?.status === 'done' && !loaded(m) && m.stages.load?.status !== 'running' && [...manifests].some(([b, mb]) => b > id && loaded(mb) && covers(m, mb, before.ledger.get(b)));
      const goes = id !== latest && ((id < newestLoaded && (loaded(m) || m.stages.transform?.status !== 'done')) || superseded);
      assert.ok(goes, `etl clean removed run ${id} (load ${m.stages.load?.status ?? 'never ran'}), which it must keep\n${this.log.join('\n')}`);
      this.record(id).cleaned = true;
      this.record(id).stagedTables = stagedCount(m);
    }
    this.count('clean');
    return latest;
  }

  /** The next step `etl status` suggests for a staged run not loaded, run as printed: it succeeds. */
  async next(): Promise<string | null> {
    const status = await this.etl(this.m.incrementalArgs('status'));
    const steps = nextSteps(status.stdout);
    if (steps.size === 0) return null;
    const runId = this.rng.pick([...steps.keys()].sort());
    const step = steps.get(runId)!;
    this.say(`  etl status says for ${runId}: ${step}`);
    const words = step.split(/\s+/);
    assert.equal(words[0], 'etl', `a next step is an etl command: ${step}`);
    const [command, ...extra] = words.slice(1) as ['run' | 'load' | 'transform', ...string[]];
    await this.stage(command, extra);
    const touched = command === 'run' ? await this.latest() : runId;
    const r = this.record(touched);
    if (command === 'transform') r.stages.transform = 'done';
    else {
      r.stages.extract = r.stages.transform = 'done';
      await this.committed(touched);
    }
    this.count(`next: etl ${command}`);
    return touched;
  }
}

/** The tables a run holds, from its manifest on disk. */
async function tablesOf(h: History, runId: string): Promise<string[]> {
  return runTables(await readManifest(runPaths(h.m.incrementalStaging, runId)));
}

/**
 * The next step `etl status` prints per staged run not loaded: `next: etl …` on the run's line or,
 * when it does not fit, on the lines under it (indented).
 */
function nextSteps(text: string): Map<string, string> {
  const lines = text.split('\n');
  const out = new Map<string, string>();
  for (const [i, line] of lines.entries()) {
    const run = /^ {2}(\d{8}T\d{9}Z) {2}extract /.exec(line);
    if (!run) continue;
    let rest = line.includes('next: ') ? line.slice(line.indexOf('next: ')) : '';
    // Said on lines of its own (indented) when it does not fit the run's line.
    for (let j = i + 1; rest === '' && j < lines.length; j++) {
      const more = lines[j]!;
      if (!/^ {4}\S/.test(more) || more.startsWith('    (')) break;
      rest = more.trim();
      for (let k = j + 1; k < lines.length && /^ {4}\S/.test(lines[k]!) && !lines[k]!.startsWith('    ('); k++) rest = `${rest} ${lines[k]!.trim()}`;
    }
    const m = /next: (etl [^(]*?)\s*(\(|$)/.exec(rest);
    if (m) out.set(run[1]!, m[1]!.trim());
  }
  return out;
}

/** The notes `etl status` prints under a staged run not loaded (the dim line in parentheses), or ''. */
function runNotes(text: string, runId: string): string {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`  ${runId}  `));
  for (let j = at + 1; at >= 0 && j < lines.length && lines[j]!.startsWith('    '); j++) if (lines[j]!.startsWith('    (')) return lines[j]!;
  return '';
}

// ── the checks ───────────────────────────────────────────────────────────────────────────────────

const RESULT: Readonly<Record<string, RegExp>> = {
  loaded: /^loaded into /,
  'dry-run': /^dry run \(rolled back\)$/,
  failed: /^not loaded \(failed\)$/,
  'partly loaded, then failed': /^partly loaded into .* \(\d+ table\(s\): [a-z_, ]+\); the load of the rest failed$/,
  'partly loaded': /^partly loaded into .* \(\d+ table\(s\): [a-z_, ]+\); \d+ table\(s\) not loaded yet$/,
  never: /^not loaded \(load never ran\)$/,
};

/**
 * Whether a run newer than `runId` set the table's watermark: etl load refuses `runId` for it (README,
 * Exact mirror). A newer run loaded into a table without moving its watermark (it read the table's
 * collection from a later instant, for another table of it) does not: the next run reads from the
 * watermark again and mends what an older run's rows undo.
 */
function setByNewer(truth: Truth, table: string, runId: string): boolean {
  return (truth.watermarks.get(table) ?? '') > runId;
}

/** `etl runs --json` and its text against the truth and what the endings did. */
async function checkRuns(h: History, truth: Truth, c: Checker): Promise<void> {
  const m = h.m;
  const args = ['runs', '--staging', m.incrementalStaging, '--database-url', m.incrementalUrl];
  const json = JSON.parse((await h.etl([...args, '--json'])).stdout) as { latest: string | null; runs: HistoryEntry[] };
  const text = (await h.etl(args)).stdout;
  const ids = json.runs.map((r) => r.run_id);
  c.same('etl runs --json: one entry per run (staged folders and etl_runs), newest first', [...new Set([...truth.staged, ...truth.ledger.keys()])].sort().reverse(), ids);
  const latest = await h.latest();
  for (const entry of json.runs) {
    const where = `etl runs --json ${entry.run_id}`;
    if (!entry.staged) {
      await checkCleaned(h, truth, entry, text, c);
      continue;
    }
    const manifest = await readManifest(runPaths(m.incrementalStaging, entry.run_id));
    const record = h.runs.get(entry.run_id);
    const loaded = truth.ledger.has(entry.run_id);
    c.same(`${where}: loaded (etl_runs has the run)`, loaded, entry.loaded);
    c.same(`${where}: latest`, entry.run_id === latest, entry.latest);
    if (record) c.same(`${where}: stages as the endings left them`, record.stages, entry.stages);
    for (const st of ['extract', 'transform', 'load'] as const) {
      const ended = entry.stages[st] === 'done' || entry.stages[st] === 'failed';
      const s = entry.seconds[st];
      c.same(`${where}: ${st} has a duration exactly when it ended`, ended, typeof s === 'number' && s >= 0);
    }
    const counts = await stagedCounts(path.join(m.incrementalStaging, entry.run_id), manifest);
    c.same(`${where}: documents, rows, rejects = the staged files`, counts, { documents: entry.documents, rows: entry.rows, rejects: entry.rejects });
    if (record && !record.dryRun) c.same(`${where}: pending = etl_pending after its last committed load (none when none committed)`, record.pendingAfter, entry.pending);
    c.same(`${where}: tables staged, and loaded (etl_runs)`, [Object.keys(manifest.stages.transform?.tables ?? {}).length || null, truth.ledger.get(entry.run_id)?.size ?? 0], [entry.tables, entry.loaded_tables]);
    checkRunsLine(text, entry, expectedLoadedCell(truth, entry, Object.keys(manifest.stages.transform?.tables ?? {}).length || null, m.tables.length), c);
  }
}

/** A run etl clean removed: etl_runs alone remembers it, and `etl runs` says what etl_runs holds. */
async function checkCleaned(h: History, truth: Truth, entry: HistoryEntry, text: string, c: Checker): Promise<void> {
  const where = `etl runs --json ${entry.run_id} (cleaned)`;
  c.same(`${where}: its folder was removed by etl clean`, true, h.runs.get(entry.run_id)?.cleaned === true);
  const rows = await query<{ summary: LoadTableRecord }>(h.m.incrementalUrl, 'SELECT summary FROM etl_runs WHERE run_id = $1', [entry.run_id]);
  const sum = (k: 'rows' | 'rejected') => rows.reduce((a, r) => a + (r.summary[k] ?? r.summary.staged), 0);
  // What its extract and transform refused, as its last load recorded it in every table's summary.
  const beforeLoad = rows.map((r) => (r.summary as { run_rejected_before_load?: number }).run_rejected_before_load).filter((n) => n !== undefined).at(-1) ?? null;
  const staged = h.runs.get(entry.run_id)?.stagedTables ?? null;
  // rows: the tables' rows (a dedupe table's, not its contributions: `staged`), as the staged run's entry counts them.
  c.same(`${where}: loaded, its tables (staged, as its loads recorded), rows and rejects as etl_runs holds them`, { loaded: true, tables: staged, loaded_tables: rows.length, rows: sum('rows'), rejects: beforeLoad === null ? null : beforeLoad + sum('rejected') }, {
    loaded: entry.loaded,
    tables: entry.tables,
    loaded_tables: entry.loaded_tables,
    rows: entry.rows,
    rejects: entry.rejects,
  });
  c.same(`${where}: pending = etl_pending after its last committed load`, h.runs.get(entry.run_id)?.pendingAfter ?? null, entry.pending);
  const line = text.split('\n').find((l) => l.slice(2).startsWith(entry.run_id)) ?? '';
  c.same(`etl runs (text) ${entry.run_id}: loaded`, cleanedCell(h, truth, entry.run_id), line.trim().split(/\s{2,}/).at(-1));
}

/** The loaded column of a run etl clean removed: as expectedLoadedCell says with the tables it staged, then "(cleaned)". */
function cleanedCell(h: History, truth: Truth, runId: string): string {
  return `${expectedLoadedCell(truth, { run_id: runId, stages: { load: 'done' } }, h.runs.get(runId)?.stagedTables ?? null, null)} (cleaned)`;
}

/** The tables a manifest's transform staged (null: none). */
function stagedCount(m: Manifest): number | null {
  return Object.keys(m.stages.transform?.tables ?? {}).length || null;
}

/**
 * The loaded column in words, from the truth: etl_runs' tables of the run against those transform
 * staged, and against the pipeline's (`pipeline`; null: a cleaned run, its pipeline.yaml gone).
 */
function expectedLoadedCell(truth: Truth, entry: Pick<HistoryEntry, 'run_id'> & { stages: { load: string | null } }, staged: number | null, pipeline: number | null): string {
  const tables = truth.ledger.get(entry.run_id);
  if (!tables) return entry.stages.load === 'done' ? 'dry run' : 'no';
  if (staged !== null && tables.size < staged) return `partly (${tables.size} of ${staged} tables)`;
  return pipeline !== null && tables.size < pipeline ? `yes (${tables.size} of ${pipeline} pipeline tables)` : 'yes';
}

/** The text `etl runs` prints for one run: its stage cells, counts and loaded column say what --json says. */
function checkRunsLine(text: string, entry: HistoryEntry, loadedCell: string, c: Checker): void {
  const line = text.split('\n').find((l) => l.slice(2).startsWith(entry.run_id));
  const where = `etl runs (text) ${entry.run_id}`;
  if (!line) return c.same(`${where}: a line`, 'a line', null);
  // Cells are two spaces or more apart (a duration holds one: "1.20 s"); the last eight are the stages' and the figures'.
  const cells = line.trim().split(/\s{2,}/).slice(-8);
  if (cells.length < 8) return c.same(`${where}: the line's cells`, 'extract … loaded', line);
  const num = (v: number | null) => (v === null ? '-' : v.toLocaleString('en-US'));
  const stageCell = (st: StageName) => (entry.stages[st] === 'done' ? 'a duration' : (entry.stages[st] ?? '-'));
  const shown = (cell: string) => (/^\d/.test(cell) && !/^\d[\d,]*$/.test(cell) ? 'a duration' : cell);
  c.same(`${where}: extract, transform, load, documents, rows, rejects, pending, loaded`, [stageCell('extract'), stageCell('transform'), stageCell('load'), num(entry.documents), num(entry.rows), num(entry.rejects), num(entry.pending), loadedCell], [shown(cells[0]!), shown(cells[1]!), shown(cells[2]!), ...cells.slice(3)]);
}

/** `etl status --json` and its text against etl_runs, etl_watermarks, etl_pending and the manifests. */
async function checkStatus(h: History, truth: Truth, c: Checker): Promise<void> {
  const m = h.m;
  const json = JSON.parse((await h.etl(m.incrementalArgs('status', ['--json']))).stdout) as {
    tables: { table: string; watermark: { runId: string } | null; lastRun: { runId: string; figures: LoadTableRecord } | null; pending: { rows: number; nulls: number } }[];
    unloadedRuns: { runId: string; loadedTables: string[]; refusedTables: string[]; next: string | null }[];
  };
  const text = (await h.etl(m.incrementalArgs('status'))).stdout;
  for (const t of json.tables) {
    const where = `etl status --json ${t.table}`;
    const last = truth.last.get(t.table);
    c.same(`${where}: the last run loaded (etl_runs)`, last?.runId ?? null, t.lastRun?.runId ?? null);
    c.same(`${where}: the watermark's run (etl_watermarks)`, truth.watermarks.get(t.table) ?? null, t.watermark?.runId ?? null);
    c.same(`${where}: etl_pending`, truth.pending.get(t.table) ?? { rows: 0, nulls: 0 }, { rows: t.pending.rows, nulls: t.pending.nulls });
    const manifest = last && truth.staged.includes(last.runId) ? await readManifest(runPaths(m.incrementalStaging, last.runId)) : null;
    // A failed load keeps the record of the tables an earlier load of the run committed (load/load-record.ts markFailed).
    const recorded = manifest?.stages.load?.status === 'done' || manifest?.stages.load?.status === 'failed' ? manifest.stages.load.tables[t.table] : undefined;
    if (t.lastRun && manifest) c.same(`${where}: the last run's figures = its manifest's`, recorded ? figures(recorded) : 'a load record in the manifest', figures(t.lastRun.figures));
    const row = text.split('\n').find((l) => l.startsWith(`${t.table} `));
    const cells = row?.trim().split(/\s{2,}/) ?? [];
    const f = t.lastRun?.figures;
    const n = (v: number | undefined) => (v === undefined ? '-' : v.toLocaleString('en-US'));
    // The last run's cell may be cut (…) to fit 100 columns: what is left of it is the run's id.
    const shownRun = cells.at(-5)?.replace(/ \*$/, '') ?? '';
    const runCell = shownRun.endsWith('…') && t.lastRun?.runId.startsWith(shownRun.slice(0, -1)) ? t.lastRun.runId : shownRun;
    c.same(`etl status (text) ${t.table}: last run, ins, upd, del, rej`, [t.lastRun?.runId ?? 'never loaded', n(f?.inserted), n(f?.updated), n(f?.deleted), n(f?.rejected)], [runCell, ...cells.slice(-4)]);
  }
  const unloaded: string[] = [];
  for (const id of truth.staged) {
    const tables = await tablesOf(h, id);
    const loaded = truth.ledger.get(id) ?? new Set();
    if (!(tables.length > 0 ? tables.every((t) => loaded.has(t)) : loaded.size > 0)) unloaded.push(id);
  }
  c.same('etl status --json: the staged runs not loaded, newest first', unloaded.reverse(), json.unloadedRuns.map((r) => r.runId));
  const steps = nextSteps(text);
  for (const r of json.unloadedRuns) {
    const where = `etl status --json ${r.runId}`;
    c.same(`${where}: loadedTables (etl_runs)`, [...(truth.ledger.get(r.runId) ?? [])].sort(), r.loadedTables);
    const refused = (await tablesOf(h, r.runId)).filter((t) => setByNewer(truth, t, r.runId));
    c.same(`${where}: refusedTables (a newer run set the watermark)`, refused.sort(), [...r.refusedTables].sort());
    const notes = runNotes(text, r.runId);
    const manifest = await readManifest(runPaths(m.incrementalStaging, r.runId));
    const loadedHere = truth.ledger.has(r.runId);
    c.same(`etl status (text) ${r.runId}: notes say loaded into another database only when this one has none of it`, manifest.stages.load?.status === 'done' && !manifest.stages.load.dry_run && !loadedHere, notes.includes('its manifest says loaded (into another database?)'));
    c.same(`etl status (text) ${r.runId}: notes say dry run only when its load was one`, manifest.stages.load?.status === 'done' && manifest.stages.load.dry_run, notes.includes('dry run only'));
    c.same(`etl status (text) ${r.runId}: notes say partly loaded when etl_runs has some of it`, loadedHere, notes.includes('partly loaded: '));
    const step = steps.get(r.runId) ?? null;
    const expected = r.next === 'transform' ? `etl transform --run ${r.runId}` : r.next === 'load' ? 'etl load … or etl run' : null;
    c.same(`etl status (text) ${r.runId}: the next step`, expected, step && (step.startsWith('etl load --run') || step === 'etl run' ? 'etl load … or etl run' : step));
  }
}

/** `etl report --json` and the HTML page of a run: its totals, load figures, stages and the history's loaded column. */
async function checkReport(h: History, truth: Truth, runId: string, c: Checker): Promise<void> {
  const m = h.m;
  const printed = JSON.parse((await h.etl(['report', '--json', '--run', runId, '--staging', m.incrementalStaging, '--database-url', m.incrementalUrl])).stdout) as { run_id: string; file: string; bytes: number };
  const where = `etl report ${runId}`;
  c.same(`${where} --json: run_id`, runId, printed.run_id);
  c.same(`${where} --json: bytes = the file's`, (await stat(printed.file)).size, printed.bytes);
  const html = await readFile(printed.file, 'utf8');
  const manifest = await readManifest(runPaths(m.incrementalStaging, runId));
  const s = manifest.stages;
  const counts = await stagedCounts(path.join(m.incrementalStaging, runId), manifest);
  const total = (field: string) => Number(new RegExp(`data-field="${field}" data-value="(\\d+)"`).exec(html)?.[1]);
  c.same(`${where}: documents, rows, rejected`, { documents: counts.documents ?? 0, rows: counts.rows ?? 0, rejected: counts.rejects ?? 0 }, { documents: total('documents'), rows: total('rows'), rejected: total('rejected') });
  const result = /<dt>result<\/dt><dd>([^<]*)<\/dd>/.exec(html)?.[1] ?? '';
  const partly = Object.keys(s.load?.tables ?? {}).length > 0;
  // etl_runs' tables of the run against those transform staged: fewer after a --tables load.
  const some = (truth.ledger.get(runId)?.size ?? 0) < Object.keys(s.transform?.tables ?? {}).length;
  const state = s.load?.status === 'done' ? (s.load.dry_run ? 'dry-run' : some ? 'partly loaded' : 'loaded') : s.load?.status === 'failed' ? (partly ? 'partly loaded, then failed' : 'failed') : 'never';
  c.same(`${where}: the result says ${state}`, true, RESULT[state]!.test(result) || result);
  const rows = tableRows(html, 'table-figures');
  const fields = ['staged', 'inserted', 'updated', 'unchanged', 'deleted', 'load_rejected', 'nulled', 'orphaned', 'pending'] as const;
  // A failed load keeps the tables an earlier load of the run committed; a dry run's figures are what it would have done.
  const committed = s.load?.tables ?? {};
  for (const [table, cells] of rows) {
    const l = committed[table];
    const expected = fields.map((f) => {
      if (!l) return null;
      const v = f === 'load_rejected' ? l.rejected : f === 'pending' ? (l.pending ? l.pending.rows + l.pending.nulls : null) : l[f];
      return v === undefined ? null : v;
    });
    c.same(`${where}: ${table}'s load figures (the manifest's; none without a load that ended)`, expected, fields.map((f) => cells.get(f) ?? null));
  }
  c.same(`${where}: a row per table transformed or loaded`, [...new Set([...Object.keys(s.transform?.tables ?? {}), ...Object.keys(committed)])].sort(), [...rows.keys()].sort());
  for (const [run, cells] of tableRows(html, 'history')) {
    const its = await readManifest(runPaths(m.incrementalStaging, run)).catch(() => null);
    const cell = its === null ? cleanedCell(h, truth, run) : expectedLoadedCell(truth, { run_id: run, stages: { load: its.stages.load?.status ?? null } }, stagedCount(its), m.tables.length);
    c.same(`${where}: history, ${run} loaded`, cell, cells.get('loaded'));
  }
}

/** The rows of an HTML table of the report by data-key: each cell's data-value (a number), else its text, by data-field. */
function tableRows(html: string, id: string): Map<string, Map<string, number | string | null>> {
  const body = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(html)?.[1] ?? '';
  const out = new Map<string, Map<string, number | string | null>>();
  for (const row of body.matchAll(/<tr data-key="([^"]*)">([\s\S]*?)<\/tr>/g)) {
    const cells = new Map<string, number | string | null>();
    for (const cell of row[2]!.matchAll(/<td[^>]*? data-field="([^"]+)"( data-value="([^"]*)")?>([\s\S]*?)<\/td>/g)) {
      cells.set(cell[1]!, cell[3] !== undefined ? Number(cell[3]) : cell[4] === '–' ? null : cell[4]!);
    }
    out.set(row[1]!, cells);
  }
  return out;
}

async function checkAll(h: History, touched: string | null, label: string): Promise<void> {
  const truth = await readTruth(h.m);
  const c = new Checker();
  await checkRuns(h, truth, c);
  await checkStatus(h, truth, c);
  for (const runId of new Set([touched, await h.latest()])) if (runId && truth.staged.includes(runId)) await checkReport(h, truth, runId, c);
  if (c.found.length > 0) {
    const lines = c.found.map((x) => `  ${x.where}: expected ${JSON.stringify(x.expected)}, reported ${JSON.stringify(x.reported)}`);
    assert.fail(`seed ${h.seed}, ${label}: ${c.found.length} figure(s) are not true:\n${lines.join('\n')}\nreplay: ${replay(h.seed)}\nlog:\n${h.log.join('\n')}`);
  }
}

function replay(seed: number): string {
  return `HISTORY_SEEDS=${seed} HISTORY_ROUNDS=${ROUNDS} HISTORY_ENDINGS=${ENDINGS} HISTORY_EDITS=${EDITS} HISTORY_SCALE=${SCALE} node --import tsx --test --test-timeout=1800000 test/inspect/history-randomized.test.ts`;
}

for (const seed of SEEDS) {
  test(`seed ${seed}: etl runs, etl status and etl report say what is true after ${ROUNDS} rounds of ${ENDINGS} random run endings`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    const h = new History(m, seed);
    await h.fullRunOfEverything();
    await checkAll(h, await h.latest(), 'the first run');
    const generator = await EditGenerator.open(await m.db(), seed);
    for (let round = 1; round <= ROUNDS; round++) {
      await generator.applyRound(EDITS);
      h.say(`round ${round}: ${EDITS} edits`);
      // A round's endings differ while there are endings left; one with nothing to act on (no run
      // to reload, no next step) gives way to another draw.
      const drawn: Ending[] = [];
      for (let e = 1; e <= ENDINGS; e++) {
        let touched: string | null = null;
        let ending: Ending = 'run';
        for (let tries = 0; tries < 100; tries++) {
          ending = h.rng.weighted(ENDING_WEIGHTS);
          if (drawn.includes(ending) && drawn.length < ENDING_WEIGHTS.length) continue;
          drawn.push(ending);
          h.say(`round ${round}, ending ${e}: ${ending}`);
          touched = await h.end(ending);
          if (touched !== null) break;
        }
        await checkAll(h, touched, `round ${round}, ending ${e} (${ending})`);
      }
    }
    t.diagnostic(`endings: ${[...h.happened].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    assert.equal([...h.happened.values()].reduce((a, b) => a + b, 0), ROUNDS * ENDINGS, 'every ending acted on a run');
  });
}
