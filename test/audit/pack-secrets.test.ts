// `etl pack` ships nothing secret: every file that would go into the archive is scanned (streamed,
// in bounded memory), and a file named like a secret or holding anything credential-shaped refuses
// the run with the file and the line, without printing the secret.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { packRun } from '../../audit/pack.ts';
import { StagingError } from '../../errors/etl-error.ts';
import { loadPipeline } from '../../model/load-pipeline.ts';
import { runExtract } from '../../extract/index.ts';
import { runTransform } from '../../transform/index.ts';
import { runPaths } from '../../staging/run-folder.ts';
import { copyOfRun, editManifest, newProject, realRun, sampleCollections, writeDump, type RealRun } from './staged-run.ts';
import { etlSync, startEtl } from '../harness/cli.ts';

const SECRET = 'hunter22Secret';
const PRIVATE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n`;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let run: RealRun;
let scratch: string;
before(async () => {
  run = await realRun();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'etl-pack-secrets-'));
});
after(async () => {
  await rm(run.cwd, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

/** Writes `text` into the run at `file` and records it in the manifest, as a tampered run would. */
async function plantRecorded(stagingDir: string, file: string, text: string): Promise<void> {
  await writeFile(path.join(stagingDir, run.runId, file), text);
  await editManifest(runPaths(stagingDir, run.runId), (m) => {
    (m.stages.extract!.collections.users as unknown as Record<string, unknown>)[`planted_${file}`] = {
      file,
      bytes: Buffer.byteLength(text),
      sha256: sha256(text),
      records: text.split('\n').length - 1,
    };
  });
}

const archives = async (stagingDir: string) => (await readdir(stagingDir)).filter((n) => n.includes('.tar.gz'));

function refused(error: unknown, ...patterns: RegExp[]): true {
  assert.ok(error instanceof StagingError, String(error));
  assert.equal(error.code, 'secret_in_run');
  for (const p of patterns) assert.match(error.message, p);
  assert.ok(!error.message.includes(SECRET), error.message);
  assert.ok(!error.message.includes('b3BlbnNzaC1rZXkt'), error.message);
  return true;
}

describe('files recorded in the manifest', () => {
  test('a recorded .env is refused by its name and its PASSWORD= line; no archive', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await plantRecorded(stagingDir, '.env', `MONGODB_URL=mongodb://localhost:27017\nPOSTGRES_PASSWORD=${SECRET}\n`);
    await assert.rejects(packRun({ stagingDir }), (e) => refused(e, /\.env file name: a file named like a secret/, /\.env line 2 column 19: a password or secret setting/));
    assert.deepEqual(await archives(stagingDir), []);
    const cli = etlSync(['pack', '--staging', stagingDir], { cwd: scratch });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /was not packed: it holds what looks like a secret/);
    assert.doesNotMatch(cli.stdout + cli.stderr, new RegExp(SECRET));
  });

  test('a recorded id_rsa is refused by its name and its private key', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await plantRecorded(stagingDir, 'extract/id_rsa', PRIVATE_KEY);
    await assert.rejects(packRun({ stagingDir }), (e) => refused(e, /extract\/id_rsa file name/, /extract\/id_rsa line 1 column 1: a private key/));
  });

  test('any recorded text file: a connection string with a password, an AWS key', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await plantRecorded(stagingDir, 'load/notes.txt', `fine\nuse postgres//etl:${SECRET}@db.internal/app\nkey AKIAIOSFODNN7EXAMPLE\n`);
    await assert.rejects(packRun({ stagingDir }), (e) =>
      refused(e, /load\/notes\.txt line 2 column \d+: a connection string with a password/, /load\/notes\.txt line 3 column 5: an AWS access key id/),
    );
  });
});

describe('credentials inside the staged data', () => {
  test('a connection string in a document: the NDJSON and the CSV lines are named', async () => {
    const p = await newProject();
    try {
      const data = sampleCollections();
      data.users![1]!.email = `postgres://etl:${SECRET}@db.internal:5432/app`;
      data.events![2]!.title = `-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA`;
      await writeDump(path.join(p.cwd, 'dump'), data);
      const model = await loadPipeline(p.pipelineFile);
      const x = await runExtract({ model, stagingDir: p.stagingDir, source: { kind: 'dump', path: path.join(p.cwd, 'dump') }, full: true });
      await runTransform({ model, stagingDir: p.stagingDir, runId: x.runId });
      await assert.rejects(packRun({ stagingDir: p.stagingDir }), (e) =>
        refused(
          e,
          /extract\/users\.ndjson line 2 column \d+: a connection string with a password/,
          /transform\/users\.csv line 3 column \d+: a connection string with a password/,
          /extract\/events\.ndjson line 3 column \d+: a private key/,
        ),
      );
      assert.deepEqual(await archives(p.stagingDir), []);
    } finally {
      await rm(p.cwd, { recursive: true, force: true });
    }
  });
});

