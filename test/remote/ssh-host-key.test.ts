// The parts of host key trust and URL rewriting that need no server: known_hosts matching rules
// (OpenSSH's), pinned fingerprints, the Mongo URL through a tunnel, mongodump's URI and quoting.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { mongoTunnelTarget, mongoUrlThroughTunnel } from '../../connect/endpoints.ts';
import { hostMatches, knownHostsName, loadHostTrust, parsePinnedKey, sha256Fingerprint } from '../../connect/ssh-host-key.ts';
import { sshTarget } from '../../connect/ssh-session.ts';
import { ConfigError } from '../../errors/etl-error.ts';
import { mongodumpCommand, mongodumpUri, withoutPassword } from '../../refresh/mongo-refresh.ts';
import { shellQuote } from '../../refresh/shell-quote.ts';

const run = promisify(execFile);
let dir: string;
let keyA: { line: string; blob: Buffer; fp: string };
let keyB: { line: string; blob: Buffer; fp: string };

async function makeKey(name: string) {
  const file = path.join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  const line = (await readFile(`${file}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const fp = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`])).stdout.split(/\s+/)[1]!;
  return { line, blob: Buffer.from(line.split(' ')[1]!, 'base64'), fp };
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'etl-hostkey-'));
  [keyA, keyB] = await Promise.all([makeKey('a'), makeKey('b')]);
});
after(() => rm(dir, { recursive: true, force: true }));

test('fingerprints are the ones ssh-keygen -lf prints', () => {
  assert.equal(sha256Fingerprint(keyA.blob), keyA.fp);
});

test('known_hosts names and patterns follow OpenSSH', () => {
  assert.equal(knownHostsName('db.example', 22), 'db.example');
  assert.equal(knownHostsName('db.example', 2222), '[db.example]:2222');
  assert.ok(hostMatches('db.example,10.0.0.1', 'db.example'));
  assert.ok(hostMatches('*.example', 'db.example'));
  assert.ok(hostMatches('DB.Example', 'db.example'), 'host names are case-insensitive');
  assert.ok(!hostMatches('*.example,!db.example', 'db.example'), 'negation wins');
  assert.ok(!hostMatches('db.example', '[db.example]:2222'), 'another port is another host');
  assert.ok(hostMatches('[db.example]:2222', '[db.example]:2222'));
  assert.ok(hostMatches('db?.example', 'db1.example'));
});

test('known_hosts: trusted, unknown, changed, revoked, and key types offered first', async () => {
  const file = path.join(dir, 'known_hosts');
  await writeFile(
    file,
    [
      '# comment',
      `[srv.example]:2222 ${keyA.line} comment here`,
      `@cert-authority *.example ${keyB.line}`,
      `@revoked other.example ${keyB.line}`,
      `other.example ${keyB.line}`,
      'garbage line',
      '',
    ].join('\n'),
  );
  const trust = await loadHostTrust({ host: 'srv.example', port: 2222, knownHostsFile: file, pinned: null });
  assert.equal(trust.algorithms[0], 'ssh-ed25519');
  const ok = trust.verify(keyA.blob);
  assert.ok(ok.ok && ok.via === `${file}:2`);
  const changed = trust.verify(keyB.blob);
  assert.ok(!changed.ok && changed.kind === 'changed' && changed.expected[0]!.includes(keyA.fp));

  const unknown = (await loadHostTrust({ host: 'srv.example', port: 22, knownHostsFile: file, pinned: null })).verify(keyA.blob);
  assert.ok(!unknown.ok && unknown.kind === 'unknown', 'the same host on port 22 is not trusted by a [host]:2222 line');
  const revoked = (await loadHostTrust({ host: 'other.example', port: 22, knownHostsFile: file, pinned: null })).verify(keyB.blob);
  assert.ok(!revoked.ok && revoked.kind === 'revoked', '@revoked wins over a trusting line');
});

test('pinned keys: SHA256 fingerprint (with or without padding or type) or a whole public key line', async () => {
  assert.deepEqual(parsePinnedKey(keyA.fp), { type: null, fingerprint: keyA.fp });
  assert.deepEqual(parsePinnedKey(`${keyA.fp}=`), { type: null, fingerprint: keyA.fp });
  assert.deepEqual(parsePinnedKey(`ssh-ed25519 ${keyA.fp}`), { type: 'ssh-ed25519', fingerprint: keyA.fp });
  assert.deepEqual(parsePinnedKey(keyA.line), { type: 'ssh-ed25519', fingerprint: keyA.fp });
  assert.throws(() => parsePinnedKey('not a fingerprint'), /REMOTE_SERVER_HOST_KEY must be/);
  const trust = await loadHostTrust({ host: 'x', port: 22, knownHostsFile: '/nonexistent', pinned: keyA.fp });
  assert.ok(trust.verify(keyA.blob).ok);
  const bad = trust.verify(keyB.blob);
  assert.ok(!bad.ok && bad.kind === 'changed');
});

