// The SQL of `etl diff` for one table. The expected rows (what a load of MongoDB's current documents
// would write) are COPYed into a temporary table; every comparison is then set-wise SQL, so memory
// stays bounded on our side whatever the table's size, and PostgreSQL's own text forms are compared.
//
// Keys are compared as PostgreSQL text: the expected cell cast to the column's type and back
// (`CAST('2024-03-07' AS DATE)::text`), against the live column `::text`. Both sides come out of the
// same type's output function, so a DATE, an integer or a JSONB value compares as what it is, and a
// column whose live type drifted still compares instead of failing.
import type { ColumnModel, PipelineModel, SqlType, TableModel } from '../model/types.ts';
import { latestOrder } from '../mapping/dedupe.ts';
import { otherUniqueConstraints } from '../model/other-uniques.ts';
import type { LiveTable } from '../schema/catalog.ts';
import { compiled, ident, literal, type CompiledQuery, type SqlIdent } from '../schema/sql.ts';

export const EXPECTED = ident('etl_diff_expected');
export const ROWS = ident('etl_diff_rows');
export const MISSING = ident('etl_diff_missing');
export const EXTRA = ident('etl_diff_extra');
export const CHANGED = ident('etl_diff_changed');
/** Document keys two documents or more claim: a load refuses every row of them (duplicate_key). */
export const CONTESTED = ident('etl_diff_contested');
/** `absent` of a missing row a load refuses because two documents claim its key. */
const CONTESTED_ROW = -1;
/**
 * Keys whose row a load refuses because rows of other keys hold its value of another unique
 * constraint (duplicate_value), with `u`: the index of that constraint in `otherUniques` (the first
 * one shared). Only built for a table that has such a constraint.
 */
export const SHARED = ident('etl_diff_shared');
/** `absent` of a missing row refused for a value of `otherUniques[u]` it shares: SHARED_ROW - u (-2, -3…). */
const SHARED_ROW = -2;

/** Bookkeeping columns of the expected table, before the staged columns c0…cN. */
const META_COLUMNS = ['_ord', '_status', '_src', '_col', '_reason'] as const;

/** CSV header of the expected records of a table with `cells` staged columns. */
export const expectedHeader = (cells: number): string[] => [...META_COLUMNS, ...Array.from({ length: cells }, (_, i) => `c${i}`)];

/** The type a text cell is cast to before comparing (text types stay text: no VARCHAR(n) truncation). */
function castType(t: SqlType): string | null {
  switch (t.kind) {
    case 'varchar':
    case 'text':
      return null;
    case 'smallint':
      return 'SMALLINT';
    case 'integer':
    case 'serial':
      return 'INTEGER';
    case 'bigint':
      return 'BIGINT';
    case 'numeric':
      // precision/scale are validated integers of the model, never user text.
      return t.precision === null ? 'NUMERIC' : `NUMERIC(${Math.trunc(t.precision)}, ${Math.trunc(t.scale ?? 0)})`;
    case 'boolean':
      return 'BOOLEAN';
    case 'timestamp':
      return 'TIMESTAMP';
    case 'date':
      return 'DATE';
    case 'jsonb':
      return 'JSONB';
  }
}

const cell = (i: number) => ident(`c${i}`);
const keyCol = (i: number) => ident(`k${i}`);

/** `CAST(e.c3 AS DATE)::text`, or `e.c3` for text types: the canonical text of an expected cell. */
export function canonical(alias: string, i: number, t: SqlType): string {
  const ty = castType(t);
  return ty === null ? `${alias}.${cell(i)}` : `CAST(${alias}.${cell(i)} AS ${ty})::text`;
}

/** A unique constraint other than the key (users declaring [email]): its staged columns, and how reports name it. */
export interface OtherUnique {
  /** Its columns joined by ", " (`email`), as the load's rejects file names them. */
  readonly label: string;
  /** Indexes (into stagedColumns) of its columns. */
  readonly indexes: readonly number[];
}

