// The real `etl` command with connection settings a person may write: the libpq variables alone, the
// keyword form, and malformed strings — which must exit 2, name their source, show no password and
// no stack.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { useServers } from '../harness/index.ts';
import { PIPELINE_YAML, realRun } from '../audit/staged-run.ts';
import { assertNoPassword, quoteKeyword } from './secret-shapes.ts';
import { etl as run } from '../harness/cli.ts';
import { connectMongo } from '../../connect/mongo.ts';
import { EtlError, SourceError } from '../../errors/etl-error.ts';
import { connectPostgres } from '../../connect/postgres.ts';

const servers = useServers({ mongo: false });

let cwd: string;
before(async () => {
  cwd = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-cli-'));
  await writeFile(path.join(cwd, 'pipeline.yaml'), PIPELINE_YAML);
});
after(() => rm(cwd, { recursive: true, force: true }));

interface Result {
  code: number | null;
  out: string;
}

/** `etl …` with only the variables given (none of the developer's PG*, DATABASE_URL, MONGODB_URL). */
function etl(args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  return etlIn(cwd, args, env);
}

/** What a person at a terminal sees: stdout and stderr as they came. */
async function etlIn(dir: string, args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  const r = await run(args, { cwd: dir, env });
  return { code: r.code, out: r.output };
}

const PW = 'Xq7Zr4Wp9Kt2';

describe('malformed connection strings: exit 2, the source named, no password, no stack', () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['load, postgres//', ['load'], { DATABASE_URL: `postgres//postgres:${PW}@127.0.0.1:5432/x` }, /^error: DATABASE_URL is not a valid PostgreSQL connection string/m],
    ['load, postgres:/', ['load'], { DATABASE_URL: `postgres:/postgres:${PW}@127.0.0.1:5432/x` }, /^error: DATABASE_URL is not a valid/m],
    ['load, postgresql:user:pw@', ['load'], { DATABASE_URL: `postgresql:postgres:${PW}@127.0.0.1:5432/x` }, /^error: DATABASE_URL is not a valid/m],
    ['status, a port that is not a number', ['status'], { DATABASE_URL: `postgres://u:${PW}@127.0.0.1:notaport/db` }, /^error: DATABASE_URL is not a valid PostgreSQL connection string: the port "notaport" is not a number/m],
    ['status, --database-url', ['status', '--database-url', `postgres://u:${PW}@127.0.0.1:notaport/db`], {}, /^error: --database-url is not a valid/m],
    ['extract --source mongodb//', ['extract', '--full', '--source', `mongodb//admin:${PW}@127.0.0.1:1/x`], {}, /^error: --source is not a MongoDB connection string/m],
    ['extract, MONGODB_URL mongodb:', ['extract', '--full'], { MONGODB_URL: `mongodb:admin:${PW}@127.0.0.1:1/x` }, /^error: MONGODB_URL is not a MongoDB connection string/m],
    // The password itself pasted into the URL's variable: a lone word is not shown, it may be the secret.
    ['status, DATABASE_URL the password alone', ['status'], { DATABASE_URL: PW }, /^error: DATABASE_URL is not a valid PostgreSQL connection string: .*12 characters of no known form, not shown/m],
    ['status --json, --database-url the password alone', ['status', '--json', '--database-url', PW], {}, /"code": ?"config_invalid"/],
    ['extract, MONGODB_URL the password alone', ['extract', '--full'], { MONGODB_URL: PW }, /^error: MONGODB_URL is not a MongoDB connection string: .*12 characters of no known form, not shown/m],
  ];
  for (const [name, args, env, message] of cases) {
    test(name, async () => {
      const r = await etl(args, env);
      assert.equal(r.code, 2, r.out);
      assert.match(r.out, message);
      assertNoPassword(r.out, PW, name);
      assert.doesNotMatch(r.out, /^\s+at /m, 'no stack');
    });
  }

  test('the libpq keyword form that cannot connect: exit 1, the server named, no password', async () => {
    const r = await etl(['status'], { DATABASE_URL: `host=127.0.0.1 port=1 password=${quoteKeyword(`${PW} x'y`)} dbname=x` });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /cannot connect to PostgreSQL at postgresql:\/\/postgres@127\.0\.0\.1:1\/x/);
    assertNoPassword(r.out, PW, 'keyword form');
  });
});

describe('a MongoDB that cannot be reached or a URL the driver refuses: the hint names where the URL was given', () => {
  const down = `mongodb://admin:${PW}@127.0.0.1:1/x?serverSelectionTimeoutMS=200`;

  test('--source: the hint says to check --source, not MONGODB_URL', async () => {
    const started = Date.now();
    const r = await etl(['extract', '--full', '--source', down]);
    assert.equal(r.code, 1, r.out);
    // The URL's serverSelectionTimeoutMS=200 is the one used, not etl's 10 s default.
    assert.ok(Date.now() - started < 8_000, `gave up after ${Date.now() - started} ms`);
    assert.match(r.out, /^error: cannot connect to MongoDB at mongodb:\/\/admin:\*\*\*@127\.0\.0\.1:1\//m);
    assert.match(r.out, /^hint: check --source,/m);
    assert.doesNotMatch(r.out, /hint: .*MONGODB_URL/);
    assertNoPassword(r.out, PW, '--source');
  });

  test('MONGODB_URL from .env: the hint names the variable and its line', async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-env-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'pipeline.yaml'), PIPELINE_YAML);
    await writeFile(path.join(dir, '.env'), `# local\nMONGODB_URL=${down}\n`);
    const r = await etlIn(dir, ['extract', '--full']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /^hint: check MONGODB_URL \(.*\.env line 2\)/m);
    assertNoPassword(r.out, PW, '.env');
  });

  test('no URL configured at all: the hint says the default was tried and where to set one', async () => {
    // The default (localhost:27017) may be served on a developer's machine: the same MongoConfig, at port 1.
    const error = await connectMongo({ url: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200', database: 'x' }).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof SourceError, String(error));
    assert.equal(error.code, 'mongo_unreachable');
    assert.match(error.hint ?? '', /no MongoDB URL is configured, so etl tried the default mongodb:\/\/localhost:27017: set MONGODB_URL/);
  });

  test('an option the driver refuses: the hint is about the option, not percent-encoding', async () => {
    const r = await etl(['extract', '--full', '--source', `mongodb://admin:${PW}@127.0.0.1:1/x?authMechanism=BOGUS`]);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /^error: --source is not a valid MongoDB connection string: .*BOGUS/m);
    assert.match(r.out, /^hint: .*option/m);
    assert.doesNotMatch(r.out, /percent-encode/);
    assertNoPassword(r.out, PW, 'authMechanism');
  });
});

