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

export interface LineBatch {
  /** 1-based line number of lines[0]. */
  readonly firstLine: number;
  /** Non-empty lines, without their newline; `lineNumbers[i]` is the line number of lines[i]. */
  readonly lines: readonly string[];
  readonly lineNumbers: readonly number[];
}

export interface FileDigest {
  bytes: number;
  sha256: string | null;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/** Lines of one read, decoded one by one (see readLineBatches), with their numbers. */
class BatchBuilder {
  lines: string[] = [];
  numbers: number[] = [];
  private first = 0;

  constructor(private lineNo: number) {
    this.first = lineNo + 1;
  }

  /** The line held by buf[start, end) (no newline inside): one CR before the newline is dropped, an empty line skipped. */
  add(buf: Buffer, start: number, end: number): void {
    this.lineNo += 1;
    if (end > start && buf[end - 1] === CR) end -= 1;
    if (end === start) return;
    this.lines.push(buf.toString('utf8', start, end));
    this.numbers.push(this.lineNo);
  }

  /** The lines of buf[start, end), newline-separated (the last one ends at `end`). */
  addAll(buf: Buffer, start: number, end: number): void {
    for (let from = start; ; ) {
      const nl = buf.indexOf(NEWLINE, from);
      if (nl === -1 || nl >= end) return this.add(buf, from, end);
      this.add(buf, from, nl);
      from = nl + 1;
    }
  }

  take(): { batch: LineBatch; lineNo: number } {
    return { batch: { firstLine: this.first, lines: this.lines, lineNumbers: this.numbers }, lineNo: this.lineNo };
  }
}

/**
 * Yields the file's lines in batches; `digest` is filled in once the file has been read to the end.
 *
 * Each line is decoded from its own bytes (a newline byte is never inside a UTF-8 character), not
 * sliced from its chunk decoded whole: one character beyond Latin-1 made a whole 1 MiB chunk a
 * two-byte string, and every line sliced from it too, which JSON.parse reads slower than the one-byte
 * string of an ASCII line. Decoding per line is the same text, and cost 10–20 % less (decode, split
 * and parse) on the bench's 200,000 documents.
 */
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
        // The line cut by the previous read: its bytes joined before decoding.
        const nl = chunk.indexOf(NEWLINE);
        const joined = Buffer.concat([carry, chunk.subarray(0, nl)]);
        builder.add(joined, 0, joined.length);
        from = nl + 1;
      }
      if (from <= last) builder.addAll(chunk, from, last);
      carry = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : null;
      const made = builder.take();
      lineNo = made.lineNo;
      yield made.batch;
    }
    if (carry && carry.length > 0) {
      const builder = new BatchBuilder(lineNo);
      builder.addAll(carry, 0, carry.length);
      yield builder.take().batch;
    }
    digest.bytes = bytes;
    digest.sha256 = hash.digest('hex');
  } finally {
    input.destroy();
  }
}

/** One staged line as a raw document (Extended JSON wrappers kept), or a StagingError naming file and line. */
export function parseDocumentLine(text: string, file: string, line: number): RawDocument {
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
