// The one reading of a date a user types (--since, GLOBAL_DATE_THRESHOLD, date_threshold): a day
// the calendar lacks is refused, not rolled into the next month, and a time is never read in this
// machine's zone. Each entry refuses the same texts, with its own name.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseInstant } from '../../model/instant.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { resolveConfig } from '../../connect/config.ts';
import { ConfigError } from '../../errors/etl-error.ts';
import { etl } from '../harness/cli.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'etl-instant-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('a date is midnight UTC, an instant keeps its zone, a time without a zone is UTC', () => {
  const iso = (text: string) => parseInstant(text)?.toISOString() ?? null;
  assert.equal(iso('2024-02-29'), '2024-02-29T00:00:00.000Z');
  assert.equal(iso('2024-03-01T10:00:00Z'), '2024-03-01T10:00:00.000Z');
  assert.equal(iso('2024-03-01T10:00:00.250+02:00'), '2024-03-01T08:00:00.250Z');
  assert.equal(iso('2024-03-01 10:00'), '2024-03-01T10:00:00.000Z');
  assert.equal(iso('2024-03-01T10:00:00'), '2024-03-01T10:00:00.000Z');
});

test('refused: a day the calendar lacks, a month 13, a time out of range, and what is not ISO 8601', () => {
  for (const text of ['2024-02-30', '2023-02-29', '2024-04-31T10:00:00Z', '2024-13-01', '2024-01-01T25:00:00Z', '2024-01-01T10:61Z', '5 Jan 2024', '2024-1-5', '20240105', 'yesterday', '']) {
    assert.equal(parseInstant(text), null, JSON.stringify(text));
  }
});

test('--since, GLOBAL_DATE_THRESHOLD and date_threshold refuse 2024-02-30 (exit 2), each naming itself', async () => {
  const pipeline = path.join(dir, 'pipeline.yaml');
  await writeFile(pipeline, 'tables:\n  things:\n    include_base: true\n    export_order: 1\n    date_threshold: 2024-02-30\n');
  await assert.rejects(loadPipeline(pipeline), (e: unknown) => e instanceof ConfigError && /date_threshold/.test(`${e.message} ${JSON.stringify(e.findings)}`));
  assert.throws(() => resolveConfig({ env: { GLOBAL_DATE_THRESHOLD: '2024-02-30' }, cwd: dir }), (e: unknown) => e instanceof ConfigError && /^GLOBAL_DATE_THRESHOLD is not a date: "2024-02-30"/.test(e.message));
  const r = await etl(['extract', '--since', '2024-02-30', '--source', dir], { cwd: dir });
  assert.equal(r.code, 2, r.output);
  assert.match(r.stderr, /^error: --since: "2024-02-30" is not a date/m);
});
