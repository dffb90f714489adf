// transform writes CSV in batches with a shortcut for rows that need no quoting: its bytes must be
// the bytes staging/csv.ts csvWriter writes for the same rows, whatever the cells hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { csvWriter, type Cell } from '../../staging/csv.ts';
import { csvBatchWriter } from '../../transform/csv-batches.ts';

const TRICKY: Cell[] = [null, '', '\\.', '\\.x', 'a,b', 'x"y', 'line\nbreak', 'cr\rhere', ' ', 'é😀', 'plain', '"', ',', '\n', 'NULL', '\\N', "'"];

async function viaCodec(columns: string[], rows: Cell[][]): Promise<string> {
  return text(Readable.from(rows, { objectMode: true }).compose(csvWriter(columns)));
}

async function viaBatches(columns: string[], rows: Cell[][], size: number, textual: boolean[] | null): Promise<string> {
  const batches: Cell[][][] = [];
  for (let i = 0; i < rows.length; i += size) batches.push(rows.slice(i, i + size));
  return text(Readable.from(batches, { objectMode: true }).compose(csvBatchWriter(columns, textual)));
}

test('batched CSV is byte-equal to csvWriter for every kind of cell, any batch size', async () => {
  const columns = ['id', 'order', 'value'];
  const rows: Cell[][] = [];
  for (const a of TRICKY) for (const b of TRICKY) rows.push([`65f0c0ffee0000000000ab${rows.length % 100}`, a, b]);
  const expected = await viaCodec(columns, rows);
  for (const size of [1, 7, 512, 100_000]) {
    assert.equal(await viaBatches(columns, rows, size, null), expected, `batch size ${size}`);
    assert.equal(await viaBatches(columns, rows, size, [true, true, true]), expected, `batch size ${size}, textual`);
  }
});

test('no rows: the header alone, as csvWriter writes it', async () => {
  assert.equal(await viaBatches(['a', 'order'], [], 10, null), await viaCodec(['a', 'order'], []));
  assert.equal(await viaBatches(['a', 'order'], [], 10, null), 'a,order\n');
});
