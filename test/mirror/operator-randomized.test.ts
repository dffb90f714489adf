// The exact-mirror promise under the way operators really drive etl between edits, randomized. The
// other proofs run one command each round (`etl run --propagate-deletes`, or the three stages); an
// operator also runs a subset of tables (splitting a table from the tables it references or from its
// link tables), re-runs a stage from the staged files, reloads some tables in full, reads a dump,
// skips --propagate-deletes some days, checks a load with --dry-run, leaves an extract unloaded, and
// loads a staged run after a newer one was loaded.
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
// A failure prints, per table, the rows missing, extra and different by key, each with the edits
// that touched its documents, then every action and command of the seed and every edit applied.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { etl, STACK_LINE, type CliResult } from '../harness/cli.ts';
import { useServers } from '../harness/index.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { resolveRun } from '../../staging/run-folder.ts';
import { EditGenerator, formatEdit } from './edits.ts';
import { assertMirrors, contents, editKinds, editsTouching, integers, Mirror, pipelineWithMargin, query, type IncrementalCommand } from './harness.ts';

const servers = useServers();

const SEEDS = integers('OPS_SEEDS', [1, 2]);
const [ROUNDS] = integers('OPS_ROUNDS', [4]) as [number];
const [EDITS] = integers('OPS_EDITS', [60]) as [number];
const [SCALE] = integers('OPS_SCALE', [1000]) as [number];
const [MARGIN_SECONDS] = integers('OPS_MARGIN_SECONDS', [2]) as [number];

/** What an operator does after a round of edits. */
type Action = 'run' | 'stages' | 'subset_run' | 'subset_stages' | 'full_subset' | 'dump_run' | 'older_load' | 'dry_run' | 'abandoned';

const ACTION_WEIGHTS: readonly (readonly [Action, number])[] = [
  ['run', 3],
  ['stages', 3],
  ['subset_run', 3],
  ['subset_stages', 2],
  ['full_subset', 2],
  ['dump_run', 2],
  ['older_load', 2],
  ['dry_run', 2],
  ['abandoned', 2],
];

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
    `  OPS_SEEDS=${o.seed} OPS_ROUNDS=${ROUNDS} OPS_EDITS=${EDITS} OPS_SCALE=${SCALE} OPS_MARGIN_SECONDS=${MARGIN_SECONDS} node --import tsx --test --test-timeout=1800000 test/mirror/operator-randomized.test.ts`,
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
