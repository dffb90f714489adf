// The load section of manifest.json (owned by the load stage).
import type { FileRecord, StageSectionBase } from './manifest.ts';

export interface LoadTableRecord {
  inserted: number;
  updated: number;
  unchanged: number;
  deleted: number;
  rejected: number;
  /** Values set to NULL because the referenced row does not exist (on_missing: set_null). */
  nulled: number;
  rejects: FileRecord | null;
}

export interface LoadSection extends StageSectionBase {
  dry_run: boolean;
  /** true when the run had already been applied and nothing changed. */
  already_applied: boolean;
  tables: Record<string, LoadTableRecord>;
}