describe('bounded memory', () => {
  test('a 320 MB recorded file with a 96 MB line: the secret at its end is found; pack stays under 200 MB RSS', async (t) => {
    const { stagingDir } = await copyOfRun(run, scratch);
    const file = path.join(stagingDir, run.runId, 'extract', 'huge.ndjson');
    const out = createWriteStream(file);
    const hash = createHash('sha256');
    let bytes = 0;
    const write = async (chunk: string) => {
      hash.update(chunk);
      bytes += Buffer.byteLength(chunk);
      if (!out.write(chunk)) await once(out, 'drain');
    };
    const block = `{"n":1,"email":"ada@example.org","note":"${'x'.repeat(1000)}"}\n`;
    for (let i = 0; i < 220_000; i += 1) await write(block);
    const run1mb = 'y'.repeat(1 << 20);
    await write('{"note":"');
    for (let i = 0; i < 96; i += 1) await write(run1mb);
    await write(`","url":"mongodb://admin:${SECRET}@mongo.internal/x"}\n`);
    out.end();
    await once(out, 'finish');
    await editManifest(runPaths(stagingDir, run.runId), (m) => {
      (m.stages.extract!.collections.users as unknown as Record<string, unknown>).huge = { file: 'extract/huge.ndjson', bytes, sha256: hash.digest('hex'), records: 220_001 };
    });
    const r = etlSync(['pack', '--staging', stagingDir], { cwd: scratch, wrap: ['/usr/bin/time', '-v'] });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /extract\/huge\.ndjson line 220001 column \d+: a connection string with a password/);
    assert.doesNotMatch(r.stderr, new RegExp(SECRET));
    const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
    t.diagnostic(`etl pack: peak RSS ${rssKb} kB, ${/Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(r.stderr)?.[1]} wall`);
    assert.ok(rssKb > 0 && rssKb < 200 * 1024, `peak RSS ${rssKb} kB`);
    assert.deepEqual(await archives(stagingDir), []);
    await rm(file);
  });
});

test('the scan reads the manifest too (a password field), and a clean run still packs', async () => {
  const { stagingDir } = await copyOfRun(run, scratch);
  await editManifest(runPaths(stagingDir, run.runId), (m) => {
    m.destination = { description: 'db', password: SECRET } as unknown as typeof m.destination;
  });
  await assert.rejects(packRun({ stagingDir }), (e) => refused(e, /manifest\.json line \d+ column \d+: a password or secret setting/));
  const clean = await copyOfRun(run, scratch);
  const report = await packRun({ stagingDir: clean.stagingDir });
  assert.ok((await readFile(report.archive)).length > 0);
});

/** Records `file` (already written: `bytes`, `hash`, `records`) in the manifest, as a tampered run would. */
async function recordWritten(stagingDir: string, file: string, bytes: number, hash: string, records: number): Promise<void> {
  await editManifest(runPaths(stagingDir, run.runId), (m) => {
    (m.stages.extract!.collections.users as unknown as Record<string, unknown>)[`planted_${file}`] = { file, bytes, sha256: hash, records };
  });
}

/** `lines` lines of random base64 (barely compressible), then `last`; returns the figures to record. */
async function writeNoise(file: string, lines: number, last: string): Promise<{ bytes: number; sha256: string; records: number }> {
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  let bytes = 0;
  const write = async (text: string) => {
    hash.update(text);
    bytes += Buffer.byteLength(text);
    if (!out.write(text)) await once(out, 'drain');
  };
  for (let i = 0; i < lines; i += 1) await write(`{"n":${i},"noise":"${randomBytes(750).toString('base64')}"}\n`);
  await write(last);
  out.end();
  await once(out, 'finish');
  return { bytes, sha256: hash.digest('hex'), records: lines + 1 };
}

describe('a refused run is never written whole', () => {
  test('a secret found in the manifest: the archive stops there (.partial never grows, then gone), every later finding is still named', async () => {
    const { stagingDir } = await copyOfRun(run, scratch);
    await editManifest(runPaths(stagingDir, run.runId), (m) => {
      m.destination = { description: 'db', password: SECRET } as unknown as typeof m.destination;
    });
    // ~48 MB that compresses to ~36 MB, a connection string with a password on its last line.
    const big = await writeNoise(path.join(stagingDir, run.runId, 'extract', 'big.ndjson'), 48_000, `{"url":"mongodb://admin:${SECRET}@mongo.internal/x"}\n`);
    await recordWritten(stagingDir, 'extract/big.ndjson', big.bytes, big.sha256, big.records);
    const partial = path.join(stagingDir, `${run.runId}.tar.gz.partial`);
    let largest = 0;
    const poll = setInterval(() => void stat(partial).then((s) => (largest = Math.max(largest, s.size)), () => undefined), 5);
    const r = await startEtl(['pack', '--staging', stagingDir], { cwd: scratch }).done.finally(() => clearInterval(poll));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /manifest\.json line \d+ column \d+: a password or secret setting/);
    assert.match(r.stderr, /extract\/big\.ndjson line 48001 column \d+: a connection string with a password/);
    assert.doesNotMatch(r.stderr, new RegExp(SECRET));
    // Today's archive of the run without big.ndjson is a few kB: nothing of big.ndjson went in.
    assert.ok(largest < 256 << 10, `the .partial file reached ${largest} bytes`);
    assert.deepEqual(await archives(stagingDir), []);
  });
});
