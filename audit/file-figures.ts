// Recomputes a staged file's figures (sha256, bytes, records) the way an auditor would: from the
// bytes on disk, in one streaming pass, without trusting anything the manifest says.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { csvReader } from '../staging/csv.ts';

export type StagedFileKind = 'ndjson' | 'csv' | 'other';

export interface MeasuredFile {
  bytes: number;
  sha256: string;
  /** NDJSON: lines (documents); CSV: parsed rows without the header; null when the file could not be parsed. */
  records: number | null;
  /** Why `records` is null (a CSV that does not parse). */
  parseError: string | null;
}

export function stagedFileKind(file: string): StagedFileKind {
  if (file.endsWith('.ndjson')) return 'ndjson';
  if (file.endsWith('.csv')) return 'csv';
  return 'other';
}

/** What a FigureTap saw. */
export interface TapFigures {
  readonly bytes: number;
  readonly sha256: string;
  readonly newlines: number;
  /** The last byte (-1 when empty): a last line without a newline still counts as a line. */
  readonly lastByte: number;
}

/** NDJSON documents: one a line, the last one with or without its newline. */
export function ndjsonRecords(f: TapFigures): number {
  return f.newlines + (f.bytes > 0 && f.lastByte !== 10 ? 1 : 0);
}

/** Hashes and counts bytes and newlines as they pass. */
export class FigureTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  newlines = 0;
  lastByte = -1;
  private digest: string | null = null;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.newlines += 1;
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1]!;
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }
  /** Valid once the stream has finished. */
  figures(): TapFigures {
    this.digest ??= this.hash.digest('hex');
    return { bytes: this.bytes, sha256: this.digest, newlines: this.newlines, lastByte: this.lastByte };
  }
}

/**
 * CSV rows are counted by parsing, not by counting newlines: a quoted cell may hold a newline.
 * NDJSON documents are one a line (EJSON escapes newlines inside strings), so newlines count them.
 */
export async function measureFile(
  file: string,
  kind: StagedFileKind,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<MeasuredFile> {
  const tap = new FigureTap(options.onBytes);
  const source = createReadStream(file, { highWaterMark: 1 << 20 });
  if (kind !== 'csv') {
    await pipeline(source, tap, discard(), { signal: options.signal });
    const figures = tap.figures();
    return { bytes: figures.bytes, sha256: figures.sha256, records: kind === 'ndjson' ? ndjsonRecords(figures) : null, parseError: null };
  }
  const rows = rowCounter();
  try {
    await pipeline(source, tap, csvReader(), rows, { signal: options.signal });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    // The file is damaged beyond parsing: finish the hash anyway so the report names both.
    const rest = await hashRest(file, options.signal);
    return { bytes: rest.bytes, sha256: rest.sha256, records: null, parseError: (error as Error).message };
  }
  return { bytes: tap.bytes, sha256: tap.figures().sha256, records: Math.max(0, rows.parsed - 1), parseError: null };
}

/** A CSV's rows without its header, by parsing alone (its bytes were hashed elsewhere), or why it does not parse. */
export async function countCsvRows(file: string, signal?: AbortSignal): Promise<{ records: number | null; parseError: string | null }> {
  const rows = rowCounter();
  try {
    await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), csvReader(), rows, { signal });
  } catch (error) {
    if (signal?.aborted) throw error;
    return { records: null, parseError: (error as Error).message };
  }
  return { records: Math.max(0, rows.parsed - 1), parseError: null };
}

/** Counts parsed CSV records (the header included). */
function rowCounter(): Writable & { parsed: number } {
  const counter = Object.assign(
    new Writable({
      objectMode: true,
      write(_row: unknown, _enc, callback) {
        counter.parsed += 1;
        callback();
      },
    }),
    { parsed: 0 },
  );
  return counter;
}

async function hashRest(file: string, signal?: AbortSignal): Promise<{ bytes: number; sha256: string }> {
  const tap = new FigureTap();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), tap, discard(), { signal });
  return { bytes: tap.bytes, sha256: tap.figures().sha256 };
}

/** sha256 of a whole file (pipeline.yaml copies, archives). */
export async function sha256OfFile(file: string, signal?: AbortSignal): Promise<string> {
  return (await hashRest(file, signal)).sha256;
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _enc, callback) {
      callback();
    },
  });
}
