// The exact-mirror promise under the way operators really drive etl between edits, randomized. The
// other proofs run one command each round (`etl run --propagate-deletes`, or the three stages); an
// operator also runs a subset of tables (splitting a table from the tables it references or from its
// link tables), re-runs a stage from the staged files, reloads some tables in full, reads a dump,
// skips --propagate-deletes some days, checks a load with --dry-run, leaves an extract unloaded, and
// loads a staged run after a newer one was loaded. Also: reads `--since` a date before every
// watermark (exact) and after them (the watermarks stay; the next run, plain or --full, ends exact);
// finds a collection emptied (the empty-live-set guard refuses, nothing changes; --allow-delete-all
// empties the tables; the documents come back the next round); runs `etl clean` with its flags
// (nothing a later command needs goes; status, runs and report still work); packs a run and verifies
// the archive (and a copy with a byte flipped, which fails naming the file); transforms and loads
// again a run never loaded after newer runs (refused for the tables they loaded, nothing changed);
// re-transforms one to three tables of a staged run before loading it (sometimes after a transform
// of it failed or was killed): its folder still verifies, and the load loads what the run holds.
//
// Per seed: a generated sample in FerretDB, a full `etl run`; then rounds of random edits
// (test/mirror/edits.ts), each followed by one to three operator actions drawn at random, every
// command with the exit code and message the README promises. Where the spec promises a mirror (a
// round that ended with an `etl run --propagate-deletes` of every table) the tables are compared with
// a full run of MongoDB as it is; at the end of each seed, after one plain `etl run
// --propagate-deletes`, always.
//
// The runs use pipeline.yaml with watermark_margin_seconds set to OPS_MARGIN_SECONDS (default 2):
// with the shipped 300, every run re-reads every edit of the test, and a run that lost or reverted
// a row would be healed by the next one unseen.
//
// Replay a seed:
//   OPS_SEEDS=7 OPS_ROUNDS=6 OPS_EDITS=80 OPS_SCALE=2000 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/operator-randomized.test.ts
// OPS_ACTIONS=since_after,delete_all draws only those actions (another draw than the seed's: name
// them to replay).
// A failure prints, per table, the rows missing, extra and different by key, each with the edits
// that touched its documents, then every action and command of the seed and every edit applied.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import pg from 'pg';
import { etl, STACK_LINE, type CliResult } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { listRunIds, resolveRun, runPaths } from '../../staging/run-folder.ts';
import { readManifest, type Manifest } from '../../staging/manifest.ts';
import { EditGenerator, formatEdit } from './edits.ts';
import { covers } from './clean-oracle.ts';
import { assertMirrors, contents, editKinds, editsTouching, integers, Mirror, pipelineWithMargin, query, type IncrementalCommand } from './harness.ts';

const servers = useServers();

const SEEDS = integers('OPS_SEEDS', [2]);
const [ROUNDS] = integers('OPS_ROUNDS', [4]) as [number];
const [EDITS] = integers('OPS_EDITS', [60]) as [number];
const [SCALE] = integers('OPS_SCALE', [1000]) as [number];
const [MARGIN_SECONDS] = integers('OPS_MARGIN_SECONDS', [2]) as [number];

/** What an operator does after a round of edits. */
type Action =
  | 'run'
  | 'stages'
  | 'subset_run'
  | 'subset_stages'
  | 'full_subset'
  | 'dump_run'
  | 'older_load'
  | 'dry_run'
  | 'abandoned'
  | 'since_before'
  | 'since_after'
  | 'delete_all'
  | 'clean'
  | 'pack_verify'
  | 'stale_load'
  | 'subset_retransform';

const ALL_ACTION_WEIGHTS: readonly (readonly [Action, number])[] = [
  ['run', 3],
  ['stages', 3],
  ['subset_run', 3],
  ['subset_stages', 2],
  ['full_subset', 2],
  ['dump_run', 2],
  ['older_load', 2],
  ['dry_run', 2],
  ['abandoned', 2],
  ['since_before', 2],
  ['since_after', 2],
  ['delete_all', 2],
  ['clean', 2],
  ['pack_verify', 2],
  ['stale_load', 2],
  ['subset_retransform', 2],
];

/** OPS_ACTIONS=since_after,clean draws only those actions (a seed then draws otherwise: name them to replay). */
const ONLY = process.env.OPS_ACTIONS?.split(',').map((a) => a.trim()).filter((a) => a !== '') ?? [];
const ACTION_WEIGHTS = ONLY.length === 0 ? ALL_ACTION_WEIGHTS : ALL_ACTION_WEIGHTS.filter(([a]) => ONLY.includes(a));
if (ONLY.length > 0 && ACTION_WEIGHTS.length !== ONLY.length) throw new Error(`OPS_ACTIONS: expected some of ${ALL_ACTION_WEIGHTS.map(([a]) => a).join(', ')}, got "${process.env.OPS_ACTIONS}"`);

/**
 * Collections an operator may find emptied (delete_all): each feeds tables other tables reference
 * (companies, recipes, contents, days…) or a dedupe rollup (coachinglogbooks, menurecipes), so the
 * emptying is followed through references and pending rows, and the refill lands them again. Not
 * users nor events: every round's edits need them.
 */
const EMPTIED: readonly string[] = ['companies', 'recipes', 'contents', 'messages', 'coachinglogbooks', 'menurecipes', 'appointments', 'days', 'periods', 'items', 'userquizzquestions'];

/**
 * Subsets that split a table from what it references or from its link tables (users without
 * user_events and users_targets, the link tables without their parent, events without menus of the
 * same collection, a dedupe rollup without its parent…); random ones are drawn too.
 */
