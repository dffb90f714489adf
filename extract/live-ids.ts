// Delete propagation, extract side. An incremental read only sees documents created or updated since
// the watermark, so a document deleted from MongoDB leaves no trace in it. For the collections whose
// tables propagate deletes, extract therefore also stages the collection's complete `_id` set:
// <run>/extract/<collection>.ids.ndjson, one `{_id[, filter fields]}` a line, read by a second
// streamed pass with no date filter (after the documents pass: see load/delete-propagation.ts for
// why that order, and the merge-then-delete order of load, give the right rows even for documents
// deleted while the extract runs).
//
// Which tables propagate:
//   --propagate-deletes      every table of the extract whose documents a column names;
//   otherwise                the tables with `propagate_deletes: true` in pipeline.yaml.
// A dedupe table (many documents → one row per key) propagates through its contributions: load
// drops those of deleted documents and recomputes their keys from the documents that remain.
import type { Document } from 'bson';
import { documentColumn } from '../mapping/scope.ts';
import type { PipelineModel, TableModel } from '../model/types.ts';
import type { ExtractIdsRecord, ExtractPropagationRecord } from '../staging/manifest-extract.ts';

export type { ExtractIdsRecord, ExtractPropagationRecord };

export interface PropagationScope {
  readonly record: ExtractPropagationRecord;
  /** Collection → its propagating tables (load order). */
  readonly byCollection: ReadonlyMap<string, readonly TableModel[]>;
}

/** The tables of this extract whose deletes propagate. */
export function propagationScope(model: PipelineModel, tables: readonly string[], flag: boolean): PropagationScope {
  const chosen: TableModel[] = [];
  const unsupported: { table: string; reason: string }[] = [];
  for (const name of tables) {
    const t = model.tables.get(name)!;
    if (!flag && !t.propagateDeletes) continue;
    // The column naming a table's documents (mapping/scope.ts): a dedupe table's are its contributions'.
    if (documentColumn(t) !== null) chosen.push(t);
    else unsupported.push({ table: name, reason: 'no key column holds the document _id' });
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
