// Dedupe tables: a row is a function of every document of its key (users_logbook: the latest
// logbook document of a (user, day)). The contributions state table (etl_contrib_<table>) keeps the
// row each document contributes; a load replaces the contributions of the documents it staged
// (and of gone ones), and recomputes exactly the keys that were touched, old and new, set-wise:
// the latest contribution wins (greatest latest_by, then greatest `_id`), so a document that moves
// to another day, loses its user or is deleted takes its share of the rollup with it.
import { StagingError } from '../errors/etl-error.ts';
import { compiled, type CompiledQuery } from '../schema/sql.ts';
import { withIndexesBuiltAfter } from './indexes.ts';
import { ownsTable } from './owner.ts';
import { frozenCopyUndone, numberRejectsByCtidSql } from './direct.ts';
import { attemptCopy, binaryEncoders, frozenCopyOptions, type CopyFormat } from './copy-format.ts';
import { analyzeSql, createStageTableSql } from './batch-sql.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import type { CopyFigures } from './copy-in.ts';
import { copyStaged, type StagedFile } from './stage-files.ts';
import { list, type TableShape } from './shape.ts';
import { missingCondition, type PlannedCheck } from './references.ts';
import type { LoadSession } from './session.ts';
import { forgetReadSql, recordGoneSql, type GoneNote } from './gone-documents.ts';


/** Which stored contributions this run replaces: by document (keys file), every one (complete), and gone ones. */
export interface ContributionScope {
  readonly complete: boolean;
  /** The keys temp table holds the scope's document ids. */
  readonly keys: boolean;
  /** The live temp table holds the document ids that still exist (delete propagation). */
  readonly live: boolean;
  /** A repair run: the recompute temp table holds keys to recompute whatever the run stages. */
  readonly recompute?: boolean;
}

function replacedCondition(s: TableShape, scope: ContributionScope): string {
  if (scope.complete) return 'true';
  const doc = s.documentColumn.id;
  const parts: string[] = [];
  if (scope.keys) parts.push(`c.${doc} IN (SELECT k.${doc} FROM ${s.temps.keys} AS k)`);
  if (scope.live) parts.push(`c.${doc} NOT IN (SELECT l.k FROM ${s.temps.live} AS l WHERE l.k IS NOT NULL)`);
  return parts.length ? parts.join(' OR ') : 'false';
}

const state = (s: TableShape) => s.contributions!;
const keyList = (s: TableShape, alias = '') => list(s.key, alias);

/** The keys whose row must be recomputed: those of the replaced contributions and of the staged ones (and a repair's). */
function touchedSql(s: TableShape, scope: ContributionScope): CompiledQuery {
  const asked = scope.recompute ? ` UNION ALL SELECT ${keyList(s, 'r.')} FROM ${s.temps.recompute} AS r` : '';
  return compiled(
    `CREATE TEMP TABLE ${s.temps.touched} ON COMMIT DROP AS SELECT DISTINCT ${keyList(s)} FROM (` +
      `SELECT ${keyList(s, 'c.')} FROM ${state(s)} AS c WHERE ${replacedCondition(s, scope)} ` +
      `UNION ALL SELECT ${keyList(s, 'n.')} FROM ${s.temps.contrib} AS n${asked}) AS x`,
  );
}

/**
 * Replaced contributions (alias d) whose document is gone: not in the live set, or not staged again
 * by a complete read or a repair (which names the documents it did not find as if read).
 */
function goneCondition(s: TableShape, scope: ContributionScope, repair: boolean): string | null {
  const doc = s.documentColumn.id;
  const parts: string[] = [];
  if (scope.complete || repair) parts.push(`NOT EXISTS (SELECT 1 FROM ${s.temps.contrib} AS n WHERE n.${doc} = d.${doc})`);
  if (scope.live) parts.push(`d.${doc} NOT IN (SELECT l.k FROM ${s.temps.live} AS l WHERE l.k IS NOT NULL)`);
  return parts.length ? parts.join(' OR ') : null;
}

/** Removes the replaced contributions, recording the documents found gone (gone-documents.ts). */
function removeReplacedSql(s: TableShape, scope: ContributionScope, note: GoneNote): CompiledQuery {
  const remove = `DELETE FROM ${state(s)} AS c WHERE ${replacedCondition(s, scope)}`;
  const gone = goneCondition(s, scope, note.repair);
  if (!gone) return compiled(remove);
  const doc = s.documentColumn.id;
  return compiled(`WITH d AS (${remove} RETURNING c.${doc}) ${recordGoneSql('d', `d.${doc}`, gone)}`, [s.table.name, note.runId]);
}

