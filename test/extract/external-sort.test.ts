// The bounded-memory sort used for dumps that are not in _id order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Int32, Long, ObjectId } from 'bson';
import { IdSorter } from '../../extract/external-sort.ts';
import { compareBson } from '../../extract/bson-order.ts';
import { tempDir } from '../harness/temp-dir.ts';

test('spills sorted chunks and merges them in _id order, keeping equal ids in input order', async () => {
  const dir = await tempDir('etl-sort-');
  const sorter = new IdSorter(dir, { maxChunkBytes: 2_000 });
  const n = 1_000;
  for (let i = 0; i < n; i += 1) {
    const k = (i * 7919) % n;
    await sorter.add(new Int32(k), `${k}:${i}\n`);
  }
  await sorter.add(new Int32(5), 'dup\n');
  assert.ok(sorter.spillCount > 10, `spilled ${sorter.spillCount} chunks`);
  const out: string[] = [];
  for await (const e of sorter.sorted()) out.push(e.line.toString('utf8'));
  assert.equal(out.length, n + 1);
  const keys = out.map((l) => (l === 'dup\n' ? 5 : Number(l.split(':')[0])));
  assert.deepEqual(keys, [...keys].sort((a, b) => a - b));
  assert.equal(out[6], 'dup\n', 'the later duplicate comes after the first one');
  await sorter.cleanup();
  assert.deepEqual(await readdir(dir), []);
});

test('BSON order across types matches the server: numbers < strings < objects < ObjectId < dates', () => {
  const values = [new Date(0), new ObjectId('65f000000000000000000001'), { a: 1 }, 'b', 'a', Long.fromNumber(3), new Int32(2), null];
  const sorted = [...values].sort(compareBson);
  assert.deepEqual(sorted, [null, new Int32(2), Long.fromNumber(3), 'a', 'b', { a: 1 }, new ObjectId('65f000000000000000000001'), new Date(0)]);
  assert.ok(compareBson(Long.fromString('9007199254740993'), Long.fromString('9007199254740992')) > 0);
  assert.ok(compareBson('é', 'z') > 0, 'UTF-8 byte order');
});
