// `etl validate` as a user runs it: spawned, without a TTY, NO_COLOR=1; exit codes and output.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { etl } from '../harness/cli.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const INVALID = path.join(ROOT, 'test/fixtures/pipelines/invalid-typo.yaml');

describe('etl validate', () => {
  test('the shipped pipeline: exit 0, the tables in load order with their source and strategy', async () => {
    const r = await etl(['validate']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.split('\n');
    assert.match(lines[0]!, /^#\s+table\s+export_order\s+source\s+strategy$/);
    assert.match(r.stdout, /^1\s+ingredients\s+1\s+ingredients\s+upsert on \(id\)$/m);
    assert.match(r.stdout, /^13\s+menus\s+2\s+events where \{"__t":"menu"\}\s+upsert on \(id\)$/m);
    assert.match(r.stdout, /^17\s+users_targets\s+3\s+users\.\{targets, specificity_targets, health_targets\}\s+explode, delete_and_insert by user_id$/m);
    assert.match(r.stdout, /^20\s+users_logbook\s+3\s+coachinglogbooks\s+dedupe on \(user_id, day\), latest by updated_at$/m);
    assert.match(r.stdout, /^31\s+days_logbooks_links\s+6/m);
    assert.match(r.stdout, /31 tables from 22 collections/);
    assert.ok(!r.stdout.includes('\u001b['), 'no colour under NO_COLOR');
    // users_quizzs (export_order 3) loads before coachings, which references it.
    assert.ok(r.stdout.indexOf(' users_quizzs ') < r.stdout.indexOf(' coachings '));
  });

  test('--json prints the resolved model on stdout only', async () => {
    const r = await etl(['validate', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ok, true);
    assert.equal(doc.tables.length, 31);
    assert.equal(doc.loadOrder.length, 31);
    assert.match(doc.sha256, /^[0-9a-f]{64}$/);
    const menus = doc.tables.find((t: { name: string }) => t.name === 'menus');
    assert.deepEqual(menus.filter, { __t: 'menu' });
    assert.equal(doc.collections.length, 22);
  });

  test('an invalid pipeline: exit 2, every finding with file:line:col and the key', async () => {
    const r = await etl(['validate', '--pipeline', INVALID]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.ok(r.stderr.includes(`${INVALID}:9:9 tables.companies.additional_columns[0].nullabel: unknown key "nullabel"`), r.stderr);
    assert.ok(r.stderr.includes(`${INVALID}:16:22 tables.users.additional_columns[0].foreign_key: foreign key to unknown table "compagnies"`), r.stderr);
    assert.match(r.stderr, /2 errors/);
  });

  test('an invalid pipeline under --json: the findings as JSON, exit 2', async () => {
    const r = await etl(['validate', '--json', '--pipeline', INVALID]);
    assert.equal(r.code, 2);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ok, false);
    assert.equal(doc.error.code, 'config_invalid');
    assert.deepEqual(
      doc.error.findings.map((f: { line: number; code: string; path: unknown[] }) => [f.line, f.code, f.path.at(-1)]),
      [
        [9, 'unknown_key', 'nullabel'],
        [16, 'unknown_table', 'foreign_key'],
      ],
    );
  });

  test('ETL_PIPELINE names the file; a missing file and an unknown flag exit 2', async () => {
    const viaEnv = await etl(['validate'], { env: { ETL_PIPELINE: INVALID } });
    assert.equal(viaEnv.code, 2);
    assert.match(viaEnv.stderr, /nullabel/);
    const missing = await etl(['validate', '--pipeline', 'nope.yaml']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read the pipeline file .*nope\.yaml: no such file/);
    const flag = await etl(['validate', '--pipe', 'x']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--pipe/);
  });
});
