// The `etl` command line: finds the command, runs it, turns any error into a message and an exit code.
import process from 'node:process';
import type { Command, CommandContext } from './command.ts';
import { renderError } from './render-error.ts';
import { resolveConfig } from '../connect/config.ts';
import { EtlError, UsageError } from '../model/errors.ts';

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
  refresh: () => import('./commands/refresh.ts'),
  pack: () => import('./commands/pack.ts'),
  verify: () => import('./commands/verify.ts'),
  runs: () => import('./commands/runs.ts'),
  clean: () => import('./commands/clean.ts'),
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(await helpText());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${await version()}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) throw new UsageError('unknown_command', `unknown command "${name}"`, { hint: 'run `etl --help` for the list of commands' });
  let command: Command;
  try {
    command = (await load()).default;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException)?.code === 'ERR_MODULE_NOT_FOUND' && String((cause as Error).message).includes(`commands/${name}.ts`)) {
      throw new UsageError('not_implemented', `command "${name}" is not available in this version`, { cause });
    }
    throw cause;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage.trimEnd()}\n`);
    return 0;
  }

  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: leave now
    process.stderr.write(`\n${sig} received: stopping (press Ctrl-C again to quit at once)\n`);
    // An interrupted run is a failed run (exit 1): the stages clean up and leave nothing half-done.
    controller.abort(new EtlError('interrupted', `interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: CommandContext = {
    argv: rest,
    env: process.env,
    cwd: process.cwd(),
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
  };
  try {
    return await command.run(ctx);
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
  const lines = ['usage: etl <command> [options]   (etl <command> --help for its options)', '', 'commands:'];
  for (const [name, load] of Object.entries(commands)) {
    const summary = await load().then((m) => m.default.summary, () => '(not available in this version)');
    lines.push(`  ${name.padEnd(10)} ${summary}`);
  }
  lines.push('', 'exit codes: 0 done, 1 failed, 2 usage or configuration error', '');
  return lines.join('\n');
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const json = argv.includes('--json');
    process.exitCode = renderError(error, { json, stdout: process.stdout, stderr: process.stderr, env: process.env, secrets: knownSecrets() });
  },
);