describe('a PostgreSQL that cannot be reached: the hint names where its settings were given', () => {
  test('--database-url, DATABASE_URL from .env, the PG* variables, nothing at all', async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-pg-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'pipeline.yaml'), PIPELINE_YAML);
    const down = `postgresql://etl:${PW}@127.0.0.1:1/x`;
    const flag = await etlIn(dir, ['status', '--database-url', down]);
    assert.equal(flag.code, 1, flag.out);
    assert.match(flag.out, /^hint: check --database-url, and that the server is running/m);
    await writeFile(path.join(dir, '.env'), `\n\nDATABASE_URL=${down}\n`);
    const env = await etlIn(dir, ['status']);
    assert.match(env.out, /^hint: check DATABASE_URL \(.*\.env line 3\), and that/m);
    await rm(path.join(dir, '.env'));
    const parts = await etlIn(dir, ['status'], { PGHOST: '127.0.0.1', PGPORT: '1', PGPASSWORD: PW });
    assert.match(parts.out, /^hint: check the POSTGRES_\* and PG\* variables \(set: PGHOST, PGPORT, PGPASSWORD; the rest default\), and that/m);
    for (const r of [flag, env, parts]) assertNoPassword(r.out, PW, 'hint');
  });

  test('no setting at all: the hint says which default was tried and where to configure one', async () => {
    // The default (localhost:5432) may be served on a developer's machine: the same PostgresConfig, at port 1.
    const error = await connectPostgres({ connectionString: null, host: '127.0.0.1', port: 1, database: 'postgres', user: 'postgres', password: null }).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof EtlError, String(error));
    assert.equal(error.code, 'postgres_unreachable');
    assert.match(error.hint ?? '', /^no PostgreSQL is configured, so etl tried postgresql:\/\/postgres@127\.0\.0\.1:1\/postgres: set DATABASE_URL/);
  });
});

describe('a real server reached through the libpq variables or the keyword form', () => {
  test('PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD alone', async (t) => {
    const pg = servers.postgres;
    const url = new URL(await pg.createDatabase(t.name));
    const r = await etl(['status'], { PGHOST: pg.host, PGPORT: String(pg.port), PGDATABASE: url.pathname.slice(1), PGUSER: pg.user, PGPASSWORD: pg.password });
    assert.equal(r.code, 0, r.out);
    assert.ok(r.out.includes(`postgresql://${pg.user}@${pg.host}:${pg.port}/${url.pathname.slice(1)}`), r.out);
    assertNoPassword(r.out, pg.password, 'PG*');
  });

  test('DATABASE_URL in the keyword form', async (t) => {
    const pg = servers.postgres;
    const url = new URL(await pg.createDatabase(t.name));
    const keywords = `host=${pg.host} port=${pg.port} dbname=${url.pathname.slice(1)} user=${pg.user} password=${quoteKeyword(pg.password)}`;
    const r = await etl(['status', '--json'], { DATABASE_URL: keywords });
    assert.equal(r.code, 0, r.out);
    assertNoPassword(r.out, pg.password, 'keyword form');
  });

  test('a wrong PGPASSWORD is used (and not shown): authentication fails with exit 1', async (t) => {
    const pg = servers.postgres;
    const url = new URL(await pg.createDatabase(t.name));
    const r = await etl(['status'], { PGHOST: pg.host, PGPORT: String(pg.port), PGDATABASE: url.pathname.slice(1), PGUSER: pg.user, PGPASSWORD: PW });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /password authentication failed/);
    assertNoPassword(r.out, PW, 'wrong password');
  });

  test('a load with the password in --database-url: not in the output, the manifest or any staged file', async (t) => {
    const pg = servers.postgres;
    const url = await pg.createDatabase(t.name);
    const run = await realRun();
    t.after(() => rm(run.cwd, { recursive: true, force: true }));
    const r = await etlIn(run.cwd, ['load', '--database-url', url]);
    assert.equal(r.code, 0, r.out);
    assertNoPassword(r.out, pg.password, 'load output');
    for (const entry of await readdir(run.paths.dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      assertNoPassword(await readFile(file, 'utf8'), pg.password, file);
    }
    const manifest = JSON.parse(await readFile(run.paths.manifest, 'utf8')) as { destination: { description: string } };
    assert.match(manifest.destination.description, /^postgresql:\/\/postgres:\*\*\*@/);
  });
});
