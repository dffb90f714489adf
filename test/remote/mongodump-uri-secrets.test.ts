// etl refresh mongo puts the URI on mongodump's (and mongorestore's) command line, which `ps` shows to
// every user of the machine: the password goes on stdin instead. A URI whose password cannot be taken
// off (an unencoded @ or / in it) or that holds another secret (a key file's password, a session
// token) is refused before anything runs, without showing it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withoutPassword } from '../../refresh/mongo-refresh.ts';
import { ConfigError } from '../../errors/etl-error.ts';

test('a URI whose secret would stay on the command line is refused, not run', () => {
  const cases: readonly (readonly [string, string])[] = [
    ['mongodb://u:pa/ss99Zq@h/db', 'pa/ss99Zq'],
    ['mongodb://u:p@ss99Zq@h/db', 'ss99Zq'],
    ['mongodb://u:pw@ss99Zq@h1,h2/db?replicaSet=r', 'ss99Zq'],
    ['mongodb://u:pw99@h/db?tls=true&tlsCertificateKeyFile=/k.pem&tlsCertificateKeyFilePassword=kp99Zq', 'kp99Zq'],
    ['mongodb://u@h/db?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok99Zq', 'tok99Zq'],
  ];
  for (const [uri, secret] of cases) {
    assert.throws(
      () => withoutPassword(uri),
      (e: unknown) => e instanceof ConfigError && /REMOTE_MONGODB_URL/.test(e.message) && !`${e.message}${e.hint}`.includes(secret),
      uri,
    );
  }
});

test('the usual URIs still lose their password to stdin', () => {
  assert.deepEqual(withoutPassword('mongodb://u:p%40ss%2F99@h1:27017,h2/db?replicaSet=r&authSource=admin'), { uri: 'mongodb://u@h1:27017,h2/db?replicaSet=r&authSource=admin', password: 'p@ss/99' });
  assert.deepEqual(withoutPassword('mongodb+srv://u:pw@c.example/db'), { uri: 'mongodb+srv://u@c.example/db', password: 'pw' });
  assert.deepEqual(withoutPassword('mongodb://h:27017/db'), { uri: 'mongodb://h:27017/db', password: null });
});
