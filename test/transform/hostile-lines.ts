// The extract files of the hostile-lines test (hostile-lines.test.ts): for every collection a
// pipeline reads, seeded lines of three kinds, shuffled together:
//   - realistic: the sample generator's documents as extract writes them (canonical Extended JSON);
//   - BSON-hostile: those documents with the fields the pipeline reads set to hostile BSON values
//     (test/hostile/values/grammar.ts, plus NaN, infinities, Decimal128, `$`-keyed subdocuments,
//     invalid UTF-8 and dates beyond JavaScript's range written as raw BSON), staged by the extract's
//     own writer, so the staging escapes are the real ones;
//   - text-hostile: lines written field by field as text, which extract never writes but a staged
//     file may hold: every Extended JSON wrapper well and badly formed, numbers and strings in every
//     spelling JSON allows (escapes, whitespace, duplicate keys, shuffled keys, `__proto__`), strings
//     at each VARCHAR bound, explode arrays with repeats and non-ids, dedupe keys that collide.
// Which fields count is read from the pipeline model, so an edited pipeline gets its own hostile
// values (a dotted path, a JSONB or NUMERIC column, a filter). Every line is JSON that JSON.parse
// takes, with an `_id` (a line it refuses fails the whole transform: BAD_LINES, tested apart).
import { Decimal128, Double, Int32, Long, ObjectId, serialize, type Document } from 'bson';
import type { PipelineModel, SqlType, TableModel } from '../../model/types.ts';
import { generateSample } from '../../sample/generate.ts';
import { hash, Rng } from '../../sample/prng.ts';
import { NdjsonWriter } from '../../staging/ndjson-writer.ts';
import { dateValue, withElement, withRawString } from '../hostile/corpus/raw-bson.ts';
import { arrayValue, idValue, MISSING, referenceValue, valueFor, type Draw } from '../hostile/values/grammar.ts';

/** A piece of JSON text, written as it is. */
type Frag = string;

// ── what the pipeline reads of a collection ─────────────────────────────────────────────────────

interface FieldRead {
  readonly path: string;
  readonly type: SqlType;
  /** The collection a foreign key column points into. */
  readonly ref: string | null;
}

interface ArrayRead {
  readonly field: string;
  readonly idKey: string | null;
  readonly dateKey: string | null;
  readonly ref: string;
}

interface FilterRead {
  readonly path: string;
  readonly values: readonly (string | number | boolean | null)[];
}

interface CollectionReads {
  readonly fields: readonly FieldRead[];
  readonly arrays: readonly ArrayRead[];
  readonly filters: readonly FilterRead[];
  /** Fields of dedupe keys and `latest_by` columns: drawn from small pools so keys collide and dates tie. */
  readonly pooled: readonly FieldRead[];
}

function readsOf(model: PipelineModel, collection: string): CollectionReads {
  const fields = new Map<string, FieldRead>();
  const arrays: ArrayRead[] = [];
  const filters: FilterRead[] = [];
  const pooled = new Map<string, FieldRead>();
  const collectionOf = (table: string) => model.tables.get(table)!.collection;
  for (const name of model.collections.find((c) => c.name === collection)?.tables ?? []) {
    const table: TableModel = model.tables.get(name)!;
    for (const column of table.stagedColumns) {
      if (column.source.kind !== 'field' || column.source.path === '_id') continue;
      const read = { path: column.source.path, type: column.sqlType, ref: column.foreignKey ? collectionOf(column.foreignKey.table) : null };
      if (!fields.has(read.path)) fields.set(read.path, read);
      const dedupe = table.dedupe;
      if (dedupe && (dedupe.key.includes(column.name) || dedupe.latestBy === column.name)) pooled.set(read.path, read);
    }
    for (const a of table.explode?.arrays ?? []) {
      const item = table.columns.find((c) => c.name === a.itemColumn)!;
      arrays.push({ field: a.field, idKey: a.itemIdKey, dateKey: a.itemDateKey, ref: item.foreignKey ? collectionOf(item.foreignKey.table) : collection });
    }
    for (const [path, c] of Object.entries(table.filter?.conditions ?? {})) {
      const values = c.op === 'in' || c.op === 'nin' ? c.values : c.op === 'exists' ? [] : [c.value];
      filters.push({ path, values });
    }
  }
  return { fields: [...fields.values()], arrays, filters, pooled: [...pooled.values()] };
}

// ── JSON text, spelled in every way JSON allows ────────────────────────────────────────────────

const SHORT_ESCAPES: Readonly<Record<number, string>> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };

/** Writes JSON text with the spelling quirks of one line: whitespace, escapes, key spellings. */
class Speller {
  constructor(
    readonly rng: Rng,
    /** Whitespace between tokens and optional escapes; false: the compact canonical spelling. */
    readonly quirky: boolean,
  ) {}

  /** Whitespace JSON allows between tokens (never a newline: a line is one document). */
  ws(): string {
    if (!this.quirky || !this.rng.chance(0.4)) return '';
    return this.rng.pick([' ', '  ', '\t', ' \t', '\r', ' \r ', '\t\t ']);
  }

  private u(code: number): string {
    const hex = code.toString(16).padStart(4, '0');
    return `\\u${this.rng.chance(0.3) ? hex.toUpperCase() : hex}`;
  }

  /** A JSON string: `"`, `\`, control characters and lone surrogates always escaped, the rest sometimes. */
  str(s: string, escapeRate = this.quirky ? 0.15 : 0): Frag {
    let out = '"';
    for (const ch of s) {
      const code = ch.codePointAt(0)!;
      const lone = ch.length === 1 && code >= 0xd800 && code <= 0xdfff;
      if (ch === '"') out += this.rng.chance(escapeRate) ? this.u(code) : '\\"';
      else if (ch === '\\') out += this.rng.chance(escapeRate) ? this.u(code) : '\\\\';
      else if (code < 0x20) out += SHORT_ESCAPES[code] !== undefined && !this.rng.chance(escapeRate) ? SHORT_ESCAPES[code] : this.u(code);
      else if (lone) out += this.u(code);
      else if (escapeRate > 0 && this.rng.chance(escapeRate)) {
        if (ch === '/') out += '\\/';
        else if (code > 0xffff) out += this.u(0xd800 + ((code - 0x10000) >> 10)) + this.u(0xdc00 + ((code - 0x10000) & 0x3ff));
        else out += this.u(code);
      } else out += ch;
    }
    return `${out}"`;
  }

