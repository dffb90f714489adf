// The staging encoder (staging/ndjson-writer.ts) against the official BSON corpus
// (test/fixtures/bson-corpus, see its NOTICE.md): every `valid` case's canonical_bson (and
// degenerate_bson) gives its canonical_extjson, every `decodeErrors` case is a clear reject.
// Comparisons are normalized as the corpus allows (bson-corpus.md, "Extended JSON encoding,
// escaping and ordering"): whitespace and string escapes (both sides parsed as JSON, key order
// kept), and double text compared as the double it denotes ("Testers may need to normalize").
// Two deprecated types are staged in the corpus's converted form (undefined as null, DBPointer as
// the DBRef document: bson-corpus.md, "Deprecated types"), as bson writes them too: the expected
// text is the canonical one with those two converted (and equals converted_extjson where the
// corpus gives it for them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BsonDecodeError, NdjsonWriter, StagingRefusal } from '../../staging/ndjson-writer.ts';

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/bson-corpus');

interface ValidCase {
  description: string;
  canonical_bson: string;
  canonical_extjson: string;
  degenerate_bson?: string;
  converted_extjson?: string;
  lossy?: boolean;
}
interface CorpusFile {
  description: string;
  bson_type: string;
  deprecated?: boolean;
  valid?: ValidCase[];
  decodeErrors?: { description: string; bson: string }[];
}

/**
 * JSON text → a canonical string: parsed, doubles by value, key order kept; with `converted`,
 * undefined and DBPointer values in their converted form.
 */
function normalize(text: string, converted = false): string {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const only = Object.keys(o).length === 1;
    if (converted && only && o.$undefined === true) return null;
    if (converted && only && o.$dbPointer !== undefined) return walk(o.$dbPointer);
    if (only && typeof o.$numberDouble === 'string') {
      const n = Number(o.$numberDouble);
      return { $numberDouble: Object.is(n, -0) ? '-0' : String(n) };
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, walk(x)]));
  };
  return JSON.stringify(walk(JSON.parse(text)));
}

const files = readdirSync(CORPUS)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f, spec: JSON.parse(readFileSync(path.join(CORPUS, f), 'utf8')) as CorpusFile }));

function write(hex: string): string {
  const writer = new NdjsonWriter({ escapes: false });
  writer.writeLine(Buffer.from(hex, 'hex'));
  return writer.take().toString('utf8');
}

test('the corpus is all there: 31 files, every valid case and decode error counted', () => {
  assert.equal(files.length, 31);
  const valid = files.reduce((n, f) => n + (f.spec.valid?.length ?? 0), 0);
  const errors = files.reduce((n, f) => n + (f.spec.decodeErrors?.length ?? 0), 0);
  assert.deepEqual([valid, errors], [728, 75]);
});

for (const { name, spec } of files) {
  test(`${name}: ${spec.description}`, () => {
    for (const c of spec.valid ?? []) {
      const expected = normalize(c.canonical_extjson, true);
      if (spec.deprecated && c.converted_extjson && /^(0x06|0x0C)$/i.test(spec.bson_type)) assert.equal(expected, normalize(c.converted_extjson), `${c.description}: the converted form`);
      for (const [form, hex] of [['canonical_bson', c.canonical_bson], ['degenerate_bson', c.degenerate_bson]] as const) {
        if (hex === undefined) continue;
        let out: string;
        try {
          out = write(hex);
        } catch (error) {
          assert.fail(`${name} "${c.description}" (${form}): ${(error as Error).message}`);
        }
        assert.ok(out.endsWith('\n') && out.indexOf('\n') === out.length - 1, `${c.description}: one line`);
        assert.equal(normalize(out), expected, `${name} "${c.description}" (${form})`);
      }
    }
    for (const c of spec.decodeErrors ?? []) {
      assert.throws(
        () => write(c.bson),
        (e: unknown) => e instanceof BsonDecodeError && !(e instanceof StagingRefusal) && /at byte \d+ of the document/.test(e.message),
        `${name} "${c.description}" must be refused as not BSON`,
      );
    }
  });
}
