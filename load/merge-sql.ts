// The SQL of a load, generated from the TableModel: nothing here is written per table. Every name
// reaches SQL as a SqlIdent (quoted once, by schema/sql.ts), every value as a $n parameter, so a
// column called `order` or a name holding `"` cannot break or inject into a statement.
//
// A load stages each CSV into a temporary table (one row a CSV record, numbered by `line`), cleans
// it there (duplicate keys, missing references) and merges it into the real table set-wise.
import { ident, type SqlIdent } from '../schema/sql.ts';
import type { ColumnModel, SqlType, TableModel } from '../model/types.ts';

/** A statement ready for client.query(sql, parameters). */
export interface CompiledSql {
  readonly sql: string;
  readonly parameters: readonly unknown[];
}

const compiled = (sql: string, parameters: readonly unknown[] = []): CompiledSql => Object.freeze({ sql, parameters: Object.freeze([...parameters]) });

/** How one table is merged. */
export type MergeKind = 'upsert' | 'delete_and_insert' | 'dedupe_upsert';

/** Everything the builders need, quoted once. */
export interface MergeShape {
  readonly kind: MergeKind;
  readonly target: SqlIdent;
  /** The temp table holding the staged rows. */
  readonly staging: SqlIdent;
  /** Temp column numbering staged rows by their CSV record (header = 1, as COPY counts). */
  readonly line: SqlIdent;
  /** Staged columns, in CSV order. */
  readonly columns: readonly ShapeColumn[];
  /** The columns a staged row is merged on (primary key, unique constraint or dedupe key). */
  readonly key: readonly ShapeColumn[];
  /** Merged columns outside the key: what an update rewrites. */
  readonly others: readonly ShapeColumn[];
  /** dedupe_upsert: the column deciding which row is the latest. */
  readonly latestBy: ShapeColumn | null;
  /** delete_and_insert: the parent column, and the temp table of staged parent keys. */
  readonly parent: ShapeColumn | null;
  readonly keys: SqlIdent | null;
  /** The key is the table's primary key or one of its unique constraints (ON CONFLICT can name it). */
  readonly keyIsUnique: boolean;
}

export interface ShapeColumn {
  readonly name: string;
  readonly id: SqlIdent;
  readonly nullable: boolean;
  /** The type the temp table gives the column: the real one, so COPY reports exact parse errors. */
  readonly type: string;
}

/** Names of the temp tables of one table's load (numbered, so any table name fits in 63 bytes). */
export interface TempNames {
  readonly staging: string;
  readonly keys: string;
  readonly rejects: string;
}

export function tempNames(index: number): TempNames {
  return { staging: `etl_stage_${index}`, keys: `etl_keys_${index}`, rejects: `etl_rejects_${index}` };
}

export function mergeKind(table: TableModel): MergeKind {
  if (table.strategy === 'dedupe') return 'dedupe_upsert';
  if (table.strategy === 'explode' && table.explode?.merge === 'delete_and_insert') return 'delete_and_insert';
  return 'upsert';
}

/** The temp line column's name: `etl_line`, or more underscores if a staged column already has it. */
export function lineColumnName(table: TableModel): string {
  let name = 'etl_line';
  const taken = new Set(table.stagedColumns.map((c) => c.name));
  while (taken.has(name)) name = `_${name}`;
  return name;
}

