// A password holding `#`, written unquoted in .env: dotenv reads `#` as the start of a comment, so
// `postgresql://etl:<password>#…@db/app` arrived as `postgresql://etl:<head of the password>`, a URL
// with no `@` whose "port" or "user info" is the password's head, and etl printed it. Now such a
// value is refused, naming its variable and line (never its value); and a connection string that
// lost its @host anyway (given so in the environment) shows no password, in text and --json.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { redactText } from '../../errors/redact.ts';
import { assertNoPassword } from './secret-shapes.ts';

const PIPELINE = `tables:
  users:
    include_base: true
`;

const HEAD = 'Pa55wordXy7';

// Each .env, given the URL of a real PostgreSQL database (so that commands reach MongoDB's URL).
const ENV_FILES: readonly (readonly [string, (pg: string) => string])[] = [
  ['DATABASE_URL with # in the password', () => `DATABASE_URL=postgresql://etl:${HEAD}#q1@127.0.0.1:1/app\n`],
  ['DATABASE_URL with # in the password, a path after it', () => `DATABASE_URL=postgresql://etl:${HEAD}/x#q1@127.0.0.1:1/app\n`],
  ['MONGODB_URL with # in the password', (pg) => `MONGODB_URL=mongodb://admin:${HEAD}#q1@127.0.0.1:1/app\nDATABASE_URL=${pg}\n`],
  ['MONGODB_URL with # in the password, a database after it (export, CRLF)', (pg) => `export MONGODB_URL=mongodb://admin:${HEAD}/db#q1@127.0.0.1:1/app\r\nDATABASE_URL=${pg}\r\n`],
];

describe('a password cut by # in .env is never shown', () => {
  const servers = useServers({ mongo: false });
  for (const [what, envFile] of ENV_FILES) {
    test(what, async (t) => {
      const dir = await tempDir('etl-env-hash-', t);
      const pg = await servers.postgres.createDatabase(t.name);
      await writeFile(path.join(dir, 'pipeline.yaml'), PIPELINE);
      const schema = await etl(['schema', '--yes'], { cwd: dir, env: { DATABASE_URL: pg } });
      assert.equal(schema.code, 0, schema.output);
      await writeFile(path.join(dir, '.env'), envFile(pg));
      for (const command of [['extract'], ['load'], ['schema', '--check'], ['diff'], ['status']]) {
        for (const json of [[], ['--json']]) {
          const args = [...command, ...json];
          const r = await etl(args, { cwd: dir, timeoutMs: 60_000 });
          // Commands that never read the broken URL (schema, status with a broken MONGODB_URL) succeed.
          if (command[0] === 'extract') assert.equal(r.code, 2, `etl ${args.join(' ')}\n${r.output}`);
          assertNoPassword(r.output, HEAD, `etl ${args.join(' ')}`);
          assert.doesNotMatch(r.output, /internal error/, r.output);
        }
      }
    });
  }

  test('a # right after other characters in an unquoted .env value is refused, naming the variable and line, never the value (exit 2)', async (t) => {
    const dir = await tempDir('etl-env-hash-', t);
    const pg = await servers.postgres.createDatabase(t.name);
    const { hostname, port } = new URL(pg);
    await writeFile(path.join(dir, 'pipeline.yaml'), PIPELINE);
    const secret = `${HEAD}#Rest0fIt99`;
    await writeFile(path.join(dir, '.env'), `\ufeffPOSTGRES_HOST=${hostname}\r\nPOSTGRES_PORT=${port} # the test's server\r\nexport POSTGRES_PASSWORD=${secret}\r\n`);
    for (const args of [['status'], ['status', '--json'], ['schema', '--check'], ['extract'], ['load'], ['diff', '--json']]) {
      const r = await etl(args, { cwd: dir, timeoutMs: 60_000 });
      assert.equal(r.code, 2, `etl ${args.join(' ')}\n${r.output}`);
      assert.ok(r.output.includes(`POSTGRES_PASSWORD (${path.join(dir, '.env')} line 3): its value holds a # right after other characters`), r.output);
      assertNoPassword(r.output, secret, `etl ${args.join(' ')}`);
      assertNoPassword(r.output, 'Rest0fIt99', `etl ${args.join(' ')}`);
    }
    // Quoted, the whole value is the password: a wrong one, refused by the server, still not shown.
    await writeFile(path.join(dir, '.env'), `POSTGRES_HOST=${hostname}\nPOSTGRES_PORT=${port}\nPOSTGRES_PASSWORD="${secret}"\n`);
    const r = await etl(['status'], { cwd: dir, timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /password authentication failed/);
    assertNoPassword(r.output, secret, 'etl status');
  });

  test('a connection string that lost its @host, given in the environment, shows no password (exit 2)', async (t) => {
    const dir = await tempDir('etl-env-hash-', t);
    await writeFile(path.join(dir, 'pipeline.yaml'), PIPELINE);
    for (const [name, url] of [['DATABASE_URL', `postgresql://etl:${HEAD}`], ['DATABASE_URL', `postgresql://etl:${HEAD}/app`], ['MONGODB_URL', `mongodb://admin:${HEAD}/app`]] as const) {
      const env = name === 'MONGODB_URL' ? { MONGODB_URL: url, DATABASE_URL: await servers.postgres.createDatabase(`${t.name} mongo`) } : { DATABASE_URL: url };
      for (const args of [['extract'], ['extract', '--json']]) {
        const r = await etl(args, { cwd: dir, env, timeoutMs: 60_000 });
        assert.equal(r.code, 2, r.output);
        assertNoPassword(r.output, HEAD, `${name}=${url}: etl ${args.join(' ')}`);
      }
    }
  });

  test('a port or a MongoDB host list after host: is still shown', () => {
    for (const url of ['postgresql://db:5432/app', 'mongodb://h1:27017,h2:27018/app?replicaSet=rs0', 'http://[::1]:80/', 'see http://localhost:<port>/x']) {
      assert.equal(redactText(url), url);
    }
    assert.equal(redactText('(got "postgresql://etl:Pa55word/db")'), '(got "postgresql://etl:***")');
  });
});