const SPLITS: readonly (readonly string[])[] = [
  ['users'],
  ['user_events', 'users_targets'],
  ['events'],
  ['menus', 'menu_recipes'],
  ['days'],
  ['days_contents_links', 'days_logbooks_links'],
  ['coachings'],
  ['appointments', 'coaching_reasons'],
  ['users_logbook'],
  ['recipes', 'menu_recipes'],
  ['messages', 'companies'],
  ['contents', 'users_contents_reads'],
];

/** One seed's operator: draws actions, runs their commands, and logs everything worth replaying. */
class Operator {
  readonly rng: Rng;
  readonly log: string[] = [];
  /** Set when the round's last action was an `etl run --propagate-deletes` of every table. */
  mirrored = false;
  private dumps = 0;

  constructor(
    readonly m: Mirror,
    readonly generator: EditGenerator,
    readonly seed: number,
    readonly pipeline: string,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0x0915));
  }

  say(line: string): void {
    this.log.push(line);
    console.log(`[seed ${this.seed}] ${line}`);
  }

  /**
   * `etl <command> <extra>` on the incremental database and staging folder (from `dump` when given);
   * it must exit `code` and print no stack trace.
   */
  async etl(command: IncrementalCommand, extra: readonly string[], options: { dump?: string; code?: number } = {}): Promise<CliResult> {
    const r = await etl(this.m.incrementalArgs(command, extra, this.pipeline, options.dump), { env: this.m.incrementalEnv, timeoutMs: 300_000 });
    const from = options.dump ? ` --source ${path.basename(options.dump)}` : '';
    this.say(`  etl ${command}${from} ${extra.join(' ')}: exit ${r.code ?? r.signal}`);
    assert.equal(r.code, options.code ?? 0, `etl ${command}${from} ${extra.join(' ')} exits ${options.code ?? 0}:\n${r.output}`);
    assert.doesNotMatch(r.output, STACK_LINE, `etl ${command} printed a stack trace:\n${r.output}`);
    return r;
  }

  /**
   * `etl <args>` for the commands incrementalArgs does not spell (clean, runs, report, pack, verify):
   * `args` name the staging folder and database themselves; logged without them.
   */
  async command(args: readonly string[], shown: string, code = 0): Promise<CliResult> {
    const r = await etl(args, { env: this.m.incrementalEnv, timeoutMs: 300_000 });
    this.say(`  etl ${shown}: exit ${r.code ?? r.signal}`);
    assert.equal(r.code, code, `etl ${shown} exits ${code}:\n${r.output}`);
    assert.doesNotMatch(r.output, STACK_LINE, `etl ${shown} printed a stack trace:\n${r.output}`);
    return r;
  }

  /** Every table and every etl_* state table, as contents() gives them: what a refused command must leave. */
  async everything(): Promise<Record<string, string>> {
    return contents(this.m.incrementalUrl, [...this.m.tables, ...(await stateTables(this.m.incrementalUrl))]);
  }

  /** etl_watermarks: each table's watermark (ISO) and the run that set it. */
  async watermarks(): Promise<Map<string, { watermark: Date; runId: string }>> {
    const rows = await query<{ t: string; w: Date; r: string }>(this.m.incrementalUrl, 'SELECT table_name AS t, watermark AS w, run_id AS r FROM etl_watermarks');
    return new Map(rows.map((x) => [x.t, { watermark: x.w, runId: x.r }]));
  }

  /** The staged runs, newest first, each with its manifest (null: none readable). */
  async stagedRuns(): Promise<{ runId: string; manifest: Manifest | null }[]> {
    const out: { runId: string; manifest: Manifest | null }[] = [];
    for (const runId of await listRunIds(this.m.incrementalStaging)) out.push({ runId, manifest: await readManifest(runPaths(this.m.incrementalStaging, runId)).catch(() => null) });
    return out;
  }

  /** The runs the ledger (etl_runs) says were loaded, repair runs aside. */
  async ledgerRuns(): Promise<Set<string>> {
    return new Set((await query<{ r: string }>(this.m.incrementalUrl, 'SELECT DISTINCT run_id AS r FROM etl_runs')).map((x) => x.r));
  }

  /** The run `latest` names: the one a stage command just made. */
  async latestRun(): Promise<string> {
    return (await resolveRun(this.m.incrementalStaging)).runId;
  }

  propagate(): string[] {
    return this.rng.chance(0.6) ? ['--propagate-deletes'] : [];
  }

  /** A subset of tables, in load order: one of SPLITS, or one to four tables drawn from all. */
  subset(): string[] {
    const tables = new Set<string>();
    if (this.rng.chance(0.5)) for (const t of this.rng.pick(SPLITS)) tables.add(t);
    else for (let n = this.rng.int(1, 4); tables.size < n; ) tables.add(this.rng.pick(this.m.tables));
    return this.m.tables.filter((t) => tables.has(t));
  }

  /** One action; `mirrored` says afterwards whether it was an `etl run --propagate-deletes` of every table. */
  async act(action: Action): Promise<void> {
    this.mirrored = false;
    const actions: Record<Action, () => Promise<void>> = {
      run: () => this.run(),
      stages: () => this.stages(),
      subset_run: () => this.subsetRun(),
      subset_stages: () => this.subsetStages(),
      full_subset: () => this.fullSubset(),
      dump_run: () => this.dumpRun(),
      older_load: () => this.olderLoad(),
      dry_run: () => this.dryRun(),
      abandoned: () => this.abandoned(),
      since_before: () => this.sinceBefore(),
      since_after: () => this.sinceAfter(),
      delete_all: () => this.deleteAll(),
      clean: () => this.clean(),
      pack_verify: () => this.packVerify(),
      stale_load: () => this.staleLoad(),
      subset_retransform: () => this.subsetRetransform(),
    };
    await actions[action]();
  }

  async run(): Promise<void> {
    const propagate = this.propagate();
    this.say(`action: etl run ${propagate.join(' ')}`);
    await this.etl('run', propagate);
    this.mirrored = propagate.length > 0;
  }

  async subsetRun(): Promise<void> {
    const tables = this.subset();
    const propagate = this.propagate();
    this.say(`action: etl run --tables ${tables.join(',')} ${propagate.join(' ')}`);
    await this.etl('run', ['--tables', tables.join(','), ...propagate]);
  }

  async subsetStages(): Promise<void> {
    const tables = this.subset();
    const propagate = this.propagate();
    this.say(`action: etl extract --tables ${tables.join(',')} ${propagate.join(' ')} → transform → load`);
    await this.etl('extract', ['--tables', tables.join(','), ...propagate]);
    await this.etl('transform', []);
    await this.etl('load', []);
  }

  /** A reload of some tables: their collections read in full, the rows they no longer hold leave. */
  async fullSubset(): Promise<void> {
    const tables = this.subset();
    this.say(`action: etl run --full --tables ${tables.join(',')}`);
    await this.etl('run', ['--full', '--tables', tables.join(',')]);
  }

  /** `etl run --source <dump>` of a dump taken just before (a folder of .bson files and an archive in turn). */
  async dumpRun(): Promise<void> {
    const format = this.dumps % 2 === 0 ? 'folder' : 'archive';
    const dump = await this.m.dump(`dump-${++this.dumps}`, format);
    const propagate = this.propagate();
    this.say(`action: a dump (${format}), then etl run --source <dump> ${propagate.join(' ')}`);
    await this.etl('run', propagate, { dump });
    this.mirrored = propagate.length > 0;
  }

  /** An extract (of every table or a subset; sometimes transformed too) never loaded, then `etl run`. */
  async abandoned(): Promise<void> {
    const tables = this.rng.chance(0.5) ? ['--tables', this.subset().join(',')] : [];
    const propagate = this.propagate();
    const transformed = this.rng.chance(0.5);
    this.say(`action: etl extract ${[...tables, ...propagate].join(' ')}${transformed ? ' → transform' : ''} left unloaded, then etl run`);
    await this.etl('extract', [...tables, ...propagate]);
    if (transformed) await this.etl('transform', []);
    await this.run();
  }

  /** extract, transform (sometimes again, twice, from the staged files: the same bytes), load. */
  async stages(): Promise<void> {
    const propagate = this.propagate();
    const again = this.rng.chance(0.5);
    this.say(`action: etl extract ${propagate.join(' ')} → transform${again ? ' → transform --run <id> twice' : ''} → load`);
    await this.etl('extract', propagate);
    const runId = await this.latestRun();
    await this.etl('transform', []);
    if (again) {
      const first = await transformDigest(this.m.incrementalStaging, runId);
      await this.etl('transform', ['--run', runId]);
      await this.etl('transform', ['--run', runId]);
      assert.deepEqual(await transformDigest(this.m.incrementalStaging, runId), first, `etl transform --run ${runId} again writes the same files`);
    }
    await this.etl('load', []);
    this.mirrored = propagate.length > 0;
  }

  /**
   * extract and transform, then `etl load --dry-run`: PostgreSQL does not change, and its figures
   * are those the real load that follows reports.
   */
  async dryRun(): Promise<void> {
    const propagate = this.propagate();
    this.say(`action: etl extract ${propagate.join(' ')} → transform → load --dry-run → load`);
    await this.etl('extract', propagate);
    await this.etl('transform', []);
    const tables = [...this.m.tables, ...(await stateTables(this.m.incrementalUrl))];
    const before = await contents(this.m.incrementalUrl, tables);
    const started = Date.now();
    const dry = JSON.parse((await this.etl('load', ['--dry-run', '--json'])).stdout) as LoadJson;
    assert.deepEqual(await contents(this.m.incrementalUrl, tables), before, 'etl load --dry-run changed nothing, its own state tables included');
    const real = JSON.parse((await this.etl('load', ['--json'])).stdout) as LoadJson;
    assert.equal(dry.dry_run, true);
    assert.equal(real.dry_run, false);
    assert.deepEqual(figures(dry, started), figures(real, started), 'etl load --dry-run reports the figures of the load that follows');
    this.mirrored = propagate.length > 0;
  }

  /**
   * A run extracted and transformed (A), left unloaded while more edits land and a newer run loads
   * every table or a subset; then `etl load --run A`: refused, naming the newer run's tables, and
   * nothing changes (README, Incremental runs). When the newer run loaded a subset, the refusal names
   * the tables A may still load, and `etl load --run A --tables <those>` loads them.
   */
  async olderLoad(): Promise<void> {
    const olderPropagate = this.propagate();
    const subset = this.rng.chance(0.5) ? this.subset() : null;
    const newer = [...(subset ? ['--tables', subset.join(',')] : []), ...this.propagate()];
    this.say(`action: etl extract ${olderPropagate.join(' ')} → transform (run A), edits, etl run ${newer.join(' ')}, etl load --run A`);
    await this.etl('extract', olderPropagate);
    const older = await this.latestRun();
    await this.etl('transform', []);
    const edits = await this.generator.applyRound(Math.max(5, Math.floor(EDITS / 3)));
    this.say(`  ${edits.length} edits (round r${edits[0]?.round ?? '?'}) between run A (${older}) and the newer run`);
    // Beyond the margin, as hours between two runs are: the newer run's watermark passes these edits,
    // so no later run reads them again and only the load of run A could lose them.
    await sleep((MARGIN_SECONDS + 1) * 1000);
    await this.etl('run', newer);
    const newerRun = await this.latestRun();
    const loaded = subset ?? this.m.tables;
    const before = await contents(this.m.incrementalUrl, this.m.tables);
    const r = await this.etl('load', ['--run', older], { code: 1 });
    assert.match(r.stderr, new RegExp(`run ${older} is older than run ${newerRun}, already loaded into ${loaded.length <= 4 ? loaded.join(', ') : `${loaded.slice(0, 3).join(', ')} and ${loaded.length - 3} more tables`}: .*refused`));
    assert.deepEqual(await contents(this.m.incrementalUrl, this.m.tables), before, 'a refused load changes nothing');
    const others = this.m.tables.filter((t) => !loaded.includes(t));
    if (others.length === 0) {
      assert.match(r.stderr, /hint: run etl run .*\. Nothing was changed/);
      return;
    }
    assert.match(r.stderr, new RegExp(`etl load --run ${older} --tables ${others.join(',')} loads only the tables no newer run has loaded`));
    await this.etl('load', ['--run', older, '--tables', others.join(',')]);
  }

  /**
   * `--since D` with D at or before every table's watermark (up to ten minutes earlier): it reads
   * what the watermark would and more, so it stays exact (README, Incremental runs).
   */
  async sinceBefore(): Promise<void> {
    const marks = [...(await this.watermarks()).values()].map((w) => w.watermark.getTime());
    const since = new Date(Math.min(...marks) - this.rng.int(0, 600) * 1000).toISOString();
    const propagate = this.propagate();
    const staged = this.rng.chance(0.5);
    this.say(`action: ${staged ? 'etl extract' : 'etl run'} --since ${since} (before every watermark) ${propagate.join(' ')}${staged ? ' → transform → load' : ''}`);
    await this.sinceRun(since, propagate, staged);
    this.mirrored = propagate.length > 0;
  }

  /** `etl run --since D`, or its three stages. */
  private async sinceRun(since: string, propagate: readonly string[], staged: boolean): Promise<void> {
    if (!staged) return void (await this.etl('run', ['--since', since, ...propagate]));
    await this.etl('extract', ['--since', since, ...propagate]);
    await this.etl('transform', []);
    await this.etl('load', []);
  }

  /**
   * `--since D` with D after the watermark: the documents edited between the watermark and D are not
   * read. README (Incremental runs): the run does not move a watermark past what it read, so they
   * stay as they were until the next run, which reads from the watermark: the watermarks do not
   * move, and the next plain `etl run --propagate-deletes` (or an `etl run --full`) ends exact.
   */
  async sinceAfter(): Promise<void> {
    const before = await this.watermarks();
    // Beyond the margin, as hours between the edits and D are: only a read from the watermark sees
    // the round's edits made before D.
    await sleep((MARGIN_SECONDS + 1) * 1000);
    const since = new Date();
    const edits = await this.generator.applyRound(Math.max(3, Math.floor(EDITS / 6)));
    const propagate = this.propagate();
    const staged = this.rng.chance(0.5);
    const heal = this.rng.chance(0.7) ? ['--propagate-deletes'] : ['--full'];
    this.say(`action: ${edits.length} edits (round r${edits[0]?.round ?? '?'}) after D, then ${staged ? 'etl extract' : 'etl run'} --since D=${since.toISOString()} (after every watermark) ${propagate.join(' ')}${staged ? ' → transform → load' : ''}, then etl run ${heal.join(' ')}`);
    await this.sinceRun(since.toISOString(), propagate, staged);
    const after = await this.watermarks();
    for (const [table, w] of before) {
      assert.equal(after.get(table)?.watermark.toISOString(), w.watermark.toISOString(), `${table}: a run --since ${since.toISOString()} (after its watermark ${w.watermark.toISOString()}) leaves the watermark where it was`);
    }
    await this.etl('run', heal);
    this.mirrored = true;
  }

  /**
   * A collection emptied in MongoDB: `etl run --propagate-deletes` (or its stages) is refused by the
   * guard against a wrong source (exit 1, naming the table and the rows it would delete, nothing
   * changed); then with --allow-delete-all (the refused run's load again, as the hint says, or a new
   * run) the tables empty and the mirror is exact. The next round inserts the documents again.
   */
  async deleteAll(): Promise<void> {
    const candidates = EMPTIED.filter((c) => !this.generator.emptiedCollections.includes(c));
    const collection = this.rng.pick(candidates);
    const counts = await tableCounts(this.m.incrementalUrl, this.m.tables);
    const guarded = this.m.tables.filter((t) => this.m.model.tables.get(t)!.collection === collection && (counts.get(t) ?? 0) > 0);
    const edit = await this.generator.emptyCollection(collection);
    const staged = this.rng.chance(0.5);
    const again = this.rng.chance(0.5);
    this.say(`action: ${formatEdit(edit)}; ${staged ? 'etl extract --propagate-deletes → transform → load' : 'etl run --propagate-deletes'} refused, then ${again ? 'etl load --allow-delete-all of that run' : 'etl run --propagate-deletes --allow-delete-all'}`);
    const before = await this.everything();
    let refused: CliResult;
    if (staged) {
      await this.etl('extract', ['--propagate-deletes']);
      await this.etl('transform', []);
      refused = await this.etl('load', [], { code: guarded.length > 0 ? 1 : 0 });
    } else refused = await this.etl('run', ['--propagate-deletes'], { code: guarded.length > 0 ? 1 : 0 });
    if (guarded.length > 0) {
      const table = guarded[0]!;
      assert.match(
        refused.stderr,
        new RegExp(`${table}: the run's live set is empty \\(collection ${collection} had no matching document when extracted\\), so propagating deletes would delete all ${counts.get(table)} rows of ${table}; refused`),
      );
      assert.match(refused.stderr, /load again with --allow-delete-all\. Nothing was changed/);
      assert.deepEqual(await this.everything(), before, 'a load refused by the empty-live-set guard changes nothing, its state tables included');
    }
    if (again) await this.etl('load', ['--allow-delete-all']);
    else await this.etl('run', ['--propagate-deletes', '--allow-delete-all']);
    const emptied = await tableCounts(this.m.incrementalUrl, guarded);
    for (const t of guarded) assert.equal(emptied.get(t), 0, `${t} is empty once collection ${collection} is, with --allow-delete-all`);
    this.mirrored = true;
  }

  /** The collections emptied earlier get their documents back (the start of the next round). */
  async refill(): Promise<void> {
    for (const c of this.generator.emptiedCollections) this.say(`${formatEdit(await this.generator.refill(c))}`);
  }

  /**
   * `etl clean` (sometimes with --keep, --older-than, --dry-run; sometimes with a run left staged
   * and not loaded): it removes only what no command needs. Kept: `latest`, the newest loaded run,
   * every run extracted and transformed but not loaded that no newer loaded run superseded (one that
   * went into the same database and read all it carried: clean-oracle.ts), every unfinished run
   * newer than the newest loaded one; --dry-run removes nothing. Then `etl status`, `etl runs` (every run of the ledger
   * listed, cleaned or not) and `etl report` work, and the run left staged loads.
   */
  async clean(): Promise<void> {
    const leave = this.rng.chance(0.4);
    const flags: string[] = [];
    if (this.rng.chance(0.3)) flags.push('--keep', String(this.rng.int(0, 3)));
    if (this.rng.chance(0.3)) flags.push('--older-than', this.rng.pick(['1m', '30m', '7d']));
    if (this.rng.chance(0.2)) flags.push('--dry-run');
    this.say(`action: ${leave ? 'etl extract → transform left unloaded, ' : ''}etl clean ${flags.join(' ')}, etl status, etl runs, etl report${leave ? ', etl load --run <the one left>' : ''}`);
    let left: string | null = null;
    if (leave) {
      await this.etl('extract', this.propagate());
      left = await this.latestRun();
      await this.etl('transform', []);
    }
    const runs = await this.stagedRuns();
    const loaded = (m: Manifest | null) => m?.stages.load?.status === 'done' && m.stages.load.dry_run !== true;
    const finished = (m: Manifest | null) => m?.stages.extract?.status === 'done' && m.stages.transform?.status === 'done';
    const newestLoaded = runs.find((r) => loaded(r.manifest))?.runId ?? null;
    const latest = await this.latestRun();
    // The tables a loaded run's load committed (or found already applied), as its manifest says.
    const committed = (m: Manifest) => new Set([...Object.keys(m.stages.load?.tables ?? {}), ...(m.stages.load?.skipped ?? []).map((x) => x.table)]);
    const superseded = (r: { runId: string; manifest: Manifest | null }) =>
      r.manifest?.stages.load?.status !== 'running' && runs.some((b) => b.runId > r.runId && loaded(b.manifest) && covers(r.manifest!, b.manifest!, committed(b.manifest!)));
    const notLoaded = (r: { runId: string; manifest: Manifest | null }) => finished(r.manifest) && !loaded(r.manifest) && !superseded(r);
    const mustStay = new Set(runs.filter((r) => r.runId === latest || r.runId === newestLoaded || notLoaded(r) || (!finished(r.manifest) && (newestLoaded === null || r.runId > newestLoaded))).map((r) => r.runId));
    const r = await this.command(['clean', '--staging', this.m.incrementalStaging, '--json', ...flags], `clean ${flags.join(' ')}`);
    const report = JSON.parse(r.stdout) as { removed: { run_id: string }[] };
    const after = new Set(await listRunIds(this.m.incrementalStaging));
    this.say(`  ${report.removed.length} run(s) removed${flags.includes('--dry-run') ? ' (would be)' : ''}: ${report.removed.map((x) => x.run_id).join(', ')}`);
    for (const id of mustStay) assert.ok(after.has(id), `etl clean ${flags.join(' ')} keeps run ${id}`);
    for (const { run_id } of report.removed) {
      assert.ok(!mustStay.has(run_id), `etl clean ${flags.join(' ')} does not remove run ${run_id}`);
      assert.equal(after.has(run_id), flags.includes('--dry-run'), `run ${run_id} ${flags.includes('--dry-run') ? 'stays under --dry-run' : 'is gone'}`);
    }
    assert.equal(after.size, runs.length - (flags.includes('--dry-run') ? 0 : report.removed.length), 'etl clean removes exactly the runs it names');
    const db = ['--staging', this.m.incrementalStaging, '--database-url', this.m.incrementalUrl];
    await this.command(['status', ...db, '--pipeline', this.pipeline], 'status');
    const listed = await this.command(['runs', ...db, '--json'], 'runs --json');
    for (const id of await this.ledgerRuns()) assert.ok(listed.stdout.includes(`"${id}"`), `etl runs lists run ${id} of the ledger, cleaned or not`);
    await this.command(['report', ...db, '--out', path.join(this.m.work, 'report.html')], 'report');
    if (newestLoaded) await this.command(['report', ...db, '--run', newestLoaded, '--out', path.join(this.m.work, 'report.html')], `report --run ${newestLoaded}`);
    if (left) await this.etl('load', ['--run', left]);
  }

  /**
   * `etl pack` of a random finished run, then `etl verify` of the archive: it passes; a copy of the
   * archive with one byte flipped in one staged file fails (exit 1) naming that file.
   */
  async packVerify(): Promise<void> {
    const finished = (await this.stagedRuns()).filter((r) => r.manifest?.stages.extract?.status === 'done' && r.manifest.stages.transform?.status === 'done' && r.manifest.stages.load?.status !== 'running');
    if (finished.length === 0) return this.say('action: etl pack: no finished run to pack');
    const runId = this.rng.pick(finished).runId;
    const packs = path.join(this.m.work, 'packs');
    await mkdir(packs, { recursive: true });
    const archive = path.join(packs, `${runId}.tar.gz`);
    this.say(`action: etl pack --run ${runId}, etl verify <archive>, etl verify <a copy with a byte flipped>`);
    await this.command(['pack', '--staging', this.m.incrementalStaging, '--run', runId, '--out', archive], `pack --run ${runId}`);
    await this.command(['verify', archive, '--pipeline', this.pipeline], `verify ${runId}.tar.gz`);
    const { bytes, file } = flipOneByte(gunzipSync(await readFile(archive)), this.rng);
    const copy = path.join(packs, `${runId}.flipped.tar.gz`);
    await writeFile(copy, gzipSync(bytes));
    this.say(`  a copy with a byte of ${file} flipped`);
    const r = await this.command(['verify', copy, '--pipeline', this.pipeline], `verify ${runId}.flipped.tar.gz`, 1);
    assert.ok(r.output.includes(file.slice(file.indexOf('/') + 1)), `etl verify names ${file}:\n${r.output}`);
  }

  /**
   * A run whose load was refused or never done (else one extracted now, before a newer `etl run`),
   * transformed again and loaded after newer runs: `etl transform --run X` writes the same files,
   * then `etl load --run X` is refused for the tables a newer run set the watermark of (exit 1, naming
   * the newest, nothing changed), and its other tables load with the --tables the hint names.
   */
  async staleLoad(): Promise<void> {
    const ledger = await this.ledgerRuns();
    const newest = [...ledger].sort().at(-1)!;
    const stale = (await this.stagedRuns()).filter((r) => !ledger.has(r.runId) && r.runId < newest && r.manifest?.stages.extract?.status === 'done' && r.manifest.stages.load?.status !== 'running');
    let runId: string;
    if (stale.length > 0) {
      runId = this.rng.pick(stale).runId;
      this.say(`action: etl transform --run ${runId}, etl load --run ${runId} (a run never loaded, older than run ${newest})`);
    } else {
      const propagate = this.propagate();
      this.say(`action: etl extract ${propagate.join(' ')} (run X), etl run, etl transform --run X, etl load --run X`);
      await this.etl('extract', propagate);
      runId = await this.latestRun();
      await this.etl('run', []);
    }
    const manifest = await readManifest(runPaths(this.m.incrementalStaging, runId));
    const transformed = manifest.stages.transform?.status === 'done' ? await transformDigest(this.m.incrementalStaging, runId) : null;
    await this.etl('transform', ['--run', runId]);
    if (transformed) assert.deepEqual(await transformDigest(this.m.incrementalStaging, runId), transformed, `etl transform --run ${runId} again writes the same files`);
    const staged = (await readManifest(runPaths(this.m.incrementalStaging, runId))).stages.transform!.tables;
    const tables = this.m.tables.filter((t) => t in staged);
    const marks = await this.watermarks();
    const newer = tables.filter((t) => (marks.get(t)?.runId ?? '') > runId);
    const before = await this.everything();
    if (newer.length === 0) return void (await this.etl('load', ['--run', runId]));
    const newestRun = newer.map((t) => marks.get(t)!.runId).sort().at(-1)!;
    const r = await this.etl('load', ['--run', runId], { code: 1 });
    assert.match(r.stderr, new RegExp(`run ${runId} is older than run ${newestRun}, already loaded into ${newer.length <= 4 ? newer.join(', ') : `${newer.slice(0, 3).join(', ')} and ${newer.length - 3} more tables`}: .*refused`));
    assert.deepEqual(await this.everything(), before, 'a refused load changes nothing');
    const others = tables.filter((t) => !newer.includes(t));
    if (others.length === 0) return void assert.match(r.stderr, /hint: run etl run .*\. Nothing was changed/);
    assert.match(r.stderr, new RegExp(`etl load --run ${runId} --tables ${others.join(',')} loads only the tables no newer run has loaded`));
    await this.etl('load', ['--run', runId, '--tables', others.join(',')]);
  }

  /**
   * One to three tables a subset re-transform redoes: a table with its link tables (every table of
   * its collection), a split of them (the parent without its link tables, or some link tables
   * without the parent), or tables drawn from all.
   */
  retransformSubset(): string[] {
    const byCollection = new Map<string, string[]>();
    for (const t of this.m.tables) {
      const c = this.m.model.tables.get(t)!.collection;
      byCollection.set(c, [...(byCollection.get(c) ?? []), t]);
    }
    const linked = [...byCollection.values()].filter((ts) => ts.length > 1);
    const draw = this.rng.next();
    if (draw < 0.4) return this.rng.pick(linked);
    if (draw < 0.7) {
      const family = this.rng.pick(linked);
      return this.rng.chance(0.5) ? [family[0]!] : family.slice(1, 1 + this.rng.int(1, family.length - 1));
    }
    const tables = new Set<string>();
    for (const n = this.rng.int(1, 3); tables.size < n; ) tables.add(this.rng.pick(this.m.tables));
    return this.m.tables.filter((t) => tables.has(t));
  }

  /**
   * A staged run (X) transformed, then `etl transform --run X --tables <one to three tables>` before
   * it is loaded (README, Commands: the other tables' files and records stay when the earlier
   * transform finished with the same pipeline.yaml, else they go with their records). Sometimes a
   * transform of X failed (a staged file damaged, then restored) or was killed first: a subset
   * redone after a failed or killed subset still keeps the run whole; after a killed full transform
   * it holds the subset alone. Each time `etl verify <run folder>` passes (the folder holds exactly
   * what the manifest records), then `etl load` (or `etl load --tables` some of them) loads it.
   */
  async subsetRetransform(): Promise<void> {
    const propagate = this.propagate();
    const before = this.rng.pick(['none', 'none', 'none', 'failed_subset', 'killed_subset', 'killed_full'] as const);
    const tables = this.retransformSubset();
    this.say(`action: etl extract ${propagate.join(' ')} (run X) → transform${before === 'none' ? '' : ` (then ${before.replace('_', ' ')} transform)`} → transform --run X --tables ${tables.join(',')} → verify <X> → load`);
    await this.etl('extract', propagate);
    const runId = await this.latestRun();
    const dir = runPaths(this.m.incrementalStaging, runId).dir;
    if (before === 'killed_full') await this.killedTransform(runId, []);
    else await this.etl('transform', []);
    const whole = Object.keys((await readManifest(runPaths(this.m.incrementalStaging, runId))).stages.transform?.tables ?? {});
    if (before === 'failed_subset') await this.failedTransform(runId, dir, tables);
    if (before === 'killed_subset') await this.killedTransform(runId, tables);
    await this.etl('transform', ['--run', runId, '--tables', tables.join(',')]);
    await this.command(['verify', dir, '--pipeline', this.pipeline], `verify <run ${runId} folder>`);
    const section = (await readManifest(runPaths(this.m.incrementalStaging, runId))).stages.transform!;
    const staged = this.m.tables.filter((t) => t in section.tables);
    this.say(`  run X (${runId}) holds ${staged.length} table(s) after the subset re-transform, ${section.tables_kept?.length ?? 0} kept from the earlier one`);
    assert.equal(section.status, 'done', `etl transform --run ${runId} --tables ${tables.join(',')} finishes`);
    for (const t of tables) assert.ok(staged.includes(t), `run ${runId} holds ${t}, re-transformed`);
    // A finished earlier transform (or a failed or killed subset after it) is kept whole.
    if (before !== 'killed_full') assert.deepEqual(staged, this.m.tables.filter((t) => whole.includes(t) || tables.includes(t)), `run ${runId} keeps every table of its earlier transform`);
    const some = this.rng.chance(0.3) ? staged.filter(() => this.rng.chance(0.5)) : [];
    if (some.length > 0) return void (await this.etl('load', ['--run', runId, '--tables', some.join(',')]));
    await this.etl('load', ['--run', runId]);
    this.mirrored = propagate.length > 0 && staged.length === this.m.tables.length;
  }

  /**
   * `etl transform --run X --tables <tables>` failing: the first table's collection file gets a
   * line that is no document (exit 1), then its bytes come back.
   */
  private async failedTransform(runId: string, dir: string, tables: readonly string[]): Promise<void> {
    const file = path.join(dir, 'extract', `${this.m.model.tables.get(tables[0]!)!.collection}.ndjson`);
    const bytes = await readFile(file);
    await writeFile(file, Buffer.concat([bytes, Buffer.from('{"_id":"damage"}\n')]));
    try {
      await this.etl('transform', ['--run', runId, '--tables', tables.join(',')], { code: 1 });
    } finally {
      await writeFile(file, bytes);
    }
  }

  /**
   * `etl transform --run X [--tables <tables>]` killed (SIGKILL) while at work: once its manifest
   * section says it runs, after up to 50 ms more (it may have finished first).
   */
  private async killedTransform(runId: string, tables: readonly string[]): Promise<void> {
    const extra = ['--run', runId, ...(tables.length > 0 ? ['--tables', tables.join(',')] : [])];
    const child = this.m.startIncremental('transform', extra, { pipeline: this.pipeline, timeoutMs: 300_000 });
    let ended = false;
    void child.done.then(() => (ended = true));
    const paths = runPaths(this.m.incrementalStaging, runId);
    const running = async () => (await readManifest(paths).catch(() => null))?.stages.transform?.status === 'running';
    while (!ended && !(await running())) await sleep(10);
    await sleep(this.rng.int(0, 50));
    child.kill('SIGKILL');
    const r = await child.done;
    this.say(`  etl transform ${extra.join(' ')} killed: ${r.signal ?? `it had ended, exit ${r.code}`}`);
    if (r.signal === null) assert.equal(r.code, 0, `etl transform ${extra.join(' ')}:\n${r.output}`);
  }
}

