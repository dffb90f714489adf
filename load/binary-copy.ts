// Staged CSV → PostgreSQL's binary COPY format, for the large COPYs of a load (a table's rows
// straight into an empty table, a dedupe table's contributions into its state table).
//
// Why: a CSV COPY spends more than half of the server's time parsing CSV and running each type's
// input function (timestamp_in, date_in …); the same rows in binary take 0.43–0.47 of the time
// (PostgreSQL 17, `days`, `users_quizzs_questions`, `days_contents_links`, measured alone). The
// server is what the load waits for; etl's own core is mostly idle. So etl reads the CSV (its own
// staging dialect, staging/csv.ts) and writes each value as the type's binary form.
//
// Exactness: a value is encoded only in the canonical text transform writes for its type (a
// timestamp `YYYY-MM-DD HH:MM:SS.mmm`, a date `YYYY-MM-DD`, `true`/`false`, a plain integer …);
// anything else throws NotEncodable and the caller COPYs the CSV instead, so PostgreSQL's own input
// function decides (and reports) exactly as before. Text is sent as its bytes: the server checks
// the encoding and a VARCHAR(n)'s length on receipt as it does on input. A timestamp is sent as
// int64 microseconds and a date as int32 days since 2000-01-01, the only forms since PostgreSQL 10
// (which removed float timestamps; the load needs 10 or later anyway: its temp tables use identity
// columns).
import { Transform, type TransformCallback } from 'node:stream';
import type { SqlType } from '../model/types.ts';

/** The column kinds with a binary encoder. */
export type BinaryColumn = 'text' | 'smallint' | 'integer' | 'bigint' | 'boolean' | 'timestamp' | 'date' | 'jsonb';

/** A record (or a value in it) the encoder cannot write exactly: COPY the CSV instead. */
export class NotEncodable extends Error {
  override readonly name = 'NotEncodable';
}

/** The encoders of a staged file's columns, in order, or null when one has none (numeric): COPY the CSV. */
export function binaryColumns(types: readonly SqlType[]): BinaryColumn[] | null {
  const out: BinaryColumn[] = [];
  for (const t of types) {
    switch (t.kind) {
      case 'varchar':
      case 'text':
        out.push('text');
        break;
      case 'smallint':
      case 'integer':
      case 'bigint':
      case 'boolean':
      case 'timestamp':
      case 'date':
      case 'jsonb':
        out.push(t.kind);
        break;
      default:
        return null;
    }
  }
  return out;
}

/** COPY options of the binary stream. */
export const BINARY_COPY_OPTIONS = '(FORMAT binary)';

/**
 * A Transform from a staged CSV's bytes (header record first, skipped: the caller checks it) to
 * the binary COPY stream of its data records: signature, then one tuple a record, then the trailer.
 * Fails with NotEncodable on anything it cannot write exactly.
 */
export function csvToBinaryCopy(columns: readonly BinaryColumn[]): Transform {
  return new CsvToBinary(columns);
}

// PGCOPY\n\377\r\n\0, flags (int32 0: no OIDs), header extension length (int32 0).
const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
const TRAILER = Buffer.from([0xff, 0xff]);
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** Room for one binary field beyond its text: length word, and a bigint's 8 bytes for one digit. */
const FIELD_EXTRA = 12;
const OUT_SIZE = 1 << 20;

/** The input ended inside a record: keep its bytes for the next chunk. */
const INCOMPLETE = -1;

class CsvToBinary extends Transform {
  private readonly columns: readonly BinaryColumn[];
  private carry: Buffer | null = null;
  private header = true;
  private out: Buffer = Buffer.allocUnsafe(OUT_SIZE);
  private o = 0;
  /** Where the record being written starts in `out`. */
  private recordStart = 0;
  /** The next quote and carriage return in the chunk at or after the current record (-1: none; searched once a chunk, not per record). */
  private nextQuote = -1;
  private nextCr = -1;