export function mergeShape(table: TableModel, names: TempNames): MergeShape {
  const kind = mergeKind(table);
  const col = (c: ColumnModel): ShapeColumn => ({ name: c.name, id: ident(c.name), nullable: c.nullable && !c.primaryKey, type: columnTypeSql(c.sqlType) });
  const columns = table.stagedColumns.map(col);
  const byName = new Map(columns.map((c) => [c.name, c]));
  const pick = (name: string): ShapeColumn => {
    const c = byName.get(name);
    if (!c) throw new Error(`table ${table.name}: merge column "${name}" is not a staged column`);
    return c;
  };
  let keyNames = [...table.mergeKey];
  const parentName = kind === 'delete_and_insert' ? table.explode!.parentColumn : null;
  // A link table without a unique constraint: a link is the whole row.
  if (parentName && keyNames.length === 0) keyNames = columns.map((c) => c.name);
  // A row of delete-and-insert is matched within its parent: the parent column is part of the key.
  if (parentName && !keyNames.includes(parentName)) keyNames = [parentName, ...keyNames];
  if (keyNames.length === 0) throw new Error(`table ${table.name} has no merge key`);
  const sameColumns = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));
  const keyIsUnique = [table.primaryKey, ...table.uniqueConstraints].some((u) => u.length > 0 && sameColumns(u, keyNames));
  const key = keyNames.map(pick);
  const keySet = new Set(keyNames);
  return Object.freeze({
    kind,
    target: ident(table.name),
    staging: ident(names.staging),
    line: ident(lineColumnName(table)),
    columns,
    key,
    others: columns.filter((c) => !keySet.has(c.name)),
    latestBy: kind === 'dedupe_upsert' ? pick(table.dedupe!.latestBy) : null,
    parent: parentName ? pick(parentName) : null,
    keys: parentName ? ident(names.keys) : null,
    keyIsUnique,
  });
}

/** The PostgreSQL type of a staged column, from the structured model (never from free text). */
export function columnTypeSql(t: SqlType): string {
  switch (t.kind) {
    case 'varchar':
      return t.length === null ? 'varchar' : `varchar(${integer(t.length)})`;
    case 'text':
      return 'text';
    case 'smallint':
      return 'smallint';
    case 'integer':
      return 'integer';
    case 'bigint':
      return 'bigint';
    case 'serial':
      // Never staged (assigned by PostgreSQL); listed for completeness.
      return 'integer';
    case 'numeric':
      if (t.precision === null) return 'numeric';
      return t.scale === null ? `numeric(${integer(t.precision)})` : `numeric(${integer(t.precision)},${integer(t.scale)})`;
    case 'boolean':
      return 'boolean';
    case 'timestamp':
      return 'timestamp';
    case 'date':
      return 'date';
    case 'jsonb':
      return 'jsonb';
  }
}