/** What `etl load --json` prints (the parts compared). */
interface LoadJson {
  readonly dry_run: boolean;
  readonly tables: readonly Record<string, unknown>[];
  readonly settled: readonly Record<string, unknown>[];
  readonly deletions: unknown;
}

/**
 * A load's figures per table, without where its rejects file is; a pending row's `since` when the
 * load itself held it back (its transaction's time, after `started`) reads `this load`.
 */
const figures = (r: LoadJson, started: number) => ({
  tables: r.tables.map(({ rejectsFile: _, pending, ...rest }) => ({ ...rest, pending: ownSince(pending as { since: string | null }, started) })),
  settled: r.settled.map((s) => ({ ...s, pending: ownSince(s.pending as { since: string | null }, started) })),
  deletions: r.deletions,
});

const ownSince = <P extends { since: string | null }>(p: P, started: number): P => (p.since !== null && Date.parse(p.since) >= started - 1000 ? { ...p, since: 'this load' } : p);

/** Rows per table. */
async function tableCounts(url: string, tables: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const t of tables) out.set(t, (await query<{ n: number }>(url, `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(t)}`))[0]!.n);
  return out;
}

/**
 * A tar's bytes with one byte flipped in the data of one staged file (extract/, transform/ or load/,
 * not the derived report.html nor the manifest), drawn at random; returns the bytes and the entry's
 * name. Reads ustar headers and pax `path` records.
 */
