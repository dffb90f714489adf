// The direct path of an initial load: a large batch into a table that has never held a row is
// COPYed straight into the table, and the missing references are refused or NULLed there, instead
// of COPY into a temp table and INSERT … SELECT (the rows are written once, not twice). The outcome
// is the same as the ordinary path's, rejects file and etl_pending included.
import { compiled, ident, type CompiledQuery, type SqlIdent } from '../schema/sql.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import { copyStaged, type StagedFile } from './stage-files.ts';
import { attemptCopy, binaryEncoders, frozenCopyOptions } from './copy-format.ts';
import type { CopyFigures } from './copy-in.ts';
import { droppableForeignKeys, isUniqueViolation, runDeferredChecks, withoutForeignKeys } from './merge.ts';
import { holdRejected } from './pending.ts';
import { withIndexesBuiltAfter } from './indexes.ts';
import { withReferencesCheckedByLoad } from './checked-references.ts';
import { recordMissingReferences, type PlannedCheck } from './references.ts';
import { list, type ShapeColumn, type TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';

/** Bytes the table occupies: 0 means no page at all, so a COPY fills pages in file order. */
const relationSizeSql = (s: TableShape): CompiledQuery => compiled(`SELECT pg_relation_size($1::regclass) AS size`, [s.target]);

/**
 * The index to CLUSTER the empty table on: the one it is already clustered on if any (then CLUSTER
 * changes nothing in the catalog), else the primary key, else another plain btree index. No row:
 * the table has no index CLUSTER can use.
 */
const clusterIndexSql = (s: TableShape): CompiledQuery =>
  compiled(
    `SELECT c.relname AS name, i.indisclustered AS clustered FROM pg_index i ` +
      `JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam ` +
      `WHERE i.indrelid = $1::regclass AND i.indisvalid AND i.indpred IS NULL AND a.amname = 'btree' ` +
      `ORDER BY i.indisclustered DESC, i.indisprimary DESC, c.relname LIMIT 1`,
    [s.target],
  );

/**
 * The CSV record of each recorded row. The table got a new, empty file in this transaction before
 * the COPY, so the COPY appended rows in file order and the n-th row by ctid is the n-th record
 * (header = record 1). Only the recorded rows are numbered: each counts the rows between the previous
 * recorded row and itself (a TID range scan, no sort), and a running sum gives the record.
 */
export function numberRejectsByCtidSql(x: SqlIdent, table: SqlIdent): CompiledQuery {
  return compiled(
    `UPDATE ${x} AS x SET line = n.line FROM (` +
      `SELECT d.row_ctid, 1 + sum(d.rows) OVER (ORDER BY d.row_ctid) AS line FROM (` +
      `SELECT r.row_ctid, (SELECT count(*) FROM ${table} AS t WHERE t.ctid > r.previous AND t.ctid <= r.row_ctid) AS rows FROM (` +
      `SELECT row_ctid, lag(row_ctid, 1, '(0,0)'::tid) OVER (ORDER BY row_ctid) AS previous FROM (SELECT DISTINCT row_ctid FROM ${x}) AS u` +
      `) AS r) AS d) AS n WHERE n.row_ctid = x.row_ctid`,
  );
}

const deleteRejectedTargetRowsSql = (s: TableShape): CompiledQuery =>
  compiled(`DELETE FROM ${s.target} AS t USING ${s.temps.rejects} AS x WHERE x.row_ctid = t.ctid AND x.action = 'reject'`);

/** One UPDATE for every set_null column (an UPDATE moves the row, so a second one could not find it). */
function nullMissingInTargetSql(s: TableShape, columns: readonly ShapeColumn[]): CompiledQuery {
  const set = columns.map((c, i) => `${c.id} = CASE WHEN m.n${i} THEN NULL ELSE t.${c.id} END`).join(', ');
  const flags = columns.map((_, i) => `bool_or(column_name = $${i + 1}) AS n${i}`).join(', ');
  return compiled(
    `UPDATE ${s.target} AS t SET ${set} FROM (SELECT row_ctid, ${flags} FROM ${s.temps.rejects} WHERE action = 'set_null' GROUP BY row_ctid) AS m WHERE t.ctid = m.row_ctid`,
    columns.map((c) => c.name),
  );
}

export interface DirectOutcome {
  readonly copied: CopyFigures;
  readonly rejected: number;
  readonly nulled: number;
}

/**
 * Why a frozen COPY's savepoint undoes it, the ordinary path running instead: a key repeated, or
 * FREEZE refused (object_not_in_prerequisite_state: a cursor of this session still open).
 */
export const frozenCopyUndone = (error: unknown): boolean => isUniqueViolation(error) || (error as { code?: string }).code === '55000';

/**
 * Rows must lie in file order for ctid to give each row's CSV record. A COPY into a table whose file
 * predates the transaction may put later rows into earlier pages (the free space map: on PostgreSQL
 * 17 most rows of a large COPY end up out of order); into a file created in this transaction it
 * appends in order. CLUSTER of the empty table gives it such a file (TRUNCATE would too, but not for
 * a table other tables reference), in the COPY's subtransaction so that the COPY may freeze its rows.
 * Null when the direct path does not apply.
 */
async function emptyTableCluster(session: LoadSession, shape: TableShape): Promise<ClusterIndex | null> {
  const size = Number(((await session.run(relationSizeSql(shape))).rows[0] as { size: string }).size);
  if (size !== 0) return null;
  return ((await session.run(clusterIndexSql(shape))).rows[0] as ClusterIndex | undefined) ?? null;
}

interface ClusterIndex {
  readonly name: string;
  readonly clustered: boolean;
}

/**
 * COPY straight into the table, its indexes built after (in binary when it can: copy-format.ts);
 * null when the savepoint undid it (frozenCopyUndone).
 */
async function copyDirect(session: LoadSession, paths: RunPaths, shape: TableShape, staged: StagedFile, cluster: ClusterIndex): Promise<CopyFigures | null> {
  const binary = await binaryEncoders(session, shape.target, shape.table.stagedColumns);
  return attemptCopy(session, 'etl_direct', frozenCopyUndone, binary, async (format) => {
    await session.run(compiled(`CLUSTER ${shape.target} USING ${ident(cluster.name)}`));
    if (!cluster.clustered) await session.run(compiled(`ALTER TABLE ${shape.target} SET WITHOUT CLUSTER`));
    const copySql = `COPY ${shape.target} (${list(shape.columns)}) FROM STDIN WITH ${frozenCopyOptions(format)}`;
    return withIndexesBuiltAfter(session, shape.target, () => copyStaged(session, paths, staged, copySql, format.binary));
  });
}

/** Refuses or NULLs the missing references of the copied rows, keeping them in etl_pending. */
async function resolveInTarget(session: LoadSession, shape: TableShape, checks: readonly PlannedCheck[], runId: string): Promise<{ rejected: number; nulled: number }> {
  const found = await recordMissingReferences(session, shape, checks, 'target');
  if (found === 0) return { rejected: 0, nulled: 0 };
  await session.run(numberRejectsByCtidSql(shape.temps.rejects, shape.target));
  await holdRejected(session, shape, 'target', runId);
  const rejected = await session.count(deleteRejectedTargetRowsSql(shape));
  // Each deleted row queued a check for the tables referencing this one, which keeps PostgreSQL from
  // altering it (re-adding its foreign keys). The table held no row before this COPY, so no other
  // table can reference the rows just deleted: the checks pass now as they would at COMMIT.
  if (rejected > 0) await runDeferredChecks(session, shape, 'referencing');
  const nullable = checks.filter((c) => c.action === 'set_null').map((c) => c.column);
  if (nullable.length > 0) await session.run(nullMissingInTargetSql(shape, nullable));
  return { rejected, nulled: found - rejected };
}

/** The direct path, or null when it does not apply (the caller then takes the ordinary path). */
export async function loadDirect(
  session: LoadSession,
  paths: RunPaths,
  shape: TableShape,
  staged: StagedFile,
  checks: readonly PlannedCheck[],
  runId: string,
): Promise<DirectOutcome | null> {
  // Dropping foreign keys and CLUSTER are for the table's owner only.
  const fks = await droppableForeignKeys(session, shape);
  const cluster = fks === null ? null : await emptyTableCluster(session, shape);
  if (fks === null || cluster === null) return null;
  const work = async (): Promise<DirectOutcome | null> => {
    const copied = await copyDirect(session, paths, shape, staged, cluster);
    if (!copied) return null;
    session.signal?.throwIfAborted();
    return { copied, ...(await resolveInTarget(session, shape, checks, runId)) };
  };
  return withReferencesCheckedByLoad(session, shape, checks, work, () => withoutForeignKeys(session, shape, fks, work));
}
