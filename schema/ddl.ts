// DDL from the model: CREATE TABLE with its keys, and the ALTER statements drift suggests. Every
// identifier goes through ident(). Constraints carry deterministic names (PostgreSQL's own pattern:
// users_pkey, users_targets_user_id_target_id_type_key, events_company_id_fkey) so a person reading
// the catalogs, and drift, find them under the name the YAML implies.
import type { ColumnModel, TableModel } from '../model/types.ts';
import { constraintName, fittedName } from '../model/derived-names.ts';
import { ident, identList, literal, type SqlIdent } from './sql.ts';

export { constraintName } from '../model/derived-names.ts';

/**
 * The sequence of a column changed to SERIAL: `<table>_<column>_seq`, as PostgreSQL names the one
 * CREATE TABLE makes, shortened with a hash when over 63 bytes: PostgreSQL's truncation of two such
 * names could otherwise make them one, and CREATE SEQUENCE IF NOT EXISTS would hand both columns the
 * same sequence.
 */
export const sequenceName = (t: TableModel, c: ColumnModel): string => fittedName(`${t.name}_${c.name}_seq`, '_seq');

const primaryKeyName = (t: TableModel) => constraintName(t.name, t.primaryKey, 'pkey');
const uniqueName = (t: TableModel, cols: readonly string[]) => constraintName(t.name, cols, 'key');
const foreignKeyName = (t: TableModel, c: ColumnModel) => constraintName(t.name, [c.name], 'fkey');

/** `"phone" VARCHAR(255)`, `"name" VARCHAR(255) NOT NULL`. */
function columnDefinition(c: ColumnModel): string {
  return `${ident(c.name)} ${c.sqlTypeText}${c.nullable ? '' : ' NOT NULL'}`;
}

function primaryKeyClause(t: TableModel): string {
  return `CONSTRAINT ${ident(primaryKeyName(t))} PRIMARY KEY (${identList(t.primaryKey)})`;
}

function uniqueClause(t: TableModel, cols: readonly string[]): string {
  return `CONSTRAINT ${ident(uniqueName(t, cols))} UNIQUE (${identList(cols)})`;
}

/**
 * Every foreign key the tool creates is DEFERRABLE INITIALLY IMMEDIATE: checked per statement as
 * usual, but load may defer the checks to its commit (SET CONSTRAINTS … DEFERRED) while it replaces
 * rows in several tables of one transaction.
 */
function foreignKeyClause(t: TableModel, c: ColumnModel): string {
  const fk = c.foreignKey!;
  return `CONSTRAINT ${ident(foreignKeyName(t, c))} FOREIGN KEY (${ident(c.name)}) REFERENCES ${ident(fk.table)} (${ident(fk.column)}) ${FOREIGN_KEY_TIMING}`;
}

const FOREIGN_KEY_TIMING = 'DEFERRABLE INITIALLY IMMEDIATE';

/** The table as pipeline.yaml describes it. IF NOT EXISTS: the statement can be re-run as printed. */
export function createTableSql(t: TableModel): string {
  const lines = t.columns.map(columnDefinition);
  if (t.primaryKey.length > 0) lines.push(primaryKeyClause(t));
  for (const u of t.uniqueConstraints) lines.push(uniqueClause(t, u));
  for (const c of t.columns) if (c.foreignKey) lines.push(foreignKeyClause(t, c));
  return `CREATE TABLE IF NOT EXISTS ${ident(t.name)} (\n  ${lines.join(',\n  ')}\n)`;
}

const table = (t: TableModel): SqlIdent => ident(t.name);

export function addColumnSql(t: TableModel, c: ColumnModel): string {
  return `ALTER TABLE ${table(t)} ADD COLUMN ${columnDefinition(c)}`;
}

/** Changes a column's type; a SERIAL becomes an INTEGER fed by its own sequence, as CREATE would make it. */
export function alterColumnTypeSql(t: TableModel, c: ColumnModel): string[] {
  if (c.sqlType.kind === 'serial') {
    const seq = sequenceName(t, c);
    return [
      `CREATE SEQUENCE IF NOT EXISTS ${ident(seq)} OWNED BY ${table(t)}.${ident(c.name)}`,
      `ALTER TABLE ${table(t)} ALTER COLUMN ${ident(c.name)} TYPE INTEGER USING ${ident(c.name)}::INTEGER`,
      `ALTER TABLE ${table(t)} ALTER COLUMN ${ident(c.name)} SET DEFAULT nextval(${literal(ident(seq))})`,
      // The next number follows the rows already there.
      `SELECT setval(${literal(ident(seq))}, COALESCE((SELECT MAX(${ident(c.name)}) FROM ${table(t)}), 0) + 1, false)`,
    ];
  }
  return [`ALTER TABLE ${table(t)} ALTER COLUMN ${ident(c.name)} TYPE ${c.sqlTypeText} USING ${ident(c.name)}::${c.sqlTypeText}`];
}

export function setNullabilitySql(t: TableModel, c: ColumnModel): string {
  return `ALTER TABLE ${table(t)} ALTER COLUMN ${ident(c.name)} ${c.nullable ? 'DROP NOT NULL' : 'SET NOT NULL'}`;
}

export function addPrimaryKeySql(t: TableModel): string {
  return `ALTER TABLE ${table(t)} ADD ${primaryKeyClause(t)}`;
}

export function addUniqueSql(t: TableModel, cols: readonly string[]): string {
  return `ALTER TABLE ${table(t)} ADD ${uniqueClause(t, cols)}`;
}

export function addForeignKeySql(t: TableModel, c: ColumnModel): string {
  return `ALTER TABLE ${table(t)} ADD ${foreignKeyClause(t, c)}`;
}

/** An existing foreign key made deferrable, as the tool creates them (no data is read or changed). */
export function makeDeferrableSql(tableName: string, constraint: string): string {
  return `ALTER TABLE ${ident(tableName)} ALTER CONSTRAINT ${ident(constraint)} ${FOREIGN_KEY_TIMING}`;
}

export function dropColumnSql(tableName: string, column: string): string {
  return `ALTER TABLE ${ident(tableName)} DROP COLUMN ${ident(column)}`;
}

export function dropConstraintSql(tableName: string, constraint: string): string {
  return `ALTER TABLE ${ident(tableName)} DROP CONSTRAINT ${ident(constraint)}`;
}

/** Suggested only (drift's `fix`): dropping is a person's decision, made with `etl schema --allow`. */
export function dropColumnComment(tableName: string, column: string): string {
  return `-- ${dropColumnSql(tableName, column)}`;
}

export function dropConstraintComment(tableName: string, constraint: string): string {
  return `-- ${dropConstraintSql(tableName, constraint)}`;
}
