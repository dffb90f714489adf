// MongoDB's comparison order for BSON values, for `_id`s read from a dump: what `sort({_id: 1})`
// does on the server, so a dump and the live server list documents in the same order.
// Values are as deserialized with BSON_READ_OPTIONS (Int32/Double/Long/Decimal128 wrappers kept).
import { Binary, BSONRegExp, Code, Decimal128, Double, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp, BSONSymbol } from 'bson';

/**
 * A BSON Date whose milliseconds a JavaScript Date cannot hold (|ms| > 8.64e15), for the query
 * matched on a dump's documents: bson decodes it as an Invalid Date, the server compares its int64.
 */
export class WideDate {
  constructor(readonly millis: bigint) {}
}

/** The server's canonical type order (numbers share one rank, strings and symbols another). */
export function rank(v: unknown): number {
  if (v instanceof MinKey) return 1;
  if (v === null || v === undefined) return 2;
  if (typeof v === 'number' || typeof v === 'bigint' || v instanceof Int32 || v instanceof Double || v instanceof Long || v instanceof Decimal128) return 3;
  if (typeof v === 'string' || v instanceof BSONSymbol) return 4;
  if (Array.isArray(v)) return 6;
  if (v instanceof Binary || Buffer.isBuffer(v) || v instanceof Uint8Array) return 7;
  if (v instanceof ObjectId) return 8;
  if (typeof v === 'boolean') return 9;
  if (v instanceof Date || v instanceof WideDate) return 10;
  if (v instanceof Timestamp) return 11;
  if (v instanceof BSONRegExp || v instanceof RegExp) return 12;
  // DBPointer, JavaScript code (with or without scope) sort after regular expressions.
  if (v instanceof Code) return 13;
  if (v instanceof MaxKey) return 14;
  return 5; // a plain subdocument (a DBRef is one too)
}

/**
 * The `$type` aliases of each rank, in the server's order. A type whose alias a server does not know
 * (FerretDB: symbol, minKey, maxKey, javascript…) cannot be stored there either; CORE_TYPE_ALIASES
 * are those every server tested knows.
 */
const TYPE_ALIASES_BY_RANK: readonly (readonly [number, readonly string[]])[] = [
  [1, ['minKey']],
  [2, ['null']],
  [3, ['number']],
  [4, ['string', 'symbol']],
  [5, ['object']],
  [6, ['array']],
  [7, ['binData']],
  [8, ['objectId']],
  [9, ['bool']],
  [10, ['date']],
  [11, ['timestamp']],
  [12, ['regex']],
  [13, ['dbPointer', 'javascript', 'javascriptWithScope']],
  [14, ['maxKey']],
];

export const CORE_TYPE_ALIASES: ReadonlySet<string> = new Set(['null', 'number', 'string', 'object', 'array', 'binData', 'objectId', 'bool', 'date', 'timestamp', 'regex']);

/** The `$type` aliases of every type the server sorts after `v`'s type. */
export function typeAliasesAfter(v: unknown, known: ReadonlySet<string> | null): string[] {
  const r = rank(v);
  return TYPE_ALIASES_BY_RANK.filter(([k]) => k > r)
    .flatMap(([, aliases]) => aliases)
    .filter((a) => known === null || known.has(a));
}

/** A numeric value as a number (precise enough to order; Long beyond 2^53 compared as bigint below). */
function numeric(v: unknown): number | bigint {
  if (typeof v === 'number' || typeof v === 'bigint') return v;
  if (v instanceof Int32 || v instanceof Double) return v.valueOf();
  if (v instanceof Long) return v.toBigInt();
  if (v instanceof Decimal128) return Number(v.toString());
  return Number.NaN;
}

