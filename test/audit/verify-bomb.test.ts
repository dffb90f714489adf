// `etl verify` of a hostile archive: a 4 GiB entry of zeros the manifest does not name (the archive
// is about 18 MB), and a recorded CSV replaced by 64 MiB. The archive is generated here as a stream
// (never stored uncompressed, not committed). Verify must name both, stay under 200 MB of RSS, and
// write nothing outside its own temporary folder, which it removes.
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { createGzip, gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { recordedFiles } from '../../audit/manifest-files.ts';
import type { VerifyReport } from '../../audit/verify.ts';
import { readManifest } from '../../staging/manifest.ts';
import { realRun, type RealRun } from './staged-run.ts';
import { REPO, startEtl } from '../harness/cli.ts';

const GiB = 1024 ** 3;

let run: RealRun;
let scratch: string;
before(async () => {
  run = await realRun();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'etl-verify-bomb-'));
});
after(async () => {
  await rm(run.cwd, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

type Member = { name: string; bytes: Buffer } | { name: string; zeros: number };

/** A tar stream: each member's header (encoded by tar), its bytes, padding to 512, two zero blocks at the end. */
async function* tarStream(members: readonly Member[]): AsyncGenerator<Buffer> {
  const zeros = Buffer.alloc(1 << 20);
  for (const m of members) {
    const size = 'bytes' in m ? m.bytes.length : m.zeros;
    const header = new tar.Header({ path: m.name, mode: 0o644, size, mtime: new Date(0), type: 'File', uid: 0, gid: 0 });
    header.encode();
    yield header.block!;
    if ('bytes' in m) yield m.bytes;
    else for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    if (size % 512) yield Buffer.alloc(512 - (size % 512));
  }
  yield Buffer.alloc(1024);
}

// tsx, which runs the `etl` command, keeps its compile cache in the temp folder (tsx-<uid>): that
// is the runtime's, present for every command, not verify's.
const ownEntries = async (dir: string) => (await readdir(dir)).filter((n) => !/^tsx-\d+$/.test(n));

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (path.relative(dir, entry.parentPath ?? (entry as { path: string }).path).startsWith('tsx-')) continue;
    if (entry.isFile()) total += await stat(path.join(entry.parentPath ?? (entry as { path: string }).path, entry.name)).then((s) => s.size, () => 0);
  }
  return total;
}

test('verify of an archive with a 4 GiB entry: named, under 200 MB RSS, nothing written outside its temp folder', { timeout: 900_000 }, async (t) => {
  const manifest = await readManifest(run.paths);
  const files = ['manifest.json', 'pipeline.yaml', ...recordedFiles(manifest).map((r) => r.record.file)];
  const members: Member[] = [];
  for (const f of files) {
    const name = `${run.runId}/${f}`;
    // A recorded CSV replaced by 64 MiB: its declared size caps what verify may read of it.
    members.push(f === 'transform/users.csv' ? { name, zeros: 64 << 20 } : { name, bytes: await readFile(path.join(run.paths.dir, f)) });
  }
  members.push({ name: `${run.runId}/extract/bomb.ndjson`, zeros: 4 * GiB });
  const archive = path.join(scratch, 'bomb.tar.gz');
  await pipeline(tarStream(members), createGzip({ level: 1 }), createWriteStream(archive));
  t.diagnostic(`archive: ${(await stat(archive)).size} bytes`);

  const tmp = path.join(scratch, 'tmp');
  await mkdir(tmp);
  const scratchBefore = (await readdir(scratch)).sort();
  const child = startEtl(['verify', archive, '--json'], { cwd: scratch, env: { TMPDIR: tmp, TEMP: tmp, TMP: tmp }, wrap: ['/usr/bin/time', '-v'], timeoutMs: 600_000 });
  let peakTmp = 0;
  const poll = setInterval(() => void sizeOf(tmp).then((n) => (peakTmp = Math.max(peakTmp, n))), 100);
  const { code, stdout, stderr } = await child.done;
  clearInterval(poll);

  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1]);
  t.diagnostic(`etl verify: peak RSS ${rssKb} kB, peak temp folder ${peakTmp} bytes, ${/Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(stderr)?.[1]} wall`);
  assert.equal(code, 1, stderr);
  const report = JSON.parse(stdout) as VerifyReport;
  assert.equal(report.ok, false);
  assert.ok(report.mismatches.some((m) => m.check === 'extra' && m.file === 'extract/bomb.ndjson'), JSON.stringify(report.mismatches));
  const capped = report.mismatches.find((m) => m.check === 'bytes' && m.file === 'transform/users.csv');
  assert.match(capped?.found ?? '', /^67108864 \(not read/);
  assert.ok(rssKb > 0 && rssKb < 200 * 1024, `peak RSS ${rssKb} kB`);
  // The run's own files are a few kB: nothing of the 4 GiB (nor of the 64 MiB) touched the disk.
  assert.ok(peakTmp < 1 << 20, `at most ${peakTmp} bytes in the temp folder`);
  assert.deepEqual(await ownEntries(tmp), [], 'the temp folder is removed');
  assert.deepEqual((await readdir(scratch)).sort(), scratchBefore, 'nothing written beside the archive');
});