  constructor(columns: readonly BinaryColumn[]) {
    super();
    this.columns = columns;
    SIGNATURE.copy(this.out, 0);
    this.o = SIGNATURE.length;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = this.carry === null ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = null;
    let p = 0;
    try {
      if (this.header) {
        p = skipRecord(data, 0);
        if (p === INCOMPLETE) {
          this.carry = data;
          return callback();
        }
        this.header = false;
      }
      this.nextQuote = data.indexOf(QUOTE, p);
      this.nextCr = data.indexOf(CR, p);
      while (p < data.length) {
        const next = this.record(data, p);
        if (next === INCOMPLETE) {
          this.carry = data.subarray(p);
          break;
        }
        p = next;
      }
    } catch (error) {
      return callback(error as Error);
    }
    this.flushOut();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.carry !== null || this.header) {
      return callback(new NotEncodable(this.header ? 'the file has no complete header record' : 'the last record does not end with a newline'));
    }
    this.recordStart = this.o;
    this.room(2);
    TRAILER.copy(this.out, this.o);
    this.o += 2;
    this.flushOut();
    callback();
  }

  /** Hands the bytes written so far downstream (they are not written to again). */
  private flushOut(): void {
    if (this.o === 0) return;
    this.push(this.out.subarray(0, this.o));
    this.out = Buffer.allocUnsafe(OUT_SIZE);
    this.o = 0;
    this.recordStart = 0;
  }

  /**
   * At least `n` free bytes in the output buffer. The record being written moves to the new buffer
   * with it: if it turns out incomplete, it is dropped from there (record()).
   */
  private room(n: number): void {
    if (this.o + n <= this.out.length) return;
    const kept = this.o - this.recordStart;
    const next = Buffer.allocUnsafe(Math.max(OUT_SIZE, n + kept));
    this.out.copy(next, 0, this.recordStart, this.o);
    if (this.recordStart > 0) this.push(this.out.subarray(0, this.recordStart));
    this.out = next;
    this.o = kept;
    this.recordStart = 0;
  }

  /**
   * One data record from `p` as a tuple: where the next record starts, or INCOMPLETE (nothing of it
   * written) when `data` ends before it does.
   */
  private record(data: Buffer, p: number): number {
    // `\.` alone on a line is the CSV COPY's end-of-data marker (transform quotes a `\.` cell, so
    // only a file written otherwise holds one): PostgreSQL decides. `\.x` is data, as PostgreSQL reads it.
    if (data[p] === BACKSLASH && data[p + 1] === DOT) {
      if (p + 2 >= data.length) return INCOMPLETE;
      if (data[p + 2] === LF || data[p + 2] === CR) throw new NotEncodable('an unquoted \\. alone on a line (the end-of-data marker)');
    }
    const lf = data.indexOf(LF, p);
    if (lf === -1) return INCOMPLETE;
    if (this.nextQuote !== -1 && this.nextQuote < p) this.nextQuote = data.indexOf(QUOTE, p);
    if (this.nextCr !== -1 && this.nextCr < p) this.nextCr = data.indexOf(CR, p);
    if (this.nextCr !== -1 && this.nextCr < lf && (this.nextQuote === -1 || this.nextCr < this.nextQuote)) throw new NotEncodable('an unquoted carriage return');
    this.recordStart = this.o;
    if (this.nextQuote === -1 || this.nextQuote > lf) return this.plainRecord(data, p, lf);
    return this.quotedRecord(data, p);
  }

  /**
   * A record without quotes, ending at `lf`: its fields are what lies between commas. Room for the
   * whole tuple is made once: a field's binary form is at most its text and FIELD_EXTRA bytes.
   */
  private plainRecord(data: Buffer, p: number, lf: number): number {
    const columns = this.columns;
    this.room(lf - p + 2 + FIELD_EXTRA * columns.length);
    const out = this.out;
    let o = this.o;
    out[o] = columns.length >>> 8;
    out[o + 1] = columns.length;
    o += 2;
    for (let i = 0; i < columns.length; i += 1) {
      const kind = columns[i]!;
      let end = p;
      if (kind === 'text') {
        // The bytes go out as they are scanned; the length is written once the field's end is known.
        const at = o;
        o += 4;
        for (let c = data[end]!; c !== COMMA && c !== LF; c = data[++end]!) out[o++] = c;
        if (end === p) o = at;
        else putInt32(end - p, out, at);
      } else if (data[p] !== COMMA && data[p] !== LF) {
        // A timestamp or a date has one width: its end is looked at, not searched for.
        const width = kind === 'timestamp' ? 23 : kind === 'date' ? 10 : 0;
        if (width !== 0 && p + width <= lf) end = p + width;
        else while (data[end] !== COMMA && data[end] !== LF) end += 1;
        o = writeValue(kind, data, p, end, out, o);
      }
      if (end === p) {
        // An unquoted empty field: NULL.
        putInt32(-1, out, o);
        o += 4;
      }
      // A comma after each field but the last, which ends at the newline.
      const last = i === columns.length - 1;
      if (last ? end !== lf : data[end] !== COMMA) throw new NotEncodable(`a record whose fields are not the ${columns.length} columns (a value of the wrong width, or a field too many or too few)`);
      p = end + 1;
    }
    this.o = o;
    return p;
  }

  /** A record holding a quote: field by field, room made for each. */
  private quotedRecord(data: Buffer, p: number): number {
    const columns = this.columns;
    this.room(2);
    this.out[this.o] = columns.length >>> 8;
    this.out[this.o + 1] = columns.length;
    this.o += 2;
    for (let i = 0; i < columns.length; i += 1) {
      const end = this.field(data, p, columns[i]!);
      if (end === INCOMPLETE) {
        this.o = this.recordStart;
        return INCOMPLETE;
      }
      // `end` is the separator's position: a comma between fields, a newline after the last.
      const last = i === columns.length - 1;
      if (data[end] !== (last ? LF : COMMA)) throw new NotEncodable(`a record has ${last ? 'more' : 'fewer'} fields than the ${columns.length} columns`);
      p = end + 1;
    }
    return p;
  }

  /** One field from `p`, written as `kind`: the position of the byte after it, or INCOMPLETE. */
  private field(data: Buffer, p: number, kind: BinaryColumn): number {
    if (data[p] === QUOTE) return this.quoted(data, p, kind);
    let end = p;
    const n = data.length;
    while (end < n) {
      const c = data[end]!;
      if (c === COMMA || c === LF) break;
      if (c === QUOTE || c === CR) throw new NotEncodable(c === QUOTE ? 'a quote inside an unquoted field' : 'an unquoted carriage return');
      end += 1;
    }
    if (end === n) return INCOMPLETE;
    if (end === p) {
      // An unquoted empty field: NULL.
      this.room(4);
      putInt32(-1, this.out, this.o);
      this.o += 4;
      return end;
    }
    this.room(end - p + FIELD_EXTRA);
    this.o = writeValue(kind, data, p, end, this.out, this.o);
    return end;
  }

  /** A quoted field (text only: transform never quotes another kind): inner `""` is one quote. */
  private quoted(data: Buffer, p: number, kind: BinaryColumn): number {
    if (kind !== 'text' && kind !== 'jsonb') throw new NotEncodable(`a quoted ${kind} field`);
    const n = data.length;
    // Find the closing quote first, so an incomplete field writes nothing.
    let q = p + 1;
    let escapes = 0;
    for (;;) {
      q = data.indexOf(QUOTE, q);
      if (q === -1 || q + 1 >= n) return INCOMPLETE;
      if (data[q + 1] !== QUOTE) break;
      escapes += 1;
      q += 2;
    }
    const length = q - p - 1 - escapes + (kind === 'jsonb' ? 1 : 0);
    this.room(length + 4);
    const out = this.out;
    let o = this.o;
    putInt32(length, out, o);
    o += 4;
    if (kind === 'jsonb') out[o++] = 1;
    let from = p + 1;
    while (from < q) {
      const at = escapes === 0 ? q : data.indexOf(QUOTE, from);
      const to = at === -1 || at > q ? q : at;
      o = putBytes(data, from, to, out, o);
      if (to === q) break;
      out[o++] = QUOTE;
      from = to + 2;
    }
    this.o = o;
    return q + 1;
  }
}

