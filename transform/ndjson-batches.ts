// The lines of an extract file in batches (one batch per 1 MiB read), hashed as they are read.
//
// Why not staging/ndjson.ts readNdjsonLines: it hands over one line per promise through readline,
// which cost a quarter of the stage's time on a million documents; a batch per chunk costs one
// promise per ~2,000 lines. The sha256 of the bytes read lets the stage check the file against the
// extract manifest without reading it twice.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { StagingError } from '../errors/etl-error.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';

/**
 * The lines of one read. Each is decoded from its own bytes when asked for (a newline byte is never
 * inside a UTF-8 character), not sliced from the chunk decoded whole: one character beyond Latin-1
 * made a whole 1 MiB chunk a two-byte string, and every line sliced from it too, which JSON.parse
 * reads slower than the one-byte string of an ASCII line; and a line decoded only when it is parsed
 * dies young, where a batch of decoded lines outlived a few scavenges of the garbage collector.
 */
export class LineBatch {
  constructor(
    private readonly bytes: Buffer,
    /** Start and end offsets in `bytes` of line i at 2i and 2i + 1. */
    private readonly bounds: readonly number[],
    private readonly numbers: readonly number[],
    /** The first line's text when it was joined from two reads (its bounds are unused). */
    private readonly joined: string | null,
  ) {}

  /** Non-empty lines in the batch. */
  get length(): number {
    return this.numbers.length;
  }

  /** Line i's text, without its newline (nor a CR before it). */
  text(i: number): string {
    if (i === 0 && this.joined !== null) return this.joined;
    return this.bytes.toString('utf8', this.bounds[2 * i], this.bounds[2 * i + 1]);
  }

  /** 1-based line number of line i in the file. */
  lineNumber(i: number): number {
    return this.numbers[i]!;
  }

  /** Line i as a raw document, or a StagingError naming `file` (as messages show it) and the line. */
  document(i: number, file: string): RawDocument {
    return parseDocumentLine(this.text(i), file, this.lineNumber(i));
  }
}

export interface FileDigest {
  bytes: number;
  sha256: string | null;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/** Finds the lines of one read: their bounds and numbers (empty lines counted, not kept). */
class BatchBuilder {
  private readonly bounds: number[] = [];
  private readonly numbers: number[] = [];
  private joined: string | null = null;

  constructor(private lineNo: number) {}

  /** The end of the line held by buf[start, end) without one CR before its newline; -1 (counted, not kept) when it is empty. */
  private lineEnd(buf: Buffer, start: number, end: number): number {
    this.lineNo += 1;
    if (end > start && buf[end - 1] === CR) end -= 1;
    return end === start ? -1 : end;
  }

  /** The line cut by the previous read, whole with the bytes of this one up to `end`: decoded now. */
  addJoined(carry: Buffer, chunk: Buffer, end: number): void {
    const whole = Buffer.concat([carry, chunk.subarray(0, end)]);
    const stop = this.lineEnd(whole, 0, whole.length);
    if (stop === -1) return;
    this.joined = whole.toString('utf8', 0, stop);
    this.bounds.push(0, 0);
    this.numbers.push(this.lineNo);
  }

  /** The lines of chunk[start, end), newline-separated (the last one ends at `end`). */
  addAll(chunk: Buffer, start: number, end: number): void {
    for (let from = start; ; ) {
      const found = chunk.indexOf(NEWLINE, from);
      const nl = found === -1 || found >= end ? end : found;
      const stop = this.lineEnd(chunk, from, nl);
      if (stop !== -1) {
        this.bounds.push(from, stop);
        this.numbers.push(this.lineNo);
      }
      if (nl === end) return;
      from = nl + 1;
    }
  }

  take(chunk: Buffer): { batch: LineBatch; lineNo: number } {
    return { batch: new LineBatch(chunk, this.bounds, this.numbers, this.joined), lineNo: this.lineNo };
  }
}

/** Yields the file's lines in batches (one per 1 MiB read); `digest` is filled in once the file has been read to the end. */
export async function* readLineBatches(file: string, digest: FileDigest, signal?: AbortSignal): AsyncGenerator<LineBatch> {
  const hash = createHash('sha256');
  const input = createReadStream(file, { highWaterMark: 1 << 20, signal });
  let carry: Buffer | null = null;
  let lineNo = 0;
  let bytes = 0;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      const last = chunk.lastIndexOf(NEWLINE);
      if (last === -1) {
        carry = carry ? Buffer.concat([carry, chunk]) : chunk;
        continue;
      }
      const builder = new BatchBuilder(lineNo);
      let from = 0;
      if (carry) {
        from = chunk.indexOf(NEWLINE) + 1;
        builder.addJoined(carry, chunk, from - 1);
      }
      if (from <= last) builder.addAll(chunk, from, last);
      carry = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : null;
      const made = builder.take(chunk);
      lineNo = made.lineNo;
      yield made.batch;
    }
    if (carry && carry.length > 0) {
      const builder = new BatchBuilder(lineNo);
      builder.addAll(carry, 0, carry.length);
      yield builder.take(carry).batch;
    }
    digest.bytes = bytes;
    digest.sha256 = hash.digest('hex');
  } finally {
    input.destroy();
  }
}

/** One staged line as a raw document (Extended JSON wrappers kept), or a StagingError naming file and line. */
function parseDocumentLine(text: string, file: string, line: number): RawDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw badLine(file, line, cause);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !('_id' in doc)) throw badLine(file, line);
  return doc as RawDocument;
}

function badLine(file: string, line: number, cause?: unknown): StagingError {
  return new StagingError('bad_ndjson', `${file}:${line}: not an Extended JSON document with an _id`, {
    context: { file, line },
    hint: 'the staged file is damaged: run `etl extract` again',
    cause,
  });
}