function integer(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a type modifier: ${n}`);
  return String(n);
}

const list = (cs: readonly ShapeColumn[], prefix = ''): string => cs.map((c) => `${prefix}${c.id}`).join(', ');

/** `a.k1 = b.k1 AND …`, with IS NOT DISTINCT FROM where a key column may be NULL. */
function matchKey(cs: readonly ShapeColumn[], a: string, b: string): string {
  return cs.map((c) => (c.nullable ? `${a}.${c.id} IS NOT DISTINCT FROM ${b}.${c.id}` : `${a}.${c.id} = ${b}.${c.id}`)).join(' AND ');
}

// ── Staging ──────────────────────────────────────────────────────────────────────────────────────

/**
 * The temp table of staged rows: the staged columns with their real types (COPY then reports a bad
 * value with its CSV line and column) and NOT NULL where the target has it, plus `line`, numbered by
 * an identity in the order COPY reads the records. COPY counts the header as line 1, so the first
 * data record is line 2: the same number PostgreSQL's own error messages give.
 */
export function createStagingTableSql(s: MergeShape): CompiledSql {
  const cols = s.columns.map((c) => `${c.id} ${c.type}${c.nullable ? '' : ' NOT NULL'}`);
  return compiled(
    `CREATE TEMP TABLE ${s.staging} (${s.line} bigint GENERATED ALWAYS AS IDENTITY (START WITH 2), ${cols.join(', ')}) ON COMMIT DROP`,
  );
}

/** COPY of the staged CSV into the temp table (`options`: staging/csv.ts COPY_CSV_OPTIONS). */
export function copyStagingSql(s: MergeShape, options: string): string {
  return `COPY ${s.staging} (${list(s.columns)}) FROM STDIN WITH ${options}`;
}

/** delete_and_insert: the temp table of staged parent keys, and its COPY. */
export function createKeysTableSql(s: MergeShape): CompiledSql {
  const p = requireParent(s);
  return compiled(`CREATE TEMP TABLE ${s.keys} (${p.id} ${p.type} NOT NULL) ON COMMIT DROP`);
}

export function copyKeysSql(s: MergeShape, options: string): string {
  const p = requireParent(s);
  return `COPY ${s.keys} (${p.id}) FROM STDIN WITH ${options}`;
}

export function analyzeSql(table: SqlIdent): CompiledSql {
  // Temp tables are never analyzed by autovacuum; without statistics the planner may pick a nested
  // loop for the anti-joins below on a million rows.
  return compiled(`ANALYZE ${table}`);
}

export function dropTempSql(table: SqlIdent): CompiledSql {
  return compiled(`DROP TABLE IF EXISTS ${table}`);
}

// ── Duplicate keys inside one batch ──────────────────────────────────────────────────────────────

/**
 * Keeps one staged row per merge key and deletes the others; rowCount = rows dropped. The survivor
 * is the latest by `latestBy` for dedupe tables, else the last in the file (what a sequence of
 * upserts would leave). Only keys that occur twice are sorted, and a key with a NULL never collides.
 * delete_and_insert matches rows by the full unique constraint, so an id twice in one array becomes
 * one link.
 */
export function dropBatchDuplicatesSql(s: MergeShape): CompiledSql {
  const k = list(s.key);
  const notNull = s.key.map((c) => `${c.id} IS NOT NULL`).join(' AND ');
  const order = [...s.key.map((c) => `${c.id}`), ...(s.latestBy ? [`${s.latestBy.id} DESC NULLS LAST`] : []), `${s.line} DESC`].join(', ');
  return compiled(
    `DELETE FROM ${s.staging} AS d USING (` +
      `SELECT DISTINCT ON (${k}) ${k}, ${s.line} FROM ${s.staging} ` +
      `WHERE (${k}) IN (SELECT ${k} FROM ${s.staging} WHERE ${notNull} GROUP BY ${k} HAVING count(*) > 1) ` +
      `ORDER BY ${order}` +
      `) AS w WHERE ${matchKey(s.key, 'd', 'w')} AND d.${s.line} <> w.${s.line}`,
  );
}

// ── Missing references ───────────────────────────────────────────────────────────────────────────

export interface ReferenceCheck {
  /** The staged column holding the reference. */
  readonly column: ShapeColumn;
  readonly refTable: SqlIdent;
  readonly refColumn: SqlIdent;
  /** The reference points at the table being loaded: rows staged with it count as present. */
  readonly selfReference: boolean;
}

/** The temp table listing refused or nulled references of one table. */
export function createRejectsTableSql(rejects: SqlIdent): CompiledSql {
  // row_ctid: the direct path (copyDirectSql) finds rows by their physical address in the target.
  return compiled(`CREATE TEMP TABLE ${rejects} (line bigint NOT NULL, column_name text NOT NULL, value text, action text NOT NULL, row_ctid tid) ON COMMIT DROP`);
}

function missingCondition(s: MergeShape, r: ReferenceCheck): string {
  const c = r.column.id;
  let sql = `s.${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${r.refTable} AS r WHERE r.${r.refColumn} = s.${c})`;
  if (r.selfReference) sql += ` AND NOT EXISTS (SELECT 1 FROM ${s.staging} AS r2 WHERE r2.${r.refColumn} = s.${c})`;
  return sql;
}

/**
 * Records every staged row whose reference has no row in the referenced table as it is now (inside
 * the transaction, after the tables loaded before this one). rowCount = references found missing.
 * $1 = column name, $2 = action ('reject' | 'set_null').
 */
export function recordMissingReferencesSql(s: MergeShape, rejects: SqlIdent, r: ReferenceCheck, action: 'reject' | 'set_null'): CompiledSql {
  return compiled(
    `INSERT INTO ${rejects} (line, column_name, value, action) ` +
      `SELECT s.${s.line}, $1, s.${r.column.id}::text, $2 FROM ${s.staging} AS s WHERE ${missingCondition(s, r)}`,
    [r.column.name, action],
  );
}

/** Removes the rows recorded as rejected for that column. $1 = column name. */
export function deleteRejectedRowsSql(s: MergeShape, rejects: SqlIdent, r: ReferenceCheck): CompiledSql {
  return compiled(
    `DELETE FROM ${s.staging} AS s USING ${rejects} AS x WHERE x.line = s.${s.line} AND x.column_name = $1 AND x.action = 'reject'`,
    [r.column.name],
  );
}

/** Sets NULL the references recorded as missing for that column. $1 = column name. */
export function nullMissingReferencesSql(s: MergeShape, rejects: SqlIdent, r: ReferenceCheck): CompiledSql {
  return compiled(
    `UPDATE ${s.staging} AS s SET ${r.column.id} = NULL FROM ${rejects} AS x WHERE x.line = s.${s.line} AND x.column_name = $1 AND x.action = 'set_null'`,
    [r.column.name],
  );
}

// ── The direct path: COPY straight into an empty target ──────────────────────────────────────────

/** COPY of the staged CSV into the real table (direct path). */
export function copyDirectSql(s: MergeShape, options: string): string {
  return `COPY ${s.target} (${list(s.columns)}) FROM STDIN WITH ${options}`;
}

/** Bytes the table occupies: 0 means no page at all, so a COPY fills pages in file order. $1 = quoted name. */
export function relationSizeSql(): CompiledSql {
  return compiled(`SELECT pg_relation_size($1::regclass) AS size`);
}

/**
 * Direct path: the index to CLUSTER the empty table on (see loadDirect), the one it is already
 * clustered on if any (then CLUSTER changes nothing in the catalog), else the primary key, else
 * another plain btree index. No row: the table has no index CLUSTER can use. $1 = quoted name.
 */
export function clusterIndexSql(): CompiledSql {
  return compiled(
    `SELECT c.relname AS name, i.indisclustered AS clustered FROM pg_index i ` +
      `JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam ` +
      `WHERE i.indrelid = $1::regclass AND i.indisvalid AND i.indpred IS NULL AND a.amname = 'btree' ` +
      `ORDER BY i.indisclustered DESC, i.indisprimary DESC, c.relname LIMIT 1`,
  );
}

export function clusterSql(table: SqlIdent, index: SqlIdent): CompiledSql {
  return compiled(`CLUSTER ${table} USING ${index}`);
}

/** CLUSTER … USING marks the index for later CLUSTERs; this undoes the mark (inside the transaction). */
export function setWithoutClusterSql(table: SqlIdent): CompiledSql {
  return compiled(`ALTER TABLE ${table} SET WITHOUT CLUSTER`);
}

/**
 * Direct path: records the copied rows whose reference is missing, by physical address (line filled
 * in later), skipping rows already refused for an earlier column. $1 = column name, $2 = action.
 */
export function recordMissingInTargetSql(s: MergeShape, rejects: SqlIdent, r: ReferenceCheck, action: 'reject' | 'set_null'): CompiledSql {
  const c = r.column.id;
  return compiled(
    `INSERT INTO ${rejects} (line, column_name, value, action, row_ctid) ` +
      `SELECT 0, $1, s.${c}::text, $2, s.ctid FROM ${s.target} AS s ` +
      `WHERE s.${c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${r.refTable} AS r WHERE r.${r.refColumn} = s.${c}) ` +
      `AND NOT EXISTS (SELECT 1 FROM ${rejects} AS x WHERE x.row_ctid = s.ctid AND x.action = 'reject')`,
    [r.column.name, action],
  );
}

/**
 * Direct path: the CSV record of each recorded row. The table got a new, empty file in this
 * transaction before the COPY (loadDirect), so the COPY appended rows in file order and the n-th
 * row by ctid is the n-th record (header = record 1).
 * Only the recorded rows are numbered: each one counts the rows between the previous recorded row
 * and itself (a TID range scan, no sort), and a running sum gives the record. The table is read
 * once at most, up to its last recorded row, instead of numbering every row of it.
 */
export function numberRejectsByCtidSql(s: MergeShape, rejects: SqlIdent): CompiledSql {
  return compiled(
    `UPDATE ${rejects} AS x SET line = n.line FROM (` +
      `SELECT d.row_ctid, 1 + sum(d.rows) OVER (ORDER BY d.row_ctid) AS line FROM (` +
      `SELECT r.row_ctid, (SELECT count(*) FROM ${s.target} AS t WHERE t.ctid > r.previous AND t.ctid <= r.row_ctid) AS rows FROM (` +
      `SELECT row_ctid, lag(row_ctid, 1, '(0,0)'::tid) OVER (ORDER BY row_ctid) AS previous FROM (SELECT DISTINCT row_ctid FROM ${rejects}) AS u` +
      `) AS r) AS d) AS n WHERE n.row_ctid = x.row_ctid`,
  );
}

export function deleteRejectedTargetRowsSql(s: MergeShape, rejects: SqlIdent): CompiledSql {
  return compiled(`DELETE FROM ${s.target} AS t USING ${rejects} AS x WHERE x.row_ctid = t.ctid AND x.action = 'reject'`);
}

/** Direct path: one UPDATE for every set_null column (an UPDATE moves the row, so a second one could not find it). */
export function nullMissingInTargetSql(s: MergeShape, rejects: SqlIdent, columns: readonly ShapeColumn[]): CompiledSql {
  const set = columns.map((c, i) => `${c.id} = CASE WHEN m.n${i} THEN NULL ELSE t.${c.id} END`).join(', ');
  const flags = columns.map((_, i) => `bool_or(column_name = $${i + 1}) AS n${i}`).join(', ');
  return compiled(
    `UPDATE ${s.target} AS t SET ${set} FROM (SELECT row_ctid, ${flags} FROM ${rejects} WHERE action = 'set_null' GROUP BY row_ctid) AS m WHERE t.ctid = m.row_ctid`,
    columns.map((c) => c.name),
  );
}

/** Read back (through a cursor, in line order) to write the load rejects file. */
export function selectRejectsSql(rejects: SqlIdent): string {
  return `SELECT line, column_name, value, action FROM ${rejects} ORDER BY line, column_name`;
}

// ── Merges ───────────────────────────────────────────────────────────────────────────────────────

/**
 * upsert (primary key or unique constraint) and dedupe upsert, in one statement returning
 * { inserted, updated }. An existing row is rewritten only when a column differs (upsert) or when
 * the staged row is strictly newer by latestBy (dedupe: an older document never overwrites a newer
 * row; equal means unchanged). Columns PostgreSQL generates (SERIAL) are not staged, so never touched.
 */
export function upsertSql(s: MergeShape): CompiledSql {
  if (s.kind === 'delete_and_insert') throw new Error('upsertSql: not an upsert table');
  const cols = list(s.columns);
  let conflict: string;
  if (s.others.length === 0) {
    conflict = 'DO NOTHING';
  } else {
    const set = s.others.map((c) => `${c.id} = EXCLUDED.${c.id}`).join(', ');
    const when =
      s.kind === 'dedupe_upsert'
        ? `EXCLUDED.${s.latestBy!.id} > t.${s.latestBy!.id}`
        : `(${list(s.others, 't.')}) IS DISTINCT FROM (${list(s.others, 'EXCLUDED.')})`;
    conflict = `DO UPDATE SET ${set} WHERE ${when}`;
  }
  return compiled(
    `WITH merged AS (` +
      `INSERT INTO ${s.target} AS t (${cols}) SELECT ${cols} FROM ${s.staging} ` +
      `ON CONFLICT (${list(s.key)}) ${conflict} ` +
      // xmax = 0: the row version was inserted by this statement, not updated.
      `RETURNING (t.xmax = 0) AS inserted` +
      `) SELECT count(*) FILTER (WHERE inserted)::bigint AS inserted, count(*) FILTER (WHERE NOT inserted)::bigint AS updated FROM merged`,
  );
}

/** The parents whose links a delete-and-insert replaces: the keys file, and any parent staged with links. */
function scope(s: MergeShape): string {
  const p = requireParent(s);
  return `(SELECT k.${p.id} FROM ${s.keys} AS k UNION SELECT s2.${p.id} FROM ${s.staging} AS s2)`;
}

/** delete_and_insert step 1: links of a staged parent that are not staged any more. rowCount = deleted. */
export function deleteStaleLinksSql(s: MergeShape): CompiledSql {
  const p = requireParent(s);
  return compiled(
    `DELETE FROM ${s.target} AS t WHERE t.${p.id} IN ${scope(s)} ` + `AND NOT EXISTS (SELECT 1 FROM ${s.staging} AS s WHERE ${matchKey(s.key, 's', 't')})`,
  );
}

/** delete_and_insert step 2: links still there whose other columns (timestamps) changed. rowCount = updated. */
export function updateChangedLinksSql(s: MergeShape): CompiledSql | null {
  if (s.others.length === 0) return null;
  const set = s.others.map((c) => `${c.id} = s.${c.id}`).join(', ');
  return compiled(
    `UPDATE ${s.target} AS t SET ${set} FROM ${s.staging} AS s WHERE ${matchKey(s.key, 't', 's')} ` +
      `AND (${list(s.others, 't.')}) IS DISTINCT FROM (${list(s.others, 's.')})`,
  );
}

/**
 * delete_and_insert step 3: staged links not present yet. rowCount = inserted. After steps 1 and 2
 * every staged link already there is identical to its staged row, so a conflict means "unchanged".
 * ON CONFLICT needs a unique index on the key; without one, an anti-join (slower) does the same.
 */
export function insertNewLinksSql(s: MergeShape): CompiledSql {
  const cols = list(s.columns);
  if (s.keyIsUnique) {
    return compiled(`INSERT INTO ${s.target} (${cols}) SELECT ${list(s.columns, 's.')} FROM ${s.staging} AS s ON CONFLICT (${list(s.key)}) DO NOTHING`);
  }
  return compiled(
    `INSERT INTO ${s.target} (${cols}) SELECT ${list(s.columns, 's.')} FROM ${s.staging} AS s ` +
      `WHERE NOT EXISTS (SELECT 1 FROM ${s.target} AS t WHERE ${matchKey(s.key, 't', 's')})`,
  );
}

/** Is the target empty? Then every merge is a plain insert (the batch holds no duplicate keys any more). */
export function targetIsEmptySql(s: MergeShape): CompiledSql {
  return compiled(`SELECT NOT EXISTS (SELECT 1 FROM ${s.target}) AS empty`);
}

/**
 * The merge into an empty table: a plain INSERT … SELECT (no conflict arbitration, no RETURNING),
 * what an initial load spends its time on. rowCount = inserted.
 */
export function insertAllSql(s: MergeShape): CompiledSql {
  const cols = list(s.columns);
  return compiled(`INSERT INTO ${s.target} (${cols}) SELECT ${cols} FROM ${s.staging}`);
}

function requireParent(s: MergeShape): ShapeColumn {
  if (!s.parent || !s.keys) throw new Error('not a delete_and_insert table');
  return s.parent;
}

// ── Truncate, ledger, watermarks, lock ───────────────────────────────────────────────────────────

/**
 * The table and every table that references it, recursively: what TRUNCATE … CASCADE empties.
 * $1 = the table's quoted name (read as regclass, so it resolves as TRUNCATE would).
 */
export function cascadeTargetsSql(table: SqlIdent): CompiledSql {
  return compiled(
    `WITH RECURSIVE dep(oid, depth) AS (` +
      `SELECT $1::regclass::oid, 0 ` +
      `UNION SELECT c.conrelid, dep.depth + 1 FROM pg_constraint c JOIN dep ON c.confrelid = dep.oid ` +
      `WHERE c.contype = 'f' AND dep.depth < 100` +
      `) SELECT cl.relname AS name, min(dep.depth) AS depth FROM dep JOIN pg_class cl ON cl.oid = dep.oid ` +
      `GROUP BY cl.relname ORDER BY min(dep.depth), cl.relname`,
    [table],
  );
}

/**
 * The table's own foreign keys, as PostgreSQL itself spells them, and whether this session owns
 * the table (only an owner may drop and re-add them). $1 = the table's quoted name.
 */
export function ownForeignKeysSql(): CompiledSql {
  return compiled(
    `SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS definition, pg_has_role(t.relowner, 'USAGE') AS owned ` +
      `FROM pg_class t LEFT JOIN pg_constraint c ON c.conrelid = t.oid AND c.contype = 'f' WHERE t.oid = $1::regclass ORDER BY c.conname`,
  );
}

export function dropConstraintSql(table: SqlIdent, constraint: SqlIdent): CompiledSql {
  return compiled(`ALTER TABLE ${table} DROP CONSTRAINT ${constraint}`);
}

/** `definition` is pg_get_constraintdef's text: DDL PostgreSQL wrote, with its identifiers quoted. */
export function addConstraintSql(table: SqlIdent, constraint: SqlIdent, definition: string): CompiledSql {
  return compiled(`ALTER TABLE ${table} ADD CONSTRAINT ${constraint} ${definition}`);
}

export function truncateCascadeSql(table: SqlIdent): CompiledSql {
  return compiled(`TRUNCATE TABLE ${table} CASCADE`);
}

/** Tables of this run already recorded in the ledger. $1 = run id. */
export function appliedTablesSql(runs: SqlIdent): CompiledSql {
  return compiled(`SELECT table_name, loaded_at FROM ${runs} WHERE run_id = $1`, []);
}

/** $1 run id, $2 table, $3 pipeline sha256, $4 summary (JSON). */
export function recordRunSql(runs: SqlIdent): CompiledSql {
  return compiled(`INSERT INTO ${runs} (run_id, table_name, pipeline_sha256, summary) VALUES ($1, $2, $3, $4::jsonb)`);
}

/**
 * Advances a table's watermark, never backwards, and sets the mapping fingerprint stored with it.
 * $1 table, $2 watermark, $3 run id, $4 fingerprint (decided by model/fingerprint.ts fingerprintToStore).
 */
export function advanceWatermarkSql(watermarks: SqlIdent): CompiledSql {
  return compiled(
    `INSERT INTO ${watermarks} AS w (table_name, watermark, run_id, updated_at, fingerprint) VALUES ($1, $2::timestamptz, $3, now(), $4) ` +
      `ON CONFLICT (table_name) DO UPDATE SET ` +
      `run_id = CASE WHEN EXCLUDED.watermark >= w.watermark THEN EXCLUDED.run_id ELSE w.run_id END, ` +
      `watermark = GREATEST(w.watermark, EXCLUDED.watermark), updated_at = now(), fingerprint = EXCLUDED.fingerprint`,
  );
}

/** $1 table. */
export function fingerprintOfSql(watermarks: SqlIdent): CompiledSql {
  return compiled(`SELECT fingerprint FROM ${watermarks} WHERE table_name = $1`);
}

/** Forgets a table's watermark, so the next extract reads its collection in full. $1 table. */
export function forgetWatermarkSql(watermarks: SqlIdent): CompiledSql {
  return compiled(`DELETE FROM ${watermarks} WHERE table_name = $1`);
}

/** $1 table. */
export function watermarkOfSql(watermarks: SqlIdent): CompiledSql {
  return compiled(`SELECT watermark FROM ${watermarks} WHERE table_name = $1`);
}
