// COPY of a table's staged files into its temp tables. Each file must be the one the manifest
// names: its header the columns pipeline.yaml stages, the bytes COPY reads hashed while they stream
// and equal to the manifest's sha256 (a missing checksum is refused: nothing unverified is loaded),
// its records the manifest's count. A mismatch fails the load, whose transaction then rolls back.
import { StagingError } from '../errors/etl-error.ts';
import { isPermissionDenied, systemWords } from '../errors/system-words.ts';
import type { FileRecord } from '../staging/manifest.ts';
import { COPY_CSV_OPTIONS } from '../staging/csv.ts';
import { RUN_FOLDER_DENIED, transformFileOf, type RunPaths } from '../staging/run-folder.ts';
import { copyFileInto, readCsvHeader, type CopyFigures } from './copy-in.ts';
import type { BinaryColumn } from './binary-copy.ts';
import { keysScanOf } from './read-ahead.ts';
import type { LoadSession } from './session.ts';
import type { TableShape } from './shape.ts';
import {
  analyzeSql,
  copyContribSql,
  copyKeysSql,
  copyLiveSql,
  copyRecomputeSql,
  copyStageSql,
  createContribTableSql,
  createKeysTableSql,
  createLiveTableSql,
  createRecomputeTableSql,
  createStageTableSql,
  scopeColumn,
} from './batch-sql.ts';

export interface StagedFile {
  /** Absolute path. */
  readonly file: string;
  /** As the manifest records it (relative to the run folder). */
  readonly record: FileRecord;
  /** The columns its header must name, in order. */
  readonly columns: readonly string[];
  /** Records the manifest says it holds (null: not recorded). */
  readonly records: number | null;
}

/** The staged file a manifest record names, which must lie in the run's transform folder. */
export function stagedFile(paths: RunPaths, record: FileRecord, columns: readonly string[], records: number | null = record.records): StagedFile {
  const file = transformFileOf(paths, record.file);
  if (file === null) {
    throw new StagingError('bad_manifest', `the manifest names ${record.file}, outside ${paths.relative(paths.transformDir)}/`, { context: { file: paths.manifest } });
  }
  return { file, record, columns, records };
}

/** COPYs one staged file with `copySql` (in binary with `binary`: copy-format.ts), checking header, checksum and count. */
export function copyStaged(session: LoadSession, paths: RunPaths, staged: StagedFile, copySql: string, binary: readonly BinaryColumn[] | null = null): Promise<CopyFigures> {
  return verified(session, paths, staged, () => copyFileInto(session.client, staged.file, copySql, session.signal, binary));
}

/** Runs `read` (which streams the file, hashing it) and checks header, checksum and count. */
async function verified<F extends { readonly sha256: string; readonly records?: number | null; readonly rowCount?: number }>(
  session: LoadSession,
  paths: RunPaths,
  staged: StagedFile,
  read: () => Promise<F>,
): Promise<F> {
  const relative = paths.relative(staged.file);
  session.at(session.place.table, session.place.step, relative);
  await checkHeader(staged.file, staged.columns, paths);
  const sha256 = staged.record.sha256;
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) {
    throw new StagingError('checksum_missing', `the manifest of run ${paths.runId} records no sha256 for ${relative}: it cannot be loaded unverified`, {
      context: { file: staged.file },
      hint: 'the run is damaged or was edited: run `etl transform` again',
    });
  }
  const copied = await read();
  if (copied.sha256 !== sha256) {
    throw new StagingError('staged_file_changed', `${relative} of run ${paths.runId} changed since transform wrote it (sha256 ${copied.sha256}, manifest ${sha256})`, {
      context: { file: staged.file },
      hint: 'a staged file must not be edited; run `etl transform` again',
    });
  }
  const count = copied.records ?? copied.rowCount;
  if (staged.records !== null && count !== staged.records) {
    throw new StagingError('row_count_mismatch', `${relative}: COPY read ${count} rows, the manifest records ${staged.records}`, {
      context: { file: staged.file },
      hint: 'the staged run is inconsistent; run `etl transform` again',
    });
  }
  return copied;
}

async function checkHeader(file: string, expected: readonly string[], paths: RunPaths): Promise<void> {
  let header: string[];
  try {
    header = await readCsvHeader(file);
  } catch (cause) {
    throw new StagingError('staged_file_missing', `cannot read ${paths.relative(file)} of run ${paths.runId}: ${systemWords(cause)}`, {
      context: { file },
      hint: isPermissionDenied(cause) ? RUN_FOLDER_DENIED : `the run is damaged: run \`etl transform --run ${paths.runId}\` again`,
      cause,
    });
  }
  if (header.length !== expected.length || header.some((h, i) => h !== expected[i])) {
    throw new StagingError('columns_mismatch', `${paths.relative(file)} has columns (${header.join(', ')}) but pipeline.yaml stages (${expected.join(', ')})`, {
      context: { file },
      hint: 'load the run with the pipeline.yaml it was transformed with (<run>/pipeline.yaml), or transform it again',
    });
  }
}

