// The bad-input corpus: every kind of bad document the hostile-input review tried (issue 13), each
// with the one end the README's type contract gives it. A kind plants one document (or two, for
// collisions) in the clean sample; `todo` names who is fixing a kind that does not end that way yet.
import { Binary, BSONRegExp, Code, Decimal128, Double, Int32, Long, MaxKey, MinKey, serialize, Timestamp, type Document } from 'bson';
import { converted, counted, rejected, rejectedByLoad, skipped, type FinishedRun, type Outcome } from './outcomes.ts';
import { at, BAD_ID, goodThing, oid, type Sample } from './sample.ts';
import { dateValue, documentBytes, nestedValue, stringValue, withElement, withRawString } from './raw-bson.ts';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

export interface Kind {
  readonly name: string;
  readonly plant: (sample: Sample) => void;
  readonly outcome: Outcome;
  /** Who is fixing this kind, when it does not end as expected yet (node:test `todo`). */
  readonly todo?: string;
  /** Changes to the corpus pipeline.yaml for this kind. */
  readonly pipeline?: (yaml: string) => string;
}


/** A thing whose one bad field is `fields` (no tags: its link rows would only repeat the refusal). */
const thing = (fields: Document): Document => goodThing(BAD_ID, { tags: [], ...fields });
const plantThing = (fields: Document) => (s: Sample) => void s.things!.push(thing(fields));
const plantRaw = (collection: string, bytes: () => Buffer) => (s: Sample) => void s[collection]!.push(bytes());
/** `doc` without the given fields (absent, not null: bson writes an undefined value as null). */
const without = (doc: Document, ...fields: string[]): Document => Object.fromEntries(Object.entries(doc).filter(([k]) => !fields.includes(k)));

/** An extract reject of the planted document: a line in extract/<collection>.rejects.ndjson, the document not staged. */
function rejectedByExtract(collection: string, reason: string): Outcome {
  return {
    kind: 'rejected',
    adds: {},
    async check(run: FinishedRun & { extractRejects?: (c: string) => Promise<Record<string, unknown>[]> }) {
      const lines = (await run.extractRejects?.(collection)) ?? [];
      assert.ok(lines.some((l) => l.reason === reason), `${collection}: expected an extract reject for ${reason}, found ${JSON.stringify(lines)}`);
    },
  };
}

/** Both documents of a collision reported in a rejects file (transform or load), neither row loaded. */
function bothReported(table: string, ids: readonly string[], key: string): Outcome {
  return {
    kind: 'rejected',
    adds: {},
    async check(run) {
      // A document is named by a transform reject (its _id) or a load reject (documents: every _id claiming the key).
      const lines = [...(await run.transformRejects(table)), ...(await run.loadRejects(table))] as { _id?: string; documents?: string[] }[];
      const named = (id: string) => lines.some((l) => l._id === id || (l.documents ?? []).includes(id));
      for (const id of ids) assert.ok(named(id), `${table}: expected ${id} reported, found ${JSON.stringify(lines)}`);
      assert.deepEqual(await run.values(table, 'id', 'id', key), [], `no ${table} row for ${key}`);
    },
  };
}

/** `length` characters no compression shortens (hex of a SHA-256 chain): PostgreSQL's indexes get them whole. */
function incompressible(length: number, seed: string): string {
  let text = '';
  for (let block = seed; text.length < length; ) text += block = createHash('sha256').update(block).digest('hex');
  return text.slice(0, length);
}
/** Longer than any index row of PostgreSQL holds (2,704 bytes), as MongoDB 4.2+ allows in an `_id` or any field. */
const TOO_LONG_KEY = incompressible(3_000, 'too long');
/** The longest key etl accepts: 1,024 bytes (MongoDB's own index key limit before 4.2). */
const LONGEST_KEY = incompressible(1_024, 'longest');

const nested = (depth: number): string => `${'{"a": '.repeat(depth)}{}${'}'.repeat(depth)}`;

