// listr2 tasks that mirror a stage's progress events. A stage prints nothing: it reports events
// while it runs and returns a report (or throws). This module turns those events into one task per
// collection or table, on stderr, in the renderer that suits the terminal or the CI log.
import { Listr, ListrLogger, ProcessOutput } from 'listr2';
import type { CommandContext } from './command.ts';
import { listrRendererOptions } from './output.ts';

/** The part of a listr2 task wrapper we drive. */
export interface TaskView {
  output: string;
  title: string;
}

interface ItemState {
  output?: string;
  title?: string;
  done: boolean;
  failed: boolean;
}

/**
 * Keeps the latest state of each item (events may arrive before listr has started the item's
 * task) and applies it to the task once it exists. An output line is written only when it changed:
 * the plain renderer of CI logs prints every assignment.
 */
export class StageProgress<R> {
  private readonly state = new Map<string, ItemState>();
  private readonly tasks = new Map<string, { view: TaskView; shown?: string; resolve: () => void; reject: (e: unknown) => void }>();
  /** Settles with the stage's error, or never when the stage succeeds. */
  private readonly failure: Promise<never>;

  constructor(readonly stage: Promise<R>) {
    // The stage's own promise carries the real error (rendered by bin/); listr only mirrors it.
    this.failure = stage.then(
      () => new Promise<never>(() => undefined),
      (error: unknown) => Promise.reject(error ?? new Error('stage failed')),
    );
    this.failure.catch(() => undefined);
  }

  /** Rejects when the stage fails: race it with anything a task awaits. */
  failed(): Promise<never> {
    return this.failure;
  }

  update(name: string, change: { output?: string; title?: string; done?: boolean; failed?: boolean }): void {
    const s = this.state.get(name) ?? { done: false, failed: false };
    if (change.output !== undefined) s.output = change.output;
    if (change.title !== undefined) s.title = change.title;
    if (change.done) s.done = true;
    if (change.failed) s.failed = true;
    this.state.set(name, s);
    this.apply(name);
  }

  /** listr2 subtasks, one per item, each finishing when its item is done (or the stage fails). */
  subtasks(names: readonly string[]) {
    return names.map((name) => ({
      title: name,
      task: (_ctx: unknown, view: TaskView) =>
        Promise.race([
          new Promise<void>((resolve, reject) => {
            this.tasks.set(name, { view, resolve, reject });
            this.apply(name);
          }),
          this.failed(),
        ]),
    }));
  }

  /** Shows an item's lines in a task that finishes on its own terms (a setup step). */
  attach(name: string, view: TaskView): void {
    this.tasks.set(name, { view, resolve: () => undefined, reject: () => undefined });
    this.apply(name);
  }

  private apply(name: string): void {
    const s = this.state.get(name);
    const t = this.tasks.get(name);
    if (!s || !t) return;
    if (s.output !== undefined && s.output !== t.shown) {
      t.view.output = s.output;
      t.shown = s.output;
    }
    if (s.title !== undefined) t.view.title = s.title;
    if (s.failed) t.reject(new Error(`${name} failed`));
    else if (s.done) t.resolve();
  }
}

/** A Listr on stderr (stdout is for the summary or the --json document), never handling signals itself. */
export function stageListr(ctx: CommandContext, json: boolean, tasks: ConstructorParameters<typeof Listr>[0]) {
  const processOutput = new ProcessOutput(ctx.stderr as NodeJS.WriteStream, ctx.stderr as NodeJS.WriteStream);
  const logger = new ListrLogger({ useIcons: true, processOutput });
  return new Listr(tasks, {
    ...listrRendererOptions(ctx, json),
    rendererOptions: { logger },
    fallbackRendererOptions: { logger },
    exitOnError: true,
    registerSignalListeners: false,
  } as never);
}