/**
 * Big-endian int32 at out[o]. Written byte by byte: Buffer's writeInt32BE checks its arguments on
 * every call, and a load writes one for each of millions of fields.
 */
function putInt32(value: number, out: Buffer, o: number): void {
  out[o] = value >>> 24;
  out[o + 1] = value >>> 16;
  out[o + 2] = value >>> 8;
  out[o + 3] = value;
}

/** data[from, to) into out[o]: short runs byte by byte (Buffer.copy costs a native call). */
function putBytes(data: Buffer, from: number, to: number, out: Buffer, o: number): number {
  if (to - from > 48) return o + data.copy(out, o, from, to);
  for (let i = from; i < to; i += 1) out[o++] = data[i]!;
  return o;
}

/** Past the record starting at `p` (the header), or INCOMPLETE. */
function skipRecord(data: Buffer, p: number): number {
  let quoted = false;
  for (let i = p; i < data.length; i += 1) {
    const c = data[i];
    if (c === QUOTE) quoted = !quoted;
    else if (c === LF && !quoted) return i + 1;
  }
  return INCOMPLETE;
}

/** An unquoted, non-empty field data[p, end) as `kind`, at out[o]: the new output offset. */
function writeValue(kind: BinaryColumn, data: Buffer, p: number, end: number, out: Buffer, o: number): number {
  switch (kind) {
    case 'text':
      putInt32(end - p, out, o);
      return putBytes(data, p, end, out, o + 4);
    case 'jsonb':
      putInt32(end - p + 1, out, o);
      out[o + 4] = 1;
      return putBytes(data, p, end, out, o + 5);
    case 'boolean':
      return writeBoolean(data, p, end, out, o);
    case 'smallint':
    case 'integer':
    case 'bigint':
      return writeInteger(kind, data, p, end, out, o);
    case 'timestamp':
      return writeTimestamp(data, p, end, out, o);
    case 'date':
      return writeDate(data, p, end, out, o);
  }
}

