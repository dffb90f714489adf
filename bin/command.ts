// What every `etl <command>` module exports, and what it is given. Commands parse their own flags
// (node:util parseArgs), resolve configuration once, call a stage's run…() and render its report.
import type { Writable } from 'node:stream';

/** quiet: errors and the final line; normal; verbose: per-batch detail and stacks. */
export type Verbosity = 'quiet' | 'normal' | 'verbose';

export interface CommandContext {
  /** Arguments after the command name (the global flags taken out). */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /** Aborted on SIGINT/SIGTERM: stages stop at the next document or row and clean up. */
  readonly signal: AbortSignal;
  /** --quiet / --verbose (default normal). */
  readonly verbosity?: Verbosity;
  /** --dotenv FILE: the file read instead of ./.env. */
  readonly dotenv?: string;
}

export interface Command {
  /** One line for `etl --help`. */
  readonly summary: string;
  /** Full usage text for `etl <command> --help` and `etl help <command>`. */
  readonly usage: string;
  /** Returns the exit code: 0 done, 1 failed (or differences found), 2 usage/configuration. Throws EtlError otherwise. */
  run(ctx: CommandContext): Promise<number>;
}
