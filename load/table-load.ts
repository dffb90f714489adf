// One table's load, inside the load's transaction. Optionally TRUNCATE … CASCADE first; then
//   the ordinary path: COPY the CSV into a temp table, clean the batch there (duplicate keys,
//     missing references), merge it set-wise into the table (upsert, delete-and-insert, dedupe);
//   the direct path, for a large batch into a table that never held a row (an initial load): COPY
//     straight into the table, then refuse or null the missing references there. The rows are
//     written once instead of twice; the outcome is the same.
import type pg from 'pg';
import { COPY_CSV_OPTIONS } from '../staging/csv.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import type { AtomicFileSink, FileFigures } from '../staging/atomic-file.ts';
import { StagingError } from '../model/errors.ts';
import { ident, type SqlIdent } from '../schema/sql.ts';
import type { TableModel } from '../model/types.ts';
import { copyFileInto, readCsvHeader, type CopyFigures } from './copy-in.ts';
import {
  cascadeTargetsSql,
  clusterIndexSql,
  clusterSql,
  setWithoutClusterSql,
  copyDirectSql,
  copyKeysSql,
  deleteRejectedTargetRowsSql,
  nullMissingInTargetSql,
  numberRejectsByCtidSql,
  recordMissingInTargetSql,
  relationSizeSql,
  copyStagingSql,
  createKeysTableSql,
  createRejectsTableSql,
  createStagingTableSql,
  deleteStaleLinksSql,
  addConstraintSql,
  dropBatchDuplicatesSql,
  dropConstraintSql,
  ownForeignKeysSql,
  dropTempSql,
  insertAllSql,
  insertNewLinksSql,
  targetIsEmptySql,
  mergeShape,
  selectRejectsSql,
  tempNames,
  truncateCascadeSql,
  updateChangedLinksSql,
  upsertSql,
  type CompiledSql,
  type MergeShape,
} from './merge-sql.ts';
import { referenceChecks, resolveMissingReferences, type PlannedCheck } from './references.ts';
import { writeRejectsFile, type RejectLine } from './rejects-file.ts';
import { RecordLines } from './csv-lines.ts';
import type { LoadPhase, TableLoadReport } from './options.ts';

export interface TableLoadInput {
  readonly client: pg.Client;
  readonly paths: RunPaths;
  readonly table: TableModel;
  /** Position in this load: names the temp tables. */
  readonly index: number;
  /** What transform recorded for the table. */
  readonly staged: TransformTableRecord;
  readonly signal?: AbortSignal;
  readonly onPhase: (phase: LoadPhase) => void;
  /** Called with the file being read, so a failure can name it. */
  readonly onFile: (file: string | undefined) => void;
  /** Batches of at least this many rows into an empty table take the bulk paths (tests lower it). */
  readonly bulkRows?: number;
}

export interface TableLoadResult {
  readonly report: TableLoadReport;
  /** The rejects file, written as .partial: commit or discard it once the transaction ended. */
  readonly rejects: { readonly sink: AtomicFileSink; readonly figures: FileFigures } | null;
  /** Temp table name → real table name, for error messages. */
  readonly tempNames: Readonly<Record<string, string>>;
}

const run = async (client: pg.Client, q: CompiledSql): Promise<pg.QueryResult> => client.query(q.sql, [...q.parameters]);

export function tempNamesFor(table: TableModel, index: number): Record<string, string> {
  const names = tempNames(index);
  return { [names.staging]: table.name, [names.keys]: `${table.name} keys`, [names.rejects]: `${table.name} rejects` };
}

