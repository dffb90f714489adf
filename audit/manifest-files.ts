// Which files a manifest vouches for. The walk is generic (any object shaped like a FileRecord,
// wherever a stage put it), so a stage that records a new kind of file is audited without a change here.
import { STAGES, type FileRecord, type Manifest, type StageName } from '../staging/manifest.ts';

export { STAGES };

/** Files every finished run holds besides the stages' own files. */
export const MANIFEST_FILE = 'manifest.json';
export const PIPELINE_COPY = 'pipeline.yaml';
/** The run's HTML report (report/write-report.ts): derived from the files above, packed first when present. */
export const REPORT_FILE = 'report.html';

export interface RecordedFile {
  stage: StageName;
  /** Where in manifest.json the record sits, e.g. `stages.transform.tables.users.csv`. */
  where: string;
  record: FileRecord;
}

function isFileRecord(value: unknown): value is FileRecord {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v.file === 'string' && typeof v.sha256 === 'string' && typeof v.bytes === 'number';
}

/** FileRecords of the given stages (all stages by default), in manifest order. */
export function recordedFiles(manifest: Manifest, stages: readonly StageName[] = STAGES): RecordedFile[] {
  const out: RecordedFile[] = [];
  const walk = (stage: StageName, value: unknown, where: string): void => {
    // A record may hold further records (an extract collection and its ids file): keep walking.
    if (isFileRecord(value)) out.push({ stage, where, record: value });
    if (value === null || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) walk(stage, child, `${where}.${key}`);
  };
  for (const stage of stages) {
    const section = manifest.stages?.[stage];
    if (section) walk(stage, section, `stages.${stage}`);
  }
  return out;
}

/** Stages whose section says "done". */
export function doneStages(manifest: Manifest): StageName[] {
  return STAGES.filter((s) => manifest.stages?.[s]?.status === 'done');
}

/** A recorded path must stay inside the run folder: a manifest is input, not trusted. */
export function isSafeRelativePath(file: string): boolean {
  if (file.length === 0 || file.startsWith('/') || file.includes('\\') || file.includes('\0')) return false;
  return file.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}
