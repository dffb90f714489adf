// The error boundary of the `etl` command: every failure is one short line (what, where, code) and
// a hint; stacks only with --verbose or ETL_DEBUG=1; unexpected errors say "internal error" and
// exit 1; usage and configuration errors exit 2 and name the flag or variable.
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { renderError } from '../../bin/render-error.ts';
import { StagingError, UsageError } from '../../errors/etl-error.ts';
import { grantTraverse } from '../harness/traverse.ts';
import { etl, REPO, STACK_LINE } from '../harness/cli.ts';

const PIPELINE = path.join(REPO, 'pipeline.yaml');

function sink() {
  const stream = new PassThrough();
  let text = '';
  stream.setEncoding('utf8').on('data', (s: string) => (text += s));
  return { stream, text: () => text };
}

function render(error: unknown, options: { verbose?: boolean; json?: boolean; env?: Record<string, string> } = {}) {
  const out = sink();
  const err = sink();
  const code = renderError(error, { json: options.json ?? false, verbose: options.verbose ?? false, stdout: out.stream, stderr: err.stream, env: { NO_COLOR: '1', ...options.env }, secrets: ['hunter2pw'] });
  return { code, stdout: out.text(), stderr: err.text() };
}

/** A mongodump folder with one empty collection: enough for extract to start a run. */
async function emptyDump(dir: string): Promise<string> {
  const dump = path.join(dir, 'dump');
  await mkdir(path.join(dump, 'wappizy'), { recursive: true });
  await writeFile(path.join(dump, 'wappizy', 'users.bson'), '');
  return dump;
}

async function tempDir(t: { after(fn: () => unknown): void }, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('renderError', () => {
  test('an unexpected error is an internal error: one line, a hint to re-run with --verbose, no stack, exit 1', () => {
    const r = render(new TypeError('Cannot read properties of undefined (reading "x") at postgres://u:hunter2pw@h/db'));
    assert.equal(r.code, 1);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, /^error: internal error: Cannot read properties of undefined/);
    assert.match(lines[1]!, /^hint: .*--verbose/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
    assert.doesNotMatch(r.stderr, /hunter2pw/);
  });

  test('--verbose (or ETL_DEBUG=1) adds the stack and the causes, still without secrets', () => {
    const error = new StagingError('no_run', 'staged run 1 not found', { cause: new Error('inner cause hunter2pw') });
    for (const r of [render(error, { verbose: true }), render(error, { env: { ETL_DEBUG: '1' } })]) {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: staged run 1 not found/);
      assert.match(r.stderr, STACK_LINE);
      assert.match(r.stderr, /caused by: Error: inner cause \*\*\*/);
      assert.doesNotMatch(r.stderr, /hunter2pw/);
    }
    assert.doesNotMatch(render(error).stderr, STACK_LINE);
  });

  test('an EtlError: what and where on one line with its code, the hint on the next', () => {
    const r = render(new StagingError('damaged_run', 'run X is damaged: users.csv is missing', { context: { file: '/s/X/transform/users.csv', line: 12 }, hint: 'run etl verify' }));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: run X is damaged: users.csv is missing (at /s/X/transform/users.csv:12) [damaged_run]\nhint: run etl verify\n');
    const usage = render(new UsageError('bad_arguments', "Unknown option '--nope'"));
    assert.equal(usage.code, 2);
  });

  test('--json: the error as JSON on stdout, with its code, hint and where; no stack unless verbose', () => {
    const r = render(new TypeError('boom'), { json: true });
    assert.equal(r.code, 1);
    const body = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string; hint: string; stack?: string } };
    assert.equal(body.ok, false);
    assert.equal(body.error.code, 'internal');
    assert.match(body.error.message, /^internal error: boom/);
    assert.match(body.error.hint, /--verbose/);
    assert.equal(body.error.stack, undefined);
    const verbose = JSON.parse(render(new TypeError('boom'), { json: true, verbose: true }).stdout) as { error: { stack?: string } };
    assert.match(verbose.error.stack ?? '', STACK_LINE);
  });
});