/** A dump may repeat an `_id`: the last line wins, as it would in MongoDB's own order. */
function insertStagedSql(s: TableShape): CompiledQuery {
  const doc = s.documentColumn.id;
  return compiled(
    `INSERT INTO ${state(s)} (${doc}, ${list(s.columns)}) SELECT DISTINCT ON (n.${doc}) n.${doc}, ${list(s.columns, 'n.')} ` +
      `FROM ${s.temps.contrib} AS n ORDER BY n.${doc}, n.${s.line} DESC`,
  );
}

/**
 * The batch: for each touched key, its latest contribution. Rows staged by this run keep their line
 * in the contributions file (for the rejects file); the others get a negative, unique one.
 */
function winnersIntoBatchSql(s: TableShape): CompiledQuery {
  const doc = s.documentColumn.id;
  const touched = `(${keyList(s, 'c.')}) IN (SELECT ${keyList(s)} FROM ${s.temps.touched})`;
  return compiled(
    `INSERT INTO ${s.temps.stage} (${s.line}, ${list(s.columns)}) ` +
      `SELECT coalesce(w.line, -row_number() OVER ()), ${list(s.columns, 'w.')} FROM (` +
      keyWinnersSql(s, { select: `n.${s.line} AS line, ${list(s.columns, 'c.')}`, from: `${state(s)} AS c LEFT JOIN ${s.temps.contrib} AS n ON n.${doc} = c.${doc}`, where: touched }) +
      `) AS w`,
  );
}

/** Whether the state holds no contribution, and whether the table holds rows. */
function stateOfSql(s: TableShape): CompiledQuery {
  return compiled(`SELECT NOT EXISTS (SELECT 1 FROM ${state(s)}) AS empty, EXISTS (SELECT 1 FROM ${s.target}) AS rows`);
}

/** COPY of the contributions file straight into the state table, emptied by TRUNCATE in the same subtransaction (rows frozen: direct.ts). */
const copyIntoStateSql = (s: TableShape, format: CopyFormat): string => `COPY ${state(s)} (${s.documentColumn.id}, ${list(s.columns)}) FROM STDIN WITH ${frozenCopyOptions(format)}`;

/** The contributions file's columns: the document's `_id` (text), then the table's. */
const contributionColumns = (s: TableShape) => [{ name: s.documentColumn.name, sqlType: { kind: 'text' } as const }, ...s.table.stagedColumns];

/**
 * The batch when nothing was stored before: each key's latest contribution. Its line column gets
 * the identity's numbers, not the records of the file: numbering all of them would sort the whole
 * state by ctid, and only the rows whose reference is missing need their record (numberFirstRejects).
 */
function stateWinnersIntoBatchSql(s: TableShape): CompiledQuery {
  return compiled(`INSERT INTO ${s.temps.stage} (${list(s.columns)}) ${keyWinnersSql(s)}`);
}

/** The order in which a key's contributions compete: the first one wins (latest_by, then `_id`). */
const winnerOrder = (s: TableShape): string => `c.${s.latestBy!.id} DESC NULLS LAST, c.${s.documentColumn.id} COLLATE "C" DESC`;

/**
 * Each key's winner among the stored contributions (alias c) `where` keeps, one row a key, in key
 * order. What it selects (`select`, default the table's columns) and the FROM (`from`, default the
 * state table alone) vary; every statement that picks winners goes through it, so all pick the same row.
 */
function keyWinnersSql(s: TableShape, parts: { readonly where?: string; readonly select?: string; readonly from?: string } = {}): string {
  const from = parts.from ?? `${state(s)} AS c`;
  const where = parts.where ? `WHERE ${parts.where} ` : '';
  return `SELECT DISTINCT ON (${keyList(s, 'c.')}) ${parts.select ?? list(s.columns, 'c.')} FROM ${from} ${where}ORDER BY ${keyList(s, 'c.')}, ${winnerOrder(s)}`;
}

/**
 * The rows found missing a reference (rejects temp table, still matching the batch by its line):
 * the address of the contribution each comes from, the winner of its key in the state table.
 */
function rejectedWinnersSql(s: TableShape): CompiledQuery {
  const key = s.key.map((c) => `c.${c.id} = st.${c.id}`).join(' AND ');
  return compiled(
    `UPDATE ${s.temps.rejects} AS x SET row_ctid = w.ctid FROM (` +
      keyWinnersSql(s, { select: `st.${s.line} AS line, c.ctid`, from: `${s.temps.stage} AS st JOIN ${state(s)} AS c ON ${key}`, where: `st.${s.line} IN (SELECT line FROM ${s.temps.rejects})` }) +
      `) AS w WHERE w.line = x.line`,
  );
}

/** Call from the keep step of the reference check (the batch still holds the rows): see numberFirstRejects. */
export async function locateFirstRejects(session: LoadSession, shape: TableShape): Promise<void> {
  await session.run(rejectedWinnersSql(shape));
}

