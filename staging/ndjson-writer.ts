// The staged NDJSON encoder: one BSON document's bytes → one line of canonical Extended JSON, with
// the staging escapes (ndjson-escape.ts), written straight into an output buffer. No JS object is
// built for a value and no intermediate string for a document: this is most of what extract does,
// and the object graph bson builds only to be stringified again cost five times the reading.
//
// The output is the canonical Extended JSON of the Extended JSON specification, byte for byte what
// `EJSON.stringify(deserialize(bytes, BSON_READ_OPTIONS), {relaxed: false})` writes for every type
// it writes faithfully (test/extract/ndjson-writer.test.ts holds the two equal), and is proved
// against the official BSON corpus (test/extract/bson-corpus.test.ts). Where bson's output loses
// data it is not copied: a Date beyond JavaScript keeps its int64 (bson writes "NaN"), a DBRef keeps
// its keys as they are (bson reorders them and splits a dotted $ref into $db), a binary vector is
// not re-validated. Two deprecated types take the corpus's converted form, as bson writes them too:
// undefined is `null`, a DBPointer the DBRef document `{"$ref": ns, "$id": {"$oid": …}}`.
//
// Bytes that are not BSON throw BsonDecodeError (what and where); BSON that cannot be staged throws
// StagingRefusal (too deep, invalid UTF-8 where no escape can carry it, a field name given twice).
// Either way the line is not written. Recursion is bounded by the nesting limit (checked before descending).
import { isUtf8 } from 'node:buffer';
import { Decimal128 } from 'bson';
import { ESCAPED_DOCUMENT_KEY, INVALID_UTF8_KEY, MAX_NESTING_DEPTH } from './ndjson-escape.ts';

