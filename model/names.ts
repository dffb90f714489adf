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

/** A staged file a name becomes: its folder and suffix in a run (staging/run-folder.ts), and what it holds. */
interface StagedFileShape {
  readonly folder: string;
  readonly suffix: string;
  readonly what: string;
}

/** The files of a collection's name (extract/<collection>…). test/model/staged-file-names.test.ts holds these to runPaths'. */
export const COLLECTION_FILES: readonly StagedFileShape[] = [
  { folder: 'extract', suffix: '.ndjson', what: 'the staged documents' },
  { folder: 'extract', suffix: '.rejects.ndjson', what: 'the extract rejects file' },
  { folder: 'extract', suffix: '.ids.ndjson', what: 'the _id listing' },
  { folder: 'extract', suffix: '.requested.ndjson', what: 'the requested _ids (etl repair)' },
];

/** The files of a table's name (transform/<table>…, and two more). */
export const TABLE_FILES: readonly StagedFileShape[] = [
  { folder: 'extract', suffix: '.recompute.csv', what: 'the keys to recompute (etl repair)' },
  { folder: 'transform', suffix: '.csv', what: 'the CSV' },
  { folder: 'transform', suffix: '.keys.csv', what: 'the keys file' },
  { folder: 'transform', suffix: '.contrib.csv', what: 'the contributions file' },
  { folder: 'transform', suffix: '.live.csv', what: 'the live keys file' },
  { folder: 'transform', suffix: '.recompute.csv', what: 'the keys to recompute (etl repair)' },
  { folder: 'transform', suffix: '.rejects.ndjson', what: 'the transform rejects file' },
  { folder: 'load', suffix: '.rejects.ndjson', what: 'the load rejects file' },
];

/** One name whose staged file would be the file of another name. */
export interface StagedFileCollision {
  readonly table: string;
  /** The collection's name when the name is the table's mongo_collection. */
  readonly collection: string | null;
  readonly file: string;
  /** The other file's owner and role, in words: `the keys file of table "t"`. */
  readonly taken: string;
}

/**
 * Names become file names, and a name may end like another's file (`c.rejects`, `t.keys`): two
 * names would write one file, each stage overwriting the other's. Every such pair, the later name
 * (pipeline order) named; a collection read by several tables is one name.
 */
export function stagedFileCollisions(tables: readonly { readonly name: string; readonly collection: string }[]): StagedFileCollision[] {
  const owners = new Map<string, string>();
  const found: StagedFileCollision[] = [];
  const seenCollections = new Set<string>();
  const claim = (name: string, shapes: readonly StagedFileShape[], owner: string, collision: (file: string, taken: string) => StagedFileCollision) => {
    const mine = new Set<string>();
    for (const s of shapes) {
      const file = `${s.folder}/${name}${s.suffix}`;
      const taken = owners.get(file);
      if (taken !== undefined && !mine.has(file)) found.push(collision(file, taken));
      else if (taken === undefined) owners.set(file, `${s.what} of ${owner}`);
      mine.add(file);
    }
  };
  for (const t of tables) {
    if (!seenCollections.has(t.collection)) {
      seenCollections.add(t.collection);
      claim(t.collection, COLLECTION_FILES, `collection ${JSON.stringify(t.collection)} (table ${JSON.stringify(t.name)})`, (file, taken) => ({ table: t.name, collection: t.collection, file, taken }));
    }
    claim(t.name, TABLE_FILES, `table ${JSON.stringify(t.name)}`, (file, taken) => ({ table: t.name, collection: null, file, taken }));
  }
  return found;
}
