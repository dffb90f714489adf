// What runTransform takes and returns. Plain data: bin/ renders it, the manifest stores the same figures.
import type { PipelineModel } from '../model/types.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';

export interface TransformOptions {
  readonly model: PipelineModel;
  readonly stagingDir: string;
  /** The run to transform; default: the one `<staging>/latest` names. */
  readonly runId?: string | null;
  /** A subset of the pipeline's tables; default: every table whose collection the run holds. */
  readonly tables?: readonly string[] | null;
  /** Go on when pipeline.yaml changed since the extract (both hashes are recorded). */
  readonly allowPipelineChange?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: TransformProgress) => void;
  /** Clock, for tests. */
  readonly now?: () => Date;
  /**
   * Threads sharing the collections (the staged files are the same whatever the number). Default:
   * one per core for a run of at least 32 MiB of extract files, else 1.
   */
  readonly threads?: number;
}

export type TransformProgress =
  /** The run is checked: these tables (load order) will be transformed. */
  | { readonly kind: 'started'; readonly runId: string; readonly tables: readonly string[]; readonly notExtracted: readonly string[] }
  /** A collection's extract file is about to be read once for all of `tables`. */
  | { readonly kind: 'collection_started'; readonly collection: string; readonly tables: readonly string[]; readonly total: number }
  /** Documents read so far (every `batchSize` documents). */
  | { readonly kind: 'documents'; readonly collection: string; readonly tables: readonly string[]; readonly done: number; readonly total: number }
  | { readonly kind: 'table_done'; readonly table: string; readonly record: TransformTableRecord }
  | { readonly kind: 'table_failed'; readonly table: string; readonly error: unknown };

export interface TransformTableReport extends TransformTableRecord {
  readonly table: string;
}

export interface TransformReport {
  readonly runId: string;
  readonly runDir: string;
  /** sha256 of the pipeline.yaml used now, and of the one the run was extracted with. */
  readonly pipelineSha256: string;
  readonly extractPipelineSha256: string;
  readonly pipelineChanged: boolean;
  /** Tables in load order. */
  readonly tables: readonly TransformTableReport[];
  /** Tables of the pipeline whose collection the run does not hold. */
  readonly notExtracted: readonly string[];
  /** Documents read (each extract file once, whatever the number of tables it feeds). */
  readonly documentsRead: number;
  readonly durationMs: number;
  /** Threads that shared the collections (TransformOptions.threads). */
  readonly threads: number;
}
