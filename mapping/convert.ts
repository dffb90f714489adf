// The type contract: one converter per SqlType, from a raw staged value (canonical Extended JSON, see
// ejson-value.ts) to the CSV cell PostgreSQL reads back (staging/csv.ts), or a rejection reason.
// README.md ("The type contract") is the user-facing statement of these rules; keep both in step.
//
// Principle: a value is written only if PostgreSQL will store exactly what MongoDB held. Nothing is
// truncated, rounded, trimmed or guessed; anything else is a rejected row with its reason.
import type { ColumnModel, SqlType } from '../model/types.ts';
import { timestampCell, type Cell } from '../staging/csv.ts';
import { MAX_NESTING_DEPTH } from '../staging/ndjson-escape.ts';
import { dateMillis, isInvalidUtf8, kindOf, numberText, objectIdHex, relaxedText } from './ejson-value.ts';
import { dayFormatter, type DayFormatter } from './zoned-day.ts';

/** Why a value could not become a cell. The names are the `reason` of the rejects file. */
export type RejectReason =
  | 'null_in_not_null'
  | 'too_long'
  | 'not_a_string'
  | 'not_an_integer'
  | 'out_of_range'
  | 'not_a_number'
  | 'too_many_digits'
  | 'not_finite'
  | 'not_a_boolean'
  | 'not_a_date'
  | 'invalid_date'
  | 'date_out_of_range'
  | 'nul_character'
  | 'invalid_unicode'
  | 'too_deep'
  | 'invalid_bson'
  | 'key_too_long';

/** A rejection: compared by identity, allocated once per reason. */
export class Rejection {
  constructor(readonly reason: RejectReason) {}
}

const REJECT: Readonly<Record<RejectReason, Rejection>> = Object.freeze(
  Object.fromEntries(
    (
      [
        'null_in_not_null',
        'too_long',
        'not_a_string',
        'not_an_integer',
        'out_of_range',
        'not_a_number',
        'too_many_digits',
        'not_finite',
        'not_a_boolean',
        'not_a_date',
        'invalid_date',
        'date_out_of_range',
        'nul_character',
        'invalid_unicode',
        'too_deep',
        'invalid_bson',
        'key_too_long',
      ] as const
    ).map((r) => [r, new Rejection(r)]),
  ) as Record<RejectReason, Rejection>,
);

export function rejection(reason: RejectReason): Rejection {
  return REJECT[reason];
}

export type Converted = Cell | Rejection;
export type Converter = (value: unknown) => Converted;

export interface ConvertSettings {
  readonly timezone: string;
  readonly nulCharacter: 'reject' | 'strip';
}

/**
 * Counts NUL characters removed under `nul_character: strip`. The row builder resets `stripped`
 * before converting a value and reads it after, so only rows actually written are counted.
 */
export interface NulTally {
  stripped: boolean;
}

// ── strings ───────────────────────────────────────────────────────────────────────────────────

const NUL = '\u0000';

// String.prototype.isWellFormed (Node 20) is missing from the ES2022 lib typings.
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** PostgreSQL counts characters (code points): 255 × 'é' fits VARCHAR(255), an emoji is one. */
export function codePointsAtMost(s: string, max: number): boolean {
  if (s.length <= max) return true; // UTF-16 units ≥ code points
  let count = 0;
  for (let i = 0; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) i += 1; // a pair (well-formedness checked before)
    count += 1;
    if (count > max) return false;
  }
  return true;
}

/** NUL and lone surrogates: PostgreSQL stores neither, and UTF-8 output would change a lone surrogate into U+FFFD. */
function cleanText(s: string, nul: 'reject' | 'strip', tally: NulTally): string | Rejection {
  if (s.indexOf(NUL) !== -1) {
    if (nul === 'reject') return REJECT.nul_character;
    s = s.split(NUL).join('');
    tally.stripped = true;
  }
  if (!isWellFormed(s)) return REJECT.invalid_unicode;
  return s;
}

/** Shortest text that reads back as the same double: 3.5, 12 (not 12.0), 1e+21. */
function doubleText(text: string): string | Rejection {
  const n = Number(text);
  if (Number.isNaN(n) && text !== 'NaN') return REJECT.invalid_bson;
  if (!Number.isFinite(n)) return REJECT.not_finite;
  return String(n);
}

