// The transform section of manifest.json (owned by the transform stage).
import type { FileRecord, StageSectionBase } from './manifest.ts';

export interface TransformTableRecord {
  collection: string;
  strategy: 'upsert' | 'explode' | 'dedupe';
  /** Documents of the collection read for this table. */
  documents: number;
  /** Rows written to the CSV. */
  rows: number;
  /** Rows (or documents) written to the rejects file. */
  rejected: number;
  /** Why documents or items were not turned into rows, and how many. */
  skipped: Record<string, number>;
  csv: FileRecord;
  keys: FileRecord | null;
  rejects: FileRecord;
}

export interface TransformSection extends StageSectionBase {
  pipeline_sha256: string;
  tables: Record<string, TransformTableRecord>;
}
