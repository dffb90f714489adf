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
function ndjsonRecords(f: TapFigures): number {
  return f.newlines + (f.bytes > 0 && f.lastByte !== 10 ? 1 : 0);
}

/** A file's records: a CSV's as a CsvRowTap counted them (`rows`), NDJSON's by its lines, none for other files. */
export function recordsOf(kind: StagedFileKind, figures: TapFigures, rows: CsvRows | null): CsvRows {
  if (rows) return rows;
  return { records: kind === 'ndjson' ? ndjsonRecords(figures) : null, parseError: null };
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
 * One pass either way: the bytes are hashed and parsed as they are read.
 */
export async function measureFile(
  file: string,
  kind: StagedFileKind,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<MeasuredFile> {
  const tap = new FigureTap(options.onBytes);
  const rows = kind === 'csv' ? new CsvRowTap() : null;
  const source = createReadStream(file, { highWaterMark: 1 << 20 });
  await pipeline([source, tap, ...(rows ? [rows] : []), discard()], { signal: options.signal });
  const figures = tap.figures();
  return { bytes: figures.bytes, sha256: figures.sha256, ...recordsOf(kind, figures, rows?.rows() ?? null) };
}

/** A CSV's rows without its header, or why it does not parse (then `records` is null). */
export interface CsvRows {
  readonly records: number | null;
  readonly parseError: string | null;
}

/**
 * Passes bytes on unchanged and counts the CSV rows in them as they pass. A CSV that does not
 * parse does not stop the bytes (they are still hashed, copied): the parse error is kept for rows().
 */
export class CsvRowTap extends Transform {
  private readonly parser = csvReader();
  private parsed = 0;
  private error: Error | null = null;
  private readonly done: Promise<void>;

  constructor() {
    super();
    this.parser.on('data', () => (this.parsed += 1));
    this.done = new Promise((resolve) => {
      this.parser.on('end', resolve);
      this.parser.on('error', (error: Error) => {
        this.error ??= error;
        resolve();
      });
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (this.error === null) this.parser.write(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.error === null) this.parser.end();
    this.done.then(() => callback(), callback);
  }

  /** Valid once the stream has finished. */
  rows(): CsvRows {
    return this.error ? { records: null, parseError: this.error.message } : { records: Math.max(0, this.parsed - 1), parseError: null };
  }
}

/** sha256 of a whole file (pipeline.yaml copies, archives). */
export async function sha256OfFile(file: string, signal?: AbortSignal): Promise<string> {
  const tap = new FigureTap();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), tap, discard(), { signal });
  return tap.figures().sha256;
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _enc, callback) {
      callback();
    },
  });
}
