// SSH tunnels against a real OpenSSH server (test/remote/sshd.ts) to real FerretDB and PostgreSQL
// servers (test harness): key and password authentication, host key trust (known_hosts plain and
// hashed, pinned fingerprint), the refusals (wrong password, unknown key, changed key), and that
// every listener is gone after close() or an abort.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { resolveConfig, type SshConfig } from '../../connect/config.ts';
import { openEndpoints, mongoUrlThroughTunnel } from '../../connect/endpoints.ts';
import { openTunnel } from '../../connect/ssh-tunnel.ts';
import { EtlError } from '../../errors/etl-error.ts';
import { useServers } from '../harness/index.ts';
import { startSshd, type Sshd } from './sshd.ts';

const run = promisify(execFile);
const servers = useServers();
let sshd: Sshd;
before(async () => {
  sshd = await startSshd();
});
after(async () => {
  await sshd?.stop();
});

function sshConfig(over: Partial<SshConfig> = {}): SshConfig {
  return {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    password: null,
    privateKeyFile: sshd.userKeyFile,
    passphrase: null,
    knownHostsFile: sshd.knownHostsFile,
    hostKeyFingerprint: null,
    agentSocket: null,
    ...over,
  };
}

function portOf(url: string): number {
  return Number(/:(\d+)\//.exec(url.replace(/\?.*$/, '') + '/')![1]);
}

/** Resolves true when something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Listening sockets of this process (closed handles are released on the next turns of the loop). */
async function tcpServers(): Promise<number> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
}

