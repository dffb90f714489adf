// A cursor that dies mid-way resumes after the last _id written: the FerretDB process is killed
// (SIGKILL) while the extract is reading and started again on the same port and data directory.
// The driver's pooled connections die with it; the extract must reconnect and finish with exactly
// the documents of a clean run, in order, none twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient, ObjectId, type Db } from 'mongodb';
import { ferretDbArgs, ferretDbBinary } from '../../dev/servers/ferretdb.ts';
import { freePort } from '../../dev/servers/free-port.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { Int32, type Document } from 'bson';
import { day, makeEvents, makeUsers, objectIdAt } from './dump-writer.ts';
import { tempDir } from '../harness/temp-dir.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PIPELINE = path.join(HERE, 'fixtures/pipeline.yaml');

async function startFerret(binary: string, dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(binary, ferretDbArgs(dir, port), { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = new MongoClient(`mongodb://127.0.0.1:${port}`, { serverSelectionTimeoutMS: 300 });
    try {
      await c.connect();
      await c.db('admin').command({ ping: 1 });
      return child;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await c.close();
    }
  }
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

test('killing the server mid-extract: reconnect and resume after the last _id, no gap, no duplicate', async (t) => {
  const binary = await ferretDbBinary();
  const dir = await tempDir('etl-resume-fdb-');
  const port = await freePort();
  let child = await startFerret(binary, dir, port);
  t.after(async () => {
    await stop(child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const url = `mongodb://127.0.0.1:${port}/resume`;
  const client = new MongoClient(url);
  await client.connect();
  const users = makeUsers(1500);
  await client.db('resume').collection('users').insertMany(users);
  await client.close();

  const model = await loadPipeline(PIPELINE);
  const staging = await tempDir('etl-resume-');
  const source = { kind: 'mongodb' as const, mongo: { url, database: 'resume' } };
  const clean = await runExtract({ model, stagingDir: staging, source, full: true, tables: ['users'] });

  let killedAt = -1;
  let restarted: Promise<void> | null = null;
  const retries: string[] = [];
  const report = await runExtract({
    model,
    stagingDir: staging,
    source,
    full: true,
    tables: ['users'],
    retry: { maxRetries: 20, baseDelayMs: 100, maxDelayMs: 1_000 },
    progressEveryMs: 0,
    onProgress: (e) => {
      if (e.kind === 'collection_progress' && killedAt < 0 && e.documents >= 300) {
        killedAt = e.documents;
        child.kill('SIGKILL');
        restarted = (async () => {
          await new Promise((r) => child.once('exit', r));
          await new Promise((r) => setTimeout(r, 1_000));
          child = await startFerret(binary, dir, port);
        })();
      }
      if (e.kind === 'collection_retry') retries.push(e.error);
    },
  });
  await restarted;
  t.diagnostic(`killed after ${killedAt} documents; reconnections: ${retries.join(" | ")}`);
  assert.ok(killedAt >= 300 && killedAt < 1500, `killed after ${killedAt} documents`);
  assert.ok(report.collections[0]!.retries! >= 1, `reconnected ${report.collections[0]!.retries} time(s): ${retries.join(' | ')}`);
  assert.equal(report.collections[0]!.documents, 1500);
  const a = await readFile(path.join(clean.runDir, 'extract/users.ndjson'));
  const b = await readFile(path.join(report.runDir, 'extract/users.ndjson'));
  assert.equal(b.toString().split('\n').length, a.toString().split('\n').length);
  assert.ok(a.equals(b), 'same bytes as an uninterrupted extract');
  assert.equal(report.collections[0]!.sha256, clean.collections[0]!.sha256);
});

/** 400 Int32, 400 string and 400 ObjectId `_id`s: the server sorts them by type first (numbers, strings, ObjectIds). */
function mixedIds(): Document[] {
  const docs: Document[] = [];
  for (let i = 0; i < 400; i += 1) {
    docs.push({ _id: new Int32(i), email: `n${i}@example.org`, creation_date: day(1), update_date: day(1) });
    docs.push({ _id: `s${String(i).padStart(4, '0')}`, email: `s${i}@example.org`, creation_date: day(1), update_date: day(1) });
    docs.push({ _id: objectIdAt(i + 1), email: `o${i}@example.org`, creation_date: day(1), update_date: day(1) });
  }
  return docs;
}

interface Killable {
  readonly binary: string;
  readonly dir: string;
  readonly port: number;
  child: ChildProcess;
}

/** Kills the server (SIGKILL) and starts it again on the same port and data, once; the promise is what to await. */
function killAndRestart(server: Killable): Promise<void> {
  const old = server.child;
  old.kill('SIGKILL');
  return (async () => {
    await new Promise((r) => old.once('exit', r));
    await new Promise((r) => setTimeout(r, 1_000));
    server.child = await startFerret(server.binary, server.dir, server.port);
  })();
}

/**
 * Kills the server (SIGKILL), makes `edits` through a second FerretDB on the same data but another
 * port (nothing the extract can reach), stops that one, and starts the server again on its port: the
 * extract's resumed cursor is the first to read after the edits, whatever its retries' timing.
 */
function killEditAndRestart(server: Killable, database: string, edits: (db: Db) => Promise<void>): Promise<void> {
  const old = server.child;
  old.kill('SIGKILL');
  return (async () => {
    await new Promise((r) => old.once('exit', r));
    const port = await freePort();
    const side = await startFerret(server.binary, server.dir, port);
    const client = new MongoClient(`mongodb://127.0.0.1:${port}`);
    try {
      await client.connect();
      await edits(client.db(database));
    } finally {
      await client.close();
      await stop(side, 'SIGTERM');
    }
    server.child = await startFerret(server.binary, server.dir, server.port);
  })();
}

/** A FerretDB of its own (killed and restarted by the test) and a staging folder, both removed after the test. */
async function killableServer(t: { after(fn: () => Promise<void>): void }, name: string): Promise<{ server: Killable; staging: string }> {
  const binary = await ferretDbBinary();
  const dir = await tempDir(`etl-resume-${name}-fdb-`);
  const port = await freePort();
  const server: Killable = { binary, dir, port, child: await startFerret(binary, dir, port) };
  const staging = await tempDir(`etl-resume-${name}-`);
  t.after(async () => {
    await stop(server.child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  });
  return { server, staging };
}

async function mixedServer(t: { after(fn: () => Promise<void>): void }, db: string): Promise<{ server: Killable; url: string; staging: string }> {
  const { server, staging } = await killableServer(t, 'mixed');
  const url = `mongodb://127.0.0.1:${server.port}/${db}`;
  const client = new MongoClient(url);
  await client.connect();
  await client.db(db).collection('users').insertMany(mixedIds());
  await client.close();
  return { server, url, staging };
}

test('a cursor dropped among the numbers resumes through the strings and ObjectIds: every _id type, in order, none twice', async (t) => {
  const { server, url, staging } = await mixedServer(t, 'resume_mixed');
  const model = await loadPipeline(PIPELINE);
  const source = { kind: 'mongodb' as const, mongo: { url, database: 'resume_mixed' } };
  const clean = await runExtract({ model, stagingDir: staging, source, full: true, tables: ['users'], propagateDeletes: true });
  assert.equal(clean.collections[0]!.documents, 1200);

  let killedDocs = -1;
  let killedIds = -1;
  let restarted: Promise<void> = Promise.resolve();
  const report = await runExtract({
    model,
    stagingDir: staging,
    source,
    full: true,
    tables: ['users'],
    propagateDeletes: true,
    retry: { maxRetries: 20, baseDelayMs: 100, maxDelayMs: 1_000 },
    progressEveryMs: 0,
    onProgress: (e) => {
      // Once while the documents pass reads numbers, once while the ids pass does.
      if (e.kind === 'collection_progress' && killedDocs < 0 && e.documents >= 150) {
        killedDocs = e.documents;
        restarted = killAndRestart(server);
      }
      if (e.kind === 'collection_ids_progress' && killedIds < 0 && e.ids >= 150) {
        killedIds = e.ids;
        restarted = killAndRestart(server);
      }
    },
  });
  await restarted;
  t.diagnostic(`killed after ${killedDocs} documents and after ${killedIds} ids`);
  assert.ok(killedDocs >= 150 && killedDocs < 400, `killed among the numbers (after ${killedDocs} documents)`);
  assert.ok(killedIds >= 150 && killedIds < 400, `killed among the numbers (after ${killedIds} ids)`);
  const users = report.collections[0]!;
  assert.ok(users.retries! >= 1);
  assert.equal(users.documents, 1200);
  assert.ok((await readFile(path.join(report.runDir, users.file))).equals(await readFile(path.join(clean.runDir, clean.collections[0]!.file))), 'same bytes as an uninterrupted extract');
  const ids = users.ids!;
  assert.equal(ids.documents, 1200);
  assert.equal(ids.sha256, clean.collections[0]!.ids!.sha256);
  assert.equal(ids.complete, true);
  assert.equal(ids.count_before, 1200);
  assert.equal(ids.count_after, 1200);
  assert.deepEqual(ids.tables, ['users']);
});

test('an _id listing shorter than the counts taken around it is not proved complete: it carries no table', async (t) => {
  const { url, staging } = await mixedServer(t, 'resume_short');
  const model = await loadPipeline(PIPELINE);
  const client = new MongoClient(url);
  await client.connect();
  t.after(() => client.close());
  const users = client.db('resume_short').collection('users');
  let inserting: Promise<unknown> = Promise.resolve();
  let inserted = false;
  const report = await runExtract({
    model,
    stagingDir: staging,
    source: { kind: 'mongodb', mongo: { url, database: 'resume_short' } },
    full: true,
    tables: ['users'],
    propagateDeletes: true,
    progressEveryMs: 0,
    onProgress: (e) => {
      // A document appears behind the listing while it runs (an _id it has passed): the listing
      // holds fewer _ids than the count taken after it, which it cannot tell from a skip.
      if (e.kind === 'collection_ids_progress' && e.ids >= 256 && !inserted) {
        inserted = true;
        inserting = users.insertOne({ _id: new Int32(-1) as never, email: 'late@example.org' });
      }
    },
  });
  await inserting;
  const ids = report.collections[0]!.ids!;
  assert.equal(ids.documents, 1200);
  assert.equal(ids.count_before, 1200);
  assert.equal(ids.count_after, 1201);
  assert.equal(ids.complete, false);
  assert.match(ids.incomplete_reason!, /1200 _id\(s\) listed, but 1200 counted before the listing and 1201 after it/);
  assert.deepEqual(ids.tables, []);
  assert.deepEqual(ids.withheld_tables, ['users']);
  assert.match(report.warnings.join('\n'), /the _id listing of "users" is not proved complete .*this run deletes no row of users/);
  // Transform stages no live keys from it, so load deletes nothing on its account.
  const transformed = await runTransform({ model, stagingDir: staging, tables: ['users'] });
  assert.equal(transformed.tables.find((x) => x.table === 'users')!.live, undefined);
});

test('killing the server while two collections are read at once: each resumes after its own last _id, the files are those of one at a time', async (t) => {
  const { server, staging } = await killableServer(t, 'two');
  const url = `mongodb://127.0.0.1:${server.port}/resume_two`;
  const client = new MongoClient(url);
  await client.connect();
  await client.db('resume_two').collection('events').insertMany(makeEvents(1500));
  await client.db('resume_two').collection('users').insertMany(makeUsers(1500));
  await client.close();

  const model = await loadPipeline(PIPELINE);
  const source = { kind: 'mongodb' as const, mongo: { url, database: 'resume_two' } };
  const tables = ['events', 'users'];
  const clean = await runExtract({ model, stagingDir: staging, source, full: true, tables, collectionsAtOnce: 1 });
  const read = new Map<string, number>();
  let killedAt: Record<string, number> | null = null;
  let restarted: Promise<void> = Promise.resolve();
  const report = await runExtract({
    model,
    stagingDir: staging,
    source,
    full: true,
    tables,
    collectionsAtOnce: 2,
    retry: { maxRetries: 20, baseDelayMs: 100, maxDelayMs: 1_000 },
    progressEveryMs: 0,
    onProgress: (e) => {
      if (e.kind === 'collection_progress') read.set(e.collection, e.documents);
      if (!killedAt && (read.get('events') ?? 0) >= 256 && (read.get('users') ?? 0) >= 256) {
        killedAt = Object.fromEntries(read);
        restarted = killAndRestart(server);
      }
    },
  });
  await restarted;
  t.diagnostic(`killed after ${JSON.stringify(killedAt)} documents`);
  assert.ok(killedAt, 'the server was killed while both collections were read');
  for (const name of ['events', 'users']) {
    const got = report.collections.find((c) => c.collection === name)!;
    const want = clean.collections.find((c) => c.collection === name)!;
    assert.ok(got.retries! >= 1, `${name} reconnected`);
    assert.equal(got.documents, 1500);
    assert.ok((await readFile(path.join(report.runDir, got.file))).equals(await readFile(path.join(clean.runDir, want.file))), `${name}: the bytes of an uninterrupted extract`);
  }
  assert.deepEqual(report.collections.map((c) => c.collection), clean.collections.map((c) => c.collection));
});

// FerretDB's cursor reads a snapshot: a write made between two of its batches is not seen (measured
// on v1.24 with SQLite: an update, a delete and an insert ahead of the cursor all invisible), where
// MongoDB's cursor, which reads no snapshot, sees documents ahead of it as they are when it gets
// there. The resumed cursor is the one place FerretDB reads like MongoDB, so the writes land there.
test('writes made while a dropped cursor is down are read as they are now past the resume point, as a MongoDB cursor reads them: no _id twice, the deleted not staged, the ids listing short of its first count withholds its deletes, the edit behind dated after the clock', async (t) => {
  const { server, staging } = await killableServer(t, 'moving');
  const url = `mongodb://127.0.0.1:${server.port}/resume_moving`;
  const seed = new MongoClient(url);
  await seed.connect();
  await seed.db('resume_moving').collection('users').insertMany(makeUsers(1500));
  await seed.close();

  const model = await loadPipeline(PIPELINE);
  const id = (n: number) => objectIdAt(n + 1);
  const born = new ObjectId();
  let behindAt: Date | null = null;
  let killed = { documents: -1, ids: -1 };
  let restarted: Promise<void> = Promise.resolve();
  const report = await runExtract({
    model,
    stagingDir: staging,
    source: { kind: 'mongodb', mongo: { url, database: 'resume_moving' } },
    full: true,
    tables: ['users'],
    propagateDeletes: true,
    retry: { maxRetries: 20, baseDelayMs: 100, maxDelayMs: 1_000 },
    progressEveryMs: 0,
    onProgress: (e) => {
      if (e.kind === 'collection_progress' && killed.documents < 0 && e.documents >= 300) {
        killed = { ...killed, documents: e.documents };
        restarted = killEditAndRestart(server, 'resume_moving', async (db) => {
          const users = db.collection('users');
          behindAt = new Date();
          await users.updateOne({ _id: id(10) }, { $set: { email: 'behind@example.org', update_date: behindAt } });
          await users.updateOne({ _id: id(1400) }, { $set: { email: 'ahead@example.org', update_date: new Date() } });
          await users.deleteOne({ _id: id(1450) });
          await users.insertOne({ _id: born, email: 'born@example.org', creation_date: new Date(), update_date: new Date() });
        });
      }
      if (e.kind === 'collection_ids_progress' && killed.ids < 0 && e.ids >= 300) {
        killed = { ...killed, ids: e.ids };
        restarted = killEditAndRestart(server, 'resume_moving', async (db) => void (await db.collection('users').deleteOne({ _id: id(1300) })));
      }
    },
  });
  await restarted;
  t.diagnostic(`killed after ${killed.documents} documents and after ${killed.ids} ids`);
  assert.ok(killed.documents >= 300 && killed.documents < 1400, `killed in the documents pass before the edits ahead (after ${killed.documents})`);
  assert.ok(killed.ids >= 300 && killed.ids < 1300, `killed in the ids pass before the delete ahead (after ${killed.ids})`);
  const users = report.collections[0]!;
  assert.ok(users.retries! >= 1);

  const docs = (await readFile(path.join(report.runDir, users.file), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as { _id: { $oid: string }; email: string });
  const ids = docs.map((d) => d._id.$oid);
  assert.ok(ids.every((x, i) => i === 0 || ids[i - 1]! < x), 'every _id once, ascending');
  const email = (oid: ObjectId) => docs.find((d) => d._id.$oid === oid.toHexString())?.email;
  assert.equal(email(id(10)), 'user10@example.org', 'the document behind the cursor is staged as it was read');
  assert.equal(email(id(1400)), 'ahead@example.org', 'the document ahead is staged as it is now');
  assert.equal(email(id(1450)), undefined, 'the document deleted ahead is not staged');
  assert.equal(email(born), 'born@example.org', 'the document inserted ahead is staged');
  assert.equal(users.documents, 1500);
  // The next run reads the edit behind: it is dated after the clock the next watermark comes from.
  assert.ok(Date.parse(report.serverStartedAt!) <= behindAt!.getTime(), `server clock ${report.serverStartedAt} read before the edit behind (${behindAt!.toISOString()})`);
  assert.ok(Date.parse(users.watermark!.next) <= behindAt!.getTime());

  // The ids pass lost 1300 past its resume point: 1499 listed, 1500 counted before. That is a delete
  // during the listing as far as the counts can tell, so this run deletes nothing on its account;
  // the deleted document's row goes with the next run's listing.
  const listing = users.ids!;
  assert.equal(listing.documents, 1499);
  assert.equal(listing.count_before, 1500);
  assert.equal(listing.count_after, 1499);
  assert.equal(listing.complete, false);
  assert.deepEqual(listing.withheld_tables, ['users']);
});