  /** A key: its canonical spelling, or (quirky) with a character escaped, which JSON.parse reads as the same key. */
  key(k: string): Frag {
    return this.str(k, this.quirky && this.rng.chance(0.1) ? 0.5 : 0);
  }

  obj(entries: readonly (readonly [key: string, value: Frag])[]): Frag {
    if (entries.length === 0) return `{${this.ws()}}`;
    return `{${entries.map(([k, v]) => `${this.ws()}${this.key(k)}${this.ws()}:${this.ws()}${v}${this.ws()}`).join(',')}}`;
  }

  arr(items: readonly Frag[]): Frag {
    if (items.length === 0) return `[${this.ws()}]`;
    return `[${items.map((v) => `${this.ws()}${v}${this.ws()}`).join(',')}]`;
  }

  /** A parsed JSON value written back (JSON.stringify's text when not quirky). */
  value(v: unknown): Frag {
    if (v === null || typeof v !== 'object') return typeof v === 'string' ? this.str(v) : JSON.stringify(v);
    if (Array.isArray(v)) return this.arr(v.map((x) => this.value(x)));
    return this.obj(Object.keys(v).map((k) => [k, this.value((v as Record<string, unknown>)[k])] as const));
  }
}

// ── hostile fragments ──────────────────────────────────────────────────────────────────────────

type Maker = (g: Gen) => Frag;

const DAY = 86_400_000;
const hexOf = (rng: Rng, n: number): string => Array.from({ length: n }, () => '0123456789abcdef'[rng.below(16)]).join('');

/** Pieces strings are made of: what breaks CSV, JSON, UTF-8 or a length count. */
const PIECES: readonly string[] = [
  'a', 'Z', '7', ' ', ',', '"', "'", '\\', '\n', '\r', '\t', '\u0000', '\u0001', '\u001f', '\u007f', '\u0085',
  'é', 'ß', '中', '😀', '👍🏽', '\u2028', '\u2029', '\ufeff', '\uffff', '\ud800', '\udc00', '{', '}', '[', ']', ':', '$', '/', '\\N', 'NULL',
];

/** Strings of plain, accented and astral characters, to sit on a length bound. */
const FILLERS: readonly string[] = ['x', 'é', '😀', '中', ' '];

/** Values of EJSON wrappers, canonical and not: the texts inside `{"$numberInt": …}` etc. */
const INT32_TEXTS = ['0', '-0', '7', '12', '32767', '32768', '-32768', '-32769', '2147483647', '2147483648', '-2147483649', '01', '+1', '1.5', '', ' 1', '1e2', 'abc', '٣'];
const INT64_TEXTS = ['12', '-0', '00012', '9007199254740993', '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809', '99999999999999999999999', '1.0', '', '+5', ' 5'];
const DOUBLE_TEXTS = ['1.0', '1.5', '-0.0', '0.1', '1e5', '1E5', '1e400', '-1e400', '5e-324', '1.7976931348623157e308', 'Infinity', '-Infinity', 'NaN', 'nan', 'inf', '32767.0', '32768.0', '9007199254740993', '14', '', ' 2', 'abc', '0x10'];
const DECIMAL_TEXTS = ['1.50', '1E+3', '12.000', '1.2E+1', '-0', '0.00', 'NaN', '-NaN', 'Infinity', '-Infinity', 'Inf', ' 1.5 ', '1e', '', '.5', '5.', '1e-2', '12345.67', '32767.0000', '1E+6144', '123456789012345678901234567890123456789012', 'abc'];
const PLAIN_NUMBERS = ['0', '-0', '1.0', '1e2', '1E+2', '1e-2', '1.5', '-1.5', '32767', '32768', '-32769', '2147483648', '9007199254740993', '123456789012345678901234567890', '1e400', '-1e400', '1e-400', '0.1', '14', '0.0000001', '100000000000000000000000'];
const INTEGER_STRINGS = ['12', '+7', '007', '-0', ' 12 ', '12.0', '1e3', '0x1F', '', '9223372036854775808', '-9223372036854775808', '٣'];

/** `$numberLong` texts of a `$date`: the bounds of years 1..9999 and of JavaScript, and what is not digits. */
const DATE_LONGS = [
  '0', '-0', '-1', '1709766000000', '1709852399999', '-62135596800000', '-62135596800001', '253402300799999', '253402300800000', '253402297200000',
  '8640000000000000', '8640000000000001', '-8640000000000000', '-8640000000000001', '99999999999999999999', '00001709766000000', '+1709766000000',
  '', ' 1709766000000', '1709766000000.5', '1e12', '--1', '-', '1711846800000', '1729980000000', '-2208988800000', '-1000000000000000',
];
const DATE_STRINGS = [
  '2024-03-06T23:00:00Z', '2024-03-06T23:00:00.123Z', '2024-03-07T00:00:00+01:00', '2024-03-07', '2024-02-30T00:00:00Z', '0001-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z', '+275760-09-13T00:00:00.000Z', '+010000-01-01T00:00:00Z', 'garbage', '', '2024-03-07 12:00:00', '1709766000000',
];

/** The randomness, the spelling of the line being written, and the ids there are. */
class Gen {
  constructor(
    readonly rng: Rng,
    readonly w: Speller,
    private readonly ids: ReadonlyMap<string, readonly string[]>,
  ) {}

  pick(makers: readonly Maker[]): Frag {
    return this.rng.pick(makers)(this);
  }

  /** An ObjectId hex of the collection (few: repeats happen), or a fresh one. */
  hex(collection: string | null): string {
    const list = collection === null ? undefined : this.ids.get(collection);
    return list && list.length > 0 && this.rng.chance(0.85) ? this.rng.pick(list.slice(0, 6)) : hexOf(this.rng, 24);
  }

  /** A string of `n` code points made of the length fillers, or hostile pieces. */
  text(n: number, hostile = false): string {
    let out = '';
    const pieces = hostile ? PIECES : FILLERS;
    for (let i = 0; i < n; i += 1) out += this.rng.pick(pieces);
    return hostile ? out : [...out].slice(0, n).join('');
  }

  wrap(key: string, inner: Frag): Frag {
    return this.w.obj([[key, inner]]);
  }
}

