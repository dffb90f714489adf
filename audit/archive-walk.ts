// Reads a tar archive (gzipped or not) entry by entry as a stream, with backpressure from the
// archive file through the decompression down to whoever consumes an entry: memory stays at a few
// chunks whatever an entry's size or the compression ratio (an entry of 4 GiB of zeros fits in a
// 4 MB .tar.gz). tar's own file readers read 16 MB at a time and inflate it all at once.
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar';
import { isGzipFile } from '../staging/gzip-magic.ts';

export type ArchiveEntry = tar.ReadEntry;

/** Stops the walk early (not an error): what the caller wanted was found. */
export class StopWalk extends Error {
  override name = 'StopWalk';
}

/**
 * Calls `onEntry` for each entry, in order; the walk waits for the promise it returns before the
 * next entry's bytes flow. `onEntry` must consume the entry (read it to its end, or `resume()` it).
 * Throwing StopWalk from `onEntry` ends the walk quietly.
 */
export async function walkArchive(file: string, onEntry: (entry: ArchiveEntry) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const parser = new tar.Parser({ strict: true });
  let failure: unknown = null;
  let chain: Promise<void> = Promise.resolve();
  parser.on('entry', (entry: ArchiveEntry) => {
    chain = chain.then(async () => {
      if (failure !== null) return void entry.resume();
      try {
        await onEntry(entry);
      } catch (error) {
        failure ??= error;
        entry.resume();
      }
    });
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', (error: Error) => {
      // A damaged header (strict mode): the next write fails with it.
      failure ??= error;
      reject(error);
    });
  });
  // Awaited at the end of the input; an error before then must not count as unhandled (it ended
  // the process with a stack).
  parsed.catch(() => undefined);
  const feed = new Writable({
    highWaterMark: 1 << 16,
    write(chunk: Buffer, _enc, callback) {
      if (failure !== null) return callback(failure instanceof Error ? failure : new Error(String(failure)));
      // Whatever the parser throws fails the pipeline, not the process.
      let more: boolean;
      try {
        more = parser.write(chunk);
      } catch (error) {
        return callback(error as Error);
      }
      // The parser says false while the current entry's consumer has not caught up.
      if (more) callback();
      else parser.once('drain', () => callback());
    },
    final(callback) {
      try {
        parser.end();
      } catch (error) {
        return callback(error as Error);
      }
      parsed.then(() => callback(), callback);
    },
  });
  const source = createReadStream(file, { highWaterMark: 1 << 16 });
  try {
    if (await isGzipFile(file)) await pipeline(source, createGunzip({ chunkSize: 1 << 16 }), feed, { signal });
    else await pipeline(source, feed, { signal });
  } catch (error) {
    if (!(failure instanceof StopWalk)) throw failure ?? error;
  }
  await chain;
  if (failure !== null && !(failure instanceof StopWalk)) throw failure;
}

