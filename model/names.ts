// Table and collection names become staging file names (extract/<collection>.ndjson,
// transform/<table>.csv). One rule, checked where a name is first seen: `etl validate` reports a
// name that breaks it with its line, and staging/run-folder.ts refuses it as a last defence.
import type { LintContext, Path } from './field-spec.ts';

/**
 * Why `name` cannot be a file name in a run folder, or null when it can. Any name PostgreSQL and
 * MongoDB accept is kept (`weird "table"` included: identifiers are always quoted in SQL), except
 * what would leave the folder, hide the file or is not a file name at all.
 */
export function fileNameProblem(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.startsWith('.')) return 'it starts with "." (a hidden file, or a way out of the run folder)';
  if (/[/\\]/.test(name)) return 'it holds "/" or "\\" (it becomes a file name: a way out of the run folder)';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'it holds a control character (a NUL, a tab, a newline…)';
  if (Buffer.byteLength(name) > 200) return 'it is longer than 200 bytes (file names are limited)';
  return null;
}

/** Findings for a table's name and its mongo_collection. */
export function checkFileNames(ctx: LintContext, table: string, collection: unknown, tablePath: Path): void {
  const tableProblem = fileNameProblem(table);
  if (tableProblem) ctx.add(tablePath, 'bad_file_name', `table name ${JSON.stringify(table)} cannot be used: ${tableProblem}`, null, 'key');
  const collectionProblem = typeof collection === 'string' ? fileNameProblem(collection) : null;
  if (collectionProblem) ctx.add([...tablePath, 'mongo_collection'], 'bad_file_name', `mongo_collection ${JSON.stringify(collection)} cannot be used: ${collectionProblem}`);
}
