// Finds the collections of a mongodump output on disk: a database folder of `<collection>.bson`
// (or `.bson.gz`) files, the dump folder above it (one `<db>/` per database), or an archive file.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, SourceError } from '../errors/etl-error.ts';
import { readArchiveHeader } from './dump-archive.ts';

export type DumpLayout =
  | {
      readonly kind: 'directory';
      readonly path: string;
      readonly database: string;
      /** Collection → its `.bson` or `.bson.gz` file. */
      readonly files: ReadonlyMap<string, string>;
    }
  | {
      readonly kind: 'archive';
      readonly path: string;
      readonly database: string;
      readonly collections: ReadonlySet<string>;
      readonly serverVersion: string | null;
    };

/** Databases mongodump writes next to the user's and that never hold application data. */
const SYSTEM_DATABASES = new Set(['admin', 'config', 'local']);

function bsonCollectionName(file: string): string | null {
  const m = /^(.+)\.bson(\.gz)?$/.exec(file);
  if (!m || m[1]!.startsWith('system.')) return null;
  return m[1]!;
}

async function bsonFilesOf(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const name = bsonCollectionName(entry.name);
    if (name === null) continue;
    // A folder holding both x.bson and x.bson.gz is ambiguous: refuse rather than pick one.
    if (files.has(name)) {
      throw new SourceError('dump_ambiguous', `${dir} holds both ${name}.bson and ${name}.bson.gz`, {
        context: { file: dir },
        hint: 'remove one of them',
      });
    }
    files.set(name, path.join(dir, entry.name));
  }
  return files;
}

function chooseDatabase(found: readonly string[], wanted: string | null, where: string): string {
  if (wanted !== null) {
    if (found.includes(wanted)) return wanted;
    throw new SourceError('dump_unknown_database', `the dump at ${where} has no database "${wanted}" (it holds: ${found.join(', ') || 'none'})`, {
      context: { file: where },
      hint: 'pass --mongo-db with one of those names, or point --source at the database folder',
    });
  }
  const user = found.filter((d) => !SYSTEM_DATABASES.has(d));
  if (user.length === 1) return user[0]!;
  if (found.length === 1) return found[0]!;
  throw new ConfigError(
    `the dump at ${where} holds ${user.length ? `several databases (${user.join(', ')})` : 'no database'}: say which one to read`,
    [],
    { hint: 'pass --mongo-db NAME, or point --source at the database folder' },
  );
}

/**
 * Resolves a dump path. `database` (from --mongo-db) picks one database of a multi-database dump;
 * null accepts the only one there is.
 */
export async function resolveDumpLayout(dumpPath: string, database: string | null, signal?: AbortSignal): Promise<DumpLayout> {
  const abs = path.resolve(dumpPath);
  let info;
  try {
    info = await stat(abs);
  } catch {
    throw new SourceError('dump_not_found', `dump not found: ${abs}`, {
      context: { file: abs },
      hint: 'pass --source with a mongodump folder, a database folder of .bson files or an --archive file',
    });
  }
  if (info.isFile()) {
    const header = await readArchiveHeader(abs, signal);
    const dbs = [...new Set(header.namespaces.map((n) => n.db))];
    const db = chooseDatabase(dbs, database, abs);
    const collections = new Set(
      header.namespaces.filter((n) => n.db === db && n.type !== 'view' && !n.collection.startsWith('system.')).map((n) => n.collection),
    );
    return { kind: 'archive', path: abs, database: db, collections, serverVersion: header.serverVersion };
  }
  if (!info.isDirectory()) throw new SourceError('dump_not_found', `${abs} is neither a file nor a folder`, { context: { file: abs } });

  const direct = await bsonFilesOf(abs);
  const subdirs: string[] = [];
  for (const entry of await readdir(abs, { withFileTypes: true })) {
    if (entry.isDirectory() && (await bsonFilesOf(path.join(abs, entry.name))).size > 0) subdirs.push(entry.name);
  }
  if (direct.size > 0 && subdirs.length > 0) {
    throw new ConfigError(`${abs} holds both .bson files and database folders (${subdirs.join(', ')}): point --source at one database folder`);
  }
  if (direct.size > 0) {
    // A database folder: its name is the database's (mongodump writes <out>/<db>/<collection>.bson).
    const name = path.basename(abs);
    if (database !== null && database !== name) {
      // The folder may have been renamed; the user's word wins, but only when it is not a contradiction
      // with a sibling layout we can see. Nothing to check here: accept it.
      return { kind: 'directory', path: abs, database, files: direct };
    }
    return { kind: 'directory', path: abs, database: name, files: direct };
  }
  if (subdirs.length === 0) {
    throw new SourceError('dump_empty', `no .bson or .bson.gz files in ${abs} or in its sub-folders`, {
      context: { file: abs },
      hint: 'point --source at a mongodump output folder, a database folder, or an --archive file',
    });
  }
  const db = chooseDatabase(subdirs.sort(), database, abs);
  const dir = path.join(abs, db);
  return { kind: 'directory', path: dir, database: db, files: await bsonFilesOf(dir) };
}
