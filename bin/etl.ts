// The `etl` command line: takes the global flags, finds the command, runs it, and turns any error
// into a message and an exit code (bin/render-error.ts, the only place errors are printed).
import process from 'node:process';
import type { Command, CommandContext, Verbosity } from './command.ts';
import { LastLineOnly } from './output.ts';
import { heartbeatMs } from './progress/lines.ts';
import { renderError } from './render-error.ts';
import { resolveConfig } from '../connect/config.ts';
import { EtlError, UsageError } from '../errors/etl-error.ts';

// Each command lives in bin/commands/<name>.ts and is loaded only when called.
const commands: Record<string, () => Promise<{ default: Command }>> = {
  validate: () => import('./commands/validate.ts'),
  schema: () => import('./commands/schema.ts'),
  extract: () => import('./commands/extract.ts'),
  transform: () => import('./commands/transform.ts'),
  load: () => import('./commands/load.ts'),
  run: () => import('./commands/run.ts'),
  sample: () => import('./commands/sample.ts'),
  status: () => import('./commands/status.ts'),
  diff: () => import('./commands/diff.ts'),
  repair: () => import('./commands/repair.ts'),
  refresh: () => import('./commands/refresh.ts'),
  pack: () => import('./commands/pack.ts'),
  verify: () => import('./commands/verify.ts'),
  runs: () => import('./commands/runs.ts'),
  report: () => import('./commands/report.ts'),
  clean: () => import('./commands/clean.ts'),
};

const GLOBAL_HELP = `global options (any command):
  -q, --quiet       errors and the final line only (no progress, no tables)
  -v, --verbose     per-batch progress lines, and the stack of any error (also: ETL_DEBUG=1)
  --dotenv FILE     read the configuration from FILE instead of ./.env
  -h, --help        the command's usage (also: etl help <command>)
  -V, --version     the version of etl`;

interface GlobalFlags {
  readonly rest: string[];
  readonly verbosity: Verbosity;
  readonly dotenv: string | undefined;
}

/**
 * Takes the global flags out of the arguments, wherever they are. As a command's own flags: two
 * --dotenv files, or --quiet with --verbose, are refused rather than the last one kept silently.
 */
function globalFlags(argv: readonly string[]): GlobalFlags {
  const rest: string[] = [];
  const levels = new Set<Verbosity>();
  let dotenv: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quiet' || a === '-q') levels.add('quiet');
    else if (a === '--verbose' || a === '-v') levels.add('verbose');
    else if (a === '--dotenv' || a.startsWith('--dotenv=')) {
      const file = a === '--dotenv' ? argv[++i] : a.slice('--dotenv='.length);
      if (file === undefined || file === '') throw new UsageError('bad_arguments', '--dotenv needs a file', { context: { flag: '--dotenv' }, hint: 'e.g. --dotenv ./prod.env' });
      if (dotenv !== undefined && dotenv !== file) {
        // The files are not named: a path may say more than a user wants in a CI log.
        throw new UsageError('bad_arguments', '--dotenv is given twice, with different values: only one would be used', { context: { flag: '--dotenv' }, hint: 'give --dotenv once' });
      }
      dotenv = file;
    } else rest.push(a);
  }
  if (levels.size > 1) {
    throw new UsageError('bad_arguments', '--quiet and --verbose cannot be combined', { hint: '--quiet prints errors and the final line only; --verbose adds per-batch progress and stacks: give one' });
  }
  return { rest, verbosity: [...levels][0] ?? 'normal', dotenv };
}

async function loadCommand(name: string): Promise<Command> {
  const load = commands[name];
  if (!load) throw new UsageError('unknown_command', `unknown command "${name}"`, { hint: 'run `etl --help` for the list of commands' });
  return (await load()).default;
}

async function main(argv: readonly string[]): Promise<number> {
  const { rest: args, verbosity, dotenv } = globalFlags(argv);
  const [first, ...afterFirst] = args;
  // `etl --help extract` is `etl help extract`: --help is the command's usage wherever it stands.
  const [name, ...rest] = (first === '--help' || first === '-h') && afterFirst.length > 0 ? ['help', ...afterFirst] : args;
  if (name === undefined) {
    // No command is a usage error: the list goes to stderr, as every error does, and exits 2.
    process.stderr.write(await helpText());
    return 2;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(await helpText());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${await version()}\n`);
    return 0;
  }
  // `etl help help`: help is a command too; its usage is the list of commands.
  if (name === 'help' && rest[0] === 'help') {
    process.stdout.write(await helpText());
    return 0;
  }
  if (name === 'help') {
    process.stdout.write(`${(await loadCommand(rest[0]!)).usage.trimEnd()}\n`);
    return 0;
  }
  const command = await loadCommand(name);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage.trimEnd()}\n`);
    return 0;
  }
  heartbeatMs(process.env);
  // --quiet: the final line only, whatever the command prints (--json output is kept whole).
  const quiet = verbosity === 'quiet' && !rest.includes('--json') ? new LastLineOnly(process.stdout) : null;
  const code = await withSignals((signal) => {
    const ctx: CommandContext = { argv: rest, env: process.env, cwd: process.cwd(), stdout: quiet ?? process.stdout, stderr: process.stderr, signal, verbosity, dotenv };
    return command.run(ctx);
  });
  quiet?.flush();
  return code;
}

/** Runs with an AbortSignal that SIGINT/SIGTERM abort; a second Ctrl-C leaves at once. */
async function withSignals(run: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${sig} received: stopping (press Ctrl-C again to quit at once)\n`);
    // An interrupted run is a failed run (exit 1): the stages clean up and leave nothing half-done.
    controller.abort(new EtlError('interrupted', `interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The passwords the configuration holds, so an error text that quotes one is scrubbed of it. */
function knownSecrets(): readonly string[] {
  try {
    return resolveConfig({ env: process.env, cwd: process.cwd() }).secrets;
  } catch {
    return [];
  }
}

async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function helpText(): Promise<string> {
  const lines = ['usage: etl <command> [options]   (etl help <command> for its options)', '', 'commands:'];
  for (const [name, load] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${(await load()).default.summary}`);
  lines.push('', GLOBAL_HELP, '', 'exit codes: 0 done, 1 failed, 2 usage or configuration error', '');
  return lines.join('\n');
}

/** The command named on the command line, when it is one of etl's (the global flags skipped). */
function calledCommand(argv: readonly string[]): string | undefined {
  const args = argv.filter((a, i) => !a.startsWith('-') && argv[i - 1] !== '--dotenv');
  return args[0] !== undefined && args[0] in commands ? args[0] : undefined;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const json = argv.includes('--json');
    const verbose = argv.includes('--verbose') || argv.includes('-v');
    process.exitCode = renderError(error, { json, verbose, stdout: process.stdout, stderr: process.stderr, env: process.env, secrets: knownSecrets(), command: calledCommand(argv), inputs: argv });
  },
);
