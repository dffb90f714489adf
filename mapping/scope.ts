// Which document owns a table's rows, as every stage names it: the keys file (the documents whose
// rows a run replaces), the live keys file (delete propagation), the contributions of a dedupe table
// and etl_pending's owner. Upsert and explode rows carry their document's `_id` in a column of their
// own (TableModel.documentKey); a dedupe row belongs to several documents, so its keys name the
// documents themselves, in a column of the contributions.
import type { TableModel } from '../model/types.ts';

/**
 * The column naming a source document by its `_id` (documentIdText: 24 hex for an ObjectId, else its
 * canonical Extended JSON, so `"77"` and Int32 77 stay apart): in a dedupe table's keys and
 * contributions, and beside the key in the keys file of the other tables. `_id`, with more leading
 * underscores while a staged column has that name.
 */
export function documentIdColumn(table: TableModel): string {
  let name = '_id';
  const taken = new Set(table.stagedColumns.map((c) => c.name));
  while (taken.has(name)) name = `_${name}`;
  return name;
}

/** The column naming a table's owning documents in keys and live keys files, or null when none does. */
export function documentColumn(table: TableModel): string | null {
  if (table.strategy === 'dedupe') return documentIdColumn(table);
  return table.documentKey;
}

/**
 * The header of a table's keys file: the key column and, beside it, the document's `_id` when it is
 * not the key's own text (two documents of different `_id` types may convert to the same key: load
 * refuses both); a dedupe table's keys are the `_id`s themselves.
 */
export function keysFileColumns(table: TableModel): string[] | null {
  if (table.strategy === 'dedupe') return [documentIdColumn(table)];
  return table.documentKey === null ? null : [table.documentKey, documentIdColumn(table)];
}
