// The one place an error becomes output. People get one short line (what failed, where, the code)
// and a hint on stderr; scripts get a JSON object on stdout under --json. An error that is not an
// EtlError is a bug: it says "internal error" and how to get the stack. Stacks (with their causes)
// appear only with --verbose or ETL_DEBUG=1. Every text is scrubbed of passwords. Returns the exit code.
import type { Writable } from 'node:stream';
import { DatabaseError } from 'pg';
import { pgErrorCode, accessHint } from '../errors/codes.ts';
import { postgresSaysEnded, RUN_AGAIN_HINT } from '../errors/connection-ended.ts';
import { EtlError, ConfigError, LoadError, UsageError, type ErrorContext } from '../errors/etl-error.ts';
import { inputsOnOneLine, printableLine, printableText } from '../errors/printable.ts';
import { redactText } from '../errors/redact.ts';
import { paint } from './output.ts';

export interface RenderErrorOptions {
  readonly json: boolean;
  /** --verbose: add the stack and the chain of causes. */
  readonly verbose?: boolean;
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly secrets?: readonly string[];
  /** The command that was called (`etl <command>`): a usage error without a hint points to its usage. */
  readonly command?: string;
  /** The command line's arguments: a file name given there is shown on one line, whatever it holds. */
  readonly inputs?: readonly string[];
}

const INTERNAL_HINT = 'this is a bug in etl: re-run with --verbose (or ETL_DEBUG=1) to see where it happened, and report it with that output';

interface ErrorView {
  readonly code: string;
  readonly message: string;
  readonly where: string | null;
  readonly hint: string | null;
  readonly context: ErrorContext;
  readonly exitCode: number;
}

export function renderError(error: unknown, o: RenderErrorOptions): number {
  const scrub = (text: string) => redactText(text, o.secrets ?? []);
  const view = error instanceof UsageError ? withUsageHint(describe(error, scrub, o.inputs ?? []), o.command) : describe(error, scrub, o.inputs ?? []);
  const verbose = o.verbose === true || o.env.ETL_DEBUG === '1';
  if (o.json) {
    const body = {
      ok: false,
      error: {
        code: view.code,
        message: view.message,
        where: view.where,
        hint: view.hint,
        context: view.context,
        findings: error instanceof ConfigError ? error.findings.map((f) => ({ ...f, message: printableLine(scrub(f.message)) })) : undefined,
        pg: error instanceof LoadError && error.pg ? error.pg : undefined,
        stack: verbose ? scrub(stackText(error)) : undefined,
      },
    };
    o.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return view.exitCode;
  }
  const color = paint(o.stderr, o.env);
  const where = view.where && !view.message.includes(view.where) ? ` (at ${view.where})` : '';
  const [first, ...more] = view.message.split('\n');
  o.stderr.write(`${color.red('error:')} ${first}${where} ${color.dim(`[${view.code}]`)}\n`);
  for (const line of more) o.stderr.write(`${line}\n`);
  if (view.hint) o.stderr.write(`${color.dim('hint:')} ${view.hint}\n`);
  if (verbose) o.stderr.write(`${color.dim(scrub(stackText(error)))}\n`);
  return view.exitCode;
}

/**
 * Every error has a hint (README "Commands"): a usage error raised without one (a bad value, flags
 * that do not go together) points to the usage that lists the flags and their values.
 */
function withUsageHint(view: ErrorView, command: string | undefined): ErrorView {
  if (view.hint !== null) return view;
  return { ...view, hint: command === undefined ? 'run `etl --help` for the commands and their options' : `see \`etl help ${command}\` for its options` };
}

function describe(error: unknown, scrub: (s: string) => string, args: readonly string[]): ErrorView {
  if (error instanceof EtlError) {
    // What came from input: the arguments, and the file or folder the error is about.
    const inputs = [...args, ...[error.context.file, error.context.path].filter((v): v is string => typeof v === 'string')];
    const shown = (text: string) => printableText(inputsOnOneLine(scrub(text), inputs));
    return {
      code: error.code,
      message: shown(error.message),
      where: printableOrNull(whereOf(error.context), inputs),
      hint: error.hint ? shown(error.hint) : null,
      context: error.context,
      exitCode: error.exitCode,
    };
  }
  // The server ended the connection (an administrator, a restart, a timeout): not a bug of etl either.
  if (postgresSaysEnded(error)) {
    const code = error instanceof DatabaseError ? pgErrorCode(error.code) : 'postgres_connection_lost';
    const message = printableText(scrub(error instanceof Error ? error.message : String(error)));
    return { code, message: `the connection to PostgreSQL ended: ${message}`, where: null, hint: RUN_AGAIN_HINT, context: {}, exitCode: 1 };
  }
  // PostgreSQL's own refusal, met where no stage named its table (schema, status, diff): the server's
  // words with its SQLSTATE, not a bug of etl.
  if (error instanceof DatabaseError) {
    const table = error.table ? ` (table ${error.table})` : '';
    const hint = accessHint(error) ?? 'see PostgreSQL\'s message above; the server log may say more';
    return { code: pgErrorCode(error.code), message: `PostgreSQL refused: ${printableText(scrub(error.message))}${table}`, where: null, hint, context: {}, exitCode: 1 };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'internal', message: `internal error: ${printableText(scrub(message))}`, where: null, hint: INTERNAL_HINT, context: {}, exitCode: 1 };
}

const printableOrNull = (text: string | null, inputs: readonly string[]): string | null => (text === null ? null : printableLine(inputsOnOneLine(text, inputs)));

/** `file:line:col`, `table.column`, `collection _id X`: whatever the context knows, shortest first. */
function whereOf(c: ErrorContext): string | null {
  if (c.file) return `${c.file}${c.line !== undefined ? `:${c.line}${c.column !== undefined ? `:${c.column}` : ''}` : ''}`;
  if (c.table) return c.sqlColumn ? `${c.table}.${c.sqlColumn}` : c.table;
  if (c.collection) return c.documentId ? `${c.collection} _id ${c.documentId}` : c.collection;
  if (typeof c.path === 'string') return c.path;
  return null;
}

/** The stack, then each cause's, as Node would print them (at most a few levels deep). */
function stackText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const text = current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current);
    parts.push(depth === 0 ? text : `caused by: ${text}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\n');
}
