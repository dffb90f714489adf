// BSON bytes the `bson` package will not write: a string with invalid UTF-8, a date no JavaScript
// Date can hold, 100,000 levels of nesting, deprecated element types. Built by serializing a valid
// document with `bson` and then changing or adding one element in its bytes (the BSON spec's
// element layout: type byte, name, NUL, value; the document's int32 length first).
import { serialize, type Document } from 'bson';

/** `doc` with the string field `field` holding `bytes` (any bytes, valid UTF-8 or not). */
export function withRawString(doc: Document, field: string, bytes: Buffer): Buffer {
  const placeholder = 'Q'.repeat(bytes.length);
  const out = Buffer.from(serialize({ ...doc, [field]: placeholder }));
  const at = out.indexOf(Buffer.from(placeholder));
  if (at === -1) throw new Error('placeholder not found');
  bytes.copy(out, at);
  return out;
}

/** `doc` with one more element appended: `type` byte, `name`, then `value` (already encoded). */
export function withElement(doc: Document, type: number, name: string, value: Buffer): Buffer {
  const base = Buffer.from(serialize(doc));
  const element = Buffer.concat([Buffer.from([type]), Buffer.from(`${name}\0`, 'utf8'), value]);
  const out = Buffer.concat([base.subarray(0, base.length - 1), element, Buffer.from([0])]);
  out.writeInt32LE(out.length, 0);
  return out;
}

/** A UTC datetime element value (type 0x09): milliseconds since the epoch as an int64. */
export function dateValue(ms: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(ms);
  return b;
}

/** An embedded document (type 0x03) value nested `depth` times: {a: {a: … {}}}. Built without recursion. */
export function nestedValue(depth: number): Buffer {
  // Each level: int32 length, 0x03, "a", NUL, <inner>, NUL (7 + 1 bytes around the inner document).
  const innermost = 5;
  const total = innermost + depth * 8;
  const out = Buffer.alloc(total);
  for (let level = 0; level < depth; level += 1) {
    const start = level * 7;
    out.writeInt32LE(total - level * 8, start);
    out[start + 4] = 0x03;
    out[start + 5] = 0x61; // "a"
    out[start + 6] = 0x00;
    out[total - 1 - level] = 0x00;
  }
  out.writeInt32LE(innermost, depth * 7);
  out[depth * 7 + 4] = 0x00;
  return out;
}

/** A BSON string value (int32 length including the NUL, bytes, NUL). */
export function stringValue(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(4);
  len.writeInt32LE(bytes.length + 1);
  return Buffer.concat([len, bytes, Buffer.from([0])]);
}

/** An embedded document value (type 0x03) of one element: `type` byte, `name`, then `value` (already encoded). */
export function documentBytes(type: number, name: string, value: Buffer): Buffer {
  const element = Buffer.concat([Buffer.from([type]), Buffer.from(`${name}\0`, 'utf8'), value]);
  const out = Buffer.concat([Buffer.alloc(4), element, Buffer.from([0])]);
  out.writeInt32LE(out.length, 0);
  return out;
}
