// The hostile value grammar of the live randomized proof (values-randomized.test.ts): what a field
// mapped to a column of some SQL type may hold when the data drifts from its schema, what an array
// feeding a link table may hold, and what an `_id` may be. Each value has a label, so what FerretDB
// refuses to store is tallied by kind and reported (those kinds are covered through the mongodump
// path by test/hostile/corpus.test.ts and dump-fuzz.test.ts).
//
// Left out because FerretDB 1.24.2 refuses to store them (probed: NaN closes the connection,
// ±Infinity: "infinity values are not allowed", a key starting with `$` or holding `.`: "invalid
// key", an array inside an array: "nested arrays are not supported"), nor has Decimal128: NaN and
// ±Infinity in any field, subdocuments shaped like Extended JSON wrappers (`{"$oid": …}`), dotted
// keys, nested arrays, Decimal128 values.
// FerretDB also takes the string of an ObjectId's hex for that ObjectId as an `_id` (E11000 on the
// second insert; MongoDB keeps them apart): the twin `ObjectId(X)` / `"X"` is tallied as refused
// here, and proved through dumps (corpus.test.ts) and staged runs (test/load/exact-mirror.test.ts).
import { Binary, BSONRegExp, Double, Int32, Long, ObjectId, Timestamp, type Document } from 'mongodb';
import type { Rng } from '../../../sample/prng.ts';
import type { SqlType } from '../../../model/types.ts';

/** A field removed ($unset), not set to null. */
export const MISSING = Symbol('missing');

/** What a value is drawn with: the seeded stream and the documents there are. */
export interface Draw {
  readonly rng: Rng;
  /** A live `_id` (of any BSON type) of a collection, or null when it has none. */
  someId(collection: string): unknown;
  /** A live ObjectId `_id` of a collection, or null when it has none. */
  someObjectId(collection: string): ObjectId | null;
}

export interface Labelled {
  readonly label: string;
  readonly value: unknown;
}

type Maker = readonly [label: string, make: (d: Draw) => unknown];

const DAY = 86_400_000;
const yearDate = (year: number): Date => {
  const d = new Date(Date.UTC(2000, 0, 1));
  d.setUTCFullYear(year);
  return d;
};
const deep = (depth: number): Document => {
  let v: Document = { leaf: new Int32(1) };
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
};

/** Values of the wrong BSON type, or at the edge of every type, whatever the column. */
const ANY: readonly Maker[] = [
  ['null', () => null],
  ['missing', () => MISSING],
  ['true', () => true],
  ['false', () => false],
  ['Int32 7', () => new Int32(7)],
  ['Double 2.5', () => new Double(2.5)],
  ['Double -0', () => new Double(-0)],
  ['Long 2^53+1', () => Long.fromString('9007199254740993')],
  ['empty string', () => ''],
  ['whitespace', () => ' \t '],
  ['Date before 1970', () => new Date(-20 * 365 * DAY - 1)],
  ['ObjectId', (d) => d.someObjectId('users') ?? new ObjectId()],
  ['array of mixed types', () => [new Int32(1), 'a', null, { b: true }, new Double(-0)]],
  ['empty array', () => []],
  ['subdocument', () => ({ a: new Int32(1), b: 'x' })],
  ['subdocument 60 levels deep', () => deep(60)],
  ['Binary', () => new Binary(Buffer.from([0, 1, 2, 255]), 0)],
  ['regular expression', () => new BSONRegExp('^a.*', 'i')],
  ['Timestamp', () => new Timestamp({ t: 1_700_000_000, i: 1 })],
];

