// The contract of the three stages (extract, transform, load), so a caller drives them alike: the
// options each takes besides its own, what its report always holds (named the same in all three),
// the shape of its progress events, and how a failure is recorded in the run's manifest. The
// manifest keeps its own snake_case field names (the staging contract, audited); reports and
// events are the in-process and `--json` view, in camelCase with snake_case event kinds.
import { redactText } from '../errors/redact.ts';
import { cutMiddle } from '../errors/printable.ts';
import { EtlError } from '../errors/etl-error.ts';
import type { PipelineModel } from '../model/types.ts';
import type { StageName } from './manifest.ts';
import type { AbandonedSweep } from './run-writer.ts';

/** Progress events: a snake_case `kind`; every stage's first event is `started`. */
export interface StageEvent {
  readonly kind: string;
}

/** The first event of a stage: the run it works on. */
export interface StageStarted {
  readonly kind: 'started';
  readonly runId: string;
  readonly runDir: string;
}

export interface StageOptions<E extends StageEvent> {
  readonly model: PipelineModel;
  readonly stagingDir: string;
  /** Only these tables (still in load order; an unknown name is a usage error). Absent or null: every table. */
  readonly tables?: readonly string[] | null;
  /** Secret values scrubbed from any message and any manifest record. */
  readonly secrets?: readonly string[];
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: E) => void;
  /**
   * The sweep of killed runs' leftovers (staging/run-writer.ts) the command already made of this
   * staging folder, when it runs several stages (`etl run`, `etl repair`): the stage uses it instead
   * of scanning the folder again. Absent: the stage sweeps at its start, as a stage command does.
   */
  readonly abandoned?: AbandonedSweep;
}

/** What every stage's report holds. */
export interface StageReport {
  readonly stage: StageName;
  readonly runId: string;
  readonly runDir: string;
  /** ISO instants. */
  readonly startedAt: string;
  readonly endedAt: string;
  /** Things the user should know that did not stop the stage. */
  readonly warnings: readonly string[];
}

/**
 * What the manifest keeps of a failure's message: its start and its end. A message may quote a
 * megabyte (a value, a pipeline.yaml echoed by a server); the whole of it was printed when the stage
 * failed, and a manifest is read by every `etl runs`, `etl status` and `etl report`.
 */
export const RECORDED_MESSAGE_HEAD = 3_000;
export const RECORDED_MESSAGE_TAIL = 1_000;

/** A failure as the manifest records it: the error's code (`internal` for a bug) and message, secrets scrubbed, bounded. */
export function failureRecord(error: unknown, secrets: readonly string[] = []): { code: string; message: string } {
  const code = error instanceof EtlError ? error.code : 'internal';
  // Redacted before the cut: a cut never halves a secret before it is recognised.
  const message = redactText(error instanceof Error ? error.message : String(error), secrets);
  return { code, message: cutMiddle(message, RECORDED_MESSAGE_HEAD, RECORDED_MESSAGE_TAIL) };
}