export interface ForeignCheck {
  readonly index: number;
  readonly column: string;
  readonly policy: 'reject' | 'set_null';
  /** `EXISTS (…)`: the referenced row is in PostgreSQL. */
  readonly exists: (alias: string) => string;
}

export class TableDiffSql {
  readonly table: TableModel;
  readonly columns: readonly ColumnModel[];
  /** Indexes (into stagedColumns) of the key columns, in key order. */
  readonly keyIndexes: readonly number[];
  /** Staged non-key columns present in the live table: compared by --deep. */
  readonly compared: readonly number[];
  /** Staged columns missing from the live table: not compared. */
  readonly notCompared: readonly string[];
  readonly foreign: readonly ForeignCheck[];
  readonly target: SqlIdent;
  /** Index of the column holding the document `_id` (upsert: id; explode: the parent), -1 for a dedupe table. */
  readonly documentKey: number;
  /** The table's unique constraints other than the key: a value rows of two keys or more hold refuses them all (duplicate_value). */
  readonly otherUniques: readonly OtherUnique[];

  constructor(table: TableModel, live: LiveTable, model: PipelineModel, liveTables: ReadonlyMap<string, LiveTable>) {
    this.table = table;
    this.columns = table.stagedColumns;
    this.target = ident(table.name);
    const key = keyOf(table);
    this.keyIndexes = key.map((name) => this.columns.findIndex((c) => c.name === name));
    this.documentKey = table.strategy === 'dedupe' || table.documentKey === null ? -1 : this.columns.findIndex((c) => c.name === table.documentKey);
    const liveNames = new Set(live.columns.map((c) => c.name));
    const compared: number[] = [];
    const notCompared: string[] = [];
    this.columns.forEach((c, i) => {
      if (this.keyIndexes.includes(i)) return;
      if (liveNames.has(c.name)) compared.push(i);
      else notCompared.push(c.name);
    });
    this.compared = compared;
    this.notCompared = notCompared;
    const foreign: ForeignCheck[] = [];
    this.columns.forEach((c, i) => {
      const fk = c.foreignKey;
      if (!fk) return;
      const ref = liveTables.get(fk.table);
      // A reference into a table that is not there (drift) cannot be checked; drift reports it.
      if (!ref || !ref.columns.some((x) => x.name === fk.column)) return;
      const refModel = model.tables.get(fk.table)?.columns.find((x) => x.name === fk.column);
      const ty = refModel ? castType(refModel.sqlType) : null;
      foreign.push({
        index: i,
        column: c.name,
        policy: fk.onMissing,
        // Compared in the referenced column's own type, so its index (primary key) serves the lookup.
        exists: (alias) =>
          `EXISTS (SELECT 1 FROM ${ident(fk.table)} fk_ref WHERE fk_ref.${ident(fk.column)} = ${ty === null ? `${alias}.${cell(i)}` : `CAST(${alias}.${cell(i)} AS ${ty})`})`,
      });
    });
    this.foreign = foreign;
    this.otherUniques = otherUniqueConstraints(table, key).map((u) => ({
      label: u.columns.join(', '),
      indexes: u.columns.map((name) => this.columns.findIndex((c) => c.name === name)),
    }));
  }

  get keyNames(): string[] {
    return this.keyIndexes.map((i) => this.columns[i]!.name);
  }

  createExpected(): CompiledQuery {
    const cols = [
      `${ident('_ord')} BIGINT`,
      `${ident('_status')} TEXT`,
      `${ident('_src')} TEXT`,
      `${ident('_col')} TEXT`,
      `${ident('_reason')} TEXT`,
      ...this.columns.map((_, i) => `${cell(i)} TEXT`),
    ];
    return compiled(`CREATE TEMP TABLE ${EXPECTED} (${cols.join(', ')})`);
  }

  copyExpected(): string {
    const names = [...META_COLUMNS.map((c) => ident(c)), ...this.columns.map((_, i) => cell(i))];
    return `COPY ${EXPECTED} (${names.join(', ')}) FROM STDIN WITH (FORMAT csv, HEADER true)`;
  }

