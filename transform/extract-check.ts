// Every staged extract file transform reads (documents, ids, requested `_id`s, recompute keys) must
// be the file the extract manifest records: a damaged or edited file is refused, with one message
// whichever file it is.
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';
import { isPermissionDenied, systemCode, systemWords } from '../errors/system-words.ts';
import type { FileRecord } from '../staging/manifest.ts';
import { RUN_FOLDER_DENIED, type RunPaths } from '../staging/run-folder.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { readLineBatches, type FileDigest } from './ndjson-batches.ts';

/** What reading the file gave; `records` left out when the reader does not count them. */
export interface ReadFigures {
  readonly bytes: number;
  readonly sha256: string | null;
  readonly records?: number;
}

/** Throws `extract_mismatch` unless `read` is what `record` (the extract manifest's) says. */
export function checkExtractRead(paths: RunPaths, record: FileRecord, read: ReadFigures, collection?: string): void {
  const counted = read.records !== undefined;
  if (read.bytes === record.bytes && read.sha256 === record.sha256 && (!counted || read.records === record.records)) return;
  const figures = (f: ReadFigures) => `${counted ? `${f.records} records, ` : ''}${f.bytes} bytes, sha256 ${f.sha256}`;
  throw new StagingError(
    'extract_mismatch',
    `${record.file} of run ${paths.runId} is not the file the extract manifest describes: read ${figures(read)}; the manifest says ${figures(record)}`,
    {
      context: { file: path.join(paths.dir, record.file), ...(collection === undefined ? {} : { collection }) },
      hint: 'the run is damaged: make it again (`etl extract`, or `etl repair` for a repair run)',
    },
  );
}

/**
 * The extract file could not be read (gone, a folder, no permission): said as such, not as a bug.
 * Null when `error` is not the system refusing this file (the outputs fail as StagingErrors).
 */
export function unreadableExtract(error: unknown, file: string, collection: string, paths: RunPaths): StagingError | null {
  const code = systemCode(error);
  // A read on the open file names no path (EISDIR, EIO); an error naming another path is not ours.
  const failedPath = (error as NodeJS.ErrnoException | null)?.path;
  if (code === undefined || (failedPath !== undefined && failedPath !== file)) return null;
  const context = { file, collection };
  if (code === 'ENOENT' || code === 'EISDIR') {
    const what = code === 'ENOENT' ? `has no ${paths.relative(file)}` : `has a folder, not a file, at ${paths.relative(file)}`;
    return new StagingError('missing_extract_file', `run ${paths.runId} ${what}`, { context, hint: 'the run is damaged: run `etl extract` again', cause: error });
  }
  return new StagingError('staging_unreadable', `cannot read ${file}: ${systemWords(error)}`, {
    context,
    hint: isPermissionDenied(error) ? RUN_FOLDER_DENIED : 'check the disk and the file, or run `etl extract` again',
    cause: error,
  });
}

/**
 * Each document of an extract file beside the collection's (its rejects, a repair's requested
 * `_id`s), in order, then the file checked against its record (bytes, sha256, lines) before what was
 * done with it counts. Returns how many documents `each` counted.
 */
export async function eachCheckedDocument(paths: RunPaths, record: FileRecord, signal: AbortSignal, each: (doc: RawDocument) => Promise<boolean>): Promise<number> {
  const file = path.join(paths.dir, record.file);
  const digest: FileDigest = { bytes: 0, sha256: null };
  let lines = 0;
  let counted = 0;
  for await (const batch of readLineBatches(file, digest, signal)) {
    for (let i = 0; i < batch.length; i += 1) {
      lines += 1;
      if (await each(batch.document(i, file))) counted += 1;
    }
  }
  checkExtractRead(paths, record, { ...digest, records: lines });
  return counted;
}
