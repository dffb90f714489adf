// The type contract (README.md, "The type contract"), value by value: the cell each staged value becomes,
// or the reason it is rejected. Values are written as they appear in the canonical NDJSON.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { timestampCell } from '../../staging/csv.ts';
import type { SqlType } from '../../model/types.ts';
import { columnConverter, Rejection, timestampText, typeConverter, type NulTally } from '../../mapping/convert.ts';

const oid = (hex: string) => ({ $oid: hex });
const date = (iso: string) => ({ $date: { $numberLong: String(Date.parse(iso)) } });
const int32 = (n: number) => ({ $numberInt: String(n) });
const long = (s: string) => ({ $numberLong: s });
const double = (s: string) => ({ $numberDouble: s });
const decimal = (s: string) => ({ $numberDecimal: s });

function convert(type: SqlType, value: unknown, o: { nul?: 'reject' | 'strip'; timezone?: string; tally?: NulTally } = {}): string | null {
  const c = typeConverter(type, { timezone: o.timezone ?? 'Europe/Paris', nulCharacter: o.nul ?? 'reject' }, o.tally ?? { stripped: false });
  const out = c(value);
  return out instanceof Rejection ? `REJECT:${out.reason}` : out;
}

const VARCHAR = (length: number | null): SqlType => ({ kind: 'varchar', length });

describe('VARCHAR / TEXT', () => {
  test('counts characters as PostgreSQL does and rejects, never truncates, a longer value', () => {
    assert.equal(convert(VARCHAR(255), 'é'.repeat(255)), 'é'.repeat(255));
    assert.equal(convert(VARCHAR(255), 'é'.repeat(256)), 'REJECT:too_long');
    // An emoji is one character (two UTF-16 units).
    assert.equal(convert(VARCHAR(3), '😀😀😀'), '😀😀😀');
    assert.equal(convert(VARCHAR(3), '😀😀😀😀'), 'REJECT:too_long');
    assert.equal(convert(VARCHAR(5), 'abcdef'), 'REJECT:too_long');
    assert.equal(convert(VARCHAR(null), 'x'.repeat(100_000)), 'x'.repeat(100_000));
    assert.equal(convert({ kind: 'text' }, 'a,b\n"c"'), 'a,b\n"c"');
  });
  test('keeps the empty string apart from NULL', () => {
    assert.equal(convert(VARCHAR(10), ''), '');
    const nullable = columnConverter({ name: 'c', sqlType: VARCHAR(10), sqlTypeText: 'VARCHAR(10)', nullable: true, primaryKey: false, source: { kind: 'field', path: 'c' }, foreignKey: null, line: 1 }, { timezone: 'UTC', nulCharacter: 'reject' }, { stripped: false });
    assert.equal(nullable(null), null);
    assert.equal(nullable(undefined), null);
    assert.equal(nullable(''), '');
    const notNull = columnConverter({ name: 'c', sqlType: VARCHAR(10), sqlTypeText: 'VARCHAR(10)', nullable: false, primaryKey: false, source: { kind: 'field', path: 'c' }, foreignKey: null, line: 1 }, { timezone: 'UTC', nulCharacter: 'reject' }, { stripped: false });
    assert.equal((notNull(null) as Rejection).reason, 'null_in_not_null');
    assert.equal((notNull(undefined) as Rejection).reason, 'null_in_not_null');
    assert.equal(notNull(''), '');
  });
  test('writes scalars as text: ObjectId as lower-case hex, numbers as their shortest text', () => {
    assert.equal(convert(VARCHAR(null), oid('65F0C0FFEE0000000000ABCD')), '65f0c0ffee0000000000abcd');
    assert.equal(convert(VARCHAR(null), double('3.5')), '3.5');
    assert.equal(convert(VARCHAR(null), double('12.0')), '12');
    assert.equal(convert(VARCHAR(null), double('-0.0')), '0');
    assert.equal(convert(VARCHAR(null), double('1.0E+21')), '1e+21');
    assert.equal(convert(VARCHAR(null), int32(12)), '12');
    assert.equal(convert(VARCHAR(null), long('9007199254740993')), '9007199254740993');
    assert.equal(convert(VARCHAR(null), decimal('1.50')), '1.50');
    assert.equal(convert(VARCHAR(null), true), 'true');
    assert.equal(convert(VARCHAR(null), date('2024-03-06T23:00:00Z')), '2024-03-06T23:00:00.000Z');
    assert.equal(convert(VARCHAR(null), 12), '12'); // a relaxed (bare) number
  });
  test('rejects what is not a scalar', () => {
    assert.equal(convert(VARCHAR(null), { a: 1 }), 'REJECT:not_a_string');
    assert.equal(convert(VARCHAR(null), ['a']), 'REJECT:not_a_string');
    assert.equal(convert(VARCHAR(null), { $binary: { base64: 'AA==', subType: '00' } }), 'REJECT:not_a_string');
    assert.equal(convert(VARCHAR(null), double('NaN')), 'REJECT:not_finite');
    assert.equal(convert(VARCHAR(null), double('Infinity')), 'REJECT:not_finite');
    assert.equal(convert(VARCHAR(null), oid('xyz')), 'REJECT:invalid_bson');
  });
  test('NUL: rejected by default, stripped and reported under strip', () => {
    assert.equal(convert(VARCHAR(null), 'a\u0000b'), 'REJECT:nul_character');
    const tally = { stripped: false };
    assert.equal(convert(VARCHAR(2), 'a\u0000b', { nul: 'strip', tally }), 'ab');
    assert.equal(tally.stripped, true);
    assert.equal(convert({ kind: 'jsonb' }, { a: 'x\u0000' }), 'REJECT:nul_character');
    assert.equal(convert({ kind: 'jsonb' }, { a: 'x\u0000' }, { nul: 'strip' }), '{"a":"x"}');
  });
  test('a lone surrogate is rejected (UTF-8 output would silently turn it into U+FFFD)', () => {
    assert.equal(convert(VARCHAR(null), 'a\ud800b'), 'REJECT:invalid_unicode');
  });
});

