// What PostgreSQL says the tables are, read from pg_catalog for the connection's current schema,
// in the model's vocabulary (canonical type spelling, column lists), so drift compares like with like.
import { canonicalCatalogType } from '../model/sql-types.ts';
import { compiled, runSql, type CompiledQuery, type Queryable } from './sql.ts';

export interface LiveColumn {
  readonly name: string;
  /** Canonical spelling (VARCHAR(255), TIMESTAMP, SERIAL …), as in ColumnModel.sqlTypeText. */
  readonly type: string;
  /** PostgreSQL's own spelling, for messages. */
  readonly rawType: string;
  readonly nullable: boolean;
  /** It has a default (a SERIAL's sequence): an insert that leaves it out still gives it a value. */
  readonly hasDefault: boolean;
}

export interface LiveKey {
  /** Constraint or index name (a constraint's index carries the constraint's name). */
  readonly name: string;
  readonly columns: readonly string[];
  /** False for a bare unique index (dropped with DROP INDEX, not DROP CONSTRAINT). */
  readonly isConstraint?: boolean;
}

export interface LiveForeignKey extends LiveKey {
  readonly refTable: string;
  readonly refColumns: readonly string[];
  /** DEFERRABLE INITIALLY IMMEDIATE, as the tool creates them (load defers them in its transaction). */
  readonly deferrable: boolean;
  readonly initiallyDeferred: boolean;
}

export interface LiveTable {
  readonly name: string;
  readonly columns: readonly LiveColumn[];
  readonly primaryKey: LiveKey | null;
  /** Unique constraints and unique indexes (plain columns, no predicate): both satisfy ON CONFLICT. */
  readonly uniques: readonly LiveKey[];
  readonly foreignKeys: readonly LiveForeignKey[];
}

/** Ordinary tables (relkind r, p) of the current schema, among `names`; with `column`, whether each has it. */
function tablesSql(names: readonly string[], column?: string): CompiledQuery {
  const has = column === undefined ? '' : `, EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped) AS has_column`;
  return compiled(
    `SELECT c.relname${has} FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])`,
    column === undefined ? [names] : [names, column],
  );
}

/** Names of the ordinary tables in the current schema, among `names`. */
export async function existingTables(client: Queryable, names: readonly string[]): Promise<Set<string>> {
  const { rows } = await runSql<{ relname: string }>(client, tablesSql(names));
  return new Set(rows.map((r) => r.relname));
}

/** The ordinary tables in the current schema among `names`, each with whether it has a column named `column`: one catalog read. */
export async function existingTablesWithColumn(client: Queryable, names: readonly string[], column: string): Promise<Map<string, boolean>> {
  const { rows } = await runSql<{ relname: string; has_column: boolean }>(client, tablesSql(names, column));
  return new Map(rows.map((r) => [r.relname, r.has_column]));
}

/** The indexes in the current schema among `names`, each with its key columns in order. */
export async function existingIndexes(client: Queryable, names: readonly string[]): Promise<Map<string, string[]>> {
  if (names.length === 0) return new Map();
  const { rows } = await runSql<{ relname: string; columns: string[] }>(
    client,
    compiled(
      `SELECT c.relname, array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind IN ('i', 'I') AND c.relname = ANY($1::text[])`,
      [names],
    ),
  );
  return new Map(rows.map((r) => [r.relname, r.columns]));
}

type ColumnRow = { table_name: string; name: string; type: string; notnull: boolean; default: string | null };
type IndexRow = { table_name: string; name: string; primary: boolean; columns: string[]; is_constraint: boolean };
type ForeignRow = { table_name: string; name: string; columns: string[]; ref_table: string; ref_columns: string[]; deferrable: boolean; deferred: boolean };

function columnsSql(names: readonly string[]): CompiledQuery {
  return compiled(
    `SELECT c.relname AS table_name, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS notnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])
        AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY c.relname, a.attnum`,
    [names],
  );
}

/** Unique indexes on plain columns without a predicate, primary keys included. */
function uniqueIndexesSql(names: readonly string[]): CompiledQuery {
  return compiled(
    `SELECT c.relname AS table_name, ic.relname AS name, i.indisprimary AS primary,
            EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u')) AS is_constraint,
            ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   ORDER BY k.ord)::text[] AS columns
       FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])
        AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
      ORDER BY c.relname, ic.relname`,
    [names],
  );
}

function foreignKeysSql(names: readonly string[]): CompiledQuery {
  return compiled(
    `SELECT c.relname AS table_name, con.conname AS name, con.condeferrable AS deferrable, con.condeferred AS deferred,
            ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                   ORDER BY k.ord)::text[] AS columns,
            rc.relname AS ref_table,
            ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                   ORDER BY k.ord)::text[] AS ref_columns
       FROM pg_catalog.pg_constraint con
       JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
       JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND con.contype = 'f' AND c.relname = ANY($1::text[])
      ORDER BY c.relname, con.conname`,
    [names],
  );
}

type TableParts = { columns: LiveColumn[]; primaryKey: LiveKey | null; uniques: LiveKey[]; foreignKeys: LiveForeignKey[] };

/** The live shape of each named table that exists (absent tables are absent from the map). */
export async function readTables(client: Queryable, names: readonly string[]): Promise<Map<string, LiveTable>> {
  const columns = await runSql<ColumnRow>(client, columnsSql(names));
  const indexes = await runSql<IndexRow>(client, uniqueIndexesSql(names));
  const foreign = await runSql<ForeignRow>(client, foreignKeysSql(names));
  const tables = new Map<string, TableParts>();
  const get = (name: string): TableParts => {
    let t = tables.get(name);
    if (!t) tables.set(name, (t = { columns: [], primaryKey: null, uniques: [], foreignKeys: [] }));
    return t;
  };
  for (const r of columns.rows) {
    get(r.table_name).columns.push({ name: r.name, type: canonicalCatalogType(r.type, r.default), rawType: r.type, nullable: !r.notnull, hasDefault: r.default !== null });
  }
  for (const r of indexes.rows) {
    const key = { name: r.name, columns: r.columns, isConstraint: r.is_constraint };
    if (r.primary) get(r.table_name).primaryKey = key;
    else get(r.table_name).uniques.push(key);
  }
  for (const r of foreign.rows) {
    const fk = { name: r.name, columns: r.columns, refTable: r.ref_table, refColumns: r.ref_columns, deferrable: r.deferrable, initiallyDeferred: r.deferred };
    get(r.table_name).foreignKeys.push(fk);
  }
  return new Map([...tables].map(([name, t]) => [name, { name, ...t }]));
}
