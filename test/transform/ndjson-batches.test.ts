// transform reads extract files in batches (transform/ndjson-batches.ts): the lines and their
// numbers must be those of staging/ndjson.ts readNdjsonLines, across chunk boundaries, multi-byte
// characters, CRLF, blank lines and a missing final newline; the sha256 that of the file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readNdjsonLines } from '../../staging/ndjson.ts';
import { readLineBatches, type FileDigest } from '../../transform/ndjson-batches.ts';

test('same lines, same numbers, and the file digest', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-batches-'));
  const lines: string[] = [];
  // Long lines of multi-byte characters so that 1 MiB chunks cut through characters and lines.
  for (let i = 0; i < 3000; i += 1) lines.push(JSON.stringify({ i, s: 'é😀'.repeat((i * 37) % 900) }));
  lines.splice(10, 0, '');
  const text = `${lines.join('\n').replace('"i":20,', '"i":20,"crlf":1,')}\r\n{"last":true}`;
  const file = path.join(dir, 'x.ndjson');
  await writeFile(file, text);

  const expected: { line: number; text: string }[] = [];
  for await (const l of readNdjsonLines(file)) expected.push(l);
  const got: { line: number; text: string }[] = [];
  const digest: FileDigest = { bytes: 0, sha256: null };
  for await (const batch of readLineBatches(file, digest)) {
    for (let i = 0; i < batch.length; i += 1) got.push({ line: batch.lineNumber(i), text: batch.text(i) });
  }
  assert.equal(got.length, expected.length);
  assert.deepEqual(got, expected);
  assert.equal(digest.bytes, Buffer.byteLength(text));
  assert.equal(digest.sha256, createHash('sha256').update(text).digest('hex'));
  await rm(dir, { recursive: true, force: true });
});
