// Two source documents whose `_id`s convert to one key (`"77"` and Int32 77 → `77`; an ObjectId and
// the string of its hex; a string before and after nul_character: strip) must not silently become
// one row. The keys file names each document's `_id` beside its key when they differ; etl_claims
// keeps those documents, and every document of a key two of them claim. A key two documents claim —
// in this run's keys file, or one of them staged now and the other loaded before — is contested:
// every row of it is refused (load/<table>.rejects.ndjson, reason `duplicate_key`, naming every
// document), and the row already there leaves with it (leave.ts: its key is in the scope, and the
// batch no longer holds it). Claims of documents a complete read no longer finds are dropped, and
// so are those of the claimants an incremental read asked for (extract reads every document of a
// contested key, whatever its dates) and did not find: the contest ends, the other document's row lands.
import { CLAIMS_TABLE } from '../schema/state-tables.ts';
import { compiled, ident, type CompiledQuery } from '../schema/sql.ts';
import type { LoadSession } from './session.ts';
import { keyObject, type TableShape } from './shape.ts';
import { createRejectsTableSql } from './references.ts';
import { OBJECT_ID_IDENTITY_PATTERN } from '../staging/document-identity.ts';

const claims = ident(CLAIMS_TABLE);
/** Whether etl_claims holds claims of the table $1 (from earlier loads). */
const KEPT_CLAIMS = `EXISTS (SELECT 1 FROM ${claims} WHERE table_name = $1)`;

/** A key's text as etl_claims stores it, and each document's `_id` (its key's text for an ObjectId). */
const keyText = (s: TableShape, alias: string) => `${alias}.${s.docKey!.id}::text`;
const who = (s: TableShape, alias: string) => `coalesce(${alias}.${s.documentColumn.id}, ${keyText(s, alias)})`;
/** A key an ObjectId could have produced, owning a row no claim names. */
const OBJECT_ID_TEXT = `'${OBJECT_ID_IDENTITY_PATTERN}'`;

/** Whether the batch names a document of another `_id` type, and (unless known) whether claims are kept. */
function claimProbeSql(s: TableShape, keptKnown: boolean): CompiledQuery {
  const kept = keptKnown ? '' : `, ${KEPT_CLAIMS} AS kept`;
  return compiled(`SELECT EXISTS (SELECT 1 FROM ${s.temps.keys} AS k WHERE k.${s.documentColumn.id} IS NOT NULL) AS identities${kept}`, keptKnown ? [] : [s.table.name]);
}

/** The keys more than one document claims: in the batch, kept in etl_claims, or owning a row already. */
function contestedSql(s: TableShape): CompiledQuery {
  const k = s.docKey!.id;
  return compiled(
    `CREATE TEMP TABLE ${s.temps.contested} ON COMMIT DROP AS SELECT x.key FROM (` +
      `SELECT ${keyText(s, 'k')} AS key, ${who(s, 'k')} AS who FROM ${s.temps.keys} AS k ` +
      `UNION SELECT c.key, c.identity FROM ${claims} AS c WHERE c.table_name = $1 AND c.key IN (SELECT ${keyText(s, 'k')} FROM ${s.temps.keys} AS k) ` +
      `UNION SELECT ${keyText(s, 't')}, ${keyText(s, 't')} FROM ${s.target} AS t WHERE t.${k} IN (SELECT k.${k} FROM ${s.temps.keys} AS k) ` +
      `AND ${keyText(s, 't')} ~ ${OBJECT_ID_TEXT} AND NOT EXISTS (SELECT 1 FROM ${claims} AS c WHERE c.table_name = $1 AND c.key = ${keyText(s, 't')})` +
      `) AS x GROUP BY x.key HAVING count(DISTINCT x.who) > 1`,
    [s.table.name],
  );
}

/** Keeps the documents of another `_id` type, and every claimant of a contested key. */
function recordClaimsSql(s: TableShape, runId: string): CompiledQuery {
  return compiled(
    `INSERT INTO ${claims} (table_name, key, identity, run_id, seen_run) SELECT DISTINCT $1, x.key, x.who, $2, $2 FROM (` +
      `SELECT ${keyText(s, 'k')} AS key, ${who(s, 'k')} AS who FROM ${s.temps.keys} AS k ` +
      `WHERE k.${s.documentColumn.id} IS NOT NULL OR ${keyText(s, 'k')} IN (SELECT key FROM ${s.temps.contested}) ` +
      `UNION SELECT ${keyText(s, 't')}, ${keyText(s, 't')} FROM ${s.target} AS t WHERE ${keyText(s, 't')} IN (SELECT key FROM ${s.temps.contested})` +
      `) AS x ON CONFLICT (table_name, key, identity) DO UPDATE SET seen_run = EXCLUDED.seen_run`,
    [s.table.name, runId],
  );
}