  /** CSV header of the COPY (names only matter to csv-stringify). */
  copyHeader(): string[] {
    return expectedHeader(this.columns.length);
  }

  private keyTexts(alias: string): string {
    return this.keyIndexes.map((i, n) => `${canonical(alias, i, this.columns[i]!.sqlType)} AS ${keyCol(n)}`).join(', ');
  }

  private keyList(alias?: string): string {
    return this.keyIndexes.map((_, n) => (alias ? `${alias}.${keyCol(n)}` : keyCol(n))).join(', ');
  }

  private liveKeyTexts(alias: string): string {
    return this.keyIndexes.map((i, n) => `${alias}.${ident(this.columns[i]!.name)}::text AS ${keyCol(n)}`).join(', ');
  }

  /** `a.k0 = b.k0 AND …`: two tables of key texts (k0…) on one key. */
  private sameKey(a: string, b: string): string {
    return this.keyIndexes.map((_, n) => `${a}.${keyCol(n)} = ${b}.${keyCol(n)}`).join(' AND ');
  }

  private keysNotNull(alias: string): string {
    return this.keyIndexes.map((i) => `${alias}.${cell(i)} IS NOT NULL`).join(' AND ');
  }

  /**
   * The document keys two documents or more claim (load/claims.ts): every document the run would
   * read names itself under its key, whatever it yields (rows, rejects, a claim record).
   */
  createContested(): CompiledQuery {
    if (this.documentKey < 0) return compiled(`CREATE TEMP TABLE ${CONTESTED} (k TEXT)`);
    const k = `e.${cell(this.documentKey)}`;
    return compiled(
      `CREATE TEMP TABLE ${CONTESTED} AS SELECT ${k} AS k FROM ${EXPECTED} e WHERE e.${ident('_status')} <> 'outside_threshold' AND ${k} IS NOT NULL ` +
        `GROUP BY 1 HAVING count(DISTINCT e.${ident('_src')}) > 1`,
    );
  }

  /** Not a row of a contested key (alias e: an expected record). */
  private uncontested(alias: string): string {
    return this.documentKey < 0 ? 'true' : `NOT EXISTS (SELECT 1 FROM ${CONTESTED} x WHERE x.k = ${alias}.${cell(this.documentKey)})`;
  }