describe('integers', () => {
  test('SMALLINT / INTEGER / BIGINT accept Int32, Long, integral Double and Decimal128, range-checked', () => {
    const S: SqlType = { kind: 'smallint' };
    const I: SqlType = { kind: 'integer' };
    const B: SqlType = { kind: 'bigint' };
    assert.equal(convert(S, int32(32767)), '32767');
    assert.equal(convert(S, int32(32768)), 'REJECT:out_of_range');
    assert.equal(convert(S, int32(-32768)), '-32768');
    assert.equal(convert(S, int32(-1)), '-1');
    assert.equal(convert(I, long('2147483647')), '2147483647');
    assert.equal(convert(I, long('2147483648')), 'REJECT:out_of_range');
    assert.equal(convert(B, long('-9223372036854775808')), '-9223372036854775808');
    assert.equal(convert(B, double('1152921504606846976')), '1152921504606846976'); // 2^60 exactly
    assert.equal(convert(B, double('1.0E+19')), 'REJECT:out_of_range');
    assert.equal(convert(S, double('14.0')), '14');
    assert.equal(convert(S, double('-0.0')), '0');
    assert.equal(convert(S, double('14.5')), 'REJECT:not_an_integer');
    assert.equal(convert(S, double('NaN')), 'REJECT:not_finite');
    assert.equal(convert(S, double('-Infinity')), 'REJECT:not_finite');
    assert.equal(convert(I, decimal('12')), '12');
    assert.equal(convert(I, decimal('12.000')), '12');
    assert.equal(convert(I, decimal('1.2E+1')), '12');
    assert.equal(convert(I, decimal('1200E-2')), '12');
    assert.equal(convert(I, decimal('12.5')), 'REJECT:not_an_integer');
    assert.equal(convert(I, decimal('NaN')), 'REJECT:not_finite');
    assert.equal(convert(I, decimal('1E+40')), 'REJECT:out_of_range');
  });
  test('numeric strings: exactly digits with an optional sign; anything else is rejected', () => {
    const I: SqlType = { kind: 'integer' };
    assert.equal(convert(I, '12'), '12');
    assert.equal(convert(I, '-12'), '-12');
    assert.equal(convert(I, '+12'), '12');
    assert.equal(convert(I, '007'), '7');
    assert.equal(convert(I, ' 12 '), 'REJECT:not_an_integer');
    assert.equal(convert(I, '12.0'), 'REJECT:not_an_integer');
    assert.equal(convert(I, '1e3'), 'REJECT:not_an_integer');
    assert.equal(convert(I, ''), 'REJECT:not_an_integer');
    assert.equal(convert(I, '99999999999'), 'REJECT:out_of_range');
    assert.equal(convert(I, true), 'REJECT:not_an_integer');
    assert.equal(convert(I, oid('65f0c0ffee0000000000abcd')), 'REJECT:not_an_integer');
    assert.equal(convert(I, { a: 1 }), 'REJECT:not_an_integer');
  });
});

