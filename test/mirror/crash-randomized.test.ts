// Issue 12 ("nothing lost on bad input or a crash"), randomized: a crash at any moment of an
// incremental run loses nothing. A generated sample in FerretDB, a full `etl run`; then rounds of
// random edits (test/mirror/edits.ts), each followed by an incremental run (`etl run
// --propagate-deletes`, or `etl extract`, `etl transform`, `etl load` one after the other) killed
// (SIGKILL, sometimes SIGINT: Ctrl-C) after a random delay between 0 and the duration of an
// uninterrupted run of the same kind, so kills land in extract, transform, load's COPY, merge and
// commit. Sometimes the source moves while etl is down (more edits right after the kill), sometimes
// the run is killed twice in a row. Then the user's recovery, as README says it: run again (for the
// three commands: from the start, or from the stage that was killed, as `etl run --help` says); that
// first run must exit 0.
// After each round: a full run of the current MongoDB into a fresh reference database, every table
// equal; no `*.partial` file left in the staging folder; `etl status` exits 0; no stack trace in any
// output; the recovering run never waits forever on a lock.
//
// Replay a seed (the edits and kill delays replay; the moment a delay lands in depends on the machine):
//   CRASH_SEEDS=7 CRASH_ROUNDS=6 CRASH_EDITS=40 CRASH_SCALE=500 \
//     node --import tsx --test --test-timeout=1800000 test/mirror/crash-randomized.test.ts
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { STACK_LINE, type CliResult } from '../harness/cli.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { EditGenerator, formatEdit, type Edit } from './edits.ts';
import { assertMirrors, INCREMENTAL_STAGES, integers, Mirror, type IncrementalCommand } from './harness.ts';

const servers = useServers();

const SEEDS = integers('CRASH_SEEDS', [1, 2]);
const [ROUNDS] = integers('CRASH_ROUNDS', [4]) as [number];
const [EDITS] = integers('CRASH_EDITS', [40]) as [number];
const [SCALE] = integers('CRASH_SCALE', [500]) as [number];

/** No etl command of this test may take longer (a recovering run waiting forever on a stale lock fails here). */
const COMMAND_TIMEOUT_MS = 180_000;
/** Progress lines every 0.2 s on stderr (log mode), to tell which stage a kill landed in. */
const ENV = { ETL_PROGRESS_SECONDS: '0.2' };

type Kind = 'run' | 'stages';

/** One etl command that ran: its words, its result, and, when it was killed, the moment it was. */
interface Ran {
  readonly command: IncrementalCommand;
  readonly result: CliResult;
  readonly killed: { readonly signal: NodeJS.Signals; readonly moment: string; readonly afterMs: number } | null;
}

const LOAD_PHASE = /^\S+: (copy|truncate|duplicates|references|merge|ledger)$/;

/**
 * Where a command was when killed, from its stderr so far. SIGKILLed commands run with --verbose (a
 * line per event: `[  0.41 s] load users: merge`); SIGINTed ones without it (their error must print
 * no stack), so only the progress lines every 0.2 s tell (`load: …; now users (merge)`). In `etl run`
 * the furthest stage that has begun its work counts (the load takes each table while the transform
 * goes on): `load:<phase>` (copy, merge… of a table), `load:commit`, `load:done` (committed, the
 * manifest being written), else `transform`, else `extract`, else `startup` (nothing printed yet: node
 * starting, configuration, connections, the plan).
 */
function momentOf(command: IncrementalCommand, stderr: string): string {
  const seen = new Map<string, string>();
  for (const line of stderr.split('\n')) {
    const verbose = /^\[[^\]]+\] (extract|transform|load) (.*)$/.exec(line);
    const heartbeat = /^(extract|transform|load): (.*)$/.exec(line);
    const [stage, text] = verbose ? [verbose[1]!, verbose[2]!] : heartbeat ? [heartbeat[1]!, heartbeat[2]!] : [null, ''];
    if (stage === null) continue;
    if (stage !== 'load') seen.set(stage, stage);
    else if (/^done: /.test(text) || / in [\d.]+ (ms|s); run /.test(text)) seen.set('load', 'load:done');
    else if (/committing$/.test(text)) seen.set('load', 'load:commit');
    else {
      const phase = LOAD_PHASE.exec(text)?.[1] ?? /; now \S+ \((\w+)\)$/.exec(text)?.[1];
      if (phase) seen.set('load', `load:${phase}`);
      else if (command === 'load' && !seen.has('load')) seen.set('load', 'load:start');
    }
  }
  return seen.get('load') ?? seen.get('transform') ?? seen.get('extract') ?? 'startup';
}