function writeBoolean(data: Buffer, p: number, end: number, out: Buffer, o: number): number {
  const n = end - p;
  // `true` / `false`, as the converter writes them.
  const value =
    n === 4 && data[p] === 0x74 && data[p + 1] === 0x72 && data[p + 2] === 0x75 && data[p + 3] === 0x65
      ? 1
      : n === 5 && data[p] === 0x66 && data[p + 1] === 0x61 && data[p + 2] === 0x6c && data[p + 3] === 0x73 && data[p + 4] === 0x65
        ? 0
        : -1;
  if (value === -1) throw new NotEncodable('a boolean other than true or false');
  putInt32(1, out, o);
  out[o + 4] = value;
  return o + 5;
}

const INTEGER_BYTES = { smallint: 2, integer: 4, bigint: 8 } as const;
const INTEGER_RANGE = { smallint: [-32768, 32767], integer: [-2147483648, 2147483647] } as const;
const BIGINT_RANGE = [-9223372036854775808n, 9223372036854775807n] as const;

/** `0` or `-`? then digits without a leading zero (never `-0`), within the type's range. */
function writeInteger(kind: 'smallint' | 'integer' | 'bigint', data: Buffer, p: number, end: number, out: Buffer, o: number): number {
  const negative = data[p] === 0x2d;
  const first = negative ? p + 1 : p;
  const digits = end - first;
  if (digits === 0 || (data[first] === 0x30 && (digits > 1 || negative))) throw new NotEncodable(`a ${kind} not in plain decimal`);
  let value = 0;
  for (let i = first; i < end; i += 1) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) throw new NotEncodable(`a ${kind} not in plain decimal`);
    value = value * 10 + d;
  }
  if (negative) value = -value;
  const size = INTEGER_BYTES[kind];
  putInt32(size, out, o);
  if (kind === 'bigint') {
    if (Number.isSafeInteger(value)) writeInt64(value, out, o + 4);
    else {
      const big = BigInt(data.toString('latin1', p, end));
      if (big < BIGINT_RANGE[0] || big > BIGINT_RANGE[1]) throw new NotEncodable('a bigint out of range');
      out.writeBigInt64BE(big, o + 4);
    }
    return o + 12;
  }
  const [min, max] = INTEGER_RANGE[kind];
  if (value < min || value > max) throw new NotEncodable(`a ${kind} out of range`);
  if (size === 2) {
    out[o + 4] = value >>> 8;
    out[o + 5] = value;
  } else putInt32(value, out, o + 4);
  return o + 4 + size;
}

