// What runLoad takes and what it returns. The report is plain data: bin/ renders it (table or JSON)
// and the same figures go into the manifest's load section, so printed and audited numbers agree.
import type { PostgresConfig } from '../connect/config.ts';
import type { StageOptions, StageReport, StageStarted } from '../staging/stage-contract.ts';
import type { StagedTablesFeed } from '../staging/staged-tables.ts';
import type { LockPolicy } from './lock.ts';

/** `tables`: load only these (still in load order). Default: every table the run staged. */
export interface LoadOptions extends StageOptions<LoadProgress> {
  /** The staged run; default: the one `<staging>/latest` names. */
  readonly runId?: string | null;
  /** Do all the work and report the figures, then roll back. */
  readonly dryRun?: boolean;
  readonly postgres: PostgresConfig;
  /** Another load holds the lock: wait for it (default), fail at once, or wait at most { timeoutMs }. */
  readonly lock?: LockPolicy;
  /**
   * A batch of at least this many rows into an empty table takes the bulk paths (COPY straight into
   * the table, foreign keys re-validated once instead of per row). Default 20,000; tests lower it.
   */
  readonly bulkRows?: number;
  /** Delete propagation: go on when a table's staged _id set is empty though the table holds rows. */
  readonly allowDeleteAll?: boolean;
  /**
   * The run is still being extracted and transformed (`etl run`): the load starts at once (lock,
   * BEGIN, tables ensured) and takes each table, in load order, as soon as the feed says its files
   * are final. Nothing is written to the manifest before the transform has written its section;
   * if the extract or the transform fails, the load rolls back and writes nothing. What the load
   * does and records is what it does on the finished run.
   */
  readonly stagedTables?: StagedTablesFeed;
}

export type LoadPhase = 'copy' | 'truncate' | 'duplicates' | 'references' | 'merge' | 'ledger';

export type LoadProgress =
  /** Another etl load holds the advisory lock; this one waits. */
  /** Waiting for another session (message: whom), or (null) no longer. */
  | { readonly kind: 'waiting'; readonly message: string | null }
  /** Connected, locked, schema ensured: these tables will be loaded (empty when already applied). */
  | (StageStarted & { readonly tables: readonly string[]; readonly alreadyApplied: readonly string[] })
  | { readonly kind: 'table_phase'; readonly table: string; readonly phase: LoadPhase }
  | { readonly kind: 'table_done'; readonly table: string; readonly report: TableLoadReport }
  | { readonly kind: 'committing'; readonly dryRun: boolean };

export interface TableLoadReport {
  readonly table: string;
  readonly strategy: 'upsert' | 'explode' | 'dedupe';
  /** How the rows were merged. */
  readonly merge: 'upsert' | 'delete_and_insert' | 'dedupe_upsert';
  /**
   * Data rows of the staged file COPY read (its count, checked against the manifest): the table's
   * CSV, or for a dedupe table its contributions (a row per document that yields one).
   */
  readonly staged: number;
  /** Rows of the table the run staged (transform/<table>.csv): `staged` but for a dedupe table. */
  readonly rows: number;
  readonly inserted: number;
  readonly updated: number;
  /**
   * Rows of the batch identical to the row already there: staged rows, or for a dedupe table the rows
   * recomputed for the keys the run touched (so a dedupe table's `staged`, its contributions, is not
   * inserted + updated + unchanged + rejected + duplicates).
   */
  readonly unchanged: number;
  /**
   * Rows removed: those the run's documents no longer yield (a link gone from its array, a document
   * that left the table's filter or whose value or reference is now refused), whose document is gone
   * (delete propagation), or that referenced a row removed by this load.
   */
  readonly deleted: number;
  /** Rows refused (a reference to a missing row, on_missing: reject); listed in the rejects file. */
  readonly rejected: number;
  /** References set to NULL (on_missing: set_null); listed in the rejects file too. */
  readonly nulled: number;
  /**
   * References of rows already in the table set to NULL (on_missing: set_null) because the row they
   * point at was deleted by this load; kept in etl_pending, not in the rejects file (the rows such a
   * reference deletes, on_missing: reject, count in `deleted`).
   */
  readonly orphaned: number;
  /** Staged rows dropped because a later (or, for dedupe, a newer) row of the batch had the same key. */
  readonly duplicates: number;
  /** Tables emptied by this table's TRUNCATE … CASCADE (itself first), or [] when not truncated. */
  readonly truncated: readonly string[];
  /** The load rejects file, relative to the run folder, or null when nothing was refused. */
  readonly rejectsFile: string | null;
  /** etl_pending for this table after the load, and what of it this load landed. */
  readonly pending: PendingReport;
}

export interface PendingReport {
  /** Rows held back because a referenced row is missing, or another row holds their unique value. */
  readonly rows: number;
  /** Rows loaded with a reference set NULL, waiting for the referenced row. */
  readonly nulls: number;
  /** When the oldest of them was first held back (ISO), or null. */
  readonly since: string | null;
  /** Rows held back by earlier loads that landed in this one. */
  readonly landed: number;
  /** References NULLed by earlier loads that this one set. */
  readonly resolved: number;
}

/** A table this run did not stage, changed because tables it references did (rows followed, pending landed). */
export interface SettledTableReport {
  readonly table: string;
  readonly deleted: number;
  readonly nulled: number;
  readonly pending: PendingReport;
}

export interface TableDeletions {
  readonly table: string;
  /** Keys in the table's live set; null when the table does not propagate (only followed references). */
  readonly live: number | null;
  /** Rows deleted because their document is gone. */
  readonly gone: number;
  /** Rows deleted because they referenced a deleted row (on_missing: reject). */
  readonly referencing: number;
  /** References set to NULL because they pointed at a deleted row (on_missing: set_null), per column. */
  readonly nulled: number;
  readonly nulledColumns: Readonly<Record<string, number>>;
}

export interface DeletePropagationReport {
  /** Tables whose live set was staged and applied, in load order. */
  readonly propagated: readonly string[];
  /** Every table with a live set or a change, in load order. */
  readonly tables: readonly TableDeletions[];
  /** Rows deleted over all tables (gone + referencing). */
  readonly deleted: number;
}

/** etl_pending entries of every table: rows held back, references set NULL. */
export interface PendingTotals {
  readonly rows: number;
  readonly nulls: number;
}

export interface LoadReport extends StageReport {
  readonly stage: 'load';
  readonly dryRun: boolean;
  /** Every table of the request had already been loaded from this run: nothing changed. */
  readonly alreadyApplied: boolean;
  /** Tables of the request skipped because this run was already loaded into them (with when). */
  readonly skipped: readonly { readonly table: string; readonly loadedAt: string }[];
  /** Where the rows went (no credentials). */
  readonly destination: string;
  /** Per loaded table, in load order. */
  readonly tables: readonly TableLoadReport[];
  /** Tables the run did not stage that changed because tables they reference did. */
  readonly settled: readonly SettledTableReport[];
  /**
   * etl_pending after the load, every table (the ones a --tables run did not stage too): what the
   * run leaves waiting; null when nothing was loaded (already applied).
   */
  readonly pending: PendingTotals | null;
  /** Every table a TRUNCATE … CASCADE emptied, in the order found. */
  readonly truncated: readonly string[];
  /**
   * Delete propagation, or null when the run staged no _id set. Its
   * gone + referencing figures are also counted in each table's `deleted`.
   */
  readonly deletions: DeletePropagationReport | null;
}