const oidMakers = (collection: string | null): Maker[] => [
  (g) => g.wrap('$oid', g.w.str(g.hex(collection))),
  (g) => g.wrap('$oid', g.w.str(g.hex(collection))),
  (g) => g.wrap('$oid', g.w.str(g.hex(collection).toUpperCase())),
  (g) => g.wrap('$oid', g.w.str(g.hex(collection).replace(/[a-f]/g, (c) => (g.rng.chance(0.5) ? c.toUpperCase() : c)))),
  (g) => g.wrap('$oid', g.w.str(g.hex(collection).slice(1))),
  (g) => g.wrap('$oid', g.w.str(`${g.hex(collection)}0`)),
  (g) => g.wrap('$oid', g.w.str(`${g.hex(collection).slice(1)}g`)),
  (g) => g.wrap('$oid', g.w.str('')),
  (g) => g.wrap('$oid', g.w.str(g.hex(collection), 0.5)),
  (g) => g.wrap('$oid', String(g.rng.below(1000))),
  (g) => g.wrap('$oid', 'null'),
  (g) => g.w.obj([['$oid', g.w.str(g.hex(collection))], ['x', '1']]),
  (g) => g.w.obj([['x', '1'], ['$oid', g.w.str(g.hex(collection))]]),
  (g) => g.w.obj([['$oid', g.w.str(g.hex(collection))], ['$oid', g.w.str(g.hex(collection))]]),
  (g) => g.wrap('$etlDocument', g.wrap('$oid', g.w.str(g.hex(collection)))),
  (g) => g.w.str(g.hex(collection)),
  (g) => g.w.str(g.hex(collection).toUpperCase()),
];

const dateMakers: Maker[] = [
  (g) => g.wrap('$date', g.wrap('$numberLong', g.w.str(g.rng.pick(DATE_LONGS)))),
  (g) => g.wrap('$date', g.wrap('$numberLong', g.w.str(g.rng.pick(DATE_LONGS)))),
  (g) => g.wrap('$date', g.wrap('$numberLong', g.w.str(String(Date.UTC(2024, 0, 1) + g.rng.below(400) * DAY + g.rng.below(DAY))))),
  (g) => g.wrap('$date', g.w.str(g.rng.pick(DATE_STRINGS))),
  (g) => g.wrap('$date', g.rng.pick(['1709766000000', '-1', '1.5', '-1e20', '1e400', '0', 'null', 'true', '{}', '[]'])),
  (g) => g.wrap('$date', g.wrap('$numberLong', g.rng.pick(['1709766000000', 'null']))),
  (g) => g.wrap('$date', g.w.obj([['$numberLong', g.w.str('1709766000000')], ['x', '1']])),
  (g) => g.w.obj([['x', '1'], ['$date', g.wrap('$numberLong', g.w.str('1709766000000'))]]),
  (g) => g.w.obj([['$date', g.wrap('$numberLong', g.w.str('1'))], ['$date', g.wrap('$numberLong', g.w.str(g.rng.pick(DATE_LONGS)))]]),
  (g) => g.wrap('$etlDocument', g.wrap('$date', g.wrap('$numberLong', g.w.str('1709766000000')))),
  (g) => g.w.str(g.rng.pick(DATE_STRINGS)),
];

const numberMakers: Maker[] = [
  (g) => g.wrap('$numberInt', g.w.str(g.rng.pick(INT32_TEXTS))),
  (g) => g.wrap('$numberLong', g.w.str(g.rng.pick(INT64_TEXTS))),
  (g) => g.wrap('$numberDouble', g.w.str(g.rng.pick(DOUBLE_TEXTS))),
  (g) => g.wrap('$numberDecimal', g.w.str(g.rng.pick(DECIMAL_TEXTS))),
  (g) => g.rng.pick(PLAIN_NUMBERS),
  (g) => g.rng.pick(PLAIN_NUMBERS),
  (g) => g.w.str(g.rng.pick(INTEGER_STRINGS)),
  (g) => g.wrap('$numberInt', g.rng.pick(['7', 'null'])),
  (g) => g.w.obj([['$numberInt', g.w.str('7')], ['$numberLong', g.w.str('8')]]),
];

/** Strings around a VARCHAR(n) bound, counted in code points, and strings of hostile pieces. */
function stringMakers(length: number | null): Maker[] {
  const makers: Maker[] = [
    (g) => g.w.str(g.text(g.rng.int(0, 12), true)),
    (g) => g.w.str(g.text(g.rng.int(0, 12), true)),
    (g) => g.w.str(g.text(g.rng.int(1, 40))),
    (g) => g.w.str(''),
    (g) => g.w.str(g.rng.pick(['null', 'true', '{"$oid":"65f000000000000000000001"}', '\\N', '\\.', 'NULL', ' ', 'a,b', '"quoted"', "x'); DROP TABLE users; --"])),
    (g) => g.w.str(g.text(g.rng.int(200, 400))),
    (g) => g.w.str(`${g.text(g.rng.int(0, 5))}\u0000${g.text(g.rng.int(0, 5))}`),
    (g) => g.w.str(`ok${g.rng.pick(['\ud800', '\udfff', '\ud83d', '\ude00'])}`),
    (g) => g.w.str('\ud83d\ude00', 1),
  ];
  if (length !== null) {
    makers.push(
      (g) => g.w.str(g.text(Math.max(0, length + g.rng.int(-1, 1)))),
      (g) => g.w.str(g.text(Math.max(0, length + g.rng.int(-1, 1)))),
      (g) => g.w.str('é'.repeat(length + g.rng.int(0, 1))),
      (g) => g.w.str('😀'.repeat(length + g.rng.int(0, 1))),
      (g) => g.w.str(`${'z'.repeat(Math.max(0, length - 1))}\u0000`),
    );
  }
  return makers;
}

