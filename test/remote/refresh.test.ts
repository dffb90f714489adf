// `etl refresh mongo|postgres`, run as the real CLI, over a real OpenSSH server (test/remote/sshd.ts).
//
// mongo: the Debian repositories have no mongodb-database-tools, so REMOTE_MONGODUMP_COMMAND points
// at test/remote/fake-mongodump.sh, which the SSH server runs like mongodump: it reads the FerretDB
// database named by --db/--uri and writes a gzipped mongodump archive to stdout (and a copy of the
// same bytes to --tee). The test checks the staged file is byte-identical to what the remote side
// wrote, that extract's archive reader returns the FerretDB documents from it, and the failure paths.
//
// postgres: the remote database is a PostgreSQL of this machine's pg_dump major version
// (test/remote/debian-postgres.ts) reached only through the SSH tunnel; the local one is the
// harness's PostgreSQL 17.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deserialize, Double, Int32, ObjectId } from 'bson';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { readArchiveBatches, readArchiveHeader } from '../../extract/dump-archive.ts';
import { useServers } from '../harness/index.ts';
import { pgDumpMajor, startDebianPostgres, type DebianPostgres } from './debian-postgres.ts';
import { startSshd, type Sshd } from './sshd.ts';
import { DEFAULT_STAGING } from '../../connect/config.ts';
import { grantTraverse } from '../harness/traverse.ts';
import { etl as run, startEtl, type CliResult } from '../harness/cli.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const servers = useServers();
let sshd: Sshd;
let remotePg: DebianPostgres;
let work: string;
let fakeMongodump: string;

let restoreModes: () => Promise<void> = async () => undefined;