/** Bytes that are not a BSON document. `offset`: where in the document the problem was found. */
export class BsonDecodeError extends Error {
  override name = 'BsonDecodeError';
  /** The top-level `_id` element, when writeLine had framed it before the problem (so a reject can name it). */
  id: FieldFacts | null = null;
  /**
   * The top-level fields do not fill the document's length exactly (an unknown type byte, a field
   * name or a value running over, an early end): the length itself is in doubt, so whatever follows
   * it cannot be trusted to be the next document. Damage inside a value (a subdocument, an array, a
   * boolean) leaves this false.
   */
  framing = false;
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset} of the document)`);
  }
}

export type RefusalReason = 'too_deep' | 'invalid_utf8' | 'invalid_id' | 'duplicate_field';

/** A valid BSON document that cannot be staged. */
export class StagingRefusal extends Error {
  override name = 'StagingRefusal';
  constructor(
    readonly reason: RefusalReason,
    readonly detail: string,
    /** The `_id`'s canonical Extended JSON, when the refusal is about an `_id` bson cannot decode faithfully (a Date beyond JavaScript: "NaN"). */
    readonly idText?: string,
  ) {
    super(detail);
  }
}

/** What the writer noticed of a top-level field on the way (extract's census, watermark, order). */
export interface FieldFacts {
  /** BSON type byte; 0 when the field is absent (or not kept). */
  type: number;
  /** Where its value lies in the source document. */
  start: number;
  end: number;
  /** An array holding a Date (what `{$type: "date"}` also matches). */
  arrayHoldsDate: boolean;
}

export interface LineFacts {
  readonly id: FieldFacts;
  readonly creationDate: FieldFacts;
  readonly updateDate: FieldFacts;
}

export interface WriterOptions {
  /** The staging escapes (default); false: plain canonical Extended JSON, invalid UTF-8 is a decode error. */
  readonly escapes?: boolean;
  readonly maxDepth?: number;
  /** Initial size of the output buffer. */
  readonly chunkBytes?: number;
}

/** Top-level field names to keep (a projection), compared as bytes. */
export class FieldSet {
  private readonly names: Buffer[];
  constructor(names: Iterable<string>) {
    this.names = [...new Set(names)].map((n) => Buffer.from(n, 'utf8'));
  }
  has(src: Buffer, start: number, end: number): boolean {
    const length = end - start;
    for (const n of this.names) {
      if (n.length !== length) continue;
      let i = 0;
      while (i < length && n[i] === src[start + i]) i += 1;
      if (i === length) return true;
    }
    return false;
  }
}

const T_DOUBLE = 0x01;
const T_STRING = 0x02;
const T_DOCUMENT = 0x03;
const T_ARRAY = 0x04;
const T_BINARY = 0x05;
const T_UNDEFINED = 0x06;
const T_OBJECT_ID = 0x07;
const T_BOOLEAN = 0x08;
const T_DATE = 0x09;
const T_NULL = 0x0a;
const T_REGEX = 0x0b;
const T_DB_POINTER = 0x0c;
const T_CODE = 0x0d;
const T_SYMBOL = 0x0e;
const T_CODE_W_SCOPE = 0x0f;
const T_INT32 = 0x10;
const T_TIMESTAMP = 0x11;
const T_INT64 = 0x12;
const T_DECIMAL = 0x13;
const T_MIN_KEY = 0xff;
const T_MAX_KEY = 0x7f;

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const HEX = ascii('0123456789abcdef');
const ESCAPE_PREFIX = ascii(`{"${ESCAPED_DOCUMENT_KEY}":`);
const B = {
  int: ascii('{"$numberInt":"'),
  long: ascii('{"$numberLong":"'),
  double: ascii('{"$numberDouble":"'),
  decimal: ascii('{"$numberDecimal":"'),
  date: ascii('{"$date":{"$numberLong":"'),
  oid: ascii('{"$oid":"'),
  binary: ascii('{"$binary":{"base64":"'),
  subType: ascii('","subType":"'),
  regex: ascii('{"$regularExpression":{"pattern":'),
  options: ascii(',"options":'),
  code: ascii('{"$code":'),
  scope: ascii(',"$scope":'),
  symbol: ascii('{"$symbol":'),
  timestamp: ascii('{"$timestamp":{"t":'),
  i: ascii(',"i":'),
  ref: ascii('{"$ref":'),
  refId: ascii(',"$id":'),
  invalid: ascii(`{"${INVALID_UTF8_KEY}":"`),
  minKey: ascii('{"$minKey":1}'),
  maxKey: ascii('{"$maxKey":1}'),
  null: ascii('null'),
  true: ascii('true'),
  false: ascii('false'),
};
/** JSON escapes of the bytes below 0x20, as JSON.stringify writes them. */
const CONTROL = Array.from({ length: 32 }, (_, c) => ascii(JSON.stringify(String.fromCharCode(c)).slice(1, -1)));
/** JavaScript's Date range: beyond it bson writes "NaN"; here it decides whether an _id can be ordered. */
const JS_DATE_LIMIT = 8_640_000_000_000_000n;

const noFacts = (): FieldFacts => ({ type: 0, start: 0, end: 0, arrayHoldsDate: false });

export class NdjsonWriter {
  private out: Buffer;
  private pos = 0;
  private src: Buffer = Buffer.alloc(0);
  private readonly escapes: boolean;
  private readonly maxDepth: number;
  /** Reused line after line: valid until the next writeLine. */
  private readonly facts: LineFacts = { id: noFacts(), creationDate: noFacts(), updateDate: noFacts() };

  constructor(options: WriterOptions = {}) {
    this.escapes = options.escapes ?? true;
    this.maxDepth = options.maxDepth ?? MAX_NESTING_DEPTH;
    this.out = Buffer.allocUnsafe(options.chunkBytes ?? 1 << 20);
  }

  /** Bytes written since the last take(). */
  get length(): number {
    return this.pos;
  }

  /** The bytes written so far, handed over (the writer continues in a fresh buffer). */
  take(): Buffer {
    const done = this.out.subarray(0, this.pos);
    this.out = Buffer.allocUnsafe(this.out.length);
    this.pos = 0;
    return done;
  }

  /** Drops what was written from `at` on (a line the caller decided not to stage). */
  rollback(at: number): void {
    this.pos = at;
  }

  /** The bytes written from `at` on (a view into the output, valid until the next write). */
  bytesFrom(at: number): Buffer {
    return this.out.subarray(at, this.pos);
  }

  /** The text written from `at` on, without the newline. */
  textFrom(at: number): string {
    return this.out.toString('utf8', at, this.pos).replace(/\n$/, '');
  }

  /**
   * Writes the document in `doc` (exactly one document, as framed by its length) as one line,
   * keeping only the top-level fields of `keep` (null: all). Returns what it noticed of `_id`,
   * creation_date and update_date (valid until the next call); throws BsonDecodeError or
   * StagingRefusal with nothing written.
   */
  writeLine(doc: Buffer, keep: FieldSet | null = null): LineFacts {
    const start = this.pos;
    this.src = doc;
    this.facts.id.type = 0;
    this.facts.creationDate.type = 0;
    this.facts.updateDate.type = 0;
    try {
      if (doc.length < 5) throw new BsonDecodeError(`a document needs 5 bytes, ${doc.length} given`, 0);
      const size = doc.readInt32LE(0);
      if (size !== doc.length) throw new BsonDecodeError(`the document says it has ${size} bytes, ${doc.length} given`, 0);
      this.writeDocument(0, size, 0, false, keep);
      this.ensure(1);
      this.out[this.pos++] = 0x0a;
      this.checkId();
      return this.facts;
    } catch (error) {
      this.pos = start;
      if (error instanceof DuplicateField) throw this.duplicateRefusal(doc.length, keep);
      if (error instanceof BsonDecodeError && this.facts.id.type !== 0) error.id = { ...this.facts.id };
      throw error;
    }
  }

  // ── output ────────────────────────────────────────────────────────────────────────────────

  private ensure(n: number): void {
    if (this.pos + n <= this.out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.pos + n));
    this.out.copy(bigger, 0, 0, this.pos);
    this.out = bigger;
  }

  private bytes(b: Buffer): void {
    const n = b.length;
    this.ensure(n);
    // The constants are short: a loop costs less than a native copy.
    const out = this.out;
    let p = this.pos;
    for (let i = 0; i < n; i += 1) out[p++] = b[i]!;
    this.pos = p;
  }

  private byte(c: number): void {
    this.ensure(1);
    this.out[this.pos++] = c;
  }

  private latin1(s: string): void {
    this.ensure(s.length);
    this.pos += this.out.write(s, this.pos, 'latin1');
  }

  /**
   * A JSON string of the source bytes [s, e), escaped as JSON.stringify escapes; false (nothing
   * written) when they are not UTF-8. One pass: bytes are copied as they are checked, and only a
   * string with a byte ≥ 0x80 is validated (natively) at the end.
   */
  private jsonString(s: number, e: number): boolean {
    const src = this.src;
    const start = this.pos;
    this.ensure(e - s + 2);
    let out = this.out;
    let p = this.pos;
    let high = 0;
    out[p++] = 0x22;
    for (let i = s; i < e; i += 1) {
      const c = src[i]!;
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c) {
        high |= c;
        out[p++] = c;
        continue;
      }
      const esc = c < 0x20 ? CONTROL[c]! : c === 0x22 ? ESC_QUOTE : ESC_BACKSLASH;
      this.pos = p;
      this.ensure(esc.length + (e - i) + 1);
      out = this.out;
      for (let k = 0; k < esc.length; k += 1) out[p++] = esc[k]!;
    }
    if (high >= 0x80 && !isUtf8(src.subarray(s, e))) {
      this.pos = start;
      return false;
    }
    out[p++] = 0x22;
    this.pos = p;
    return true;
  }

  /** A string that must be UTF-8 (a key, code, a symbol, a regex): refused otherwise. */
  private requiredString(s: number, e: number, what: () => string): void {
    if (this.jsonString(s, e)) return;
    if (!this.escapes) throw new BsonDecodeError(`invalid UTF-8 in ${what()}`, s);
    throw new StagingRefusal('invalid_utf8', `invalid UTF-8 in ${what()}`);
  }

  /** The decimal digits of a safe integer, written in place (no string), two at a time. */
  private digits(n: number): void {
    this.ensure(24);
    const out = this.out;
    let p = this.pos;
    if (n < 0) {
      out[p++] = 0x2d;
      n = -n;
    }
    let length = 1;
    while (length < 16 && n >= POW10[length]!) length += 1;
    if (length === 16) length = String(n).length;
    let q = p + length;
    while (n >= 100) {
      const next = Math.floor(n / 100);
      const r = 2 * (n - next * 100);
      out[--q] = PAIRS[r + 1]!;
      out[--q] = PAIRS[r]!;
      n = next;
    }
    if (n >= 10) {
      out[--q] = PAIRS[2 * n + 1]!;
      out[--q] = PAIRS[2 * n]!;
    } else out[--q] = 48 + n;
    this.pos = p + length;
  }

  // ── structure ─────────────────────────────────────────────────────────────────────────────

  /** The end of a cstring starting at `s` (the position of its NUL), within `limit`. */
  private cstringEnd(s: number, limit: number, what: string): number {
    // Field names are short: a loop costs less than a native indexOf.
    const src = this.src;
    let end = s;
    while (end < limit && src[end] !== 0) end += 1;
    if (end >= limit) throw new BsonDecodeError(`${what} is not terminated`, s);
    return end;
  }

  /** A length-prefixed string's bytes [at+4, end-1), its end checked: returns the end of the value. */
  private stringEnd(at: number, limit: number, what: string): number {
    if (at + 4 > limit) throw new BsonDecodeError(`${what} is cut short`, at);
    const length = this.src.readInt32LE(at);
    if (length < 1 || at + 4 + length > limit) throw new BsonDecodeError(`${what} has an invalid length ${length}`, at);
    if (this.src[at + 4 + length - 1] !== 0) throw new BsonDecodeError(`${what} does not end with a NUL byte`, at + 4 + length - 1);
    return at + 4 + length;
  }

  private documentEnd(at: number, limit: number, what: string): number {
    if (at + 4 > limit) throw new BsonDecodeError(`${what} is cut short`, at);
    const length = this.src.readInt32LE(at);
    if (length < 5 || at + length > limit) throw new BsonDecodeError(`${what} has an invalid length ${length}`, at);
    return at + length;
  }

  /** Where the value of an element of `type` starting at `at` ends, its lengths checked against `limit`. */
  private valueEnd(type: number, at: number, limit: number): number {
    let end: number;
    switch (type) {
      case T_DOUBLE:
      case T_DATE:
      case T_TIMESTAMP:
      case T_INT64:
        end = at + 8;
        break;
      case T_INT32:
        end = at + 4;
        break;
      case T_OBJECT_ID:
        end = at + 12;
        break;
      case T_DECIMAL:
        end = at + 16;
        break;
      case T_BOOLEAN:
        end = at + 1;
        break;
      case T_NULL:
      case T_UNDEFINED:
      case T_MIN_KEY:
      case T_MAX_KEY:
        end = at;
        break;
      case T_STRING:
      case T_CODE:
      case T_SYMBOL:
        return this.stringEnd(at, limit, 'a string');
      case T_DOCUMENT:
      case T_ARRAY:
      case T_CODE_W_SCOPE:
        return this.documentEnd(at, limit, type === T_ARRAY ? 'an array' : type === T_DOCUMENT ? 'a subdocument' : 'a code with scope');
      case T_BINARY: {
        if (at + 5 > limit) throw new BsonDecodeError('a binary value is cut short', at);
        const length = this.src.readInt32LE(at);
        if (length < 0 || at + 5 + length > limit) throw new BsonDecodeError(`a binary value has an invalid length ${length}`, at);
        return at + 5 + length;
      }
      case T_REGEX:
        return this.cstringEnd(this.cstringEnd(at, limit, 'a regular expression pattern') + 1, limit, 'regular expression options') + 1;
      case T_DB_POINTER:
        end = this.stringEnd(at, limit, 'a DBPointer namespace') + 12;
        break;
      default:
        throw new BsonDecodeError(`unknown BSON type 0x${type.toString(16).padStart(2, '0')}`, at - 1);
    }
    if (end > limit) throw new BsonDecodeError('a value is cut short', at);
    return end;
  }

  /**
   * The document (or array) at [at, end): `{…}` / `[…]`. At depth 0 the fields of `keep` only, and
   * their facts noted. A subdocument with a `$` key that is not a DBRef is wrapped in the escape.
   */
  private writeDocument(at: number, end: number, depth: number, isArray: boolean, keep: FieldSet | null): void {
    const src = this.src;
    if (src[end - 1] !== 0) throw new BsonDecodeError('a document does not end with a 0x00 byte', end - 1);
    const start = this.pos;
    this.byte(isArray ? 0x5b : 0x7b);
    const watchDollars = depth > 0 && !isArray && this.escapes;
    let dollars: DollarKeys | null = null;
    // Names given twice are refused: a 64-bit filter of each name's length and end bytes tells most
    // new names apart at once (no allocation); a name whose bit is set is compared with the earlier
    // names, and a wide document (more than 64 fields) keeps a Set of them instead.
    let seenLow = 0;
    let seenHigh = 0;
    let fields = 0;
    let wide: Set<string> | null = null;
    let first = true;
    let i = at + 4;
    for (;;) {
      if (i >= end) throw framing(depth, new BsonDecodeError('a document runs past its length', i));
      const type = src[i]!;
      if (type === 0) {
        if (i !== end - 1) throw framing(depth, new BsonDecodeError('a document ends before its length', i));
        break;
      }
      const nameStart = i + 1;
      let nameEnd: number;
      let valueEnd: number;
      try {
        nameEnd = this.cstringEnd(nameStart, end - 1, 'a field name');
        valueEnd = this.valueEnd(type, nameEnd + 1, end - 1);
      } catch (error) {
        throw framing(depth, error);
      }
      const valueAt = nameEnd + 1;
      i = valueEnd;
      if (keep !== null && !keep.has(src, nameStart, nameEnd)) continue;
      if (!first) this.byte(0x2c);
      first = false;
      if (!isArray) {
        this.requiredString(nameStart, nameEnd, () => `a field name (${src.toString('utf8', nameStart, nameEnd)})`);
        if (fields < WIDE_DOCUMENT) {
          const bit = ((nameEnd - nameStart) * 7 + src[nameStart]! * 31 + src[nameEnd - 1]!) & 63;
          const mask = 1 << (bit & 31);
          if ((bit < 32 ? seenLow : seenHigh) & mask && this.nameBefore(at, nameStart, nameEnd)) throw new DuplicateField();
          if (bit < 32) seenLow |= mask;
          else seenHigh |= mask;
        } else {
          wide ??= this.namesBefore(at, nameStart);
          const name = src.toString('latin1', nameStart, nameEnd);
          if (wide.has(name)) throw new DuplicateField();
          wide.add(name);
        }
        fields += 1;
        this.byte(0x3a);
        // A `$` key is rare: its bookkeeping is made only then.
        if (watchDollars && src[nameStart] === 0x24) (dollars ??= new DollarKeys()).note(src, nameStart, nameEnd, type);
      }
      if (depth === 0) this.noteFacts(nameStart, nameEnd, type, valueAt, valueEnd);
      this.writeValue(type, valueAt, valueEnd, depth);
    }
    this.byte(isArray ? 0x5d : 0x7d);
    if (dollars?.needsEscape()) this.wrapFrom(start);
  }

  /** Wraps what was written from `start` in `{"$etlDocument": …}`. */
  private wrapFrom(start: number): void {
    const length = this.pos - start;
    this.ensure(ESCAPE_PREFIX.length + 1);
    this.out.copyWithin(start + ESCAPE_PREFIX.length, start, start + length);
    ESCAPE_PREFIX.copy(this.out, start);
    this.pos += ESCAPE_PREFIX.length;
    this.byte(0x7d);
  }

  private noteFacts(nameStart: number, nameEnd: number, type: number, at: number, end: number): void {
    const src = this.src;
    const length = nameEnd - nameStart;
    let facts: FieldFacts | null = null;
    if (length === 3 && src[nameStart] === 0x5f && src[nameStart + 1] === 0x69 && src[nameStart + 2] === 0x64) facts = this.facts.id;
    else if (length === 13 && sameBytes(src, nameStart, CREATION_DATE)) facts = this.facts.creationDate;
    else if (length === 11 && sameBytes(src, nameStart, UPDATE_DATE)) facts = this.facts.updateDate;
    if (facts === null) return;
    facts.type = type;
    facts.start = at;
    facts.end = end;
    facts.arrayHoldsDate = type === T_ARRAY && this.arrayHoldsDate(at, end);
  }

  /** True when an array's elements include a Date (structure already checked by valueEnd of its parent only: re-walked safely). */
  private arrayHoldsDate(at: number, end: number): boolean {
    const src = this.src;
    let i = at + 4;
    while (i < end - 1) {
      const type = src[i]!;
      if (type === T_DATE) return true;
      const nameEnd = this.cstringEnd(i + 1, end - 1, 'a field name');
      i = this.valueEnd(type, nameEnd + 1, end - 1);
    }
    return false;
  }

  /** The `_id` must be orderable and resumable after: a string that is UTF-8, a Date a JavaScript Date holds. */
  private checkId(): void {
    if (!this.escapes) return;
    const id = this.facts.id;
    if (id.type === T_STRING && !isUtf8(this.src.subarray(id.start + 4, id.end - 1))) {
      throw new StagingRefusal('invalid_utf8', 'the _id is a string that is not valid UTF-8');
    }
    if (id.type === T_DATE) {
      const ms = this.src.readBigInt64LE(id.start);
      if (ms > JS_DATE_LIMIT || ms < -JS_DATE_LIMIT) throw new StagingRefusal('invalid_id', `the _id is a date of ${ms} ms, beyond any calendar`, `{"$date":{"$numberLong":"${ms}"}}`);
    }
  }

  /** Whether a field before the one named [s, e) of the document at `at` has that name. */
  private nameBefore(at: number, s: number, e: number): boolean {
    const src = this.src;
    const length = e - s;
    for (let i = at + 4; i < s - 1; ) {
      const nameEnd = this.cstringEnd(i + 1, s, 'a field name');
      if (nameEnd - i - 1 === length && src.compare(src, i + 1, nameEnd, s, e) === 0) return true;
      i = this.valueEnd(src[i]!, nameEnd + 1, s);
    }
    return false;
  }

  /** The names of the fields before the one starting at `s` (its name) of the document at `at`. */
  private namesBefore(at: number, s: number): Set<string> {
    const src = this.src;
    const names = new Set<string>();
    for (let i = at + 4; i < s - 1; ) {
      const nameEnd = this.cstringEnd(i + 1, s, 'a field name');
      names.add(src.toString('latin1', i + 1, nameEnd));
      i = this.valueEnd(src[i]!, nameEnd + 1, s);
    }
    return names;
  }

  /** The refusal of a document naming a field twice, with the path of the first such field (walked again: rare). */
  private duplicateRefusal(size: number, keep: FieldSet | null): StagingRefusal {
    const path = this.duplicatePath(0, size, false, keep) ?? ['?'];
    return new StagingRefusal('duplicate_field', `the field "${path.join('.')}" is given twice in one document`);
  }

  /** The first repeated name, in the order writeDocument meets it, as a path (`address.city`); null when none. */
  private duplicatePath(at: number, end: number, isArray: boolean, keep: FieldSet | null): string[] | null {
    const src = this.src;
    const seen = new Set<string>();
    let i = at + 4;
    while (i < end - 1) {
      const type = src[i]!;
      const nameStart = i + 1;
      const nameEnd = this.cstringEnd(nameStart, end - 1, 'a field name');
      const valueAt = nameEnd + 1;
      const valueEnd = this.valueEnd(type, valueAt, end - 1);
      i = valueEnd;
      if (keep !== null && !keep.has(src, nameStart, nameEnd)) continue;
      const name = src.toString('utf8', nameStart, nameEnd);
      if (!isArray) {
        if (seen.has(name)) return [name];
        seen.add(name);
      }
      let inner: string[] | null = null;
      if (type === T_DOCUMENT || type === T_ARRAY) inner = this.duplicatePath(valueAt, valueEnd, type === T_ARRAY, null);
      else if (type === T_CODE_W_SCOPE) inner = this.duplicatePath(this.stringEnd(valueAt + 4, valueEnd, 'code'), valueEnd, false, null);
      if (inner) return [name, ...inner];
    }
    return null;
  }

  // ── values ────────────────────────────────────────────────────────────────────────────────

  private writeValue(type: number, at: number, end: number, depth: number): void {
    const src = this.src;
    switch (type) {
      case T_STRING:
        if (!this.jsonString(at + 4, end - 1)) this.invalidString(at + 4, end - 1);
        return;
      case T_DOCUMENT:
      case T_ARRAY:
        if (depth + 1 > this.maxDepth) throw new StagingRefusal('too_deep', `subdocuments or arrays nested more than ${this.maxDepth} levels deep`);
        this.writeDocument(at, end, depth + 1, type === T_ARRAY, null);
        return;
      case T_INT32:
        this.bytes(B.int);
        this.digits(src.readInt32LE(at));
        this.bytes(CLOSE_STRING);
        return;
      case T_OBJECT_ID:
        this.bytes(B.oid);
        this.hex(at, 12);
        this.bytes(CLOSE_STRING);
        return;
      case T_DATE:
        this.bytes(B.date);
        this.int64(at);
        this.bytes(CLOSE_STRING_2);
        return;
      case T_DOUBLE:
        this.bytes(B.double);
        this.latin1(doubleText(src.readDoubleLE(at)));
        this.bytes(CLOSE_STRING);
        return;
      case T_INT64:
        this.bytes(B.long);
        this.int64(at);
        this.bytes(CLOSE_STRING);
        return;
      case T_BOOLEAN: {
        const b = src[at];
        if (b !== 0 && b !== 1) throw new BsonDecodeError(`a boolean holds ${b}`, at);
        this.bytes(b === 1 ? B.true : B.false);
        return;
      }
      case T_NULL:
      case T_UNDEFINED:
        this.bytes(B.null);
        return;
      default:
        this.writeRareValue(type, at, end, depth);
    }
  }

  private writeRareValue(type: number, at: number, end: number, depth: number): void {
    const src = this.src;
    switch (type) {
      case T_DECIMAL:
        this.bytes(B.decimal);
        this.latin1(new Decimal128(src.subarray(at, at + 16)).toString());
        this.bytes(CLOSE_STRING);
        return;
      case T_BINARY:
        this.binary(at, end);
        return;
      case T_TIMESTAMP:
        this.bytes(B.timestamp);
        this.digits(src.readUInt32LE(at + 4));
        this.bytes(B.i);
        this.digits(src.readUInt32LE(at));
        this.bytes(CLOSE_2);
        return;
      case T_REGEX:
        this.regex(at, end);
        return;
      case T_CODE:
      case T_SYMBOL:
        this.bytes(type === T_CODE ? B.code : B.symbol);
        this.requiredString(at + 4, end - 1, () => (type === T_CODE ? 'JavaScript code' : 'a symbol'));
        this.byte(0x7d);
        return;
      case T_CODE_W_SCOPE:
        this.codeWithScope(at, end, depth);
        return;
      case T_DB_POINTER: {
        // The corpus's converted form (a DBRef document), which is also what bson writes.
        const nsEnd = end - 12;
        this.bytes(B.ref);
        this.requiredString(at + 4, nsEnd - 1, () => 'a DBPointer namespace');
        this.bytes(B.refId);
        this.bytes(B.oid);
        this.hex(nsEnd, 12);
        this.bytes(CLOSE_STRING_2);
        return;
      }
      case T_MIN_KEY:
        this.bytes(B.minKey);
        return;
      case T_MAX_KEY:
        this.bytes(B.maxKey);
        return;
      default:
        throw new BsonDecodeError(`unknown BSON type 0x${type.toString(16).padStart(2, '0')}`, at - 1);
    }
  }

  private invalidString(s: number, e: number): void {
    if (!this.escapes) throw new BsonDecodeError('invalid UTF-8 in a string', s);
    this.bytes(B.invalid);
    this.latin1(this.src.toString('base64', s, e));
    this.bytes(CLOSE_STRING);
  }

  private hex(at: number, n: number): void {
    this.ensure(2 * n);
    const src = this.src;
    const out = this.out;
    let p = this.pos;
    for (let i = at; i < at + n; i += 1) {
      const b = src[i]!;
      out[p++] = HEX[b >> 4]!;
      out[p++] = HEX[b & 15]!;
    }
    this.pos = p;
  }

  private int64(at: number): void {
    const src = this.src;
    const high = src.readInt32LE(at + 4);
    // Exact as a double while |value| < 2^53: the common case (dates, counters) without a BigInt.
    if (high >= -0x200000 && high < 0x200000) this.digits(high * 0x100000000 + src.readUInt32LE(at));
    else this.latin1(src.readBigInt64LE(at).toString());
  }

  private binary(at: number, end: number): void {
    const src = this.src;
    const subType = src[at + 4]!;
    let dataAt = at + 5;
    if (subType === 0x02) {
      // The old binary subtype repeats the length inside: it must agree.
      const inner = end - at - 5 >= 4 ? src.readInt32LE(at + 5) : -1;
      if (inner !== end - at - 9) throw new BsonDecodeError(`a binary value of subtype 2 says ${inner} bytes inside ${end - at - 5}`, at);
      dataAt = at + 9;
    }
    this.bytes(B.binary);
    this.latin1(src.toString('base64', dataAt, end));
    this.bytes(B.subType);
    this.hex(at + 4, 1);
    this.bytes(CLOSE_STRING_2);
  }

  private regex(at: number, end: number): void {
    const src = this.src;
    const patternEnd = src.indexOf(0, at);
    this.bytes(B.regex);
    this.requiredString(at, patternEnd, () => 'a regular expression');
    this.bytes(B.options);
    // bson (and the corpus) write the options in alphabetical order.
    const options = src.subarray(patternEnd + 1, end - 1);
    if (!isUtf8(options)) this.requiredString(patternEnd + 1, end - 1, () => 'regular expression options');
    else this.latin1(JSON.stringify([...options.toString('utf8')].sort().join('')));
    this.bytes(CLOSE_2);
  }

  private codeWithScope(at: number, end: number, depth: number): void {
    if (end - at < 14) throw new BsonDecodeError(`a code with scope of ${end - at} bytes is too short`, at);
    const codeEnd = this.stringEnd(at + 4, end, 'the code of a code with scope');
    const scopeEnd = this.documentEnd(codeEnd, end, 'the scope of a code with scope');
    if (scopeEnd !== end) throw new BsonDecodeError('a code with scope does not end where its scope ends', at);
    this.bytes(B.code);
    this.requiredString(at + 8, codeEnd - 1, () => 'JavaScript code');
    this.bytes(B.scope);
    if (depth + 1 > this.maxDepth) throw new StagingRefusal('too_deep', `subdocuments or arrays nested more than ${this.maxDepth} levels deep`);
    this.writeDocument(codeEnd, scopeEnd, depth + 1, false, null);
    this.byte(0x7d);
  }
}

