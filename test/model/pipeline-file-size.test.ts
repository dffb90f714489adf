// A huge pipeline.yaml ends at once in a configuration error naming the file and line (exit 2):
// parsing 50 MB of tables took more than ten minutes and gigabytes (the YAML parser compares each key
// of a mapping with every other), and a 50 MB string in a filter half a minute and 2.5 GB.
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

const FIFTY_MB = 50 * 1024 * 1024;

/** Writes `head`, then `unit` until the file passes `size` bytes, then `tail`. */
async function writeBig(file: string, head: string, unit: string, size: number, tail = ''): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.write(head);
    const chunk = unit.repeat(Math.ceil((1024 * 1024) / unit.length));
    for (let written = 0; written < size; written += chunk.length) await handle.write(chunk);
    await handle.write(tail);
  } finally {
    await handle.close();
  }
}

/** The table `t<n>` as a pipeline file writes it. */
let n = 0;
const TABLE = () => `  t${n++}:\n    mongo_collection: c\n    include_base: true\n`;

describe('a pipeline file of 50 MB', () => {
  for (const [what, write] of [
    ['tables', (file: string) => writeBig(file, 'tables:\n', Array.from({ length: 1000 }, TABLE).join(''), FIFTY_MB)],
    ['one string in a filter', (file: string) => writeBig(file, 'tables:\n  t:\n    include_base: true\n    filter: {a: "', 'x', FIFTY_MB, '"}\n')],
  ] as const) {
    test(`of ${what}: refused at once as too large, naming the file and line (exit 2)`, async (t) => {
      const dir = await tempDir('etl-big-pipeline-', t);
      const file = path.join(dir, 'pipeline.yaml');
      await write(file);
      const started = Date.now();
      const r = await etl(['validate'], { cwd: dir, timeoutMs: 30_000 });
      assert.equal(r.code, 2, r.output.slice(0, 2000));
      assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
      assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:1: the file is 5\\d\\.\\d MiB \\(\\d+ bytes\\): a pipeline file holds at most 1 MiB`));
      assert.doesNotMatch(r.output, /internal error|\n\s+at /);
    });
  }
});
