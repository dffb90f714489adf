// The one error family of etl. Every stage throws these (or subclasses in its own errors.ts);
// bin/render-error.ts alone turns them into text or JSON. Branch on `code` or class, never on text.

/** Where something went wrong: as much of it as is known. */
export interface ErrorContext {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  readonly path?: string;
  readonly collection?: string;
  readonly documentId?: string;
  readonly table?: string;
  readonly sqlColumn?: string;
  readonly constraint?: string;
  readonly [key: string]: unknown;
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
  readonly code: string;
  readonly context: ErrorContext;
  /** What the user can do about it. */
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: EtlErrorOptions = {}) {
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

/** One finding of the pipeline.yaml validator. */
export interface ConfigFinding {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Path of the offending node, e.g. ['tables', 'users_targets', 'columns', 3, 'nullabel']. */
  readonly path: readonly (string | number)[];
  readonly code: string;
  readonly message: string;
}

/** Render a node path the way a user reads it: tables.users_targets.columns[3].nullabel */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

/** `pipeline.yaml:42:7 tables.users_targets.columns[3]: unknown key "nullabel" (…)` */
export function formatFinding(f: ConfigFinding): string {
  const where = formatPath(f.path);
  return `${f.file}:${f.line}:${f.col}${where ? ` ${where}` : ''}: ${f.message}`;
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

/** PostgreSQL refused something. Keeps pg's table, column, constraint and where. */
export class LoadError extends EtlError {
  override name = 'LoadError';
}
