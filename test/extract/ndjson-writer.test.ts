// The staging encoder writes, for every ordinary document, byte for byte what extract staged before
// it: bson's `EJSON.stringify(deserialize(bytes, BSON_READ_OPTIONS), {relaxed: false})`. Checked
// on every document of a sample database (every collection the app has) and on documents built to
// hold every BSON type bson writes faithfully, with the values where text formats go wrong
// (escapes, control characters, non-ASCII, doubles, int64 and date extremes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Binary,
  BSONRegExp,
  BSONSymbol,
  Code,
  Decimal128,
  deserialize,
  Double,
  EJSON,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  serialize,
  Timestamp,
  type Document,
} from 'bson';
import { generateSample } from '../../sample/generate.ts';
import { BSON_READ_OPTIONS } from '../../staging/ndjson.ts';
import { FieldSet, NdjsonWriter, StagingRefusal } from '../../staging/ndjson-writer.ts';
import { documentOf, elementBytes, makeUsers } from './dump-writer.ts';

/** What extract staged before the writer: bson's decoding, then its canonical stringify. */
const before = (bytes: Buffer): string => `${EJSON.stringify(deserialize(bytes, BSON_READ_OPTIONS), { relaxed: false })}\n`;

function written(bytes: Buffer, keep: FieldSet | null = null): string {
  const w = new NdjsonWriter({ chunkBytes: 64 });
  w.writeLine(bytes, keep);
  return w.take().toString('utf8');
}

test('every document of a sample database is written exactly as before', () => {
  const sample = generateSample({ scale: 6000, seed: 7 });
  let documents = 0;
  for (const c of sample.collections) {
    for (const doc of c.documents()) {
      const bytes = Buffer.from(serialize(doc));
      const a = written(bytes);
      const b = before(bytes);
      if (a !== b) assert.equal(a, b, `${c.name} ${String(doc._id)}`);
      documents += 1;
    }
  }
  assert.ok(documents >= 6000, `${documents} documents`);
});

const STRINGS = ['', 'plain', 'quote " and backslash \\', 'controls \u0000\u0001\b\t\n\f\r\u001f\u007f', 'é à ü ß', '日本語', '😀 emoji', '\u2028\u2029', '</script>', 'a'.repeat(3000)];
const DOUBLES = [0, -0, 1, -1, 0.1, 1 / 3, 1e21, 1e-7, 123456789.125, 2 ** 53, 2 ** 60, -(2 ** 63), 1.7976931348623157e308, 5e-324, Number.NaN, Infinity, -Infinity, 14.0];

test('every BSON type bson writes faithfully, with the values text formats get wrong, is written exactly as before', () => {
  const docs: Document[] = [
    ...makeUsers(20, { decimal: true }),
    ...STRINGS.map((s, i) => ({ _id: new Int32(i), s, [s.slice(0, 20).replaceAll('\u0000', '') || 'empty']: s, nested: { s, list: [s, { s }] } })),
    ...DOUBLES.map((d, i) => ({ _id: `d${i}`, d: new Double(d), list: [new Double(d)] })),
    {
      _id: new ObjectId('0123456789abcdefABCDEF01'),
      ints: [new Int32(0), new Int32(-2147483648), new Int32(2147483647)],
      longs: [Long.fromString('0'), Long.fromString('-9223372036854775808'), Long.fromString('9223372036854775807'), Long.fromNumber(2 ** 53 + 1), Long.fromNumber(-(2 ** 53) - 1)],
      dates: [new Date(0), new Date(-1), new Date(-62135596800000), new Date(253402300799999), new Date(8.64e15), new Date(-8.64e15)],
      decimals: ['0', '-0', '1.50', '1E+3', '-1.234E-5', 'NaN', 'Infinity', '-Infinity', '9.999999999999999999999999999999999E+6144'].map((t) => Decimal128.fromString(t)),
      binaries: [new Binary(Buffer.from([]), 0), new Binary(Buffer.from([0, 255, 1]), 0), new Binary(Buffer.alloc(16, 7), 4), new Binary(Buffer.from('xy'), 0x80), new Binary(Buffer.from('old'), 2)],
      regexes: [new BSONRegExp('^a.*"b\\\\', 'mix'), new BSONRegExp('', '')],
      timestamps: [new Timestamp({ t: 0, i: 0 }), new Timestamp({ t: 4294967295, i: 4294967295 })],
      code: new Code('function () { return "x"; }'),
      scoped: new Code('f(x)', { x: new Int32(1), s: { t: 'u' } }),
      symbol: new BSONSymbol('sym'),
      keys: [new MinKey(), new MaxKey()],
      flags: [true, false, null],
      empty: {},
      emptyList: [],
      deep: { a: { b: { c: [[[{ d: 'e' }]]] } } },
    },
  ];
  for (const doc of docs) {
    const bytes = Buffer.from(serialize(doc));
    assert.equal(written(bytes), before(bytes), `document ${String(doc._id)}`);
  }
});