/** Values of no column's type, or of every type: containers, other wrappers, the staging escapes. */
const anyMakers: Maker[] = [
  () => 'null',
  () => 'true',
  () => 'false',
  (g) => g.w.obj([]),
  (g) => g.w.arr([]),
  (g) => g.w.arr(['1', g.w.str('a'), 'null']),
  (g) => g.w.obj([['a', g.w.str('}')], ['b', g.w.arr([g.w.str('],"x":{')])]]),
  (g) => g.w.obj([['name', g.w.str('nested')], ['_id', '1']]),
  (g) => g.wrap('$etlDocument', g.wrap('$numberInt', g.w.str('7'))),
  (g) => g.wrap('$etlDocument', g.w.obj([])),
  (g) => g.wrap('$etlDocument', g.w.str('x')),
  (g) => g.wrap('$etlDocument', g.w.obj([['$oid', g.w.str(hexOf(g.rng, 24))], ['a', g.w.arr(['1'])]])),
  (g) => g.wrap('$etlInvalidUtf8', g.w.str(g.rng.pick(['7aCA', '/w==', '', 'not base64']))),
  (g) => g.wrap('$binary', g.w.obj([['base64', g.w.str('AAE=')], ['subType', g.w.str('00')]])),
  (g) => g.wrap('$regularExpression', g.w.obj([['pattern', g.w.str('^a')], ['options', g.w.str('i')]])),
  (g) => g.wrap('$timestamp', g.w.obj([['t', '1'], ['i', '2']])),
  (g) => g.wrap('$minKey', '1'),
  (g) => g.wrap('$unknownWrapper', '1'),
  (g) => g.w.obj([['$ref', g.w.str('users')], ['$id', g.wrap('$oid', g.w.str(hexOf(g.rng, 24)))]]),
  // Nested deeper than extract's limit (too_deep in a JSONB column).
  (g) => {
    const depth = g.rng.int(90, 230);
    return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
  },
  ...oidMakers(null),
  ...dateMakers,
  ...numberMakers,
  ...stringMakers(null),
];

function typedMakers(type: SqlType, ref: string | null): Maker[] {
  switch (type.kind) {
    case 'varchar':
    case 'text':
      return [...stringMakers(type.kind === 'varchar' ? type.length : null), ...stringMakers(type.kind === 'varchar' ? type.length : null), ...oidMakers(ref)];
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'numeric':
      return [...numberMakers, ...numberMakers];
    case 'boolean':
      return [() => 'true', () => 'false', (g) => g.w.str(g.rng.pick(['true', 'false'])), (g) => g.wrap('$numberInt', g.w.str('1'))];
    case 'timestamp':
    case 'date':
      return [...dateMakers, ...dateMakers];
    default:
      return [...anyMakers];
  }
}

/** A hostile value for a field feeding a column of `type`: mostly of its type's neighbourhood. */
function fieldFrag(g: Gen, f: FieldRead): Frag {
  if (f.ref !== null && g.rng.chance(0.3)) return g.pick(oidMakers(f.ref));
  return g.rng.chance(0.7) ? g.pick(typedMakers(f.type, f.ref)) : g.pick(anyMakers);
}

/** One item of an explode array: ids in every spelling (repeats likely), subdocuments, non-ids. */
function itemFrag(g: Gen, a: ArrayRead): Frag {
  const id = (): Frag => g.pick(oidMakers(a.ref).slice(0, 4));
  const makers: Maker[] = [id, id, id, () => 'null', (gg) => gg.w.str(gg.hex(a.ref)), (gg) => gg.w.str(gg.rng.pick(['5', '', 'a,b'])), () => '5', (gg) => gg.pick(anyMakers)];
  if (a.idKey !== null) {
    const idKey = a.idKey;
    const sub = (gg: Gen): Frag => {
      const entries: [string, Frag][] = [];
      if (gg.rng.chance(0.7)) entries.push(['_id', gg.wrap('$oid', gg.w.str(hexOf(gg.rng, 24)))]);
      if (gg.rng.chance(0.85)) entries.push([idKey, gg.rng.chance(0.8) ? id() : gg.pick(anyMakers)]);
      if (a.dateKey !== null && gg.rng.chance(0.6)) entries.push([a.dateKey, gg.pick(dateMakers)]);
      if (gg.rng.chance(0.3)) entries.reverse();
      if (gg.rng.chance(0.1)) entries.push([idKey, id()]);
      return gg.w.obj(entries);
    };
    makers.push(sub, sub, sub, (gg) => gg.wrap('$etlDocument', gg.w.obj([[idKey, id()], ['$x', '1']])));
  }
  return g.pick(makers);
}

function arrayFrag(g: Gen, a: ArrayRead): Frag {
  if (g.rng.chance(0.12)) {
    return g.pick([
      () => 'null',
      (gg) => gg.w.str(`${gg.hex(a.ref)},${gg.hex(a.ref)}`),
      (gg) => gg.w.obj([['0', gg.wrap('$oid', gg.w.str(gg.hex(a.ref)))]]),
      (gg) => gg.wrap('$etlDocument', gg.w.obj([['$0', '1']])),
      (gg) => gg.wrap('$numberInt', gg.w.str('3')),
      (gg) => gg.w.arr([gg.w.arr([gg.wrap('$oid', gg.w.str(gg.hex(a.ref)))])]),
    ]);
  }
  const items: Frag[] = [];
  for (let i = g.rng.int(0, 7); i > 0; i -= 1) items.push(itemFrag(g, a));
  // The same item again, verbatim or in another spelling (upper-case hex): one row, a duplicate counted.
  if (items.length > 0 && g.rng.chance(0.4)) {
    const again = g.rng.pick(items);
    items.splice(g.rng.below(items.length + 1), 0, g.rng.chance(0.5) ? again : again.replace(/"([0-9a-f]{24})"/g, (_, hex: string) => `"${hex.toUpperCase()}"`));
  }
  return g.w.arr(items);
}

/** A value for a field a table filters on: the wanted values in other spellings, near misses, arrays. */
function filterFrag(g: Gen, f: FilterRead): Frag {
  const wanted = f.values.length > 0 ? g.rng.pick(f.values) : 'x';
  const exact = (): Frag => (typeof wanted === 'string' ? g.w.str(wanted, g.rng.chance(0.3) ? 0.5 : 0) : JSON.stringify(wanted));
  return g.pick([
    exact,
    exact,
    (gg) => gg.w.arr([gg.w.str('other'), exact()]),
    (gg) => gg.w.arr([gg.w.str('other')]),
    (gg) => (typeof wanted === 'string' ? gg.w.str(wanted.toUpperCase()) : gg.w.str(String(wanted))),
    (gg) => (typeof wanted === 'string' ? gg.w.str(`${wanted} `) : gg.wrap('$numberInt', gg.w.str(String(wanted)))),
    (gg) => (typeof wanted === 'number' ? gg.wrap('$numberDouble', gg.w.str(`${wanted}.0`)) : gg.wrap('$etlDocument', gg.w.obj([['$eq', exact()]]))),
    () => 'null',
    (gg) => gg.pick(anyMakers),
  ]);
}

