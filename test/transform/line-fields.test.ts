// transform/line-fields.ts reads the fields a table needs from a staged line without JSON.parse of
// the whole line. It must give exactly what JSON.parse gives for those fields, leave missing fields
// missing, and throw what JSON.parse throws on a line that is not JSON: checked here on every line
// extract stages for the bundled sample (default scale) and for the hostile corpus, on every
// canonical Extended JSON value of the BSON corpus, and on seeded random JSON with its mutations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { serialize } from 'bson';
import { StagingError } from '../../errors/etl-error.ts';
import { DEFAULT_SCALE, generateSample } from '../../sample/generate.ts';
import { NdjsonWriter } from '../../staging/ndjson-writer.ts';
import { LineFields } from '../../transform/line-fields.ts';
import { parseDocumentLine } from '../../transform/ndjson-batches.ts';
import { KINDS } from '../hostile/corpus/kinds.ts';
import { cleanSample, type DumpDocument } from '../hostile/corpus/sample.ts';

/** Either the parsed value or the error JSON.parse throws. */
function jsonParse(line: string): { value: unknown } | { error: Error } {
  try {
    return { value: JSON.parse(line) };
  } catch (error) {
    return { error: error as Error };
  }
}

/** Field sets a line is read with: every key it has, about half of them, and some it lacks. */
function fieldSets(value: unknown, line: string): string[][] {
  const keys = typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.keys(value) : [];
  const some = keys.filter((_, i) => i % 2 === 1);
  // Another third, picked by the line's length, so every key is skipped in some lines and read in others.
  const other = keys.filter((_, i) => (i + line.length) % 3 === 0);
  return [keys, ['_id', ...some, 'absent'], other, ['_id'], ['absent', '__proto__', 'constructor']];
}

/** The reader gives JSON.parse's value for every wanted field, nothing for a missing one, or the same error. */
function assertSame(line: string, what: string): void {
  const expected = jsonParse(line);
  for (const fields of fieldSets('value' in expected ? expected.value : null, line)) {
    const reader = new LineFields(fields);
    if ('error' in expected) {
      assert.throws(() => reader.read(line), (e: Error) => e.constructor === expected.error.constructor && e.message === expected.error.message, `${what}: ${line.slice(0, 200)}`);
      continue;
    }
    const got = reader.read(line) as Record<string, unknown>;
    const want = expected.value as Record<string, unknown>;
    if (typeof want !== 'object' || want === null || Array.isArray(want)) {
      assert.deepEqual(got, want, what);
      continue;
    }
    for (const f of fields) {
      if (Object.hasOwn(want, f)) assert.deepEqual(got[f], want[f], `${what}: field ${f} of ${line.slice(0, 300)}`);
      else assert.equal(Object.hasOwn(got, f), false, `${what}: field ${f} is missing from ${line.slice(0, 300)}`);
    }
    assert.equal(Object.getPrototypeOf(got), Object.prototype, what);
  }
}

/** The staged line of a BSON document, as extract writes it (null when extract refuses it). */
function stagedLine(doc: DumpDocument): string | null {
  const writer = new NdjsonWriter();
  try {
    writer.writeLine(Buffer.isBuffer(doc) ? doc : Buffer.from(serialize(doc)));
  } catch {
    return null;
  }
  return writer.take().toString('utf8').replace(/\n$/, '');
}

test('every staged line of the bundled sample at its default scale', () => {
  const sample = generateSample({ scale: DEFAULT_SCALE, seed: 1 });
  let lines = 0;
  for (const c of sample.collections) {
    for (const doc of c.documents()) {
      const line = stagedLine(doc);
      assert.ok(line !== null, `${c.name}: the sample stages`);
      assertSame(line, c.name);
      lines += 1;
    }
  }
  assert.ok(lines >= DEFAULT_SCALE, `${lines} lines`);
});

test('every staged line of the hostile corpus, each bad document planted in the clean sample', () => {
  let lines = 0;
  for (const kind of KINDS) {
    const sample = cleanSample();
    kind.plant(sample);
    for (const [collection, docs] of Object.entries(sample)) {
      for (const doc of docs) {
        const line = stagedLine(doc);
        if (line === null) continue;
        assertSame(line, `${kind.name} (${collection})`);
        lines += 1;
      }
    }
  }
  assert.ok(lines >= KINDS.length * 10, `${lines} lines`);
});

const BSON_CORPUS = new URL('../fixtures/bson-corpus/', import.meta.url).pathname;

test('every canonical Extended JSON of the BSON corpus, as a field (as written and compact), and its parse errors', () => {
  let values = 0;
  for (const file of readdirSync(BSON_CORPUS).filter((f) => f.endsWith('.json'))) {
    const spec = JSON.parse(readFileSync(path.join(BSON_CORPUS, file), 'utf8')) as {
      valid?: { canonical_extjson: string; relaxed_extjson?: string }[];
      parseErrors?: { string: string }[];
    };
    for (const c of spec.valid ?? []) {
      for (const text of [c.canonical_extjson, c.relaxed_extjson].filter((t): t is string => t !== undefined)) {
        assertSame(`{"_id":{"$oid":"0123456789abcdef01234567"},"v":${text}}`, `${file}: ${text}`);
        assertSame(`{"_id":1,"v":${JSON.stringify(JSON.parse(text))},"w":"x"}`, `${file} compact: ${text}`);
        values += 1;
      }
    }
    for (const e of spec.parseErrors ?? []) assertSame(`{"_id":"p","v":${e.string}}`, `${file} parse error: ${e.string}`);
  }
  assert.ok(values >= 728, `${values} values`);
});

