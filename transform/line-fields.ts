// One staged line → the top-level fields its collection's tables read, without JSON.parse of the
// whole line.
//
// NOT USED BY THE STAGE (yet): measured slower than JSON.parse end to end on the sample at 200,000
// documents (bench/README.md, "Field-selective reading"). Extract already projects the fields the
// tables read, so a whole run skips none, V8's JSON.parse beats any scan in JavaScript on the lines
// holding non-ASCII text (two-byte strings), and the values it slices keep the 1 MiB text of their
// batch alive. Kept, with its proof, for a pass that reads few of the staged fields.
//
// Why: JSON.parse of every line was a fifth of the stage's time, part of it building fields no table
// reads. The staged NDJSON is our own writer's output (staging/ndjson-writer.ts): one object, no
// whitespace, keys without escapes, and a few value shapes over and over (strings, `{"$oid":"…"}`,
// `{"$date":{"$numberLong":"…"}}`, arrays of ObjectIds). Those shapes are built directly, fields no
// table reads are checked and dropped, and a string holding escapes is handed to JSON.parse alone.
//
// This is not a JSON parser: it is a fast path that accepts only what it has checked in full, and
// gives every other line to JSON.parse whole (which then returns the same document, or throws the
// same error, as before). It accepts a line only if it is `{` key `:` value (`,` key `:` value)* `}`
// with nothing else (no whitespace, no number), where every key is a string without `\`, every
// plain string has no `\` and no control character (checked once for the whole line), every string
// with a `\` is read by JSON.parse, and the values are strings, `true`, `false`, `null`, objects and
// arrays of the same, at most MAX_DEPTH deep. Such a line is valid JSON and its fields are exactly
// JSON.parse's. Doubt of any kind (a repeated key, `__proto__`, `{}`, a number, anything unexpected)
// sends the line to JSON.parse. test/transform/line-fields.test.ts holds the two equal on the staged
// sample, the hostile corpus, the BSON corpus and random JSON.
import type { RawDocument } from '../mapping/ejson-value.ts';