export async function loadTable(input: TableLoadInput): Promise<TableLoadResult> {
  const { client, paths, table, staged, signal } = input;
  const names = tempNames(input.index);
  const shape = mergeShape(table, names);
  const csvFile = paths.transformCsv(table.name);
  input.onPhase('copy');
  input.onFile(paths.relative(csvFile));
  await checkHeader(csvFile, table.stagedColumns.map((c) => c.name), paths);

  // ── TRUNCATE … CASCADE (force_reimport + truncate_before_import) ─────────────────────────────
  let truncated: string[] = [];
  if (table.forceReimport && table.truncateBeforeImport) {
    input.onPhase('truncate');
    const found = await run(client, cascadeTargetsSql(shape.target));
    truncated = found.rows.map((r: { name: string }) => r.name);
    await run(client, truncateCascadeSql(shape.target));
  }

  const empty = ((await run(client, targetIsEmptySql(shape))).rows[0] as { empty: boolean }).empty;
  const checks = referenceChecks(table, shape);
  const rejectsTable = ident(names.rejects);
  const finish = async (figures: { copied: CopyFigures; inserted: number; updated: number; deleted: number; duplicates: number; rejected: number; nulled: number }) => {
    const { copied } = figures;
    const rejects = figures.rejected + figures.nulled > 0 ? await writeRejects(input, checks, rejectsTable, copied.multiline) : null;
    const report: TableLoadReport = {
      table: table.name,
      strategy: table.strategy,
      merge: shape.kind,
      staged: copied.rowCount,
      inserted: figures.inserted,
      updated: figures.updated,
      unchanged: copied.rowCount - figures.duplicates - figures.rejected - figures.inserted - figures.updated,
      deleted: figures.deleted,
      rejected: figures.rejected,
      nulled: figures.nulled,
      duplicates: figures.duplicates,
      truncated,
      rejectsFile: rejects ? paths.relative(paths.loadRejects(table.name)) : null,
    };
    for (const t of [shape.staging, ...(shape.keys ? [shape.keys] : []), rejectsTable]) await run(client, dropTempSql(t));
    return { report, rejects, tempNames: tempNamesFor(table, input.index) };
  };

  // ── the direct path: a large batch into a table that has never held a row ──────────────────
  if (empty && staged.rows >= (input.bulkRows ?? BULK_ROWS)) {
    const direct = await loadDirect(input, shape, checks, rejectsTable);
    if (direct) return finish({ ...direct, inserted: direct.copied.rowCount - direct.rejected, updated: 0, deleted: 0, duplicates: 0 });
  }

  // ── stage the CSV in a temp table ──────────────────────────────────────────────────────────
  input.onPhase('copy');
  await run(client, createStagingTableSql(shape));
  const copied = await copyFileInto(client, csvFile, copyStagingSql(shape, COPY_CSV_OPTIONS), signal);
  checkFigures(paths, paths.relative(csvFile), copied, staged.rows, staged.csv?.sha256);
  if (shape.kind === 'delete_and_insert') {
    const keysFile = paths.transformKeys(table.name);
    input.onFile(paths.relative(keysFile));
    await run(client, createKeysTableSql(shape));
    const keys = await copyFileInto(client, keysFile, copyKeysSql(shape, COPY_CSV_OPTIONS), signal);
    checkFigures(paths, paths.relative(keysFile), keys, staged.keys?.records ?? null, staged.keys?.sha256);
  }
  input.onFile(undefined);
  signal?.throwIfAborted();

  // ── duplicate keys inside the batch ─────────────────────────────────────────────────────────
  // An empty table (an initial load, or one just truncated) takes the rows with a plain INSERT;
  // a duplicate key there is rare (transform already drops them) and handled when it happens.
  let duplicates = 0;
  if (!empty) {
    input.onPhase('duplicates');
    duplicates = (await run(client, dropBatchDuplicatesSql(shape))).rowCount ?? 0;
    signal?.throwIfAborted();
  }

  // ── missing references ──────────────────────────────────────────────────────────────────────
  input.onPhase('references');
  await run(client, createRejectsTableSql(rejectsTable));
  const { rejected, nulled } = await resolveMissingReferences(client, shape, rejectsTable, checks);
  signal?.throwIfAborted();

  // ── merge ───────────────────────────────────────────────────────────────────────────────────
  input.onPhase('merge');
  if (empty) {
    const r = await insertIntoEmpty(client, shape, copied.rowCount - rejected, input.bulkRows);
    return finish({ copied, inserted: r.inserted, updated: 0, deleted: 0, duplicates: r.duplicates, rejected, nulled });
  }
  const merged = await merge(client, shape);
  return finish({ copied, ...merged, duplicates, rejected, nulled });
}

/** Writes load/<table>.rejects.ndjson from the temp rejects table (as .partial, see rejects-file.ts). */
async function writeRejects(input: TableLoadInput, checks: readonly PlannedCheck[], rejectsTable: SqlIdent, multiline: boolean): Promise<TableLoadResult['rejects']> {
  const { paths, table } = input;
  const csvFile = paths.transformCsv(table.name);
  const referencesOf = new Map(checks.map((c) => [c.column.name, c.references]));
  const file = paths.relative(csvFile);
  // Rows are numbered by CSV record; records and lines differ only after a multi-line value.
  const lines = multiline ? new RecordLines(csvFile) : null;
  try {
    return await writeRejectsFile(
      input.client,
      selectRejectsSql(rejectsTable),
      paths.loadRejects(table.name),
      async (row): Promise<RejectLine> => ({
        table: table.name,
        file,
        line: lines ? await lines.lineOf(Number(row.line)) : Number(row.line),
        column: row.column_name,
        value: row.value,
        references: referencesOf.get(row.column_name) ?? '',
        reason: 'missing_reference',
        action: row.action === 'set_null' ? 'set_null' : 'reject',
      }),
      input.signal,
    );
  } finally {
    await lines?.close();
  }
}