// The fake mongodump runs as the SSH test user from this checkout (see test/harness/traverse.ts).
before(async () => {
  restoreModes = await grantTraverse(REPO);
  [sshd, remotePg] = await Promise.all([startSshd(), startDebianPostgres()]);
  work = await mkdtemp(path.join(os.tmpdir(), 'etl-refresh-'));
  await chmod(work, 0o777);
  fakeMongodump = path.join(work, 'fake-mongodump.sh');
  // Runs as the SSH test user: node + tsx from this checkout.
  await writeFile(fakeMongodump, `#!/bin/sh\ncd ${REPO} && exec node --import tsx ${REPO}/test/remote/fake-mongodump.ts "$@"\n`, { mode: 0o755 });
});
after(async () => {
  await Promise.allSettled([sshd?.stop(), remotePg?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
  await restoreModes();
});

/** HOME is the case's folder: no ~/.ssh of the developer's is read. */
function etl(args: string[], env: Record<string, string>, cwd: string): Promise<CliResult> {
  return run(args, { cwd, env: { HOME: cwd, ...env } });
}

function sshEnv(): Record<string, string> {
  return {
    REMOTE_SERVER_URL: '127.0.0.1',
    REMOTE_SERVER_PORT: String(sshd.port),
    REMOTE_SERVER_USER: sshd.user,
    REMOTE_SERVER_KEY_FILE: sshd.userKeyFile,
    REMOTE_SERVER_KNOWN_HOSTS: sshd.knownHostsFile,
  };
}

/** The environment of `etl refresh mongo` against the fake remote mongodump, dumping database `db`. */
function dumpEnv(db: string, command = fakeMongodump): Record<string, string> {
  return {
    ...sshEnv(),
    REMOTE_MONGODUMP_COMMAND: command,
    REMOTE_MONGODB_URL: `mongodb://127.0.0.1:${new URL(servers.mongo.url).port}/`,
    REMOTE_MONGODB_DATABASE: db,
  };
}

async function caseDir(name: string): Promise<string> {
  const dir = path.join(work, name.replace(/[^a-z0-9]+/gi, '_').slice(0, 60));
  await mkdir(dir, { recursive: true, mode: 0o777 });
  await chmod(dir, 0o777);
  return dir;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The documents of one namespace of a dump archive, in archive order, one by one. */
async function* archiveDocuments(file: string, db: string, collection: string): AsyncGenerator<{ bytes: Buffer }> {
  for await (const batch of readArchiveBatches(file, db, collection)) yield* batch;
}

describe('etl refresh mongo', () => {
  async function seed(t: { name: string }) {
    const db = await servers.mongo.newDatabase(t.name);
    const client = new MongoClient(db.url);
    try {
      await client.db(db.name).collection('users').insertMany([
        { _id: new ObjectId('65f000000000000000000001'), email: 'a@example.com', age: new Int32(41), weight: new Double(70.5), created: new Date('2024-03-06T23:00:00Z') },
        { _id: new ObjectId('65f000000000000000000002'), email: 'b@example.com', tags: ['x', 'y'], profile: { city: 'Paris' } },
        { _id: new ObjectId('65f000000000000000000003'), email: 'c@example.com', active: false },
      ]);
      await client.db(db.name).collection('orders').insertMany([{ _id: 1, total: 12.5 } as never, { _id: 2, total: 7 } as never]);
    } finally {
      await client.close();
    }
    return db;
  }

  test('streams the remote mongodump archive into <staging>/dumps, byte for byte, readable by extract', async (t) => {
    const db = await seed(t);
    const cwd = await caseDir(t.name);
    const tee = path.join(cwd, 'remote-side-copy.gz');
    const r = await etl(['refresh', 'mongo', '--json'], dumpEnv(db.name, `${fakeMongodump} --tee=${tee}`), cwd);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { ok: boolean; file: string; bytes: number; sha256: string; database: string; hostKeyFingerprint: string; restored: null };
    assert.equal(report.ok, true);
    assert.equal(report.database, db.name);
    assert.equal(report.hostKeyFingerprint, sshd.hostFingerprint);
    assert.equal(path.dirname(report.file), path.join(cwd, DEFAULT_STAGING, 'dumps'));
    assert.match(path.basename(report.file), new RegExp(`^\\d{8}T\\d{9}Z-${db.name}\\.archive\\.gz$`));
    assert.deepEqual(await readdir(path.dirname(report.file)), [path.basename(report.file)], 'no .partial left');

    const got = await readFile(report.file);
    const sent = await readFile(tee);
    assert.ok(got.equals(sent), 'the staged archive is exactly what the remote command wrote');
    assert.equal(report.bytes, got.length);
    assert.equal(report.sha256, sha256(got));

    const header = await readArchiveHeader(report.file);
    assert.deepEqual(header.namespaces.map((n) => `${n.db}.${n.collection}`).sort(), [`${db.name}.orders`, `${db.name}.users`]);
    const users = [];
    for await (const raw of archiveDocuments(report.file, db.name, 'users')) users.push(deserialize(raw.bytes, { promoteValues: false }));
    assert.equal(users.length, 3);
    assert.equal((users[0]!.email as { valueOf(): string }).valueOf(), 'a@example.com');
    assert.ok(users[0]!.age instanceof Int32);
    assert.ok(users[0]!.weight instanceof Double);
    let orders = 0;
    for await (const _ of archiveDocuments(report.file, db.name, 'orders')) orders++;
    assert.equal(orders, 2);
  });

  test('progress on stderr, the summary on stdout, --out honoured', async (t) => {
    const db = await seed(t);
    const cwd = await caseDir(t.name);
    const out = path.join(cwd, 'elsewhere');
    const r = await etl(['refresh', 'mongo', '--out', out], dumpEnv(db.name), cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /receiving archive: [\d.]+ (B|KiB|MiB) \([\d.]+ (B|KiB|MiB)\/s\)/);
    const files = await readdir(out);
    assert.equal(files.length, 1);
    assert.ok(r.stdout.includes(`read it with: etl extract --source ${path.join(out, files[0]!)}`), r.stdout);
    assert.match(r.stdout, new RegExp(`sha256 ${sha256(await readFile(path.join(out, files[0]!)))}`));
  });

  test('--quiet: no progress on stderr, the last line of the summary only (as every command)', async (t) => {
    const db = await seed(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'mongo', '--quiet'], dumpEnv(db.name), cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^read it with: etl extract --source \S+\.archive\.gz\n$/);
  });

  test('a failing remote mongodump: exit 1 with its exit code and stderr, no file, no password shown', async (t) => {
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'mongo'], {
      ...sshEnv(),
      // Echoes its arguments (which hold the URI and its password) to stderr, then fails.
      REMOTE_MONGODUMP_COMMAND: `sh -c 'echo "Failed: connection refused for $*" >&2; exit 3' mongodump`,
      REMOTE_MONGODB_URL: 'mongodb://appuser:Sup3rSecretPw@localhost:27017/admin',
      REMOTE_MONGODB_DATABASE: 'wappizy',
    }, cwd);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /mongodump on .* exited with code 3/);
    assert.match(r.stderr, /Failed: connection refused/);
    assert.ok(!r.stderr.includes('Sup3rSecretPw') && !r.stdout.includes('Sup3rSecretPw'), r.stderr);
    assert.match(r.stderr, /authSource=admin/, 'the URI database moved to authSource so --db may differ');
    assert.match(r.stderr, /reads the password on its stdin: a REMOTE_MONGODUMP_COMMAND wrapper must pass stdin on \(docker exec -i\)/);
    assert.deepEqual(existsSync(path.join(cwd, DEFAULT_STAGING, 'dumps')) ? await readdir(path.join(cwd, DEFAULT_STAGING, 'dumps')) : [], []);
  });

  test('a password in REMOTE_MONGODB_URL is never on a command line on the server (ps): mongodump reads it on stdin', async (t) => {
    const db = await seed(t);
    const cwd = await caseDir(t.name);
    const psFile = path.join(cwd, 'remote-ps.txt');
    const password = "p@ss:w/rd#%' x";
    const port = new URL(servers.mongo.url).port;
    const expect = createHash('sha256').update(password).digest('hex');
    const r = await etl(['refresh', 'mongo', '--json'], {
      ...sshEnv(),
      // Takes the server's process list while it runs, then runs the fake mongodump.
      REMOTE_MONGODUMP_COMMAND: `sh -c 'ps -eo args > ${psFile}; exec ${fakeMongodump} "$@" --expect-password-sha256=${expect}' mongodump`,
      REMOTE_MONGODB_URL: `mongodb://appuser:${encodeURIComponent(password)}@127.0.0.1:${port}/?authMechanism=PLAIN`,
      REMOTE_MONGODB_DATABASE: db.name,
    }, cwd);
    assert.equal(r.code, 0, r.stderr);
    const ps = await readFile(psFile, 'utf8');
    assert.match(ps, /--archive --gzip/, 'the process list was taken while the dump ran');
    for (const shown of [password, encodeURIComponent(password), 'p%40ss']) {
      assert.ok(!ps.includes(shown), `the server's process list shows the password:\n${ps.split('\n').filter((l) => l.includes('mongodump')).join('\n')}`);
      assert.ok(!r.stdout.includes(shown) && !r.stderr.includes(shown), 'no password printed');
    }
    const report = JSON.parse(r.stdout) as { file: string };
    const users = [];
    for await (const raw of archiveDocuments(report.file, db.name, 'users')) users.push(raw);
    assert.equal(users.length, 3, 'mongodump logged in with the password it read');
  });

  test('mongodump missing on the server (exit 127): says so and how to point at it', async (t) => {
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'mongo'], { ...sshEnv(), REMOTE_MONGODUMP_COMMAND: 'etl-no-such-mongodump', REMOTE_MONGODB_DATABASE: 'x' }, cwd);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exited with code 127/);
    assert.match(r.stderr, /not installed on the server.*REMOTE_MONGODUMP_COMMAND/s);
  });

  test('--restore: asks first (refuses without a terminal), and without mongorestore stops before downloading', async (t) => {
    const cwd = await caseDir(t.name);
    const env = { ...sshEnv(), REMOTE_MONGODUMP_COMMAND: fakeMongodump, REMOTE_MONGODB_DATABASE: 'x', PATH: '/usr/bin:/bin' };
    const refused = await etl(['refresh', 'mongo', '--restore'], env, cwd);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /refusing to replace the local MongoDB database .* not running on a terminal/);
    assert.match(refused.stderr, /--yes/);
    const r = await etl(['refresh', 'mongo', '--restore', '--yes'], env, cwd);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /mongorestore, which is not installed here/);
    assert.ok(!existsSync(path.join(cwd, DEFAULT_STAGING, 'dumps')) || (await readdir(path.join(cwd, DEFAULT_STAGING, 'dumps'))).length === 0);
  });

  test('--restore: the local MONGODB_URL password reaches mongorestore on its stdin, never its command line (ps)', async (t) => {
    const db = await seed(t);
    const cwd = await caseDir(t.name);
    const bin = path.join(cwd, 'bin');
    await mkdir(bin);
    const psFile = path.join(cwd, 'local-ps.txt');
    const received = path.join(cwd, 'received-password');
    // Stands in for mongorestore (not in Debian): takes this machine's process list, then reads the
    // password from stdin as mongo-tools' prompt does for a URI with a user and no password.
    await writeFile(path.join(bin, 'mongorestore'), `#!/bin/sh\nps -eo args > ${psFile}\ncase "$*" in *--uri=mongodb://*:*@*) exit 0;; esac\nIFS= read -r pw\nprintf '%s' "$pw" > ${received}\n`, { mode: 0o755 });
    const password = "l0cal p@ss:w/rd#%'";
    const r = await etl(['refresh', 'mongo', '--restore', '--yes'], {
      ...dumpEnv(db.name),
      PATH: `${bin}:${process.env.PATH}`,
      MONGODB_URL: `mongodb://etl:${encodeURIComponent(password)}@127.0.0.1:27017/local_copy?authSource=admin`,
    }, cwd);
    assert.equal(r.code, 0, r.stderr);
    const ps = await readFile(psFile, 'utf8');
    assert.match(ps, /mongorestore --uri=/, 'the process list was taken while mongorestore ran');
    for (const shown of [password, encodeURIComponent(password), 'p%40ss']) {
      assert.ok(!ps.includes(shown), `this machine's process list shows the password:\n${ps.split('\n').filter((l) => l.includes('mongorestore')).join('\n')}`);
      assert.ok(!r.stdout.includes(shown) && !r.stderr.includes(shown), 'no password printed');
    }
    assert.equal(await readFile(received, 'utf8'), password, 'mongorestore read the password on its stdin');
  });

  test('Ctrl-C while receiving: stops at once, removes the partial file, ends the remote command', async (t) => {
    const cwd = await caseDir(t.name);
    const pidFile = path.join(cwd, 'remote.pid');
    const child = startEtl(['refresh', 'mongo'], {
      cwd,
      env: {
        HOME: cwd,
        ...sshEnv(),
        // Sends a gzip header (so a .partial exists), records its pid, then hangs like a slow dump.
        REMOTE_MONGODUMP_COMMAND: `sh -c 'echo $$ > ${pidFile}; printf "\\037\\213"; exec sleep 60' mongodump`,
        REMOTE_MONGODB_DATABASE: 'x',
      },
    });
    const exited = child.done.then((r) => r.code);
    const deadline = Date.now() + 20_000;
    while (!existsSync(pidFile) || !existsSync(path.join(cwd, DEFAULT_STAGING, 'dumps'))) {
      assert.ok(Date.now() < deadline, `the remote command never started: ${child.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    const remotePid = Number((await readFile(pidFile, 'utf8')).trim());
    const started = Date.now();
    child.kill('SIGINT');
    const code = await exited;
    assert.ok(Date.now() - started < 5_000, 'stopped promptly');
    assert.notEqual(code, 0);
    assert.match(child.stderr, /SIGINT received/);
    assert.deepEqual(await readdir(path.join(cwd, DEFAULT_STAGING, 'dumps')), [], 'no partial file left');
    const alive = () => {
      try {
        process.kill(remotePid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const until = Date.now() + 5_000;
    while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(), false, 'the remote command was ended');
  });

  test('a REMOTE_MONGODB_URL that is not a mongodb:// URL: exit 2 naming it, before any connection, password not shown', async (t) => {
    const cwd = await caseDir(t.name);
    for (const url of ['mongodb//appuser:Sup3rSecretPw@localhost/app', 'mongo:appuser:Sup3rSecretPw@localhost', 'localhost:27017']) {
      const r = await etl(['refresh', 'mongo'], { ...sshEnv(), REMOTE_SERVER_PORT: '1', REMOTE_MONGODB_URL: url }, cwd);
      assert.equal(r.code, 2, `${url}: ${r.stderr}`);
      assert.match(r.stderr, /REMOTE_MONGODB_URL is not a MongoDB connection string/);
      assert.ok(!r.stderr.includes('Sup3rSecretPw'), r.stderr);
    }
  });

  test('the SSH connection killed while receiving: exit 1 saying so, no file left for extract to read', async (t) => {
    const cwd = await caseDir(t.name);
    const pidFile = path.join(cwd, 'remote.pid');
    const child = startEtl(['refresh', 'mongo'], {
      cwd,
      env: {
        HOME: cwd,
        ...sshEnv(),
        // Records its pid, sends the start of a gzip stream, then hangs like a slow dump.
        REMOTE_MONGODUMP_COMMAND: `sh -c 'echo $$ > ${pidFile}; printf "\\037\\213\\010\\000"; exec sleep 60' mongodump`,
        REMOTE_MONGODB_DATABASE: 'x',
      },
    });
    const deadline = Date.now() + 20_000;
    while (!existsSync(pidFile) || !existsSync(path.join(cwd, DEFAULT_STAGING, 'dumps'))) {
      assert.ok(Date.now() < deadline, `the remote command never started: ${child.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    // The server's side of this SSH connection (the session's sshd, parent of the remote shell) dies.
    const remotePid = Number((await readFile(pidFile, 'utf8')).trim());
    const parentOf = async (pid: number) => Number((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[1]);
    let sessionSshd = await parentOf(remotePid);
    while (!/^sshd/.test(await readFile(`/proc/${sessionSshd}/cmdline`, 'utf8'))) sessionSshd = await parentOf(sessionSshd);
    process.kill(sessionSshd, 'SIGKILL');
    const r = await child.done;
    process.kill(remotePid, 'SIGKILL');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /mongodump on .* (ended without an exit status|was killed)|receiving the archive .* failed|connection/i);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.deepEqual(await readdir(path.join(cwd, DEFAULT_STAGING, 'dumps')), [], 'no file, partial or whole, left');
  });

  test('invalid remote settings: exit 2 naming the variable, before any connection', async (t) => {
    const cwd = await caseDir(t.name);
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ REMOTE_SERVER_HOST_KEY: 'SHA256-not-a-fingerprint' }, ['refresh', 'mongo'], /REMOTE_SERVER_HOST_KEY must be a fingerprint/],
      [{ REMOTE_SERVER_PORT: 'abc' }, ['refresh', 'mongo'], /REMOTE_SERVER_PORT must be a port number/],
      [{ REMOTE_POSTGRES_PORT: '70000' }, ['refresh', 'postgres', '--yes'], /REMOTE_POSTGRES_PORT must be a port number/],
      [{ TRANSFER_SOURCE: 'remot' }, ['extract'], /TRANSFER_SOURCE must be "local" or "remote", got "remot"/],
      [{ TRANSFER_DESTINATION: 'remot' }, ['status'], /TRANSFER_DESTINATION must be "local" or "remote"/],
    ];
    for (const [env, args, message] of cases) {
      const r = await etl(args, { ...sshEnv(), REMOTE_SERVER_PORT: '1', ...env }, cwd);
      assert.equal(r.code, 2, `${JSON.stringify(env)}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack');
    }
  });

  test('usage errors exit 2', async (t) => {
    const cwd = await caseDir(t.name);
    assert.equal((await etl(['refresh'], {}, cwd)).code, 2);
    assert.equal((await etl(['refresh', 'mysql'], {}, cwd)).code, 2);
    assert.equal((await etl(['refresh', 'mongo', '--include-table', 'x'], {}, cwd)).code, 2);
    assert.equal((await etl(['refresh', 'postgres', '--bogus'], {}, cwd)).code, 2);
    const noSsh = await etl(['refresh', 'mongo'], {}, cwd);
    assert.equal(noSsh.code, 2);
    assert.match(noSsh.stderr, /REMOTE_SERVER_URL is not set/);
  });
});

describe('etl refresh postgres', () => {
  async function seedRemote(name: string): Promise<string> {
    const admin = new pg.Client({ connectionString: remotePg.url('postgres') });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)}`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    await admin.end();
    const c = new pg.Client({ connectionString: remotePg.url(name) });
    await c.connect();
    await c.query(`
      CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, "order" int);
      CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), amount numeric(10,2));
      CREATE TABLE logs (id int PRIMARY KEY, msg text);
      INSERT INTO users (email, "order") VALUES ('a@example.com', 1), ('b@example.com', 2), ('c@example.com', NULL);
      INSERT INTO orders VALUES (1, 1, 12.50), (2, 3, 7.00);
      INSERT INTO logs SELECT g, 'line ' || g FROM generate_series(1, 1000) g;
    `);
    await c.end();
    return name;
  }

  async function seedLocal(t: { name: string }, extra = ''): Promise<string> {
    const url = await servers.postgres.createDatabase(t.name);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`
      CREATE TABLE users (id int PRIMARY KEY, email text);
      INSERT INTO users VALUES (100, 'stale@example.com');
      CREATE TABLE local_only (id int);
      INSERT INTO local_only VALUES (1), (2);
      ${extra}
    `);
    await c.end();
    return url;
  }

  function pgEnv(localUrl: string, remoteDb: string): Record<string, string> {
    return {
      ...sshEnv(),
      DATABASE_URL: localUrl,
      REMOTE_POSTGRES_HOST: '127.0.0.1',
      REMOTE_POSTGRES_PORT: String(remotePg.port),
      REMOTE_POSTGRES_DATABASE: remoteDb,
      REMOTE_POSTGRES_USER: 'postgres',
      REMOTE_POSTGRES_PASSWORD: remotePg.password,
    };
  }

  async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  }

  test('--include-table: those tables replace the local ones, the rest of the local database stays', async (t) => {
    const remoteDb = await seedRemote('refresh_include');
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres', '--yes', '--json', '--include-table', 'users', '--include-table', 'orders'], pgEnv(localUrl, remoteDb), cwd);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { tables: { table: string; rows: number }[]; file: string; bytes: number; sha256: string; remoteServerVersion: string; pgDumpVersion: string };
    assert.deepEqual([...report.tables].sort((a, b) => a.table.localeCompare(b.table)), [
      { table: 'public.orders', rows: 2, data: true },
      { table: 'public.users', rows: 3, data: true },
    ]);
    assert.equal(Number(report.remoteServerVersion.split('.')[0]), remotePg.major);
    const dump = await readFile(report.file);
    assert.equal(dump.subarray(0, 5).toString('latin1'), 'PGDMP', 'a pg_dump custom-format file');
    assert.equal(report.bytes, dump.length);
    assert.equal(report.sha256, sha256(dump));

    assert.deepEqual(await query(localUrl, 'SELECT id, email, "order" FROM users ORDER BY id'), [
      { id: 1, email: 'a@example.com', order: 1 },
      { id: 2, email: 'b@example.com', order: 2 },
      { id: 3, email: 'c@example.com', order: null },
    ]);
    assert.deepEqual(await query(localUrl, 'SELECT id, user_id, amount FROM orders ORDER BY id'), [
      { id: 1, user_id: 1, amount: '12.50' },
      { id: 2, user_id: 3, amount: '7.00' },
    ]);
    assert.deepEqual(await query(localUrl, "SELECT to_regclass('public.logs') AS t"), [{ t: null }], 'an excluded table is not brought over');
    assert.deepEqual(await query(localUrl, 'SELECT count(*)::int AS n FROM local_only'), [{ n: 2 }], 'objects outside the dump are untouched');
    for (const secret of [remotePg.password, servers.postgres.password]) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'no password printed');
    }
  });

  test('--exclude-table (and the POSTGRES_EXCLUDE_TABLES default): everything but that table', async (t) => {
    const remoteDb = await seedRemote('refresh_exclude');
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres', '--yes', '--exclude-table', 'orders'], { ...pgEnv(localUrl, remoteDb), POSTGRES_EXCLUDE_DATA_TABLES: 'logs' }, cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /public\.users\s+3/);
    assert.match(r.stdout, /public\.logs \(structure only\)\s+0/);
    assert.match(r.stdout, /2 tables restored/);
    assert.deepEqual(await query(localUrl, "SELECT to_regclass('public.orders') AS t"), [{ t: null }]);
    assert.deepEqual(await query(localUrl, 'SELECT count(*)::int AS n FROM logs'), [{ n: 0 }], 'POSTGRES_EXCLUDE_DATA_TABLES: structure only');
    assert.deepEqual(await query(localUrl, 'SELECT count(*)::int AS n FROM users'), [{ n: 3 }]);
    assert.match(r.stderr, /pg_restore: \d+ s|pg_dump: /, 'progress on stderr');

    const viaEnv = await etl(['refresh', 'postgres', '--yes', '--json'], { ...pgEnv(localUrl, remoteDb), POSTGRES_EXCLUDE_TABLES: 'orders,logs' }, cwd);
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.deepEqual((JSON.parse(viaEnv.stdout) as { tables: { table: string }[] }).tables.map((x) => x.table), ['public.users']);
  });

  test('without --yes and without a terminal: refuses with exit 2 and changes nothing', async (t) => {
    const remoteDb = await seedRemote('refresh_refuse');
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres'], pgEnv(localUrl, remoteDb), cwd);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to replace the local PostgreSQL database .* not running on a terminal/);
    assert.match(r.stderr, /pass --yes/);
    assert.deepEqual(await query(localUrl, 'SELECT id FROM users'), [{ id: 100 }]);
  });

  test('on a terminal it asks first: "n" changes nothing, "y" refreshes', async (t) => {
    const remoteDb = await seedRemote('refresh_tty');
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const { default: refresh } = await import('../../bin/commands/refresh.ts');
    const { PassThrough } = await import('node:stream');
    const answer = async (text: string, argv: string[]) => {
      const stdin = Object.assign(new PassThrough(), { isTTY: true });
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      let err = '';
      stdout.setEncoding('utf8').on('data', (x: string) => (out += x));
      stderr.setEncoding('utf8').on('data', (x: string) => {
        err += x;
        if (x.includes('Continue? [y/N]')) stdin.write(text);
      });
      const ctx = { argv, env: { PATH: process.env.PATH, ...pgEnv(localUrl, remoteDb) }, cwd, stdin, stdout, stderr, signal: new AbortController().signal };
      try {
        return { code: await refresh.run(ctx), out, err };
      } catch (e) {
        return { error: e as Error & { code?: string }, out, err };
      }
    };
    const no = await answer('n\n', ['postgres', '--include-table', 'users']);
    assert.match(no.err, /This REPLACES the local PostgreSQL database .* Continue\? \[y\/N\]/);
    assert.equal(no.error?.code, 'cancelled');
    assert.deepEqual(await query(localUrl, 'SELECT id FROM users'), [{ id: 100 }]);
    const yes = await answer('y\n', ['postgres', '--include-table', 'users']);
    assert.equal(yes.code, 0, String(yes.error));
    assert.deepEqual(await query(localUrl, 'SELECT count(*)::int AS n FROM users'), [{ n: 3 }]);
  });

  test('a restore that fails part-way leaves the local database exactly as it was (one transaction)', async (t) => {
    const remoteDb = await seedRemote('refresh_rollback');
    // A local view depends on users: DROP TABLE users (from --clean) fails half-way through.
    const localUrl = await seedLocal(t, 'CREATE VIEW user_emails AS SELECT email FROM users;');
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres', '--yes'], pgEnv(localUrl, remoteDb), cwd);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /pg_restore into .* failed/);
    assert.match(r.stderr, /local database is unchanged/);
    assert.match(r.stderr, /depend/);
    assert.match(r.stderr, /the dump is kept: .*\.pgdump/);
    assert.deepEqual(await query(localUrl, 'SELECT id, email FROM users'), [{ id: 100, email: 'stale@example.com' }]);
    assert.deepEqual(await query(localUrl, "SELECT to_regclass('public.orders') AS t"), [{ t: null }]);
  });

  test('a PG_BIN_DIR without pg_dump and pg_restore: exit 2 naming it, before anything is touched', async (t) => {
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres', '--yes'], { ...pgEnv(localUrl, 'refresh_nothing'), REMOTE_SERVER_PORT: '1', PG_BIN_DIR: path.join(cwd, 'no-such-bin') }, cwd);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /PG_BIN_DIR holds no executable pg_dump.*: got ".*no-such-bin"/);
    assert.ok(!existsSync(path.join(cwd, DEFAULT_STAGING, 'dumps')) || (await readdir(path.join(cwd, DEFAULT_STAGING, 'dumps'))).length === 0);
  });

  test('a missing local database is created only once the dump is whole: a failed refresh leaves none behind', async (t) => {
    const cwd = await caseDir(t.name);
    const name = 'refresh_created_late';
    await query(servers.postgres.url, `DROP DATABASE IF EXISTS ${name}`);
    const r = await etl(['refresh', 'postgres', '--yes'], { ...pgEnv(servers.postgres.databaseUrl(name), 'refresh_nothing'), REMOTE_SERVER_PORT: '1' }, cwd);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot reach the SSH server/);
    assert.deepEqual(await query(servers.postgres.url, `SELECT datname FROM pg_database WHERE datname = '${name}'`), [], 'no database created by a refresh that failed');
    const remoteDb = await seedRemote('refresh_into_missing');
    const ok = await etl(['refresh', 'postgres', '--yes', '--json', '--include-table', 'users'], pgEnv(servers.postgres.databaseUrl(name), remoteDb), cwd);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match((JSON.parse(ok.stdout) as { local: string }).local, /\(created\)$/);
    assert.deepEqual(await query(servers.postgres.databaseUrl(name), 'SELECT count(*)::int AS n FROM users'), [{ n: 3 }]);
  });

  test('tables whose names hold blanks, capitals or quotes are counted in the report', async (t) => {
    const remoteDb = await seedRemote('refresh_odd_names');
    const c = new pg.Client({ connectionString: remotePg.url(remoteDb) });
    await c.connect();
    await c.query(`CREATE TABLE "Daily Log" (id int); INSERT INTO "Daily Log" VALUES (1), (2); CREATE TABLE "it's" (id int); INSERT INTO "it's" VALUES (1);`);
    await c.end();
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres', '--yes', '--json', '--exclude-table', 'logs'], pgEnv(localUrl, remoteDb), cwd);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const tables = (JSON.parse(r.stdout) as { tables: { table: string; rows: number }[] }).tables;
    assert.deepEqual(tables.find((x) => x.table === 'public.Daily Log')?.rows, 2, JSON.stringify(tables));
    assert.deepEqual(tables.find((x) => x.table === "public.it's")?.rows, 1, JSON.stringify(tables));
    assert.deepEqual(await query(localUrl, 'SELECT count(*)::int AS n FROM "Daily Log"'), [{ n: 2 }]);
  });

  test('wrong credentials: exit 1, a line naming what failed and the variable to check, no password, no stack', async (t) => {
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const secret = "wr0ng p@ss:w/rd#%'";
    const cases: [Record<string, string>, RegExp, RegExp][] = [
      [{ REMOTE_SERVER_KEY_FILE: '', REMOTE_SERVER_PASSWORD: secret }, /SSH authentication failed for .* \(tried: password/, /REMOTE_SERVER_PASSWORD/],
      [{ REMOTE_POSTGRES_PASSWORD: secret }, /cannot connect to the remote PostgreSQL .* through SSH .*password authentication failed/, /REMOTE_POSTGRES_PASSWORD/],
    ];
    for (const [env, message, variable] of cases) {
      const base = pgEnv(localUrl, 'postgres');
      const merged: Record<string, string> = { ...base, ...env };
      if (merged.REMOTE_SERVER_KEY_FILE === '') delete merged.REMOTE_SERVER_KEY_FILE;
      for (const args of [['refresh', 'postgres', '--yes'], ['refresh', 'postgres', '--yes', '--json']]) {
        const r = await etl(args, merged, cwd);
        assert.equal(r.code, 1, r.stderr);
        const out = r.stdout + r.stderr;
        assert.match(out, message);
        assert.match(out, variable);
        for (const shown of [secret, encodeURIComponent(secret)]) assert.ok(!out.includes(shown), out);
        assert.doesNotMatch(out, /\n\s+at |internal error/);
      }
    }
    assert.deepEqual(await query(localUrl, 'SELECT id FROM users'), [{ id: 100 }]);
  });

  test('a remote server newer than every pg_dump here: a clear refusal naming both versions', async (t) => {
    const newest = await pgDumpMajor();
    const harnessMajor = Number((await query<{ v: string }>(servers.postgres.url, "SELECT current_setting('server_version_num') AS v"))[0]!.v.slice(0, 2));
    if (newest >= harnessMajor) return t.skip(`pg_dump ${newest} can dump PostgreSQL ${harnessMajor}`);
    const remoteUrl = new URL(await servers.postgres.createDatabase(`${t.name} remote`));
    const localUrl = await seedLocal(t);
    const cwd = await caseDir(t.name);
    const r = await etl(['refresh', 'postgres', '--yes'], {
      ...pgEnv(localUrl, remoteUrl.pathname.slice(1)),
      REMOTE_POSTGRES_PORT: String(servers.postgres.port),
      REMOTE_POSTGRES_PASSWORD: servers.postgres.password,
    }, cwd);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`remote PostgreSQL server is version ${harnessMajor}\\.`));
    assert.match(r.stderr, new RegExp(`too old to dump it: .*\\(${newest}\\.`));
    assert.match(r.stderr, new RegExp(`postgresql-client-${harnessMajor}.*PG_BIN_DIR`));
    assert.deepEqual(await query(localUrl, 'SELECT id FROM users'), [{ id: 100 }]);
  });
});
