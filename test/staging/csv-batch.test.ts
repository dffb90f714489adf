// CsvBatch (staging/csv-batch.ts) gathers the CSV lines of transform's staged files and of diff's
// expected rows: its batches, end to end, must be the bytes staging/csv.ts csvWriter writes for the
// same rows, whatever the batch boundaries, the header once at the start.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { csvWriter, type Cell } from '../../staging/csv.ts';
import { csvLine } from '../../staging/csv-lines.ts';
import { CSV_BATCH_CHARS, CsvBatch } from '../../staging/csv-batch.ts';

const TRICKY: Cell[] = [null, '', '\\.', 'a,b', 'x"y', 'line\nbreak', 'cr\rhere', ' ', 'é😀', 'plain', '"', '\n', 'NULL', '\\N'];

async function viaCodec(columns: string[], rows: Cell[][]): Promise<string> {
  return text(Readable.from(rows, { objectMode: true }).compose(csvWriter(columns)));
}

test('batches end to end are csvWriter bytes; each is whole lines of about CSV_BATCH_CHARS', async () => {
  const columns = ['id', 'a', 'b'];
  const rows: Cell[][] = [];
  for (let i = 0; rows.length < 20_000; i += 1) for (const a of TRICKY) rows.push([String(i), a, TRICKY[i % TRICKY.length]!]);
  const batch = new CsvBatch(columns);
  const batches: string[] = [];
  rows.forEach((row, i) => {
    // Both ways in: a row, or its line made beforehand.
    const full = i % 2 ? batch.add(row) : batch.addLine(csvLine(row, null));
    if (full) batches.push(batch.take());
  });
  batches.push(batch.take());
  assert.ok(batches.length > 3, `several batches (${batches.length})`);
  assert.equal(batches.join(''), await viaCodec(columns, rows));
  for (const b of batches.slice(0, -1)) {
    assert.ok(b.endsWith('\n'));
    assert.ok(b.length >= CSV_BATCH_CHARS && b.length < CSV_BATCH_CHARS + 200, `a full batch holds about CSV_BATCH_CHARS characters (${b.length})`);
  }
  assert.equal(batch.take(), '', 'nothing left');
});

test('no rows: the header alone, once; textual columns as csvLine writes them', async () => {
  const empty = new CsvBatch(['a', 'order']);
  assert.equal(empty.take(), await viaCodec(['a', 'order'], []));
  assert.equal(empty.take(), '');
  const rows: Cell[][] = [['2024-03-06 23:00:00.000', 'a,b'], [null, '']];
  const typed = new CsvBatch(['t', 's'], [false, true]);
  for (const row of rows) assert.equal(typed.add(row), false);
  assert.equal(typed.take(), await viaCodec(['t', 's'], rows));
});
