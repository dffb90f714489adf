// Reading canonical MongoDB Extended JSON values straight from JSON.parse output.
//
// Why not EJSON.parse: it revives every value of every document into BSON classes (~54k documents/s
// on one core for a users document), while plain JSON.parse runs ~5× faster and a table reads a
// handful of fields. The staged NDJSON is canonical EJSON (staging/ndjson.ts), so each BSON type is
// a one-key wrapper object whose key starts with `$`; we interpret only the values a column reads.
// The relaxed spellings (`{"$date": "2024-…Z"}`, bare JSON numbers) are accepted too, so a
// hand-written fixture means what it says.
//
// Two wrappers are the staging format's own (staging/ndjson-escape.ts): `{"$etlDocument": {…}}` is
// an embedded document whose keys start with `$` (a real subdocument {"$numberInt": "7"} is a
// document, never the Int32 7), and `{"$etlInvalidUtf8": "<base64>"}` a string whose bytes are not
// UTF-8, which every column rejects (invalid_unicode).
import { EJSON, type Long } from 'bson';
import { ESCAPED_DOCUMENT_KEY, INVALID_UTF8_KEY } from '../staging/ndjson-escape.ts';

export type ValueKind =
  | 'missing' // the field is absent (undefined)
  | 'null'
  | 'string'
  | 'boolean'
  | 'int32'
  | 'int64'
  | 'double'
  | 'decimal128'
  | 'number' // a bare JSON number (relaxed EJSON)
  | 'objectId'
  | 'date'
  | 'document' // a subdocument, escaped or not: read its fields with documentFields()
  | 'array'
  | 'invalidUtf8' // a string whose bytes are not UTF-8
  | 'other'; // Binary, RegExp, Timestamp, MinKey, Code…: no column type reads these, except JSONB

/** A parsed NDJSON document: plain JSON with EJSON wrappers left in place. */
export type RawDocument = Record<string, unknown>;

const WRAPPERS: Readonly<Record<string, ValueKind>> = {
  $oid: 'objectId',
  $date: 'date',
  $numberInt: 'int32',
  $numberLong: 'int64',
  $numberDouble: 'double',
  $numberDecimal: 'decimal128',
  $binary: 'other',
  $uuid: 'other',
  $regularExpression: 'other',
  $regex: 'other',
  $timestamp: 'other',
  $minKey: 'other',
  $maxKey: 'other',
  $code: 'other',
  $symbol: 'other',
  $dbPointer: 'other',
  $undefined: 'other',
  [ESCAPED_DOCUMENT_KEY]: 'document',
  [INVALID_UTF8_KEY]: 'invalidUtf8',
};

/** The fields of a value of kind 'document' (the escape wrapper's content, or the object itself). */
export function documentFields(v: unknown): RawDocument {
  const escaped = (v as Record<string, unknown>)[ESCAPED_DOCUMENT_KEY];
  return escaped !== undefined && typeof escaped === 'object' && escaped !== null ? (escaped as RawDocument) : (v as RawDocument);
}

/** True for the staged form of a string that is not UTF-8. */
export function isInvalidUtf8(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as Record<string, unknown>)[INVALID_UTF8_KEY] !== undefined;
}

export function kindOf(v: unknown): ValueKind {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number':
      return 'number';
    case 'object': {
      if (Array.isArray(v)) return 'array';
      // A wrapper's only (or first) key starts with `$`; a DBRef ({$ref, $id}) is a document.
      for (const key in v as object) {
        if (key.charCodeAt(0) !== 36 /* $ */) return 'document';
        return WRAPPERS[key] ?? 'document';
      }
      return 'document';
    }
    default:
      return 'other';
  }
}

/** Lower-case hex of an ObjectId wrapper, or null when it is malformed. */
export function objectIdHex(v: unknown): string | null {
  const hex = (v as { $oid?: unknown }).$oid;
  if (typeof hex !== 'string' || hex.length !== 24) return null;
  let upper = false;
  for (let i = 0; i < 24; i += 1) {
    const c = hex.charCodeAt(i);
    if ((c >= 48 && c <= 57) || (c >= 97 && c <= 102)) continue; // 0-9 a-f
    if (c >= 65 && c <= 70) upper = true; // A-F: valid, lower-cased below
    else return null;
  }
  return upper ? hex.toLowerCase() : hex;
}

