// What `etl repair` re-reads for one table, from what `etl diff --deep` found: every differing row
// (missing, extra, different; never a refused one) traced back to the source documents that own it,
// listed in full (not a sample), inside the diff's own transaction and temporary tables. A row left
// by an older version of a document rejected today is no difference either, but a full run has none:
// its document is read again too, and the load removes the row.
//
//   upsert, explode   a row belongs to the document named by its document key (the id, the parent):
//                     missing and different rows carry their document's `_id` (the expected side);
//                     an extra row's key is turned back into an `_id` — the one etl_claims keeps for
//                     it (documents whose `_id` is not an ObjectId), else an ObjectId for 24 hex
//                     digits, else the string itself. Re-reading it, or finding it gone, replaces
//                     what it owns.
//   dedupe            a row belongs to every document of its key: those MongoDB maps to it now
//                     (the expected side) and those etl_contrib_<table> holds for it (they may have
//                     moved away or be gone). The key itself is also asked to be recomputed, so a
//                     key no document contributes to (a row inserted by hand) leaves too.
import { documentIdValue, guessedIdentity } from '../staging/document-identity.ts';
import type pg from 'pg';
import type { TableModel } from '../model/types.ts';
import { existingTables } from '../schema/catalog.ts';
import { CLAIMS_TABLE, contributionsTableName, documentIdColumn, PENDING_TABLE } from '../schema/state-tables.ts';
import { ident } from '../schema/sql.ts';
import { canonical, CHANGED, EXPECTED, EXTRA, MISSING, ROWS, type TableDiffSql } from './diff-sql.ts';

const REPAIR_KEYS = ident('etl_diff_repair');

/** The documents and keys a repair of one table takes up. */
export interface TableRepairScope {
  readonly table: string;
  readonly collection: string;
  /** The documents to re-read, by `_id` text (24 hex for an ObjectId, else canonical Extended JSON). */
  readonly documents: readonly string[];
  /** dedupe tables: the differing keys, as the PostgreSQL text of the key columns. */
  readonly recompute: readonly (readonly (string | null)[])[];
}

const keyCols = (q: TableDiffSql, alias?: string) => q.keyIndexes.map((_, n) => `${alias ? `${alias}.` : ''}${ident(`k${n}`)}`).join(', ');
const keyJoin = (q: TableDiffSql, a: string, b: string) => q.keyIndexes.map((_, n) => `${a}.${ident(`k${n}`)} = ${b}.${ident(`k${n}`)}`).join(' AND ');

/**
 * The keys to repair: missing (not refused), extra and different rows, and the rows whose reference
 * points at a row this repair brings back in a table before it (`restored`: the condition on the
 * expected row `r`, null when none): refused now, or NULL by set_null, they load once it is back.
 */
function repairKeysSql(q: TableDiffSql, deep: boolean, restored: string | null, pendingParam: number | null): string {
  const k = keyCols(q);
  return (
    `CREATE TEMP TABLE ${REPAIR_KEYS} AS SELECT ${k} FROM ${MISSING} WHERE absent IS NULL ` +
    `UNION SELECT ${k} FROM ${EXTRA}${deep ? ` UNION SELECT ${k} FROM ${CHANGED}` : ''}` +
    `${restored ? ` UNION SELECT ${keyCols(q, 'r')} FROM ${ROWS} r WHERE ${restored}` : ''}` +
    ` UNION SELECT * FROM (${q.staleRejected()}) stale` +
    `${pendingParam !== null ? ` UNION SELECT * FROM (${q.pendingDrift(PENDING, pendingParam)}) pending` : ''}`
  );
}

const PENDING = ident(PENDING_TABLE);

/** upsert, explode: the owners of the etl_pending entries among the keys (a document deleted from MongoDB has no expected row to name it). */
const pendingOwnersSql = (q: TableDiffSql) =>
  `SELECT p.owner AS src FROM ${PENDING} p JOIN ${REPAIR_KEYS} x ON ${q.keyIndexes.map((_, n) => `p.row_key->>${n} = x.${ident(`k${n}`)}`).join(' AND ')} WHERE p.table_name = $1 AND p.owner IS NOT NULL`;

/**
 * The documents of the keys' expected rows (upsert, explode: one each), and of the rows an older
 * version of a document now rejected left (named by the row's document key: the id, the parent).
 */
function expectedRowsSql(q: TableDiffSql): string {
  const rows = `SELECT r.${ident('_src')} AS src FROM ${ROWS} r JOIN ${REPAIR_KEYS} x ON ${keyJoin(q, 'r', 'x')}`;
  const n = q.keyNames.indexOf(q.table.documentKey ?? '');
  if (n < 0) return rows;
  const i = q.keyIndexes[n]!;
  return (
    `${rows} UNION SELECT e.${ident('_src')} FROM ${EXPECTED} e WHERE e.${ident('_status')} IN ('rejected', 'rejected_document') ` +
    `AND ${canonical('e', i, q.columns[i]!.sqlType)} IN (SELECT x.${ident(`k${n}`)} FROM ${REPAIR_KEYS} x)`
  );
}

