// What the bench hands a worker (bench/worker.ts) and what the worker hands back, as JSON files.

interface JobBase {
  /** pipeline.yaml the stages use. */
  readonly pipeline: string;
  /** A folder of the bench's own (no .env in it): the worker's configuration cwd. */
  readonly workDir: string;
}

export type WorkerJob = JobBase &
  (
    | {
        readonly kind: 'extract';
        readonly stagingDir: string;
        readonly source: 'dump' | 'live';
        /** The dump folder (source 'dump'). */
        readonly dumpDir?: string;
        readonly database: string;
        readonly full: boolean;
        /** Read stored watermarks from BENCH_DATABASE_URL (incremental runs). */
        readonly usePostgres: boolean;
      }
    /** threads: TransformOptions.threads (absent: the stage's default). */
    | { readonly kind: 'transform'; readonly stagingDir: string; readonly runId: string; readonly threads?: number }
    | { readonly kind: 'load'; readonly stagingDir: string; readonly runId: string }
    | { readonly kind: 'scan-live'; readonly database: string }
    | { readonly kind: 'scan-dump'; readonly dumpDir: string; readonly database: string }
    /** `etl diff --deep` of the live source (BENCH_MONGODB_URL) against BENCH_DATABASE_URL. */
    | { readonly kind: 'diff'; readonly database: string }
    /**
     * `etl run --full` (the command itself, stages overlapped as it runs them) from the live source
     * (BENCH_MONGODB_URL) into BENCH_DATABASE_URL, staging under stagingDir.
     */
    | { readonly kind: 'run'; readonly stagingDir: string; readonly database: string }
    /** Every table of the pipeline read in full, in load order (COPY … TO STDOUT), counted and dropped. */
    | { readonly kind: 'scan-tables' }
    /** in-place: update the live source; copy: write the changed source into an empty database. */
    | { readonly kind: 'mutate'; readonly dumpDir: string; readonly dumpDatabase: string; readonly database: string; readonly mode: 'in-place' | 'copy' }
  );

export type WorkerResult =
  | { readonly ok: true; readonly figures: Record<string, unknown>; readonly maxRssKb: number; readonly cpuSeconds?: number }
  | { readonly ok: false; readonly error: { code: string; message: string; stack: string | null }; readonly maxRssKb: number };