function compareNumbers(a: number | bigint, b: number | bigint): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  const x = typeof a === 'bigint' ? Number(a) : a;
  const y = typeof b === 'bigint' ? Number(b) : b;
  // NaN sorts before every other number, as on the server.
  if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : -1;
  if (Number.isNaN(y)) return 1;
  if (x !== y) return x < y ? -1 : 1;
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    // Equal as doubles but maybe not as integers (Longs beyond 2^53).
    const bx = typeof a === 'bigint' ? a : Number.isInteger(a) ? BigInt(a) : null;
    const by = typeof b === 'bigint' ? b : Number.isInteger(b) ? BigInt(b) : null;
    if (bx !== null && by !== null) return bx < by ? -1 : bx > by ? 1 : 0;
  }
  return 0;
}

function stringBytes(v: unknown): Buffer {
  return Buffer.from(v instanceof BSONSymbol ? v.valueOf() : (v as string), 'utf8');
}

function dateMillis(v: unknown): bigint {
  if (v instanceof WideDate) return v.millis;
  const ms = (v as Date).getTime();
  return Number.isNaN(ms) ? 0n : BigInt(ms);
}

function bytesOf(v: unknown): Buffer {
  if (v instanceof Binary) return Buffer.from(v.buffer.subarray(0, v.position));
  return Buffer.from(v as Uint8Array);
}

/** Compares two BSON values in the server's order: negative, 0 or positive. */
export function compareBson(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 3:
      return compareNumbers(numeric(a), numeric(b));
    case 4:
      // The server compares strings by their UTF-8 bytes (simple binary collation).
      return Buffer.compare(stringBytes(a), stringBytes(b));
    case 5:
      return compareDocuments(a as Record<string, unknown>, b as Record<string, unknown>);
    case 6:
      return compareArrays(a as unknown[], b as unknown[]);
    case 7:
      return compareBinaries(a, b);
    case 8:
      // `.id` builds a fresh 12-byte array each call: compare those, no further copy (every dump
      // document is checked against the previous _id).
      return Buffer.compare((a as ObjectId).id, (b as ObjectId).id);
    case 9:
      return Number(a) - Number(b);
    case 10:
      return compareDates(a, b);
    case 11:
      return compareTimestamps(a as Timestamp, b as Timestamp);
    case 12:
      return compareRegExps(a as BSONRegExp, b as BSONRegExp);
    default:
      return 0;
  }
}

function compareArrays(x: unknown[], y: unknown[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const c = compareBson(x[i], y[i]);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

/** Binary data: by length, then subtype, then bytes. */
function compareBinaries(a: unknown, b: unknown): number {
  const x = bytesOf(a);
  const y = bytesOf(b);
  if (x.length !== y.length) return x.length - y.length;
  const sx = a instanceof Binary ? a.sub_type : 0;
  const sy = b instanceof Binary ? b.sub_type : 0;
  if (sx !== sy) return sx - sy;
  return Buffer.compare(x, y);
}

function compareDates(a: unknown, b: unknown): number {
  if (a instanceof Date && b instanceof Date) return Math.sign(a.getTime() - b.getTime());
  const x = dateMillis(a);
  const y = dateMillis(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareTimestamps(a: Timestamp, b: Timestamp): number {
  const x = a.toBigInt?.() ?? BigInt(a.toString());
  const y = b.toBigInt?.() ?? BigInt(b.toString());
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Regular expressions: by pattern, then options (the NUL between them puts a pattern before its longer extensions). */
function compareRegExps(x: BSONRegExp, y: BSONRegExp): number {
  return Buffer.compare(Buffer.from(`${x.pattern}\u0000${x.options}`), Buffer.from(`${y.pattern}\u0000${y.options}`));
}

function compareDocuments(a: Record<string, unknown>, b: Record<string, unknown>): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  for (let i = 0; i < Math.min(ka.length, kb.length); i += 1) {
    const va = a[ka[i]!];
    const vb = b[kb[i]!];
    const r = rank(va) - rank(vb);
    if (r !== 0) return r;
    const k = Buffer.compare(Buffer.from(ka[i]!, 'utf8'), Buffer.from(kb[i]!, 'utf8'));
    if (k !== 0) return k;
    const c = compareBson(va, vb);
    if (c !== 0) return c;
  }
  return ka.length - kb.length;
}
