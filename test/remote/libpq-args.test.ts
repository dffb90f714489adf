// pg_dump and pg_restore (etl refresh postgres) must connect as etl does: the settings of
// DATABASE_URL reach them whatever its form, and the password only through PGPASSWORD.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settingsReader } from '../../connect/config-source.ts';
import { resolvePostgres } from '../../connect/postgres-config.ts';
import { libpqArgs } from '../../refresh/postgres-refresh.ts';

const resolve = (url: string) => resolvePostgres(settingsReader({ DATABASE_URL: url }, process.cwd(), undefined), undefined).postgres;

test('the keyword form: TLS mode, its files, application name and timeout reach pg_dump as libpq variables', () => {
  const p = resolve(`host=db.example port=6543 dbname=smartdiet user=etl password='s p' sslmode=verify-full sslrootcert=/ca.pem application_name=etl connect_timeout=7`);
  const { args, env } = libpqArgs(p);
  assert.deepEqual(args, ['--host=db.example', '--port=6543', '--username=etl', '--dbname=smartdiet']);
  assert.deepEqual(env, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/ca.pem', PGAPPNAME: 'etl', PGCONNECT_TIMEOUT: '7', PGPASSWORD: 's p' });
  assert.ok(!args.join(' ').includes('s p'), 'the password is never on the command line');
});

test('the URL form: the URL without its password, the password in PGPASSWORD, sslmode kept', () => {
  const { args, env } = libpqArgs(resolve('postgresql://etl:p%40ss@db.example:6543/smartdiet?sslmode=require'));
  assert.equal(args.length, 1);
  assert.ok(args[0]!.startsWith('--dbname=postgresql://etl@db.example:6543/smartdiet'), args[0]);
  assert.ok(!args[0]!.includes('p%40ss') && !args[0]!.includes('p@ss'));
  assert.equal(env.PGPASSWORD, 'p@ss');
  assert.ok(args[0]!.includes('sslmode=require') || env.PGSSLMODE === 'require', 'sslmode reaches libpq');
});

test('a password given as the URL parameter ?password= stays off the command line too', () => {
  const { args, env } = libpqArgs(resolve("postgresql://etl@db.example:6543/smartdiet?password=s3cr%40t'x&sslmode=require"));
  assert.equal(args.length, 1);
  assert.ok(!/password|s3cr/.test(args[0]!), args[0]);
  assert.ok(args[0]!.includes('sslmode=require'), args[0]);
  assert.equal(env.PGPASSWORD, "s3cr@t'x");
});

test('the other URL parameters reach libpq as written', () => {
  const { args } = libpqArgs(resolve('postgresql://etl:pw@db.example/smartdiet?application_name=a%20b&password=x'));
  assert.equal(args[0], '--dbname=postgresql://etl@db.example/smartdiet?application_name=a%20b');
});

test('a ?password= parameter whose name is percent-encoded (pass%77ord) stays off the command line too', () => {
  // libpq and etl's parser both decode a parameter's name: pass%77ord is the password.
  for (const name of ['pass%77ord', '%70assword']) {
    const p = resolve(`postgresql://etl@db.example/smartdiet?${name}=s3cr%65tZq9&sslmode=require`);
    const { args, env } = libpqArgs(p);
    assert.ok(!/s3cr/.test(args[0]!), `${name}: ${args[0]}`);
    assert.ok(args[0]!.includes('sslmode=require'), args[0]);
    assert.equal(env.PGPASSWORD, 's3cretZq9');
  }
});