/** The batch: the CSV into the stage temp table (analyzed: the merge and the checks join it to large tables). */
export async function copyBatch(session: LoadSession, paths: RunPaths, shape: TableShape, staged: StagedFile): Promise<CopyFigures> {
  await session.run(createStageTableSql(shape));
  const copied = await copyStaged(session, paths, staged, copyStageSql(shape, COPY_CSV_OPTIONS));
  await session.run(analyzeSql(shape.temps.stage));
  return copied;
}

/**
 * The scope: the keys file into the keys temp table. `identitiesOnly`: only the documents whose `_id`
 * is not their key's text are needed (a complete read with no claim kept: load/claims.ts looks at
 * nothing else then). The file is then read here first (verified like a COPY) and, when it surely
 * names none, nothing is copied; else the whole file is, since a key such a document shares with an
 * ObjectId document is contested. Returns the rows kept; none copied: no temp table either, since
 * nothing of such a load reads it (a complete read, no claim kept, no document to claim a key).
 */
export async function copyScope(session: LoadSession, paths: RunPaths, shape: TableShape, record: FileRecord, identitiesOnly = false): Promise<number> {
  const key = scopeColumn(shape).name;
  const file = stagedFile(paths, record, [key]);
  // Runs staged before the keys file named each document's `_id` have the key column alone.
  const withIdentity = shape.kind !== 'dedupe_upsert' && (await readCsvHeader(file.file).catch(() => [])).length === 2;
  const columns = withIdentity ? [key, shape.documentColumn.name] : [key];
  const copySql = copyKeysSql(shape, COPY_CSV_OPTIONS, withIdentity);
  if (identitiesOnly && (await noIdentityIn(session, paths, { ...file, columns }, withIdentity))) return 0;
  await session.run(createKeysTableSql(shape));
  const copied = await copyStaged(session, paths, { ...file, columns }, copySql);
  await session.run(analyzeSql(shape.temps.keys));
  return copied.rowCount;
}

/**
 * Whether the keys file names no `_id` beside a key, read (and verified) without a COPY; false when
 * that cannot be told from the bytes alone (a quoted value), and the COPY decides.
 */
async function noIdentityIn(session: LoadSession, paths: RunPaths, file: StagedFile, withIdentity: boolean): Promise<boolean> {
  await checkHeader(file.file, file.columns, paths);
  const scan = await keysScanOf(session, file.file);
  if (scan.records === null || (withIdentity && !scan.lastFieldEmpty)) return false;
  await verified(session, paths, file, async () => scan);
  return true;
}

/** dedupe: the contributions file into its temp table. */
export async function copyContributions(session: LoadSession, paths: RunPaths, shape: TableShape, record: FileRecord): Promise<CopyFigures> {
  await session.run(createContribTableSql(shape));
  const columns = [shape.documentColumn.name, ...shape.columns.map((c) => c.name)];
  const copied = await copyStaged(session, paths, stagedFile(paths, record, columns), copyContribSql(shape, COPY_CSV_OPTIONS));
  await session.run(analyzeSql(shape.temps.contrib));
  return copied;
}

/** dedupe, repair runs: the keys to recompute into their temp table. */
export async function copyRecompute(session: LoadSession, paths: RunPaths, shape: TableShape, record: FileRecord): Promise<number> {
  await session.run(createRecomputeTableSql(shape));
  const copied = await copyStaged(session, paths, stagedFile(paths, record, shape.key.map((c) => c.name)), copyRecomputeSql(shape, COPY_CSV_OPTIONS));
  await session.run(analyzeSql(shape.temps.recompute));
  return copied.rowCount;
}

/** Delete propagation: the live keys file into its temp table. */
export async function copyLive(session: LoadSession, paths: RunPaths, shape: TableShape, record: FileRecord & { column: string }): Promise<number> {
  const column = scopeColumn(shape);
  if (column.name !== record.column) {
    throw new StagingError('live_keys_mismatch', `${record.file}: key column ${record.column} is not the column of ${shape.table.name} that holds the document _id (${column.name})`, {
      hint: 'load the run with the pipeline.yaml it was transformed with, or transform it again',
    });
  }
  await session.run(createLiveTableSql(shape, column));
  const copied = await copyStaged(session, paths, stagedFile(paths, record, [record.column]), copyLiveSql(shape, COPY_CSV_OPTIONS));
  await session.run(analyzeSql(shape.temps.live));
  return copied.rowCount;
}
