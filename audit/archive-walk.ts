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
  const walk: Walk = { failure: null, chain: Promise.resolve(), current: null };
  parser.on('entry', (entry: ArchiveEntry) => {
    walk.chain = walk.chain.then(() => consume(entry, onEntry, walk));
  });
  const feed = parserFeed(parser, walk);
  const source = createReadStream(file, { highWaterMark: 1 << 16 });
  try {
    if (await isGzipFile(file)) await pipeline(source, createGunzip({ chunkSize: 1 << 16 }), feed, { signal });
    else await pipeline(source, feed, { signal });
  } catch (error) {
    if (!(walk.failure instanceof StopWalk)) {
      // The archive broke (cut short, not gzip): the entries the parser already queued must not be
      // consumed after the walk has failed (they were, writing files into a folder being removed),
      // and the one being consumed never gets the rest of its bytes: it ends with the error.
      walk.failure ??= error;
      await endCurrent(walk, error);
      throw walk.failure;
    }
  }
  await walk.chain;
  if (walk.failure !== null && !(walk.failure instanceof StopWalk)) throw walk.failure;
}

interface Walk {
  /** The first error (or StopWalk): of an entry's consumer, of the parser, or of the archive's read. */
  failure: unknown;
  /** The entries' consumers, one after the other. */
  chain: Promise<void>;
  /** The entry a consumer is reading, until its consumer returns. */
  current: ArchiveEntry | null;
}

async function consume(entry: ArchiveEntry, onEntry: (entry: ArchiveEntry) => Promise<void>, walk: Walk): Promise<void> {
  if (walk.failure !== null) return void entry.resume();
  walk.current = entry;
  try {
    await onEntry(entry);
  } catch (error) {
    walk.failure ??= error;
    entry.resume();
  } finally {
    walk.current = null;
  }
}

/**
 * Ends the entry being read with `error` and waits for its consumer. A consumer that has not
 * started reading it yet (no error listener) sees the walk's failure through its stream's end.
 */
async function endCurrent(walk: Walk, error: unknown): Promise<void> {
  const entry = walk.current;
  if (entry && entry.listenerCount('error') > 0) entry.destroy(error instanceof Error ? error : new Error(String(error)));
  else entry?.end();
  await walk.chain;
}

/** The archive's bytes into the parser, with its backpressure; a parser error (a damaged header) fails the write after it. */
function parserFeed(parser: tar.Parser, walk: Walk): Writable {
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', (error: Error) => {
      walk.failure ??= error;
      reject(error);
    });
  });
  // Awaited once the input ends; an error before then must not count as unhandled (that ended the
  // process with a stack).
  parsed.catch(() => undefined);
  return new Writable({
    highWaterMark: 1 << 16,
    write(chunk: Buffer, _enc, callback) {
      if (walk.failure !== null) return callback(walk.failure instanceof Error ? walk.failure : new Error(String(walk.failure)));
      // The parser says false while the current entry's consumer has not caught up.
      if (parser.write(chunk)) callback();
      else parser.once('drain', () => callback());
    },
    final(callback) {
      parser.end();
      parsed.then(() => callback(), callback);
    },
  });
}
