// What runExtract takes and what it returns. The report is plain data holding the same numbers as
// the manifest's extract section (the CLI prints it as a table or as --json).
import type { MongoConfig, PostgresConfig } from '../connect/config.ts';
import type { ExtractCollectionRecord } from '../staging/manifest-extract.ts';
import type { Manifest } from '../staging/manifest.ts';
import type { StageOptions, StageReport, StageStarted } from '../staging/stage-contract.ts';
import type { RetryPolicy } from './live-source.ts';
import type { ExtractIdsRecord, ExtractPropagationRecord } from './live-ids.ts';

export type { ExtractIdsRecord, ExtractPropagationRecord } from './live-ids.ts';

export type ExtractSource =
  | { readonly kind: 'mongodb'; readonly mongo: MongoConfig; readonly secrets?: readonly string[] }
  /** A mongodump output: a dump folder, a database folder of .bson(.gz) files, or an --archive file. */
  | { readonly kind: 'dump'; readonly path: string; readonly database?: string | null };

/** `tables`: only the collections feeding these tables (default: every table). */
export interface ExtractOptions extends StageOptions<ExtractProgressEvent> {
  readonly source: ExtractSource;
  /** Where the stored watermarks are read (etl_watermarks). Absent: no stored watermark, full reads. */
  readonly postgres?: PostgresConfig;
  /** Read every collection in full (ignore watermarks and thresholds). */
  readonly full?: boolean;
  /**
   * Also stage every collection's full `_id` set, so load deletes the rows whose document is gone
   * (every upsert and explode table; without it, only tables with `propagate_deletes: true`).
   */
  readonly propagateDeletes?: boolean;
  /** Read documents created or updated at or after this date, whatever the watermarks say. */
  readonly since?: Date | null;
  /** GLOBAL_DATE_THRESHOLD: overrides settings.dateThreshold when set. */
  readonly globalDateThreshold?: Date | null;
  /** Reconnection policy of live reads (tests shorten it). */
  readonly retry?: RetryPolicy;
  /** Bytes of NDJSON held in memory before a dump that is not in _id order spills to disk. */
  readonly sortChunkBytes?: number;
  /** A repair: `_id`s one query names at once (default 1,000; tests shorten it). */
  readonly requestChunk?: number;
  /** Least time between two collection-progress events (default 250 ms; 0: every 256 documents). */
  readonly progressEveryMs?: number;
  /**
   * Collections read at the same time (default: 2 from a live server, 1 from a dump or in a
   * repair). Staged files, manifest and errors are those of a read one collection at a time.
   */
  readonly collectionsAtOnce?: number;
  /** Clock of this machine (tests freeze it). */
  readonly now?: () => Date;
  /**
   * A repair run (`etl repair`): read exactly these documents by `_id` from the live server, no
   * date window, no server filter, no delete propagation; the run records no watermark (a load of
   * it moves none) and is never complete.
   */
  readonly repair?: RepairRequest;
  /**
   * Applied to the manifest in the very write that marks the extract done. `etl run` puts the
   * transform's `running` section there: its files are already being written, and a process killed
   * between two writes would leave them beside a finished extract with no running stage that owns
   * them, so no later run would sweep them (staging/run-writer.ts).
   */
  readonly withDone?: (manifest: Manifest) => void;
}

/** What a repair run reads and asks load to recompute (extract/repair-plan.ts). */
export interface RepairRequest {
  /** Per collection: the `_id`s to read, as MongoDB holds them (ObjectId, string, Int32…). */
  readonly ids: ReadonlyMap<string, readonly unknown[]>;
  /**
   * Per dedupe table: keys whose row load recomputes from their contributions whatever the run
   * stages (a key no document contributes to leaves the table), as the PostgreSQL text of the
   * dedupe key's columns, in key order.
   */
  readonly recompute: ReadonlyMap<string, readonly (readonly (string | null)[])[]>;
}

export type ExtractProgressEvent =
  | (StageStarted & { readonly collections: readonly string[] })
  /** `requested`: a repair run reads this many `_id`s of the collection. */
  | { readonly kind: 'collection_started'; readonly collection: string; readonly total: number | null; readonly from: string | null; readonly requested?: number }
  | {
      readonly kind: 'collection_progress';
      readonly collection: string;
      readonly documents: number;
      readonly scanned: number;
      readonly total: number | null;
      readonly elapsedMs: number;
    }
  | { readonly kind: 'collection_retry'; readonly collection: string; readonly attempt: number; readonly delayMs: number; readonly error: string }
  | { readonly kind: 'collection_resorting'; readonly collection: string; readonly reason: string }
  /** The ids pass of delete propagation: ids read so far. */
  | { readonly kind: 'collection_ids_progress'; readonly collection: string; readonly ids: number; readonly elapsedMs: number }
  | { readonly kind: 'collection_done'; readonly collection: string; readonly record: ExtractCollectionRecord; readonly seconds: number }
  | { readonly kind: 'warning'; readonly collection: string | null; readonly message: string };

export interface ExtractCollectionReport extends ExtractCollectionRecord {
  readonly collection: string;
  readonly seconds: number;
  /** The collection's full _id set, staged for delete propagation (absent when none of its tables propagates). */
  readonly ids?: ExtractIdsRecord;
}

export interface ExtractReport extends StageReport {
  readonly stage: 'extract';
  /** The run's manifest.json. */
  readonly manifest: string;
  readonly source: { readonly kind: 'mongodb' | 'dump'; readonly description: string };
  readonly full: boolean;
  /** Server clock at the start (live), or null (dump). */
  readonly serverStartedAt: string | null;
  /** Per collection: its manifest record (snake_case, as staged), its name and seconds. */
  readonly collections: readonly ExtractCollectionReport[];
  readonly documents: number;
  readonly bytes: number;
  /** Delete propagation: which tables had their collection's _id set staged (null: none asked for). */
  readonly propagateDeletes: ExtractPropagationRecord | null;
}
