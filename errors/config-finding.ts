// A finding of the pipeline.yaml validator (Benthos-style lints): one wrong node, with its line.
// ConfigError lists them; `etl validate --json` prints them.

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
