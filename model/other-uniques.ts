// The unique constraints of a table (its primary key included) other than the key its rows are
// merged on: users declaring [email]. A value two rows would hold is the load's to handle
// (load/unique-values.ts), and `etl diff` models what the load does with it (inspect/diff-sql.ts):
// both take the constraints from here.
import { constraintName } from './derived-names.ts';
import type { TableModel } from './types.ts';

export interface OtherUniqueConstraint {
  /** The name etl gives it in PostgreSQL (the DDL derives it with the same constraintName). */
  readonly name: string;
  /** Its columns, in declared order. */
  readonly columns: readonly string[];
  readonly primaryKey: boolean;
}

/** Whether two column lists name the same columns, whatever their order. */
export const sameColumns = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

/**
 * The table's unique constraints (primary key included) other than `key` (the columns its rows are
 * merged on), when every column is staged: a SERIAL id is not, PostgreSQL assigns it.
 */
export function otherUniqueConstraints(table: TableModel, key: readonly string[]): OtherUniqueConstraint[] {
  const staged = new Set(table.stagedColumns.map((c) => c.name));
  const declared = [
    { name: constraintName(table.name, table.primaryKey, 'pkey'), columns: table.primaryKey, primaryKey: true },
    ...table.uniqueConstraints.map((u) => ({ name: constraintName(table.name, u, 'key'), columns: u, primaryKey: false })),
  ];
  return declared.filter((u) => u.columns.length > 0 && !sameColumns(u.columns, key) && u.columns.every((c) => staged.has(c)));
}
