// Decodes a few top-level fields of a document's BSON bytes into JS values, without decoding the
// rest: the fields a dump's query reads (matched on this side), the `_id` a resumed live cursor
// continues after or the external sort orders by. Staging itself never builds JS values
// (staging/ndjson-writer.ts writes the bytes).
import { deserialize, onDemand, type Document } from 'bson';
import type { FieldFacts } from '../staging/ndjson-writer.ts';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';
import { WideDate } from './bson-order.ts';

/** bson's decoding, but a string that is not UTF-8 decodes with U+FFFD instead of throwing (enough to match a query). */
const LENIENT_OPTIONS = Object.freeze({ ...BSON_READ_OPTIONS, validation: { utf8: false as const } });

const T_DATE = 0x09;
/** JavaScript's Date range, in milliseconds either side of the epoch. */
const JS_DATE_LIMIT = 8_640_000_000_000_000n;

/** One element: [type, nameOffset, nameLength, valueOffset, valueLength] (bson's onDemand layout). */
type Element = readonly [number, number, number, number, number];

/** The same bytes as a Buffer, not copied (the driver hands raw documents as Uint8Array views). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A document made of some top-level elements of `bytes`, in their order (the bytes themselves when all are kept). */
function projectBytes(bytes: Uint8Array, keep: ReadonlySet<string>): Buffer {
  const buf = asBuffer(bytes);
  const elements = [...onDemand.parseToElements(buf, 0)] as unknown as Element[];
  const kept = elements.filter((e) => keep.has(buf.toString('utf8', e[1], e[1] + e[2])));
  if (kept.length === elements.length) return buf;
  let size = 5;
  // An element runs from its type byte (one before the name) to the end of its value.
  for (const e of kept) size += e[3] + e[4] - (e[1] - 1);
  const out = Buffer.allocUnsafe(size);
  out.writeInt32LE(size, 0);
  let at = 4;
  for (const e of kept) at += buf.copy(out, at, e[1] - 1, e[3] + e[4]);
  out[at] = 0;
  return out;
}

/**
 * The named top-level fields as JS values (wrapper classes kept, as the server compares them). A
 * Date beyond JavaScript's range is a WideDate holding its milliseconds. Throws on bytes that are
 * not BSON.
 */
export function decodeFields(bytes: Buffer, names: ReadonlySet<string>): Document {
  const doc = deserialize(projectBytes(bytes, names), LENIENT_OPTIONS);
  for (const [name, value] of Object.entries(doc)) {
    if (value instanceof Date && Number.isNaN(value.getTime())) doc[name] = wideDateOf(bytes, name);
  }
  return doc;
}

function wideDateOf(bytes: Buffer, name: string): WideDate | Date {
  for (const e of onDemand.parseToElements(bytes, 0) as unknown as Iterable<Element>) {
    if (e[0] === T_DATE && bytes.toString('utf8', e[1], e[1] + e[2]) === name) {
      const millis = bytes.readBigInt64LE(e[3]);
      if (millis > JS_DATE_LIMIT || millis < -JS_DATE_LIMIT) return new WideDate(millis);
    }
  }
  return new Date(Number.NaN);
}

/** Bytes of the document `{_id: <value>}` for an `_id` value of `valueBytes` bytes. */
export function idDocumentSize(valueBytes: number): number {
  return 4 + 1 + 4 + valueBytes + 1;
}

/** Writes the document `{_id: <value>}` at `at` of `target`: the `_id` of BSON type `type` whose value bytes are `value`. */
export function writeIdDocument(target: Buffer, at: number, type: number, value: Buffer): void {
  const size = idDocumentSize(value.length);
  target.writeInt32LE(size, at);
  target[at + 4] = type;
  target.write('_id\0', at + 5, 'latin1');
  value.copy(target, at + 9);
  target[at + size - 1] = 0;
}

/** The `_id` the writer found (its value's bytes in `bytes`), decoded alone. */
export function idOf(bytes: Buffer, id: FieldFacts): unknown {
  const value = bytes.subarray(id.start, id.end);
  const doc = Buffer.allocUnsafe(idDocumentSize(value.length));
  writeIdDocument(doc, 0, id.type, value);
  return deserialize(doc, BSON_READ_OPTIONS)._id;
}

/** The top-level `_id` of a document, decoded alone; undefined when it has none or it cannot be decoded. */
export function topLevelId(bytes: Uint8Array): unknown {
  try {
    return deserialize(projectBytes(bytes, new Set(['_id'])), BSON_READ_OPTIONS)._id;
  } catch {
    return undefined;
  }
}
