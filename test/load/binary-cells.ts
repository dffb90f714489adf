// Staged cells for the binary COPY tests, made as transform makes them: each value goes through the
// type's converter (mapping/convert.ts typeConverter, UTC days) and each row through csvLine. Edge
// values of every kind, and a seeded generator of random rows over the same edge classes.
import assert from 'node:assert/strict';
import { Rejection, timestampText, typeConverter, type Converter } from '../../mapping/convert.ts';
import type { SqlType } from '../../model/types.ts';
import { Rng } from '../../sample/prng.ts';
import type { Cell } from '../../staging/csv.ts';
import { csvHeader, csvLine } from '../../staging/csv-lines.ts';
import type { TwinColumn } from './binary-oracle.ts';

/** One column of each kind, under names csvHeader must quote (the header record is skipped, not split by lines). */
export const ALL_KINDS: readonly (TwinColumn & { readonly type: SqlType })[] = [
  { name: 'v', ddl: 'VARCHAR', kind: 'text', type: { kind: 'varchar', length: null } },
  { name: 'v5', ddl: 'VARCHAR(5)', kind: 'text', type: { kind: 'varchar', length: 5 } },
  { name: 'say "hi"', ddl: 'TEXT', kind: 'text', type: { kind: 'text' } },
  { name: 'a,b', ddl: 'SMALLINT', kind: 'smallint', type: { kind: 'smallint' } },
  { name: 'i', ddl: 'INTEGER', kind: 'integer', type: { kind: 'integer' } },
  { name: 'big', ddl: 'BIGINT', kind: 'bigint', type: { kind: 'bigint' } },
  { name: 'flag', ddl: 'BOOLEAN', kind: 'boolean', type: { kind: 'boolean' } },
  { name: 'at', ddl: 'TIMESTAMP', kind: 'timestamp', type: { kind: 'timestamp' } },
  { name: 'day', ddl: 'DATE', kind: 'date', type: { kind: 'date' } },
  { name: 'doc', ddl: 'JSONB', kind: 'jsonb', type: { kind: 'jsonb' } },
];

const converters = new Map<string, Converter>();

/** The cell transform writes for this value (it must not be rejected). */
function converted(type: SqlType, value: unknown): string {
  const key = JSON.stringify(type);
  let convert = converters.get(key);
  if (convert === undefined) {
    convert = typeConverter(type, { timezone: 'UTC', nulCharacter: 'reject' }, { stripped: false });
    converters.set(key, convert);
  }
  const cell = convert(value);
  assert.ok(!(cell instanceof Rejection) && cell !== null, `the converter refused ${JSON.stringify(value)}: ${String(cell instanceof Rejection ? cell.reason : cell)}`);
  return cell;
}

/** Milliseconds of a UTC wall time `YYYY-MM-DDTHH:MM:SS.mmm` (Date.UTC would map years 0–99 to 19xx). */
export function utcMs(iso: string): number {
  const ms = Date.parse(`${iso}Z`);
  assert.ok(!Number.isNaN(ms), iso);
  return ms;
}

const bsonDate = (ms: number) => ({ $date: { $numberLong: String(ms) } });

/** A timestamp cell: the converter's, checked equal to timestampText's. */
export function timestampCellOf(ms: number): string {
  const cell = converted({ kind: 'timestamp' }, bsonDate(ms));
  assert.equal(cell, timestampText(ms));
  return cell;
}

export const dateCellOf = (ms: number): string => converted(ALL_KINDS[8]!.type, bsonDate(ms));
export const integerCellOf = (type: SqlType, n: bigint): string => converted(type, { $numberLong: n.toString() });

export const TIMESTAMPS = [
  '0001-01-01T00:00:00.000', '0001-12-31T23:59:59.999', '1000-06-15T12:34:56.789', '1582-10-10T00:00:00.000',
  '1600-02-29T12:00:00.000', '1899-12-31T23:59:59.999', '1900-01-01T00:00:00.500', '1969-12-31T23:59:59.999',
  '1970-01-01T00:00:00.000', '1999-12-31T23:59:59.999', '1999-12-31T00:00:00.000', '2000-01-01T00:00:00.000',
  '2000-01-01T00:00:00.001', '2000-02-29T23:59:59.999', '2024-02-29T00:00:00.000', '2024-03-06T23:00:00.123',
  '2100-03-01T00:00:00.000', '2262-04-11T23:47:16.854', '2262-04-11T23:47:16.855', '2287-01-01T00:00:00.000',
  '9999-12-31T23:59:59.999',
].map(utcMs);

