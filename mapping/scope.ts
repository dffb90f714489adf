// Which document owns a table's rows, as every stage names it: the keys file (the documents whose
// rows a run replaces), the live keys file (delete propagation), the contributions of a dedupe table
// and etl_pending's owner. Upsert and explode rows carry their document's `_id` in a column of their
// own (TableModel.documentKey); a dedupe row belongs to several documents, so its keys name the
// documents themselves, in a column of the contributions.
import type { TableModel } from '../model/types.ts';

/** The contributions' document column of a dedupe table: `_id`, with more leading underscores while a staged column has that name. */
export function contributionsDocumentColumn(table: TableModel): string {
  let name = '_id';
  const taken = new Set(table.stagedColumns.map((c) => c.name));
  while (taken.has(name)) name = `_${name}`;
  return name;
}

/** The column naming a table's owning documents in keys and live keys files, or null when none does. */
export function documentColumn(table: TableModel): string | null {
  if (table.strategy === 'dedupe') return contributionsDocumentColumn(table);
  return table.documentKey;
}
