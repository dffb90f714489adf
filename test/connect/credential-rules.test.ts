// Each credential rule of errors/redact.ts reaches its credential alone on a line of ordinary data:
// findCredentials skips a text holding none of the rules' hints (an `@`, a secret-like name, a token
// prefix), so a hint missing from that pre-check would hide a whole rule. Values below are made up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findCredentials, redactText, type CredentialKind } from '../../errors/redact.ts';

const filler = 'Poulet rôti, 320 kcal, 2024-03-01T08:00:00Z';
const LONE: readonly (readonly [CredentialKind, string])[] = [
  ['url_password', 'postgres://etl:Zq9xWv7u@db.example.org:5432/app'],
  ['password_setting', 'PGPASSWORD=Zq9xWv7u'],
  ['password_setting', 'client_secret=Zq9xWv7u'],
  ['password_setting', 'refresh_token=Zq9xWv7u'],
  ['password_setting', 'API_KEY=Zq9xWv7u'],
  ['private_key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----'],
  ['private_key', 'PuTTY-User-Key-File-3: ssh-ed25519'],
  ['aws_access_key', 'AKIAZQ9XWV7UZQ9XWV7U'],
  ['aws_access_key', 'ASIAZQ9XWV7UZQ9XWV7U'],
  ['api_token', `ghp_${'Zq9xWv7u'.repeat(5)}`],
  ['api_token', 'xoxb-1234567890-Zq9xWv7u'],
  ['api_token', `sk_live_${'Zq9xWv7u'.repeat(3)}`],
  ['api_token', `AIza${'Zq9xWv7u'.repeat(4)}abc`],
];

test('every credential rule finds its credential alone in a line of data, in both modes', () => {
  for (const [kind, credential] of LONE) {
    for (const mode of ['scan', 'display'] as const) {
      const line = `${filler},"${credential}",${filler}`;
      const kinds = findCredentials(line, mode).map((h) => h.kind);
      assert.ok(kinds.includes(kind), `${mode}: ${kind} not found in ${JSON.stringify(line)} (found: ${kinds.join(', ') || 'nothing'})`);
    }
  }
});

test('a line of data without any credential gives no finding', () => {
  assert.deepEqual(findCredentials(`${filler},"jean.dupont@example.org",${filler}`, 'scan'), []);
  assert.deepEqual(findCredentials(filler, 'display'), []);
});

test('a host and port that end a sentence are shown: the punctuation after the port is not a password', () => {
  for (const text of [
    'etl tried the default mongodb://localhost:27017: set MONGODB_URL',
    'cannot reach mongodb://db.example.org:27017. Check the server',
    'tried mongodb://a:27017, then mongodb://b:27018; both refused',
  ]) {
    assert.equal(redactText(text), text);
  }
  // A password whose `@host` was lost (a `#` in .env cut it) is still hidden, punctuation or not.
  assert.equal(redactText('MONGODB_URL=mongodb://etl:Zq9xWv7u: refused'), 'MONGODB_URL=mongodb://etl:*** refused');
  assert.equal(redactText('mongodb://etl:Zq9xWv7u.'), 'mongodb://etl:***');
});