describe('NUMERIC', () => {
  test('keeps Decimal128 exact and checks precision and scale', () => {
    const N: SqlType = { kind: 'numeric', precision: null, scale: null };
    const N52: SqlType = { kind: 'numeric', precision: 5, scale: 2 };
    assert.equal(convert(N, decimal('1.50')), '1.50');
    assert.equal(convert(N, decimal('-1E+3')), '-1E+3');
    assert.equal(convert(N, double('0.1')), '0.1');
    assert.equal(convert(N, int32(7)), '7');
    assert.equal(convert(N, long('123456789012345678')), '123456789012345678');
    assert.equal(convert(N, '3.25'), '3.25');
    assert.equal(convert(N, 'abc'), 'REJECT:not_a_number');
    assert.equal(convert(N, decimal('Infinity')), 'REJECT:not_finite');
    assert.equal(convert(N52, decimal('123.45')), '123.45');
    assert.equal(convert(N52, decimal('123.450')), '123.450');
    assert.equal(convert(N52, decimal('1.234')), 'REJECT:too_many_digits');
    assert.equal(convert(N52, decimal('1234.5')), 'REJECT:out_of_range');
    assert.equal(convert(N52, double('0.30000000000000004')), 'REJECT:too_many_digits');
  });
});

describe('BOOLEAN', () => {
  test('only BSON booleans', () => {
    const T: SqlType = { kind: 'boolean' };
    assert.equal(convert(T, true), 'true');
    assert.equal(convert(T, false), 'false');
    assert.equal(convert(T, 'true'), 'REJECT:not_a_boolean');
    assert.equal(convert(T, int32(1)), 'REJECT:not_a_boolean');
    assert.equal(convert(T, int32(0)), 'REJECT:not_a_boolean');
  });
});

describe('TIMESTAMP', () => {
  const T: SqlType = { kind: 'timestamp' };
  test('a BSON Date becomes UTC wall time with milliseconds', () => {
    assert.equal(convert(T, date('2024-03-06T23:00:00.123Z')), '2024-03-06 23:00:00.123');
    assert.equal(convert(T, { $date: '2024-03-06T23:00:00Z' }), '2024-03-06 23:00:00.000'); // relaxed spelling
    assert.equal(convert(T, date('1969-07-20T20:17:40Z')), '1969-07-20 20:17:40.000');
    assert.equal(convert(T, date('0001-01-01T00:00:00Z')), '0001-01-01 00:00:00.000');
    assert.equal(convert(T, date('9999-12-31T23:59:59.999Z')), '9999-12-31 23:59:59.999');
  });
  test('strings, numbers, invalid and out-of-range dates are rejected', () => {
    assert.equal(convert(T, '2024-03-06T23:00:00Z'), 'REJECT:not_a_date');
    assert.equal(convert(T, int32(5)), 'REJECT:not_a_date');
    assert.equal(convert(T, { $date: { $numberLong: '9999999999999999999' } }), 'REJECT:invalid_date');
    assert.equal(convert(T, { $date: { $numberLong: '-62135596800001' } }), 'REJECT:date_out_of_range'); // year 0
    assert.equal(convert(T, { $date: { $numberLong: '253402300800000' } }), 'REJECT:date_out_of_range'); // year 10000
    assert.equal(convert(T, { $date: 'not a date' }), 'REJECT:invalid_date');
  });
  test('timestampText writes what staging/csv.ts timestampCell writes', () => {
    for (let ms = -62135596800000; ms < 253402300799999; ms += 7_777_777_777_7 + 123) {
      assert.equal(timestampText(ms), timestampCell(new Date(ms)), String(ms));
    }
    for (const ms of [0, -1, 1, 86_399_999, -86_400_001, 951_782_400_000]) assert.equal(timestampText(ms), timestampCell(new Date(ms)));
  });
});

