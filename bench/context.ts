// What the benchmarks share: the dataset (dump, live server), PostgreSQL, the staged run made from
// the dump (extract → transform, reused by the next benchmark instead of being made again), and the
// preparation steps that were run only to feed a benchmark (recorded, not compared).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineModel } from '../model/types.ts';
import { runWorker, type SpawnOptions, type WorkerOutcome } from './child.ts';
import { ensureDump, openLiveDataset, type DumpDataset, type LiveDataset, type Log } from './dataset.ts';
import { workerStep, type StepFigures } from './figures.ts';
import { startBenchPostgres, type PgServer } from './postgres.ts';
import type { WorkerJob } from './worker-protocol.ts';

export type JobBody = WorkerJob extends infer J ? (J extends WorkerJob ? Omit<J, 'pipeline' | 'workDir'> : never) : never;

export class BenchContext {
  readonly setup: Record<string, StepFigures> = {};
  /** The run extracted from the dump (and, once `dumpRunTransformed`, transformed). */
  dumpRunId: string | null = null;
  dumpRunTransformed = false;
  /** The steps of the whole dump path, as a benchmark or a preparation measured them. */
  readonly path: { extract?: StepFigures; bareRead?: StepFigures; transform?: StepFigures; load?: StepFigures; copy?: StepFigures } = {};
  /** A database the dump's run was loaded into (diff compares the live source with it). */
  loadedUrl: string | null = null;
  #dump: Promise<DumpDataset> | null = null;
  #live: Promise<LiveDataset> | null = null;
  #pg: Promise<PgServer> | null = null;
  #step = 0;

  constructor(
    readonly model: PipelineModel,
    readonly options: {
      readonly scale: number;
      readonly seed: number;
      readonly pipelineFile: string;
      readonly cacheDir: string;
      readonly workDir: string;
      readonly mongoUrl: string | undefined;
      /** --keep: the staged runs stay (else each is removed once measured). */
      readonly keep?: boolean;
      readonly log: Log;
      readonly signal: AbortSignal;
    },
  ) {}

  get log(): Log {
    return this.options.log;
  }

  /** Staging folder of the dump-based runs. */
  get dumpStaging(): string {
    return path.join(this.options.workDir, 'staging-dump');
  }

  dump(): Promise<DumpDataset> {
    this.#dump ??= ensureDump(this.options.cacheDir, this.options.scale, this.options.seed, this.log);
    return this.#dump;
  }

  liveDataset(): Promise<LiveDataset> {
    this.#live ??= openLiveDataset(this.options.cacheDir, this.options.scale, this.options.seed, this.options.mongoUrl, this.log);
    return this.#live;
  }

  /** Stops the cached live server (the next liveDataset() starts it again). */
  async closeLive(): Promise<void> {
    const live = this.#live ? await this.#live.catch(() => null) : null;
    this.#live = null;
    await live?.server.stop();
  }

  postgres(): Promise<PgServer> {
    this.#pg ??= startBenchPostgres();
    return this.#pg;
  }

  /** Runs a worker job in a child process; `env` carries the connection strings. */
  async worker(step: string, body: JobBody, options: SpawnOptions = {}): Promise<WorkerOutcome> {
    await mkdir(this.options.workDir, { recursive: true });
    const scratch = this.scratch(step);
    const job = { ...body, pipeline: this.options.pipelineFile, workDir: this.options.workDir } as WorkerJob;
    this.log(`  ${step}…`);
    const outcome = await runWorker(step, job, scratch, { signal: this.options.signal, ...options });
    this.log(`  ${step}: ${outcome.seconds.toFixed(2)} s`);
    return outcome;
  }

  /** A path prefix for a step's temporary files, inside the work folder. */
  scratch(step: string): string {
    this.#step += 1;
    return path.join(this.options.workDir, `step${this.#step}-${step.replace(/[^a-z0-9]+/gi, '-')}`);
  }

  /** The dump extracted into a staged run (as a preparation step unless the extract benchmark did it). */
  async ensureDumpExtracted(): Promise<string> {
    if (this.dumpRunId) return this.dumpRunId;
    const dump = await this.dump();
    const outcome = await this.worker('prepare: extract from dump', {
      kind: 'extract',
      stagingDir: this.dumpStaging,
      source: 'dump',
      dumpDir: dump.dumpDir,
      database: dump.database,
      full: true,
      usePostgres: false,
    });
    this.setup.extract_dump = workerStep('extract from the dump (preparation)', outcome, 'documents', 'documents');
    this.path.extract = this.setup.extract_dump;
    this.dumpRunId = String(outcome.figures.run_id);
    return this.dumpRunId;
  }

  /** The dump's run transformed (as a preparation step unless the transform benchmark did it). */
  async ensureDumpTransformed(): Promise<string> {
    const runId = await this.ensureDumpExtracted();
    if (this.dumpRunTransformed) return runId;
    const outcome = await this.worker('prepare: transform', { kind: 'transform', stagingDir: this.dumpStaging, runId });
    this.setup.transform = workerStep('transform (preparation)', outcome, 'documents', 'documents');
    this.path.transform = this.setup.transform;
    this.dumpRunTransformed = true;
    return runId;
  }

  async close(): Promise<void> {
    await this.closeLive().catch(() => undefined);
    const pg = this.#pg ? await this.#pg.catch(() => null) : null;
    await pg?.stop().catch(() => undefined);
  }
}