test('verify of a file whose tar header holds a number tar cannot decode (plain and gzipped): bad_archive, exit 1, no stack', async () => {
  // A header whose size field starts with 0x81: neither octal nor base-256 (0x80 or 0xff). tar's
  // parser reports it as an error event, which once ended the process with a stack.
  const header = Buffer.alloc(2048);
  header.write('run/manifest.json', 0);
  header[124] = 0x81;
  for (const [name, bytes] of [['bad-header.tar', header], ['bad-header.tar.gz', gzipSync(header)]] as const) {
    const file = path.join(scratch, name);
    await writeFile(file, bytes);
    const r = await startEtl(['verify', file]).done;
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, new RegExp(`^error: .*${name.replace('.', '\\.')} is not a readable run archive: .*\\[bad_archive\\]`, 'm'));
    assert.doesNotMatch(r.output, /^\s+at /m, 'no stack');
  }
});

test('verify of a packed .tar.gz cut short: bad_archive, exit 1, its temp folder removed (the files already inflated went on being written after the failure: "internal error: ENOTEMPTY", the folder left)', async () => {
  // A sample run of 31 tables, packed by etl pack: 127 small files, many inflated by each read.
  const project = path.join(scratch, 'sample-project');
  await mkdir(project);
  await writeFile(path.join(project, 'pipeline.yaml'), await readFile(path.join(REPO, 'pipeline.yaml')));
  for (const args of [['sample', '--scale', '500', '--out', 'dump'], ['extract', '--source', 'dump', '--full'], ['transform'], ['pack', '--out', 'run.tar.gz']]) {
    const r = await startEtl([...args, '--quiet'], { cwd: project }).done;
    assert.equal(r.code, 0, `${args[0]}: ${r.output}`);
  }
  const gz = await readFile(path.join(project, 'run.tar.gz'));
  const tmp = path.join(scratch, 'tmp-cut');
  await mkdir(tmp);
  // A download cut short: the gzip stream ends mid-way.
  for (const fraction of [0.3, 0.5, 0.7]) {
    const cut = path.join(scratch, 'cut.tar.gz');
    await writeFile(cut, gz.subarray(0, Math.floor(gz.length * fraction)));
    const r = await startEtl(['verify', cut], { cwd: scratch, env: { TMPDIR: tmp, TEMP: tmp, TMP: tmp } }).done;
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, /^error: .*cut\.tar\.gz is not a readable run archive: unexpected end of file \[bad_archive\]/m, `cut at ${fraction}: ${r.stderr}`);
    assert.doesNotMatch(r.output, /internal error|^\s+at /m);
    assert.deepEqual(await ownEntries(tmp), [], 'the temp folder is removed');
  }
  await rm(project, { recursive: true, force: true });
});

test('verify names an archive\'s entry by a printable line: its controls escaped (a name holding ESC [2J cleared the terminal)', async () => {
  const manifest = await readManifest(run.paths);
  const files = ['manifest.json', 'pipeline.yaml', ...recordedFiles(manifest).map((r) => r.record.file)];
  const members: Member[] = [];
  for (const f of files) members.push({ name: `${run.runId}/${f}`, bytes: await readFile(path.join(run.paths.dir, f)) });
  // (tar.Header keeps the first 100 bytes of a name: the controls are in them.)
  members.push({ name: `${run.runId}/extract/\u001b[2J\u001b]0;pwn\u0007\u202eevil${'A'.repeat(3000)}`, bytes: Buffer.from('abc') });
  const archive = path.join(scratch, 'hostile-name.tar.gz');
  await pipeline(tarStream(members), createGzip(), createWriteStream(archive));
  const r = await startEtl(['verify', archive], { cwd: scratch }).done;
  assert.equal(r.code, 1, r.output);
  assert.match(r.stdout, /\[extra\] extract\/\\u001b\[2J\\u001b\]0;pwn\\u0007\\u202eevilA+: expected not present/, r.stdout.slice(0, 2000));
  assert.doesNotMatch(r.output, /[\u001b\u0007\u202e]/, 'no control reaches the terminal');
  assert.ok(Math.max(...r.stdout.split('\n').map((l) => l.length)) <= 1_100, 'lines bounded');
});