/** Milliseconds since the epoch of a `$date` wrapper (canonical, relaxed or legacy), NaN if unreadable. */
export function dateMillis(v: unknown): number {
  const inner = (v as { $date?: unknown }).$date;
  if (typeof inner === 'object' && inner !== null) {
    const long = (inner as { $numberLong?: unknown }).$numberLong;
    // Number('') is 0 and Number(' 1') is 1: only digits (and a sign) are a date.
    if (typeof long !== 'string' || long.length === 0) return Number.NaN;
    for (let i = long.charCodeAt(0) === 45 ? 1 : 0; i < long.length; i += 1) {
      const c = long.charCodeAt(i);
      if (c < 48 || c > 57) return Number.NaN;
    }
    return Number(long);
  }
  if (typeof inner === 'string') return Date.parse(inner);
  if (typeof inner === 'number') return inner;
  return Number.NaN;
}

/** The decimal text inside `$numberInt` / `$numberLong` / `$numberDouble` / `$numberDecimal`. */
export function numberText(v: unknown, key: '$numberInt' | '$numberLong' | '$numberDouble' | '$numberDecimal'): string | null {
  const text = (v as Record<string, unknown>)[key];
  return typeof text === 'string' ? text : null;
}

/** Canonical EJSON text of a raw value (what the extract wrote for it). */
export function canonicalText(v: unknown): string {
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v);
  } catch {
    // Nested too deep to write (extract never stages such a value; a hand-made file might).
    return '"(a value nested too deep to show)"';
  }
}

/** True when the value holds one of the staging format's own wrappers somewhere. */
function holdsEscape(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(holdsEscape);
  for (const key in v) {
    if (key === ESCAPED_DOCUMENT_KEY || key === INVALID_UTF8_KEY) return true;
    if (holdsEscape((v as RawDocument)[key])) return true;
  }
  return false;
}

/** A raw value with BSON wrappers revived, escaped documents kept as `{"$etlDocument": {…}}` with their keys taken literally. */
function reviveKeepingEscapes(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(reviveKeepingEscapes);
  const kind = kindOf(v);
  if (kind === 'document') {
    const fields = documentFields(v);
    // fromEntries, not out[key] = …: a `__proto__` key stays a key.
    const out = Object.fromEntries(Object.keys(fields).map((key) => [key, reviveKeepingEscapes(fields[key])]));
    return fields === v ? out : { [ESCAPED_DOCUMENT_KEY]: out };
  }
  return (EJSON.deserialize({ v } as never, { relaxed: false }) as { v: unknown }).v;
}

// Values bson's relaxed EJSON would change, written by etl itself instead:
// - an Int64: bson writes a Long as a JavaScript number (Long.toExtendedJSON → toNumber), which rounds
//   every Int64 beyond ±2^53 (9007199254740993 → 9007199254740992); the relaxed EJSON spec's Int64 is
//   the integer itself, and JSONB keeps a JSON number exactly;
// - a Date beyond what a JavaScript Date holds (|ms| > 8.64e15, staged with its milliseconds): bson
//   reads it into a Date that holds none of them and writes "NaN"; the relaxed spec's form for a date
//   outside 1970–9999 is the canonical one, `{"$date": {"$numberLong": "<ms>"}}`;
// - a DBRef (a document, as staged: `$ref`, `$id`, `$db`, other fields): bson's DBRef reads a dotted
//   `$ref` ("fs.files", a collection name) as a database and a collection, drops an empty `$db` and
//   reorders the keys; written here key by key, as stored, each value by these same rules.
// Each is swapped, before bson sees the value, for a marker string: NUL then its JSON text. bson passes
// strings through untouched, and jsonText writes a marker as that text. No other string may hold a
// NUL: markExact refuses one (unreachable from the JSONB converter, which strips or rejects NUL first:
// jsonb cannot hold U+0000).
const MARK = '\u0000';

/** JavaScript Date's limit in milliseconds either side of the epoch. */
const JS_DATE_LIMIT = 8.64e15;