/**
 * The contributions file's record of each rejected row, once the batch no longer needs its lines.
 * The state was emptied by TRUNCATE in this transaction, so its file is new and COPY appended the
 * records in file order: the n-th row by ctid is record n + 1 (the header is 1).
 */
export async function numberFirstRejects(session: LoadSession, shape: TableShape): Promise<void> {
  await session.run(numberRejectsByCtidSql(shape.temps.rejects, state(shape)));
}

/** The touched keys when nothing was stored before: the batch's, one row each. */
function touchedFromBatchSql(s: TableShape): CompiledQuery {
  return compiled(`CREATE TEMP TABLE ${s.temps.touched} ON COMMIT DROP AS SELECT ${keyList(s)} FROM ${s.temps.stage}`);
}

export interface ContributionOutcome {
  /** Keys recomputed (old and new). */
  readonly touched: number;
  /** Rows of the batch: the touched keys that still have a contribution. */
  readonly batchRows: number;
  /** Staged contributions that lost to another staged one of the same key. */
  readonly superseded: number;
}

function supersededSql(s: TableShape): CompiledQuery {
  return compiled(`SELECT (count(*) - count(DISTINCT (${keyList(s)})))::bigint AS n FROM ${s.temps.contrib}`);
}

/** Replaces the contributions, then fills the batch with the recomputed rows of the touched keys. */
export async function contributionsIntoBatch(session: LoadSession, shape: TableShape, scope: ContributionScope, gone: GoneNote): Promise<ContributionOutcome> {
  const touched = (await session.run(touchedSql(shape, scope))).rowCount ?? 0;
  await session.run(analyzeSql(shape.temps.touched));
  const forgetRead = forgetReadSql(shape, scope, { from: shape.temps.contrib, column: shape.documentColumn.id }, gone);
  if (forgetRead) await session.run(forgetRead);
  await session.run(removeReplacedSql(shape, scope, gone));
  await session.run(insertStagedSql(shape));
  await session.run(createStageTableSql(shape));
  const batchRows = await session.count(winnersIntoBatchSql(shape));
  await session.run(analyzeSql(shape.temps.stage));
  const superseded = Number(((await session.run(supersededSql(shape))).rows[0] as { n: string }).n);
  return { touched, batchRows, superseded };
}

/**
 * Whether nothing is stored yet. Refused: an incremental run of a table holding rows whose
 * contributions were never kept (loaded by an older etl): its rows cannot be recomputed.
 */
export async function nothingStored(session: LoadSession, shape: TableShape, complete: boolean): Promise<boolean> {
  const stored = (await session.run(stateOfSql(shape))).rows[0] as { empty: boolean; rows: boolean };
  if (!complete && stored.empty && stored.rows) {
    throw new StagingError('contributions_missing', `${shape.table.name} holds rows loaded before etl kept the contributions of its documents, so an incremental run cannot recompute them`, {
      context: { table: shape.table.name },
      hint: `read its collection in full once: etl run --full --tables ${shape.table.name}`,
    });
  }
  return stored.empty;
}

/** A contribution (alias m) misses one of the references `checks` (none of them into the table itself). */
const missesReference = (s: TableShape, checks: readonly PlannedCheck[]): string => checks.map((r) => `(${missingCondition(s, r, 'm')})`).join(' OR ');

/**
 * The winners of the suspect keys (those a contribution of which misses a reference) into the
 * batch: only their rows can miss one. Any other key's winner has every reference it names.
 */
function suspectWinnersIntoBatchSql(s: TableShape, checks: readonly PlannedCheck[]): CompiledQuery {
  const suspect = `(${keyList(s, 'c.')}) IN (SELECT ${keyList(s, 'm.')} FROM ${state(s)} AS m WHERE ${missesReference(s, checks)})`;
  return compiled(`INSERT INTO ${s.temps.stage} (${list(s.columns)}) ${keyWinnersSql(s, { where: suspect })}`);
}

/** A suspect key with a NULL part: equality (IN above) cannot find its contributions. */
function suspectWithNullKeySql(s: TableShape, checks: readonly PlannedCheck[]): CompiledQuery {
  const nullPart = s.key.map((c) => `m.${c.id} IS NULL`).join(' OR ');
  return compiled(`SELECT EXISTS (SELECT 1 FROM ${state(s)} AS m WHERE (${nullPart}) AND (${missesReference(s, checks)})) AS any`);
}

/**
 * Every key's winner into the (empty) target, straight from the sort and in its order (key order, as
 * the batch gave them), but for the suspect keys whose winner was refused (the batch no longer holds
 * it). A key with a NULL part is never suspect (IS NOT TRUE keeps it).
 */
