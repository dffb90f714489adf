// A password pasted into the wrong setting (a line of .env shifted, a value copied into the wrong
// variable): the configuration error names the setting and exits 2, and never prints the password,
// whatever setting it landed in (text and --json). A typo of the setting's own shape is still shown.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { PIPELINE_YAML } from '../audit/staged-run.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

const SECRET = 'hunter2pass.Zq9';
const URL_SECRET = 's3cretPW9x';

// An SSH server no one listens on: these settings are refused before any connection.
const SSH_NOWHERE = { REMOTE_SERVER_URL: '127.0.0.1', REMOTE_SERVER_PORT: '1', REMOTE_SERVER_USER: 'etl' };

/** [what the user set, the command, the variable the message must name]. */
const CASES: readonly (readonly [Record<string, string>, readonly string[], string])[] = [
  [{ PGSSLMODE: `postgres://u:${URL_SECRET}@h/db` }, ['load'], 'PGSSLMODE'],
  [{ PGSSLMODE: SECRET }, ['load'], 'PGSSLMODE'],
  [{ TRANSFER_SOURCE: SECRET }, ['extract', '--full'], 'TRANSFER_SOURCE'],
  [{ TRANSFER_DESTINATION: SECRET }, ['status'], 'TRANSFER_DESTINATION'],
  [{ GLOBAL_DATE_THRESHOLD: SECRET }, ['load'], 'GLOBAL_DATE_THRESHOLD'],
  [{ ETL_PROGRESS_SECONDS: SECRET }, ['status'], 'ETL_PROGRESS_SECONDS'],
  [{ PGPORT: SECRET }, ['status'], 'PGPORT'],
  // Parts of a connection string that are no password setting, holding one all the same.
  [{ DATABASE_URL: `postgres://u@127.0.0.1/db?sslmode=${SECRET}` }, ['status'], 'DATABASE_URL'],
  [{ DATABASE_URL: `host=127.0.0.1 dbname=db sslmode=${SECRET}` }, ['status'], 'DATABASE_URL'],
  [{ DATABASE_URL: `postgres://u@127.0.0.1/db?connect_timeout=${SECRET}` }, ['status'], 'DATABASE_URL'],
  [{ DATABASE_URL: `postgres://u@127.0.0.1/db?ssl=${SECRET}` }, ['status'], 'DATABASE_URL'],
  [{ DATABASE_URL: `host=127.0.0.1 port=${SECRET}` }, ['status'], 'DATABASE_URL'],
  [{ TRANSFER_SOURCE: 'remote', REMOTE_SERVER_URL: `${SECRET}!x y`, REMOTE_SERVER_USER: 'etl', REMOTE_SERVER_PASSWORD: 'pw-of-the-server' }, ['extract', '--full'], 'REMOTE_SERVER_URL'],
  // Paths: a value not written as one (from /, ~/, ./ or ../) is not shown either.
  [{ ...SSH_NOWHERE, REMOTE_SERVER_KEY_FILE: SECRET }, ['refresh', 'mongo'], 'REMOTE_SERVER_KEY_FILE'],
  [{ ...SSH_NOWHERE, REMOTE_SERVER_PASSWORD: 'pw-of-the-server', DATABASE_URL: 'postgres://u@127.0.0.1:1/db', PG_BIN_DIR: SECRET }, ['refresh', 'postgres', '--yes'], 'PG_BIN_DIR'],
];

test('a password in a setting of another kind: exit 2, the setting named, the password not shown (text and --json)', async (t) => {
  const cwd = await tempDir('etl-misplaced-secret-', t);
  await writeFile(path.join(cwd, 'pipeline.yaml'), PIPELINE_YAML);
  for (const [env, args, variable] of CASES) {
    for (const json of [false, true]) {
      const r = await etl([...args, ...(json ? ['--json'] : [])], { cwd, env });
      const what = `${JSON.stringify(env)} ${args.join(' ')}${json ? ' --json' : ''}`;
      assert.equal(r.code, 2, `${what}: ${r.output}`);
      for (const secret of [SECRET, 'hunter2', 'Zq9', URL_SECRET]) assert.ok(!r.output.includes(secret), `${what} shows ${secret}: ${r.output}`);
      assert.ok(r.output.includes(variable), `${what} names ${variable}: ${r.output}`);
      if (json) assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'config_invalid', what);
      assert.doesNotMatch(r.output, /^\s+at /m, 'no stack');
    }
  }
});

test('a typo of the setting\'s own shape is still shown', async (t) => {
  const cwd = await tempDir('etl-setting-typo-', t);
  await writeFile(path.join(cwd, 'pipeline.yaml'), PIPELINE_YAML);
  const cases: readonly (readonly [Record<string, string>, RegExp, (readonly string[])?])[] = [
    [{ PGSSLMODE: 'requird' }, /PGSSLMODE must be one of .*, got "requird"/],
    [{ PGSSLMODE: 'always' }, /got "always"/],
    [{ TRANSFER_SOURCE: 'Remot' }, /TRANSFER_SOURCE must be "local" or "remote", got "Remot"/],
    [{ GLOBAL_DATE_THRESHOLD: '2024-13-01' }, /GLOBAL_DATE_THRESHOLD is not a date: "2024-13-01"/],
    [{ ETL_PROGRESS_SECONDS: '-5' }, /ETL_PROGRESS_SECONDS is not a positive number of seconds: "-5"/],
    [{ DATABASE_URL: 'postgres://u@127.0.0.1/db?sslmode=requir' }, /sslmode must be one of .*, got "requir"/],
    [{ DATABASE_URL: 'host=127.0.0.1 connect_timeout=10s' }, /connect_timeout .*"10s"/],
    [{ ...SSH_NOWHERE, TRANSFER_SOURCE: 'remote', REMOTE_SERVER_KEY_FILE: '/nowhere/id_ed25519' }, /REMOTE_SERVER_KEY_FILE names: ENOENT \(got "\/nowhere\/id_ed25519"\)/, ['refresh', 'mongo']],
  ];
  for (const [env, message, args = ['status']] of cases) {
    const r = await etl(args, { cwd, env });
    assert.equal(r.code, 2, `${JSON.stringify(env)}: ${r.output}`);
    assert.match(r.stderr, message);
  }
});
