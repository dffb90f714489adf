// Property tests: a password written into a connection string of any shape — valid, malformed,
// URL or libpq keyword form — never reaches a message, a hint, a rendered error (text or JSON), a
// description of the server, or an error of the driver. In process, thousands of cases.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { describeMongo, describePostgres, resolveConfig, type EtlConfig } from '../../connect/config.ts';
import { connectPostgres } from '../../connect/postgres.ts';
import { connectMongo } from '../../connect/mongo.ts';
import { etlSync } from '../harness/cli.ts';
import { redactText } from '../../errors/redact.ts';
import { ConfigError, EtlError } from '../../errors/etl-error.ts';
import { renderError } from '../../bin/render-error.ts';
import { assertNoPassword, mongoShapes, postgresShapes, prng, quoteKeyword, randomPassword } from './secret-shapes.ts';

let cwd: string;
before(async () => {
  // No .env here: only the variables the test sets.
  cwd = await mkdtemp(path.join(os.tmpdir(), 'etl-connect-'));
});
after(() => rm(cwd, { recursive: true, force: true }));

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += String(chunk);
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

/** What bin/etl.ts prints for an error, human and --json (no known secrets: config did not resolve). */
function rendered(error: unknown): string {
  const out = [sink(), sink()];
  for (const json of [false, true]) renderError(error, { json, stdout: out[0]!, stderr: out[1]!, env: { NO_COLOR: '1' } });
  return out[0]!.text + out[1]!.text;
}

