// The NDJSON codec of staged extracts: one document a line in canonical MongoDB Extended JSON, so
// ObjectId, Date, Int32/Int64/Double, Decimal128 and Binary survive the trip through a text file.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { EJSON, type Document } from 'bson';
import { StagingError } from '../model/errors.ts';
import { encodeStagedDocument, scanDocument } from './ndjson-escape.ts';

/**
 * How documents are deserialized from BSON, on the live server and in dumps alike. Keeping BSON
 * wrapper types (no promotion) is what makes the NDJSON of a dump byte-identical to the NDJSON of
 * the live server, and keeps 5.0 a Double and 5 an Int32.
 */
export const BSON_READ_OPTIONS = Object.freeze({
  promoteValues: false,
  promoteLongs: false,
  promoteBuffers: false,
  bsonRegExp: true,
});

/** One NDJSON line (with its newline), with the staging escapes where a value needs one (ndjson-escape.ts). */
export function encodeDocument(doc: Document): string {
  return encodeStagedDocument(doc, scanDocument(doc));
}

/** Parses one line back into BSON values (ObjectId, Date, Int32, Double, Long, Decimal128…). */
export function decodeDocument(line: string, where?: { file: string; line: number }): Document {
  try {
    return EJSON.parse(line, { relaxed: false }) as Document;
  } catch (cause) {
    throw new StagingError('bad_ndjson', `${where ? `${where.file}:${where.line}: ` : ''}not a valid Extended JSON document`, {
      context: where ? { file: where.file, line: where.line } : {},
      hint: 'the staged file is damaged: run `etl extract` again or check it with `etl verify`',
      cause,
    });
  }
}

/** The lines of an NDJSON file with their 1-based numbers, read with backpressure. */
export async function* readNdjsonLines(file: string, signal?: AbortSignal): AsyncGenerator<{ line: number; text: string }> {
  const input = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20, signal });
  const rl = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line += 1;
      if (text.length === 0) continue;
      yield { line, text };
    }
  } finally {
    rl.close();
    input.destroy();
  }
}