test('REMOTE_SERVER_URL forms', () => {
  const base = { host: null, port: 22, user: 'u', password: null, privateKeyFile: null, passphrase: null, knownHostsFile: null, hostKeyFingerprint: null, agentSocket: null };
  assert.deepEqual(sshTarget({ ...base, host: 'srv.example' }), { host: 'srv.example', port: 22, user: 'u' });
  assert.deepEqual(sshTarget({ ...base, host: 'srv.example:2200' }), { host: 'srv.example', port: 2200, user: 'u' });
  assert.deepEqual(sshTarget({ ...base, host: 'ssh://deploy@srv.example:2200', user: null }), { host: 'srv.example', port: 2200, user: 'deploy' });
  assert.deepEqual(sshTarget({ ...base, host: '[::1]:2200' }), { host: '::1', port: 2200, user: 'u' });
  assert.throws(() => sshTarget({ ...base, host: null }), /REMOTE_SERVER_URL is not set/);
  assert.throws(() => sshTarget({ ...base, host: 'srv', user: null }), /REMOTE_SERVER_USER is not set/);
  // A password written into the URL is refused without being shown: it would have become the user name, printed as the target.
  for (const host of ['bob:Hk4Wq9Zr@srv.example', 'ssh://bob:Hk4Wq9Zr@srv.example:2200', 'ssh://bob:Hk4Wq9Zr@srv.example/x']) {
    assert.throws(() => sshTarget({ ...base, host, user: null }), (e: unknown) => e instanceof ConfigError && /^REMOTE_SERVER_URL /.test(e.message) && !`${e.message} ${e.hint}`.includes('Hk4Wq9Zr'), host);
  }
});

test('the Mongo URL through a tunnel keeps credentials, database and options', () => {
  assert.deepEqual(mongoTunnelTarget('mongodb://u:p@localhost:27018,other:27019/app?replicaSet=rs0'), { host: 'localhost', port: 27018 });
  assert.deepEqual(mongoTunnelTarget('mongodb://10.0.0.5'), { host: '10.0.0.5', port: 27017 });
  assert.equal(
    mongoUrlThroughTunnel('mongodb://app%40x:p%3Ass@localhost:27017,other:27019/wappizy?authSource=admin&replicaSet=rs0&directConnection=false', 40001),
    'mongodb://app%40x:p%3Ass@127.0.0.1:40001/wappizy?authSource=admin&directConnection=true',
  );
  assert.throws(() => mongoTunnelTarget('mongodb+srv://u:p@cluster.example/app'), /cannot go through an SSH tunnel/);
});

test('mongodump gets a URI that agrees with --db, quoted for the remote shell', () => {
  assert.equal(mongodumpUri('mongodb://localhost:27017', 'wappizy'), 'mongodb://localhost:27017');
  assert.equal(mongodumpUri('mongodb://localhost:27017/wappizy', 'wappizy'), 'mongodb://localhost:27017/wappizy');
  assert.equal(mongodumpUri('mongodb://u:p@localhost:27017/admin?tls=false', 'wappizy'), 'mongodb://u:p@localhost:27017/?tls=false&authSource=admin');
  assert.equal(shellQuote("it's; rm -rf /"), `'it'\\''s; rm -rf /'`);
  assert.deepEqual(withoutPassword('mongodb://u:p%40ss%3Aw@h:27017/?authSource=admin'), { uri: 'mongodb://u@h:27017/?authSource=admin', password: 'p@ss:w' });
  assert.deepEqual(withoutPassword('mongodb://u@h/'), { uri: 'mongodb://u@h/', password: null });
  assert.deepEqual(withoutPassword('mongodb://h/'), { uri: 'mongodb://h/', password: null });
  assert.equal(
    mongodumpCommand('mongodump', 'my db', 'mongodb://u:p@h/?a=1&b=2'),
    `mongodump --archive --gzip --db='my db' --uri='mongodb://u:p@h/?a=1&b=2'`,
  );
});