describe('DATE in Europe/Paris', () => {
  const D: SqlType = { kind: 'date' };
  test('a day stored as local midnight is that Paris day, winter and summer', () => {
    assert.equal(convert(D, date('2024-03-06T23:00:00Z')), '2024-03-07');
    assert.equal(convert(D, date('2024-07-14T22:00:00Z')), '2024-07-15');
  });
  test('both sides of both DST changes (last Sunday of March and of October)', () => {
    // 31 March 2024: 02:00 CET → 03:00 CEST, at 01:00 UTC.
    assert.equal(convert(D, date('2024-03-29T23:00:00Z')), '2024-03-30'); // Saturday, winter
    assert.equal(convert(D, date('2024-03-30T23:00:00Z')), '2024-03-31'); // Sunday midnight, still winter
    assert.equal(convert(D, date('2024-03-31T00:59:59.999Z')), '2024-03-31');
    assert.equal(convert(D, date('2024-03-31T22:00:00Z')), '2024-04-01'); // Monday midnight, summer
    assert.equal(convert(D, date('2024-03-31T21:59:59.999Z')), '2024-03-31');
    // 27 October 2024: 03:00 CEST → 02:00 CET, at 01:00 UTC.
    assert.equal(convert(D, date('2024-10-25T22:00:00Z')), '2024-10-26'); // Saturday, summer
    assert.equal(convert(D, date('2024-10-26T22:00:00Z')), '2024-10-27'); // Sunday midnight, still summer
    assert.equal(convert(D, date('2024-10-27T23:00:00Z')), '2024-10-28'); // Monday midnight, winter
    assert.equal(convert(D, date('2024-10-27T22:59:59.999Z')), '2024-10-27');
    assert.equal(convert(D, date('2024-10-27T00:30:00Z')), '2024-10-27');
    assert.equal(convert(D, date('2024-10-27T01:30:00Z')), '2024-10-27');
  });
  test('before 1970 and before summer time existed (1960: UTC+1 all year)', () => {
    assert.equal(convert(D, date('1960-06-30T23:00:00Z')), '1960-07-01');
    assert.equal(convert(D, date('1960-06-30T22:59:59Z')), '1960-06-30');
    assert.equal(convert(D, date('1969-12-31T23:00:00Z')), '1970-01-01');
  });
  test('another zone, and UTC', () => {
    assert.equal(convert(D, date('2024-03-06T23:00:00Z'), { timezone: 'UTC' }), '2024-03-06');
    assert.equal(convert(D, date('2024-03-06T15:00:00Z'), { timezone: 'Pacific/Auckland' }), '2024-03-07');
  });
  test('rejections', () => {
    assert.equal(convert(D, '2024-03-07'), 'REJECT:not_a_date');
    assert.equal(convert(D, { $date: { $numberLong: 'x' } }), 'REJECT:invalid_date');
  });
});