function decimalText(text: string): string | Rejection {
  const t = text.trim();
  if (/^[+-]?(?:NaN|Inf(?:inity)?)$/i.test(t)) return REJECT.not_finite;
  if (!DECIMAL.test(t)) return REJECT.invalid_bson;
  return t;
}

/** Text of a scalar for VARCHAR/TEXT columns; documents, arrays and binary-ish values are not text. */
function scalarText(value: unknown): string | Rejection {
  switch (kindOf(value)) {
    case 'string':
      return value as string;
    case 'objectId':
      return objectIdHex(value) ?? REJECT.invalid_bson;
    case 'int32':
    case 'int64':
      return integerText(value) ?? REJECT.invalid_bson;
    case 'double':
      return doubleText(numberText(value, '$numberDouble') ?? '');
    case 'number':
      return Number.isFinite(value as number) ? String(value) : REJECT.not_finite;
    case 'decimal128':
      return decimalText(numberText(value, '$numberDecimal') ?? '');
    case 'boolean':
      return value ? 'true' : 'false';
    case 'date': {
      const ms = dateMillis(value);
      const d = checkedDate(ms);
      return d instanceof Rejection ? d : d.toISOString();
    }
    default:
      return REJECT.not_a_string;
  }
}

function textConverter(maxLength: number | null, nul: 'reject' | 'strip', tally: NulTally): Converter {
  return (value) => {
    // Fast path for the commonest non-string: an ObjectId (its hex is plain ASCII, never too long for n ≥ 24).
    if (typeof value === 'object' && value !== null && typeof (value as { $oid?: unknown }).$oid === 'string' && (maxLength === null || maxLength >= 24)) {
      return objectIdHex(value) ?? REJECT.invalid_bson;
    }
    const raw = typeof value === 'string' ? value : scalarText(value);
    if (typeof raw !== 'string') return raw;
    const s = cleanText(raw, nul, tally);
    if (typeof s !== 'string') return s;
    if (maxLength !== null && !codePointsAtMost(s, maxLength)) return REJECT.too_long;
    return s;
  };
}

// ── integers ──────────────────────────────────────────────────────────────────────────────────

const RANGES = {
  smallint: [-32768n, 32767n],
  integer: [-2147483648n, 2147483647n],
  bigint: [-9223372036854775808n, 9223372036854775807n],
} as const;

const INTEGER_STRING = /^[+-]?\d+$/;
const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function integerText(value: unknown): string | null {
  const t = numberText(value, kindOf(value) === 'int32' ? '$numberInt' : '$numberLong');
  return t !== null && INTEGER_STRING.test(t) ? BigInt(t).toString() : null;
}

/** The exact integer a decimal text denotes (`12`, `12.0`, `1.2E+1`), or null when it has a fraction. */
export function decimalToBigInt(text: string): bigint | null | Rejection {
  const m = DECIMAL.exec(text.trim());
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) return REJECT.not_a_number;
  const sign = m[1] === '-' ? -1n : 1n;
  let digits = `${m[2]}${m[3] ?? ''}`.replace(/^0+/, '');
  let exponent = (m[4] === undefined ? 0 : Number(m[4])) - (m[3]?.length ?? 0);
  if (digits === '') return 0n;
  // Trailing zeros of the digits move into the exponent: 1200E-2 → 12.
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  digits = trimmed;
  if (exponent < 0) return null;
  if (digits.length + exponent > 40) return REJECT.out_of_range; // beyond any integer type
  return sign * BigInt(digits) * 10n ** BigInt(exponent);
}

