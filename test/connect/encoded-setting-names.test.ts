// A password given as a URL parameter whose name is percent-encoded (?pass%77ord=…): libpq and etl
// decode the name, so it is the password, and it must be hidden like ?password=… is, in every form
// its value may take (raw or itself percent-encoded).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describePostgres, resolveConfig } from '../../connect/config.ts';
import { redactText } from '../../errors/redact.ts';
import { assertNoPassword } from './secret-shapes.ts';

test('?pass%77ord=<percent-encoded value>: the description of the server and a message quoting the URL hide it', () => {
  for (const query of ['pass%77ord=S%65kretZq9x', '%70assword=S%65kretZq9x', 'sslmode=disable&pass%77ord=S%65kretZq9x#frag']) {
    const url = `postgresql://etl@127.0.0.1:5432/app?${query}`;
    const config = resolveConfig({ env: { DATABASE_URL: url }, cwd: process.cwd() });
    assert.equal(config.postgres.password, 'SekretZq9x');
    const shown = describePostgres(config.postgres);
    assertNoPassword(shown, 'SekretZq9x', url);
    assertNoPassword(shown, 'S%65kretZq9x', url);
    assert.match(shown, /^postgresql:\/\/etl@127\.0\.0\.1:5432\/app\?/, shown);
    const message = redactText(`cannot connect to PostgreSQL at ${url}: refused`, config.secrets);
    assertNoPassword(message, 'S%65kretZq9x', url);
  }
});