/**
 * The direct path of an initial load: COPY straight into the empty table, then find the missing
 * references there, instead of COPY into a temp table and INSERT … SELECT (the rows are written once,
 * not twice). Only for a table with no page at all, given a new file by CLUSTER first, so the rows
 * lie in file order and ctid order gives each row's CSV record; the
 * table's foreign keys are dropped around it (see insertIntoEmpty) and must therefore be ours.
 * A duplicate key in the batch aborts the COPY: the savepoint undoes it and the caller takes the
 * ordinary path. Returns null when the direct path does not apply.
 */
async function loadDirect(
  input: TableLoadInput,
  shape: MergeShape,
  checks: readonly PlannedCheck[],
  rejectsTable: SqlIdent,
): Promise<{ copied: CopyFigures; rejected: number; nulled: number } | null> {
  const { client, paths, table, staged, signal } = input;
  const size = Number(((await client.query(relationSizeSql().sql, [shape.target])).rows[0] as { size: string }).size);
  if (size !== 0) return null;
  const fks = (await client.query(ownForeignKeysSql().sql, [shape.target])).rows as { name: string | null; definition: string | null; owned: boolean }[];
  // Dropping foreign keys and CLUSTER (below) are for the table's owner only.
  if (fks.some((f) => !f.owned)) return null;
  // Rows must lie in file order for ctid to give each row's CSV record. A COPY into a table whose
  // file predates the transaction may put later rows into earlier pages (the free space map: on
  // PostgreSQL 17 most rows of a large COPY end up out of order); into a file created in this
  // transaction it skips the free space map and appends in order. CLUSTER of the empty table gives
  // it such a file (TRUNCATE would too, but not for a table other tables reference). It needs a
  // btree index; without one, the ordinary path (which numbers rows as it copies them).
  const cluster = (await client.query(clusterIndexSql().sql, [shape.target])).rows[0] as { name: string; clustered: boolean } | undefined;
  if (!cluster) return null;
  await run(client, clusterSql(shape.target, ident(cluster.name)));
  if (!cluster.clustered) await run(client, setWithoutClusterSql(shape.target));
  const dropped = fks.filter((f) => f.name !== null && f.definition !== null) as { name: string; definition: string }[];
  const restore = async () => {
    for (const f of dropped) await run(client, addConstraintSql(shape.target, ident(f.name), f.definition));
  };
  for (const f of dropped) await run(client, dropConstraintSql(shape.target, ident(f.name)));

  const csvFile = paths.transformCsv(table.name);
  input.onFile(paths.relative(csvFile));
  await client.query('SAVEPOINT etl_direct');
  let copied: CopyFigures;
  try {
    copied = await copyFileInto(client, csvFile, copyDirectSql(shape, COPY_CSV_OPTIONS), signal);
  } catch (error) {
    if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
    await client.query('ROLLBACK TO SAVEPOINT etl_direct');
    await client.query('RELEASE SAVEPOINT etl_direct');
    await restore();
    return null;
  }
  await client.query('RELEASE SAVEPOINT etl_direct');
  checkFigures(paths, paths.relative(csvFile), copied, staged.rows, staged.csv?.sha256);
  input.onFile(undefined);
  signal?.throwIfAborted();

  input.onPhase('references');
  await run(client, createRejectsTableSql(rejectsTable));
  let found = 0;
  for (const check of checks) {
    const q = recordMissingInTargetSql(shape, rejectsTable, check, check.action);
    found += (await client.query(q.sql, [...q.parameters])).rowCount ?? 0;
  }
  let rejected = 0;
  let nulled = 0;
  if (found > 0) {
    await run(client, numberRejectsByCtidSql(shape, rejectsTable));
    rejected = (await run(client, deleteRejectedTargetRowsSql(shape, rejectsTable))).rowCount ?? 0;
    const nullable = checks.filter((c) => c.action === 'set_null').map((c) => c.column);
    if (nullable.length > 0) {
      const q = nullMissingInTargetSql(shape, rejectsTable, nullable);
      await client.query(q.sql, [...q.parameters]);
      nulled = found - rejected;
    }
  }
  signal?.throwIfAborted();
  input.onPhase('merge');
  await restore();
  return { copied, rejected, nulled };
}

