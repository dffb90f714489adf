// A dedupe table whose key changed in pipeline.yaml (`dedupe_key`, and the unique constraint load
// merges on, or a primary key over it): its rows were made by the old key, so a narrower key may find
// several of them under one new key, and the constraint cannot be added. Without it no run can merge (ON CONFLICT needs
// it), and without a run the rows stay as the old key made them. The rows are derived: the next run
// reads the table's collection in full (its mapping changed) and recomputes every row from the
// documents by the new key. So `etl schema` keeps one row per new key until then (the last
// physical one: any choice is replaced) and adds the constraint.
import type { TableModel } from '../model/types.ts';
import type { SchemaChange } from './changes.ts';
import { duplicates, referencingRows } from './probes.ts';
import { ident, type Queryable } from './sql.ts';

/** Rows of alias p that another row of the same key follows (physically): all but one per key. */
function supersededCondition(table: string, columns: readonly string[]): string {
  const same = columns.map((c) => `b.${ident(c)} = p.${ident(c)}`).join(' AND ');
  return `EXISTS (SELECT 1 FROM ${ident(table)} b WHERE ${same} AND b.ctid > p.ctid)`;
}

/** The add of the new key with the DELETE of the extra rows first; null when no key holds several rows, or rows reference them. */
export async function rekeyedChange(client: Queryable, t: TableModel, columns: readonly string[], add: SchemaChange): Promise<SchemaChange | null> {
  const dupes = await duplicates(client, t.name, columns);
  if (dupes.count === 0) return null;
  const condition = supersededCondition(t.name, columns);
  if (Object.keys(await referencingRows(client, t.name, condition)).length > 0) return null;
  return {
    ...add,
    sql: [`DELETE FROM ${ident(t.name)} AS p WHERE ${condition}`, ...add.sql],
    message:
      `${add.message}; ${dupes.count} key(s) of it hold several rows the old dedupe key made (e.g. ${dupes.examples[0] ?? '?'}): ` +
      `one row per key stays until the next run, which reads ${t.collection} in full (the mapping changed) and recomputes every row by the new key`,
  };
}
