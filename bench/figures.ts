// The numbers a benchmark step reports, as they go into the JSON result and the printed table.
import type { ChildFigures, WorkerOutcome } from './child.ts';
import { round } from './dataset.ts';

export interface StepFigures {
  /** What was measured, in words (printed). */
  readonly label: string;
  /** Seconds of the step itself (worker-measured; psql: its whole process). */
  readonly seconds: number;
  /** Wall seconds of the child process, start-up included. */
  readonly process_seconds: number;
  /** Documents (extract, transform) or rows (load) handled. */
  readonly count: number;
  readonly unit: 'documents' | 'rows';
  readonly per_second: number;
  readonly peak_rss_mib: number | null;
  readonly rss_source: 'gnu-time' | 'resourceUsage' | null;
  readonly cpu_seconds: number | null;
  /** Anything else the step reported (run id, inserted/updated counts…). */
  readonly details?: Record<string, unknown>;
}

export function stepFigures(label: string, child: ChildFigures, seconds: number, count: number, unit: 'documents' | 'rows', details?: Record<string, unknown>): StepFigures {
  return {
    label,
    seconds: round(seconds),
    process_seconds: round(child.processSeconds),
    count,
    unit,
    per_second: seconds > 0 ? Math.round(count / seconds) : 0,
    peak_rss_mib: child.peakRssMiB === null ? null : round(child.peakRssMiB, 1),
    rss_source: child.rssSource,
    cpu_seconds: child.cpuSeconds === null ? null : round(child.cpuSeconds, 2),
    ...(details ? { details } : {}),
  };
}

export function workerStep(label: string, outcome: WorkerOutcome, unit: 'documents' | 'rows', countKey: string, details?: Record<string, unknown>): StepFigures {
  const count = Number(outcome.figures[countKey]);
  return stepFigures(label, outcome, outcome.seconds, count, unit, details);
}

/** A comparison of a step with its baseline against the goal of the issue. */
export interface Comparison {
  /** How the ratio is computed, in words. */
  readonly ratio_of: string;
  readonly ratio: number | null;
  /** e.g. ">= 0.8". */
  readonly goal: string | null;
  readonly met: boolean | null;
}

export function compare(ratioOf: string, ratio: number | null, goal: string | null, test: ((r: number) => boolean) | null): Comparison {
  return {
    ratio_of: ratioOf,
    ratio: ratio === null || !Number.isFinite(ratio) ? null : round(ratio, 3),
    goal,
    met: ratio === null || test === null || !Number.isFinite(ratio) ? null : test(ratio),
  };
}