/** Strings that break CSV, COPY, JSON, SQL or a length check. */
const STRINGS = (length: number | null): Maker[] => [
  ['string with NUL', () => 'a\u0000b'],
  ['string of control characters', () => '\u0001\u0007\u001b\u007f'],
  ['string with CR LF', () => 'line 1\r\nline 2\n'],
  ['string with a lone CR', () => 'a\rb'],
  ['string with quotes', () => `"double" 'single' "" ''`],
  ['string with backslashes', () => 'C:\\new\\table\\'],
  ['string with commas and tabs', () => 'a,b;c\td,"e"'],
  ['string \\N', () => '\\N'],
  ['string \\.', () => '\\.'],
  ['string NULL', () => 'NULL'],
  ['string null', () => 'null'],
  ['string looking like {"$oid": …}', (d) => `{"$oid":"${(d.someObjectId('users') ?? new ObjectId()).toHexString()}"}`],
  ['string looking like SQL', () => `x'); DROP TABLE users; --`],
  ['string of non-BMP emoji', () => '😀👍🏽🇫🇷'],
  ['string with U+FFFF and U+FEFF', () => '\uffff\ufeffz'],
  ['string with RTL override', () => 'abc\u202edef'],
  ['string of 2000 characters', () => 'x'.repeat(2000)],
  ...(length === null
    ? []
    : ([
        [`string of ${length} é (fits)`, () => 'é'.repeat(length)],
        [`string of ${length} emoji (fits: characters, not UTF-16 units)`, () => '😀'.repeat(length)],
        [`string of ${length + 1} characters`, () => 'y'.repeat(length + 1)],
        [`string of ${length} characters and a NUL`, () => `${'z'.repeat(length - 1)}\u0000`],
      ] as Maker[])),
];

const INTEGER_RANGES = {
  smallint: [-32768, 32767],
  integer: [-(2 ** 31), 2 ** 31 - 1],
  bigint: [null, null],
} as const;

/** Integers at and beyond the column's bounds, in every numeric BSON type, and strings of digits. */
function integers(kind: 'smallint' | 'integer' | 'bigint'): Maker[] {
  const [min, max] = INTEGER_RANGES[kind];
  const out: Maker[] = [
    ['Long 2^63-1', () => Long.MAX_VALUE],
    ['Long -2^63', () => Long.MIN_VALUE],
    ['Double 2^63', () => new Double(2 ** 63)],
    ['Double 1e300', () => new Double(1e300)],
    ['Double 14.0', () => new Double(14)],
    ['Double 14.5', () => new Double(14.5)],
    ['Double -0.0', () => new Double(-0)],
    ['Double 2^53', () => new Double(2 ** 53)],
    ['Long 12', () => Long.fromNumber(12)],
    ['string "12"', () => '12'],
    ['string "+7"', () => '+7'],
    ['string "007"', () => '007'],
    ['string "-0"', () => '-0'],
    ['string " 12 "', () => ' 12 '],
    ['string "12.0"', () => '12.0'],
    ['string "1e3"', () => '1e3'],
    ['string "0x1F"', () => '0x1F'],
    ['string of 30 digits', () => '123456789012345678901234567890'],
    ['string "9223372036854775808"', () => '9223372036854775808'],
    ['string "-9223372036854775808"', () => '-9223372036854775808'],
    ['string "٣" (Arabic-Indic digit)', () => '٣'],
  ];
  if (min !== null && max !== null) {
    out.push(
      [`${kind} min`, () => (kind === 'smallint' ? new Int32(min) : new Int32(min))],
      [`${kind} max`, () => new Int32(max)],
      [`${kind} min - 1`, () => (kind === 'smallint' ? new Int32(min - 1) : Long.fromNumber(min - 1))],
      [`${kind} max + 1`, () => (kind === 'smallint' ? new Int32(max + 1) : Long.fromNumber(max + 1))],
      [`${kind} max + 1 as a Double`, () => new Double(max + 1)],
      [`${kind} max as a Long`, () => Long.fromNumber(max)],
    );
  }
  return out;
}

const BOOLEANS: readonly Maker[] = [
  ['string "true"', () => 'true'],
  ['string "false"', () => 'false'],
  ['Int32 1', () => new Int32(1)],
  ['Int32 0', () => new Int32(0)],
  ['Double 1.0', () => new Double(1)],
];