class CrashWorld {
  readonly rng: Rng;
  /** Every line worth replaying: kill delays, moments, commands and their exit codes. */
  readonly log: string[] = [];
  /** Every command's output, checked for stack traces at the end of each round. */
  readonly outputs: { readonly label: string; readonly output: string }[] = [];
  /** How long an uninterrupted run of each kind took (measured once). */
  readonly durations = new Map<Kind, number>();
  /** Where each kill landed, counted. */
  readonly moments = new Map<string, number>();

  constructor(
    readonly m: Mirror,
    readonly generator: EditGenerator,
    readonly seed: number,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0xc7a5));
  }

  say(line: string): void {
    this.log.push(line);
    console.log(`[seed ${this.seed}] ${line}`);
  }

  async edit(count: number, why: string): Promise<Edit[]> {
    const edits = await this.generator.applyRound(count);
    this.say(`${edits.length} edits (${why}):`);
    for (const e of edits) this.say(`  ${formatEdit(e)}`);
    return edits;
  }

  /** Runs the commands one after the other; with `kill`, sends its signal `afterMs` after the first started. */
  async sequence(commands: readonly IncrementalCommand[], kill: { signal: NodeJS.Signals; afterMs: number } | null): Promise<Ran[]> {
    const ran: Ran[] = [];
    const t0 = Date.now();
    for (const command of commands) {
      const verbose = kill?.signal === 'SIGKILL' ? ['--verbose'] : [];
      const extra = [...(command === 'run' || command === 'extract' ? ['--propagate-deletes'] : []), ...verbose];
      const child = this.m.startIncremental(command, extra, { env: ENV, timeoutMs: COMMAND_TIMEOUT_MS });
      let killed: Ran['killed'] = null;
      const timer =
        kill === null
          ? null
          : setTimeout(() => {
              const lastLine = child.stderr.trimEnd().split('\n').pop()!.slice(0, 140);
              killed = { signal: kill.signal, moment: `${momentOf(command, child.stderr)}${lastLine ? ` — last line: ${lastLine}` : ''}`, afterMs: kill.afterMs };
              child.kill(kill.signal);
            }, Math.max(0, t0 + kill.afterMs - Date.now()));
      const result = await child.done;
      if (timer) clearTimeout(timer);
      const entry: Ran = { command, result, killed };
      ran.push(entry);
      this.outputs.push({ label: `etl ${command}${killed ? ` (${kill!.signal} at ${kill!.afterMs} ms)` : ''}`, output: result.output });
      const how = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
      this.say(`  etl ${command}: ${how}${killed ? ` (${(killed as NonNullable<Ran['killed']>).signal} sent at ${kill!.afterMs} ms, in ${(killed as NonNullable<Ran['killed']>).moment})` : ''}`);
      if (killed || result.code !== 0) break;
    }
    return ran;
  }

  /** An uninterrupted run of this kind, timed (the range kill delays are drawn from). */
  async measure(kind: Kind): Promise<void> {
    const t0 = Date.now();
    const ran = await this.sequence(kind === 'run' ? ['run'] : INCREMENTAL_STAGES, null);
    const failed = ran.find((r) => r.result.code !== 0);
    assert.equal(failed, undefined, `an uninterrupted ${kind} failed:\n${failed?.result.output}`);
    this.durations.set(kind, Date.now() - t0);
    this.say(`an uninterrupted ${kind} took ${Date.now() - t0} ms`);
  }

  /** One interrupted attempt; returns the commands a recovery runs (all of them again, or from the one killed). */
  async interrupted(kind: Kind, commands: readonly IncrementalCommand[], label: string): Promise<IncrementalCommand[]> {
    const signal: NodeJS.Signals = this.rng.chance(0.25) ? 'SIGINT' : 'SIGKILL';
    const afterMs = Math.round(this.rng.next() * this.durations.get(kind)!);
    this.say(`${label}: ${commands.join(' → ')}, ${signal} after ${afterMs} ms`);
    const ran = await this.sequence(commands, { signal, afterMs });
    const last = ran[ran.length - 1]!;
    const moment = last.killed && last.result.code !== 0 ? `${last.command === 'run' ? 'run' : 'stages'}/${last.killed.moment.split(' — ')[0]}` : 'completed before the kill';
    this.moments.set(moment, (this.moments.get(moment) ?? 0) + 1);
    if (!last.killed && last.result.code !== 0) assert.fail(`etl ${last.command} failed though nobody killed it:\n${last.result.output}`);
    // A run the kill came too late for: the next attempt is a new run of the same kind.
    if (kind === 'run' || !last.killed || last.result.code === 0) return kind === 'run' ? ['run'] : [...INCREMENTAL_STAGES];
    // Resuming from transform or load re-uses the staged extract (`latest`); from extract it is a new run anyway.
    const from = INCREMENTAL_STAGES.indexOf(last.command);
    return from > 0 && this.rng.chance(0.5) ? INCREMENTAL_STAGES.slice(from) : [...INCREMENTAL_STAGES];
  }

  /**
   * The user's recovery: run again. Nothing else stopped it, so it must exit 0 at once (a run that
   * fails here, waits forever on a lock or asks for something first is a finding).
   */
  async recover(commands: readonly IncrementalCommand[], why: string): Promise<void> {
    this.say(`${why}: ${commands.join(' → ')}`);
    const ran = await this.sequence(commands, null);
    const failed = ran.find((r) => r.result.code !== 0);
    if (failed) assert.fail(`the recovering etl ${failed.command} exited ${failed.result.code ?? failed.result.signal}:\n${failed.result.output}`);
  }

  /** One round: edits, one or two interrupted attempts (the source maybe moving in between), the recovery. */
  async round(round: number): Promise<void> {
    await this.edit(EDITS, `round ${round}`);
    const kind: Kind = this.rng.chance(0.35) ? 'stages' : 'run';
    let commands: IncrementalCommand[] = kind === 'run' ? ['run'] : [...INCREMENTAL_STAGES];
    let moved = false;
    const kills = this.rng.chance(0.25) ? 2 : 1;
    for (let k = 1; k <= kills; k++) {
      commands = await this.interrupted(kind, commands, `round ${round} kill ${k}/${kills}`);
      if (this.rng.chance(0.35)) {
        await this.edit(this.rng.int(1, Math.max(1, Math.floor(EDITS / 4))), `round ${round}, while etl is down`);
        moved = true;
      }
    }
    await this.recover(commands, 'recovery');
    // A resumed transform or load brings the database to its staged extract's moment; edits made
    // after that extract are for the next run, which the user runs as always.
    if (moved && commands[0] !== 'extract' && commands[0] !== 'run') await this.recover(INCREMENTAL_STAGES, 'the next run, for the edits made after the resumed extract');
  }

  /** What every round must leave. */
  async check(round: number): Promise<void> {
    assert.deepEqual(await partialFiles(this.m.incrementalStaging), [], `round ${round}: the interrupted runs left no *.partial file after the recovering run`);
    const status = this.m.startIncremental('status', [], { timeoutMs: COMMAND_TIMEOUT_MS });
    const s = await status.done;
    this.outputs.push({ label: 'etl status', output: s.output });
    assert.equal(s.code, 0, `round ${round}: etl status exits 0:\n${s.output}`);
    for (const { label, output } of this.outputs) {
      const line = output.split('\n').find((l) => STACK_LINE.test(l));
      assert.equal(line, undefined, `round ${round}: ${label} printed a stack trace:\n${output}`);
    }
    this.outputs.length = 0;
    const reference = await this.m.reference();
    await assertMirrors(this.m.model, this.m.incrementalUrl, reference, { examples: 5 });
  }

  replayCommand(): string {
    return [
      `seed ${this.seed}, scale ${SCALE}, ${ROUNDS} round(s) of ${EDITS} edits; replay with`,
      `  CRASH_SEEDS=${this.seed} CRASH_ROUNDS=${ROUNDS} CRASH_EDITS=${EDITS} CRASH_SCALE=${SCALE} node --import tsx --test --test-timeout=1800000 test/mirror/crash-randomized.test.ts`,
    ].join('\n');
  }

  replay(): string {
    return [
      this.replayCommand(),
      'what happened:',
      ...this.log.map((l) => `  ${l}`),
    ].join('\n');
  }
}

/** Every `*.partial` file under a folder, relative to it. */
async function partialFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.partial')).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

for (const seed of SEEDS) {
  test(`seed ${seed}: ${ROUNDS} rounds of ${EDITS} edits, each incremental run killed at a random moment, recover to a full run's tables`, async (t) => {
    const m = await Mirror.open(t, servers);
    await m.sample(SCALE, seed);
    await m.incremental(['--propagate-deletes']);
    const world = new CrashWorld(m, await EditGenerator.open(await m.db(), seed), seed);
    try {
      for (const kind of ['run', 'stages'] as const) {
        await world.edit(EDITS, `measuring an uninterrupted ${kind}`);
        await world.measure(kind);
      }
      for (let round = 1; round <= ROUNDS; round++) {
        await world.round(round);
        await world.check(round);
      }
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${world.replay()}`, { cause: e });
    }
    console.log(`[seed ${seed}] kills by moment: ${[...world.moments].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  });
}
