// The sorter holds its chunk as bytes (key BSON + UTF-8 line) and compares ObjectIds as bytes: the
// order and the text must be exactly what compareBson and the input lines give, spilled or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Int32, ObjectId } from 'bson';
import { IdSorter } from '../../extract/external-sort.ts';
import { compareBson } from '../../extract/bson-order.ts';
import { tempDir } from '../harness/temp-dir.ts';

/** Ids whose first bytes cross 0x7f/0x80 (a signed comparison would misorder them), a few non-ObjectIds, repeats. */
function inputs(n: number): { id: unknown; line: string }[] {
  const out: { id: unknown; line: string }[] = [];
  for (let i = 0; i < n; i += 1) {
    const k = (i * 7919) % n;
    const hex = (k * 2654435761 % 2 ** 32).toString(16).padStart(8, '0') + k.toString(16).padStart(16, '0');
    const id = i % 97 === 0 ? new Int32(k) : i % 89 === 0 ? `s${k}` : new ObjectId(hex);
    out.push({ id, line: `{"k":${k},"i":${i},"t":"é€😀 ${'x'.repeat(i % 50)}"}\n` });
  }
  out.push({ id: out[10]!.id, line: 'repeat of 10\n' });
  return out;
}

async function sortAll(maxChunkBytes: number, items: { id: unknown; line: string }[]) {
  const dir = await tempDir('etl-sort-arena-');
  const sorter = new IdSorter(dir, { maxChunkBytes });
  for (const e of items) await sorter.add(e.id, e.line);
  const out: { id: unknown; line: string }[] = [];
  for await (const e of sorter.sorted()) out.push({ id: e.id, line: e.line.toString('utf8') });
  const spills = sorter.spillCount;
  await sorter.cleanup();
  assert.deepEqual(await readdir(dir), []);
  return { out, spills };
}

for (const [label, chunk] of [['in one chunk', 64 * 1024 * 1024], ['spilled', 4_096]] as const) {
  test(`byte-held chunks sort like compareBson (stable) and keep every line's text, ${label}`, async () => {
    const items = inputs(3_000);
    // Array.prototype.sort is stable: the expected order, equal ids in input order.
    const expected = [...items].sort((a, b) => compareBson(a.id, b.id));
    const { out, spills } = await sortAll(chunk, items);
    if (label === 'spilled') assert.ok(spills > 10, `spilled ${spills} chunks`);
    else assert.equal(spills, 0);
    assert.deepEqual(
      out.map((e) => e.line),
      expected.map((e) => e.line),
    );
    for (let i = 0; i < out.length; i += 1) assert.equal(compareBson(out[i]!.id, expected[i]!.id), 0);
  });
}

test('a record larger than the chunk is sorted with the rest', async () => {
  const big = `${'y'.repeat(20_000)}\n`;
  const items = [
    { id: new ObjectId('ff0000000000000000000000'), line: 'last\n' },
    { id: new ObjectId('800000000000000000000000'), line: big },
    { id: new ObjectId('000000000000000000000001'), line: 'first\n' },
    { id: new ObjectId('7f0000000000000000000000'), line: 'second\n' },
  ];
  const { out } = await sortAll(1_024, items);
  assert.deepEqual(
    out.map((e) => e.line),
    ['first\n', 'second\n', big, 'last\n'],
  );
});
