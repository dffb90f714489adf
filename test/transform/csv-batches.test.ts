// transform writes its CSV lines itself (staging/csv-lines.ts), with a shortcut for columns that
// never need quoting: its bytes must be the bytes staging/csv.ts csvWriter writes for the same rows,
// whatever the cells hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { csvWriter, type Cell } from '../../staging/csv.ts';
import { csvHeader, csvLine } from '../../staging/csv-lines.ts';

const TRICKY: Cell[] = [null, '', '\\.', '\\.x', 'a,b', 'x"y', 'line\nbreak', 'cr\rhere', ' ', 'é😀', 'plain', '"', ',', '\n', 'NULL', '\\N', "'"];

async function viaCodec(columns: string[], rows: Cell[][]): Promise<string> {
  return text(Readable.from(rows, { objectMode: true }).compose(csvWriter(columns)));
}

function viaLines(columns: string[], rows: Cell[][], textual: boolean[] | null): string {
  return csvHeader(columns) + rows.map((row) => `${csvLine(row, textual)}\n`).join('');
}

test('CSV lines are byte-equal to csvWriter for every kind of cell', async () => {
  const columns = ['id', 'order', 'value'];
  const rows: Cell[][] = [];
  for (const a of TRICKY) for (const b of TRICKY) rows.push([`65f0c0ffee0000000000ab${rows.length % 100}`, a, b]);
  for (const a of TRICKY) rows.push([a, 'x', a]);
  const expected = await viaCodec(columns, rows);
  assert.equal(viaLines(columns, rows, null), expected);
  assert.equal(viaLines(columns, rows, [true, true, true]), expected, 'textual');
});

test('a column that never needs quoting is written as it is', async () => {
  const rows: Cell[][] = [['2024-03-06 23:00:00.000', '-12.5E3', 'a,b'], [null, 'true', '']];
  assert.equal(viaLines(['t', 'n', 's'], rows, [false, false, true]), await viaCodec(['t', 'n', 's'], rows));
});

test('no rows: the header alone, as csvWriter writes it', async () => {
  assert.equal(csvHeader(['a', 'order']), await viaCodec(['a', 'order'], []));
  assert.equal(csvHeader(['a', 'order']), 'a,order\n');
  assert.equal(csvHeader(['a,b', 'x"y']), await viaCodec(['a,b', 'x"y'], []));
});
