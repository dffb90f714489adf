// Looks at a document's BSON bytes element by element, without building the JS value: to pick the
// top-level fields to keep (a dump's projection, done before decoding so a huge or broken field
// that is not read costs nothing), to read the `_id` of a document that cannot be decoded, and to
// find, in a document bson refused or decoded with loss, the strings that are not UTF-8 and the
// Dates beyond JavaScript's range. Iterative (an explicit stack), so no nesting overflows it.
import { isUtf8 } from 'node:buffer';
import { deserialize, onDemand, type Document } from 'bson';
import { BSON_READ_OPTIONS } from '../staging/ndjson.ts';

const T_STRING = 2;
const T_OBJECT = 3;
const T_ARRAY = 4;
const T_DATE = 9;
const T_REGEX = 11;
const T_DBPOINTER = 12;
const T_CODE = 13;
const T_SYMBOL = 14;
const T_CODE_W_SCOPE = 15;

/** JavaScript's Date range, in milliseconds either side of the epoch. */
const JS_DATE_LIMIT = 8_640_000_000_000_000n;

/** One element: [type, nameOffset, nameLength, valueOffset, valueLength] (bson's onDemand layout). */
type Element = readonly [number, number, number, number, number];

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function elementsOf(bytes: Uint8Array, start: number): Element[] {
  return [...onDemand.parseToElements(bytes, start)] as unknown as Element[];
}

function nameOf(buf: Buffer, e: Element): string {
  return buf.toString('utf8', e[1], e[1] + e[2]);
}

/** A document made of some top-level elements of `bytes`, in their order (the bytes themselves when all are kept). */
export function projectBytes(bytes: Uint8Array, keep: ReadonlySet<string>): Buffer {
  const buf = asBuffer(bytes);
  const elements = elementsOf(buf, 0);
  const kept = elements.filter((e) => keep.has(nameOf(buf, e)));
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

/** The top-level `_id` of a document, decoded alone; undefined when it has none or it cannot be decoded. */
export function topLevelId(bytes: Uint8Array): unknown {
  try {
    const only = projectBytes(bytes, new Set(['_id']));
    return deserialize(only, BSON_READ_OPTIONS)._id;
  } catch {
    return undefined;
  }
}

/** A path into the decoded document: keys of documents, ordinal positions in arrays. */
export type ValuePath = readonly (string | number)[];

export interface ByteFindings {
  /** A subdocument or array deeper than the limit (the walk stops there). */
  tooDeep: boolean;
  /** String values that are not UTF-8, where bson's lenient decoding put U+FFFD. */
  invalidStrings: { path: ValuePath; bytes: Buffer }[];
  /** Dates beyond JavaScript's range, with their original milliseconds. */
  wideDates: { path: ValuePath; millis: bigint }[];
  /** Invalid UTF-8 where no escape can carry it (a symbol, code, regex, DBPointer, inside a code scope): described. */
  unstageable: string | null;
}

interface Frame {
  readonly start: number;
  readonly depth: number;
  readonly path: ValuePath;
  readonly isArray: boolean;
  /** False inside a code scope: values there are not reachable in the decoded document. */
  readonly patchable: boolean;
}

/** Walks every element of the document, to `maxDepth` levels below the top. Throws on bytes that are not BSON. */
export function analyzeBytes(bytes: Uint8Array, maxDepth: number): ByteFindings {
  const buf = asBuffer(bytes);
  const found: ByteFindings = { tooDeep: false, invalidStrings: [], wideDates: [], unstageable: null };
  const stack: Frame[] = [{ start: 0, depth: 0, path: [], isArray: false, patchable: true }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    let position = 0;
    for (const e of elementsOf(buf, frame.start)) {
      const key = frame.isArray ? position : nameOf(buf, e);
      position += 1;
      const path = [...frame.path, key];
      const [type, , , at, length] = e;
      if (type === T_OBJECT || type === T_ARRAY || type === T_CODE_W_SCOPE) {
        if (frame.depth + 1 > maxDepth) {
          found.tooDeep = true;
          return found;
        }
        if (type === T_CODE_W_SCOPE) {
          const codeLength = buf.readInt32LE(at + 4);
          if (!isUtf8(buf.subarray(at + 8, at + 8 + codeLength - 1))) found.unstageable ??= `the code of field ${describe(path)}`;
          stack.push({ start: at + 8 + codeLength, depth: frame.depth + 1, path, isArray: false, patchable: false });
        } else {
          stack.push({ start: at, depth: frame.depth + 1, path, isArray: type === T_ARRAY, patchable: frame.patchable });
        }
      } else if (type === T_STRING || type === T_CODE || type === T_SYMBOL || type === T_DBPOINTER) {
        const text = buf.subarray(at + 4, at + 4 + buf.readInt32LE(at) - 1);
        if (isUtf8(text)) continue;
        if (type === T_STRING && frame.patchable) found.invalidStrings.push({ path, bytes: Buffer.from(text) });
        else found.unstageable ??= `field ${describe(path)} (a ${type === T_STRING ? 'string in a code scope' : type === T_CODE ? 'code' : type === T_SYMBOL ? 'symbol' : 'DBPointer'} value)`;
      } else if (type === T_REGEX) {
        if (!isUtf8(buf.subarray(at, at + length))) found.unstageable ??= `field ${describe(path)} (a regular expression)`;
      } else if (type === T_DATE) {
        const millis = buf.readBigInt64LE(at);
        if ((millis > JS_DATE_LIMIT || millis < -JS_DATE_LIMIT) && frame.patchable) found.wideDates.push({ path, millis });
      }
    }
  }
  return found;
}

function describe(path: ValuePath): string {
  return path.map(String).join('.');
}

/** Replaces the value at `path` in a decoded document (a DBRef's `$id` is its `oid`). */
export function setAtPath(doc: Document, path: ValuePath, value: unknown): void {
  let cur: unknown = doc;
  for (let i = 0; i < path.length; i += 1) {
    const last = i === path.length - 1;
    let holder = cur as Record<string | number, unknown>;
    let key = path[i]!;
    const tag = (cur as { _bsontype?: unknown })._bsontype;
    if (tag === 'DBRef') {
      const ref = cur as unknown as { oid: unknown; fields: Record<string, unknown> };
      if (key === '$id') {
        holder = ref as unknown as Record<string, unknown>;
        key = 'oid';
      } else holder = ref.fields;
    }
    if (last) holder[key] = value;
    else cur = holder[key];
  }
}