/**
 * A field name given twice in one document. BSON allows it and MongoDB may hold it, but its staged
 * line would be ambiguous: a JSON reader keeps one of the two values (transform and PostgreSQL's
 * JSONB the last), so one document would silently become another. Thrown without its path, which
 * writeLine finds by walking the document again (duplicatePath): no bookkeeping on the way down.
 */
class DuplicateField extends Error {
  constructor() {
    super('a field name given twice');
  }
}

/** An error of the top-level document's own fields (depth 0) marked as a framing error. */
function framing(depth: number, error: unknown): unknown {
  if (depth === 0 && error instanceof BsonDecodeError) error.framing = true;
  return error;
}

const ESC_QUOTE = ascii('\\"');
const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i);
/** "00" … "99": the ASCII digits of each pair. */
const PAIRS = ascii(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''));
const ESC_BACKSLASH = ascii('\\\\');
const CLOSE_STRING = ascii('"}');
const CLOSE_STRING_2 = ascii('"}}');
const CLOSE_2 = ascii('}}');

/** Fields of one document beyond which its names are kept in a Set rather than a 64-bit filter. */
const WIDE_DOCUMENT = 64;

const CREATION_DATE = ascii('creation_date');
const UPDATE_DATE = ascii('update_date');

function sameBytes(src: Buffer, at: number, name: Buffer): boolean {
  for (let i = 0; i < name.length; i += 1) if (src[at + i] !== name[i]) return false;
  return true;
}

/** bson's canonical double text: `1.0` for an integral value, `-0.0`, else the shortest round trip. */
function doubleText(v: number): string {
  if (Object.is(v, -0)) return '-0.0';
  return Number.isInteger(v) ? v.toFixed(1) : String(v);
}

/**
 * The `$` keys of a subdocument, seen as it is written: it needs the escape unless it has none, or
 * is a DBRef as bson reads one ($ref a string, $id present and not null, $db a string when present,
 * no other `$` key), which the Extended JSON specification reads as a document.
 */
class DollarKeys {
  private any = false;
  private other = false;
  private ref = 0;
  private id = 0;
  private db = 0;

  note(src: Buffer, s: number, e: number, type: number): void {
    this.any = true;
    const name = src.toString('latin1', s, e);
    if (name === '$ref') this.ref = type;
    else if (name === '$id') this.id = type;
    else if (name === '$db') this.db = type;
    else this.other = true;
  }

  needsEscape(): boolean {
    if (!this.any) return false;
    const dbRef = !this.other && this.ref === T_STRING && this.id !== 0 && this.id !== T_NULL && this.id !== T_UNDEFINED && (this.db === 0 || this.db === T_STRING);
    return !dbRef;
  }
}
