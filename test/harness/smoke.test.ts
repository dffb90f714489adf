// The harness itself: real servers answer, data round-trips with the official drivers, each test
// gets a fresh database, and every started server is gone afterwards (also when its owner crashes).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Int32, Long, MongoClient, ObjectId } from 'mongodb';
import pg from 'pg';
import { databaseNameFor, mongoUrlWithDatabase, startServers, useServers } from './index.ts';
import { tempDir } from './temp-dir.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const external = Boolean(process.env.DATABASE_URL || process.env.MONGODB_URL);

describe('databaseNameFor', () => {
  test('keeps [a-z0-9_], starts with a letter, at most 63 characters', () => {
    assert.equal(databaseNameFor('Loads users: 2 rows (ok)'), 'loads_users_2_rows_ok');
    assert.equal(databaseNameFor('42 answers'), 't_42_answers');
    assert.equal(databaseNameFor('éé'), 't');
    const long = databaseNameFor('x'.repeat(100));
    assert.equal(long.length, 63);
    assert.match(long, /^x+_[0-9a-f]{8}$/);
    assert.notEqual(databaseNameFor(`${'y'.repeat(80)}a`), databaseNameFor(`${'y'.repeat(80)}b`));
    assert.equal(databaseNameFor('already_clean_1'), 'already_clean_1');
  });

  test('a MongoDB URL gets the database in its path, query kept', () => {
    assert.equal(mongoUrlWithDatabase('mongodb://127.0.0.1:1/', 'db'), 'mongodb://127.0.0.1:1/db');
    assert.equal(mongoUrlWithDatabase('mongodb://u:p@a:1,b:2/old?replicaSet=rs', 'db'), 'mongodb://u:p@a:1,b:2/db?replicaSet=rs');
    assert.equal(mongoUrlWithDatabase('mongodb+srv://h?tls=true', 'db'), 'mongodb+srv://h/db?tls=true');
  });
});

describe('servers', () => {
  const servers = useServers();

  test('a document round-trips through FerretDB with the official driver', async (t) => {
    const { name, url } = await servers.mongo.newDatabase(t.name);
    const client = new MongoClient(url);
    try {
      await client.connect();
      const users = client.db(name).collection('users');
      const id = new ObjectId();
      const createdAt = new Date('2024-03-06T23:00:00.123Z');
      await users.insertOne({ _id: id, createdAt, name: 'Zoé', age: new Int32(42), visits: Long.fromString('9007199254740993') });

      const found = await users.find({ _id: id }).toArray();
      assert.equal(found.length, 1);
      const doc = found[0]!;
      assert.ok(doc._id instanceof ObjectId, 'the _id comes back as an ObjectId');
      assert.equal(doc._id.toHexString(), id.toHexString());
      assert.ok(doc.createdAt instanceof Date, 'the date comes back as a Date');
      assert.equal(doc.createdAt.toISOString(), '2024-03-06T23:00:00.123Z');
      assert.equal(doc.name, 'Zoé');
      assert.equal(doc.age, 42);

      // Raw BSON types survive too (what extract relies on).
      const raw = await users.findOne({ _id: id }, { promoteValues: false, promoteLongs: false });
      assert.ok(raw?.age instanceof Int32);
      assert.ok(raw?.visits instanceof Long);
      assert.equal(raw.visits.toString(), '9007199254740993');
      assert.equal(await users.countDocuments({ _id: new ObjectId() }), 0, 'an unknown _id matches nothing');
    } finally {
      await client.close();
    }
  });

  test('a row round-trips through PostgreSQL with parameters', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const db = await client.query<{ db: string }>('SELECT current_database() AS db');
      assert.equal(db.rows[0]?.db, databaseNameFor(t.name));
      await client.query('CREATE TABLE "user" (id TEXT PRIMARY KEY, born DATE, seen TIMESTAMP, score INTEGER, tags JSONB, note TEXT)');
      const row = ['65e8f1a0c2b1d4e5f6a7b8c9', '1990-05-17', '2024-03-06 23:00:00.123', 7, '["a","é"]', "it's ok"];
      await client.query('INSERT INTO "user" (id, born, seen, score, tags, note) VALUES ($1, $2, $3, $4, $5, $6)', row);
      // Dates as text: what we sent is what we read, no time-zone shift on the way.
      const back = await client.query(`SELECT id, born::text AS born, to_char(seen, 'YYYY-MM-DD HH24:MI:SS.MS') AS seen, score, tags, note FROM "user"`);
      assert.deepEqual(back.rows, [
        { id: '65e8f1a0c2b1d4e5f6a7b8c9', born: '1990-05-17', seen: '2024-03-06 23:00:00.123', score: 7, tags: ['a', 'é'], note: "it's ok" },
      ]);
      await assert.rejects(
        client.query('INSERT INTO "user" (id) VALUES ($1)', [row[0]]),
        (err: Error & { code?: string }) => err.code === '23505',
        'the primary key is enforced',
      );
    } finally {
      await client.end();
    }
  });

  test('createDatabase gives a fresh database, even while a connection to the old one is open', async (t) => {
    const url = await servers.postgres.createDatabase(t.name);
    const holder = new pg.Client({ connectionString: url });
    holder.on('error', () => undefined); // DROP ... WITH (FORCE) ends this session on purpose
    await holder.connect();
    await holder.query('CREATE TABLE leftover (x INT)');

    const again = await servers.postgres.createDatabase(t.name);
    assert.equal(again, url);
    const client = new pg.Client({ connectionString: again });
    await client.connect();
    try {
      const tables = await client.query(`SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'leftover'`);
      assert.equal(tables.rows[0].n, 0);
    } finally {
      await client.end();
      await holder.end().catch(() => undefined);
    }
  });

  test('newDatabase gives an empty MongoDB database', async (t) => {
    const first = await servers.mongo.newDatabase(t.name);
    const client = new MongoClient(servers.mongo.url);
    try {
      await client.connect();
      await client.db(first.name).collection('c').insertMany([{ a: 1 }, { a: 2 }]);
      assert.equal(await client.db(first.name).collection('c').countDocuments(), 2);
      const second = await servers.mongo.newDatabase(t.name);
      assert.equal(second.name, first.name);
      assert.equal(await client.db(second.name).collection('c').countDocuments(), 0);
    } finally {
      await client.close();
    }
  });
});

