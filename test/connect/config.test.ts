// Which PostgreSQL server etl connects to, from the flag, DATABASE_URL, POSTGRES_* and the libpq
// variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE), with the precedence the
// README's configuration table documents; and configuration errors that name their source.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../connect/config.ts';
import { pgClientConfig } from '../../connect/postgres.ts';
import { ConfigError } from '../../errors/etl-error.ts';

let cwd: string;
before(async () => {
  cwd = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-config-'));
});
after(() => rm(cwd, { recursive: true, force: true }));

/** What pg is given: host, port, database, user, password, ssl. */
function target(env: Record<string, string>, flags: { databaseUrl?: string } = {}) {
  const c = pgClientConfig(resolveConfig({ env, cwd, flags }).postgres);
  return { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, ssl: c.ssl };
}

const PG = { PGHOST: 'pg-host', PGPORT: '6001', PGDATABASE: 'pg_db', PGUSER: 'pg_user', PGPASSWORD: 'pg-secret' };
const POSTGRES = { POSTGRES_HOST: 'pgs-host', POSTGRES_PORT: '6002', POSTGRES_DATABASE: 'pgs_db', POSTGRES_USER: 'pgs_user', POSTGRES_PASSWORD: 'pgs-secret' };

describe('precedence', () => {
  test('the libpq variables alone are honoured, every one of them', () => {
    assert.deepEqual(target(PG), { host: 'pg-host', port: 6001, database: 'pg_db', user: 'pg_user', password: 'pg-secret', ssl: false });
  });

  test('POSTGRES_* win over PG*, part by part', () => {
    assert.deepEqual(target({ ...PG, ...POSTGRES }), { host: 'pgs-host', port: 6002, database: 'pgs_db', user: 'pgs_user', password: 'pgs-secret', ssl: false });
    assert.deepEqual(target({ ...PG, POSTGRES_HOST: 'pgs-host' }), { host: 'pgs-host', port: 6001, database: 'pg_db', user: 'pg_user', password: 'pg-secret', ssl: false });
  });

  test('defaults: localhost, 5432, postgres, postgres, no password', () => {
    const { ssl: _ssl, ...parts } = target({});
    assert.deepEqual(parts, { host: 'localhost', port: 5432, database: 'postgres', user: 'postgres', password: undefined });
  });

  test('DATABASE_URL wins over POSTGRES_*; what it leaves out comes from PG*, as libpq does', () => {
    assert.deepEqual(target({ ...PG, ...POSTGRES, DATABASE_URL: 'postgresql://url_user:url%40pw@url-host:6003/url_db' }), {
      host: 'url-host',
      port: 6003,
      database: 'url_db',
      user: 'url_user',
      password: 'url@pw',
      ssl: false,
    });
    assert.deepEqual(target({ ...PG, ...POSTGRES, DATABASE_URL: 'postgresql://url-host' }), { host: 'url-host', port: 6001, database: 'pg_db', user: 'pg_user', password: 'pg-secret', ssl: false });
  });

  test('--database-url wins over DATABASE_URL', () => {
    assert.equal(target({ DATABASE_URL: 'postgresql://env-host/x' }, { databaseUrl: 'postgresql://flag-host/x' }).host, 'flag-host');
  });

  test('the MongoDB database: --mongo-db, else a --mongo-url naming one (a flag wins over MONGODB_DATABASE), else MONGODB_DATABASE, else the URL\'s', () => {
    const database = (env: Record<string, string>, flags: { mongoUrl?: string; mongoDatabase?: string } = {}) => resolveConfig({ env, cwd, flags }).mongo.database;
    const env = { MONGODB_DATABASE: 'from_env', MONGODB_URL: 'mongodb://env-host/env_url_db' };
    assert.equal(database(env, { mongoUrl: 'mongodb://flag-host/flag_db' }), 'flag_db');
    assert.equal(database(env, { mongoUrl: 'mongodb://flag-host/flag_db', mongoDatabase: 'flag_mongo_db' }), 'flag_mongo_db');
    // A flag URL that names no database leaves the choice to MONGODB_DATABASE.
    assert.equal(database(env, { mongoUrl: 'mongodb://flag-host/' }), 'from_env');
    assert.equal(database(env), 'from_env');
    assert.equal(database({ MONGODB_URL: 'mongodb://env-host/env_url_db' }), 'env_url_db');
  });

  test('the environment wins over .env', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-dotenv-'));
    try {
      await writeFile(path.join(dir, '.env'), 'PGHOST=file-host\nPGPORT=6010\n');
      const c = resolveConfig({ env: { PGHOST: 'env-host' }, cwd: dir }).postgres;
      assert.equal(c.host, 'env-host');
      assert.equal(c.port, 6010);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the libpq keyword form is a connection string too', () => {
    assert.deepEqual(target({ ...PG, DATABASE_URL: "host=kw-host port=6004 dbname=kw_db user=kw_user password='a b\\'c' sslmode=disable" }), {
      host: 'kw-host',
      port: 6004,
      database: 'kw_db',
      user: 'kw_user',
      password: "a b'c",
      ssl: false,
    });
    assert.deepEqual(target({ ...PG, DATABASE_URL: 'host=kw-host' }), { host: 'kw-host', port: 6001, database: 'pg_db', user: 'pg_user', password: 'pg-secret', ssl: false });
  });

  test('PGSSLMODE and sslmode: require encrypts without checking, verify-full checks, disable/prefer do not encrypt', () => {
    assert.deepEqual(target({ PGSSLMODE: 'require' }).ssl, { ca: undefined, cert: undefined, key: undefined, rejectUnauthorized: false });
    assert.deepEqual(target({ PGSSLMODE: 'verify-full' }).ssl, { ca: undefined, cert: undefined, key: undefined });
    assert.equal(target({ PGSSLMODE: 'disable' }).ssl, false);
    assert.equal(target({ PGSSLMODE: 'prefer' }).ssl, false);
    // The string's own sslmode wins over PGSSLMODE.
    assert.equal(target({ PGSSLMODE: 'require', DATABASE_URL: 'postgresql://h/x?sslmode=disable' }).ssl, false);
  });
});

