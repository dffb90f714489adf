// Picks how a command shows its stages' progress, by what stderr is and what was asked:
//   --json or --quiet        nothing
//   --verbose                a line per event (bin/progress/lines.ts)
//   stderr is a terminal     the live task list (bin/progress/live.ts); LISTR_FORCE_TTY=1 forces it
//   otherwise (logs, pipes)  heartbeats for long work, a line per stage in multi-stage commands
import type { CommandContext } from '../command.ts';
import { liveStage } from './live.ts';
import { logStage, verboseStage } from './lines.ts';
import { StageState, type StageTracker } from './stage-state.ts';

export type { StageTracker } from './stage-state.ts';

export interface StageSpec<R> {
  /** extract, transform, load… (the prefix of log lines). */
  readonly name: string;
  /** The live task's title until the stage says what it works on. */
  readonly title: string;
  /** The stage's line once done: totals and elapsed time. */
  summary(report: R): string;
}

export interface ProgressView {
  stage<R>(spec: StageSpec<R>, work: (tracker: StageTracker) => Promise<R>): Promise<R>;
}

export type ProgressMode = 'silent' | 'live' | 'log' | 'verbose';

function progressMode(ctx: CommandContext, json: boolean): ProgressMode {
  if (json || ctx.verbosity === 'quiet') return 'silent';
  if (ctx.verbosity === 'verbose') return 'verbose';
  return ctx.stderr.isTTY === true || ctx.env.LISTR_FORCE_TTY === '1' ? 'live' : 'log';
}

/**
 * multiStage: the command runs several stages (`etl run`), so each stage's end line is printed in
 * logs; a single-stage command prints its totals once, as its final line on stdout.
 */
export function progressView(ctx: CommandContext, options: { json: boolean; multiStage?: boolean }): ProgressView {
  const mode = progressMode(ctx, options.json);
  // Stages may run at the same time (`etl run` transforms while it extracts): the task list and the
  // log lines show one stage after the other, each from the state it has reached when its turn
  // comes; --verbose lines interleave, each naming its stage.
  let shown: Promise<unknown> = Promise.resolve();
  return {
    stage<R>(spec: StageSpec<R>, work: (tracker: StageTracker) => Promise<R>): Promise<R> {
      const state = new StageState(spec.name, spec.title);
      const running = work(state);
      if (mode === 'silent') return running;
      if (mode === 'verbose') return verboseStage(ctx, state, running, spec.summary);
      // It may fail before its turn to be shown.
      running.catch(() => undefined);
      const show = (): Promise<R> => (mode === 'live' ? liveStage(ctx, state, running, spec.summary) : logStage(ctx, state, running, options.multiStage ? spec.summary : null));
      const turn = shown.then(show);
      shown = turn.catch(() => undefined);
      return turn;
    },
  };
}