/** Dates at the edges of the calendar, of the time zone's rules and of JavaScript's range; and non-dates. */
const DATES: readonly Maker[] = [
  ['Date 1969-12-31T23:59:59.999Z', () => new Date(-1)],
  ['Date 1900-01-01', () => new Date(Date.UTC(1900, 0, 1))],
  ['Date 1911-03-10T23:50:00Z (Paris LMT switch)', () => new Date(Date.UTC(1911, 2, 10, 23, 50))],
  ['Date year 1', () => yearDate(1)],
  ['Date year 0', () => yearDate(0)],
  ['Date year -1', () => yearDate(-1)],
  ['Date year 9999 end', () => new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999))],
  ['Date year 10000', () => yearDate(10000)],
  ['Date +8.64e15 ms', () => new Date(8.64e15)],
  ['Date -8.64e15 ms', () => new Date(-8.64e15)],
  ['Date 2024-03-31T01:00:00Z (Paris DST start)', () => new Date(Date.UTC(2024, 2, 31, 1))],
  ['Date 2024-10-26T22:00:00Z (Paris midnight before DST end)', () => new Date(Date.UTC(2024, 9, 26, 22))],
  ['Date with milliseconds', () => new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 7))],
  ['string "2024-03-07"', () => '2024-03-07'],
  ['string "2024-03-07T00:00:00Z"', () => '2024-03-07T00:00:00Z'],
  ['string "0000-00-00"', () => '0000-00-00'],
  ['string "2024-02-30"', () => '2024-02-30'],
  ['Int32 seconds', () => new Int32(1_709_856_000)],
  ['Long milliseconds', () => Long.fromNumber(1_709_856_000_000)],
  ['Double milliseconds', () => new Double(1_709_856_000_000.5)],
];

const GENERIC_WEIGHT = 0.4;

/** A hostile value for a field mapped to a column of `type` (a reference column: see `referenceValue`). */
export function valueFor(type: SqlType, d: Draw): Labelled {
  const specific = typeSpecific(type);
  const [label, make] = specific.length > 0 && !d.rng.chance(GENERIC_WEIGHT) ? d.rng.pick(specific) : d.rng.pick([...ANY, ...STRINGS(null)]);
  return { label, value: make(d) };
}

function typeSpecific(type: SqlType): Maker[] {
  switch (type.kind) {
    case 'varchar':
      return STRINGS(type.length);
    case 'text':
      return STRINGS(null);
    case 'smallint':
    case 'integer':
    case 'bigint':
      return integers(type.kind);
    case 'boolean':
      return [...BOOLEANS];
    case 'timestamp':
    case 'date':
      return [...DATES];
    default:
      return [];
  }
}

/**
 * A value for a reference (a VARCHAR foreign key holding the referenced document's `_id` as text):
 * the id in another form (its hex as a string, upper-case hex), an `_id` of another BSON type, a
 * populated subdocument, a dangling ObjectId, or anything from the grammar.
 */
export function referenceValue(ref: string, type: SqlType, d: Draw): Labelled {
  const oid = d.someObjectId(ref);
  const makers: Maker[] = [
    ['reference: hex string of a live ObjectId', () => (oid ?? new ObjectId()).toHexString()],
    ['reference: upper-case hex string of a live ObjectId', () => (oid ?? new ObjectId()).toHexString().toUpperCase()],
    ['reference: a live _id of any type', () => d.someId(ref) ?? MISSING],
    ['reference: populated subdocument', () => ({ _id: oid ?? new ObjectId() })],
    ['reference: dangling ObjectId', () => new ObjectId()],
    ['reference: Int32 5', () => new Int32(5)],
    ['reference: string "5"', () => '5'],
  ];
  if (d.rng.chance(0.6)) {
    const [label, make] = d.rng.pick(makers);
    return { label, value: make(d) };
  }
  return valueFor(type, d);
}

/** One item of a link table's array: ids in every form, and what is not an id. */
export function arrayItem(ref: string, idKey: string | null, dateKey: string | null, d: Draw): Labelled {
  const oid = () => d.someObjectId(ref) ?? new ObjectId();
  const makers: Maker[] = [
    ['item: live ObjectId', oid],
    ['item: hex string of a live ObjectId', () => oid().toHexString()],
    ['item: a live _id of any type', () => d.someId(ref) ?? oid()],
    ['item: null', () => null],
    ['item: dangling ObjectId', () => new ObjectId()],
    ['item: Int32 5', () => new Int32(5)],
    ['item: string "5"', () => '5'],
    ['item: empty string', () => ''],
    ['item: string with NUL', () => 'a\u0000b'],
    ['item: Date', () => new Date(Date.UTC(2024, 0, 1))],
    ['item: subdocument without the id key', () => ({ other: oid() })],
    ['item: empty subdocument', () => ({})],
  ];
  if (idKey) {
    makers.push(
      ['item: subdocument with its id', () => ({ _id: new ObjectId(), [idKey]: oid(), ...(dateKey ? { [dateKey]: new Date(Date.now() - d.rng.below(300) * DAY) } : {}) })],
      ['item: subdocument whose id is null', () => ({ [idKey]: null })],
      ['item: subdocument whose id is a subdocument', () => ({ [idKey]: { _id: oid() } })],
    );
    if (dateKey) {
      makers.push(
        ['item: subdocument dated year 10000', () => ({ [idKey]: oid(), [dateKey]: yearDate(10000) })],
        ['item: subdocument dated before 1970', () => ({ [idKey]: oid(), [dateKey]: new Date(-DAY * 400) })],
        ['item: subdocument dated by a string', () => ({ [idKey]: oid(), [dateKey]: '2024-01-01' })],
      );
    }
  }
  const [label, make] = d.rng.pick(makers);
  return { label, value: make(d) };
}

