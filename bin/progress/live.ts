// The live task list on a terminal (listr2's default renderer, on stderr): one task per stage,
// titled with its totals, percent, rate and time left; under it one task per collection or table
// with a bar. It follows stderr's terminal, not stdout's: `etl load > summary.txt` keeps it.
import { DefaultRenderer, Listr, ListrLogger, ProcessOutput } from 'listr2';
import type { CommandContext } from '../command.ts';
import { bar, duration, gaugeText } from './meter.ts';
import type { StageState } from './stage-state.ts';

/** listr2 picks renderers by process.stdout's TTY; ours is stderr's, checked by progressView. */
class StderrRenderer extends DefaultRenderer {
  static override nonTTY = true;
}

interface TaskView {
  title: string;
  output: string;
}

const REFRESH_MS = 200;

export async function liveStage<R>(ctx: CommandContext, state: StageState, work: Promise<R>, summary: (r: R) => string): Promise<R> {
  const failure = work.then(
    () => new Promise<never>(() => undefined),
    (e: unknown) => Promise.reject(e),
  );
  failure.catch(() => undefined);
  const planned = new Promise<void>((resolve) => {
    if (state.planned) resolve();
    else state.onChange((c) => c.kind === 'plan' && resolve());
  });
  const list = stderrListr(ctx, [
    {
      title: state.title,
      task: async (_c: unknown, task: TaskView & { newListr: (tasks: unknown[], o: object) => unknown }) => {
        const ticker = setInterval(() => (task.title = stageTitle(state)), REFRESH_MS);
        const finish = async () => {
          try {
            task.title = summary(await work);
          } finally {
            clearInterval(ticker);
          }
        };
        await Promise.race([planned, work]).catch(() => undefined);
        if (!state.planned) return finish();
        const items = [...state.items.keys()].map((name) => itemTask(state, name, failure));
        // The last subtask has no title (listr2 does not show it): it gives the stage its end line.
        return task.newListr([...items, { task: finish }], { concurrent: false, exitOnError: true });
      },
    },
  ]);
  await list.run().catch(() => undefined);
  return work; // the stage's own error, rendered by bin/render-error.ts
}

function stageTitle(state: StageState): string {
  if (!state.planned) return `${state.title}${state.stagePhase ? `: ${state.stagePhase}` : ''} (${duration(Date.now() - state.startedAt)})`;
  const g = state.totals();
  return `${state.title}: ${gaugeText(g)}${state.stagePhase ? ` · ${state.stagePhase}` : ''}`;
}

/** A subtask that mirrors one item and finishes with it (or fails with the stage). */
function itemTask(state: StageState, name: string, failure: Promise<never>) {
  return {
    title: name,
    task: (_c: unknown, view: TaskView) =>
      Promise.race([
        failure,
        new Promise<void>((resolve, reject) => {
          let last = 0;
          const apply = (force: boolean) => {
            const s = state.items.get(name)!;
            if (s.failed) return reject(new Error(`${name} failed`));
            if (s.finished) {
              view.title = s.summary ?? name;
              return resolve();
            }
            if (!force && Date.now() - last < REFRESH_MS) return;
            last = Date.now();
            const g = state.gauge(name);
            const gauge = g.done > 0 || g.total !== null ? `${bar(g)}${gaugeText(g)}` : '';
            view.output = [gauge, s.phase ?? ''].filter(Boolean).join(' · ');
          };
          state.onChange((c) => {
            if (c.kind !== 'plan' && c.kind !== 'detail' && c.kind !== 'notice' && c.item === name) apply(c.kind === 'finish' || c.kind === 'fail' || c.kind === 'phase');
          });
          apply(true);
        }),
      ]),
  };
}

/** A Listr on stderr (stdout is for the summary or the --json document), never handling signals itself. */
function stderrListr(ctx: CommandContext, tasks: unknown[]) {
  const processOutput = new ProcessOutput(ctx.stderr as NodeJS.WriteStream, ctx.stderr as NodeJS.WriteStream);
  const logger = new ListrLogger({ useIcons: true, processOutput });
  return new Listr(tasks as never, {
    renderer: StderrRenderer,
    // The error itself is printed once, by bin/render-error.ts; the list only marks the task failed.
    rendererOptions: { logger, collapseSubtasks: true, showErrorMessage: false },
    exitOnError: true,
    registerSignalListeners: false,
  } as never);
}
