// Writes a generated sample as mongodump does in directory mode: <dir>/<db>/<collection>.bson (one
// BSON document after another) and <collection>.metadata.json; with gzip, both files end in .gz.
// Documents are serialized one at a time into ~1 MiB chunks that flow through pipeline() into the
// file, so memory stays flat whatever the scale. Each file is written as .partial and renamed.
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { EJSON, serialize, type Document } from 'bson';
import { EtlError } from '../errors/etl-error.ts';
import { AtomicFileSink, writeFailure, type FileFigures } from '../staging/atomic-file.ts';
import type { SampleCollectionSource, SampleGeneration } from './generate.ts';
import { hash } from './prng.ts';
import type { SampleProgress, WriteOptions } from './write-options.ts';
import { makeFolders } from '../staging/make-folders.ts';

export type { SampleProgress, WriteOptions };

const CHUNK_BYTES = 1 << 20;
const PROGRESS_EVERY = 10_000;

export interface DumpTarget {
  /** The mongodump output directory (files go to <dir>/<database>/). */
  readonly dir: string;
  readonly database: string;
  readonly gzip: boolean;
  /** Replace existing files of the sample's collections; without it, existing files are refused. */
  readonly replace: boolean;
}

export interface DumpFileReport {
  readonly name: string;
  readonly documents: number;
  /** Path of the .bson(.gz) file. */
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly metadataFile: string;
}

export interface DumpReport {
  readonly kind: 'dump';
  readonly dir: string;
  readonly database: string;
  readonly gzip: boolean;
  readonly collections: readonly DumpFileReport[];
}

function dumpFileNames(collection: string, gzip: boolean): { bson: string; metadata: string } {
  const gz = gzip ? '.gz' : '';
  return { bson: `${collection}.bson${gz}`, metadata: `${collection}.metadata.json${gz}` };
}

export async function writeDump(sample: SampleGeneration, target: DumpTarget, options: WriteOptions = {}): Promise<DumpReport> {
  const dbDir = path.resolve(target.dir, target.database);
  await refuseOrClearExisting(sample, dbDir, target.replace);
  await makeFolders(dbDir).catch((cause: unknown) => {
    throw writeFailure((cause as NodeJS.ErrnoException).path ?? dbDir, cause);
  });
  const reports: DumpFileReport[] = [];
  try {
    await writeCollections(sample, target, dbDir, reports, options);
  } catch (error) {
    // pipeline() reports an abort as a bare AbortError: surface the reason the caller aborted with.
    if (options.signal?.aborted && options.signal.reason !== undefined) throw options.signal.reason;
    // A system error (a full disk, a file where a folder should be, no permission): said in words.
    const system = error as NodeJS.ErrnoException;
    throw system.syscall ? writeFailure(system.path ?? dbDir, error) : error;
  }
  return { kind: 'dump', dir: path.resolve(target.dir), database: target.database, gzip: target.gzip, collections: reports };
}

async function writeCollections(sample: SampleGeneration, target: DumpTarget, dbDir: string, reports: DumpFileReport[], options: WriteOptions): Promise<void> {
  for (const source of sample.collections) {
    options.signal?.throwIfAborted();
    const names = dumpFileNames(source.name, target.gzip);
    const file = path.join(dbDir, names.bson);
    const metadataFile = path.join(dbDir, names.metadata);
    const counter = { written: 0 };
    const written = await writeWhole(file, Readable.from(bsonChunks(source, counter, options.onProgress)), target.gzip, options.signal);
    const metadata = Buffer.from(`${EJSON.stringify(metadataOf(source.name, sample.seed), { relaxed: false })}\n`);
    await writeWhole(metadataFile, Readable.from([metadata]), target.gzip, options.signal);
    if (counter.written !== source.count) {
      throw new EtlError('sample_count_mismatch', `${source.name}: generated ${counter.written} documents, planned ${source.count}`);
    }
    reports.push({ name: source.name, documents: counter.written, file, bytes: written.bytes, sha256: written.sha256, metadataFile });
  }
}

/**
 * A file appears whole or not at all (staging/atomic-file.ts: <file>.partial, renamed on success),
 * its bytes counted and hashed on their way. mongodump --gzip compresses with default settings;
 * zlib's output is stable for the same input.
 */
async function writeWhole(file: string, source: Readable, gzip: boolean, signal?: AbortSignal): Promise<FileFigures> {
  const sink = new AtomicFileSink(file);
  const opts = signal ? { signal } : {};
  try {
    await (gzip ? pipeline(source, createGzip(), sink, opts) : pipeline(source, sink, opts));
  } catch (error) {
    await sink.discard();
    throw error;
  }
  return sink.commit();
}

/** BSON documents back to back, grouped into ~1 MiB chunks (one Buffer per document would be slow). */
function* bsonChunks(source: SampleCollectionSource, counter: { written: number }, onProgress?: (p: SampleProgress) => void): Generator<Buffer> {
  let parts: Uint8Array[] = [];
  let size = 0;
  onProgress?.({ collection: source.name, written: 0, total: source.count });
  for (const doc of source.documents()) {
    const bytes = serialize(doc);
    parts.push(bytes);
    size += bytes.length;
    counter.written++;
    if (size >= CHUNK_BYTES) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
    if (counter.written % PROGRESS_EVERY === 0) onProgress?.({ collection: source.name, written: counter.written, total: source.count });
  }
  if (size > 0) yield Buffer.concat(parts, size);
  onProgress?.({ collection: source.name, written: counter.written, total: source.count });
}

/** What mongodump writes next to each .bson: the indexes to rebuild and the collection's identity. */
function metadataOf(collection: string, seed: number): Document {
  const indexes: Document[] = [{ v: 2, key: { _id: 1 }, name: '_id_' }];
  if (collection === 'users') indexes.push({ v: 2, key: { email: 1 }, name: 'email_1', unique: true, background: true });
  let uuid = '';
  for (let k = 0; k < 4; k++) uuid += hash(seed, collection.length, k, ...[...collection].map((c) => c.charCodeAt(0))).toString(16).padStart(8, '0');
  return { indexes, uuid, collectionName: collection, type: 'collection' };
}

/**
 * A dump directory may already hold real data: never overwrite a file silently. With `replace`,
 * both the plain and the gzipped variants go, so a collection never ends up with two files.
 */
async function refuseOrClearExisting(sample: SampleGeneration, dbDir: string, replace: boolean): Promise<void> {
  const existing: string[] = [];
  for (const { name } of sample.collections) {
    for (const gzip of [false, true]) {
      const names = dumpFileNames(name, gzip);
      for (const f of [names.bson, names.metadata]) {
        const file = path.join(dbDir, f);
        if (await stat(file).then(() => true, () => false)) existing.push(file);
      }
    }
  }
  if (existing.length === 0) return;
  if (!replace) {
    throw new EtlError('sample_target_not_empty', `${dbDir} already holds ${existing.length} dump file(s) of the sample's collections (e.g. ${path.basename(existing[0]!)})`, {
      context: { file: existing[0]! },
      hint: 'choose another --out directory or --db name, or pass --drop to replace those files',
    });
  }
  for (const file of existing) await rm(file, { force: true });
}
