// Every staged extract file transform reads (documents, ids, requested `_id`s, recompute keys) must
// be the file the extract manifest records: a damaged or edited file is refused, with one message
// whichever file it is.
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';
import type { FileRecord } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';

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
