// etl writes a file beside its place (FILE.partial) and renames it over FILE: over a FIFO, a device
// or a socket, that would replace the node itself (as root, /dev/null became the file). Every writer
// of the atomic sink refuses, naming the path, and leaves the node as it was; `--out` says so before
// any work. The nodes here are FIFOs made in a temp folder: never /dev/null.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstat, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { realRun, type RealRun } from '../audit/staged-run.ts';
import { etl } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { AtomicFileSink, writeFileAtomic } from '../../staging/atomic-file.ts';
import { StagingError } from '../../errors/etl-error.ts';

function mkfifo(file: string): void {
  assert.equal(spawnSync('mkfifo', [file]).status, 0, `mkfifo ${file}`);
}

/** The refusal: a StagingError naming the path and what is there. */
function refusal(file: string, kind: RegExp) {
  return (e: unknown) => e instanceof StagingError && e.message.includes(file) && kind.test(e.message) && /not a regular file/.test(e.message);
}

describe('the atomic sink', () => {
  test('refuses a FIFO at its path when made, and when it appears before the rename', async (t) => {
    const dir = await tempDir('etl-atomic-fifo-', t);
    const fifo = path.join(dir, 'out.csv');
    mkfifo(fifo);
    assert.throws(() => new AtomicFileSink(fifo), refusal(fifo, /a FIFO/));
    assert.deepEqual(await readdir(dir), ['out.csv'], 'no partial file');

    const late = path.join(dir, 'late.csv');
    const sink = new AtomicFileSink(late);
    sink.end('a,b\n');
    await new Promise<void>((resolve, reject) => sink.on('finish', resolve).on('error', reject));
    mkfifo(late);
    await assert.rejects(sink.commit(), refusal(late, /a FIFO/));
    assert.ok((await lstat(late)).isFIFO(), 'the FIFO is still there');
  });

  test('refuses a symlink to a FIFO, and a folder; a regular file and a link to one are replaced', async (t) => {
    const dir = await tempDir('etl-atomic-link-', t);
    const fifo = path.join(dir, 'fifo');
    mkfifo(fifo);
    const link = path.join(dir, 'report.html');
    await symlink(fifo, link);
    assert.throws(() => new AtomicFileSink(link), refusal(link, /a FIFO/));
    await assert.rejects(writeFileAtomic(link, 'x'), refusal(link, /a FIFO/));
    assert.ok((await lstat(link)).isSymbolicLink(), 'the link is still there');
    assert.throws(() => new AtomicFileSink(dir), refusal(dir, /a folder/));

    const file = path.join(dir, 'plain.txt');
    await writeFile(file, 'old');
    await writeFileAtomic(file, 'new');
    assert.ok((await stat(file)).isFile());
  });
});

describe('writers other than --out', () => {
  let run: RealRun;
  before(async () => {
    run = await realRun();
  });
  after(() => rm(run.cwd, { recursive: true, force: true }));

  test('etl report: a FIFO where the run folder\'s report.html goes is refused (exit 1), not replaced', async () => {
    const report = path.join(run.paths.dir, 'report.html');
    await rm(report, { force: true });
    mkfifo(report);
    for (const json of [false, true]) {
      const r = await etl(['report', ...(json ? ['--json'] : [])], { cwd: run.cwd, timeoutMs: 60_000 });
      assert.equal(r.code, 1, r.output);
      assert.ok(r.output.includes(report), r.output);
      assert.match(r.output, /a FIFO, not a regular file/);
      assert.ok((await lstat(report)).isFIFO(), 'the FIFO is still there');
    }
    await rm(report);
  });

  test('etl transform: a FIFO where a table\'s CSV goes is refused (exit 1), not replaced', async () => {
    const csv = run.paths.transformCsv('users');
    await rm(csv, { force: true });
    mkfifo(csv);
    const r = await etl(['transform'], { cwd: run.cwd, timeoutMs: 120_000 });
    assert.equal(r.code, 1, r.output);
    assert.ok(r.output.includes(csv), r.output);
    assert.match(r.output, /a FIFO, not a regular file/);
    assert.ok((await lstat(csv)).isFIFO(), 'the FIFO is still there');
    assert.ok(!(await readdir(run.paths.transformDir)).some((n) => n.endsWith('.partial')), 'no partial file left');
  });
});
