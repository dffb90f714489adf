// Everything the SQL of one table's load needs, derived once from its TableModel and quoted once:
// the target, the staged columns and their types, the merge key, the column holding the document
// `_id`, and the names of the temp tables of the step. Nothing here is written per table.
import { ident, type SqlIdent } from '../schema/sql.ts';
import { valueTypeText } from '../model/sql-types.ts';
import type { ColumnModel, TableModel } from '../model/types.ts';
import { documentIdColumn, contributionsTableName } from '../schema/state-tables.ts';
import { otherUniqueConstraints, sameColumns } from '../model/other-uniques.ts';


export interface ShapeColumn {
  readonly name: string;
  readonly id: SqlIdent;
  readonly nullable: boolean;
  /** The type temp tables give the column: the real one, so COPY reports exact parse errors. */
  readonly type: string;
}

/** A unique constraint (or primary key) other than the merge key: its columns (load/unique-values.ts). */
export interface OtherUnique {
  readonly columns: readonly ShapeColumn[];
}

/** The temp tables of one table's step (numbered by load order, so any table name fits in 63 bytes). */
export interface TempTables {
  /** The batch: staged rows (or, for dedupe, the recomputed rows of the touched keys). */
  readonly stage: SqlIdent;
  /** The documents (upsert, explode: their key; dedupe: their `_id`) whose rows this run replaces. */
  readonly keys: SqlIdent;
  /** References found missing in the batch. */
  readonly rejects: SqlIdent;
  /** dedupe: the staged contributions. */
  readonly contrib: SqlIdent;
  /** dedupe: the keys whose row is recomputed. */
  readonly touched: SqlIdent;
  /** The referenced columns of the rows this load deleted from the table (children follow them). */
  readonly gone: SqlIdent;
  /** Delete propagation: the keys of the rows the table may hold. */
  readonly live: SqlIdent;
  /** Keys two source documents claim (load/claims.ts). */
  readonly contested: SqlIdent;
  /** dedupe, repair runs: keys recomputed whatever the run stages. */
  readonly recompute: SqlIdent;
  /** dedupe, first load into an empty table: the keys a contribution of which misses a reference. */
  readonly suspects: SqlIdent;
  /** The holders of a value of another unique constraint that rows of two keys or more hold (load/unique-values.ts). */
  readonly shared: SqlIdent;
}

export interface TableShape {
  readonly table: TableModel;
  /** Position in the model's load order: names the temp tables. */
  readonly index: number;
  readonly kind: TableModel['mergeKind'];
  readonly target: SqlIdent;
  readonly temps: TempTables;
  /** Temp column numbering staged rows by their CSV record (header = 1, as COPY counts). */
  readonly line: SqlIdent;
  readonly lineName: string;
  /** Staged columns, in CSV order. */
  readonly columns: readonly ShapeColumn[];
  /** The columns a row is merged on (primary key, unique constraint or dedupe key). */
  readonly key: readonly ShapeColumn[];
  /** Merged columns outside the key: what an update rewrites. */
  readonly others: readonly ShapeColumn[];
  /** dedupe: the column deciding which contribution is the latest. */
  readonly latestBy: ShapeColumn | null;
  /** The column holding the owning document's `_id` (upsert: its id; explode: the parent column). */
  readonly docKey: ShapeColumn | null;
  /** delete_and_insert: the parent column. */
  readonly parent: ShapeColumn | null;
  /** The key is the table's primary key or one of its unique constraints (ON CONFLICT can name it). */
  readonly keyIsUnique: boolean;
  /** The table's other unique constraints on staged columns (users declaring [email]): load/unique-values.ts. */
  readonly otherUniques: readonly OtherUnique[];
  /** dedupe: the state table of contributions, and the name of its document column. */
  readonly contributions: SqlIdent | null;
  readonly documentColumn: ShapeColumn;
}

/** `base`, or more leading underscores while a staged column already has that name. */
export function freeColumnName(table: TableModel, base: string): string {
  let name = base;
  const taken = new Set(table.stagedColumns.map((c) => c.name));
  while (taken.has(name)) name = `_${name}`;
  return name;
}

/** The temp line column's name: `etl_line`, or more underscores if a staged column already has it. */
export const lineColumnName = (table: TableModel): string => freeColumnName(table, 'etl_line');

