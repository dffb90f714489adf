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

/** Yields the file's lines in batches; `digest` is filled in once the file has been read to the end. */
export async function* readLineBatches(file: string, digest: FileDigest, signal?: AbortSignal): AsyncGenerator<LineBatch> {
  const hash = createHash('sha256');
  const input = createReadStream(file, { highWaterMark: 1 << 20, signal });
  let carry: Buffer | null = null;
  let lineNo = 0;
  let bytes = 0;
  const split = (text: string): LineBatch => {
    const parts = text.split('\n');
    const lines: string[] = [];
    const numbers: number[] = [];
    const first = lineNo + 1;
    for (const part of parts) {
      lineNo += 1;
      const line = part.charCodeAt(part.length - 1) === 13 /* \r */ ? part.slice(0, -1) : part;
      if (line.length === 0) continue;
      lines.push(line);
      numbers.push(lineNo);
    }
    return { firstLine: first, lines, lineNumbers: numbers };
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      const last = chunk.lastIndexOf(NEWLINE);
      if (last === -1) {
        carry = carry ? Buffer.concat([carry, chunk]) : chunk;
        continue;
      }
      // Decode up to the last newline only: a multi-byte character cut by the chunk stays whole.
      const head = carry ? Buffer.concat([carry, chunk.subarray(0, last)]) : chunk.subarray(0, last);
      carry = last + 1 < chunk.length ? Buffer.from(chunk.subarray(last + 1)) : null;
      yield split(head.toString('utf8'));
    }
    if (carry && carry.length > 0) yield split(carry.toString('utf8'));
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