export const KINDS: readonly Kind[] = [
  // ── text columns: VARCHAR(10) label, TEXT note, VARCHAR(255) NOT NULL code ──────────────────────
  { name: 'VARCHAR(10): 11 characters', plant: plantThing({ label: 'abcdefghijk' }), outcome: rejected('things', 'too_long', 'label') },
  { name: 'VARCHAR(10): 10 emoji (10 characters)', plant: plantThing({ label: '😀'.repeat(10) }), outcome: converted('things', 'label', '😀'.repeat(10)) },
  { name: 'VARCHAR(255): 255 × é', plant: plantThing({ code: 'é'.repeat(255) }), outcome: converted('things', 'code', 'é'.repeat(255)) },
  { name: 'VARCHAR NOT NULL: empty string', plant: plantThing({ code: '' }), outcome: converted('things', 'code', '') },
  { name: 'VARCHAR NOT NULL: null', plant: plantThing({ code: null }), outcome: rejected('things', 'null_in_not_null', 'code') },
  { name: 'VARCHAR NOT NULL: absent', plant: (s) => void s.things!.push(without(thing({}), 'code')), outcome: rejected('things', 'null_in_not_null', 'code') },
  { name: 'TEXT: subdocument', plant: plantThing({ note: { a: 1 } }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: array', plant: plantThing({ note: ['a', 'b'] }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: Binary', plant: plantThing({ note: new Binary(Buffer.from([1, 2, 3]), 0) }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: UUID (Binary subtype 4)', plant: plantThing({ note: new Binary(Buffer.alloc(16, 7), 4) }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: regular expression', plant: plantThing({ note: new BSONRegExp('^a', 'i') }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: Timestamp', plant: plantThing({ note: new Timestamp({ t: 1, i: 2 }) }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: MinKey', plant: plantThing({ note: new MinKey() }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: MaxKey', plant: plantThing({ note: new MaxKey() }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: JavaScript code', plant: plantThing({ note: new Code('return 1') }), outcome: rejected('things', 'not_a_string', 'note') },
  { name: 'TEXT: Int64 beyond 2^53', plant: plantThing({ note: Long.fromString('9007199254740993') }), outcome: converted('things', 'note', '9007199254740993') },
  { name: 'TEXT: Double 12.0', plant: plantThing({ note: new Double(12) }), outcome: converted('things', 'note', '12') },
  { name: 'TEXT: Double -0', plant: plantThing({ note: new Double(-0) }), outcome: converted('things', 'note', '0') },
  { name: 'TEXT: Double NaN', plant: plantThing({ note: new Double(Number.NaN) }), outcome: rejected('things', 'not_finite', 'note') },
  { name: 'TEXT: Double -Infinity', plant: plantThing({ note: new Double(Number.NEGATIVE_INFINITY) }), outcome: rejected('things', 'not_finite', 'note') },
  { name: 'TEXT: Decimal128 1.50 (exact text)', plant: plantThing({ note: Decimal128.fromString('1.50') }), outcome: converted('things', 'note', '1.50') },
  { name: 'TEXT: Decimal128 NaN', plant: plantThing({ note: Decimal128.fromString('NaN') }), outcome: rejected('things', 'not_finite', 'note') },
  { name: 'TEXT: ObjectId', plant: plantThing({ note: oid(99) }), outcome: converted('things', 'note', oid(99).toHexString()) },
  { name: 'TEXT: Boolean', plant: plantThing({ note: true }), outcome: converted('things', 'note', 'true') },
  { name: 'TEXT: Date', plant: plantThing({ note: at(6, 23) }), outcome: converted('things', 'note', '2024-03-06T23:00:00.000Z') },
  { name: 'TEXT: Date after year 9999', plant: plantThing({ note: new Date(Date.UTC(10000, 0, 1)) }), outcome: rejected('things', 'date_out_of_range', 'note') },
  { name: 'TEXT: NUL character (nul_character: reject)', plant: plantThing({ note: 'ab\u0000cd' }), outcome: rejected('things', 'nul_character', 'note') },
  {
    name: 'TEXT: NUL character (nul_character: strip)',
    plant: plantThing({ note: 'ab\u0000cd' }),
    pipeline: (y) => y.replace('  timezone: Europe/Paris\n', '  timezone: Europe/Paris\n  nul_character: strip\n'),
    outcome: converted('things', 'note', 'abcd'),
  },
  { name: 'TEXT: huge string (12 MB document)', plant: plantThing({ note: 'x'.repeat(12 << 20) }), outcome: converted('things', 'length(note)', String(12 << 20)) },
  {
    name: 'TEXT: invalid UTF-8 (lone surrogate ED A0 80)',
    plant: plantRaw('things', () => withRawString(thing({}), 'note', Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]))),
    outcome: rejected('things', 'invalid_unicode', 'note'),
  },
  {
    name: 'TEXT: invalid UTF-8 (C3 28)',
    plant: plantRaw('things', () => withRawString(thing({}), 'note', Buffer.from([0x61, 0xc3, 0x28, 0x62]))),
    outcome: rejected('things', 'invalid_unicode', 'note'),
  },
  {
    name: 'TEXT: invalid UTF-8 in a field no table reads (dropped, the row loads)',
    plant: plantRaw('things', () => withRawString(thing({}), 'unmapped', Buffer.from([0xff, 0xfe]))),
    outcome: converted('things', 'note', 'a note'),
  },

  // ── integers: SMALLINT small, INTEGER count, BIGINT big ──────────────────────────────────────
  { name: 'INTEGER: digits in a string', plant: plantThing({ count: '+7' }), outcome: converted('things', 'count', '7') },
  { name: 'INTEGER: padded string', plant: plantThing({ count: ' 12 ' }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: "12.0"', plant: plantThing({ count: '12.0' }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: "1e3"', plant: plantThing({ count: '1e3' }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: empty string', plant: plantThing({ count: '' }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: Double with a fraction', plant: plantThing({ count: new Double(14.5) }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: Double 14.0', plant: plantThing({ count: new Double(14) }), outcome: converted('things', 'count', '14') },
  { name: 'INTEGER: Int64 2^31', plant: plantThing({ count: Long.fromNumber(2 ** 31) }), outcome: rejected('things', 'out_of_range', 'count') },
  { name: 'INTEGER: Boolean', plant: plantThing({ count: true }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: ObjectId', plant: plantThing({ count: oid(5) }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: Date', plant: plantThing({ count: at(1) }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: Double Infinity', plant: plantThing({ count: new Double(Number.POSITIVE_INFINITY) }), outcome: rejected('things', 'not_finite', 'count') },
  { name: 'INTEGER: Decimal128 1.2E+1', plant: plantThing({ count: Decimal128.fromString('1.2E+1') }), outcome: converted('things', 'count', '12') },
  { name: 'INTEGER: Decimal128 12.5', plant: plantThing({ count: Decimal128.fromString('12.5') }), outcome: rejected('things', 'not_an_integer', 'count') },
  { name: 'INTEGER: Decimal128 Infinity', plant: plantThing({ count: Decimal128.fromString('Infinity') }), outcome: rejected('things', 'not_finite', 'count') },
  {
    name: 'INTEGER: subdocument shaped like an Int32 ({"$numberInt": "7"})',
    plant: plantThing({ count: { $numberInt: '7' } }),
    outcome: rejected('things', 'not_an_integer', 'count'),
  },
  { name: 'SMALLINT: 40000', plant: plantThing({ small: new Int32(40000) }), outcome: rejected('things', 'out_of_range', 'small') },
  { name: 'SMALLINT: -32769', plant: plantThing({ small: new Int32(-32769) }), outcome: rejected('things', 'out_of_range', 'small') },
  { name: 'BIGINT: Int64 maximum', plant: plantThing({ big: Long.MAX_VALUE }), outcome: converted('things', 'big', '9223372036854775807') },
  { name: 'BIGINT: Double 2^60 (exact)', plant: plantThing({ big: new Double(2 ** 60) }), outcome: converted('things', 'big', '1152921504606846976') },
  { name: 'BIGINT: Double 2^63', plant: plantThing({ big: new Double(2 ** 63) }), outcome: rejected('things', 'out_of_range', 'big') },
  { name: 'BIGINT: Decimal128 1E+30', plant: plantThing({ big: Decimal128.fromString('1E+30') }), outcome: rejected('things', 'out_of_range', 'big') },

  // ── NUMERIC amount, NUMERIC(5,2) price ───────────────────────────────────────────────────────
  { name: 'NUMERIC: Decimal128 -1E+3', plant: plantThing({ amount: Decimal128.fromString('-1E+3') }), outcome: converted('things', 'amount', '-1000') },
  { name: 'NUMERIC: Double 0.1 (shortest text)', plant: plantThing({ amount: new Double(0.1) }), outcome: converted('things', 'amount', '0.1') },
  { name: 'NUMERIC: decimal string', plant: plantThing({ amount: '3.25' }), outcome: converted('things', 'amount', '3.25') },
  { name: 'NUMERIC: not a number', plant: plantThing({ amount: 'abc' }), outcome: rejected('things', 'not_a_number', 'amount') },
  { name: 'NUMERIC: Boolean', plant: plantThing({ amount: false }), outcome: rejected('things', 'not_a_number', 'amount') },
  { name: 'NUMERIC: Decimal128 -Infinity', plant: plantThing({ amount: Decimal128.fromString('-Infinity') }), outcome: rejected('things', 'not_finite', 'amount') },
  { name: 'NUMERIC(5,2): 123.456', plant: plantThing({ price: new Double(123.456) }), outcome: rejected('things', 'too_many_digits', 'price') },
  { name: 'NUMERIC(5,2): 12345.6', plant: plantThing({ price: new Double(12345.6) }), outcome: rejected('things', 'out_of_range', 'price') },
  { name: 'NUMERIC(5,2): Decimal128 123.450', plant: plantThing({ price: Decimal128.fromString('123.450') }), outcome: converted('things', 'price', '123.45') },

  // ── BOOLEAN active ───────────────────────────────────────────────────────────────────────────
  { name: 'BOOLEAN: the string "true"', plant: plantThing({ active: 'true' }), outcome: rejected('things', 'not_a_boolean', 'active') },
  { name: 'BOOLEAN: Int32 1', plant: plantThing({ active: new Int32(1) }), outcome: rejected('things', 'not_a_boolean', 'active') },

  // ── TIMESTAMP seen_at, DATE day ──────────────────────────────────────────────────────────────
  { name: 'TIMESTAMP: ISO 8601 string', plant: plantThing({ seen_at: '2024-03-06T23:00:00Z' }), outcome: rejected('things', 'not_a_date', 'seen_at') },
  { name: 'TIMESTAMP: a number', plant: plantThing({ seen_at: new Int32(1709766000) }), outcome: rejected('things', 'not_a_date', 'seen_at') },
  { name: 'TIMESTAMP: BSON Timestamp', plant: plantThing({ seen_at: new Timestamp({ t: 1709766000, i: 1 }) }), outcome: rejected('things', 'not_a_date', 'seen_at') },
  { name: 'TIMESTAMP: before 1970', plant: plantThing({ seen_at: new Date(Date.UTC(1969, 6, 20, 20, 17, 40)) }), outcome: converted('things', 'seen_at', '1969-07-20 20:17:40') },
  { name: 'TIMESTAMP: year 0', plant: plantThing({ seen_at: new Date('0000-06-01T00:00:00Z') }), outcome: rejected('things', 'date_out_of_range', 'seen_at') },
  { name: 'TIMESTAMP: after year 9999', plant: plantThing({ seen_at: new Date(Date.UTC(12000, 0, 1)) }), outcome: rejected('things', 'date_out_of_range', 'seen_at') },
  {
    name: 'TIMESTAMP: a date no JavaScript Date can hold (9e18 ms)',
    plant: plantRaw('things', () => withElement(without(thing({}), 'seen_at'), 0x09, 'seen_at', dateValue(9_000_000_000_000_000_000n))),
    // The reject shows the original milliseconds: the staged file must not have lost them (NaN).
    outcome: rejected('things', 'invalid_date', 'seen_at', { valueIncludes: '9000000000000000000' }),
  },
  {
    name: 'TIMESTAMP: subdocument shaped like a Date ({"$date": …})',
    plant: plantThing({ seen_at: { $date: '2021-01-01T00:00:00Z' } }),
    outcome: rejected('things', 'not_a_date', 'seen_at'),
  },
  { name: 'DATE: winter instant → the Paris day', plant: plantThing({ day: new Date('2024-03-06T23:00:00Z') }), outcome: converted('things', 'day', '2024-03-07') },
  { name: 'DATE: summer instant → the Paris day', plant: plantThing({ day: new Date('2024-07-14T22:00:00Z') }), outcome: converted('things', 'day', '2024-07-15') },
  { name: 'DATE: a string', plant: plantThing({ day: '2024-03-07' }), outcome: rejected('things', 'not_a_date', 'day') },

  // ── JSONB extra ──────────────────────────────────────────────────────────────────────────────
  { name: 'JSONB: subdocument with an array', plant: plantThing({ extra: { a: new Int32(1), b: [2.5, 'x'] } }), outcome: converted('things', 'extra', '{"a": 1, "b": [2.5, "x"]}') },
  { name: 'JSONB: dotted keys', plant: plantThing({ extra: { 'a.b': new Int32(1) } }), outcome: converted('things', 'extra', '{"a.b": 1}') },
  { name: 'JSONB: 50 levels of nesting', plant: plantThing({ extra: JSON.parse(nested(50).replace(/ /g, '')) }), outcome: converted('things', 'extra', nested(50)) },
  { name: 'JSONB: an array of 100,000 items', plant: plantThing({ extra: Array.from({ length: 100_000 }, (_, i) => new Int32(i)) }), outcome: converted('things', 'jsonb_array_length(extra)', '100000') },
  {
    name: 'JSONB: a key starting with $ stays a document (staging escape)',
    plant: plantThing({ extra: { $foo: new Int32(1) } }),
    outcome: converted('things', 'extra', '{"$etlDocument": {"$foo": 1}}'),
  },
  {
    // bson's relaxed EJSON writes a Long as a JavaScript number, which rounds 2^53 + 1 to 2^53.
    name: 'JSONB: Int64 beyond 2^53 stays exact, at any depth, beside a double and an Int32',
    plant: plantThing({ extra: { n: Long.fromString('9007199254740993'), a: [Long.fromString('-9007199254740993'), { max: Long.MAX_VALUE, min: Long.MIN_VALUE }], d: new Double(1.5), i: new Int32(7), s: Long.fromNumber(42) } }),
    outcome: converted('things', 'extra', '{"a": [-9007199254740993, {"max": 9223372036854775807, "min": -9223372036854775808}], "d": 1.5, "i": 7, "n": 9007199254740993, "s": 42}'),
  },
  {
    // A computed key: `{ __proto__: … }` would set the prototype. MongoDB stores the field like any other.
    name: 'JSONB: a `__proto__` key is kept',
    plant: plantThing({ extra: { ['__proto__']: { a: new Int32(1) }, b: 'x' } }),
    outcome: converted('things', 'extra', '{"b": "x", "__proto__": {"a": 1}}'),
  },
  { name: 'JSONB: NUL character in a string inside', plant: plantThing({ extra: { a: 'x\u0000y' } }), outcome: rejected('things', 'nul_character', 'extra') },
  {
    // bson would read the staged milliseconds into a JavaScript Date, which holds none of them, and write "NaN".
    name: 'JSONB: a Date beyond JavaScript keeps its milliseconds',
    plant: plantRaw('things', () => withElement(without(thing({}), 'extra'), 0x03, 'extra', documentBytes(0x09, 'd', dateValue(9_000_000_000_000_000_000n)))),
    outcome: converted('things', 'extra', '{"d": {"$date": {"$numberLong": "9000000000000000000"}}}'),
  },
  {
    // A DBRef to GridFS's fs.files: bson's DBRef takes "fs.files" for a database "fs" and a collection "files".
    name: 'JSONB: a DBRef to a collection whose name holds a dot, and its $db, stay as stored',
    plant: plantThing({ extra: { f: { $ref: 'fs.files', $id: new Int32(5) }, g: { $ref: 'app.logs', $id: new Int32(6), $db: 'archive' }, h: { $ref: 'users', $id: new Int32(7), $db: '' } } }),
    outcome: converted('things', 'extra', '{"f": {"$id": 5, "$ref": "fs.files"}, "g": {"$db": "archive", "$id": 6, "$ref": "app.logs"}, "h": {"$db": "", "$id": 7, "$ref": "users"}}'),
  },
  {
    name: 'a mapped field nested 100,000 levels',
    plant: plantRaw('things', () => withElement(without(thing({}), 'address'), 0x03, 'address', nestedValue(100_000))),
    outcome: rejectedByExtract('things', 'too_deep'),
  },

  // A name given twice: a JSON reader keeps one value (transform the last, the query the first).
  { name: 'a mapped field given twice in one document', plant: plantRaw('things', () => withElement(thing({ code: 'first' }), 0x02, 'code', stringValue('second'))), outcome: rejectedByExtract('things', 'duplicate_field') },
  { name: 'the _id given twice in one document', plant: plantRaw('things', () => withElement(thing({}), 0x07, '_id', Buffer.from(oid(99).id))), outcome: rejectedByExtract('things', 'duplicate_field') },
  {
    name: 'a key given twice inside a JSONB subdocument',
    plant: plantRaw('things', () => withElement(without(thing({}), 'extra'), 0x03, 'extra', withElement({ a: 'one' }, 0x02, 'a', stringValue('two')))),
    outcome: rejectedByExtract('things', 'duplicate_field'),
  },

  // ── references, base columns ─────────────────────────────────────────────────────────────────
  { name: 'a reference to a missing row (foreign key)', plant: plantThing({ owner: oid(77) }), outcome: rejectedByLoad('things', 'id', 'owner_id', oid(77).toHexString()) },
  { name: 'a reference shaped like an ObjectId ({"$oid": …})', plant: plantThing({ owner: { $oid: oid(1).toHexString() } }), outcome: rejected('things', 'not_a_string', 'owner_id') },
  { name: 'creation_date absent (created_at NOT NULL)', plant: (s) => void s.things!.push(without(thing({}), 'creation_date')), outcome: rejected('things', 'null_in_not_null', 'created_at') },
  { name: 'creation_date a string', plant: plantThing({ creation_date: '2024-03-03' }), outcome: rejected('things', 'not_a_date', 'created_at') },
  { name: 'a dotted path through an array (address is an array)', plant: plantThing({ address: [{ city: 'Lyon' }] }), outcome: converted('things', 'city', null) },
  { name: 'a dotted path through a scalar (address is a string)', plant: plantThing({ address: 'Lyon' }), outcome: converted('things', 'city', null) },

  // ── ids ──────────────────────────────────────────────────────────────────────────────────────
  { name: '_id an Int32', plant: (s) => void s.things!.push({ ...thing({}), _id: new Int32(77) }), outcome: converted('things', 'code', `T-${BAD_ID.toHexString().slice(-4)}`, { id: '77' }) },
  { name: '_id a string', plant: (s) => void s.things!.push({ ...thing({}), _id: 'thing-x' }), outcome: converted('things', 'code', `T-${BAD_ID.toHexString().slice(-4)}`, { id: 'thing-x' }) },
  { name: '_id a subdocument', plant: (s) => void s.things!.push({ ...thing({}), _id: { a: new Int32(1) } }), outcome: rejected('things', 'not_a_string', 'id', { id: '{"a":{"$numberInt":"1"}}' }) },
  { name: '_id null', plant: (s) => void s.things!.push({ ...thing({}), _id: null }), outcome: rejected('things', 'null_in_not_null', 'id', { id: 'null' }) },
  { name: 'no _id at all', plant: plantRaw('things', () => Buffer.from(serialize(without(thing({}), '_id')))), outcome: rejectedByExtract('things', 'missing_id') },
  // A key PostgreSQL cannot index: before, the whole load failed ("index row size 5368 exceeds btree version 4 maximum 2704").
  { name: '_id a string of 3,000 characters', plant: (s) => void s.things!.push({ ...thing({}), _id: TOO_LONG_KEY }), outcome: rejected('things', 'key_too_long', 'id', { id: JSON.stringify(TOO_LONG_KEY) }) },
  { name: '_id a string of 1,024 bytes (the longest key)', plant: (s) => void s.things!.push({ ...thing({}), _id: LONGEST_KEY }), outcome: converted('things', 'code', `T-${BAD_ID.toHexString().slice(-4)}`, { id: LONGEST_KEY }) },
  { name: '_id a string of 513 × é (1,026 bytes)', plant: (s) => void s.things!.push({ ...thing({}), _id: 'é'.repeat(513) }), outcome: rejected('things', 'key_too_long', 'id', { id: JSON.stringify('é'.repeat(513)) }) },
  { name: 'explode: an item id of 3,000 characters', plant: plantThing({ tags: [TOO_LONG_KEY] }), outcome: rejected('things_tags', 'key_too_long', 'owner_id', { key: 'thing_id', adds: { things: 1 } }) },
  { name: 'dedupe: a key of 3,000 characters', plant: (s) => void s.visits!.push({ _id: BAD_ID, owner: TOO_LONG_KEY, day: at(8, 23), creation_date: at(9), update_date: at(9) }), outcome: rejected('daily', 'key_too_long', 'owner_id', { key: 'owner_id' }) },
  { name: 'a reference of 3,000 characters (a missing row)', plant: plantThing({ owner: TOO_LONG_KEY }), outcome: rejectedByLoad('things', 'id', 'owner_id', TOO_LONG_KEY) },
  {
    name: 'the same _id twice in the dump',
    plant: (s) => void s.things!.push(goodThing(BAD_ID, { tags: [] }), goodThing(BAD_ID, { tags: [], note: 'second' })),
    outcome: counted('extract warns of the repeated _id', (run) => run.warnings.filter((w) => /repeat the _id/.test(w)).length, 1, { adds: { things: 1 } }),
  },
  {
    name: '_id Int32(77) and _id "77" (one key)',
    plant: (s) => void s.things!.push({ ...thing({}), _id: new Int32(77) }, { ...thing({ code: 'other' }), _id: '77' }),
    outcome: bothReported('things', ['{"$numberInt":"77"}', '"77"'], '77'),
  },
  {
    name: '_id ObjectId(X) and _id "X" (one key)',
    plant: (s) => void s.things!.push(thing({}), { ...thing({ code: 'other' }), _id: BAD_ID.toHexString() }),
    outcome: bothReported('things', [BAD_ID.toHexString(), `"${BAD_ID.toHexString()}"`], BAD_ID.toHexString()),
  },

  // ── link table (explode of things.tags), rollup (dedupe of visits), filter (events) ───────────
  { name: 'explode: a null item', plant: plantThing({ tags: [oid(1), null] }), outcome: rejectedItem({ things: 1, things_tags: 1 }) },
  { name: 'explode: a subdocument item without the id key', plant: plantThing({ tags: [{ who: oid(1) }] }), outcome: rejectedItem({ things: 1 }) },
  { name: 'explode: the array is a string', plant: plantThing({ tags: 'oops' }), outcome: rejected('things_tags', 'not_an_array', 'owner_id', { key: 'thing_id', adds: { things: 1 } }) },
  { name: 'explode: the same item twice', plant: plantThing({ tags: [oid(2), oid(2)] }), outcome: skipped('things_tags', 'duplicate_in_array', 1, { things: 1, things_tags: 1 }) },
  {
    name: 'explode: an array of 20,000 items (3 distinct)',
    plant: plantThing({ tags: Array.from({ length: 20_000 }, (_, i) => oid(1 + (i % 3))) }),
    outcome: skipped('things_tags', 'duplicate_in_array', 19_997, { things: 1, things_tags: 3 }),
  },
  { name: 'explode: an item referencing a missing row', plant: plantThing({ tags: [oid(78)] }), outcome: rejectedByLoad('things_tags', 'thing_id', 'owner_id', oid(78).toHexString(), { things: 1 }) },
  { name: 'dedupe: the key field missing', plant: (s) => void s.visits!.push({ _id: BAD_ID, day: at(8, 23), creation_date: at(9), update_date: at(9) }), outcome: skipped('daily', 'missing_owner') },
  {
    name: 'dedupe: an older document of an existing key',
    plant: (s) => void s.visits!.push({ _id: BAD_ID, owner: oid(1), day: at(6, 23), creation_date: at(5), update_date: at(5) }),
    outcome: skipped('daily', 'superseded'),
  },
  {
    name: "filter: a document outside the table's filter",
    plant: (s) => void s.events!.push({ _id: BAD_ID, __t: 'other', title: 'x', creation_date: at(1), update_date: at(1) }),
    // A full read of a dump applies the filter in extract (scanned − staged); an incremental one leaves it to transform.
    outcome: counted('left out by the filter', (run) => {
      const c = run.manifest.stages.extract!.collections.events!;
      return (c.scanned ?? c.documents) - c.documents + (run.manifest.stages.transform?.tables.specials?.skipped?.filtered ?? 0);
    }, 1, { table: 'specials' }),
  },
];

/** An explode item refused for its missing id (the parent's other items, and the parent's own row, load). */
function rejectedItem(adds: Record<string, number>): Outcome {
  return {
    kind: 'rejected',
    adds,
    async check(run) {
      const lines = (await run.transformRejects('things_tags')).filter((l) => l._id === BAD_ID.toHexString());
      assert.ok(lines.some((l) => l.reason === 'missing_item_id' && l.column === 'owner_id'), JSON.stringify(lines));
    },
  };
}

export const FERRET_KINDS: readonly string[] = [
  'VARCHAR(10): 11 characters',
  'INTEGER: Double with a fraction',
  'TEXT: Int64 beyond 2^53',
  'TEXT: NUL character (nul_character: reject)',
  'a reference to a missing row (foreign key)',
  'explode: the array is a string',
  'dedupe: the key field missing',
];

