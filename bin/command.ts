// What every `etl <command>` module exports, and what it is given. Commands parse their own flags
// (node:util parseArgs), resolve configuration once, call a stage's run…() and render its report.
import type { Writable } from 'node:stream';

export interface CommandContext {
  /** Arguments after the command name. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /** Aborted on SIGINT/SIGTERM: stages stop at the next document or row and clean up. */
  readonly signal: AbortSignal;
}

export interface Command {
  /** One line for `etl --help`. */
  readonly summary: string;
  /** Full usage text for `etl <command> --help`. */
  readonly usage: string;
  /** Returns the exit code: 0 done, 1 failed (or differences found), 2 usage/configuration. Throws EtlError otherwise. */
  run(ctx: CommandContext): Promise<number>;
}