function resolveWith(env: Record<string, string>): EtlConfig | ConfigError {
  try {
    return resolveConfig({ env, cwd });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `a ConfigError, not ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
}

describe('a password in any shape of connection string is never shown', () => {
  const rand = prng(20261124);
  const passwords = Array.from({ length: 150 }, () => randomPassword(rand));

  test('DATABASE_URL and --database-url: errors name the source, descriptions hide the password', () => {
    let refused = 0;
    let accepted = 0;
    for (const pw of passwords) {
      const shapes = postgresShapes(pw);
      if (/^[^\s'\\]+$/.test(pw)) shapes.push(`host=127.0.0.1 password=${pw} dbname=x`);
      for (const shape of shapes) {
        const result = resolveWith({ DATABASE_URL: shape });
        const where = `DATABASE_URL=${JSON.stringify(shape)}`;
        if (result instanceof ConfigError) {
          refused += 1;
          assert.match(result.message, /^DATABASE_URL /, where);
          assertNoPassword(`${result.message}\n${result.hint ?? ''}\n${rendered(result)}`, pw, where);
        } else {
          accepted += 1;
          assert.ok(result.secrets.includes(pw), `${where}: the password is a known secret`);
          const driverText = `error: password authentication failed for "${shape}" (${describePostgres(result.postgres)})`;
          assertNoPassword(`${describePostgres(result.postgres)}\n${redactText(driverText, result.secrets)}`, pw, where);
          assertNoPassword(JSON.stringify({ destination: describePostgres(result.postgres) }), pw, `${where} (manifest)`);
        }
      }
    }
    // Both paths were exercised: malformed strings refused, well-formed ones described.
    assert.ok(refused > passwords.length * 8, `refused ${refused}`);
    assert.ok(accepted >= passwords.length * 2, `accepted ${accepted}`);
  });

  test('MONGODB_URL: refused with its source named, never shown with its password', () => {
    for (const pw of passwords) {
      for (const shape of mongoShapes(pw)) {
        const result = resolveWith({ MONGODB_URL: shape });
        assert.ok(result instanceof ConfigError, `MONGODB_URL=${shape} is refused`);
        assert.match(result.message, /^MONGODB_URL /);
        assertNoPassword(rendered(result), pw, `MONGODB_URL=${JSON.stringify(shape)}`);
      }
      const ok = resolveWith({ MONGODB_URL: `mongodb://admin:${encodeURIComponent(pw)}@127.0.0.1:1/x` });
      assert.ok(!(ok instanceof ConfigError));
      assertNoPassword(describeMongo(ok.mongo), encodeURIComponent(pw), 'describeMongo');
    }
  });

  test('a MongoDB URL the driver refuses (an unescaped @ or : in the password) is a configuration error naming where it was given, without its password', async () => {
    for (const pw of ['S3c:ret@PW', 'p@ss', 'a/b:c']) {
      const url = `mongodb://admin:${pw}@127.0.0.1:1/x?serverSelectionTimeoutMS=200`;
      const cfg = resolveWith({ MONGODB_URL: url });
      assert.ok(!(cfg instanceof ConfigError), 'accepted until the driver reads it');
      const error = await connectMongo(cfg.mongo, cfg.secrets).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof ConfigError, `${pw}: a ConfigError, not ${String(error)}`);
      assert.equal(error.exitCode, 2);
      assert.match(error.message, /^MONGODB_URL is not a valid MongoDB connection string: /);
      assert.match(error.hint ?? '', /percent-encode/);
      assertNoPassword(rendered(error), pw, url);
    }
    const pipeline = new URL('../../pipeline.yaml', import.meta.url).pathname;
    const cli = etlSync(['extract', '--full', '--pipeline', pipeline, '--source', 'mongodb://admin:S3c:ret@PW@127.0.0.1:1/x'], { cwd });
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /^error: --source is not a valid MongoDB connection string: /);
    assert.doesNotMatch(cli.stderr, /S3c|bug in etl/);
  });

  test('secrets in the options of a MongoDB URL (an AWS session token, a key file password) are hidden, also when the driver refuses the URL', async () => {
    const pw = 'Tk9Zq3Lm7Rp2';
    for (const option of [`authMechanismProperties=AWS_SESSION_TOKEN:${pw}`, `authMechanismProperties=SERVICE_NAME:mongodb,AWS_SESSION_TOKEN:${pw}`, `tlsCertificateKeyFilePassword=${pw}`]) {
      const url = `mongodb://127.0.0.1:1/x?authMechanism=MONGODB-AWS&${option}&serverSelectionTimeoutMS=200`;
      const cfg = resolveWith({ MONGODB_URL: url });
      assert.ok(!(cfg instanceof ConfigError), option);
      assertNoPassword(describeMongo(cfg.mongo), pw, `describeMongo ${option}`);
      const error = await connectMongo(cfg.mongo, cfg.secrets).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof EtlError, `${option}: ${String(error)}`);
      assertNoPassword(rendered(error), pw, option);
    }
  });

  test('a password with blanks, in the keyword form, is hidden whole', () => {
    const r = prng(7);
    for (let i = 0; i < 100; i += 1) {
      const pw = randomPassword(r, true);
      const shape = `host=127.0.0.1 port=1 user=etl password=${quoteKeyword(pw)} dbname=x`;
      const result = resolveWith({ DATABASE_URL: shape });
      assert.ok(!(result instanceof ConfigError), `${shape} is a valid keyword string`);
      assert.equal(result.postgres.password, pw);
      assert.equal(result.postgres.host, '127.0.0.1');
      assert.equal(result.postgres.port, 1);
      assertNoPassword(describePostgres(result.postgres), pw, shape);
      assertNoPassword(redactText(`could not use "${shape}"`, result.secrets), pw, shape);
    }
  });

  test('connection errors from the driver: the password is not in the message', async () => {
    const r = prng(99);
    for (let i = 0; i < 20; i += 1) {
      const pw = randomPassword(r);
      for (const shape of [`postgresql://etl:${encodeURIComponent(pw)}@127.0.0.1:1/x`, `host=127.0.0.1 port=1 password=${quoteKeyword(pw)} dbname=x`]) {
        const cfg = resolveWith({ DATABASE_URL: shape });
        assert.ok(!(cfg instanceof ConfigError), shape);
        const error = await connectPostgres(cfg.postgres).then(() => null, (e: unknown) => e);
        assert.ok(error instanceof EtlError, 'connection refused');
        assertNoPassword(`${error.message}\n${rendered(error)}`, pw, shape);
        assertNoPassword(`${error.message}\n${rendered(error)}`, encodeURIComponent(pw), shape);
      }
    }
  });

  test('a password hidden once stays readable when the message is rendered: the text around it is kept', async () => {
    const cfg = resolveWith({ DATABASE_URL: 'postgresql://etl@127.0.0.1:1/x?password=S3cretPW' });
    assert.ok(!(cfg instanceof ConfigError));
    const error = await connectPostgres(cfg.postgres).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof EtlError, 'connection refused');
    assert.match(rendered(error), /at postgresql:\/\/etl@127\.0\.0\.1:1\/x\?password=\*\*\*: connect ECONNREFUSED/);
    assert.equal(redactText('password=***, then token=***; and pass=***.', []), 'password=***, then token=***; and pass=***.');
  });
});
