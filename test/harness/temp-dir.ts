// Temporary folders for tests, removed when the test ends (t given) or when the test file ends,
// passed or failed. Import it from test files only: importing registers the file-level `after`.
//
//   const dir = await tempDir('etl-extract-', t);   // removed after this test
//   const dir = await tempDir('etl-extract-');      // removed after the file's last test
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { HasAfter } from './index.ts';

const forTheFile = new Set<string>();

after(async () => {
  await Promise.all([...forTheFile].map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 })));
  forTheFile.clear();
});

export async function tempDir(prefix: string, t?: HasAfter): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  if (t) t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
  else forTheFile.add(dir);
  return dir;
}