/** A raw control character (JSON.parse refuses one inside a string; our writer never writes one). */
const CONTROL = /[\u0000-\u001f]/;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Levels of nesting the fast path follows (the call stack's); deeper lines go to JSON.parse. */
const MAX_DEPTH = 64;

const LONG_DATE_HEAD = '{"$date":{"$numberLong":"';

/** Thrown inside the fast path when a line is not one it can vouch for: JSON.parse decides. */
const DOUBT = Symbol('doubt');

/** Reads the given top-level fields of staged lines (one instance per collection pass). */
export class LineFields {
  private readonly wanted: ReadonlySet<string>;
  /** The line being read, the cursor, and the next `\` at or after some earlier position. */
  private line = '';
  private at = 0;
  private backslash = -1;

  constructor(fields: Iterable<string>) {
    this.wanted = new Set(fields);
  }

  /**
   * The line's document holding the wanted fields it has (others may be missing), or whatever
   * JSON.parse returns for the line. Throws what JSON.parse throws on a line that is not JSON.
   */
  read(line: string): unknown {
    if (line.charCodeAt(0) !== OPEN_BRACE || CONTROL.test(line)) return JSON.parse(line);
    try {
      this.line = line;
      this.backslash = -1;
      this.at = 0;
      const doc = this.members(this.wanted, 0);
      if (this.at !== line.length) throw DOUBT;
      return doc;
    } catch (doubt) {
      if (doubt !== DOUBT) throw doubt;
      return JSON.parse(line);
    } finally {
      this.line = '';
    }
  }

  /**
   * The object at the cursor (`{` key `:` value, … `}`), with the keys in `keep` (null: every key).
   * `{}` is left to JSON.parse (rare: a top-level one has no _id, the caller refuses it).
   */
  private members(keep: ReadonlySet<string> | null, depth: number): RawDocument {
    const line = this.line;
    if (line.charCodeAt(this.at + 1) === CLOSE_BRACE) throw DOUBT;
    const doc: RawDocument = {};
    this.at += 1;
    for (;;) {
      const key = this.key();
      const kept = keep === null || keep.has(key);
      // A repeated key: JSON.parse keeps the last one; `__proto__` would set the prototype here.
      if (kept && (key === '__proto__' || Object.hasOwn(doc, key))) throw DOUBT;
      const value = this.value(depth);
      if (kept) doc[key] = value;
      const next = line.charCodeAt(this.at);
      this.at += 1;
      if (next === COMMA) continue;
      if (next === CLOSE_BRACE) return doc;
      throw DOUBT;
    }
  }

  /** The array at the cursor: `[]`, or `[` value (`,` value)* `]`. */
  private items(depth: number): unknown[] {
    const line = this.line;
    const items: unknown[] = [];
    this.at += 1;
    if (line.charCodeAt(this.at) === CLOSE_BRACKET) {
      this.at += 1;
      return items;
    }
    for (;;) {
      items.push(this.value(depth));
      const next = line.charCodeAt(this.at);
      this.at += 1;
      if (next === COMMA) continue;
      if (next === CLOSE_BRACKET) return items;
      throw DOUBT;
    }
  }

  /** A key and its `:` (a key holding `\` is left to JSON.parse). */
  private key(): string {
    const line = this.line;
    const at = this.at;
    if (line.charCodeAt(at) !== QUOTE) throw DOUBT;
    const end = line.indexOf('"', at + 1);
    if (end === -1 || this.slashFrom(at) < end || line.charCodeAt(end + 1) !== COLON) throw DOUBT;
    this.at = end + 2;
    return line.slice(at + 1, end);
  }

  /** The value at the cursor (`depth`: the levels above it); the cursor moves past it. */
  private value(depth: number): unknown {
    const line = this.line;
    const at = this.at;
    switch (line.charCodeAt(at)) {
      case QUOTE: {
        const end = line.indexOf('"', at + 1);
        if (end === -1) throw DOUBT;
        if (this.slashFrom(at) > end) {
          this.at = end + 1;
          return line.slice(at + 1, end);
        }
        return this.escapedString();
      }
      case OPEN_BRACE:
        if (depth >= MAX_DEPTH) throw DOUBT;
        return this.wrapper() ?? this.longDate() ?? this.members(null, depth + 1);
      case OPEN_BRACKET:
        if (depth >= MAX_DEPTH) throw DOUBT;
        return this.items(depth + 1);
      default:
        return this.literal();
    }
  }

  /**
   * Where the first `\` at or after `from` is (Infinity: none): a range [from, end) holds none when
   * `slashFrom(from) >= end`. Kept between calls, so the line is searched once per `\`.
   */
  private slashFrom(from: number): number {
    if (this.backslash < from) {
      const next = this.line.indexOf('\\', from);
      this.backslash = next === -1 ? Infinity : next;
    }
    return this.backslash;
  }

  /**
   * A one-key wrapper with a string value, `{"$oid":"…"}`, `{"$numberInt":"…"}`: the commonest
   * values after strings. Neither the key nor the text holds `\` (checked) or a quote (found by it).
   */
  private wrapper(): RawDocument | null {
    const line = this.line;
    const at = this.at;
    if (line.charCodeAt(at + 1) !== QUOTE) return null;
    const keyEnd = line.indexOf('"', at + 2);
    if (keyEnd === -1 || line.charCodeAt(keyEnd + 1) !== COLON || line.charCodeAt(keyEnd + 2) !== QUOTE) return null;
    const end = line.indexOf('"', keyEnd + 3);
    if (end === -1 || line.charCodeAt(end + 1) !== CLOSE_BRACE || this.slashFrom(at) < end) return null;
    const key = line.slice(at + 2, keyEnd);
    if (key === '__proto__') return null;
    this.at = end + 2;
    const text = line.slice(keyEnd + 3, end);
    // The commonest keys as literals: objects of one shape each, no computed key.
    if (key === '$oid') return { $oid: text };
    if (key === '$numberInt') return { $numberInt: text };
    return { [key]: text };
  }

  /** `{"$date":{"$numberLong":"<text>"}}`, two dates in nearly every document. */
  private longDate(): RawDocument | null {
    const line = this.line;
    const at = this.at;
    if (!line.startsWith(LONG_DATE_HEAD, at)) return null;
    const from = at + LONG_DATE_HEAD.length;
    const end = line.indexOf('"', from);
    if (end === -1 || this.slashFrom(from) < end || line.charCodeAt(end + 1) !== CLOSE_BRACE || line.charCodeAt(end + 2) !== CLOSE_BRACE) return null;
    this.at = end + 3;
    return { $date: { $numberLong: line.slice(from, end) } };
  }

  /** `true`, `false`, `null`; a number, or anything else, sends the line to JSON.parse. */
  private literal(): boolean | null {
    const line = this.line;
    const at = this.at;
    if (line.startsWith('true', at)) {
      this.at = at + 4;
      return true;
    }
    if (line.startsWith('false', at)) {
      this.at = at + 5;
      return false;
    }
    if (line.startsWith('null', at)) {
      this.at = at + 4;
      return null;
    }
    throw DOUBT;
  }

  /** A string holding `\` at the cursor, read by JSON.parse on its own (its end: a quote after an even run of `\`). */
  private escapedString(): string {
    const line = this.line;
    const at = this.at;
    let end = line.indexOf('"', at + 1);
    for (;;) {
      if (end === -1) throw DOUBT;
      let slashes = 0;
      while (line.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes += 1;
      if (slashes % 2 === 0) break;
      end = line.indexOf('"', end + 1);
    }
    let text: string;
    try {
      text = JSON.parse(line.slice(at, end + 1)) as string;
    } catch {
      throw DOUBT;
    }
    this.at = end + 1;
    return text;
  }
}