describe('JSONB', () => {
  test('a subdocument or an array becomes relaxed Extended JSON text', () => {
    const J: SqlType = { kind: 'jsonb' };
    assert.equal(convert(J, { a: int32(1), b: [double('2.5'), 'x'], c: oid('65f0c0ffee0000000000abcd') }), '{"a":1,"b":[2.5,"x"],"c":{"$oid":"65f0c0ffee0000000000abcd"}}');
    assert.equal(convert(J, { d: date('2024-03-06T23:00:00Z') }), '{"d":{"$date":"2024-03-06T23:00:00Z"}}');
    assert.equal(convert(J, 'text'), '"text"');
    assert.equal(convert(J, [int32(1), null]), '[1,null]');
  });
  test('an Int64 is written as its exact integer, beyond 2^53 too, at any depth (bson relaxed EJSON would round it)', () => {
    const J: SqlType = { kind: 'jsonb' };
    assert.equal(convert(J, long('9007199254740993')), '9007199254740993');
    assert.equal(convert(J, { n: long('9007199254740993'), m: long('-9007199254740993') }), '{"n":9007199254740993,"m":-9007199254740993}');
    assert.equal(convert(J, [long('9223372036854775807'), long('-9223372036854775808')]), '[9223372036854775807,-9223372036854775808]');
    assert.equal(
      convert(J, { a: [long('1'), { b: [long('9007199254740995')] }], c: { d: { e: long('-9223372036854775807') } } }),
      '{"a":[1,{"b":[9007199254740995]}],"c":{"d":{"e":-9223372036854775807}}}',
    );
    // Beside a double and an Int32, which stay what they were.
    assert.equal(convert(J, { d: double('1.5'), i: int32(7), l: long('9007199254740993'), x: double('1.0E+21') }), '{"d":1.5,"i":7,"l":9007199254740993,"x":1e+21}');
    // Within ±2^53: the same text as before.
    assert.equal(convert(J, [long('0'), long('42'), long('-42'), long('9007199254740992'), long('-9007199254740992')]), '[0,42,-42,9007199254740992,-9007199254740992]');
    // Inside an escaped document, a DBRef and a code's scope; a date's milliseconds are not an Int64.
    assert.equal(convert(J, { $etlDocument: { $n: long('9007199254740993'), $numberLong: '5' } }), '{"$etlDocument":{"$n":9007199254740993,"$numberLong":"5"}}');
    assert.equal(convert(J, { $ref: 'c', $id: long('9007199254740993') }), '{"$ref":"c","$id":9007199254740993}');
    assert.equal(convert(J, { $code: 'f', $scope: { n: long('-9007199254740993') } }), '{"$code":"f","$scope":{"n":-9007199254740993}}');
    assert.equal(convert(J, { d: { $date: { $numberLong: '-1' } } }), '{"d":{"$date":{"$numberLong":"-1"}}}');
    // What bson refuses stays refused.
    assert.equal(convert(J, { n: long('abc') }), 'REJECT:invalid_bson');
  });
  test('a Date beyond JavaScript keeps its milliseconds (bson would write "NaN")', () => {
    const J: SqlType = { kind: 'jsonb' };
    assert.equal(convert(J, { $date: { $numberLong: '9000000000000000000' } }), '{"$date":{"$numberLong":"9000000000000000000"}}');
    assert.equal(convert(J, [{ d: { $date: { $numberLong: '-9223372036854775808' } } }]), '[{"d":{"$date":{"$numberLong":"-9223372036854775808"}}}]');
    // At JavaScript's limit and within: bson's relaxed form, as before.
    assert.equal(convert(J, { $date: { $numberLong: '8640000000000000' } }), '{"$date":{"$numberLong":"8640000000000000"}}');
    assert.equal(convert(J, { $date: { $numberLong: '0' } }), '{"$date":"1970-01-01T00:00:00Z"}');
  });
  test('a DBRef stays as stored: a dotted $ref is a collection name, $db and the key order are kept', () => {
    const J: SqlType = { kind: 'jsonb' };
    // bson's DBRef reads "fs.files" as the database fs and the collection files, drops an empty $db and moves $db first.
    assert.equal(convert(J, { $ref: 'fs.files', $id: oid('65f0c0ffee0000000000abcd') }), '{"$ref":"fs.files","$id":{"$oid":"65f0c0ffee0000000000abcd"}}');
    assert.equal(convert(J, { r: { $ref: 'a.b', $id: int32(1), $db: 'x' } }), '{"r":{"$ref":"a.b","$id":1,"$db":"x"}}');
    assert.equal(convert(J, { $ref: 'c', $id: int32(1), $db: '' }), '{"$ref":"c","$id":1,"$db":""}');
    assert.equal(convert(J, { $ref: 'c', $id: long('9007199254740993'), n: { $date: { $numberLong: '9000000000000000000' } }, $db: 'd' }), '{"$ref":"c","$id":9007199254740993,"n":{"$date":{"$numberLong":"9000000000000000000"}},"$db":"d"}');
  });
  test('a `__proto__` key is a key like any other, kept (an assignment would take it for the prototype and drop it)', () => {
    const J: SqlType = { kind: 'jsonb' };
    assert.equal(convert(J, JSON.parse('{"__proto__":{"a":{"$numberInt":"1"}},"b":{"__proto__":"x"}}')), '{"__proto__":{"a":1},"b":{"__proto__":"x"}}');
    assert.equal(convert(J, JSON.parse('{"$etlDocument":{"$a":{"$numberInt":"1"},"__proto__":{"c":"d"}}}')), '{"$etlDocument":{"$a":1,"__proto__":{"c":"d"}}}');
    assert.equal(convert(J, JSON.parse('{"__proto__":{"n":{"$numberLong":"9007199254740993"}}}')), '{"__proto__":{"n":9007199254740993}}');
  });
});