/** An `_id` that is not a plain ObjectId, or another document's in another spelling. */
function idFrag(g: Gen, own: string, collection: string): Frag {
  return g.pick([
    (gg) => gg.wrap('$oid', gg.w.str(own.toUpperCase())),
    (gg) => gg.wrap('$oid', gg.w.str(gg.hex(collection))),
    (gg) => gg.w.str(own),
    (gg) => gg.w.str(gg.hex(collection)),
    (gg) => gg.w.str(gg.rng.pick(['', ' ', 'a,b', '"q"', 'nul\u0000x', '\\N', 'NULL', '😀', 'é'.repeat(300), `id-${gg.rng.below(5)}`, '7'])),
    (gg) => gg.wrap('$numberInt', gg.w.str(gg.rng.pick(['7', '-0', '01']))),
    (gg) => gg.wrap('$numberLong', gg.w.str(gg.rng.pick(['7', '9007199254740993']))),
    (gg) => gg.wrap('$numberDouble', gg.w.str(gg.rng.pick(['7.0', '-0.0', 'NaN', '7.5']))),
    (gg) => gg.wrap('$numberDecimal', gg.w.str('7.00')),
    (gg) => gg.rng.pick(['7', '7.0', '-0', '1e400', 'true', 'null']),
    (gg) => gg.w.obj([['a', '1'], ['b', gg.w.str('x')]]),
    (gg) => gg.wrap('$etlDocument', gg.w.obj([['$a', '1']])),
    (gg) => gg.wrap('$date', gg.wrap('$numberLong', gg.w.str('1709766000000'))),
    (gg) => gg.wrap('$oid', gg.w.str('xyz')),
    (gg) => gg.wrap('$etlInvalidUtf8', gg.w.str('7aCA')),
    (gg) => gg.w.arr(['1', '2']),
  ]);
}

// ── dedupe pools ───────────────────────────────────────────────────────────────────────────────

/** Instants whose days collide in Paris (23:00Z the day before is local midnight) and elsewhere. */
const POOL_INSTANTS = [Date.UTC(2024, 2, 6, 23), Date.UTC(2024, 2, 7, 12), Date.UTC(2024, 2, 7, 23), Date.UTC(2024, 2, 7, 22, 59, 59, 999)];

/** A pooled value (dedupe keys, latest_by) in one of its spellings: the same value, written otherwise. */
function pooledFrag(g: Gen, f: FieldRead, pool: readonly string[]): Frag {
  if (g.rng.chance(0.05)) return g.pick([() => 'null', (gg) => gg.w.str('')]);
  if (f.type.kind === 'timestamp' || f.type.kind === 'date') {
    const ms = f.type.kind === 'date' ? g.rng.pick(POOL_INSTANTS) : Date.UTC(2024, 2, 9) + g.rng.below(3) * 1000;
    return g.pick([
      (gg) => gg.wrap('$date', gg.wrap('$numberLong', gg.w.str(String(ms)))),
      (gg) => gg.wrap('$date', gg.wrap('$numberLong', gg.w.str(String(ms)))),
      (gg) => gg.wrap('$date', gg.wrap('$numberLong', gg.w.str(`000${ms}`))),
      (gg) => gg.wrap('$date', gg.w.str(new Date(ms).toISOString())),
      (gg) => gg.wrap('$date', String(ms)),
    ]);
  }
  const hex = g.rng.pick(pool);
  return g.pick([
    (gg) => gg.wrap('$oid', gg.w.str(hex)),
    (gg) => gg.wrap('$oid', gg.w.str(hex)),
    (gg) => gg.wrap('$oid', gg.w.str(hex.toUpperCase())),
    (gg) => gg.w.str(hex),
  ]);
}

// ── valid values, respelled ────────────────────────────────────────────────────────────────────

/**
 * The same value in another spelling JSON or Extended JSON allows, so the row stays the same (or
 * nearly: a plain number is not an Int32 everywhere): hex in upper case, a `$date`'s milliseconds
 * with leading zeros or as an ISO string, an Int32 as a bare number, strings with escapes.
 */
function respell(g: Gen, v: unknown): Frag {
  const { rng, w } = g;
  if (typeof v === 'string') return w.str(v, rng.pick([0, 0.3, 1]));
  if (typeof v !== 'object' || v === null) return w.value(v);
  if (Array.isArray(v)) return w.arr(v.map((x) => respell(g, x)));
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && typeof o.$oid === 'string') {
    const hex = o.$oid;
    return g.pick([(gg) => gg.wrap('$oid', gg.w.str(hex.toUpperCase())), (gg) => gg.wrap('$oid', gg.w.str(hex, 1)), (gg) => gg.wrap('$oid', gg.w.str(hex))]);
  }
  const long = (o.$date as { $numberLong?: unknown } | undefined)?.$numberLong;
  if (keys.length === 1 && typeof long === 'string') {
    const ms = Number(long);
    return g.pick([
      (gg) => gg.wrap('$date', gg.wrap('$numberLong', gg.w.str(`${ms < 0 ? '-' : ''}00${Math.abs(ms)}`))),
      (gg) => gg.wrap('$date', gg.w.str(new Date(ms).toISOString())),
      (gg) => gg.wrap('$date', String(ms)),
      (gg) => gg.wrap('$date', gg.wrap('$numberLong', gg.w.str(long, 1))),
    ]);
  }
  if (keys.length === 1 && typeof o.$numberInt === 'string') {
    const n = o.$numberInt;
    return g.pick([
      () => n,
      () => `${n}.0`,
      () => `${n}e0`,
      (gg) => gg.wrap('$numberLong', gg.w.str(n)),
      (gg) => gg.wrap('$numberDouble', gg.w.str(`${n}.0`)),
      (gg) => gg.wrap('$numberDecimal', gg.w.str(n)),
      (gg) => gg.w.str(n),
    ]);
  }
  if (keys.length === 1 && typeof o.$numberDouble === 'string') {
    const n = o.$numberDouble;
    return g.pick([() => (Number.isFinite(Number(n)) ? String(Number(n)) : 'null'), (gg) => gg.wrap('$numberDecimal', gg.w.str(n)), (gg) => gg.wrap('$numberDouble', gg.w.str(n, 1))]);
  }
  return w.obj(keys.map((k) => [k, respell(g, o[k])] as const));
}

