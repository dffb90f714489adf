// What runTransform takes and returns. Plain data: bin/ renders it, the manifest stores the same figures.
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import type { StageOptions, StageReport, StageStarted } from '../staging/stage-contract.ts';
import type { StagedTablesSink } from '../staging/staged-tables.ts';
import type { ExtractFeed } from './feed.ts';

/** `tables`: a subset of the pipeline's tables; default: every table whose collection the run holds. */
export interface TransformOptions extends StageOptions<TransformProgress> {
  /** The run to transform; default: the one `<staging>/latest` names. */
  readonly runId?: string | null;
  /** Go on when pipeline.yaml changed since the extract (both hashes are recorded). */
  readonly allowPipelineChange?: boolean;
  /** Clock, for tests. */
  readonly now?: () => Date;
  /**
   * Threads sharing the collections (the staged files are the same whatever the number). Default:
   * one per core for a run of at least 32 MiB of extract files, else 1.
   */
  readonly threads?: number;
  /**
   * The run is still being extracted (`etl run`): each collection is transformed as soon as the
   * feed says it is staged, while the extract reads the next. The staged files and the manifest
   * are those of a transform run after the extract: its section is written only once the extract
   * is done, and if the extract fails, every file this transform wrote is removed. `runId` names
   * the run the extract is making.
   */
  readonly extractFeed?: ExtractFeed;
  /**
   * Told the tables this transform will stage, then each table as soon as its files are final
   * (`etl run` loads them while the rest is extracted and transformed). The files and the manifest
   * are the same with or without it.
   */
  readonly stagedTables?: StagedTablesSink;
}

export type TransformProgress =
  /** The run is checked: these tables (load order) will be transformed. */
  | (StageStarted & { readonly tables: readonly string[]; readonly notExtracted: readonly string[] })
  /** A collection's extract file is about to be read once for all of `tables`. */
  | { readonly kind: 'collection_started'; readonly collection: string; readonly tables: readonly string[]; readonly total: number }
  /** Documents read so far (every `batchSize` documents). */
  | { readonly kind: 'collection_progress'; readonly collection: string; readonly tables: readonly string[]; readonly documents: number; readonly total: number }
  | { readonly kind: 'table_done'; readonly table: string; readonly record: TransformTableRecord }
  | { readonly kind: 'table_failed'; readonly table: string; readonly error: unknown };

export interface TransformTableReport extends TransformTableRecord {
  readonly table: string;
}

export interface TransformReport extends StageReport {
  readonly stage: 'transform';
  /** sha256 of the pipeline.yaml used now, and of the one the run was extracted with. */
  readonly pipelineSha256: string;
  readonly extractPipelineSha256: string;
  readonly pipelineChanged: boolean;
  /** Tables in load order. */
  readonly tables: readonly TransformTableReport[];
  /** Tables of the pipeline whose collection the run does not hold. */
  readonly notExtracted: readonly string[];
  /** Tables `--tables` left out whose earlier transform of the run stays (its records and files). */
  readonly kept: readonly string[];
  /** Tables of an earlier transform of the run whose files were removed, and why (null when none). */
  readonly dropped: readonly string[];
  readonly droppedBecause: string | null;
  /** Documents read (each extract file once, whatever the number of tables it feeds). */
  readonly documentsRead: number;
  /** Threads that shared the collections (TransformOptions.threads). */
  readonly threads: number;
}
