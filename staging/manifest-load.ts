// The load section of manifest.json (owned by the load stage).
import type { FileRecord, StageSectionBase } from './manifest.ts';

export interface LoadTableRecord {
  /** Data rows of the staged file COPY read (checked against transform's): a dedupe table's contributions. */
  staged: number;
  /** Rows of the table the run staged (its transform CSV's); absent in runs loaded before etl recorded it. */
  rows?: number;
  inserted: number;
  updated: number;
  unchanged: number;
  deleted: number;
  rejected: number;
  /** Values set to NULL because the referenced row does not exist (on_missing: set_null). */
  nulled: number;
  /** References of rows already there set NULL because this load deleted the row they point at (absent before it was counted). */
  orphaned?: number;
  /** Staged rows dropped because another row of the batch had the same key. */
  duplicates: number;
  /** Tables this table's TRUNCATE … CASCADE emptied (itself first); [] when not truncated. */
  truncated: string[];
  rejects: FileRecord | null;
  /** etl_pending for the table after the load (rows held back, NULLed references), and what landed. */
  pending?: { rows: number; nulls: number; since: string | null; landed: number; resolved: number };
}

export interface LoadSection extends StageSectionBase {
  dry_run: boolean;
  /** true when the run had already been applied and nothing changed. */
  already_applied: boolean;
  tables: Record<string, LoadTableRecord>;
  /** Tables asked for but skipped: this run was already loaded into them. */
  skipped?: { table: string; loaded_at: string }[];
  /** Every table emptied by a TRUNCATE … CASCADE. */
  truncated?: string[];
  /** Delete propagation: per table, the live set's size and the rows deleted (gone, referencing) or nulled. */
  deletions?: {
    propagated: string[];
    tables: { table: string; live: number | null; gone: number; referencing: number; nulled: number; nulledColumns: Record<string, number> }[];
    deleted: number;
  } | null;
  /** Tables the run did not stage that changed because tables they reference did. */
  settled?: { table: string; deleted: number; nulled: number; pending: { rows: number; nulls: number; since: string | null; landed: number; resolved: number } }[];
  /**
   * etl_pending after the load, every table (also those a --tables run did not stage): what the run
   * left waiting. Absent in manifests older than this field (their tables' pending figures are all).
   */
  pending?: { rows: number; nulls: number } | null;
  /** The load committed but its process ended before this section was written: rebuilt from the ledger. */
  recovered_from_ledger?: boolean;
  warnings?: string[];
}

/**
 * The section when a real load of the run committed tables it records: done, or failed after an
 * earlier load committed some (load/load-record.ts keeps them); null for a dry run or none.
 */
export function committedLoad(section: LoadSection | undefined): LoadSection | null {
  return section && (section.status === 'done' || section.status === 'failed') && !section.dry_run ? section : null;
}