/** Whether PostgreSQL holds rows of documents transform rejects today that a full run does not have. */
const holdsStaleRejectedSql = (q: TableDiffSql) => `SELECT EXISTS (${q.staleRejected()}) AS held`;

/** Keys of rows the repair loads that PostgreSQL lacks now (a one-column key): rows of later tables pointing at them load once they are back. */
const restoredKeysSql = (q: TableDiffSql) =>
  `SELECT x.${ident('k0')} AS k FROM ${REPAIR_KEYS} x JOIN ${ROWS} r ON ${keyJoin(q, 'r', 'x')} ` +
  `EXCEPT SELECT a.${ident(q.keyNames[0]!)}::text FROM ${q.target} a`;

/** upsert, explode: the keys of extra rows that name their document, with what etl_claims knows of it. */
function extrasSql(q: TableDiffSql, claims: boolean): string | null {
  const n = q.keyNames.indexOf(q.table.documentKey ?? '');
  if (n < 0) return null;
  const key = ident(`k${n}`);
  if (!claims) return `SELECT DISTINCT x.${key} AS key, NULL::text AS identity FROM ${EXTRA} x`;
  return `SELECT DISTINCT x.${key} AS key, cl.identity FROM ${EXTRA} x LEFT JOIN ${ident(CLAIMS_TABLE)} cl ON cl.table_name = $1 AND cl.key = x.${key}`;
}

/** dedupe: the documents MongoDB maps to a key now, and those the contributions hold for it. */
function dedupeSql(q: TableDiffSql, withContributions: boolean): string {
  const expectedKeys = q.keyIndexes.map((i, n) => `${canonical('e', i, q.columns[i]!.sqlType)} = r.${ident(`k${n}`)}`).join(' AND ');
  let sql = `SELECT e.${ident('_src')} AS src FROM ${EXPECTED} e JOIN ${REPAIR_KEYS} r ON ${expectedKeys} WHERE e.${ident('_status')} IN ('row', 'rejected')`;
  if (withContributions) {
    const contribKeys = q.keyIndexes.map((i, n) => `c.${ident(q.columns[i]!.name)}::text = r.${ident(`k${n}`)}`).join(' AND ');
    const doc = ident(documentIdColumn(q.table));
    const contrib = ident(contributionsTableName(q.table.name));
    sql += ` UNION SELECT c.${doc} FROM ${contrib} c JOIN ${REPAIR_KEYS} r ON ${contribKeys}`;
    // A document read again leaves the key it contributed to, which load recomputes from the
    // contributions left: those of documents deleted from MongoDB with no run propagating it would
    // bring the key back. The other contributors of those keys are read again too.
    const sameKey = q.keyIndexes.map((i) => `o.${ident(q.columns[i]!.name)} = c.${ident(q.columns[i]!.name)}`).join(' AND ');
    sql = `WITH d AS (${sql}) SELECT src FROM d UNION SELECT o.${doc}::text FROM d JOIN ${contrib} c ON c.${doc}::text = d.src JOIN ${contrib} o ON ${sameKey}`;
  }
  return sql;
}

/**
 * The repair scopes of a diff's tables, collected table by table in load order (diff.ts calls
 * `collect` inside each table's comparison), so that a table knows which rows of the tables before
 * it the repair brings back.
 */
export class RepairScopes {
  readonly scopes: TableRepairScope[] = [];
  /** Per table with a one-column key: the keys of rows the repair brings back (references to them then resolve). */
  private readonly restoring = new Map<string, Set<string>>();
  /** Which of the state tables a scope reads exist (etl_pending, etl_claims): one catalog read a repair, not one a table. */
  private stateTables: Promise<Set<string>> | null = null;

  /** The expected rows whose reference (any policy) points at a restored row: a condition on `r`, and its parameters. */
  private restoredReferences(q: TableDiffSql): { sql: string; params: string[][] } | null {
    const parts: string[] = [];
    const params: string[][] = [];
    q.columns.forEach((c, i) => {
      const back = c.foreignKey ? this.restoring.get(c.foreignKey.table) : undefined;
      if (!back || back.size === 0) return;
      params.push([...back]);
      parts.push(`${canonical('r', i, c.sqlType)} = ANY($${params.length}::text[])`);
    });
    return parts.length ? { sql: parts.join(' OR '), params } : null;
  }