function tempTables(index: number): TempTables {
  const t = (what: string) => ident(`etl_${what}_${index}`);
  return { stage: t('stage'), keys: t('keys'), rejects: t('rejects'), contrib: t('contrib'), touched: t('touched'), gone: t('gone'), live: t('live'), contested: t('contested'), recompute: t('recompute'), suspects: t('suspects'), shared: t('shared') };
}

/** Temp table name → the real table, so messages never show our internal names. */
export function tempNamesOf(shape: TableShape): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [role, id] of Object.entries(shape.temps)) out[id.slice(1, -1)] = role === 'stage' ? shape.table.name : `${shape.table.name} ${role}`;
  return out;
}

const shapeColumn = (c: ColumnModel): ShapeColumn => ({ name: c.name, id: ident(c.name), nullable: c.nullable && !c.primaryKey, type: valueTypeText(c.sqlType) });

export function tableShape(table: TableModel, index: number): TableShape {
  const kind = table.mergeKind;
  const columns = table.stagedColumns.map(shapeColumn);
  const byName = new Map(columns.map((c) => [c.name, c]));
  const pick = (name: string): ShapeColumn => {
    const c = byName.get(name);
    if (!c) throw new Error(`table ${table.name}: merge column "${name}" is not a staged column`);
    return c;
  };
  const keyNames = mergeKeyNames(table, kind);
  const keySet = new Set(keyNames);
  const docKeyName = table.documentKey;
  return Object.freeze({
    table,
    index,
    kind,
    target: ident(table.name),
    temps: tempTables(index),
    line: ident(lineColumnName(table)),
    lineName: lineColumnName(table),
    columns,
    key: keyNames.map(pick),
    others: columns.filter((c) => !keySet.has(c.name)),
    latestBy: kind === 'dedupe_upsert' ? pick(table.dedupe!.latestBy) : null,
    docKey: docKeyName ? pick(docKeyName) : null,
    parent: kind === 'delete_and_insert' ? pick(table.explode!.parentColumn) : null,
    keyIsUnique: [table.primaryKey, ...table.uniqueConstraints].some((u) => u.length > 0 && sameColumns(u, keyNames)),
    otherUniques: otherUniqueConstraints(table, keyNames).map((u) => ({ columns: u.columns.map((c) => byName.get(c)!) })),
    contributions: kind === 'dedupe_upsert' ? ident(contributionsTableName(table.name)) : null,
    documentColumn: { name: documentIdColumn(table), id: ident(documentIdColumn(table)), nullable: false, type: 'TEXT' },
  });
}

function mergeKeyNames(table: TableModel, kind: TableModel['mergeKind']): string[] {
  let names = [...table.mergeKey];
  const parent = kind === 'delete_and_insert' ? table.explode!.parentColumn : null;
  // A link table without a unique constraint: a link is the whole row.
  if (parent && names.length === 0) names = table.stagedColumns.map((c) => c.name);
  // A row of delete-and-insert is matched within its parent: the parent column is part of the key.
  if (parent && !names.includes(parent)) names = [parent, ...names];
  if (names.length === 0) throw new Error(`table ${table.name} has no merge key`);
  return names;
}

// ── SQL fragments shared by the step builders ─────────────────────────────────────────────────────

/** `a, b, c` (optionally each prefixed by an alias). */
export const list = (cs: readonly ShapeColumn[], prefix = ''): string => cs.map((c) => `${prefix}${c.id}`).join(', ');

/** `a.k1 = b.k1 AND …`, with IS NOT DISTINCT FROM where a key column may be NULL. */
export function matchKey(cs: readonly ShapeColumn[], a: string, b: string): string {
  return cs.map((c) => (c.nullable ? `${a}.${c.id} IS NOT DISTINCT FROM ${b}.${c.id}` : `${a}.${c.id} = ${b}.${c.id}`)).join(' AND ');
}

/** `jsonb_build_object('k1', a.k1, …)`: a row's key as the load rejects file names it (names as parameters from `first`). */
export function keyObject(cs: readonly ShapeColumn[], alias: string, first: number): { sql: string; names: string[] } {
  return { sql: `jsonb_build_object(${cs.map((c, i) => `$${first + i}::text, ${alias}.${c.id}`).join(', ')})`, names: cs.map((c) => c.name) };
}

/** `jsonb_build_array(a.k1, a.k2)`: a row's key as the state tables store it. */
export const keyJson = (cs: readonly ShapeColumn[], alias: string): string => `jsonb_build_array(${list(cs, `${alias}.`)})`;