export const DATES = [
  '0001-01-01', '0001-12-31', '1582-10-10', '1600-02-29', '1899-12-31', '1900-02-28', '1900-03-01', '1969-12-31',
  '1970-01-01', '1999-12-31', '2000-01-01', '2000-02-29', '2024-02-29', '2100-03-01', '2287-01-01', '9999-12-31',
].map((d) => utcMs(`${d}T00:00:00.000`));

export const INTEGER_EDGES: Readonly<Record<'smallint' | 'integer' | 'bigint', readonly bigint[]>> = {
  smallint: [-32768n, 32767n, 0n, -1n, 1n, 255n, 256n, -256n, 10n, -10n],
  integer: [-2147483648n, 2147483647n, 0n, -1n, 1n, 32768n, -32769n, 65536n, 16777216n, -1000000000n],
  bigint: [-9223372036854775808n, 9223372036854775807n, 0n, -1n, 1n, 2147483648n, -2147483649n, 4294967296n, 9007199254740993n, -9007199254740993n, 1234567890123456789n],
};

/** 100,000 characters (code points) of lines with quotes, commas, CRLFs, é and emoji. */
export const LONG_TEXT = [...Array.from({ length: 3000 }, (_, i) => `line ${i}: é, "quoted" ; 😀\r\n`).join('')].slice(0, 100_000).join('');

export const TEXTS: readonly (string | null)[] = [
  null, '', '\\.', '\\', '\\N', 'NULL', ',', '"', '""', 'a,b', 'say "hi"', '\n', '\r\n', '\r', 'one\r\ntwo\nthree\rfour',
  ' padded ', '\t', 'é', 'ü€', '日本語テキスト', '😀', '👨‍👩‍👧', '\u00a0', 'x\u200by', '\\.\n', '.\\', 'end,\n', LONG_TEXT,
];

/** VARCHAR(5) cells: exactly five characters, some of them two, three or four UTF-8 bytes. */
export const TEXTS_5: readonly (string | null)[] = [null, '', 'abcde', 'ééééé', '😀😀😀😀😀', 'a😀b日c', '\\.', 'a,"b', '\r\n\r\n\r', '  x  '];

/** jsonb cells: the converter's texts of documents, arrays and strings, and hand-written texts (escapes, spacing). */
export const JSONB_VALUES: readonly unknown[] = [
  { a: 1, b: [1, 2.5, null, true], c: { d: 'é😀' } }, [], {}, [{ '': '' }], 'plain', 'quote " and, comma', 'é日😀', '\\u00e9 stays text',
  { n: { $numberLong: '123' } }, { when: { $date: { $numberLong: '0' } } }, 12.5, false,
];
export const JSONB_TEXTS: readonly string[] = [
  '{"k": "\\u00e9\\ud83d\\ude00"}', '"\\u0041\\u00df"', ' [1, 2 ,3] ', '{"a":1,"a":2}', '123.4500', '-0', '1e2', 'null', '"\\\\."', '{"x":"\\n\\r\\t\\""}',
];

export function jsonbCells(): string[] {
  return [...JSONB_VALUES.map((v) => converted({ kind: 'jsonb' }, v)), ...JSONB_TEXTS];
}

/** The CSV transform would write: header, then one line a row, each ended by `\n`. */
export function stagedCsv(columns: readonly TwinColumn[], rows: readonly (readonly Cell[])[]): Buffer {
  const lines = rows.map((row) => `${csvLine(row, null)}\n`);
  return Buffer.from(csvHeader(columns.map((c) => c.name)) + lines.join(''));
}

