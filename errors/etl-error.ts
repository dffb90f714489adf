// The one error family of etl. Every stage throws these; bin/render-error.ts alone turns them into
// text or JSON. Branch on the class or the `code` (a closed set, errors/codes.ts), never on text.
import type { ErrorCode } from './codes.ts';
import { formatFinding, type ConfigFinding } from './config-finding.ts';

/** Where something went wrong: as much of it as is known. Rendered as `where` and in --json. */
export interface ErrorContext {
  /** A file (pipeline.yaml, a staged file, a dump, a manifest) and a place in it. */
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  /** Byte offset in a binary file (a .bson dump). */
  readonly offset?: number;
  /** A path that is not a file of ours (a folder), or a node path in a document. */
  readonly path?: string;
  /** The operating system's error code (EACCES, ENOSPC…) when one caused this. */
  readonly errno?: string;
  readonly collection?: string;
  readonly documentId?: string;
  readonly table?: string;
  readonly sqlColumn?: string;
  readonly constraint?: string;
  /** PostgreSQL's context line (for COPY: the input line). */
  readonly where?: string;
  /** The environment variable or the command-line flag that holds the wrong value. */
  readonly variable?: string;
  readonly flag?: string;
  /** A server we connect to (an SSH server). */
  readonly host?: string;
  readonly port?: number;
  /** The process holding what we wait for (the load lock). */
  readonly pid?: number;
}

export interface EtlErrorOptions {
  readonly context?: ErrorContext;
  readonly hint?: string;
  readonly cause?: unknown;
}

export class EtlError extends Error {
  override name = 'EtlError';
  /** 1: the work failed; 2: the command line or the configuration is wrong. */
  readonly exitCode: 1 | 2 = 1;
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  /** What the user can do about it. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: EtlErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.context = options.context ?? {};
    this.hint = options.hint;
  }
}

/** Wrong flags or arguments. Exit 2. */
export class UsageError extends EtlError {
  override name = 'UsageError';
  override readonly exitCode = 2 as const;
}

/** The configuration (pipeline.yaml, environment, .env) is wrong. Exit 2. Lists every finding. */
export class ConfigError extends EtlError {
  override name = 'ConfigError';
  override readonly exitCode = 2 as const;
  readonly findings: readonly ConfigFinding[];

  constructor(message: string, findings: readonly ConfigFinding[] = [], options: EtlErrorOptions = {}) {
    super('config_invalid', findings.length ? `${message}\n${findings.map(formatFinding).join('\n')}` : message, options);
    this.findings = findings;
  }
}

/** MongoDB or a dump could not be read. */
export class SourceError extends EtlError {
  override name = 'SourceError';
}

/** A staged run is missing, unfinished or inconsistent. */
export class StagingError extends EtlError {
  override name = 'StagingError';
}

/** What PostgreSQL said about a refused statement (pg's DatabaseError fields), when it said it. */
export interface PgFailure {
  /** SQLSTATE, e.g. 23505. */
  readonly sqlState: string | undefined;
  readonly table: string | undefined;
  readonly column: string | undefined;
  readonly constraint: string | undefined;
  /** PostgreSQL's context line; for COPY it names the input line. */
  readonly where: string | undefined;
}

export interface LoadErrorOptions extends EtlErrorOptions {
  readonly pg?: PgFailure;
}

/** PostgreSQL refused something, or a load check failed. Keeps pg's fields when pg refused. */
export class LoadError extends EtlError {
  override name = 'LoadError';
  /** pg's own fields of the refusal (null when the failure is one of our checks). */
  readonly pg: PgFailure | null;

  constructor(code: ErrorCode, message: string, options: LoadErrorOptions = {}) {
    super(code, message, options);
    this.pg = options.pg ?? null;
  }
}
