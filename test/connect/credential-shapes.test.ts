// What errors/redact.ts calls credential-shaped: each kind is hidden in text shown to people
// (display mode), and `etl pack`'s scan (scan mode) raises no alarm on ordinary data.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findCredentials, redactText } from '../../errors/redact.ts';

describe('credential shapes', () => {
  test('redactText hides each kind, leaves ordinary text alone', () => {
    const cases: [string, string][] = [
      ['cannot connect to postgresql://etl@db:5432/app: ECONNREFUSED 10.0.0.1:5432', 'cannot connect to postgresql://etl@db:5432/app: ECONNREFUSED 10.0.0.1:5432'],
      ['at postgres//postgres:hunter22@127.0.0.1:5432/x', 'at postgres//postgres:***@127.0.0.1:5432/x'],
      ['at postgresql:postgres:hunter22@127.0.0.1/x', 'at postgresql:***@127.0.0.1/x'],
      ['host=db password=hunter22 dbname=x', 'host=db password=*** dbname=x'],
      ["host=db password='a b \\' c' dbname=x", 'host=db password=*** dbname=x'],
      ['POSTGRES_PASSWORD=hunter22', 'POSTGRES_PASSWORD=***'],
      ['{"password":"hunter22","n":1}', '{"password":***,"n":1}'],
      ['key AKIAIOSFODNN7EXAMPLE here', 'key *** here'],
      ['-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nnext', '***\nnext'],
      ['see https://medium.com/@someone and ada@example.org', 'see https://medium.com/@someone and ada@example.org'],
    ];
    for (const [input, expected] of cases) assert.equal(redactText(input), expected, input);
  });

  test('scan mode: no alarm on ordinary data (emails, @ in paths, times), alarms on credentials', () => {
    const quiet = ['{"email":"ada@example.org","note":"10:30@home"}', '"https://medium.com/@someone"', 'user:ada@example.org', 'the token count is 3', 'secretary=Mme Dupont'];
    for (const text of quiet) assert.deepEqual(findCredentials(text, 'scan'), [], text);
    const loud = ['{"url":"postgres://etl:hunter22@db/app"}', 'DATABASE_URL=postgres//etl:hunter22@db/app', 'password=hunter22', '"api_key": "abc123"', 'AKIAIOSFODNN7EXAMPLE', '-----BEGIN OPENSSH PRIVATE KEY-----'];
    for (const text of loud) assert.equal(findCredentials(text, 'scan').length, 1, text);
  });

  test('a long line without blanks is scanned in linear time', () => {
    const line = `${'a.b-c_'.repeat(400_000)}x@y:z`;
    const started = Date.now();
    findCredentials(line, 'scan');
    redactText(line);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });
});
