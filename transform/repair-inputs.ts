// What a repair run (`etl repair`) adds to a table's scope, besides the documents it read:
//   - the documents it asked for and did not find (extract/<collection>.requested.ndjson, `found`
//     false): deleted since the last load, or never there. Each names itself in the keys file of
//     every table of its collection, as a read document would, so load removes what it owned;
//   - for a dedupe table, the keys load must recompute whatever the run stages
//     (extract/<table>.recompute.csv → transform/<table>.recompute.csv, copied byte for byte):
//     a key no document contributes to any more leaves the table.
// Both files are checked against the extract manifest (bytes and sha256, records too for the
// requested file) before use.
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { StagingError } from '../errors/etl-error.ts';
import type { TableModel } from '../model/types.ts';
import { AtomicFileSink } from '../staging/atomic-file.ts';
import type { FileRecord } from '../staging/manifest.ts';
import type { ExtractRecomputeRecord } from '../staging/manifest-extract.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { checkExtractRead, eachCheckedDocument } from './extract-check.ts';
import type { TableWork } from './table-work.ts';

/** Names every requested document the extract did not find in each table's keys file; returns how many. */
export async function nameAbsentDocuments(paths: RunPaths, record: FileRecord, works: readonly TableWork[], drain: () => Promise<void>, signal: AbortSignal): Promise<number> {
  for (const w of works) w.absent = 0;
  return eachCheckedDocument(paths, record, signal, async (doc) => {
    if (doc.found === true) return false;
    for (const w of works) w.noteAbsent({ _id: doc._id });
    await drain();
    return true;
  });
}

/**
 * transform/<table>.recompute.csv: the extract's file, copied as it is (the dedupe key's columns,
 * its header written by extract from the record's columns) once its bytes prove to be the ones the
 * extract manifest records.
 */
export async function passRecomputeKeys(paths: RunPaths, table: TableModel, record: ExtractRecomputeRecord, signal: AbortSignal): Promise<FileRecord> {
  const key = table.dedupe?.key ?? [];
  if (record.columns.length !== key.length || record.columns.some((c, i) => c !== key[i])) {
    throw new StagingError('columns_mismatch', `${record.file} names the keys (${record.columns.join(', ')}) but the dedupe key of ${table.name} is (${key.join(', ')})`, {
      context: { file: path.join(paths.dir, record.file), table: table.name },
      hint: 'run `etl repair` again with the current pipeline.yaml',
    });
  }
  const sink = new AtomicFileSink(paths.transformRecompute(table.name));
  try {
    await pipeline(createReadStream(path.join(paths.dir, record.file), { signal }), sink, { signal });
    checkExtractRead(paths, record, sink.figures());
  } catch (error) {
    await sink.discard();
    throw error;
  }
  const f = await sink.commit();
  return { file: paths.relative(paths.transformRecompute(table.name)), bytes: f.bytes, sha256: f.sha256, records: record.records };
}