// ── documents ──────────────────────────────────────────────────────────────────────────────────

/** A subdocument holding `leaf` at `rest` (a dotted path's tail), or something in its way. */
function nestedFrag(g: Gen, rest: readonly string[], leaf: Frag): Frag {
  if (rest.length === 0) return leaf;
  const inner = nestedFrag(g, rest.slice(1), leaf);
  return g.pick([
    (gg) => gg.w.obj([[rest[0]!, inner]]),
    (gg) => gg.w.obj([['other', '1'], [rest[0]!, inner]]),
    (gg) => gg.wrap('$etlDocument', gg.w.obj([[rest[0]!, inner]])),
    (gg) => gg.w.arr([gg.w.obj([[rest[0]!, inner]])]),
    () => inner,
  ]);
}

/** Unread fields whose text looks like a field the pipeline reads (a reader of the text would have to tell them apart). */
const DECOY_FIELDS: readonly ((g: Gen, read: readonly string[]) => readonly [string, Frag])[] = [
  (g, read) => [`${g.rng.pick(read)}2`, g.w.str('decoy')],
  (g, read) => [g.rng.pick(read).slice(0, -1) || 'n', '1'],
  (g, read) => [g.rng.pick(read).toUpperCase(), g.w.str('decoy')],
  (g, read) => ['notes', g.w.str(`"${g.rng.pick(read)}":"evil","_id":{"$oid":"${hexOf(g.rng, 24)}"}`)],
  (g, read) => ['nested', g.w.obj([[g.rng.pick(read), g.w.str('evil')], ['_id', '1']])],
  (g, read) => ['list', g.w.arr([g.w.obj([[g.rng.pick(read), g.w.str('evil')]])])],
  (g) => ['__proto__', g.w.obj([['polluted', 'true']])],
  (g) => ['$weird', g.w.str('top-level dollar key')],
  (g) => ['', g.w.str('empty key')],
  (g) => ['with.dot', '1'],
  (g) => ['blob', g.w.str(g.text(g.rng.int(0, 60), true))],
];

/** Replaced, in the file's bytes, by a sequence that is not UTF-8 (RAW_BYTES). */
const RAW_MARK = 'RAW-BYTES-HERE';
const RAW_BYTES: readonly (readonly number[])[] = [[0xff], [0xed, 0xa0, 0x80], [0xc3], [0xe9], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]];

/** The file of `lines`, each RAW_MARK replaced by raw bytes that are not UTF-8. */
function fileBytes(rng: Rng, lines: readonly string[]): Buffer {
  const text = Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8');
  const mark = Buffer.from(RAW_MARK);
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = text.indexOf(mark); at !== -1; at = text.indexOf(mark, from)) {
    parts.push(text.subarray(from, at), Buffer.from(rng.pick(RAW_BYTES)));
    from = at + mark.length;
  }
  parts.push(text.subarray(from));
  return Buffer.concat(parts);
}

/**
 * Chance that a read field of a hostile line gets a hostile value: about one field a line, so most
 * lines still make rows and the fields after a refused one are read too.
 */
const hostileRate = (reads: CollectionReads): number => Math.min(0.3, 1.2 / Math.max(1, reads.fields.length));

interface DocSource {
  readonly parsed: Record<string, unknown>;
  readonly hex: string;
}