function flipOneByte(tar: Buffer, rng: Rng): { bytes: Buffer; file: string } {
  const entries: { name: string; at: number; size: number }[] = [];
  let paxPath: string | null = null;
  for (let at = 0; at + 512 <= tar.length && tar[at] !== 0; ) {
    const header = tar.subarray(at, at + 512);
    const text = (from: number, to: number) => header.subarray(from, to).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(text(124, 136).trim() || '0', 8);
    const type = String.fromCharCode(header[156]!);
    const prefix = text(345, 500);
    const name = paxPath ?? (prefix ? `${prefix}/${text(0, 100)}` : text(0, 100));
    if (type === 'x') paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(tar.subarray(at + 512, at + 512 + size).toString('utf8'))?.[1] ?? null;
    else {
      paxPath = null;
      if ((type === '0' || type === '\0') && size > 0 && /(^|\/)(extract|transform|load)\//.test(name)) entries.push({ name, at: at + 512, size });
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  assert.ok(entries.length > 0, 'the archive holds staged files');
  const entry = rng.pick(entries);
  const bytes = Buffer.from(tar);
  const offset = entry.at + rng.below(entry.size);
  bytes[offset] = bytes[offset]! ^ 0x04;
  return { bytes, file: entry.name };
}

/** The tool's own tables (etl_watermarks, etl_runs, etl_pending, etl_contrib_*…). */
async function stateTables(url: string): Promise<string[]> {
  const rows = await query<{ name: string }>(url, `SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'etl\\_%' ORDER BY 1`);
  return rows.map((r) => r.name);
}

/** sha256 of every file a run's transform wrote, by name. */
async function transformDigest(staging: string, runId: string): Promise<Record<string, string>> {
  const dir = path.join(staging, runId, 'transform');
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex');
  return out;
}

function replay(o: Operator): string {
  const byKind = new Map<string, number>();
  for (const e of o.generator.applied) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  return [
    `seed ${o.seed}, scale ${SCALE}, ${ROUNDS} round(s) of ${EDITS} edits, watermark margin ${MARGIN_SECONDS} s; replay with`,
    `  OPS_SEEDS=${o.seed} OPS_ROUNDS=${ROUNDS} OPS_EDITS=${EDITS} OPS_SCALE=${SCALE} OPS_MARGIN_SECONDS=${MARGIN_SECONDS}${ONLY.length > 0 ? ` OPS_ACTIONS=${ONLY.join(',')}` : ''} node --import tsx --test --test-timeout=1800000 test/mirror/operator-randomized.test.ts`,
    `edits by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`,
    'what happened:',
    ...o.log.map((l) => `  ${l}`),
    'every edit applied:',
    ...o.generator.applied.map((e) => `  ${formatEdit(e)}`),
  ].join('\n');
}

/** Every table equals a full run of MongoDB as it is now. */
async function assertMirror(o: Operator, when: string): Promise<void> {
  const reference = await o.m.reference(o.pipeline);
  await assertMirrors(o.m.model, o.m.incrementalUrl, reference, {
    examples: 5,
    annotate: (row) => editsTouching(o.generator.applied, row),
    classify: (row) => editKinds(o.generator.applied, row),
    context: `${when}\n${replay(o)}`,
  });
}

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of ${EDITS} random edits, each followed by random operator actions, end equal to a full run`, async (t) => {
    const m = await Mirror.open(t, servers);
    const pipeline = await pipelineWithMargin(m.work, MARGIN_SECONDS);
    await m.sample(SCALE, seed);
    await m.incremental(['--propagate-deletes'], pipeline);
    const o = new Operator(m, await EditGenerator.open(await m.db(), seed), seed, pipeline);
    for (let round = 1; round <= ROUNDS; round++) {
      try {
        await o.refill();
        const edits = await o.generator.applyRound(EDITS);
        o.say(`round ${round}: ${edits.length} edits`);
        const actions = o.rng.int(1, 3);
        for (let i = 0; i < actions; i++) await o.act(o.rng.weighted(ACTION_WEIGHTS));
      } catch (e) {
        throw new Error(`round ${round}: ${(e as Error).message}\n${replay(o)}`, { cause: e });
      }
      if (o.mirrored) await assertMirror(o, `after round ${round}, whose last action was an etl run --propagate-deletes of every table`);
    }
    o.say('the end: etl run --propagate-deletes');
    try {
      await o.etl('run', ['--propagate-deletes']);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${replay(o)}`, { cause: e });
    }
    await assertMirror(o, 'at the end');
  });
}