/** The canonical `$numberLong` text of a date beyond JavaScript's range, else null. */
function dateBeyondJavaScript(v: unknown): string | null {
  const inner = (v as { $date?: unknown }).$date;
  const text = typeof inner === 'object' && inner !== null ? (inner as { $numberLong?: unknown }).$numberLong : undefined;
  if (typeof text !== 'string' || !/^-?\d+$/.test(text)) return null;
  const ms = BigInt(text);
  return ms > BigInt(JS_DATE_LIMIT) || ms < -BigInt(JS_DATE_LIMIT) ? text : null;
}

/** A document bson would revive into its DBRef class ($ref a string beside $id), staged unescaped. */
function isDbRef(v: RawDocument): boolean {
  return typeof v.$ref === 'string' && v.$id !== undefined && v.$id !== null;
}

/** A raw value with each value bson would change replaced by its marker, counted in `found`. */
function markExact(v: unknown, found: { marks: number }): unknown {
  if (typeof v === 'string') {
    if (v.includes(MARK)) throw new Error('a JSON value holds U+0000, which would read as a marker');
    return v;
  }
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map((item) => markExact(item, found));
  const kind = kindOf(v);
  if (kind === 'int64') {
    found.marks += 1;
    return MARK + (EJSON.deserialize({ v } as never, { relaxed: false }) as { v: Long }).v.toString();
  }
  if (kind === 'date') {
    const ms = dateBeyondJavaScript(v);
    if (ms === null) return v;
    found.marks += 1;
    return `${MARK}{"$date":{"$numberLong":${JSON.stringify(ms)}}}`;
  }
  // A document (escaped or not, a DBRef), or a wrapper holding values ($code's $scope): walk its fields.
  const fields = kind === 'document' ? documentFields(v) : (v as RawDocument);
  if (kind === 'document' && fields === v && isDbRef(fields)) {
    found.marks += 1;
    return `${MARK}{${Object.keys(fields).map((key) => `${JSON.stringify(key)}:${relaxedText(fields[key])}`).join(',')}}`;
  }
  // fromEntries, not out[key] = …: a `__proto__` key stays a key.
  const out = Object.fromEntries(Object.keys(fields).map((key) => [key, markExact(fields[key], found)]));
  return fields === v ? out : { [ESCAPED_DOCUMENT_KEY]: out };
}

/** JSON text of a JSON.parse result, byte for byte as JSON.stringify writes it, except a marker: its text. */
function jsonText(v: unknown): string {
  if (typeof v === 'string') return v.startsWith(MARK) ? v.slice(1) : JSON.stringify(v);
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  const fields = v as RawDocument;
  return `{${Object.keys(fields).map((key) => `${JSON.stringify(key)}:${jsonText(fields[key])}`).join(',')}}`;
}

/**
 * Relaxed EJSON text of a raw value (JSONB columns): `{"$date": "…"}`, plain numbers, `{"$oid": …}`,
 * an Int64 as its exact integer, a Date beyond JavaScript and a DBRef as stored. An escaped document
 * stays escaped, so JSONB cannot confuse it with the value it looks like.
 */
export function relaxedText(v: unknown): string {
  // Rare path (JSONB columns): revive through the official codec so the relaxed form is bson's own.
  const found = { marks: 0 };
  const marked = markExact(v, found);
  if (typeof marked === 'string' && marked.startsWith(MARK)) return marked.slice(1);
  const revived = holdsEscape(marked) ? reviveKeepingEscapes(marked) : (EJSON.deserialize({ v: marked } as never, { relaxed: false }) as { v: unknown }).v;
  // No marker: bson's text as it is (the marker path costs a parse and a second writer).
  if (found.marks === 0) return EJSON.stringify(revived as never, { relaxed: true });
  return jsonText((EJSON.serialize({ v: revived } as never, { relaxed: true }) as { v: unknown }).v);
}

/** A field by dotted path: `a.b` reads `{a: {b: …}}`; an array or BSON value on the way → absent. */
export function compilePath(path: string): (doc: RawDocument) => unknown {
  const parts = path.split('.');
  if (parts.length === 1) {
    const key = parts[0]!;
    return (doc) => doc[key];
  }
  return (doc) => {
    let cur: unknown = doc;
    for (const part of parts) {
      if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || kindOf(cur) !== 'document') return undefined;
      cur = documentFields(cur)[part];
    }
    return cur;
  };
}