describe('etl command line', () => {
  test('--dotenv FILE reads the configuration from FILE; a missing one is a configuration error naming the flag (exit 2)', async (t) => {
    const dir = await tempDir(t, 'etl-cli-dotenv-');
    const r = await etl(['sample', '--dotenv', path.join(dir, 'nope.env'), '--scale', '100'], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: --dotenv: .*nope\.env.*not found/m);
    assert.doesNotMatch(r.stderr, STACK_LINE);
    // A file that exists is read: its MONGODB_URL becomes the destination (unreachable here: exit 1).
    await writeFile(path.join(dir, 'other.env'), 'MONGODB_URL=mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300\n');
    const read = await etl(['sample', '--dotenv', path.join(dir, 'other.env'), '--scale', '100'], { cwd: dir });
    assert.equal(read.code, 1, read.stderr);
    assert.match(read.stderr, /cannot connect to MongoDB/);
    // A folder given as the file, and ./.env a folder: named, exit 2, no internal error.
    const folder = await etl(['status', '--dotenv', dir], { cwd: dir });
    assert.equal(folder.code, 2, folder.stderr);
    assert.match(folder.stderr, new RegExp(`^error: cannot read the env file ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(--dotenv\\): it is a folder`, 'm'));
    await mkdir(path.join(dir, '.env'));
    const dotFolder = await etl(['status'], { cwd: dir });
    assert.equal(dotFolder.code, 2, dotFolder.stderr);
    assert.match(dotFolder.stderr, /^error: cannot read the env file .*\.env: it is a folder/m);
    assert.doesNotMatch(folder.stderr + dotFolder.stderr, /internal error/);
  });

  test('no command documents --env-file (Node itself takes that flag, wherever it is)', async () => {
    for (const command of ['sample', 'refresh']) {
      const r = await etl([command, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /--env-file/);
      assert.match(r.stdout, /--dotenv FILE/);
    }
  });

  test('a flag given twice with different values is a usage error (exit 2), never the last one silently; values not shown', async (t) => {
    const dir = await tempDir(t, 'etl-cli-twice-');
    const tables = await etl(['load', '--tables', 'users', '--tables', 'events'], { cwd: dir });
    assert.equal(tables.code, 2, tables.stderr);
    assert.match(tables.stderr, /^error: --tables is given twice, with different values: only one would be used/m);
    assert.match(tables.stderr, /^hint: give the tables in one comma-separated list: --tables a,b/m);
    const urls = await etl(['status', '--database-url', 'postgresql://u:S3cretPW1@127.0.0.1:1/a', '--database-url', 'postgresql://u:S3cretPW2@127.0.0.1:1/b'], { cwd: dir });
    assert.equal(urls.code, 2, urls.stderr);
    assert.match(urls.stderr, /^error: --database-url is given twice/m);
    assert.doesNotMatch(urls.stderr, /S3cret/);
    // In every command's own parser too: verify and refresh take positional arguments, sample has its own flags.
    for (const args of [['verify', 'x', '--staging', 'a', '--staging', 'b'], ['refresh', 'mongo', '--out', 'a', '--out', 'b'], ['sample', '--scale', '100', '--scale', '200']]) {
      const r = await etl(args, { cwd: dir });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /is given twice, with different values/, args.join(' '));
    }
    // The same value twice is what the user meant: taken.
    const same = await etl(['sample', '--scale', '100', '--scale', '100', '--out', path.join(dir, 'dump')], { cwd: dir });
    assert.equal(same.code, 0, same.stderr);
  });

  test('--no-wait and --lock-timeout together are a usage error (exit 2) for load, run and repair, never one of them silently', async (t) => {
    const dir = await tempDir(t, 'etl-cli-lock-flags-');
    // No server answers on port 1: a command that got past its flags would fail to connect (exit 1).
    const env = { DATABASE_URL: 'postgresql://u@127.0.0.1:1/db', MONGODB_URL: 'mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=300' };
    for (const command of ['load', 'run', 'repair']) {
      const r = await etl([command, '--no-wait', '--lock-timeout', '30s', '--pipeline', PIPELINE], { cwd: dir, env });
      assert.equal(r.code, 2, `${command}: ${r.stderr}`);
      assert.match(r.stderr, /^error: --no-wait and --lock-timeout cannot be combined/m, command);
    }
  });

  test('ETL_PROGRESS_SECONDS that is not a positive number is a configuration error naming the variable (exit 2), before the command starts', async (t) => {
    const dir = await tempDir(t, 'etl-cli-progress-env-');
    for (const value of ['abc', '0', '-5', '30s']) {
      const r = await etl(['validate', '--pipeline', PIPELINE], { cwd: dir, env: { ETL_PROGRESS_SECONDS: value } });
      assert.equal(r.code, 2, `${value}: ${r.output}`);
      assert.match(r.stderr, new RegExp(`^error: environment variable ETL_PROGRESS_SECONDS is not a positive number of seconds: "${value}"`, 'm'));
      assert.doesNotMatch(r.stderr, STACK_LINE);
      assert.equal(r.stdout, '');
    }
    for (const value of ['', '0.5', '120']) {
      const r = await etl(['validate', '--pipeline', PIPELINE], { cwd: dir, env: { ETL_PROGRESS_SECONDS: value } });
      assert.equal(r.code, 0, `${value}: ${r.output}`);
    }
  });

  test('a pipeline file that is no YAML (megabytes in one token, terminal controls): each error line bounded, no control character printed', async (t) => {
    const dir = await tempDir(t, 'etl-errors-binary-');
    const file = path.join(dir, 'pipeline.yaml');
    // A scalar the YAML parser quotes whole in its message, holding an escape sequence and a DEL.
    const token = `\x1b]0;pwned\x07\x1b[2J${'A'.repeat(2_000_000)}\x7f\x9b31m`;
    await writeFile(file, `tables:\n  users: {}\n]"${token}"\n}{\n]${token}\n`);
    for (const json of [false, true]) {
      const r = await etl(['validate', '--pipeline', file, ...(json ? ['--json'] : [])]);
      assert.equal(r.code, 2, r.output.slice(0, 2000));
      assert.ok(r.output.length < 50_000, `${r.output.length} characters printed`);
      assert.doesNotMatch(r.output, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'a control character printed raw');
      if (json) {
        const error = (JSON.parse(r.stdout) as { error: { message: string; findings: { message: string }[] } }).error;
        assert.ok(error.findings.length > 0);
        for (const f of error.findings) assert.ok(f.message.length <= 1_100, `a finding of ${f.message.length} characters`);
      } else {
        assert.match(r.stderr, /^error: .*pipeline\.yaml is not a valid pipeline/m);
        for (const line of r.stderr.split('\n')) assert.ok(line.length <= 1_100, `a line of ${line.length} characters`);
      }
    }
  });

  test('a file name holding a newline stays on the error line, escaped: it cannot print a line of its own (a fake hint)', async (t) => {
    const dir = await tempDir(t, 'etl-newline-name-');
    const name = path.join(dir, 'a\nhint: run rm -rf ~ to fix', 'x');
    const cases = [
      ['verify', name],
      ['validate', '--pipeline', name],
      ['validate', '--pipeline', PIPELINE, '--dotenv', name],
      ['transform', '--staging', name, '--pipeline', PIPELINE],
    ];
    for (const args of cases) {
      const r = await etl(args, { cwd: dir });
      assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.output}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 2, `etl ${args[0]}: ${r.stderr}`);
      assert.match(lines[0]!, /^error: .*a\\u000ahint: run rm -rf ~ to fix/, r.stderr);
      assert.match(lines[1]!, /^hint: /);
      assert.doesNotMatch(lines[1]!, /rm -rf/);
    }
    // A file the error's context names, and its folder, quoted in the message (a write that failed).
    const file = path.join(dir, 'b\nhint: fake', 'report.html');
    const r = render(new StagingError('write_failed', `cannot write ${file}: the folder ${path.dirname(file)} does not exist`, { context: { file }, hint: 'create the folder' }));
    assert.equal(r.stderr.trimEnd().split('\n').length, 2, r.stderr);
    assert.match(r.stderr, /b\\u000ahint: fake\/report\.html: the folder .*b\\u000ahint: fake does not exist/);
  });

  test('etl help <command> prints that command\'s usage; an unknown one is a usage error', async () => {
    const r = await etl(['help', 'extract']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: etl extract /);
    const global = await etl(['help']);
    assert.equal(global.code, 0);
    assert.match(global.stdout, /etl help <command>/);
    assert.match(global.stdout, /--quiet/);
    const unknown = await etl(['help', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: unknown command "nope"/);
  });

  test('a staging folder that cannot be created: exit 1, the folder, the reason and a hint; no stack', async (t) => {
    const dir = await tempDir(t, 'etl-cli-staging-');
    const dump = await emptyDump(dir);
    // A file where a folder should be: no user can create the staging folder under it.
    await writeFile(path.join(dir, 'file'), '');
    const staging = path.join(dir, 'file', 'runs');
    const r = await etl(['extract', '--source', dump, '--full', '--staging', staging, '--pipeline', PIPELINE], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`error: cannot create the staging folder ${staging}: a part of the path is a file`), r.stderr);
    assert.match(r.stderr, /^hint: .*--staging/m);
    assert.doesNotMatch(r.stderr, STACK_LINE);
    // The staging folder itself a file: said in words, not as the system's code.
    const itself = await etl(['extract', '--source', dump, '--full', '--staging', path.join(dir, 'file'), '--pipeline', PIPELINE], { cwd: dir });
    assert.equal(itself.code, 1, itself.stderr);
    assert.ok(itself.stderr.startsWith(`error: cannot create the staging folder ${path.join(dir, 'file')}: a file of that name is in the way`), itself.stderr);
  });

  test('a staging folder without write permission: "permission denied" (run as an unprivileged user)', async (t) => {
    const dir = await tempDir(t, 'etl-cli-eacces-');
    await chmod(dir, 0o755);
    const dump = await emptyDump(dir);
    const locked = path.join(dir, 'locked');
    await mkdir(locked, { mode: 0o555 });
    await chmod(locked, 0o555);
    const asUser: { uid?: number; gid?: number } = {};
    const env: Record<string, string> = {};
    if (process.getuid?.() === 0) {
      // root may write anywhere: run the command as nobody, with a temp folder it owns, from a
      // checkout it may have to be let into.
      t.after(await grantTraverse(REPO));
      const tmp = path.join(dir, 'tmp');
      await mkdir(tmp);
      await chown(tmp, 65534, 65534);
      Object.assign(asUser, { uid: 65534, gid: 65534 });
      env.TMPDIR = tmp;
      env.HOME = tmp;
    }
    const staging = path.join(locked, 'runs');
    const r = await etl(['extract', '--source', dump, '--full', '--staging', staging, '--pipeline', PIPELINE], { cwd: dir, env, ...asUser });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`error: cannot create the staging folder ${staging}: permission denied`), r.stderr);
    assert.match(r.stderr, /^hint: /m);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  test('a dump file this user may not read: dump_unreadable, the file and what to do (exit 1), not an internal error', async (t) => {
    const dir = await tempDir(t, 'etl-cli-dump-eacces-');
    await chmod(dir, 0o755);
    const dump = await emptyDump(dir);
    const file = path.join(dump, 'wappizy', 'users.bson');
    const asUser: { uid?: number; gid?: number } = {};
    const env: Record<string, string> = {};
    const staging = path.join(dir, 'runs');
    if (process.getuid?.() === 0) {
      // root reads anything: run the command as nobody, with folders it owns, from a checkout it may enter.
      t.after(await grantTraverse(REPO));
      const tmp = path.join(dir, 'tmp');
      for (const owned of [tmp, staging]) {
        await mkdir(owned);
        await chown(owned, 65534, 65534);
      }
      Object.assign(asUser, { uid: 65534, gid: 65534 });
      env.TMPDIR = tmp;
      env.HOME = tmp;
    }
    await chmod(file, 0o000);
    const r = await etl(['extract', '--source', dump, '--full', '--staging', staging, '--pipeline', PIPELINE], { cwd: dir, env, ...asUser });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^error: cannot read ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: permission denied.*\\[dump_unreadable\\]`, 'm'));
    assert.match(r.stderr, /^hint: this user may not read it/m);
    assert.doesNotMatch(r.stderr, /internal error/);
    assert.doesNotMatch(r.stderr, STACK_LINE);
  });

  test('a malformed DATABASE_URL: no stack and no password, whatever the layer that refuses it', async () => {
    const r = await etl(['status'], { env: { DATABASE_URL: 'postgres://u:hunter2pw@127.0.0.1:notaport/db' } });
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, STACK_LINE);
    assert.doesNotMatch(r.stdout + r.stderr, /hunter2pw/);
    assert.match(r.stderr, /^error: /m);
  });
});