/** A safe integer as a big-endian int64 (two's complement across the two words). */
function writeInt64(value: number, out: Buffer, o: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  putInt32(high, out, o);
  putInt32(value - high * 0x1_0000_0000, out, o + 4);
}

/** The digits data[p, p + n) as a number, or -1 if one is not a digit. */
function digitsAt(data: Buffer, p: number, n: number): number {
  let value = 0;
  for (let i = p; i < p + n; i += 1) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/** Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates and timestamps. */
const PG_EPOCH_DAYS = 10_957;

/**
 * `YYYY-MM-DD` (years 0001–9999, a real day of the proleptic Gregorian calendar, as PostgreSQL
 * reads it) at data[p] as days since 2000-01-01, or NaN.
 */
function pgDays(data: Buffer, p: number): number {
  if (data[p + 4] !== 0x2d || data[p + 7] !== 0x2d) return NaN;
  const y = digitsAt(data, p, 4);
  const m = digitsAt(data, p + 5, 2);
  const d = digitsAt(data, p + 8, 2);
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > (m === 2 && isLeap(y) ? 29 : MONTH_DAYS[m - 1]!)) return NaN;
  // Days from civil (H. Hinnant): eras of 400 years from 0000-03-01.
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468 - PG_EPOCH_DAYS;
}

function writeDate(data: Buffer, p: number, end: number, out: Buffer, o: number): number {
  const days = end - p === 10 ? pgDays(data, p) : NaN;
  if (Number.isNaN(days)) throw new NotEncodable('a date not written YYYY-MM-DD');
  putInt32(4, out, o);
  putInt32(days, out, o + 4);
  return o + 8;
}

/** `YYYY-MM-DD HH:MM:SS.mmm` as microseconds since 2000-01-01 00:00:00. */
function writeTimestamp(data: Buffer, p: number, end: number, out: Buffer, o: number): number {
  const days = end - p === 23 && data[p + 10] === 0x20 && data[p + 13] === 0x3a && data[p + 16] === 0x3a && data[p + 19] === 0x2e ? pgDays(data, p) : NaN;
  const h = digitsAt(data, p + 11, 2);
  const mi = digitsAt(data, p + 14, 2);
  const s = digitsAt(data, p + 17, 2);
  const ms = digitsAt(data, p + 20, 3);
  if (Number.isNaN(days) || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 || ms < 0) throw new NotEncodable('a timestamp not written YYYY-MM-DD HH:MM:SS.mmm');
  // Milliseconds are exact in a double over years 1–9999; microseconds only within ±285 years of 2000.
  const millis = days * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + ms;
  putInt32(8, out, o);
  const micros = millis * 1000;
  if (Number.isSafeInteger(micros)) writeInt64(micros, out, o + 4);
  else out.writeBigInt64BE(BigInt(millis) * 1000n, o + 4);
  return o + 12;
}