/** A whole array field: a few hostile items, duplicates among them; or not an array at all. */
export function arrayValue(ref: string, idKey: string | null, dateKey: string | null, d: Draw): Labelled {
  if (d.rng.chance(0.15)) {
    const [label, make] = d.rng.pick<Maker>([
      ['array: a string of ids', () => `${oid(d, ref)},${oid(d, ref)}`],
      ['array: a subdocument', () => ({ 0: oid(d, ref) })],
      ['array: null', () => null],
      ['array: missing', () => MISSING],
      ['array: Int32', () => new Int32(3)],
    ]);
    return { label, value: make(d) };
  }
  const items: unknown[] = [];
  const labels: string[] = [];
  for (let i = d.rng.int(1, 6); i > 0; i--) {
    const item = arrayItem(ref, idKey, dateKey, d);
    items.push(item.value);
    labels.push(item.label);
  }
  if (d.rng.chance(0.3)) items.push(items[d.rng.below(items.length)]);
  return { label: `array of ${labels.join(', ')}`, value: items };
}

const oid = (d: Draw, ref: string): string => (d.someObjectId(ref) ?? new ObjectId()).toHexString();

/**
 * An `_id` for an inserted document: strings that break CSV and SQL, numbers of every BSON type,
 * subdocuments; `twin` (when given) an existing ObjectId whose hex a string `_id` repeats.
 */
export function idValue(d: Draw, twin: ObjectId | null): Labelled {
  const n = d.rng.int(1, 40);
  const makers: Maker[] = [
    ['_id: string', () => `hostile-${d.rng.below(1e9)}`],
    ['_id: empty string', () => ''],
    ['_id: whitespace', () => ' '],
    ['_id: string with NUL', () => `nul\u0000${d.rng.below(1e6)}`],
    ['_id: string with CR LF and a comma', () => `a,b\r\nc${d.rng.below(1e6)}`],
    ['_id: string with quotes and backslashes', () => `"\\${d.rng.below(1e6)}'`],
    ['_id: string \\N', () => '\\N'],
    ['_id: string NULL', () => 'NULL'],
    ['_id: non-BMP emoji', () => `😀${d.rng.below(1e6)}`],
    ['_id: string of 300 characters', () => `${'i'.repeat(290)}${d.rng.below(1e9)}`],
    ['_id: upper-case hex of a live ObjectId', () => (twin ?? new ObjectId()).toHexString().toUpperCase()],
    ['_id: hex string of a live ObjectId', () => (twin ?? new ObjectId()).toHexString()],
    [`_id: Int32`, () => new Int32(n)],
    [`_id: Long`, () => Long.fromNumber(n)],
    [`_id: Long beyond 2^53`, () => Long.fromString('9007199254740993')],
    [`_id: Double n.0`, () => new Double(n)],
    [`_id: Double with a fraction`, () => new Double(n + 0.5)],
    ['_id: Double -0', () => new Double(-0)],
    [`_id: string of digits`, () => String(n)],
    ['_id: string "-0"', () => '-0'],
    ['_id: Date', () => new Date(Date.UTC(2024, 0, 1 + n))],
    ['_id: ISO string of a Date', () => new Date(Date.UTC(2024, 0, 1 + n)).toISOString()],
    ['_id: true', () => true],
    ['_id: string "true"', () => 'true'],
    ['_id: subdocument', () => ({ a: new Int32(n) })],
    ['_id: null', () => null],
  ];
  const [label, make] = d.rng.pick(makers);
  return { label, value: make(d) };
}