/** mulberry32: a small seeded generator, so a failure is repeatable. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces of JSON string text (already escaped): quotes, backslashes, braces, \u forms, surrogates. */
const STRING_PIECES = ['a', 'é', '日', '😀', ' ', '{', '}', '[', ']', ',', ':', '$oid', '\\"', '\\\\', '\\/', '\\b\\f\\n\\r\\t', '\\u0000', '\\u00e9', '\\ud83d\\ude00', '\\ud800', '\\udc00x', '\\u005c', '\\u0022', '\u2028'];
const NUMBERS = ['0', '-0', '7', '-12', '3.25', '1e5', '1E-5', '-2.5e+3', '123456789012345678901234567890', '0.000001'];
const KEYS = ['_id', 'a', 'b', 'x y', '$oid', '$date', '$numberLong', '__proto__', 'constructor', 'k\\"q', 'k\\\\s', 'k\\u0041'];

function randomJson(next: () => number, depth: number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const r = next();
  if (depth > 90 || r < 0.3) {
    let s = '';
    const n = Math.floor(next() * 6);
    for (let i = 0; i < n; i += 1) s += pick(STRING_PIECES);
    return `"${s}"`;
  }
  if (r < 0.4) return pick(NUMBERS);
  if (r < 0.47) return pick(['true', 'false', 'null']);
  if (r < 0.55) return pick(['{"$oid":"0123456789abcdef01234567"}', '{"$oid":"short"}', '{"$oid":"01234567\\"9abcdef012345678"}', '{"$date":{"$numberLong":"1546815600000"}}', '{"$date":{"$numberLong":"1\\u0030"}}', '{"$numberInt":"7"}', '{}', '[]']);
  // Deep chains now and then: past the fast path's depth, and far deeper.
  const width = depth > 3 && next() < 0.8 ? 1 : Math.floor(next() * 4);
  const parts: string[] = [];
  for (let i = 0; i < width; i += 1) parts.push(r < 0.78 ? `"${pick(KEYS)}":${randomJson(next, depth + 1)}` : randomJson(next, depth + 1));
  return r < 0.78 ? `{${parts.join(',')}}` : `[${parts.join(',')}]`;
}

/** A document line: `_id` and random fields (keys may repeat), now and then with whitespace. */
function randomLine(next: () => number): string {
  const fields: string[] = [`"_id":${randomJson(next, 0)}`];
  const n = Math.floor(next() * 6);
  for (let i = 0; i < n; i += 1) fields.push(`"${KEYS[Math.floor(next() * KEYS.length)]}":${randomJson(next, 0)}`);
  const line = `{${fields.join(',')}}`;
  return next() < 0.05 ? line.replace(/,/g, ' , ') : line;
}

/** The same line slightly broken: a character dropped, added or changed, or the line cut short. */
function mutated(line: string, next: () => number): string {
  const at = Math.floor(next() * line.length);
  const ch = '{}[]",:\\ 0a\u0001'[Math.floor(next() * 13)]!;
  switch (Math.floor(next() * 4)) {
    case 0:
      return line.slice(0, at) + line.slice(at + 1);
    case 1:
      return line.slice(0, at) + ch + line.slice(at);
    case 2:
      return line.slice(0, at) + ch + line.slice(at + 1);
    default:
      return line.slice(0, at);
  }
}

test('seeded random JSON, valid and mutated: escapes, surrogates, nested quotes and braces, odd keys, repeats, numbers, depth', () => {
  const next = random(20261205);
  let valid = 0;
  for (let i = 0; i < 20_000; i += 1) {
    const line = randomLine(next);
    if ('value' in jsonParse(line)) valid += 1;
    assertSame(line, `random line ${i}`);
    for (let m = 0; m < 3; m += 1) assertSame(mutated(line, next), `random line ${i}, mutation ${m}`);
  }
  assert.ok(valid > 15_000, `${valid} valid lines`);
});

test('a deep line, and lines the fast path leaves to JSON.parse, read the same', () => {
  const deep = `{"_id":1,"d":${'['.repeat(1000)}${']'.repeat(1000)},"e":"x"}`;
  for (const line of [deep, '{}', '[]', '"x"', '7', 'null', ' {"_id":1}', '{"_id":1} ', '{"_id":1,"_id":2}', '{"_id":1,"a":1,"a":2}', '{"__proto__":{"x":1},"_id":1}', '\ufeff{"_id":1}', '{"_id":"a\u0001b"}', '{"_id":"\\u00"}', '{"_id":1,}', '{"_id":1']) assertSame(line, line.slice(0, 40));
});

test('through parseDocumentLine, a line the reader refuses and a line without _id are bad_ndjson naming file and line', () => {
  const reader = new LineFields(['_id', 'a']);
  for (const line of ['{"_id":1,"a":[1,}', '{"a":"x"}', '{"_id":1,"a":{"$oid":"0123456789abcdef01234567"}', '[{"_id":1}]']) {
    assert.throws(
      () => parseDocumentLine(line, 'extract/things.ndjson', 42, reader),
      (e: unknown) => e instanceof StagingError && e.code === 'bad_ndjson' && e.message.includes('extract/things.ndjson:42'),
      line,
    );
  }
  assert.deepEqual(parseDocumentLine('{"_id":{"$oid":"0123456789abcdef01234567"},"a":"x","b":[]}', 'f', 1, reader), { _id: { $oid: '0123456789abcdef01234567' }, a: 'x' });
});