/** The batch rows of contested keys, refused (into the rejects temp table, then out of the batch). */
function refuseContestedSql(s: TableShape): CompiledQuery[] {
  const c = s.docKey!;
  const key = keyObject(s.key, 'st', 3);
  return [
    compiled(
      `INSERT INTO ${s.temps.rejects} (line, column_name, value, action, reason, documents, row_key) ` +
        `SELECT st.${s.line}, $1, ${keyText(s, 'st')}, 'reject', 'duplicate_key', ` +
        `(SELECT jsonb_agg(DISTINCT cl.identity ORDER BY cl.identity) FROM ${claims} AS cl WHERE cl.table_name = $2 AND cl.key = ${keyText(s, 'st')}), ${key.sql} ` +
        `FROM ${s.temps.stage} AS st WHERE ${keyText(s, 'st')} IN (SELECT key FROM ${s.temps.contested})`,
      [c.name, s.table.name, ...key.names],
    ),
    compiled(`DELETE FROM ${s.temps.stage} AS st WHERE ${keyText(s, 'st')} IN (SELECT key FROM ${s.temps.contested})`),
  ];
}

/** A complete read names every document there is: claims of the others are stale. */
function forgetUnreadSql(s: TableShape): CompiledQuery {
  return compiled(
    `DELETE FROM ${claims} AS c WHERE c.table_name = $1 AND (c.key, c.identity) NOT IN (SELECT ${keyText(s, 'k')}, ${who(s, 'k')} FROM ${s.temps.keys} AS k)`,
    [s.table.name],
  );
}

/** Keys the live set does not hold any more: no document claims them. */
function forgetGoneSql(s: TableShape): CompiledQuery {
  return compiled(`DELETE FROM ${claims} AS c WHERE c.table_name = $1 AND c.key NOT IN (SELECT l.k::text FROM ${s.temps.live} AS l WHERE l.k IS NOT NULL)`, [s.table.name]);
}

/**
 * The claimants of contested keys the extract asked for ($2) that the keys file does not name: not
 * found, they are gone, and so are their claims (the contest ends; the other document, read too, lands).
 */
function forgetMissingClaimantsSql(s: TableShape, claimants: readonly string[]): CompiledQuery {
  return compiled(
    `DELETE FROM ${claims} AS c WHERE c.table_name = $1 AND c.identity = ANY($2::text[]) ` +
      `AND (c.key, c.identity) NOT IN (SELECT ${keyText(s, 'k')}, ${who(s, 'k')} FROM ${s.temps.keys} AS k)`,
    [s.table.name, claimants],
  );
}

export interface ClaimScope {
  readonly complete: boolean;
  /** The claimants of contested keys the extract asked for (the table's transform record). */
  readonly claimants: readonly string[];
  /** The keys file is in its temp table. */
  readonly keys: boolean;
  readonly live: boolean;
  /** What claimsOfBatch found. */
  readonly claims: ClaimsOfBatch;
}

export interface ClaimsOfBatch {
  /** etl_claims holds claims of the table (from earlier loads). */
  readonly kept: boolean;
  /** A key of this batch can be contested: else the direct path may load it, and nothing is refused. */
  readonly contestable: boolean;
}

/** Are claims of this table kept from earlier loads? */
export async function claimsKept(session: LoadSession, shape: TableShape): Promise<boolean> {
  const r = await session.run(compiled(`SELECT ${KEPT_CLAIMS} AS any`, [shape.table.name]));
  return (r.rows[0] as { any: boolean }).any;
}

/**
 * The claims a batch meets, once its keys file is in the temp table (`keyRows` rows). `kept`: what
 * claimsKept answered, when it was asked (etl_claims is asked once a table).
 */
export async function claimsOfBatch(session: LoadSession, shape: TableShape, keyRows: number, kept: boolean | null): Promise<ClaimsOfBatch> {
  if (!shape.docKey) return { kept: false, contestable: false };
  if (kept === true) return { kept, contestable: true };
  if (kept === false && keyRows === 0) return { kept, contestable: false };
  const row = (await session.run(claimProbeSql(shape, kept !== null))).rows[0] as { identities: boolean; kept?: boolean };
  const isKept = kept ?? row.kept === true;
  return { kept: isKept, contestable: row.identities || isKept };
}

/**
 * Refuses the batch rows of contested keys (the batch and the keys file are in their temp tables);
 * returns how many rows were refused. Tables whose documents no column names have nothing to claim.
 */
export async function refuseContestedKeys(session: LoadSession, shape: TableShape, scope: ClaimScope, runId: string): Promise<number> {
  if (!shape.docKey || !scope.keys) return 0;
  if (scope.live && scope.claims.kept) await session.run(forgetGoneSql(shape));
  if (scope.complete && scope.claims.kept) await session.run(forgetUnreadSql(shape));
  if (scope.claimants.length > 0 && scope.claims.kept) await session.run(forgetMissingClaimantsSql(shape, scope.claimants));
  if (!scope.claims.contestable) return 0;
  const contested = (await session.run(contestedSql(shape))).rowCount ?? 0;
  await session.run(recordClaimsSql(shape, runId));
  if (contested === 0) return 0;
  await session.run(createRejectsTableSql(shape.temps.rejects));
  const [record, remove] = refuseContestedSql(shape);
  await session.run(record!);
  return session.count(remove!);
}
