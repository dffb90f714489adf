// Fails a test file that leaves temporary folders behind. Loaded with `--import` by `npm test`, in
// the test runner and in every test file's process: each gets a private temporary folder (TMPDIR,
// inherited by the servers and CLIs it starts), and when the process exits anything left in it is
// listed and the file fails (exit code 1). The folder is removed either way, so a leak never piles
// up in the system's temporary folder, and other programs' temporary files never confuse the check.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';

const parent = os.tmpdir();
const mine = mkdtempSync(path.join(parent, 'etl-test-tmp-'));
// Test users (the SSH tests' account) must be able to traverse into folders the tests open to them.
chmodSync(mine, 0o755);

// tsx keeps its compile cache in <tmp>/tsx-<uid>: share the parent's, or every CLI a test starts
// would compile the whole tool again.
const tsxCache = `tsx-${process.geteuid?.() ?? os.userInfo().username}`;
try {
  mkdirSync(path.join(parent, tsxCache), { recursive: true, mode: 0o700 });
  symlinkSync(path.join(parent, tsxCache), path.join(mine, tsxCache));
} catch {
  // No shared cache: slower, not wrong.
}
process.env.TMPDIR = mine;

process.on('exit', () => {
  const left = readdirSync(mine).filter((name) => name !== tsxCache);
  if (left.length > 0) {
    process.stderr.write(
      `[harness] left behind in the temporary folder: ${left.join(', ')}\n` +
        '[harness] every test removes what it creates, also when it fails (t.after, after, or test/harness/temp-dir.ts)\n',
    );
    process.exitCode = 1;
  }
  rmSync(mine, { recursive: true, force: true, maxRetries: 3 });
});