  /** Row records of contested keys: a load refuses them (duplicate_key), so no row holds them. */
  contestedRecords(): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${EXPECTED} e WHERE e.${ident('_status')} = 'row' AND NOT (${this.uncontested('e')})`);
  }

  /**
   * One row per key, as the load would leave it: explode keeps the first item of a repeated key (in
   * document order); dedupe keeps the latest document (greatest latest_by, then greatest _id); a key
   * two documents claim has none.
   */
  createRows(): CompiledQuery {
    let tieBreak = `e.${ident('_ord')}`;
    const dedupe = this.table.dedupe;
    if (dedupe) {
      const li = this.columns.findIndex((c) => c.name === dedupe.latestBy);
      // The order of mapping/dedupe.ts: numbers as numbers; timestamps and dates by their fixed-width
      // text and ids by code units, which is "C" order.
      const latest = latestOrder(this.table) === 'text' ? `e.${cell(li)} COLLATE "C"` : `CAST(e.${cell(li)} AS NUMERIC)`;
      tieBreak = `${latest} DESC NULLS LAST, e.${ident('_src')} COLLATE "C" DESC`;
    }
    const cells = this.columns.map((_, i) => `e.${cell(i)}`).join(', ');
    return compiled(
      `CREATE TEMP TABLE ${ROWS} AS SELECT DISTINCT ON (${this.keyList()}) ${this.keyTexts('e')}, e.${ident('_src')}, ${cells} ` +
      `FROM ${EXPECTED} e WHERE e.${ident('_status')} = 'row' AND ${this.uncontested('e')} ORDER BY ${this.keyList()}, ${tieBreak}`,
    );
  }

  /**
   * Expected keys PostgreSQL lacks, each with `absent`: the index of the first column whose
   * reference (on_missing: reject) points at a row PostgreSQL does not have — a load would refuse
   * that row too —, CONTESTED_ROW for a row of a key two documents claim (refused too), SHARED_ROW - u
   * for a row holding a value of another unique constraint that rows of other keys hold (refused
   * too: SHARED, built first for a table with such a constraint), or NULL for a row that is simply
   * missing.
   */
  createMissing(): CompiledQuery {
    const shared = this.otherUniques.length > 0;
    const absent = [
      ...this.foreign.filter((f) => f.policy === 'reject').map((f) => `WHEN r.${cell(f.index)} IS NOT NULL AND NOT ${f.exists('r')} THEN ${f.index}`),
      ...(shared ? [`WHEN s.u IS NOT NULL THEN ${SHARED_ROW} - s.u`] : []),
    ];
    const absentExpr = absent.length ? `CASE ${absent.join(' ')} END` : 'NULL::int';
    return compiled(
      `CREATE TEMP TABLE ${MISSING} AS SELECT ${this.keyList('m')}, r.${ident('_src')} AS src, ${absentExpr} AS absent ` +
      `FROM (SELECT ${this.keyList()} FROM ${ROWS} EXCEPT SELECT ${this.liveKeyTexts('a')} FROM ${this.target} a) m ` +
      `LEFT JOIN ${ROWS} r ON ${this.sameKey('r', 'm')}` +
      (shared ? ` LEFT JOIN ${SHARED} s ON ${this.sameKey('s', 'm')}` : '') +
      (this.documentKey < 0 ? '' : ` UNION ALL ${this.contestedMissing()}`),
    );
  }

  /**
   * The keys whose row a load refuses for a shared value (duplicate_value, load/unique-values.ts):
   * among the rows it would load — one per key, contested keys and rows refused for a missing
   * reference set aside —, those whose value of another unique constraint rows of other keys hold
   * too, each with the first such constraint (`u`). A value with a NULL in it is nobody's
   * (PostgreSQL's UNIQUE treats NULLs as distinct).
   */
  createShared(): CompiledQuery {
    const dangling = this.danglingReferences('r', 'reject');
    const loadable = dangling.length ? [`NOT (${dangling.join(' OR ')})`] : [];
    const holders = this.otherUniques.map((u, n) => {
      const values = u.indexes.map((i) => this.writtenValue('r', i));
      const held = [...loadable, ...values.map((v) => `${v} IS NOT NULL`)].join(' AND ');
      return (
        `SELECT ${this.keyList()}, ${n} AS u FROM (SELECT ${this.keyList('r')}, count(*) OVER (PARTITION BY ${values.join(', ')}) AS holders ` +
        `FROM ${ROWS} r WHERE ${held}) h WHERE holders > 1`
      );
    });
    return compiled(`CREATE TEMP TABLE ${SHARED} AS SELECT DISTINCT ON (${this.keyList()}) * FROM (${holders.join(' UNION ALL ')}) s ORDER BY ${this.keyList()}, u`);
  }

  /**
   * The value a load writes in column i of an expected row (alias), in the column's type (PostgreSQL's
   * UNIQUE compares values, not texts): a set_null reference to a row PostgreSQL lacks is NULL.
   */
  private writtenValue(alias: string, i: number): string {
    const ty = castType(this.columns[i]!.sqlType);
    const value = ty === null ? `${alias}.${cell(i)}` : `CAST(${alias}.${cell(i)} AS ${ty})`;
    const fk = this.foreign.find((f) => f.index === i && f.policy === 'set_null');
    return fk ? `(CASE WHEN ${fk.exists(alias)} THEN ${value} END)` : value;
  }

  /** Conditions on an expected row (alias), one per reference of `policy`: it points at a row PostgreSQL lacks. */
  private danglingReferences(alias: string, policy: ForeignCheck['policy']): string[] {
    return this.foreign.filter((f) => f.policy === policy).map((f) => `(${alias}.${cell(f.index)} IS NOT NULL AND NOT ${f.exists(alias)})`);
  }

  /** Missing rows a load refuses for a value rows of other keys hold (duplicate_value). */
  sharedCount(): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${MISSING} WHERE absent <= ${SHARED_ROW}`);
  }

  /** The label of the constraint a refused row's `absent` names, or null when it is not refused for a shared value. */
  sharedLabel(absent: number): string | null {
    return absent <= SHARED_ROW ? this.otherUniques[SHARED_ROW - absent]!.label : null;
  }

  /** The rows of contested keys PostgreSQL lacks (one per key, its first record), as MISSING rows. */
  private contestedMissing(): string {
    const inLive = this.keyIndexes.map((ci, n) => `a.${ident(this.columns[ci]!.name)}::text = c.${keyCol(n)}`).join(' AND ');
    return (
      `SELECT ${this.keyList('c')}, c.${ident('_src')}, ${CONTESTED_ROW} FROM (SELECT DISTINCT ON (${this.keyList()}) ${this.keyTexts('e')}, e.${ident('_src')} ` +
      `FROM ${EXPECTED} e WHERE e.${ident('_status')} = 'row' AND NOT (${this.uncontested('e')}) ORDER BY ${this.keyList()}, e.${ident('_ord')}) c ` +
      `WHERE NOT EXISTS (SELECT 1 FROM ${this.target} a WHERE ${inLive})`
    );
  }

  /** Missing rows a load refuses because two documents claim their key. */
  contestedCount(): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${MISSING} WHERE absent = ${CONTESTED_ROW}`);
  }

  /** Missing rows: plain ones (`refused` false) or those a load would refuse (true). */
  missingCount(refused: boolean): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${MISSING} WHERE absent IS ${refused ? 'NOT ' : ''}NULL`);
  }

  missingSample(refused: boolean, limit: number): CompiledQuery {
    return compiled(`SELECT ${this.keyList()}, src, absent FROM ${MISSING} WHERE absent IS ${refused ? 'NOT ' : ''}NULL ORDER BY ${this.orderByKeys()} LIMIT $1`, [limit]);
  }

  refusedByColumn(): CompiledQuery {
    return compiled(`SELECT absent AS i, count(*)::bigint AS n FROM ${MISSING} WHERE absent >= 0 GROUP BY 1 ORDER BY 1`);
  }

  /**
   * Live keys of no existing document. The keys of every document that exists, loadable or not, are
   * subtracted (a live row with one of them is not "extra"), straight from the expected table: EXCEPT
   * makes them distinct itself. A claim is not one: its document is outside the table (filtered out).
   */
  createExtra(contested: boolean): CompiledQuery {
    let sql =
      `CREATE TEMP TABLE ${EXTRA} AS SELECT * FROM (SELECT ${this.liveKeyTexts('a')} FROM ${this.target} a ` +
      `EXCEPT SELECT ${this.keyTexts('e')} FROM ${EXPECTED} e WHERE ${this.keysNotNull('e')} AND e.${ident('_status')} <> 'claim') x`;
    // An explode parent refused whole keeps its current links (load never sees it): they are not extra.
    const parent = this.table.explode?.parentColumn;
    const n = parent ? this.keyNames.indexOf(parent) : -1;
    if (n >= 0) {
      const pi = this.keyIndexes[n]!;
      sql +=
        ` WHERE NOT EXISTS (SELECT 1 FROM ${EXPECTED} d WHERE d.${ident('_status')} = 'rejected_document' ` +
        `AND ${canonical('d', pi, this.columns[pi]!.sqlType)} = x.${keyCol(n)})`;
    }
    // A row of a key whose row a load refuses for a shared value: a full run leaves none.
    if (this.otherUniques.length > 0) sql += ` UNION ALL SELECT ${this.liveKeyTexts('a')} FROM ${this.target} a WHERE EXISTS (SELECT 1 FROM ${SHARED} s WHERE ${this.liveIs('a', 's')})`;
    // A row of a key two documents claim: a load refuses both, and the row already there leaves.
    if (contested && this.contestedKeyColumn() >= 0) sql += ` UNION ALL SELECT ${this.liveKeyTexts('a')} FROM ${this.target} a WHERE ${this.ofContestedKey(`a.${ident(this.columns[this.documentKey]!.name)}::text`)}`;
    return compiled(sql);
  }

  /** Which key column (in keyList order) holds the document key, or -1 (a table of no document key). */
  private contestedKeyColumn(): number {
    return this.documentKey < 0 ? -1 : this.keyIndexes.indexOf(this.documentKey);
  }

  private ofContestedKey(text: string): string {
    return `EXISTS (SELECT 1 FROM ${CONTESTED} c WHERE c.k = ${text})`;
  }

  /** Extra rows of a key two documents claim (duplicate_key). */
  extraContestedCount(): CompiledQuery {
    const n = this.contestedKeyColumn();
    return compiled(`SELECT count(*)::bigint AS n FROM ${EXTRA} x WHERE ${n < 0 ? 'false' : this.ofContestedKey(`x.${keyCol(n)}`)}`);
  }

  /** `a.id::text = s.k0 AND …`: a live row (alias) of the key of a table of key texts (alias). */
  private liveIs(live: string, keys: string): string {
    return this.keyIndexes.map((ci, n) => `${live}.${ident(this.columns[ci]!.name)}::text = ${keys}.${keyCol(n)}`).join(' AND ');
  }

  /** Extra rows whose key's row a load refuses for a shared value. */
  extraSharedCount(): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${EXTRA} x JOIN ${SHARED} s ON ${this.sameKey('x', 's')}`);
  }

  count(table: SqlIdent): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${table}`);
  }

  liveCount(): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM ${this.target}`);
  }

  /** Records of the expected table by status, and the documents behind the threshold ones. */
  statusCounts(): CompiledQuery {
    return compiled(
      `SELECT ${ident('_status')} AS status, count(*)::bigint AS n, count(DISTINCT ${ident('_src')})::bigint AS documents ` +
      `FROM ${EXPECTED} GROUP BY 1`,
    );
  }

  private orderByKeys(alias?: string): string {
    return this.keyIndexes.map((_, n) => `${alias ? `${alias}.` : ''}${keyCol(n)} COLLATE "C"`).join(', ');
  }

  /** The first expected keys, when there is no table to compare with. */
  rowsSample(limit: number): CompiledQuery {
    return compiled(`SELECT ${this.keyList()}, ${ident('_src')} AS src FROM ${ROWS} ORDER BY ${this.orderByKeys()} LIMIT $1`, [limit]);
  }

  /** The first extra keys, with `u` (a table with another unique constraint): the constraint whose shared value refuses the key's row, else NULL. */
  extraSample(limit: number): CompiledQuery {
    if (this.otherUniques.length === 0) return compiled(`SELECT ${this.keyList()} FROM ${EXTRA} ORDER BY ${this.orderByKeys()} LIMIT $1`, [limit]);
    return compiled(
      `SELECT ${this.keyList('x')}, s.u FROM ${EXTRA} x LEFT JOIN ${SHARED} s ON ${this.sameKey('x', 's')} ORDER BY ${this.orderByKeys('x')} LIMIT $1`,
      [limit],
    );
  }

  rejectedByReason(): CompiledQuery {
    return compiled(
      `SELECT ${ident('_reason')} AS reason, count(*)::bigint AS n FROM ${EXPECTED} ` +
      `WHERE ${ident('_status')} IN ('rejected', 'rejected_document') GROUP BY 1 ORDER BY 1`,
    );
  }

  rejectedSample(limit: number): CompiledQuery {
    return compiled(
      `SELECT ${ident('_src')} AS src, ${ident('_col')} AS col, ${ident('_reason')} AS reason FROM ${EXPECTED} ` +
      `WHERE ${ident('_status')} IN ('rejected', 'rejected_document') ORDER BY ${ident('_ord')} LIMIT $1`,
      [limit],
    );
  }

  /** Rejected records whose key PostgreSQL holds: a row from an older, loadable version of the document. */
  rejectedInPostgres(): CompiledQuery {
    return compiled(`SELECT count(*)::bigint AS n FROM (${this.rejectedHeld()}) x`);
  }

  /** The keys (k0…) of rejected records that PostgreSQL holds. */
  private rejectedHeld(): string {
    return (
      `SELECT ${this.keyTexts('e')} FROM ${EXPECTED} e WHERE e.${ident('_status')} = 'rejected' AND ${this.keysNotNull('e')} ` +
      `INTERSECT SELECT ${this.liveKeyTexts('a')} FROM ${this.target} a`
    );
  }

  /**
   * etl repair: the keys (k0…) of PostgreSQL rows left by an older version of a document transform
   * rejects today, which a full run does not have: rows of a rejected record's key that no loadable
   * record gives, and the links of an explode parent refused whole.
   */
  staleRejected(): string {
    let sql = `SELECT * FROM (${this.rejectedHeld()}) h EXCEPT SELECT ${this.keyList()} FROM ${ROWS}`;
    const parent = this.table.explode?.parentColumn;
    const n = parent ? this.keyNames.indexOf(parent) : -1;
    if (n >= 0) {
      const pi = this.keyIndexes[n]!;
      sql +=
        ` UNION SELECT ${this.liveKeyTexts('a')} FROM ${this.target} a WHERE EXISTS (SELECT 1 FROM ${EXPECTED} d ` +
        `WHERE d.${ident('_status')} = 'rejected_document' AND ${canonical('d', pi, this.columns[pi]!.sqlType)} = a.${ident(parent!)}::text)`;
    }
    return sql;
  }

  /**
   * --deep: rows on both sides whose compared columns differ, with the differing column indexes.
   * A set_null reference whose row is absent is compared as the NULL the load would write. The rows
   * are first told apart as a whole (one row comparison, which stops at the first differing column);
   * the list of differing columns is built only for them, not for every joined row.
   */
  createChanged(): CompiledQuery {
    const pairs = this.compared.map((i) => {
      const c = this.columns[i]!;
      let expected = canonical('e', i, c.sqlType);
      const fk = this.foreign.find((f) => f.index === i && f.policy === 'set_null');
      if (fk) expected = `CASE WHEN ${fk.exists('e')} THEN ${expected} END`;
      return { i, expected: `(${expected})`, live: `a.${ident(c.name)}::text` };
    });
    const checks = pairs.map((p) => `CASE WHEN ${p.expected} IS DISTINCT FROM ${p.live} THEN ${p.i} END`);
    const array = `array_remove(ARRAY[${checks.join(', ')}]::int[], NULL)`;
    const differs = pairs.length ? `ROW(${pairs.map((p) => p.expected).join(', ')}) IS DISTINCT FROM ROW(${pairs.map((p) => p.live).join(', ')})` : 'false';
    // A row a load refuses for a shared value is extra already: a full run leaves none to compare.
    const kept = this.otherUniques.length > 0 ? ` AND NOT EXISTS (SELECT 1 FROM ${SHARED} s WHERE ${this.sameKey('s', 'e')})` : '';
    return compiled(
      `CREATE TEMP TABLE ${CHANGED} AS SELECT ${this.keyList('e')}, e.${ident('_src')} AS src, ${pairs.length ? array : 'ARRAY[]::int[]'} AS cols ` +
      `FROM ${ROWS} e JOIN ${this.target} a ON ${this.liveIs('a', 'e')} WHERE ${differs}${kept}`,
    );
  }

  changedByColumn(): CompiledQuery {
    return compiled(`SELECT i, count(*)::bigint AS n FROM ${CHANGED}, unnest(cols) AS i GROUP BY i ORDER BY i`);
  }

  changedSample(limit: number): CompiledQuery {
    return compiled(`SELECT ${this.keyList()}, src, cols FROM ${CHANGED} ORDER BY ${this.orderByKeys()} LIMIT $1`, [limit]);
  }

  /**
   * etl repair: the keys (k0…) whose etl_pending entries (`pending`: that table's identifier; `$n`:
   * the parameter holding this table's name) disagree with what a full run of the documents as
   * they are now would keep pending: an entry no refused or NULLed row gives any more, or whose
   * missing references are not the row's now (its document was deleted or changed where no
   * watermark sees it: it would land stale once the referenced row is back), and a row refused or
   * NULLed by set_null today with no entry (it would never land). A row refused for a shared value
   * (SHARED) is kept pending too, waiting for no reference (its entry's `missing` is empty): an
   * entry of it agrees, and without one its document is read again with the others holding the
   * value, so the repair's load refuses them all as a full run does.
   */
  pendingDrift(pending: SqlIdent, n: number): string {
    const refs = this.foreign.map((f) => ({ f, cell: `r.${cell(f.index)}` }));
    const cellOf = refs.length ? `CASE mm.key ${refs.map(({ f, cell: c }) => `WHEN ${literal(f.column)} THEN ${c}`).join(' ')} END` : 'NULL::text';
    const entryKey = (alias: string) => this.keyIndexes.map((_, i) => `p.row_key->>${i} = ${alias}.${keyCol(i)}`).join(' AND ');
    const shared = this.otherUniques.length > 0 ? ` UNION SELECT ${this.keyList()} FROM ${SHARED}` : '';
    const held = `SELECT ${this.keyList('r')} FROM ${ROWS} r WHERE ${this.heldNow('r')}${shared}`;
    const agrees = `SELECT 1 FROM (${held}) h JOIN ${ROWS} r ON ${this.keyIndexes.map((_, i) => `r.${keyCol(i)} = h.${keyCol(i)}`).join(' AND ')} ` +
      `WHERE ${entryKey('r')} AND NOT EXISTS (SELECT 1 FROM jsonb_each_text(p.missing) mm WHERE mm.value IS DISTINCT FROM ${cellOf})`;
    const stale = `SELECT ${this.keyIndexes.map((_, i) => `p.row_key->>${i} AS ${keyCol(i)}`).join(', ')} FROM ${pending} p WHERE p.table_name = $${n} AND NOT EXISTS (${agrees})`;
    const lacking = `SELECT * FROM (${held}) h WHERE NOT EXISTS (SELECT 1 FROM ${pending} p WHERE p.table_name = $${n} AND ${entryKey('h')})`;
    return `${stale} UNION ${lacking}`;
  }

  /**
   * The condition on an expected row (alias) that a full run keeps it pending: a reference it holds
   * points at a row PostgreSQL lacks (reject: refused; set_null: loaded NULL), and for set_null the
   * row is there to hold NULL (a refused row has its own entry).
   */
  private heldNow(alias: string): string {
    const refused = this.danglingReferences(alias, 'reject');
    const nulled = this.danglingReferences(alias, 'set_null');
    const missingRow = `NOT EXISTS (SELECT 1 FROM ${this.target} a WHERE ${this.keyIndexes.map((ci, i) => `a.${ident(this.columns[ci]!.name)}::text = ${alias}.${keyCol(i)}`).join(' AND ')})`;
    const parts = [...(refused.length ? [`(${missingRow} AND (${refused.join(' OR ')}))`] : []), ...nulled];
    return parts.length ? parts.join(' OR ') : 'false';
  }

  /** Row of a sample query → key object. */
  keyOf(row: Record<string, unknown>): Record<string, string | null> {
    return Object.fromEntries(this.keyIndexes.map((i, n) => [this.columns[i]!.name, (row[`k${n}`] as string | null) ?? null]));
  }
}

/** The columns that identify a row: the merge key, or every staged column when there is none. */
export function keyOf(table: TableModel): readonly string[] {
  const staged = new Set(table.stagedColumns.map((c) => c.name));
  const key = table.mergeKey.filter((k) => staged.has(k));
  return key.length === table.mergeKey.length && key.length > 0 ? key : table.stagedColumns.map((c) => c.name);
}
