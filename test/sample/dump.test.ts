// `etl sample --out`: a mongodump directory whose bytes depend only on seed and scale, and whose
// .bson files parse back into the planned documents.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { deserialize, EJSON, type Document } from 'bson';
import { generateSample, SAMPLE_COLLECTIONS } from '../../sample/generate.ts';
import { writeDump } from '../../sample/write-dump.ts';
import { etl } from '../harness/cli.ts';

const SCALE = 3000;

async function shaOfFiles(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of (await readdir(dir)).sort()) out.set(f, createHash('sha256').update(await readFile(path.join(dir, f))).digest('hex'));
  return out;
}

/** Splits a .bson file into its documents, checking each length prefix against the file. */
function parseBson(bytes: Uint8Array): Document[] {
  const docs: Document[] = [];
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < view.length) {
    const size = view.readInt32LE(at);
    assert.ok(size >= 5 && at + size <= view.length, `document at byte ${at} has a bad length ${size}`);
    docs.push(deserialize(view.subarray(at, at + size), { promoteValues: false, promoteLongs: false, promoteBuffers: false, bsonRegExp: true }));
    at += size;
  }
  return docs;
}

describe('etl sample --out', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'etl-sample-dump-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('same seed → identical bytes in every file; another seed → different .bson files', async () => {
    const runs = [
      ['a', '7'],
      ['b', '7'],
      ['c', '8'],
    ] as const;
    for (const [dir, seed] of runs) {
      const r = await etl(['sample', '--scale', String(SCALE), '--seed', seed, '--out', path.join(tmp, dir)]);
      assert.equal(r.code, 0, r.stderr);
    }
    const a = await shaOfFiles(path.join(tmp, 'a', 'wappizy'));
    const b = await shaOfFiles(path.join(tmp, 'b', 'wappizy'));
    const c = await shaOfFiles(path.join(tmp, 'c', 'wappizy'));
    assert.equal(a.size, SAMPLE_COLLECTIONS.length * 2, [...a.keys()].join(', '));
    for (const name of SAMPLE_COLLECTIONS) {
      assert.ok(a.has(`${name}.bson`) && a.has(`${name}.metadata.json`), `${name} files`);
    }
    assert.deepEqual([...a], [...b]);
    for (const name of SAMPLE_COLLECTIONS) assert.notEqual(a.get(`${name}.bson`), c.get(`${name}.bson`), `${name}.bson should change with the seed`);
  });

  test('the .bson files parse back into the planned counts; the --json report tells the truth', async () => {
    const out = path.join(tmp, 'json');
    const r = await etl(['sample', '--scale', String(SCALE), '--seed', '3', '--out', out, '--db', 'prod_copy', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      total_documents: number;
      database: string;
      collections: { name: string; documents: number; file: string; bytes: number; sha256: string }[];
    };
    assert.equal(report.ok, true);
    assert.equal(report.database, 'prod_copy');
    assert.equal(report.total_documents, SCALE);
    const plan = generateSample({ scale: SCALE, seed: 3 }).plan;
    assert.deepEqual(report.collections.map((c) => c.name), [...SAMPLE_COLLECTIONS]);
    for (const c of report.collections) {
      const bytes = await readFile(c.file);
      assert.equal(path.dirname(c.file), path.join(out, 'prod_copy'));
      assert.equal(bytes.length, c.bytes, `${c.name} bytes`);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), c.sha256, `${c.name} sha256`);
      const docs = parseBson(bytes);
      assert.equal(docs.length, c.documents, `${c.name} parsed count`);
      assert.equal(docs.length, plan[c.name as keyof typeof plan], `${c.name} planned count`);
      const meta = EJSON.parse(await readFile(path.join(out, 'prod_copy', `${c.name}.metadata.json`), 'utf8')) as Document;
      assert.equal(meta.collectionName, c.name);
      assert.equal((meta.indexes as Document[])[0]!.name, '_id_');
    }
    // Progress goes to stderr, never to stdout under --json (stdout parsed above).
  });

  test('--gzip writes .bson.gz and .metadata.json.gz holding exactly the plain dump', async () => {
    const plain = path.join(tmp, 'plain');
    const gz = path.join(tmp, 'gz');
    assert.equal((await etl(['sample', '--scale', '1000', '--seed', '4', '--out', plain])).code, 0);
    const r = await etl(['sample', '--scale', '1000', '--seed', '4', '--out', gz, '--gzip']);
    assert.equal(r.code, 0, r.stderr);
    const files = (await readdir(path.join(gz, 'wappizy'))).sort();
    assert.equal(files.length, SAMPLE_COLLECTIONS.length * 2);
    assert.ok(files.every((f) => f.endsWith('.bson.gz') || f.endsWith('.metadata.json.gz')), files.join(', '));
    for (const name of SAMPLE_COLLECTIONS) {
      const unzipped = gunzipSync(await readFile(path.join(gz, 'wappizy', `${name}.bson.gz`)));
      assert.ok(unzipped.equals(await readFile(path.join(plain, 'wappizy', `${name}.bson`))), `${name}.bson.gz content`);
    }
    const again = path.join(tmp, 'gz2');
    assert.equal((await etl(['sample', '--scale', '1000', '--seed', '4', '--out', again, '--gzip'])).code, 0);
    assert.deepEqual([...(await shaOfFiles(path.join(gz, 'wappizy')))], [...(await shaOfFiles(path.join(again, 'wappizy')))]);
  });

  test('existing dump files are refused without --drop (exit 1, nothing touched), replaced with it', async () => {
    const out = path.join(tmp, 'existing');
    await mkdir(path.join(out, 'wappizy'), { recursive: true });
    await writeFile(path.join(out, 'wappizy', 'users.bson'), 'precious');
    const refused = await etl(['sample', '--scale', '500', '--out', out]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already holds 1 dump file/);
    assert.match(refused.stderr, /--drop/);
    assert.equal(await readFile(path.join(out, 'wappizy', 'users.bson'), 'utf8'), 'precious');
    assert.deepEqual(await readdir(path.join(out, 'wappizy')), ['users.bson']);

    const replaced = await etl(['sample', '--scale', '500', '--out', out, '--drop', '--gzip']);
    assert.equal(replaced.code, 0, replaced.stderr);
    const files = await readdir(path.join(out, 'wappizy'));
    assert.ok(!files.includes('users.bson'), 'the plain users.bson is gone, so no collection has two files');
    assert.ok(files.includes('users.bson.gz'));
    assert.ok(!files.some((f) => f.endsWith('.partial')));
  });

  test('--out naming a file, or a folder it cannot write: exit 1, the path and the reason in words, no internal error', async () => {
    const file = path.join(tmp, 'a-file');
    await writeFile(file, 'not a folder');
    const r = await etl(['sample', '--scale', '500', '--out', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^error: cannot write ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/wappizy: a part of .* is a file, not a folder \\[write_failed\\]`, 'm'));
    assert.doesNotMatch(r.stderr, /internal error|bug in etl/);
    assert.equal(await readFile(file, 'utf8'), 'not a folder');
  });

  test('an abort stops the dump between documents: the reason is thrown, no .partial file is left', async () => {
    const out = path.join(tmp, 'aborted');
    const controller = new AbortController();
    const reason = new Error('stop here');
    const seen: string[] = [];
    await assert.rejects(
      writeDump(
        generateSample({ scale: 200_000, seed: 1 }),
        { dir: out, database: 'wappizy', gzip: false, replace: false },
        {
          signal: controller.signal,
          onProgress: (p) => {
            seen.push(p.collection);
            if (p.collection === 'users' && p.written >= 10_000) controller.abort(reason);
          },
        },
      ),
      (error) => error === reason,
    );
    const files = await readdir(path.join(out, 'wappizy'));
    assert.ok(!files.some((f) => f.endsWith('.partial')), files.join(', '));
    assert.ok(!files.includes('users.bson'), 'the interrupted collection has no file');
    assert.ok(files.includes('events.bson'), 'collections finished before the abort are whole');
    assert.ok(!seen.includes('userquizzs'), 'nothing generated after the abort');
  });

  test('usage errors exit 2: both destinations, none, bad numbers, unknown flags', async () => {
    const cwd = await mkdtemp(path.join(tmp, 'cwd-'));
    const env = { MONGODB_URL: undefined };
    const both = await etl(['sample', '--out', path.join(tmp, 'x'), '--mongo-url', 'mongodb://127.0.0.1:1/'], { cwd, env });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--out and --mongo-url/);
    const none = await etl(['sample'], { cwd, env });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no destination/);
    // A scale no disk holds (it once ran for ever, deaf to Ctrl-C, before writing a byte) is refused at once.
    for (const args of [['--scale', 'abc'], ['--scale', '10'], ['--scale', '99999999999999'], ['--seed', '-1'], ['--bogus'], ['--gzip', '--mongo-url', 'mongodb://h/']]) {
      const r = await etl(['sample', ...args, ...(args.includes('--mongo-url') ? [] : ['--out', path.join(tmp, 'never')])], { cwd, env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    await assert.rejects(readdir(path.join(tmp, 'never')), { code: 'ENOENT' });
    // A .env naming MONGODB_URL is a destination (the connection then fails: exit 1, not 2).
    await writeFile(path.join(cwd, '.env'), 'MONGODB_URL=mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500\n');
    const fromEnvFile = await etl(['sample', '--scale', '100'], { cwd, env });
    assert.equal(fromEnvFile.code, 1, fromEnvFile.stderr);
    assert.match(fromEnvFile.stderr, /cannot connect to MongoDB/);
  });
});
