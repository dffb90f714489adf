// What a document becomes in a table, as pure functions of the resolved TableModel: which documents
// the table keeps (filter.ts), and per strategy (upsert.ts, explode.ts, dedupe.ts) how the values of
// its rows are read, and which document owns them. No I/O and no type conversion here: transform
// converts the values into cells and writes the staged files around these functions, and `etl diff`
// (inspect/expected-rows.ts) uses the same functions to say what a load would write.
import type { TableModel } from '../model/types.ts';
import { dedupeMapping, type DedupeMapping } from './dedupe.ts';
import { explodeMapping, type ExplodeMapping } from './explode.ts';
import { upsertMapping, type UpsertMapping } from './upsert.ts';

export type TableMapping = UpsertMapping | ExplodeMapping | DedupeMapping;

export function tableMapping(table: TableModel): TableMapping {
  switch (table.strategy) {
    case 'upsert':
      return upsertMapping(table);
    case 'explode':
      return explodeMapping(table);
    case 'dedupe':
      return dedupeMapping(table);
  }
}
