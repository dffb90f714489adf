// The fingerprint of a table's resolved mapping (model/fingerprint.ts): stable across edits that
// change nothing a full run yields (comments, key order, export_order, column order), different
// when the source, filter, a column, a type, the strategy spec or a key changes; and the rule load
// follows to store it (fingerprintToStore).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { fingerprintToStore, PARTIAL, pipelineFingerprints, tableFingerprint } from '../../model/fingerprint.ts';

const SHIPPED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../pipeline.yaml');

/** The shipped pipeline edited by `edit` (each edit must change the text), as fingerprints by table. */
async function fingerprintsOf(t: { after: (fn: () => Promise<void>) => void }, edit: (text: string) => string): Promise<Map<string, string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-fingerprint-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const original = await readFile(SHIPPED, 'utf8');
  const text = edit(original);
  assert.notEqual(text, original, 'the edit changed the file');
  await writeFile(path.join(dir, 'pipeline.yaml'), text);
  return pipelineFingerprints(await loadPipeline(path.join(dir, 'pipeline.yaml')));
}

function replaceOnce(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `pipeline.yaml holds ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

/** Tables whose fingerprint differs between a and b. */
const changed = (a: Map<string, string>, b: Map<string, string>) => [...a.keys()].filter((k) => a.get(k) !== b.get(k)).sort();

describe('tableFingerprint', () => {
  test('is a sha256, the same for the same mapping, different between tables', async () => {
    const model = await loadPipeline(SHIPPED);
    const all = pipelineFingerprints(model);
    assert.equal(all.size, model.loadOrder.length);
    for (const f of all.values()) assert.match(f, /^sha256:[0-9a-f]{64}$/);
    assert.equal(new Set(all.values()).size, all.size, 'every table has its own');
    const again = await loadPipeline(SHIPPED);
    assert.equal(tableFingerprint(again.tables.get('users')!, again.settings), all.get('users'));
  });

  test('comments, key order, export_order, column order and force_reimport change nothing', async (t) => {
    const base = pipelineFingerprints(await loadPipeline(SHIPPED));
    const edited = await fingerprintsOf(t, (s) => {
      let x = `# a new header line\n${s}`;
      x = replaceOnce(x, '  users:\n    include_base: true\n', '  users: # the people\n    export_order: 2\n    include_base: true\n    force_reimport: true\n');
      x = replaceOnce(x, '    additional_mappings:\n      birthday: birthdate\n      company: company_id\n    export_order: 2\n', '    additional_mappings:\n      company: company_id\n      birthday: birthdate\n');
      // Column order: phone before insurer.
      x = replaceOnce(x, '      - name: insurer\n        sql_type: VARCHAR(255)\n      - name: phone\n        sql_type: VARCHAR(255)\n', '      - name: phone\n        sql_type: VARCHAR(255)\n      - name: insurer\n        sql_type: VARCHAR(255)\n');
      x = replaceOnce(x, '    filter: { __t: menu }\n', '    filter:\n      __t: menu   # flow or block style\n');
      return x;
    });
    assert.deepEqual(changed(base, edited), []);
  });

  test('a new column, a filter, a type, nullability, on_missing, a strategy constant: only the tables they touch', async (t) => {
    const base = pipelineFingerprints(await loadPipeline(SHIPPED));
    const cases: [string, (s: string) => string, string[]][] = [
      ['new mapped column', (s) => replaceOnce(s, '      - name: phone\n        sql_type: VARCHAR(255)\n', '      - name: phone\n        sql_type: VARCHAR(255)\n      - name: phone_copy\n        sql_type: VARCHAR(255)\n'), ['users']],
      ['filter', (s) => replaceOnce(s, '    filter: { __t: menu }', '    filter: { __t: { $in: [menu, webinar] } }'), ['menus']],
      ['type', (s) => replaceOnce(s, '      - name: role\n        sql_type: VARCHAR(100)', '      - name: role\n        sql_type: VARCHAR(255)'), ['users']],
      ['nullability', (s) => replaceOnce(s, '      - name: phone\n        sql_type: VARCHAR(255)\n', '      - name: phone\n        sql_type: VARCHAR(255)\n        nullable: false\n'), ['users']],
      ['on_missing', (s) => replaceOnce(s, 'on_missing: set_null # a deleted company does not lose the user', 'on_missing: reject # a deleted company does not lose the user'), ['users']],
      ['explode constant', (s) => replaceOnce(s, '        item_column: target_id\n        constants: { type: basic }', '        item_column: target_id\n        constants: { type: legacy }'), ['users_targets']],
    ];
    for (const [what, edit, tables] of cases) {
      assert.deepEqual(changed(base, await fingerprintsOf(t, edit)), tables, what);
    }
  });

  test('the time zone changes tables with a DATE column only', async (t) => {
    const base = pipelineFingerprints(await loadPipeline(SHIPPED));
    const model = await loadPipeline(SHIPPED);
    const withDate = model.loadOrder.filter((n) => model.tables.get(n)!.columns.some((c) => c.sqlType.kind === 'date'));
    assert.ok(withDate.includes('users'));
    const edited = await fingerprintsOf(t, (s) => replaceOnce(s, '  timezone: Europe/Paris', '  timezone: UTC'));
    assert.deepEqual(changed(base, edited), [...withDate].sort());
  });
});