function integerConverter(kind: 'smallint' | 'integer' | 'bigint'): Converter {
  const [min, max] = RANGES[kind];
  const minN = Number(min);
  const maxN = Number(max);
  const inRange = (n: bigint): Converted => (n < min || n > max ? REJECT.out_of_range : n.toString());
  return (value) => {
    switch (kindOf(value)) {
      case 'int32': {
        // Int32 is always exact and in range for integer/bigint; smallint still checks.
        const t = numberText(value, '$numberInt');
        if (t === null || !INTEGER_STRING.test(t)) return REJECT.invalid_bson;
        const n = Number(t);
        return n < minN || n > maxN ? REJECT.out_of_range : String(n);
      }
      case 'int64': {
        const t = numberText(value, '$numberLong');
        if (t === null || !INTEGER_STRING.test(t)) return REJECT.invalid_bson;
        return inRange(BigInt(t));
      }
      case 'double':
      case 'number': {
        const n = typeof value === 'number' ? value : Number(numberText(value, '$numberDouble'));
        if (!Number.isFinite(n)) return Number.isNaN(n) && typeof value !== 'number' && numberText(value, '$numberDouble') !== 'NaN' ? REJECT.invalid_bson : REJECT.not_finite;
        if (!Number.isInteger(n)) return REJECT.not_an_integer;
        // BigInt(n) is the double's exact value (2^60 stays 1152921504606846976, String() would round).
        return inRange(BigInt(n));
      }
      case 'decimal128': {
        const t = numberText(value, '$numberDecimal') ?? '';
        if (/^[+-]?(?:NaN|Inf(?:inity)?)$/i.test(t.trim())) return REJECT.not_finite;
        const n = decimalToBigInt(t);
        if (n instanceof Rejection) return n === REJECT.not_a_number ? REJECT.invalid_bson : n;
        return n === null ? REJECT.not_an_integer : inRange(n);
      }
      case 'string': {
        // Exactly an optional sign and digits: ' 12 ', '12.0', '1e3' are rejected, not guessed at.
        const s = value as string;
        return INTEGER_STRING.test(s) ? inRange(BigInt(s)) : REJECT.not_an_integer;
      }
      default:
        return REJECT.not_an_integer;
    }
  };
}

// ── numeric ───────────────────────────────────────────────────────────────────────────────────

/**
 * Digits before and after the point of a plain or exponent decimal text, trailing fraction zeros
 * ignored, and `scale`: the digits after the point as written, trailing zeros included (what
 * PostgreSQL keeps as the value's display scale).
 */
function decimalShape(text: string): { intDigits: number; fracDigits: number; scale: number } | null {
  const m = DECIMAL.exec(text);
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) return null;
  const all = `${m[2]}${m[3] ?? ''}`;
  const exp = (m[4] === undefined ? 0 : Number(m[4])) - (m[3]?.length ?? 0);
  const scale = Math.max(0, -exp);
  const sig = all.replace(/^0+/, '');
  if (sig === '') return { intDigits: 0, fracDigits: 0, scale };
  const trimmed = sig.replace(/0+$/, '');
  const e = exp + (sig.length - trimmed.length);
  // value = trimmed × 10^e
  const intDigits = Math.max(0, trimmed.length + e);
  const fracDigits = Math.max(0, -e);
  return { intDigits, fracDigits, scale };
}

// What any NUMERIC holds, whatever its precision: beyond either, PostgreSQL fails the whole COPY
// ("value overflows numeric format"). Only a decimal string gets there: a Decimal128 has at most
// 6,145 integer and 6,176 fraction digits, a Double 309 and 1,074.
const NUMERIC_MAX_INT_DIGITS = 131_072;
const NUMERIC_MAX_SCALE = 16_383;

function numericConverter(precision: number | null, scale: number | null): Converter {
  const check = (text: string): Converted => {
    const shape = decimalShape(text);
    if (!shape) return REJECT.not_a_number;
    if (shape.intDigits > NUMERIC_MAX_INT_DIGITS) return REJECT.out_of_range;
    if (shape.scale > NUMERIC_MAX_SCALE) return REJECT.too_many_digits;
    if (precision !== null) {
      const s = scale ?? 0;
      // PostgreSQL rounds extra decimals silently and fails the whole COPY on too many integer digits.
      if (shape.fracDigits > s) return REJECT.too_many_digits;
      if (shape.intDigits > precision - s) return REJECT.out_of_range;
    }
    return text;
  };
  return (value) => {
    switch (kindOf(value)) {
      case 'int32':
      case 'int64': {
        const t = integerText(value);
        return t === null ? REJECT.invalid_bson : check(t);
      }
      case 'double': {
        const t = doubleText(numberText(value, '$numberDouble') ?? '');
        return typeof t === 'string' ? check(t) : t;
      }
      case 'number':
        return Number.isFinite(value as number) ? check(String(value)) : REJECT.not_finite;
      case 'decimal128': {
        // Kept exact: the Decimal128 text is what PostgreSQL parses (1.50 stays 1.50, 1E+3 is 1000).
        const t = decimalText(numberText(value, '$numberDecimal') ?? '');
        return typeof t === 'string' ? check(t) : t;
      }
      case 'string': {
        const s = value as string;
        return DECIMAL.test(s) ? check(s) : REJECT.not_a_number;
      }
      default:
        return REJECT.not_a_number;
    }
  };
}