describe('configuration errors name their source, exit 2, and hide the password', () => {
  const refused = (env: Record<string, string>, flags: { databaseUrl?: string } = {}, dir = cwd): ConfigError => {
    try {
      resolveConfig({ env, cwd: dir, flags });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.exitCode, 2);
      return error;
    }
    assert.fail('expected a ConfigError');
  };

  test('a port that is not a number, in DATABASE_URL', () => {
    const e = refused({ DATABASE_URL: 'postgres://u:s3cr3tpw@127.0.0.1:notaport/db' });
    assert.match(e.message, /^DATABASE_URL is not a valid PostgreSQL connection string: the port "notaport" is not a number/);
    assert.doesNotMatch(e.message, /s3cr3tpw/);
    assert.match(e.message, /postgres:\/\/u:\*\*\*@127\.0\.0\.1:notaport\/db/);
  });

  test('the same in --database-url names the flag', () => {
    const e = refused({}, { databaseUrl: 'postgres://u:s3cr3tpw@127.0.0.1:notaport/db' });
    assert.match(e.message, /^--database-url is not a valid PostgreSQL connection string/);
  });

  test('the same in .env names the file and the line', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-dotenv-'));
    try {
      await writeFile(path.join(dir, '.env'), '# settings\nMONGODB_URL=mongodb://localhost:27017\nDATABASE_URL=postgres://u:s3cr3tpw@127.0.0.1:notaport/db\n');
      const e = refused({}, {}, dir);
      assert.ok(e.message.startsWith(`DATABASE_URL (${path.join(dir, '.env')} line 3) is not a valid PostgreSQL connection string`), e.message);
      assert.doesNotMatch(e.message, /s3cr3tpw/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the MongoDB database is the path of MONGODB_URL, a replica set of several hosts (h1,h2,h3) and mongodb+srv too', () => {
    const database = (url: string) => resolveConfig({ env: { MONGODB_URL: url }, cwd }).mongo.database;
    assert.equal(database('mongodb://u:p@h1:27017,h2:27017,h3:27017/wappizy?replicaSet=rs0&authSource=admin'), 'wappizy');
    assert.equal(database('mongodb://[::1]:27017,h2/wappizy'), 'wappizy');
    assert.equal(database('mongodb+srv://u:p@cluster0.example.net/wappizy?retryWrites=true'), 'wappizy');
    assert.equal(database('mongodb://h1,h2/my%20db'), 'my db');
    assert.equal(database('mongodb://h1,h2/?replicaSet=rs0'), 'default');
  });

  test('malformed schemes, unknown keywords, bad ports in PG* and POSTGRES_PORT', () => {
    assert.match(refused({ DATABASE_URL: 'postgres//postgres:s3cr3tpw@h/x' }).message, /the scheme must be followed by "\:\/\/"/);
    assert.match(refused({ DATABASE_URL: 'host=h service=prod' }).message, /"service" is not supported/);
    assert.match(refused({ DATABASE_URL: 'host=h colour=blue' }).message, /a setting etl does not know/);
    assert.match(refused({ DATABASE_URL: "host=h password='open" }).message, /no closing quote/);
    assert.match(refused({ PGPORT: 'five' }).message, /^PGPORT must be a port number from 1 to 65535, got "five"/);
    assert.match(refused({ POSTGRES_PORT: '70000' }).message, /^POSTGRES_PORT must be a port number/);
    assert.match(refused({ PGSSLMODE: 'always' }).message, /^PGSSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full/);
  });
});

test('a password pasted into a port variable (a line of .env shifted) is not echoed; a port typo still is', () => {
  const refusedWith = (env: Record<string, string>): ConfigError => {
    try {
      resolveConfig({ env, cwd: process.cwd() });
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error;
    }
    assert.fail('accepted');
  };
  for (const name of ['POSTGRES_PORT', 'PGPORT', 'REMOTE_SERVER_PORT', 'REMOTE_POSTGRES_PORT']) {
    const e = refusedWith({ [name]: 'Zq9xWv7u-hunter' });
    assert.ok(!e.message.includes('Zq9xWv7u'), e.message);
    assert.match(e.message, new RegExp(`^${name} must be a port number from 1 to 65535, got 15 characters, not shown: it may be a password`));
  }
  assert.match(refusedWith({ PGPORT: '5432x' }).message, /got "5432x"/);
  assert.match(refusedWith({ PGPORT: '543200000000' }).message, /got "543200000000"/);
});