/** One text-hostile line: a realistic document's fields, the read ones replaced, spelled with quirks. */
function textLine(g: Gen, src: DocSource, reads: CollectionReads, pools: ReadonlyMap<string, readonly string[]>, collection: string): string {
  const { rng, w } = g;
  const entries: [string, Frag][] = Object.keys(src.parsed).map((k) => [k, w.value(src.parsed[k])]);
  const set = (key: string, value: Frag): void => {
    const at = entries.findIndex(([k]) => k === key);
    if (at === -1) entries.splice(rng.below(entries.length + 1), 0, [key, value]);
    else entries[at] = [key, value];
  };
  const drop = (key: string): void => {
    const at = entries.findIndex(([k]) => k === key);
    if (at !== -1) entries.splice(at, 1);
  };
  const hostile = hostileRate(reads);
  for (const f of reads.fields) {
    const r = rng.next();
    const [top, ...rest] = f.path.split('.');
    if (r < hostile) {
      if (rng.chance(0.12)) drop(top!);
      else set(top!, nestedFrag(g, rest, fieldFrag(g, f)));
    } else if (r < hostile + 0.4 && rest.length === 0 && src.parsed[top!] !== undefined) set(top!, respell(g, src.parsed[top!]));
  }
  for (const f of reads.pooled) {
    if (!rng.chance(0.8)) continue;
    const [top, ...rest] = f.path.split('.');
    set(top!, nestedFrag(g, rest, pooledFrag(g, f, pools.get(f.path) ?? [src.hex])));
  }
  for (const a of reads.arrays) {
    if (!rng.chance(0.5)) continue;
    const [top, ...rest] = a.field.split('.');
    if (rng.chance(0.08)) drop(top!);
    else set(top!, nestedFrag(g, rest, arrayFrag(g, a)));
  }
  for (const f of reads.filters) {
    if (!rng.chance(0.5)) continue;
    const [top, ...rest] = f.path.split('.');
    if (rng.chance(0.1)) drop(top!);
    else set(top!, nestedFrag(g, rest, filterFrag(g, f)));
  }
  // Bytes that are not UTF-8, raw in the line (the reader decodes them as U+FFFD): a string field holds RAW_MARK, replaced in the file.
  if (rng.chance(0.05)) {
    const strings = reads.fields.filter((f) => (f.type.kind === 'varchar' || f.type.kind === 'text') && !f.path.includes('.'));
    set(strings.length > 0 && rng.chance(0.7) ? rng.pick(strings).path : 'blob', w.str(`${rng.pick(['', 'a', 'é'])}${RAW_MARK}${rng.pick(['', 'z', '😀'])}`, 0));
  }
  if (rng.chance(0.15)) set('_id', idFrag(g, src.hex, collection));
  else if (rng.chance(0.1)) set('_id', g.wrap('$oid', w.str(g.hex(collection))));

  const readKeys = [...reads.fields.map((f) => f.path), ...reads.arrays.map((a) => a.field), '_id'].map((p) => p.split('.')[0]!);
  if (rng.chance(0.2)) for (let i = rng.int(1, 3); i > 0; i -= 1) entries.splice(rng.below(entries.length + 1), 0, [...rng.pick(DECOY_FIELDS)(g, readKeys)]);
  // The same key twice: JSON.parse keeps the last.
  if (rng.chance(0.12)) {
    const key = rng.pick(readKeys);
    const f = reads.fields.find((x) => x.path.split('.')[0] === key);
    const at = entries.findIndex(([k]) => k === key);
    const decoy: [string, Frag] = [key, f ? fieldFrag(g, f) : key === '_id' ? idFrag(g, src.hex, collection) : w.str('decoy')];
    if (at !== -1 && rng.chance(0.5)) entries.splice(at, 0, decoy);
    else entries.push(decoy);
  }
  if (rng.chance(0.2)) {
    for (let i = entries.length - 1; i > 0; i -= 1) {
      const j = rng.below(i + 1);
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
  }
  // A line without `_id` fails the whole transform (BAD_LINES): drop() never takes it, this keeps it so.
  if (!entries.some(([k]) => k === '_id')) entries.unshift(['_id', g.wrap('$oid', w.str(src.hex))]);
  let line = w.obj(entries);
  if (w.quirky && rng.chance(0.1)) line = `${w.ws() || ' '}${line}${w.ws() || '\t'}`;
  if (rng.chance(0.04)) line += '\r';
  return line;
}

// ── BSON-hostile documents, written by the extract's own writer ─────────────────────────────────

const writer = new NdjsonWriter({ chunkBytes: 1 << 12 });

/** The staged line of BSON bytes (no newline), or null when extract would refuse the document. */
function stagedLine(bson: Buffer): string | null {
  try {
    writer.writeLine(bson);
  } catch {
    return null;
  }
  return writer.take().toString('utf8').replace(/\n$/, '');
}

/** BSON values the live grammar leaves out (FerretDB refuses them); extract stages them all. */
const BSON_EXTRAS: readonly (() => unknown)[] = [
  () => new Double(Number.NaN),
  () => new Double(Number.POSITIVE_INFINITY),
  () => new Double(Number.NEGATIVE_INFINITY),
  () => new Double(-0),
  () => Decimal128.fromString('1.50'),
  () => Decimal128.fromString('-0'),
  () => Decimal128.fromString('NaN'),
  () => Decimal128.fromString('1E+6144'),
  () => Decimal128.fromString('32767.000'),
  () => Long.fromString('-9223372036854775808'),
  () => ({ $oid: '65f000000000000000000001' }),
  () => ({ $date: 'not a wrapper' }),
  () => ({ $numberInt: '7' }),
  () => ({ $etlDocument: { a: 1 } }),
  () => ({ a: { $etlInvalidUtf8: 'x' } }),
  () => [new ObjectId('65f000000000000000000001'), { $oid: 'x' }],
  () => 'a\u0000b',
  () => '\ud800 lone',
];

const isObjectId = (v: unknown): v is ObjectId => typeof v === 'object' && v !== null && (v as { _bsontype?: unknown })._bsontype === 'ObjectId';

/**
 * A grammar value made replayable: the grammar draws fresh ObjectIds (dangling references) and dates
 * a few days before now, which would change the lines from run to run; each becomes a seeded one.
 */
function replayable(v: unknown, rng: Rng, known: ReadonlySet<string>, now: number): unknown {
  // By its BSON type, not instanceof: the grammar's ObjectId is the one of `mongodb` (bson's CommonJS build).
  if (isObjectId(v)) return known.has(v.toHexString()) ? v : new ObjectId(hexOf(rng, 24));
  if (v instanceof Date) return Math.abs(now - v.getTime()) < 400 * DAY ? new Date(Date.UTC(2024, 5, 1) - Math.round((now - v.getTime()) / DAY) * DAY) : v;
  if (Array.isArray(v)) return v.map((x) => replayable(x, rng, known, now));
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, replayable(x, rng, known, now)]));
  }
  return v;
}

function setPath(doc: Document, path: string, value: unknown): Document {
  const [top, ...rest] = path.split('.');
  if (rest.length === 0) {
    const out = { ...doc };
    if (value === MISSING) delete out[top!];
    else out[top!] = value;
    return out;
  }
  const inner = doc[top!];
  const base = typeof inner === 'object' && inner !== null && !Array.isArray(inner) && !isObjectId(inner) && !(inner instanceof Date) ? (inner as Document) : {};
  return { ...doc, [top!]: setPath(base, rest.join('.'), value) };
}

function bsonLine(rng: Rng, draw: Draw & { known: ReadonlySet<string> }, doc: Document, reads: CollectionReads): string | null {
  const now = Date.now();
  const seeded = (v: unknown): unknown => replayable(v, rng, draw.known, now);
  let out: Document = doc;
  for (const f of reads.fields) {
    if (!rng.chance(hostileRate(reads))) continue;
    const value = rng.chance(0.2) ? rng.pick(BSON_EXTRAS)() : f.ref !== null ? referenceValue(f.ref, f.type, draw).value : valueFor(f.type, draw).value;
    out = setPath(out, f.path, seeded(value));
  }
  for (const a of reads.arrays) if (rng.chance(0.4)) out = setPath(out, a.field, seeded(arrayValue(a.ref, a.idKey, a.dateKey, draw).value));
  if (rng.chance(0.1)) out = { ...out, _id: seeded(idValue(draw, isObjectId(doc._id) ? doc._id : null).value) };
  if (out._id === MISSING) out = { ...out, _id: doc._id };
  // Raw BSON extract meets and `bson` will not write: invalid UTF-8 in a string, a date beyond JavaScript's range.
  const strings = reads.fields.filter((f) => (f.type.kind === 'varchar' || f.type.kind === 'text') && !f.path.includes('.'));
  const dates = reads.fields.filter((f) => (f.type.kind === 'timestamp' || f.type.kind === 'date') && !f.path.includes('.'));
  let bson: Buffer;
  try {
    if (strings.length > 0 && rng.chance(0.08)) {
      const f = rng.pick(strings);
      const { [f.path]: _gone, ...rest } = out;
      bson = withRawString(rest, f.path, Buffer.from(rng.pick([[0xed, 0xa0, 0x80], [0x61, 0xff, 0x62], [0x78, 0xc3, 0x79], [0xe9, 0x74, 0xe9]])));
    } else if (dates.length > 0 && rng.chance(0.06)) {
      const f = rng.pick(dates);
      const { [f.path]: _gone, ...rest } = out;
      bson = withElement(rest, 0x09, f.path, dateValue(rng.pick([8640000000000001n, -8640000000000001n, 9223372036854775807n, -9223372036854775808n])));
    } else bson = Buffer.from(serialize(out));
  } catch {
    return null; // bson refuses to write it (a value no document can hold)
  }
  return stagedLine(bson);
}