  async collect(client: pg.Client, q: TableDiffSql, o: { readonly identical: boolean; readonly deep: boolean }): Promise<void> {
    const restored = this.restoredReferences(q);
    const state = await (this.stateTables ??= existingTables(client, [PENDING_TABLE, CLAIMS_TABLE]));
    const pending = state.has(PENDING_TABLE);
    const params: unknown[] = [...(restored?.params ?? [])];
    if (pending) params.push(q.table.name);
    // Rows left by an older version of a document rejected today, and etl_pending entries a full run
    // would not keep (or would, and are not there), do not make diff differ (README), but they part
    // PostgreSQL from a full run: the repair takes them up too.
    if (o.identical && restored === null && !(await this.drifts(client, q, pending))) return;
    await client.query(repairKeysSql(q, o.deep, restored?.sql ?? null, pending ? params.length : null), params);
    const scope = await this.scopeOf(client, q, state);
    await client.query(`DROP TABLE ${REPAIR_KEYS}`);
    if (scope.documents.length > 0 || scope.recompute.length > 0) this.scopes.push(scope);
  }

  /** Rows of rejected documents PostgreSQL still holds, or etl_pending entries apart from a full run's. */
  private async drifts(client: pg.Client, q: TableDiffSql, pending: boolean): Promise<boolean> {
    if ((await client.query<{ held: boolean }>(holdsStaleRejectedSql(q))).rows[0]!.held) return true;
    if (!pending) return false;
    return (await client.query<{ drift: boolean }>(`SELECT EXISTS (${q.pendingDrift(PENDING, 1)}) AS drift`, [q.table.name])).rows[0]!.drift;
  }

  private async scopeOf(client: pg.Client, q: TableDiffSql, state: ReadonlySet<string>): Promise<TableRepairScope> {
    const table: TableModel = q.table;
    const documents = new Set<string>();
    let recompute: (string | null)[][] = [];
    const back = new Set<string>();
    if (table.strategy === 'dedupe') {
      const contributions = (await existingTables(client, [contributionsTableName(table.name)])).size > 0;
      for (const r of (await client.query<{ src: string }>(dedupeSql(q, contributions))).rows) documents.add(r.src);
      recompute = (await client.query<Record<string, string | null>>(`SELECT ${keyCols(q)} FROM ${REPAIR_KEYS}`)).rows.map((r) => q.keyIndexes.map((_, n) => r[`k${n}`] ?? null));
    } else {
      for (const r of (await client.query<{ src: string | null }>(expectedRowsSql(q))).rows) if (r.src) documents.add(r.src);
      if (state.has(PENDING_TABLE)) for (const r of (await client.query<{ src: string }>(pendingOwnersSql(q), [table.name])).rows) documents.add(guessedIdentity(r.src));
      if (q.keyIndexes.length === 1) for (const r of (await client.query<{ k: string | null }>(restoredKeysSql(q))).rows) if (r.k !== null) back.add(r.k);
      const extras = extrasSql(q, state.has(CLAIMS_TABLE));
      if (extras) {
        const rows = (await client.query<{ key: string; identity: string | null }>(extras, extras.includes('$1') ? [table.name] : [])).rows;
        for (const r of rows) documents.add(r.identity ?? guessedIdentity(r.key));
      }
    }
    if (back.size > 0) this.restoring.set(table.name, back);
    return { table: table.name, collection: table.collection, documents: [...documents].sort(), recompute };
  }
}

/** What a repair run reads and recomputes (the shape extract's RepairRequest takes). */
export interface RepairRequestOf {
  /** Per collection: the `_id`s to read, as MongoDB holds them. */
  readonly ids: Map<string, unknown[]>;
  /** Per dedupe table: the keys load recomputes. */
  readonly recompute: Map<string, (readonly (string | null)[])[]>;
  /** Documents to read, in all. */
  readonly documents: number;
}

/** The tables' scopes, merged per collection (a document differing in two tables is read once). */
export function repairRequest(scopes: readonly TableRepairScope[]): RepairRequestOf {
  const texts = new Map<string, Set<string>>();
  const recompute = new Map<string, (readonly (string | null)[])[]>();
  for (const s of scopes) {
    const set = texts.get(s.collection) ?? new Set<string>();
    for (const d of s.documents) set.add(d);
    texts.set(s.collection, set);
    if (s.recompute.length > 0) recompute.set(s.table, [...(recompute.get(s.table) ?? []), ...s.recompute]);
  }
  const ids = new Map<string, unknown[]>();
  let documents = 0;
  for (const [collection, set] of texts) {
    if (set.size === 0) continue;
    ids.set(collection, [...set].map(documentIdValue));
    documents += set.size;
  }
  return { ids, recompute, documents };
}
