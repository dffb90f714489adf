// The NDJSON codec of staged extracts: one document a line in canonical MongoDB Extended JSON, so
// ObjectId, Date, Int32/Int64/Double, Decimal128 and Binary survive the trip through a text file.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { EJSON, type Document } from 'bson';

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

/** One NDJSON line (with its newline). */
export function encodeDocument(doc: Document): string {
  return `${EJSON.stringify(doc, { relaxed: false })}\n`;
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
