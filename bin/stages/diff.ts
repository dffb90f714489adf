// `etl diff --deep` as a stage of a command (`etl repair` compares before and after): its progress
// events → tracker calls, one item per table, and its end line.
import { runDiff, type DiffOptions, type DiffProgress, type DiffReport, type TableDiff } from '../../inspect/diff.ts';
import { count, duration } from '../progress/meter.ts';
import type { ProgressView, StageTracker } from '../progress/view.ts';

export function diffStage(view: ProgressView, name: string, options: Omit<DiffOptions, 'onProgress'> & { readonly tables: readonly string[] }): Promise<DiffReport> {
  return view.stage({ name, title: `${name}: comparing MongoDB with PostgreSQL`, summary: (r) => diffLine(name, r) }, (tracker) => {
    tracker.plan(`${name === 'diff' ? 'Diff' : 'Check'}: MongoDB against PostgreSQL, every column`, options.tables.map((t) => ({ name: t, total: null })), 'documents');
    return runDiff({ ...options, onProgress: diffTracker(tracker) });
  });
}

function diffTracker(t: StageTracker) {
  return (e: DiffProgress): void => {
    switch (e.kind) {
      case 'table_start':
        t.progress(e.table, 0);
        return t.phase(e.table, `reading ${e.collection}`);
      case 'documents':
        return t.progress(e.table, e.documents);
      case 'comparing':
        return t.phase(e.table, 'comparing');
      case 'table_done':
        return t.finish(e.table, `${e.table}: ${differenceText(e.diff)}`);
    }
  };
}

/** `identical`, or `2 missing, 1 extra, 3 different` (the kinds that are not zero), or why it cannot be compared. */
export function differenceText(d: TableDiff): string {
  if (d.problem) return `cannot compare: ${d.problem.message}`;
  if (d.identical) return 'identical';
  const parts = [
    [d.missing.count, 'missing'],
    [d.extra.count, 'extra'],
    [d.different?.count ?? 0, 'different'],
  ] as const;
  return parts.filter(([n]) => n > 0).map(([n, what]) => `${count(n)} ${what}`).join(', ');
}

/** Rows that differ: missing, extra and different. */
export const differingRows = (r: DiffReport): number => r.totals.missing + r.totals.extra + r.totals.different;

/** `diff: 9 differing rows in 3 of 31 table(s), in 2.10 s` */
function diffLine(name: string, r: DiffReport): string {
  const ms = Date.parse(r.endedAt) - Date.parse(r.startedAt);
  if (r.identical) return `${name}: ${r.totals.tables} table(s) identical, in ${duration(ms)}`;
  return `${name}: ${count(differingRows(r))} differing rows in ${r.totals.differing} of ${r.totals.tables} table(s), in ${duration(ms)}`;
}