/** Rows that walk every edge list of ALL_KINDS (row i takes each list's item i modulo its length), then an all-NULL row. */
export function edgeRows(): Cell[][] {
  const lists: (readonly Cell[])[] = [
    TEXTS,
    TEXTS_5,
    [...TEXTS].reverse(),
    [null, ...INTEGER_EDGES.smallint.map((n) => integerCellOf(ALL_KINDS[3]!.type, n))],
    INTEGER_EDGES.integer.map((n) => integerCellOf(ALL_KINDS[4]!.type, n)),
    INTEGER_EDGES.bigint.map((n) => integerCellOf(ALL_KINDS[5]!.type, n)),
    [converted({ kind: 'boolean' }, true), converted({ kind: 'boolean' }, false), null],
    TIMESTAMPS.map(timestampCellOf),
    [...DATES.map(dateCellOf), null],
    [...jsonbCells(), null],
  ];
  const count = Math.max(...lists.map((l) => l.length));
  const rows: Cell[][] = [];
  for (let i = 0; i < count; i += 1) rows.push(lists.map((l) => l[i % l.length]!));
  rows.push(lists.map(() => null));
  return rows;
}

// ── random rows ─────────────────────────────────────────────────────────────────────────────────

/** Floats in [0, 1) from sample/prng.ts's seeded Rng, so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const POOLS = [
  'abcxyz0129 ', ',', '"', '\n', '\r', '\\', '.', 'N', '\t', 'é', 'ß', '€', '日', 'テ', '😀', '🦄', '\u00a0', '\u2028',
].map((s) => [...s]);

const MIN_MS = utcMs('0001-01-01T00:00:00.000');
const MAX_MS = utcMs('9999-12-31T23:59:59.999');

class RandomCells {
  constructor(readonly next: () => number) {}

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  text(maxChars: number): string {
    if (this.next() < 0.05) return this.pick(['', '\\.', '\\N', '""', '\r\n']);
    const length = this.int(maxChars + 1);
    let s = '';
    for (let i = 0; i < length; i += 1) s += this.pick(this.pick(POOLS));
    return s;
  }

  integer(kind: 'smallint' | 'integer' | 'bigint'): bigint {
    if (this.next() < 0.3) return this.pick(INTEGER_EDGES[kind]);
    const bits = { smallint: 16, integer: 32, bigint: 64 }[kind];
    let n = 0n;
    for (let i = 0; i < bits; i += 8) n = (n << 8n) | BigInt(this.int(256));
    n >>= BigInt(this.int(bits)); // small magnitudes as often as large ones
    return BigInt.asIntN(bits, this.next() < 0.5 ? n : -n);
  }

  millis(edges: readonly number[]): number {
    const r = this.next();
    if (r < 0.3) return this.pick(edges);
    // Near an edge: a few milliseconds, seconds or days either side, kept within years 1..9999.
    if (r < 0.6) return Math.min(MAX_MS, Math.max(MIN_MS, this.pick(edges) + (this.int(2001) - 1000) * this.pick([1, 1000, 86_400_000])));
    return MIN_MS + this.int(MAX_MS - MIN_MS + 1);
  }

  json(depth = 0): unknown {
    const r = this.int(depth > 2 ? 4 : 6);
    if (r === 0) return this.text(6);
    if (r === 1) return this.int(2_000_001) - 1_000_000;
    if (r === 2) return this.next() < 0.5;
    if (r === 3) return (this.int(20001) - 10000) / 64;
    if (r === 4) return Array.from({ length: this.int(4) }, () => this.json(depth + 1));
    return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.text(4), this.json(depth + 1)]));
  }
}

/** A random row over ALL_KINDS: each cell NULL one time in six, else a converter's cell of a random (often edge) value. */
export function randomRow(next: () => number): Cell[] {
  const r = new RandomCells(next);
  const make: (() => string)[] = [
    () => converted(ALL_KINDS[0]!.type, r.text(12)),
    () => converted(ALL_KINDS[1]!.type, [...r.text(5)].slice(0, 5).join('')),
    () => converted(ALL_KINDS[2]!.type, r.next() < 0.01 ? LONG_TEXT : r.text(40)),
    () => integerCellOf(ALL_KINDS[3]!.type, r.integer('smallint')),
    () => integerCellOf(ALL_KINDS[4]!.type, r.integer('integer')),
    () => integerCellOf(ALL_KINDS[5]!.type, r.integer('bigint')),
    () => converted({ kind: 'boolean' }, r.next() < 0.5),
    () => timestampCellOf(r.millis(TIMESTAMPS)),
    () => dateCellOf(r.millis(DATES)),
    () => (r.next() < 0.2 ? r.pick(JSONB_TEXTS) : converted({ kind: 'jsonb' }, r.json())),
  ];
  return make.map((f) => (r.next() < 1 / 6 ? null : f()));
}
