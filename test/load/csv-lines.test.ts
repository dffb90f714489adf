// Record numbers → line numbers of a staged CSV, whatever the chunk boundaries.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { QuotedNewlineDetector, RecordLines } from '../../load/csv-lines.ts';

const CSV = 'id,text\n1,plain\n2,"two\nlines"\n3,"quote "" and\n\nthree lines"\n4,""\n5,"a,b"\n';
// record → line: 1 → 1 (header), 2 → 2, 3 → 3, 4 → 5, 5 → 8, 6 → 9

test('the detector sees a newline inside quotes, across any chunk split', () => {
  for (let size = 1; size <= CSV.length; size++) {
    const d = new QuotedNewlineDetector();
    const bytes = Buffer.from(CSV);
    for (let i = 0; i < bytes.length; i += size) d.scan(bytes.subarray(i, i + size));
    assert.equal(d.multiline, true, `chunks of ${size}`);
  }
  const plain = new QuotedNewlineDetector();
  plain.scan(Buffer.from('id,text\n1,"a ""b"" c"\n2,""\n'));
  assert.equal(plain.multiline, false);
});

test('RecordLines maps records to the line they start on', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'csv-lines-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'x.csv');
  await writeFile(file, CSV);
  for (const chunk of [1, 3, 7, 1 << 20]) {
    const lines = new RecordLines(file, chunk);
    const got = [];
    for (const r of [1, 2, 3, 4, 5, 6]) got.push(await lines.lineOf(r));
    await lines.close();
    assert.deepEqual(got, [1, 2, 3, 5, 8, 9], `chunks of ${chunk}`);
  }
  const lines = new RecordLines(file);
  assert.equal(await lines.lineOf(5), 8, 'records can be skipped');
  await assert.rejects(lines.lineOf(9), /fewer than 9 records/);
  await lines.close();
});
