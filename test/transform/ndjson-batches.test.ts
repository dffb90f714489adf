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

test('reads cut right between CR and LF, right after a newline, and inside an empty CRLF line', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-batches-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const MiB = 1 << 20;
  // Byte offsets: A's CR is the last byte of the first 1 MiB read and its LF the first of the next;
  // B's LF is the last byte of the second read; the third read ends on the CR of an empty CRLF line.
  const a = 'a'.repeat(MiB - 1);
  const b = 'b'.repeat(MiB - 2);
  const c = 'c'.repeat(MiB - 2);
  const d = '{"é":"😀"}';
  const text = `${a}\r\n${b}\n${c}\n\r\n${d}`;
  assert.equal(Buffer.byteLength(`${a}\r`), MiB);
  assert.equal(Buffer.byteLength(`${a}\r\n${b}\n`), 2 * MiB);
  assert.equal(Buffer.byteLength(`${a}\r\n${b}\n${c}\n\r`), 3 * MiB);
  const file = path.join(dir, 'cuts.ndjson');
  await writeFile(file, text);
  const got: { line: number; text: string }[] = [];
  const digest: FileDigest = { bytes: 0, sha256: null };
  for await (const batch of readLineBatches(file, digest)) {
    for (let i = 0; i < batch.length; i += 1) got.push({ line: batch.lineNumber(i), text: batch.text(i) });
  }
  assert.deepEqual(got, [
    { line: 1, text: a },
    { line: 2, text: b },
    { line: 3, text: c },
    { line: 5, text: d },
  ]);
  assert.equal(digest.sha256, createHash('sha256').update(text).digest('hex'));
});