describe('lifecycle', { skip: external ? 'DATABASE_URL/MONGODB_URL given: nothing is started' : false }, () => {
  test('startServers(t) stops both servers and removes their data when the test ends', async (t) => {
    let pgPort = 0;
    let mongoPort = 0;
    const dirs: string[] = [];
    await t.test('inner', async (inner) => {
      const { postgres, mongo } = await startServers(inner);
      pgPort = postgres.port;
      mongoPort = Number(new URL(mongo.url).port);
      dirs.push(postgres.dir!, mongo.dir!);
      assert.ok(await accepts(pgPort) && (await accepts(mongoPort)), 'both servers listen while the test runs');
    });
    assert.equal(await accepts(pgPort), false, 'PostgreSQL no longer listens');
    assert.equal(await accepts(mongoPort), false, 'FerretDB no longer listens');
    for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} removed`);
  });

  test("binaries: 'system' runs Debian's server, which the client tools on PATH can dump", async (t) => {
    const { postgres } = await startServers(t, { mongo: false, postgres: { binaries: 'system' } });
    assert.ok(postgres.binDir?.startsWith('/usr/lib/postgresql/'), `binDir ${postgres.binDir}`);
    assert.equal(postgres.majorVersion, Number(path.basename(path.dirname(postgres.binDir!))));
    const url = await postgres.createDatabase(t.name);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('CREATE TABLE dumped_here (x INT)');
    await client.end();
    const dump = await run(path.join(postgres.binDir!, 'pg_dump'), ['--schema-only', url]);
    assert.equal(dump.code, 0, dump.stderr);
    assert.match(dump.stdout, /CREATE TABLE public\.dumped_here/);
  });

  for (const how of ['exit', 'throw', 'sigterm']) {
    test(`servers of a process that ends without stopping them are killed and removed (${how})`, async () => {
      const { code, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(HERE, 'abandon-servers.fixture.ts'), how]);
      assert.notEqual(code, 0, `the fixture failed on purpose (stderr: ${stderr.slice(-500)})`);
      const where = JSON.parse(stdout.trim().split('\n')[0] ?? '{}') as { postgres: { port: number; dir: string }; mongo: { url: string; dir: string } };
      const ports = [where.postgres.port, Number(new URL(where.mongo.url).port)];
      await eventually(async () => {
        for (const port of ports) assert.equal(await accepts(port), false, `port ${port} closed`);
        for (const dir of [where.postgres.dir, where.mongo.dir]) assert.equal(existsSync(dir), false, `${dir} removed`);
      });
    });
  }

  test('a process that dies while PostgreSQL is still starting (FerretDB fails at once) leaves no cluster behind', async (t) => {
    // The fixture's own TMPDIR: only what this run creates is looked at, and it goes away either way.
    const tmp = await tempDir('etl-abandon-', t);
    await chmod(tmp, 0o755); // as root, initdb runs as user postgres, which must reach the cluster folder
    const env = { FERRETDB_BIN: '/bin/false', TMPDIR: tmp };
    const { code, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(HERE, 'abandon-servers.fixture.ts'), 'exit'], env);
    assert.equal(code, 1, stderr.slice(-500));
    assert.match(stderr, /FerretDB exited during start/);
    await eventually(async () => {
      assert.deepEqual(processesMentioning(tmp), [], 'no initdb or postgres still runs in it');
      // Only tsx's compile cache may stay.
      assert.deepEqual((await readdir(tmp)).filter((name) => !name.startsWith('tsx-')), [], 'no cluster folder, no password file');
    });
  });
});

/** Command lines of the processes that name `text` in theirs (a test's own folder: nothing else does). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // Gone in between.
    }
  }
  return found;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function eventually(check: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: path.resolve(HERE, '../..'), env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
