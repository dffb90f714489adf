// `etl` on a Node.js older than package.json's engines (>= 20.19): refused up front with what to
// do (exit 2), before tsx or any module that needs a newer Node loads. Under Node 18 it used to run
// until an API it lacks was reached, mid-run: "internal error: s.isWellFormed is not a function".
// The version is faked with a preload (process.versions is configurable), so no old Node is needed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { ETL_BIN, REPO, STACK_LINE } from '../harness/cli.ts';

interface Result { readonly code: number; readonly stdout: string; readonly stderr: string }

/** `node bin/etl.js <args>` as if the running Node were `version`. */
function etlUnderNode(version: string, args: readonly string[]): Promise<Result> {
  const fake = `data:text/javascript,Object.defineProperty(process.versions, 'node', { value: '${version}' });`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', fake, ETL_BIN, ...args], { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (e, stdout, stderr) =>
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the Node.js version guard', () => {
  test('Node 18.20.8 and 20.18.1 are refused (exit 2) naming the version needed and the one found', async () => {
    for (const version of ['18.20.8', '20.18.1']) {
      const r = await etlUnderNode(version, ['validate']);
      assert.equal(r.code, 2, `${version}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^error: etl needs Node\\.js >= 20\\.19, this is Node\\.js ${version.replace(/\./g, '\\.')}`, 'm'));
      assert.match(r.stderr, /^hint: /m);
      assert.doesNotMatch(r.stderr, STACK_LINE);
    }
  });

  test('Node 20.19.0 and 22.0.0 pass the guard', async () => {
    for (const version of ['20.19.0', '22.0.0']) {
      const r = await etlUnderNode(version, ['--version']);
      assert.equal(r.code, 0, `${version}: ${r.stderr}`);
      assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
    }
  });
});
