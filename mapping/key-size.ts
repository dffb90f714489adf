// PostgreSQL cannot index a value whose index row passes 2,704 bytes (a btree page's third), and
// MongoDB 4.2+ indexes an `_id` or any field of any length. One row whose key was longer failed the
// whole load ("index row size 6032 exceeds btree version 4 maximum 2704"): in the table's own unique
// index, or in etl's state tables, which keep a row's key beside other text (etl_claims: beside its
// document's `_id`; etl_pending: its whole key; etl_contrib_<table>: a dedupe key). A row whose key
// is longer than KEY_BYTES_MAX is refused instead (key_too_long): every index stays within its page.
import type { TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';

/** The most UTF-8 bytes a row's key may hold, all its columns together: MongoDB's own index key limit before 4.2. */
export const KEY_BYTES_MAX = 1_024;

/** Whether one key text (a document's key cell, its `_id` as etl names it) is longer than a key may be. */
export function keyTextTooLong(text: string): boolean {
  return text.length * 3 > KEY_BYTES_MAX && Buffer.byteLength(text, 'utf8') > KEY_BYTES_MAX;
}

/** The staged columns PostgreSQL indexes: the primary key, every unique constraint, the merge key, the document key. */
function keyColumnIndexes(table: TableModel): number[] {
  const names = new Set([...table.primaryKey, ...table.uniqueConstraints.flat(), ...table.mergeKey, ...(table.documentKey ? [table.documentKey] : [])]);
  return table.stagedColumns.flatMap((c, i) => (names.has(c.name) ? [i] : []));
}

/**
 * For a table, the test of a converted row: the index of the key column to name when the row's key
 * is too long to index (its longest cell), else -1.
 */
export function keyOverflow(table: TableModel): (cells: readonly Cell[]) => number {
  const indexes = keyColumnIndexes(table);
  return (cells) => {
    let units = 0;
    for (const i of indexes) units += cells[i]?.length ?? 0;
    // A UTF-16 code unit is at most 3 UTF-8 bytes: the common short key costs no byte count.
    if (units * 3 <= KEY_BYTES_MAX) return -1;
    let bytes = 0;
    let longest = -1;
    for (const i of indexes) {
      const cell = cells[i];
      if (cell === null || cell === undefined) continue;
      bytes += Buffer.byteLength(cell, 'utf8');
      if (longest === -1 || cell.length > cells[longest]!.length) longest = i;
    }
    return bytes > KEY_BYTES_MAX ? longest : -1;
  };
}
