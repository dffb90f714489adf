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
import { MongoClient } from 'mongodb';
import { ferretDbArgs, ferretDbBinary } from '../harness/ferretdb.ts';
import { freePort } from '../harness/free-port.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { makeUsers } from './dump-writer.ts';
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
      if (e.type === 'collection-progress' && killedAt < 0 && e.documents >= 300) {
        killedAt = e.documents;
        child.kill('SIGKILL');
        restarted = (async () => {
          await new Promise((r) => child.once('exit', r));
          await new Promise((r) => setTimeout(r, 1_000));
          child = await startFerret(binary, dir, port);
        })();
      }
      if (e.type === 'collection-retry') retries.push(e.error);
    },
  });
  await restarted;
  t.diagnostic(`killed after ${killedAt} documents; reconnections: ${retries.join(" | ")}`);
  assert.ok(killedAt >= 300 && killedAt < 1500, `killed after ${killedAt} documents`);
  assert.ok(report.collections[0]!.retries! >= 1, `reconnected ${report.collections[0]!.retries} time(s): ${retries.join(' | ')}`);
  assert.equal(report.collections[0]!.documents, 1500);
  const a = await readFile(path.join(clean.run_dir, 'extract/users.ndjson'));
  const b = await readFile(path.join(report.run_dir, 'extract/users.ndjson'));
  assert.equal(b.toString().split('\n').length, a.toString().split('\n').length);
  assert.ok(a.equals(b), 'same bytes as an uninterrupted extract');
  assert.equal(report.collections[0]!.sha256, clean.collections[0]!.sha256);
});
