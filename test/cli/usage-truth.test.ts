// `etl <command> --help` is documentation users trust as much as the README: every flag a usage
// lists is accepted, a flag with no effect in a combination is refused rather than ignored, and a
// value that cannot be meant (an empty one, from an unset shell variable) is a usage error naming
// the flag (exit 2), never the flag's default taken silently. Needs no server: where a command would
// connect, the servers are on port 1, so a command that got past its flags fails there (exit 1).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { before, describe, test } from 'node:test';
import type { Command, CommandContext } from '../../bin/command.ts';
import { etl, REPO, useSampleDump } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

const PIPELINE = path.join(REPO, 'pipeline.yaml');
const NOWHERE = { DATABASE_URL: 'postgresql://u@127.0.0.1:1/db', MONGODB_URL: 'mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=300', ETL_PIPELINE: PIPELINE };
const COMMANDS = ['validate', 'schema', 'extract', 'transform', 'load', 'run', 'sample', 'status', 'diff', 'repair', 'refresh', 'pack', 'verify', 'runs', 'report', 'clean'];

/** What bin/etl.ts gives a command; its flags are all these tests reach. */
function contextOf(argv: readonly string[]): CommandContext {
  return { argv, env: NOWHERE, cwd: REPO, stdout: new PassThrough(), stderr: new PassThrough(), signal: new AbortController().signal };
}

const sample = useSampleDump('etl-usage-truth-', 22);