describe('fingerprintToStore', () => {
  const [A, B] = ['sha256:a', 'sha256:b'];
  test('unchanged mapping: stored as is, whatever the read', () => {
    assert.equal(fingerprintToStore(A, { fingerprint: A }, { fingerprint: A, fullRead: false }), A);
  });
  test('changed mapping: the new one only after a full read of the table', () => {
    assert.equal(fingerprintToStore(B, { fingerprint: A }, { fingerprint: B, fullRead: true }), B);
    assert.equal(fingerprintToStore(B, { fingerprint: A }, { fingerprint: B, fullRead: false }), A, 'an incremental read keeps the old one: the next run reads in full');
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: B, fullRead: true }), B, 'first load or older version: stored after a full read');
  });
  test('none stored and a read that does not cover the table (--since): partial, never taken for an etl before fingerprints', () => {
    // Null would read as "loaded by an etl before fingerprints"; the last run applied used this
    // pipeline.yaml, so the next run would take the table for unchanged and never read it in full.
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: B, fullRead: false, mapping: 'new' }), PARTIAL);
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: B, fullRead: false, mapping: 'unrecorded' }), PARTIAL);
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: B, fullRead: false }), PARTIAL);
    assert.equal(fingerprintToStore(B, { fingerprint: PARTIAL }, { fingerprint: B, fullRead: false, mapping: 'partial' }), PARTIAL, 'kept until a full read');
    assert.equal(fingerprintToStore(B, { fingerprint: PARTIAL }, { fingerprint: B, fullRead: true, mapping: 'partial' }), B);
  });
  test('none stored by an older etl that loaded the same pipeline.yaml (the extract found it unchanged): stored', () => {
    assert.equal(fingerprintToStore(B, { fingerprint: null }, { fingerprint: B, fullRead: false, mapping: 'unchanged' }), B);
    assert.equal(fingerprintToStore(B, { fingerprint: A }, { fingerprint: B, fullRead: false, mapping: 'unchanged' }), A, 'another stored since: kept');
  });
  test('no watermark row, and an extract that found the table unchanged in another database: partial, so the next run reads it in full', () => {
    // DATABASE_URL changed between extract and load: this database holds only the rows of the documents the run read.
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: B, fullRead: false, mapping: 'unchanged' }), PARTIAL);
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: B, fullRead: true, mapping: 'unchanged' }), B, 'read in full: whatever the other database held');
  });
  test('a run planned with another mapping, or with none recorded, changes nothing: none stored becomes PARTIAL', () => {
    assert.equal(fingerprintToStore(B, { fingerprint: A }, { fingerprint: A, fullRead: true }), A);
    assert.equal(fingerprintToStore(B, { fingerprint: A }, null), A);
    // A table added after the extract (transform --allow-pipeline-change) holds the rows of the
    // documents that run read: null would read as "an etl before fingerprints, same pipeline.yaml".
    assert.equal(fingerprintToStore(B, undefined, null), PARTIAL);
    assert.equal(fingerprintToStore(B, undefined, { fingerprint: A, fullRead: true }), PARTIAL);
    assert.equal(fingerprintToStore(B, { fingerprint: PARTIAL }, { fingerprint: A, fullRead: true }), PARTIAL);
  });
});