test('a projection keeps the named top-level fields in the document order, as the server does', () => {
  const bytes = Buffer.from(serialize({ z: 1, _id: 2, a: { x: 1 }, b: 'no', 'é': 3 }));
  assert.equal(written(bytes, new FieldSet(['_id', 'a', 'z', 'é'])), '{"z":{"$numberInt":"1"},"_id":{"$numberInt":"2"},"a":{"x":{"$numberInt":"1"}},"é":{"$numberInt":"3"}}\n');
});

test('the staging escapes: $-keyed subdocuments (DBRefs excepted), strings that are not UTF-8, dates beyond JavaScript', () => {
  const dbRef = { $ref: 'users', $id: new ObjectId('65f000000000000000000001') };
  const bytes = Buffer.from(serialize({ _id: 1, $top: { $numberInt: '7' }, ref: dbRef, fake: { $ref: 5, $id: 1 }, list: [{ $oid: 'x' }], scoped: new Code('f', { $a: 1 }) }));
  assert.equal(
    written(bytes),
    '{"_id":{"$numberInt":"1"},"$top":{"$etlDocument":{"$numberInt":"7"}},' +
      '"ref":{"$ref":"users","$id":{"$oid":"65f000000000000000000001"}},' +
      '"fake":{"$etlDocument":{"$ref":{"$numberInt":"5"},"$id":{"$numberInt":"1"}}},' +
      '"list":[{"$etlDocument":{"$oid":"x"}}],' +
      '"scoped":{"$code":"f","$scope":{"$etlDocument":{"$a":{"$numberInt":"1"}}}}}\n',
  );
  const bad = documentOf([elementBytes('_id', 1), Buffer.concat([Buffer.from([2]), Buffer.from('s\0'), Buffer.from([4, 0, 0, 0, 0xed, 0xa0, 0x80, 0])])]);
  assert.equal(written(bad), '{"_id":{"$numberInt":"1"},"s":{"$etlInvalidUtf8":"7aCA"}}\n');
  const badKey = documentOf([elementBytes('_id', 1), Buffer.concat([Buffer.from([0x0a, 0x61, 0xff, 0])])]);
  assert.throws(() => written(badKey), (e: unknown) => e instanceof StagingRefusal && e.reason === 'invalid_utf8' && /field name/.test(e.message));
});