/** A loopback port nothing listens on (it was free a moment ago). */
function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function rejection(p: Promise<unknown>): Promise<EtlError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EtlError, `expected an EtlError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('tunnels (key authentication)', () => {
  test('to FerretDB: documents written through the tunnel are on the server', async (t) => {
    const db = await servers.mongo.newDatabase(t.name);
    const before = await tcpServers();
    const tunnel = await openTunnel({ ssh: sshConfig(), remoteHost: '127.0.0.1', remotePort: portOf(servers.mongo.url) });
    assert.equal(tunnel.via, `${sshd.user}@127.0.0.1:${sshd.port}`);
    assert.equal(tunnel.session.hostKey.fingerprint, sshd.hostFingerprint);
    const client = new MongoClient(mongoUrlThroughTunnel(`mongodb://127.0.0.1:${portOf(servers.mongo.url)}/${db.name}`, tunnel.localPort), { serverSelectionTimeoutMS: 5_000 });
    try {
      await client.connect();
      const docs = Array.from({ length: 500 }, (_, i) => ({ _id: i, name: `user ${i}`, pad: 'x'.repeat(1_000) }));
      await client.db(db.name).collection('users').insertMany(docs as never);
      const back = await client.db(db.name).collection('users').find().sort({ _id: 1 }).toArray();
      assert.equal(back.length, 500);
      assert.equal(back[499]!.name, 'user 499');
    } finally {
      await client.close();
    }
    // Read directly, not through the tunnel: the same server holds them.
    const direct = new MongoClient(db.url);
    try {
      assert.equal(await direct.db(db.name).collection('users').countDocuments(), 500);
    } finally {
      await direct.close();
    }
    await tunnel.close();
    assert.equal(await listening(tunnel.localPort), false, 'the local port is closed after close()');
    assert.equal(await tcpServers(), before, 'no listener left behind');
  });

  test('to PostgreSQL: queries and a 20 MB result go through', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const tunnel = await openTunnel({ ssh: sshConfig(), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.localPort, user: servers.postgres.user, password: servers.postgres.password, database: new URL(url).pathname.slice(1) });
    try {
      await client.connect();
      const r = await client.query<{ db: string; port: number }>('SELECT current_database() AS db, inet_server_port() AS port');
      assert.equal(r.rows[0]!.db, new URL(url).pathname.slice(1));
      assert.equal(r.rows[0]!.port, servers.postgres.port, 'the query reached the real server port');
      const big = await client.query<{ s: string }>("SELECT repeat('ab', 10000000) AS s");
      assert.equal(big.rows[0]!.s.length, 20_000_000);
    } finally {
      await client.end();
      await tunnel.close();
    }
  });

  test('a port nothing listens on at the far end is reported when the tunnel opens', async () => {
    const free = await freePort();
    const before = await tcpServers();
    const err = await rejection(openTunnel({ ssh: sshConfig(), remoteHost: '127.0.0.1', remotePort: free }));
    assert.equal(err.code, 'ssh_forward_failed');
    assert.match(err.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${free}`));
    assert.equal(await tcpServers(), before);
  });
});

describe('password authentication and openEndpoints', () => {
  test('remote source and destination: both tunnels over one SSH login with a password', async (t) => {
    const db = await servers.mongo.newDatabase(t.name);
    const pgUrl = new URL(await servers.postgres.createDatabase(t.name));
    const config = resolveConfig({
      cwd: sshd.dir,
      env: {
        TRANSFER_SOURCE: 'remote',
        TRANSFER_DESTINATION: 'remote',
        REMOTE_SERVER_URL: '127.0.0.1',
        REMOTE_SERVER_PORT: String(sshd.port),
        REMOTE_SERVER_USER: sshd.user,
        REMOTE_SERVER_PASSWORD: sshd.password,
        REMOTE_SERVER_KNOWN_HOSTS: sshd.knownHostsFile,
        REMOTE_MONGODB_URL: `mongodb://localhost:${portOf(servers.mongo.url)}/?appName=remote-test`,
        REMOTE_MONGODB_DATABASE: db.name,
        REMOTE_POSTGRES_PORT: String(servers.postgres.port),
        REMOTE_POSTGRES_HOST: '127.0.0.1',
        REMOTE_POSTGRES_DATABASE: pgUrl.pathname.slice(1),
        REMOTE_POSTGRES_USER: servers.postgres.user,
        REMOTE_POSTGRES_PASSWORD: servers.postgres.password,
      },
    });
    const before = await tcpServers();
    const ep = await openEndpoints(config, { needMongo: true, needPostgres: true });
    try {
      assert.match(ep.mongo.url, /^mongodb:\/\/127\.0\.0\.1:\d+\/\?appName=remote-test&directConnection=true$/);
      assert.equal(ep.mongo.database, db.name);
      assert.equal(ep.postgres.host, '127.0.0.1');
      assert.notEqual(ep.postgres.port, servers.postgres.port);
      assert.equal(ep.describe.ssh, `${sshd.user}@127.0.0.1:${sshd.port}`);
      assert.ok(!JSON.stringify(ep.describe).includes(servers.postgres.password));
      assert.ok(!JSON.stringify(ep.describe).includes(sshd.password));
      assert.equal(await tcpServers(), before + 2, 'one local listener per tunnel');

      const mongo = new MongoClient(ep.mongo.url, { serverSelectionTimeoutMS: 5_000 });
      try {
        await mongo.db(ep.mongo.database).collection('c').insertOne({ _id: 'through-password-tunnel' } as never);
        assert.equal(await mongo.db(ep.mongo.database).collection('c').countDocuments(), 1);
      } finally {
        await mongo.close();
      }
      const client = new pg.Client({ host: ep.postgres.host, port: ep.postgres.port, user: ep.postgres.user, password: ep.postgres.password ?? undefined, database: ep.postgres.database });
      await client.connect();
      try {
        const r = await client.query<{ port: number }>('SELECT inet_server_port() AS port');
        assert.equal(r.rows[0]!.port, servers.postgres.port);
      } finally {
        await client.end();
      }
    } finally {
      await ep.close();
    }
    assert.equal(await tcpServers(), before, 'both listeners closed');
  });

  test('a far end nothing listens on: the hint names the settings of that tunnel only', async () => {
    const free = await freePort();
    const ssh = { REMOTE_SERVER_URL: '127.0.0.1', REMOTE_SERVER_PORT: String(sshd.port), REMOTE_SERVER_USER: sshd.user, REMOTE_SERVER_PASSWORD: sshd.password, REMOTE_SERVER_KNOWN_HOSTS: sshd.knownHostsFile };
    const toPostgres = resolveConfig({ cwd: sshd.dir, env: { ...ssh, TRANSFER_DESTINATION: 'remote', REMOTE_POSTGRES_HOST: '127.0.0.1', REMOTE_POSTGRES_PORT: String(free) } });
    const pgErr = await rejection(openEndpoints(toPostgres, { needMongo: false, needPostgres: true }));
    assert.equal(pgErr.code, 'ssh_forward_failed');
    assert.match(pgErr.hint ?? '', /\(REMOTE_POSTGRES_HOST, REMOTE_POSTGRES_PORT\)/);
    assert.doesNotMatch(pgErr.hint ?? '', /MONGODB/);

    const toMongo = resolveConfig({ cwd: sshd.dir, env: { ...ssh, TRANSFER_SOURCE: 'remote', REMOTE_MONGODB_URL: `mongodb://127.0.0.1:${free}/` } });
    const mongoErr = await rejection(openEndpoints(toMongo, { needMongo: true, needPostgres: false }));
    assert.equal(mongoErr.code, 'ssh_forward_failed');
    assert.match(mongoErr.hint ?? '', /\(REMOTE_MONGODB_URL\)/);
    assert.doesNotMatch(mongoErr.hint ?? '', /POSTGRES/);
  });

  test('local source and destination: the local configs, no SSH at all', async () => {
    const config = resolveConfig({ cwd: sshd.dir, env: { MONGODB_URL: 'mongodb://db.example:27017', POSTGRES_PORT: '5999' } });
    const ep = await openEndpoints(config, { needMongo: true, needPostgres: true });
    assert.equal(ep.mongo, config.mongo);
    assert.equal(ep.postgres, config.postgres);
    assert.equal(ep.describe.ssh, null);
    await ep.close();
  });

  test('a wrong password: a clear refusal that does not contain the password', async () => {
    const wrong = 'not-the-password-4711';
    const err = await rejection(openTunnel({ ssh: sshConfig({ privateKeyFile: null, password: wrong }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.equal(err.code, 'ssh_auth_failed');
    assert.match(err.message, new RegExp(`SSH authentication failed for ${sshd.user}@127\\.0\\.0\\.1:${sshd.port}`));
    assert.match(err.message, /tried: password/);
    assert.ok(!`${err.message}${err.hint}`.includes(wrong));
  });

  test('an encrypted private key: opened with REMOTE_SERVER_KEY_PASSPHRASE, clear errors without or with a wrong one', async () => {
    const passphrase = 'correct horse battery';
    const key = await sshd.newKeyPair('encrypted_ed25519', passphrase);
    await sshd.authorize(key.publicKey);
    const tunnel = await openTunnel({ ssh: sshConfig({ privateKeyFile: key.privateFile, passphrase }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    await tunnel.close();
    const missing = await rejection(openTunnel({ ssh: sshConfig({ privateKeyFile: key.privateFile }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.equal(missing.exitCode, 2);
    assert.match(missing.message, /is encrypted and REMOTE_SERVER_KEY_PASSPHRASE is not set/);
    const wrong = await rejection(openTunnel({ ssh: sshConfig({ privateKeyFile: key.privateFile, passphrase: 'wrong passphrase 99' }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.match(wrong.message, /REMOTE_SERVER_KEY_PASSPHRASE does not decrypt it|cannot be used/);
    assert.ok(!wrong.message.includes('wrong passphrase 99'));
  });

  test('ssh-agent (SSH_AUTH_SOCK) authentication', async () => {
    const socket = path.join(sshd.dir, 'agent.sock');
    const agent = (await import('node:child_process')).spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 5_000;
      while (!(await import('node:fs')).existsSync(socket)) {
        assert.ok(Date.now() < deadline, 'ssh-agent did not start');
        await new Promise((r) => setTimeout(r, 20));
      }
      await run('ssh-add', [sshd.userKeyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      const tunnel = await openTunnel({ ssh: sshConfig({ privateKeyFile: null, agentSocket: socket }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
      await tunnel.close();
      // A key file the server refuses first, then the agent's key: the next method is still tried.
      const stranger = await sshd.newKeyPair('stranger_before_agent');
      const second = await openTunnel({ ssh: sshConfig({ privateKeyFile: stranger.privateFile, agentSocket: socket }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
      await second.close();
    } finally {
      agent.kill();
    }
  });

  test('a stale SSH_AUTH_SOCK (no agent behind it) does not stop a password or key login', async () => {
    const stale = path.join(sshd.dir, 'no-agent.sock');
    const withPassword = await openTunnel({ ssh: sshConfig({ privateKeyFile: null, agentSocket: stale, password: sshd.password }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    await withPassword.close();
    const withKey = await openTunnel({ ssh: sshConfig({ agentSocket: stale }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    await withKey.close();
    const alone = await rejection(openTunnel({ ssh: sshConfig({ privateKeyFile: null, agentSocket: stale }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.equal(alone.exitCode, 2);
    assert.match(alone.message, /no ssh-agent answers there/);
  });

  test('a private key the server does not know: refused too', async () => {
    const other = await sshd.newKeyPair('stranger_ed25519');
    const err = await rejection(openTunnel({ ssh: sshConfig({ privateKeyFile: other.privateFile }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.equal(err.code, 'ssh_auth_failed');
    assert.match(err.message, /public key/);
    // … and with a password as well, the password is tried next and logs in.
    const tunnel = await openTunnel({ ssh: sshConfig({ privateKeyFile: other.privateFile, password: sshd.password }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    await tunnel.close();
  });
});

describe('host key verification', () => {
  test('an unknown host key stops with its fingerprint and the exact ways to trust it, which work', async () => {
    const empty = path.join(sshd.dir, 'known_hosts_empty');
    await writeFile(empty, '# nothing trusted yet\n');
    const err = await rejection(openTunnel({ ssh: sshConfig({ knownHostsFile: empty }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.equal(err.code, 'ssh_host_key_unknown');
    assert.equal(err.exitCode, 2);
    assert.ok(err.message.includes(sshd.hostFingerprint), err.message);
    const line = `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}`;
    assert.ok(err.hint?.includes(line), `hint shows the known_hosts line: ${err.hint}`);
    assert.ok(err.hint?.includes(`REMOTE_SERVER_HOST_KEY=${sshd.hostFingerprint}`), err.hint);

    // Following the hint: the line in known_hosts …
    await writeFile(empty, `${line}\n`);
    const t1 = await openTunnel({ ssh: sshConfig({ knownHostsFile: empty }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    await t1.close();
    // … or the fingerprint pinned (the known_hosts file is then not consulted).
    const t2 = await openTunnel({ ssh: sshConfig({ knownHostsFile: '/nonexistent/known_hosts', hostKeyFingerprint: sshd.hostFingerprint }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    await t2.close();
  });

  test('a missing known_hosts file is the same refusal, not an accept', async () => {
    const err = await rejection(openTunnel({ ssh: sshConfig({ knownHostsFile: path.join(sshd.dir, 'no-such-file') }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }));
    assert.equal(err.code, 'ssh_host_key_unknown');
  });

  test('hashed known_hosts entries (ssh-keygen -H) are recognised', async () => {
    const hashed = path.join(sshd.dir, 'known_hosts_hashed');
    await writeFile(hashed, `other.example ${sshd.hostPublicKey}\n[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
    await run('ssh-keygen', ['-H', '-f', hashed]);
    const text = (await import('node:fs')).readFileSync(hashed, 'utf8');
    assert.ok(!text.includes('127.0.0.1'), 'the file is hashed');
    assert.match(text, /^\|1\|/m);
    const tunnel = await openTunnel({ ssh: sshConfig({ knownHostsFile: hashed }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port });
    assert.match(tunnel.session.hostKey.via, /known_hosts_hashed:\d+$/);
    await tunnel.close();
  });

  test('a CHANGED host key is refused loudly (possible man-in-the-middle), before any password is sent', async () => {
    const impostor = await sshd.newKeyPair('impostor_host_ed25519');
    const file = path.join(sshd.dir, 'known_hosts_changed');
    await writeFile(file, `[127.0.0.1]:${sshd.port} ${impostor.publicKey}\n`);
    const err = await rejection(
      openTunnel({ ssh: sshConfig({ knownHostsFile: file, privateKeyFile: null, password: sshd.password }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }),
    );
    assert.equal(err.code, 'ssh_host_key_changed');
    assert.match(err.message, /HOST KEY .* HAS CHANGED/);
    assert.match(err.message, /man-in-the-middle/);
    assert.ok(err.message.includes(sshd.hostFingerprint), 'names the key the server presented');
    assert.match(err.message, /known_hosts_changed:1/);
    assert.match(err.hint ?? '', /ssh-keygen -R/);

    const pinned = await rejection(
      openTunnel({ ssh: sshConfig({ hostKeyFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), remoteHost: '127.0.0.1', remotePort: servers.postgres.port }),
    );
    assert.equal(pinned.code, 'ssh_host_key_changed');
    assert.match(pinned.message, /REMOTE_SERVER_HOST_KEY/);
  });
});

describe('closing', () => {
  test('an abort closes the tunnel: the local port refuses connections, open sessions end', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const before = await tcpServers();
    const controller = new AbortController();
    const tunnel = await openTunnel({ ssh: sshConfig(), remoteHost: '127.0.0.1', remotePort: servers.postgres.port, signal: controller.signal });
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.localPort, user: servers.postgres.user, password: servers.postgres.password, database: new URL(url).pathname.slice(1) });
    const clientEnded = new Promise<void>((resolve) => client.once('end', () => resolve()));
    client.on('error', () => undefined);
    await client.connect();
    await client.query('SELECT 1');
    assert.equal(await listening(tunnel.localPort), true);

    controller.abort(new Error('Ctrl-C'));
    await tunnel.close(); // the same closing the abort started; resolves once it is done
    assert.equal(await listening(tunnel.localPort), false);
    await clientEnded;
    await assert.rejects(client.query('SELECT 1'));
    assert.equal(await tcpServers(), before);
  });

  test('an abort during the login rejects and leaves nothing open', async () => {
    const before = await tcpServers();
    const controller = new AbortController();
    const opening = openTunnel({ ssh: sshConfig(), remoteHost: '127.0.0.1', remotePort: servers.postgres.port, signal: controller.signal });
    setImmediate(() => controller.abort(new Error('Ctrl-C')));
    await assert.rejects(opening, /Ctrl-C/);
    assert.equal(await tcpServers(), before);
  });

  test('an already aborted signal never connects', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await assert.rejects(openTunnel({ ssh: sshConfig(), remoteHost: '127.0.0.1', remotePort: 1, signal: controller.signal }), /stop/);
  });
});
