// The collections of a transform shared between this thread and worker threads (one per further
// core): each collection is still read and written by one thread alone, with the same code, so every
// staged file is byte for byte what a single thread writes; only the order in which collections
// finish changes. The biggest collections go first, so no thread is left with a big one at the end.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { EtlError, LoadError, SourceError, StagingError, UsageError, type ErrorContext } from '../errors/etl-error.ts';
import type { ErrorCode } from '../errors/codes.ts';
import { transformCollection, type CollectionJob, type JobContext, type JobOutcome } from './collection-job.ts';
import type { TransformProgress } from './options.ts';

/** Below this many bytes of extract files a worker's start-up (~0.5 s) costs more than it saves. */
const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;
/**
 * Fed by a running extract, a worker thread pays sooner: its start-up is hidden behind the
 * extract, and a transform on this thread would take turns with the extract's reading.
 */
const FED_PARALLEL_MIN_BYTES = 4 * 1024 * 1024;

/** Threads to use: `asked`, else one per core when the run is big enough, never more than jobs. */
export function threadsFor(jobs: readonly CollectionJob[], asked: number | undefined): number {
  const wanted = asked ?? (jobs.reduce((a, j) => a + j.bytes, 0) >= PARALLEL_MIN_BYTES ? os.availableParallelism() : 1);
  return Math.max(1, Math.min(wanted, jobs.length));
}

export interface WorkerSetup {
  readonly stagingDir: string;
  readonly runId: string;
}

/** Messages between the stage and a worker (collection-worker.ts). */
export type ToWorker = { readonly type: 'job'; readonly job: CollectionJob } | { readonly type: 'abort' };
export type FromWorker =
  | { readonly type: 'progress'; readonly event: TransformProgress }
  | { readonly type: 'done'; readonly outcome: JobOutcome }
  | { readonly type: 'failed'; readonly error: WireError };

/** An error as it crosses threads (structured clone keeps neither the class nor `code`). */
export interface WireError {
  readonly className: string;
  readonly message: string;
  readonly stack?: string;
  readonly code?: string;
  readonly context?: ErrorContext;
  readonly hint?: string;
}

export function toWire(error: unknown): WireError {
  if (!(error instanceof Error)) return { className: 'Error', message: String(error) };
  const e = error as Error & { code?: unknown; context?: ErrorContext; hint?: string };
  const code = typeof e.code === 'string' ? e.code : undefined;
  return { className: e instanceof EtlError ? e.name : 'Error', message: e.message, stack: e.stack, code, context: e instanceof EtlError ? e.context : undefined, hint: e instanceof EtlError ? e.hint : undefined };
}

const ETL_CLASSES: Record<string, new (code: ErrorCode, message: string, o: { context?: ErrorContext; hint?: string }) => EtlError> = {
  EtlError,
  UsageError,
  SourceError,
  StagingError,
  LoadError,
};

export function fromWire(w: WireError): Error {
  const Class = ETL_CLASSES[w.className];
  const error: Error = Class && w.code ? new Class(w.code as ErrorCode, w.message, { context: w.context, hint: w.hint }) : Object.assign(new Error(w.message), w.code ? { code: w.code } : {});
  if (w.stack) error.stack = w.stack;
  return error;
}

/** Runs every job, `threads` at a time; `done` gets each outcome as its collection completes. */
export async function runJobs(jobs: readonly CollectionJob[], threads: number, c: JobContext, setup: WorkerSetup, done: (o: JobOutcome) => void): Promise<void> {
  // One thread keeps the pipeline's order (progress, and the tables a failure leaves done).
  const queue = threads > 1 ? [...jobs].sort((a, b) => b.bytes - a.bytes) : jobs;
  // Every job is known already: the threads asked for start at the first job, whatever its size.
  const runner = new FedJobs(threads, true, c, setup, done);
  for (const job of queue) runner.add(job);
  await runner.finish();
}

/** This thread taking jobs until `next` has none. */
async function localLane(next: () => Promise<CollectionJob | null>, c: JobContext, done: (o: JobOutcome) => void): Promise<void> {
  for (let job = await next(); job && !c.signal.aborted; job = await next()) done(await transformCollection(job, c));
}