// ── boolean ───────────────────────────────────────────────────────────────────────────────────

/** Only BSON booleans: 'true' strings and 0/1 numbers are schema drift to look at, not to guess. */
const booleanConverter: Converter = (value) => (value === true ? 'true' : value === false ? 'false' : REJECT.not_a_boolean);

// ── dates ─────────────────────────────────────────────────────────────────────────────────────

// 0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z: four-digit years both sides agree on.
const MIN_MS = -62135596800000;
const MAX_MS = 253402300799999;

/** null when the instant is a valid date of years 1..9999, else why not. */
function checkedMillis(ms: number): Rejection | null {
  if (Number.isNaN(ms) || Math.abs(ms) > 8.64e15) return REJECT.invalid_date;
  if (ms < MIN_MS || ms > MAX_MS) return REJECT.date_out_of_range;
  return null;
}

function checkedDate(ms: number): Date | Rejection {
  return checkedMillis(ms) ?? new Date(ms);
}

const DAY_MS = 86_400_000;
const PAD2 = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
const utcDays = new Map<number, string>();

/**
 * staging/csv.ts timestampCell's text (`2024-03-06 23:00:00.000`, UTC) without a Date and two
 * string replaces per cell: that was a tenth of the stage's time. A test holds the two equal.
 */
export function timestampText(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  let text = utcDays.get(day);
  if (text === undefined) {
    text = timestampCell(new Date(day * DAY_MS)).slice(0, 10);
    if (utcDays.size >= 100_000) utcDays.clear();
    utcDays.set(day, text);
  }
  let rest = ms - day * DAY_MS;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = Math.floor(rest / 1000);
  return `${text} ${PAD2[h]}:${PAD2[m]}:${PAD2[s]}.${PAD3[rest - s * 1000]}`;
}

/**
 * The last two `$date` values converted and their cells. A document's dates are converted once per
 * table reading them (a collection feeding three tables, an explode row's parent date per table):
 * the same parsed object, never changed, so the same cell.
 */
const NOTHING_YET = Symbol('no date converted yet');
const recentDates: [unknown, Converted, unknown, Converted] = [NOTHING_YET, null, NOTHING_YET, null];

/**
 * The last canonical `$numberLong` text converted and its cell: a document's creation and update
 * dates are often the same instant, in two objects.
 */
let lastDateText: string | undefined;
let lastDateCell: Converted = null;

function timestampOf(value: unknown, date: unknown): Converted {
  const text = canonicalDateText(date);
  if (text !== undefined && text === lastDateText) return lastDateCell;
  const ms = dateMillis(value);
  const cell = checkedMillis(ms) ?? timestampText(ms);
  if (text !== undefined) {
    lastDateText = text;
    lastDateCell = cell;
  }
  return cell;
}

/** Only BSON Dates: a string is not an instant until someone says in which zone it was written. */
const timestampConverter: Converter = (value) => {
  if (value === recentDates[0]) return recentDates[1];
  if (value === recentDates[2]) return recentDates[3];
  // `$date` read directly (no kindOf): this runs for two columns of nearly every row.
  const date = typeof value === 'object' && value !== null ? (value as { $date?: unknown }).$date : undefined;
  if (date === undefined) return REJECT.not_a_date;
  const cell = timestampOf(value, date);
  recentDates[2] = recentDates[0];
  recentDates[3] = recentDates[1];
  recentDates[0] = value;
  recentDates[1] = cell;
  return cell;
};

/** Day cells kept per converter, by `$numberLong` text. */
const DAY_CACHE_LIMIT = 100_000;

/** The `$numberLong` text of a canonical `{"$date": {"$numberLong": …}}`, else undefined. */
function canonicalDateText(date: unknown): string | undefined {
  if (typeof date !== 'object' || date === null) return undefined;
  const long = (date as { $numberLong?: unknown }).$numberLong;
  return typeof long === 'string' ? long : undefined;
}

function dateConverter(days: DayFormatter): Converter {
  // Day-only dates repeat (a day's logbooks, a period's days, birthdays): the cell of a `$numberLong`
  // text is kept, since it depends on that text alone. Parsing, range check and zone offset were a
  // tenth of the stage's time.
  const byText = new Map<string, string>();
  return (value) => {
    const date = typeof value === 'object' && value !== null ? (value as { $date?: unknown }).$date : undefined;
    if (date === undefined) return REJECT.not_a_date;
    const text = canonicalDateText(date);
    const known = text === undefined ? undefined : byText.get(text);
    if (known !== undefined) return known;
    const ms = dateMillis(value);
    const cell = checkedMillis(ms) ?? days.day(ms) ?? REJECT.date_out_of_range;
    if (text !== undefined && typeof cell === 'string') {
      if (byText.size >= DAY_CACHE_LIMIT) byText.clear();
      byText.set(text, cell);
    }
    return cell;
  };
}