describe('dayFormatter against Intl, instant by instant', () => {
  test('random instants 1890–2060 in zones with odd offsets and transitions', async () => {
    const { dayFormatter } = await import('../../mapping/zoned-day.ts');
    for (const zone of ['Europe/Paris', 'America/St_Johns', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Apia']) {
      const days = dayFormatter(zone);
      const reference = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' });
      let seed = 12345;
      const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const from = Date.UTC(1890, 0, 1);
      const to = Date.UTC(2060, 0, 1);
      for (let i = 0; i < 3000; i += 1) {
        // Half the instants near a full hour, where transitions happen.
        const ms = Math.floor(from + next() * (to - from));
        const instant = i % 2 === 0 ? ms - (ms % 3_600_000) + Math.floor(next() * 4) - 2 : ms;
        assert.equal(days.day(instant), reference.format(instant), `${zone} ${new Date(instant).toISOString()}`);
      }
    }
  });

  test('days in a row across transitions, one at exactly midnight UTC, read forwards and backwards', async () => {
    const { dayFormatter } = await import('../../mapping/zoned-day.ts');
    // Neighbouring days share the offset at the midnight between them: a transition at that very
    // instant (Cairo 1990-10-01T00:00Z, Casablanca 2008-06-01T00:00Z) must still land on its side.
    const windows: [string, string][] = [
      ['Africa/Cairo', '1990-10-01T00:00:00Z'],
      ['Africa/Casablanca', '2008-06-01T00:00:00Z'],
      ['Europe/Paris', '2024-03-31T01:00:00Z'],
      ['Europe/Paris', '2024-10-27T01:00:00Z'],
      ['Europe/Paris', '1976-03-28T00:00:00Z'],
    ];
    for (const [zone, at] of windows) {
      const reference = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' });
      const transition = Date.parse(at);
      const instants: number[] = [];
      for (let t = transition - 3 * 86_400_000; t <= transition + 3 * 86_400_000; t += 900_000) instants.push(t - 1, t, t + 1);
      for (const order of [instants, [...instants].reverse()]) {
        const days = dayFormatter(zone);
        for (const instant of order) assert.equal(days.day(instant), reference.format(instant), `${zone} ${new Date(instant).toISOString()}`);
      }
    }
  });
});
