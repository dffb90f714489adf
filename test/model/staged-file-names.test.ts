// validate's staged-file collision check (model/names.ts) knows the files a name becomes; the run
// folder (staging/run-folder.ts) makes them. The two lists must be the same, or a new kind of file
// could again be written by two names at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COLLECTION_FILES, TABLE_FILES } from '../../model/names.ts';
import { runPaths } from '../../staging/run-folder.ts';

test('the files validate expects a collection or table name to become are exactly those the run folder makes', () => {
  const paths = runPaths('/staging', '20261124T101500123Z');
  const made = new Set<string>();
  for (const [key, value] of Object.entries(paths)) {
    if (typeof value !== 'function' || key === 'relative') continue;
    made.add(paths.relative((value as (name: string) => string)('NAME')));
  }
  const expected = new Set([...COLLECTION_FILES, ...TABLE_FILES].map((f) => `${f.folder}/NAME${f.suffix}`));
  assert.deepEqual([...made].sort(), [...expected].sort());
});