// ── the extract ────────────────────────────────────────────────────────────────────────────────

export interface ExtractOptions {
  readonly seed: number;
  /** Lines per collection. */
  readonly docs: number;
}

/** What the lines are made of, to show the run is not vacuous. */
export interface LineTally {
  realistic: number;
  bson: number;
  text: number;
}

const SHARES = { realistic: 0.3, bson: 0.3 } as const;
/** Lines of a few hundred KiB in one collection: the 1 MiB reads of the transform cut some of them. */
const BIG_LINES = 4;

/** Each collection the model reads → its extract file's bytes. */
export function generateExtract(model: PipelineModel, o: ExtractOptions): { files: Record<string, Buffer>; tally: LineTally } {
  const rng = new Rng(hash(o.seed >>> 0, 0x7e47));
  const sample = generateSample({ scale: Math.max(500, o.docs * 24), seed: o.seed >>> 0 });
  const bases = new Map<string, Document[]>();
  for (const c of sample.collections) {
    const docs: Document[] = [];
    for (const d of c.documents()) {
      docs.push(d);
      if (docs.length >= Math.ceil(o.docs * SHARES.realistic) + 8) break;
    }
    bases.set(c.name, docs);
  }
  const ids = new Map<string, string[]>();
  for (const [c, docs] of bases) ids.set(c, docs.map((d) => (isObjectId(d._id) ? d._id.toHexString() : hexOf(rng, 24))));
  const draw: Draw & { known: ReadonlySet<string> } = {
    rng,
    known: new Set([...ids.values()].flat()),
    someId: (c) => (bases.get(c)?.length ? rng.pick(bases.get(c)!)._id : null),
    someObjectId: (c) => {
      const list = (bases.get(c) ?? []).map((d) => d._id).filter((id): id is ObjectId => isObjectId(id));
      return list.length === 0 ? null : rng.pick(list);
    },
  };
  const tally: LineTally = { realistic: 0, bson: 0, text: 0 };
  const files: Record<string, Buffer> = {};
  const bigCollection = rng.pick(model.collections).name;
  for (const { name } of model.collections) {
    const docs = bases.get(name) ?? [{ _id: new ObjectId(hexOf(rng, 24)), creation_date: new Date(Date.UTC(2024, 0, 1)), update_date: new Date(Date.UTC(2024, 1, 1)) }];
    const reads = readsOf(model, name);
    const pools = new Map(reads.pooled.map((f) => [f.path, Array.from({ length: 3 }, () => hexOf(rng, 24))] as const));
    const lines: string[] = [];
    for (let i = 0; i < o.docs; i += 1) {
      const doc = docs[i % docs.length]!;
      const canonical = stagedLine(Buffer.from(serialize(doc)))!;
      const r = rng.next();
      if (r < SHARES.realistic) {
        lines.push(canonical);
        tally.realistic += 1;
        continue;
      }
      if (r < SHARES.realistic + SHARES.bson) {
        const line = bsonLine(rng, draw, doc, reads);
        if (line !== null) {
          lines.push(line);
          tally.bson += 1;
          continue;
        }
      }
      const src = { parsed: JSON.parse(canonical) as Record<string, unknown>, hex: ids.get(name)?.[i % docs.length] ?? hexOf(rng, 24) };
      const g = new Gen(rng, new Speller(rng, rng.chance(0.25)), ids);
      lines.push(textLine(g, src, reads, pools, name));
      tally.text += 1;
    }
    if (name === bigCollection) {
      for (let i = 0; i < BIG_LINES; i += 1) {
        const g = new Gen(rng, new Speller(rng, rng.chance(0.5)), ids);
        const big = `${'é'.repeat(rng.int(100_000, 200_000))}😀${'x'.repeat(rng.int(0, 3))}`;
        const line = textLine(g, { parsed: { ...(JSON.parse(stagedLine(Buffer.from(serialize(docs[0]!)))!) as Record<string, unknown>), padding: big }, hex: ids.get(name)?.[0] ?? hexOf(rng, 24) }, reads, pools, name);
        lines.splice(rng.below(lines.length + 1), 0, line);
      }
    }
    // Empty lines (and a lone CR, which reads as empty) are skipped by the reader but counted in line numbers.
    for (let i = rng.int(0, 2); i > 0; i -= 1) lines.splice(rng.below(lines.length + 1), 0, rng.chance(0.5) ? '' : '\r');
    files[name] = fileBytes(rng, lines);
  }
  return { files, tally };
}

/**
 * Lines JSON.parse refuses, or whose value is not a document with an `_id`: the transform fails on
 * the first, naming the file and line, whichever path read it.
 */
export const BAD_LINES: readonly string[] = [
  '{"_id":{"$oid":"65f000000000000000000001"},"name":"a\tb"}', // a raw TAB inside a string
  '{"_id":{"$oid":"65f000000000000000000001"},"name":"a\u0001b"}',
  '{"_id":1,}',
  '{"_id":01}',
  '{"_id":1}x',
  '{"_id":1}{"_id":2}',
  '{"_id":"\\x41"}',
  '{"_id":"\\u12"}',
  '{"_id":"\\u00zz"}',
  '{"name":"no id"}',
  '{"_id_":1}',
  '[{"_id":1}]',
  '"x"',
  'null',
  '1',
  '\ufeff{"_id":1}',
  '{_id:1}',
  "{'_id':1}",
  '{"_id":NaN}',
  '{"_id":+1}',
  '{"_id":.5}',
  '{"_id":1.}',
  '{"_id":1,"a":tru}',
  '{"_id":{"$oid":"65f000000000000000000001"},"name":"ab',
  '}',
  '{\u00a0"_id":1}',
  '{\u000b"_id":1}',
  '{"_id":1 "a":2}',
  '   ',
  '{"_id":1,"a":"\\ud800\\"}',
  '{"_id":1,"a":"x\u0000y"}', // a raw NUL inside a string
];