// ── jsonb ─────────────────────────────────────────────────────────────────────────────────────

/**
 * JSON levels a staged value may take: extract's nesting limit, doubled for the escape wrappers, plus
 * the BSON wrappers at the bottom. Deeper is a hand-made file; refusing it keeps the recursion short.
 */
const MAX_JSON_DEPTH = 2 * MAX_NESTING_DEPTH + 4;

/**
 * Walks a value for NUL and lone surrogates (jsonb refuses `\u0000` and broken pairs), stripping NULs
 * if asked, and for strings that are not UTF-8 (staged escaped: their text is not known).
 */
function cleanJson(value: unknown, nul: 'reject' | 'strip', tally: NulTally, depth = 0): unknown | Rejection {
  if (typeof value === 'string') return cleanText(value, nul, tally);
  if (typeof value !== 'object' || value === null) return value;
  if (depth > MAX_JSON_DEPTH) return REJECT.too_deep;
  if (isInvalidUtf8(value)) return REJECT.invalid_unicode;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) {
      const c = cleanJson(item, nul, tally, depth + 1);
      if (c instanceof Rejection) return c;
      out.push(c);
    }
    return out;
  }
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const key = cleanText(k, nul, tally);
    if (key instanceof Rejection) return key;
    const c = cleanJson(v, nul, tally, depth + 1);
    if (c instanceof Rejection) return c;
    out.push([key, c]);
  }
  // fromEntries, not out[key] = …: that would take a `__proto__` field (a plain key to MongoDB) for the prototype and drop it.
  return Object.fromEntries(out);
}

function jsonbConverter(nul: 'reject' | 'strip', tally: NulTally): Converter {
  return (value) => {
    const clean = cleanJson(value, nul, tally);
    if (clean instanceof Rejection) return clean;
    try {
      return relaxedText(clean);
    } catch {
      return REJECT.invalid_bson;
    }
  };
}

// ── assembly ──────────────────────────────────────────────────────────────────────────────────

const dayFormatters = new Map<string, DayFormatter>();

/** The converter of one SqlType (null/missing values are handled by columnConverter). */
export function typeConverter(type: SqlType, settings: ConvertSettings, tally: NulTally): Converter {
  switch (type.kind) {
    case 'varchar':
      return textConverter(type.length, settings.nulCharacter, tally);
    case 'text':
      return textConverter(null, settings.nulCharacter, tally);
    case 'smallint':
    case 'integer':
    case 'bigint':
      return integerConverter(type.kind);
    case 'serial':
      // Never staged: PostgreSQL assigns it. A staged SERIAL would be a model bug.
      throw new Error('a SERIAL column is not staged');
    case 'numeric':
      return numericConverter(type.precision, type.scale);
    case 'boolean':
      return booleanConverter;
    case 'timestamp':
      return timestampConverter;
    case 'date': {
      let days = dayFormatters.get(settings.timezone);
      if (!days) {
        days = dayFormatter(settings.timezone);
        dayFormatters.set(settings.timezone, days);
      }
      return dateConverter(days);
    }
    case 'jsonb':
      return jsonbConverter(settings.nulCharacter, tally);
  }
}

/**
 * A column's converter: absent and null become NULL (or `null_in_not_null` for a NOT NULL column);
 * anything else goes through the type's converter. '' stays '' (a quoted empty CSV field), never NULL.
 */
export function columnConverter(column: ColumnModel, settings: ConvertSettings, tally: NulTally): Converter {
  const convert = typeConverter(column.sqlType, settings, tally);
  const nullable = column.nullable;
  return (value) => {
    // Strings first: the commonest value, and neither null nor an escape wrapper.
    if (typeof value === 'string') return convert(value);
    if (value === undefined || value === null) return nullable ? null : REJECT.null_in_not_null;
    // A string whose bytes are not UTF-8 (staged escaped): no column type can hold what it was.
    if (typeof value === 'object' && isInvalidUtf8(value)) return REJECT.invalid_unicode;
    return convert(value);
  };
}