/** One worker thread taking jobs until `next` has none. */
async function workerLane(next: () => Promise<CollectionJob | null>, c: JobContext, setup: WorkerSetup, signal: AbortSignal, done: (o: JobOutcome) => void): Promise<void> {
  // A JavaScript entry that registers tsx itself: a worker inherits no loader hooks from `etl`.
  const worker = new Worker(new URL('./collection-worker.js', import.meta.url), { workerData: { model: c.model, ...setup }, execArgv: [] });
  const onAbort = (): void => worker.postMessage({ type: 'abort' } satisfies ToWorker);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (let job = await next(); job && !signal.aborted; job = await next()) {
      done(await runInWorker(worker, job, c.onProgress));
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    await worker.terminate();
  }
}

/**
 * The one scheduler: jobs that arrive while they run (a transform fed by a running extract, `etl
 * run`), or all at once (runJobs). While more may come, this thread is the extract's: the jobs go
 * to worker threads once the run is big enough to pay for them (FED_PARALLEL_MIN_BYTES, or at once
 * when the threads were asked for), else to this thread between the extract's reads; once no job
 * can come (`finish`), this thread takes its share. The staged files are the same whichever
 * thread writes them.
 */
export class FedJobs {
  readonly jobs: CollectionJob[] = [];
  private readonly queue: CollectionJob[] = [];
  private readonly lanes: Promise<void>[] = [];
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  private first: { readonly error: unknown } | null = null;
  private closed = false;
  private workers = 0;
  private bytes = 0;
  private waiting: (() => void)[] = [];

  constructor(
    private readonly threadsWanted: number,
    private readonly asked: boolean,
    private readonly c: JobContext,
    private readonly setup: WorkerSetup,
    private readonly done: (o: JobOutcome) => void,
  ) {
    this.signal = AbortSignal.any([c.signal, this.stop.signal]);
    this.signal.addEventListener('abort', () => this.notify(), { once: true });
    this.lanes.push(localLane(() => this.next(true), { ...c, signal: this.signal }, done).catch((e: unknown) => this.fail(e)));
  }

  /** Threads that shared the collections so far. */
  get threads(): number {
    return 1 + this.workers;
  }

  add(job: CollectionJob): void {
    this.jobs.push(job);
    this.queue.push(job);
    this.bytes += job.bytes;
    if (this.workers === 0 && this.threadsWanted > 1 && (this.asked || this.bytes >= FED_PARALLEL_MIN_BYTES)) {
      for (; this.workers < this.threadsWanted - 1; this.workers += 1) {
        this.lanes.push(workerLane(() => this.next(false), this.c, this.setup, this.signal, this.done).catch((e: unknown) => this.fail(e)));
      }
    }
    this.notify();
  }

  /** No more jobs: the lanes finish the queue. Throws the first failure (an interruption as the caller's reason). */
  async finish(): Promise<void> {
    this.closed = true;
    this.notify();
    await Promise.all(this.lanes);
    this.c.signal.throwIfAborted();
    if (this.first) throw this.first.error;
  }

  /** Stops every job (each discards its partial files) and waits for the lanes. */
  async abandon(reason: unknown): Promise<void> {
    this.closed = true;
    this.stop.abort(reason);
    await Promise.all(this.lanes);
  }

  private fail(error: unknown): void {
    this.first ??= { error };
    this.stop.abort(error);
  }

  private async next(local: boolean): Promise<CollectionJob | null> {
    for (;;) {
      if (this.signal.aborted) return null;
      if ((!local || this.closed || this.workers === 0) && this.queue.length > 0) return this.queue.shift()!;
      if (this.closed && this.queue.length === 0) return null;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private notify(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }
}

function runInWorker(worker: Worker, job: CollectionJob, onProgress: JobContext['onProgress']): Promise<JobOutcome> {
  return new Promise<JobOutcome>((resolve, reject) => {
    const onMessage = (m: FromWorker): void => {
      if (m.type === 'progress') {
        onProgress?.(m.event.kind === 'table_failed' ? { ...m.event, error: fromWire(m.event.error as WireError) } : m.event);
        return;
      }
      cleanup();
      if (m.type === 'done') resolve(m.outcome);
      else reject(fromWire(m.error));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`the transform worker thread stopped (exit code ${code}) while transforming ${job.collection}`));
    };
    const cleanup = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage({ type: 'job', job } satisfies ToWorker);
  });
}