async function merge(client: pg.Client, shape: MergeShape): Promise<{ inserted: number; updated: number; deleted: number }> {
  if (shape.kind !== 'delete_and_insert') {
    const r = await run(client, upsertSql(shape));
    const row = r.rows[0] as { inserted: string; updated: string };
    return { inserted: Number(row.inserted), updated: Number(row.updated), deleted: 0 };
  }
  // Each staged parent ends with exactly its staged links: stale links go, changed ones are
  // updated in place, new ones come in; links that did not change are not touched.
  const deleted = (await run(client, deleteStaleLinksSql(shape))).rowCount ?? 0;
  const update = updateChangedLinksSql(shape);
  const updated = update ? ((await run(client, update)).rowCount ?? 0) : 0;
  const inserted = (await run(client, insertNewLinksSql(shape))).rowCount ?? 0;
  return { inserted, updated, deleted };
}

/** Below this many rows the per-row foreign-key checks cost less than re-validating the constraints. */
const BULK_ROWS = 20_000;

/**
 * An initial load spends most of its time in PostgreSQL's per-row foreign-key triggers (a lookup
 * and a row lock in the referenced table for every reference). Every reference of the batch has
 * just been checked set-wise (missing ones rejected or set NULL), so for a large batch into an empty
 * table the table's foreign keys are dropped and re-added around the INSERT, inside the transaction:
 * re-adding validates all rows in one join, and a failure still rolls everything back. The
 * constraints come back with the same names and definitions (pg_get_constraintdef). Only the
 * table's owner may do this; anyone else gets the ordinary path.
 */
async function insertIntoEmpty(client: pg.Client, shape: MergeShape, rows: number, bulkRows = BULK_ROWS): Promise<{ inserted: number; duplicates: number }> {
  const fks =
    rows >= bulkRows
      ? ((await client.query(ownForeignKeysSql().sql, [shape.target])).rows as { name: string | null; definition: string | null; owned: boolean }[])
      : [];
  const dropped = fks.filter((f) => f.owned && f.name !== null && f.definition !== null) as { name: string; definition: string }[];
  for (const f of dropped) await run(client, dropConstraintSql(shape.target, ident(f.name)));
  // Optimistic: the batch rarely repeats a key. If it does, the INSERT hits the unique index; the
  // savepoint undoes just that INSERT, the duplicates are resolved as for any load, and it runs again
  // (a conflict on another unique constraint then fails the load, as it must).
  await client.query('SAVEPOINT etl_insert');
  let inserted: number;
  let duplicates = 0;
  try {
    inserted = (await run(client, insertAllSql(shape))).rowCount ?? 0;
  } catch (error) {
    if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
    await client.query('ROLLBACK TO SAVEPOINT etl_insert');
    duplicates = (await run(client, dropBatchDuplicatesSql(shape))).rowCount ?? 0;
    inserted = (await run(client, insertAllSql(shape))).rowCount ?? 0;
  }
  await client.query('RELEASE SAVEPOINT etl_insert');
  for (const f of dropped) await run(client, addConstraintSql(shape.target, ident(f.name), f.definition));
  return { inserted, duplicates };
}

const UNIQUE_VIOLATION = '23505';

async function checkHeader(file: string, expected: readonly string[], paths: RunPaths): Promise<void> {
  let header: string[];
  try {
    header = await readCsvHeader(file);
  } catch (cause) {
    throw new StagingError('staged_file_missing', `cannot read ${paths.relative(file)} of run ${paths.runId}`, { context: { file }, cause });
  }
  if (header.length !== expected.length || header.some((h, i) => h !== expected[i])) {
    throw new StagingError(
      'columns_mismatch',
      `${paths.relative(file)} has columns (${header.join(', ')}) but pipeline.yaml stages (${expected.join(', ')})`,
      { context: { file }, hint: 'load the run with the pipeline.yaml it was transformed with (<run>/pipeline.yaml), or transform it again' },
    );
  }
}

function checkFigures(paths: RunPaths, file: string, got: { rowCount: number; sha256: string }, rows: number | null, sha256: string | undefined): void {
  if (sha256 && got.sha256 !== sha256) {
    throw new StagingError('staged_file_changed', `${file} of run ${paths.runId} changed since transform wrote it (sha256 ${got.sha256}, manifest ${sha256})`, {
      context: { file },
      hint: 'a staged file must not be edited; run `etl transform` again',
    });
  }
  if (rows !== null && got.rowCount !== rows) {
    throw new StagingError('row_count_mismatch', `${file}: COPY read ${got.rowCount} rows, the manifest records ${rows}`, {
      context: { file },
      hint: 'the staged run is inconsistent; run `etl transform` again',
    });
  }
}