describe('etl usage texts tell the truth', () => {
  // One staged and transformed run (no server needed): the `latest` an empty --run would fall back to.
  before(async () => {
    for (const args of [['extract', '--full', '--source', sample.dump], ['transform']]) {
      const r = await etl([...args, '--quiet'], { cwd: sample.work, env: NOWHERE });
      assert.equal(r.code, 0, r.output);
    }
  });

  test('a flag given an empty value (an unset shell variable) is a usage error naming the flag, never its default', async () => {
    const cases = [
      ['transform', '--run', ''],
      ['load', '--run', ''],
      ['report', '--run', '', '--no-ledger'],
      ['pack', '--run', '', '--out', 'x.tar.gz'],
      ['extract', '--full', '--source', sample.dump, '--staging', ''],
      ['extract', '--full', '--source', ''],
      ['extract', '--full', '--source', sample.dump, '--mongo-db', ''],
      ['validate', '--pipeline', ''],
      ['diff', '--mongo-db', ''],
      ['runs', '--staging', ''],
      ['refresh', 'postgres', '--include-table', ''],
    ];
    const before = await readdir(sample.work);
    for (const args of cases) {
      const flag = args[args.indexOf('') - 1]!;
      const r = await etl(['--quiet', ...args], { cwd: sample.work, env: NOWHERE });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.output}`);
      assert.match(r.stderr, new RegExp(`^error: ${flag} is empty`, 'm'), args.join(' '));
    }
    // `--staging ''` staged nothing into the current folder, `--run ''` wrote no report.
    assert.deepEqual(await readdir(sample.work), before);
  });

  test('--dotenv given twice with different files is a usage error, as any flag given twice', async () => {
    const twice = await etl(['validate', '--pipeline', PIPELINE, '--dotenv', '/dev/null', '--dotenv', '/etc/hostname'], { cwd: sample.work });
    assert.equal(twice.code, 2, twice.output);
    assert.match(twice.stderr, /^error: --dotenv is given twice, with different values: only one would be used/m);
    const same = await etl(['validate', '--pipeline', PIPELINE, '--dotenv', '/dev/null', '--dotenv=/dev/null', '--quiet'], { cwd: sample.work });
    assert.equal(same.code, 0, same.output);
  });

  test('--quiet and --verbose together are a usage error, never the last one silently', async () => {
    for (const flags of [['-q', '-v'], ['--verbose', '--quiet']]) {
      const r = await etl(['validate', '--pipeline', PIPELINE, ...flags], { cwd: sample.work });
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.output}`);
      assert.match(r.stderr, /^error: --quiet and --verbose cannot be combined/m);
      assert.equal(r.stdout, '');
    }
    const twice = await etl(['validate', '--pipeline', PIPELINE, '-q', '--quiet'], { cwd: sample.work });
    assert.equal(twice.code, 0, twice.output);
    assert.match(twice.stdout, /^valid: /);
  });

  test('flags that would be ignored are refused: repair --allow-delete-all, --no-ledger with --database-url, schema --yes/--allow where nothing is applied', async () => {
    const cases: [string[], RegExp][] = [
      [['repair', '--allow-delete-all'], /^error: Unknown option '--allow-delete-all'/m],
      [['runs', '--no-ledger', '--database-url', NOWHERE.DATABASE_URL], /^error: --no-ledger and --database-url cannot be combined/m],
      [['report', '--no-ledger', '--database-url', NOWHERE.DATABASE_URL], /^error: --no-ledger and --database-url cannot be combined/m],
      [['schema', '--dry-run', '--allow', 'drop-column:users.x'], /^error: --dry-run and --allow cannot be combined/m],
      [['schema', '--dry-run', '--yes'], /^error: --dry-run and --yes cannot be combined/m],
      [['schema', '--check', '--yes'], /^error: --check and --yes cannot be combined/m],
    ];
    for (const [args, message] of cases) {
      const r = await etl(args, { cwd: sample.work, env: NOWHERE });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.output}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    // --check with --allow stays: the check says what etl schema would do with those changes allowed.
    const check = await etl(['schema', '--check', '--allow', 'drop-column:users.x'], { cwd: sample.work, env: NOWHERE });
    assert.equal(check.code, 1, check.output);
    assert.match(check.stderr, /cannot connect to PostgreSQL/);
  });

  test('every usage ends with its exit codes, and every flag it lists is one its command takes', async () => {
    for (const name of COMMANDS) {
      const { default: command } = (await import(`../../bin/commands/${name}.ts`)) as { default: Command };
      assert.match(command.usage, /^exit codes: 0 /m, `etl ${name} --help says no exit codes`);
      const options = command.usage.slice(command.usage.search(/^(options|destination)\b/m));
      // --dotenv, listed by some, is a global flag: bin/etl.ts takes it before the command parses.
      const listed = new Set([...options.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--dotenv'));
      assert.ok(listed.size > 0, name);
      for (const flag of listed) {
        // Followed by an unknown flag, so the parser always refuses: the listed flag itself, or the next one.
        const positional = name === 'refresh' ? ['postgres'] : name === 'verify' ? ['x'] : [];
        const refusal = await command.run(contextOf([...positional, flag, '--no-such-flag'])).then(() => 'accepted', (e: Error) => e.message);
        assert.match(refusal, /--no-such-flag|argument is ambiguous/, `etl ${name} --help lists ${flag}: ${refusal}`);
        assert.doesNotMatch(refusal, new RegExp(`Unknown option '${flag}'`), `etl ${name} --help lists ${flag}, which it refuses`);
      }
    }
    const global = await etl(['--help']);
    assert.match(global.stdout, /^ {2}-V, --version /m);
  });

  test('every usage error ends with a hint saying what to do, as the README says of every error', async () => {
    const cases = [
      ['extract', '--full', '--since', '2024-01-01', '--source', sample.dump],
      ['load', '--lock-timeout', 'abc'],
      ['clean', '--keep', 'x'],
      ['clean', '--older-than', '7x'],
      ['sample', '--scale', 'abc', '--out', 'x'],
      ['sample', '--gzip', '--mongo-url', NOWHERE.MONGODB_URL],
      ['refresh', 'mongo', '--include-table', 'users'],
      ['refresh', 'postgres', '--restore'],
    ];
    for (const args of cases) {
      const r = await etl(args, { cwd: sample.work, env: NOWHERE });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.output}`);
      assert.match(r.stderr, /^error: .* \[[a-z_]+\]\nhint: \S/m, `etl ${args.join(' ')}: no hint\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^hint: .*etl (help )?${args[0]}`, 'm'), `etl ${args.join(' ')}: the hint names no usage to read\n${r.stderr}`);
    }
  });

  test('`etl verify latest` checks the run `latest` names, as `--run latest` means elsewhere (its usage: "run id")', async () => {
    const r = await etl(['verify', 'latest'], { cwd: sample.work, env: NOWHERE });
    assert.equal(r.code, 0, r.output);
    assert.match(r.stdout, /^OK: run \d{8}T\d{9}Z is exactly what its manifest says$/m);
  });

  test('`etl verify <folder or archive> --staging DIR` is refused: --staging only says where a run id is looked for', async () => {
    const r = await etl(['verify', sample.dump, '--staging', sample.work], { cwd: sample.work, env: NOWHERE });
    assert.equal(r.code, 2, r.output);
    assert.match(r.stderr, /^error: --staging applies to a run named by its id \(or latest\)/m);
  });

  test('--out naming a device, a FIFO or a socket is refused (exit 2): the file written beside it would be renamed over it', async (t) => {
    // As root, `etl pack --out /dev/null` replaced /dev/null with the archive: a FIFO stands for it here.
    const dir = await tempDir('etl-out-special-', t);
    const fifo = path.join(dir, 'sink');
    execFileSync('mkfifo', [fifo]);
    for (const args of [['report', '--no-ledger', '--out', fifo], ['pack', '--out', fifo]]) {
      const r = await etl(args, { cwd: sample.work, env: NOWHERE });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.output}`);
      assert.match(r.stderr, /^error: --out .* is not a regular file/m, r.stderr);
      assert.ok(lstatSync(fifo).isFIFO(), `etl ${args[0]} --out replaced the FIFO`);
    }
  });

  test('etl pack --out where no file can be created (/proc): write_failed naming the archive (exit 1), not an internal error', async () => {
    const r = await etl(['pack', '--out', '/proc/etl-usage-truth.tar.gz'], { cwd: sample.work, env: NOWHERE });
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, /^error: cannot write \/proc\/etl-usage-truth\.tar\.gz: .* \[write_failed\]$/m, r.stderr);
    assert.doesNotMatch(r.stderr, /internal error/);
  });

  test('`etl help help` (help is listed among the commands) prints the list of commands, exit 0', async () => {
    const r = await etl(['help', 'help']);
    assert.equal(r.code, 0, r.output);
    assert.equal(r.stdout, (await etl(['--help'])).stdout);
  });

  test('`etl --help <command>` and `etl -h <command>` print that command\'s usage, as `etl help <command>` does', async () => {
    const help = await etl(['help', 'extract']);
    for (const flag of ['--help', '-h']) {
      const r = await etl([flag, 'extract']);
      assert.equal(r.code, 0, r.output);
      assert.equal(r.stdout, help.stdout);
      assert.match(r.stdout, /^usage: etl extract /);
    }
  });

  test('`etl` with no command: the usage on stderr (an error, exit 2), nothing on stdout', async () => {
    const r = await etl([]);
    assert.equal(r.code, 2, r.output);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^usage: etl <command> \[options\]/);
    assert.match(r.stderr, /^exit codes: /m);
  });

  test('`etl --help` and every `etl help <command>` fit 100 columns, and exit 0', async () => {
    for (const args of [['--help'], ...COMMANDS.map((name) => ['help', name])]) {
      const r = await etl(args);
      assert.equal(r.code, 0, `etl ${args.join(' ')}: ${r.output}`);
      const wide = r.stdout.split('\n').filter((line) => [...line].length > 100);
      assert.deepEqual(wide, [], `etl ${args.join(' ')}: lines wider than 100 columns`);
    }
  });
});
