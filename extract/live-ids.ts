// Delete propagation, extract side. An incremental read only sees documents created or updated since
// the watermark, so a document deleted from MongoDB leaves no trace in it. For the collections whose
// tables propagate deletes, extract therefore also stages the collection's complete `_id` set:
// <run>/extract/<collection>.ids.ndjson, one `{_id[, filter fields]}` a line, read by a second
// streamed pass with no date filter (after the documents pass: see load/delete-propagation.ts for
// why that order, and the merge-then-delete order of load, give the right rows even for documents
// deleted while the extract runs).
//
// Which tables propagate:
//   --propagate-deletes      every upsert and explode table of the extract;
//   otherwise                the tables with `propagate_deletes: true` in pipeline.yaml.
// Dedupe tables (many documents → one row per key, users_logbook, menu_recipes) cannot: a document's
// `_id` names no row, and the row of a key whose latest document was deleted would have to be rebuilt
// from the other documents of the key. `propagate_deletes: true` on one is a configuration error;
// with the flag they are listed as unsupported. Their rows still follow deleted parents through their
// foreign keys (a deleted user's logbook rows go), as a full load would treat them.
import type { Document } from 'bson';
import { ConfigError } from '../model/errors.ts';
import type { PipelineModel, TableModel } from '../model/types.ts';
import type { ExtractIdsRecord, ExtractPropagationRecord } from '../staging/manifest-extract.ts';

export type { ExtractIdsRecord, ExtractPropagationRecord };

export interface PropagationScope {
  readonly record: ExtractPropagationRecord;
  /** Collection → its propagating tables (load order). */
  readonly byCollection: ReadonlyMap<string, readonly TableModel[]>;
}

export const DEDUPE_UNSUPPORTED =
  'dedupe table: a document _id names no row; its rows still follow deleted parent rows through their foreign keys';

/** The tables of this extract whose deletes propagate. Throws ConfigError for a dedupe table asking for it. */
export function propagationScope(model: PipelineModel, tables: readonly string[], flag: boolean): PropagationScope {
  const refused = tables.map((t) => model.tables.get(t)!).filter((t) => t.propagateDeletes && t.strategy === 'dedupe');
  if (refused.length > 0) {
    throw new ConfigError(
      'propagate_deletes is not supported on dedupe tables',
      refused.map((t) => ({
        file: model.file,
        line: t.line,
        col: 1,
        path: ['tables', t.name, 'propagate_deletes'],
        code: 'propagate_deletes_dedupe',
        message: `${t.name} is a dedupe table (many documents → one row per ${t.dedupe?.key.join(', ')}): a deleted document cannot be mapped to a row. Remove propagate_deletes; its rows still go when the row they reference is deleted`,
      })),
    );
  }
  const chosen: TableModel[] = [];
  const unsupported: { table: string; reason: string }[] = [];
  for (const name of tables) {
    const t = model.tables.get(name)!;
    if (!flag && !t.propagateDeletes) continue;
    // TableModel.documentKey: the column naming a document's rows (null for dedupe tables).
    if (t.documentKey !== null) chosen.push(t);
    else unsupported.push({ table: name, reason: t.strategy === 'dedupe' ? DEDUPE_UNSUPPORTED : 'no key column holds the document _id' });
  }
  const byCollection = new Map<string, TableModel[]>();
  for (const t of chosen) {
    const list = byCollection.get(t.collection) ?? [];
    list.push(t);
    byCollection.set(t.collection, list);
  }
  return { record: { flag, tables: chosen.map((t) => t.name), unsupported }, byCollection };
}

/** The ids pass: the OR of the tables' filters (none when one table reads every document), and the fields they read. */
export function idsQuery(tables: readonly TableModel[]): { query: Document; fields: string[] } {
  const fields = new Set<string>(['_id']);
  const queries: Readonly<Record<string, unknown>>[] = [];
  let everything = false;
  for (const t of tables) {
    const f = t.filter;
    if (!f || Object.keys(f.conditions).length === 0) {
      everything = true;
      continue;
    }
    queries.push(f.mongoQuery);
    // Top-level fields, as the documents pass projects them (a dotted path keeps its subdocument).
    for (const path of Object.keys(f.conditions)) fields.add(path.split('.')[0]!);
  }
  let query: Document = {};
  if (!everything && queries.length === 1) query = { ...queries[0]! };
  else if (!everything && queries.length > 1) query = { $or: queries.map((q) => ({ ...q })) };
  return { query, fields: [...fields] };
}
