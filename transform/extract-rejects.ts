// The documents extract refused (extract/<collection>.rejects.ndjson) are in the run's scope: each
// whose `_id` extract could read names itself in the keys file of every table of its collection,
// as a read document that yields nothing does, so load removes the rows it held. A complete read
// already leaves such a document no row (it keeps only what it staged); without this an incremental
// run kept the rows of its last good version, and the two runs disagreed. The file is checked
// against the extract manifest (bytes, sha256, lines) before it counts.
import path from 'node:path';
import type { FileRecord } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { checkExtractRead } from './extract-check.ts';
import { readLineBatches, type FileDigest } from './ndjson-batches.ts';
import type { TableWork } from './table-work.ts';

const OBJECT_ID_HEX = /^[0-9a-f]{24}$/;

/**
 * A reject's `_id` as the staged documents hold it: the rejects file writes an ObjectId as its 24
 * hex characters and any other `_id` as its canonical Extended JSON text; null when extract could
 * not read one (no `_id`, bytes that are not BSON).
 */
function stagedId(text: unknown): unknown {
  if (typeof text !== 'string') return null;
  if (OBJECT_ID_HEX.test(text)) return { $oid: text };
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** Names each refused document with an `_id` in every table's keys file; returns how many. */
export async function nameRejectedDocuments(paths: RunPaths, record: FileRecord, works: readonly TableWork[], drain: () => Promise<void>, signal: AbortSignal): Promise<number> {
  const file = path.join(paths.dir, record.file);
  const digest: FileDigest = { bytes: 0, sha256: null };
  let lines = 0;
  let named = 0;
  for (const w of works) w.extractRejected = 0;
  for await (const batch of readLineBatches(file, digest, signal)) {
    for (let i = 0; i < batch.length; i += 1) {
      lines += 1;
      const id = stagedId(batch.document(i, file)._id);
      if (id === null) continue;
      named += 1;
      for (const w of works) w.noteRejectedByExtract({ _id: id });
      await drain();
    }
  }
  checkExtractRead(paths, record, { ...digest, records: lines });
  return named;
}
