// Preloaded into an etl process by a test (NODE_OPTIONS=--import=<this file's URL>): notes each time
// the process lists the folder READDIR_WATCH (fs.promises.readdir), a line in the file READDIR_NOTES,
// so that the test counts how often etl scans a staging folder. It changes nothing etl sees.
import { appendFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';

const watched = process.env.READDIR_WATCH;
const notes = process.env.READDIR_NOTES;
if (watched && notes) {
  const readdir = fsp.readdir;
  fsp.readdir = function noted(dir, ...rest) {
    if (path.resolve(String(dir)) === path.resolve(watched)) appendFileSync(notes, `${String(dir)}\n`);
    return readdir.call(this, dir, ...rest);
  };
  // `import { readdir } from 'node:fs/promises'` binds to the exports: make them this function too.
  syncBuiltinESMExports();
}
