// Dedupe tables: a row is a function of every document of its key (users_logbook: the latest
// logbook document of a (user, day)). The contributions state table (etl_contrib_<table>) keeps the
// row each document contributes; a load replaces the contributions of the documents it staged
// (and of gone ones), and recomputes exactly the keys that were touched, old and new, set-wise:
// the latest contribution wins (greatest latest_by, then greatest `_id`), so a document that moves
// to another day, loses its user or is deleted takes its share of the rollup with it.
import { StagingError } from '../model/errors.ts';
import { compiled, type CompiledQuery } from '../schema/sql.ts';
import { analyzeSql, createStageTableSql } from './batch-sql.ts';
import { list, type TableShape } from './shape.ts';
import type { LoadSession } from './session.ts';

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

function removeReplacedSql(s: TableShape, scope: ContributionScope): CompiledQuery {
  return compiled(`DELETE FROM ${state(s)} AS c WHERE ${replacedCondition(s, scope)}`);
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
  const latest = s.latestBy!.id;
  return compiled(
    `INSERT INTO ${s.temps.stage} (${s.line}, ${list(s.columns)}) ` +
      `SELECT coalesce(w.line, -row_number() OVER ()), ${list(s.columns, 'w.')} FROM (` +
      `SELECT DISTINCT ON (${keyList(s, 'c.')}) n.${s.line} AS line, ${list(s.columns, 'c.')} FROM ${state(s)} AS c ` +
      `LEFT JOIN ${s.temps.contrib} AS n ON n.${doc} = c.${doc} ` +
      `WHERE (${keyList(s, 'c.')}) IN (SELECT ${keyList(s)} FROM ${s.temps.touched}) ` +
      `ORDER BY ${keyList(s, 'c.')}, c.${latest} DESC NULLS LAST, c.${doc} COLLATE "C" DESC) AS w`,
  );
}

/** The state is empty while the table holds rows: it was loaded before contributions were kept. */
function missingStateSql(s: TableShape): CompiledQuery {
  return compiled(`SELECT NOT EXISTS (SELECT 1 FROM ${state(s)}) AND EXISTS (SELECT 1 FROM ${s.target}) AS missing`);
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
export async function contributionsIntoBatch(session: LoadSession, shape: TableShape, scope: ContributionScope): Promise<ContributionOutcome> {
  if (!scope.complete && ((await session.run(missingStateSql(shape))).rows[0] as { missing: boolean }).missing) {
    throw new StagingError('contributions_missing', `${shape.table.name} holds rows loaded before etl kept the contributions of its documents, so an incremental run cannot recompute them`, {
      context: { table: shape.table.name },
      hint: `read its collection in full once: etl run --full --tables ${shape.table.name}`,
    });
  }
  const touched = (await session.run(touchedSql(shape, scope))).rowCount ?? 0;
  await session.run(analyzeSql(shape.temps.touched));
  await session.run(removeReplacedSql(shape, scope));
  await session.run(insertStagedSql(shape));
  await session.run(createStageTableSql(shape));
  const batchRows = await session.count(winnersIntoBatchSql(shape));
  await session.run(analyzeSql(shape.temps.stage));
  const superseded = Number(((await session.run(supersededSql(shape))).rows[0] as { n: string }).n);
  return { touched, batchRows, superseded };
}
