// One pass over a collection's extract file for every table it feeds (users → users, user_events,
// users_targets): each line is parsed once and offered to each table in turn. Tables write into
// their own files; when any file's buffer is full the pass waits for it, so the reader never runs
// ahead of the slowest file and memory stays flat.
import { pipeline } from 'node:stream/promises';
import { readLineBatches, type FileDigest, type LineBatch } from './ndjson-batches.ts';
import type { TableWork } from './table-work.ts';

export interface PassOptions {
  readonly file: string;
  readonly signal: AbortSignal;
  /** Called every `every` documents with the count so far. */
  readonly onDocuments?: (done: number) => void;
  readonly every: number;
}

export interface PassResult {
  readonly documents: number;
  /** What was read: checked by the caller against the extract manifest. */
  readonly bytes: number;
  readonly sha256: string;
}

/** Waits for every file of the tables whose buffer is full. */
export function drainOf(works: readonly TableWork[]): () => Promise<void> {
  const outputs = works.flatMap((w) => w.outputs);
  return async () => {
    for (const out of outputs) if (out.needsDrain) await out.drain();
  };
}

/** Reads the file once, feeding every table. */
export async function runCollectionPass(works: readonly TableWork[], o: PassOptions): Promise<PassResult> {
  const outputs = works.flatMap((w) => w.outputs);
  const drain = drainOf(works);
  let documents = 0;
  let nextTick = o.every;
  const digest: FileDigest = { bytes: 0, sha256: null };
  await pipeline(
    readLineBatches(o.file, digest, o.signal),
    async (batches: AsyncIterable<LineBatch>) => {
      for await (const batch of batches) {
        for (let i = 0; i < batch.length; i += 1) {
          const doc = batch.document(i, o.file);
          for (const w of works) w.accept(doc);
          documents += 1;
          for (const out of outputs) {
            if (out.needsDrain) {
              await drain();
              break;
            }
          }
        }
        if (o.onDocuments && documents >= nextTick) {
          o.onDocuments(documents);
          nextTick = documents + o.every;
        }
      }
    },
    { signal: o.signal },
  );
  for (const w of works) await w.finish(drain);
  return { documents, bytes: digest.bytes, sha256: digest.sha256 ?? '' };
}