export function winnersIntoEmptyTargetSql(s: TableShape): CompiledQuery {
  return compiled(
    `INSERT INTO ${s.target} (${list(s.columns)}) SELECT ${list(s.columns, 'w.')} FROM (${keyWinnersSql(s)}) AS w ` +
      `WHERE ((${keyList(s, 'w.')}) IN (SELECT ${keyList(s, 'k.')} FROM ${s.temps.suspects} AS k) ` +
      `AND (${keyList(s, 'w.')}) NOT IN (SELECT ${keyList(s, 'b.')} FROM ${s.temps.stage} AS b)) IS NOT TRUE`,
  );
}

/** The suspect keys' winners whose set_null references the batch NULLed: as the batch holds them. */
export function nulledWinnersSql(s: TableShape): CompiledQuery {
  const others = s.others;
  return compiled(
    `UPDATE ${s.target} AS t SET ${others.map((c) => `${c.id} = b.${c.id}`).join(', ')} FROM ${s.temps.stage} AS b ` +
      `WHERE ${s.key.map((c) => `t.${c.id} = b.${c.id}`).join(' AND ')} AND (${list(others, 't.')}) IS DISTINCT FROM (${list(others, 'b.')})`,
  );
}

/**
 * The batch of a first load that reads everything into an empty table: the suspect keys' winners
 * only (their keys kept aside for winnersIntoEmptyTargetSql), so that the other rows go from the
 * sort straight into the target instead of through the batch. False (nothing done) when a suspect
 * key has a NULL part: then every winner goes through the batch.
 */
async function suspectsIntoBatch(session: LoadSession, shape: TableShape, checks: readonly PlannedCheck[]): Promise<boolean> {
  if (checks.length > 0 && ((await session.run(suspectWithNullKeySql(shape, checks))).rows[0] as { any: boolean }).any) return false;
  await session.run(createStageTableSql(shape));
  if (checks.length > 0) await session.run(suspectWinnersIntoBatchSql(shape, checks));
  await session.run(compiled(`CREATE TEMP TABLE ${shape.temps.suspects} ON COMMIT DROP AS SELECT ${keyList(shape)} FROM ${shape.temps.stage}`));
  return true;
}

/** How a first load's batch was filled (firstContributions). */
export interface FirstContributions extends ContributionOutcome {
  readonly copied: CopyFigures;
  /**
   * The batch holds the suspect keys' winners only (suspectsIntoBatch): merge with
   * winnersIntoEmptyTargetSql; touched, batchRows and superseded are then known only after it.
   */
  readonly suspectsOnly: boolean;
}

/**
 * Nothing stored yet (a first load): the contributions file is COPYed straight into the state
 * table (no temp table, no INSERT … SELECT, its indexes built once after), and the batch is each
 * key's latest contribution (the same rows as the general path; the lines of the rows found missing a
 * reference are the same too once numberFirstRejects ran); or, when `intoEmpty` (a complete read into
 * an empty table whose references are all to other tables, none set NULL in a key column), the suspect
 * keys' winners only. Null when the file repeats a document (the primary key cannot be re-created)
 * or FREEZE was refused: the savepoint undoes it all, and the general path (which keeps a repeated
 * document's last line) runs instead.
 */
export async function firstContributions(
  session: LoadSession,
  paths: RunPaths,
  shape: TableShape,
  file: StagedFile,
  scope: { readonly complete: boolean; readonly intoEmpty: boolean; readonly checks: readonly PlannedCheck[] },
): Promise<FirstContributions | null> {
  // Emptying and re-indexing the state table are for its owner only.
  if (!(await ownsTable(session, state(shape)))) return null;
  const binary = await binaryEncoders(session, state(shape), contributionColumns(shape));
  const copied = await attemptCopy(session, 'etl_contrib', frozenCopyUndone, binary, async (format) => {
    await session.run(compiled(`TRUNCATE ${state(shape)}`));
    return withIndexesBuiltAfter(session, state(shape), () => copyStaged(session, paths, file, copyIntoStateSql(shape, format), format.binary));
  });
  if (copied === null) return null;
  if (scope.intoEmpty && scope.complete && (await suspectsIntoBatch(session, shape, scope.checks))) {
    return { copied, suspectsOnly: true, touched: 0, batchRows: 0, superseded: 0 };
  }
  await session.run(createStageTableSql(shape));
  const batchRows = await session.count(stateWinnersIntoBatchSql(shape));
  await session.run(analyzeSql(shape.temps.stage));
  // Only an incremental run's pending entries are forgotten by touched key (leave.ts); a complete
  // read forgets them all, and its target, empty or not, is compared with the batch itself.
  if (!scope.complete) await session.run(touchedFromBatchSql(shape));
  // One batch row per staged key: the other contributions of a key lost to it.
  return { copied, suspectsOnly: false, touched: batchRows, batchRows, superseded: copied.rowCount - batchRows };
}
