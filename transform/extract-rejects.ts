// The documents extract refused (extract/<collection>.rejects.ndjson) are in the run's scope: each
// whose `_id` extract could read names itself in the keys file of every table of its collection,
// as a read document that yields nothing does, so load removes the rows it held. A complete read
// already leaves such a document no row (it keeps only what it staged); without this an incremental
// run kept the rows of its last good version, and the two runs disagreed. The file is checked
// against the extract manifest (bytes, sha256, lines) before it counts.
import type { FileRecord } from '../staging/manifest.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { eachCheckedDocument } from './extract-check.ts';
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
  for (const w of works) w.extractRejected = 0;
  return eachCheckedDocument(paths, record, signal, async (doc) => {
    const id = stagedId(doc._id);
    if (id === null) return false;
    for (const w of works) w.noteRejectedByExtract({ _id: id });
    await drain();
    return true;
  });
}
