// The NDJSON codec of staged extracts: one document a line in canonical MongoDB Extended JSON, so
// ObjectId, Date, Int32/Int64/Double, Decimal128 and Binary survive the trip through a text file.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { serialize, type Document } from 'bson';
import { NdjsonWriter } from './ndjson-writer.ts';

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

const lineWriter = new NdjsonWriter({ chunkBytes: 1 << 12 });

/**
 * One NDJSON line (with its newline): the document serialized to BSON and written by the staging
 * encoder (ndjson-writer.ts), so it is the line extract would stage for the same document.
 */
export function encodeDocument(doc: Document): string {
  lineWriter.writeLine(Buffer.from(serialize(doc)));
  return lineWriter.take().toString('utf8');
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