test('a field name given twice in one document (at the top, in a subdocument, in an array\'s) is refused: no reader could tell which value is the document\'s', () => {
  const element = (name: string, value: unknown) => elementBytes(name, value);
  const subdocument = (elements: Buffer[]) => Buffer.concat([Buffer.from([3]), Buffer.from('sub\0'), documentOf(elements)]);
  const arrayOf = (doc: Buffer) => Buffer.concat([Buffer.from([4]), Buffer.from('list\0'), documentOf([Buffer.concat([Buffer.from([3]), Buffer.from('0\0'), doc])])]);
  const cases: [string, Buffer, string][] = [
    ['_id twice', documentOf([element('_id', 1), element('a', 'x'), element('_id', 2)]), '_id'],
    ['a top-level field twice', documentOf([element('_id', 1), element('code', 'first'), element('code', 'second')]), 'code'],
    ['a key twice in a subdocument', documentOf([element('_id', 1), subdocument([element('a', 'one'), element('a', 'two')])]), 'sub.a'],
    ['a key twice in a document inside an array', documentOf([element('_id', 1), arrayOf(documentOf([element('k', 1), element('k', 1)]))]), 'list.0.k'],
  ];
  for (const [what, bytes, field] of cases) {
    assert.throws(
      () => written(bytes),
      (e: unknown) => e instanceof StagingRefusal && e.reason === 'duplicate_field' && e.message.includes(`"${field}"`),
      what,
    );
  }
  // A wide document (its names kept otherwise beyond 64): 200 distinct names pass, the 200th repeating the 3rd does not.
  const wide = (last: string) => documentOf([element('_id', 1), ...Array.from({ length: 199 }, (_, i) => element(`f${i}`, i)), element(last, 0)]);
  assert.equal(JSON.parse(written(wide('f199'))).f199.$numberInt, '0');
  assert.throws(() => written(wide('f2')), (e: unknown) => e instanceof StagingRefusal && e.reason === 'duplicate_field' && e.message.includes('"f2"'));
  // Only what is staged counts: a field the projection drops may repeat; an array's indexes are not names.
  assert.equal(written(documentOf([element('_id', 1), element('x', 1), element('x', 2)]), new FieldSet(['_id'])), '{"_id":{"$numberInt":"1"}}\n');
  const sameNames = documentOf([element('_id', 1), subdocument([element('a', 1)]), Buffer.concat([Buffer.from([3]), Buffer.from('other\0'), documentOf([element('a', 2)])])]);
  assert.equal(written(sameNames), '{"_id":{"$numberInt":"1"},"sub":{"a":{"$numberInt":"1"}},"other":{"a":{"$numberInt":"2"}}}\n');
});

/** A seeded generator of documents nesting every type bson writes faithfully, at random. */
function randomDocuments(count: number, seed: number): Document[] {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const text = () => pick(STRINGS).slice(0, 1 + Math.floor(next() * 40)) + String.fromCodePoint(32 + Math.floor(next() * 0x2000));
  const scalar = (): unknown =>
    pick([
      () => text(),
      () => new Int32((next() * 2 ** 32) | 0),
      () => Long.fromBits((next() * 2 ** 32) | 0, (next() * 2 ** 32) | 0),
      () => new Double(pick([next() * 1e6, -next(), Math.round(next() * 1e4), ...DOUBLES])),
      () => new Date(Math.round((next() - 0.5) * 2e13)),
      () => new ObjectId(Buffer.from(Array.from({ length: 12 }, () => Math.floor(next() * 256)))),
      () => next() < 0.5,
      () => null,
      () => new Binary(Buffer.from(text()), pick([0, 4, 5, 0x80])),
      () => Decimal128.fromString(`${Math.round(next() * 1e6)}.${Math.round(next() * 100)}`),
      () => new Timestamp({ t: Math.floor(next() * 2 ** 32), i: Math.floor(next() * 2 ** 32) }),
    ])();
  const value = (depth: number): unknown => {
    const r = next();
    if (depth < 5 && r < 0.15) return Array.from({ length: Math.floor(next() * 5) }, () => value(depth + 1));
    if (depth < 5 && r < 0.3) return Object.fromEntries(Array.from({ length: Math.floor(next() * 5) }, () => [text().replace(/^\$/, '_').replaceAll('\u0000', ''), value(depth + 1)]));
    return scalar();
  };
  return Array.from({ length: count }, (_, i) => ({ _id: new Int32(i), ...Object.fromEntries(Array.from({ length: 1 + Math.floor(next() * 8) }, (_, k) => [`f${k}`, value(0)])) }));
}

test('2,000 random documents of nested values of every type are written exactly as before', () => {
  for (const doc of randomDocuments(2_000, 12345)) {
    const bytes = Buffer.from(serialize(doc));
    const a = written(bytes);
    if (a !== before(bytes)) assert.equal(a, before(bytes), `document ${String(doc._id)}`);
  }
});
