// The plain-data result of `etl verify`: what was checked and every mismatch found.
import type { ShownStageStatus } from '../staging/stage-writer.ts';

export type CheckKind =
  | 'stage' // a stage section is not "done"
  | 'manifest' // manifest.json itself is inconsistent (run id, unsafe paths)
  | 'pipeline' // the stored pipeline.yaml does not match the manifest
  | 'missing' // a file the manifest records is absent
  | 'extra' // a file the manifest does not record is present
  | 'bytes'
  | 'sha256'
  | 'records' // line / row count differs from the manifest
  | 'parse' // a CSV that does not parse
  | 'count' // a reconciliation identity does not hold
  | 'report' // an archive's report.html shows figures its manifest does not give (missing from an archive: 'missing')
  | 'retransform'; // transform, re-run from the staged NDJSON, gives different files or counts

export interface Mismatch {
  check: CheckKind;
  file?: string;
  table?: string;
  /** The manifest field involved, e.g. stages.transform.tables.users.rows. */
  field?: string;
  expected: string;
  found: string;
  detail?: string;
}

export interface Identity {
  table: string;
  /** The identity in words, e.g. `documents = rows + rejected + Σskipped`. */
  name: string;
  /** The identity with the manifest's numbers, e.g. `120 = 117 + 2 + 1`. */
  figures: string;
  ok: boolean;
}

export interface VerifyReport {
  ok: boolean;
  target: string;
  /** The archive verified, or null for a run folder. */
  archive: string | null;
  run_id: string;
  /** Per stage: its status as shown (`killed`: running, its process gone from this host). */
  stages: Record<'extract' | 'transform' | 'load', ShownStageStatus | null>;
  pipeline: {
    manifest_sha256: string;
    stored_sha256: string | null;
    /** The pipeline.yaml of the current directory (or --pipeline), when there is one. */
    current_file: string | null;
    current_sha256: string | null;
    /** true when the current pipeline.yaml is not the one the run was made with. */
    current_differs: boolean | null;
  };
  files: { checked: number; bytes: number; missing: number; extra: number };
  /**
   * report.html, which no checksum covers (it is written after the manifest): present or not, the
   * parts of it compared with what the manifest gives, and those that differ.
   */
  report: { file: string; present: boolean; compared: string[]; differs: string[] };
  identities: Identity[];
  retransform: { ran: boolean; skipped_because: string | null; tables: number; files_compared: number; files_identical: number };
  mismatches: Mismatch[];
  notes: string[];
}
