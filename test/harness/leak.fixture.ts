// Run by tmp-guard.test.ts under `node --test` with the guard: one test that leaves a temporary
// folder behind when LEAK=1, and removes it otherwise.
//   node --import tsx --import ./test/harness/tmp-guard.ts --test test/harness/leak.fixture.ts
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

test('makes a temporary folder', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-leaky-'));
  if (process.env.LEAK !== '1') await rm(dir, { recursive: true });
});
