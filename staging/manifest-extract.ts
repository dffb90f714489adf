// The extract section of manifest.json (owned by the extract stage).
import type { FileRecord, StageSectionBase } from './manifest.ts';

export interface ExtractCollectionRecord extends FileRecord {
  /** The MongoDB filter used, as canonical Extended JSON. */
  filter: unknown;
  /** Documents with creation_date or update_date >= from were read; null = full. */
  watermark: { from: string | null; next: string };
  started_at: string;
  ended_at: string;
  /** Tables this collection feeds. */
  tables: string[];
}

export interface ExtractSection extends StageSectionBase {
  /** true when every collection was read in full. */
  full: boolean;
  /** Server clock at the start of the extract (the basis of the next watermark). */
  server_started_at: string | null;
  collections: Record<string, ExtractCollectionRecord>;
}
