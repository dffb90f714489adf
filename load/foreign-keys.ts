// The foreign-key graph of the model, as load follows it: which columns of a table other tables
// reference (a row deleted from it must be followed to them), and which references of a table point
// where, with the policy load applies when the referenced row is missing.
import type { PipelineModel, TableModel } from '../model/types.ts';

export interface Edge {
  /** The referencing table and column. */
  readonly from: TableModel;
  readonly column: string;
  readonly to: string;
  readonly toColumn: string;
  /** A NOT NULL column cannot be set NULL: it counts as reject. */
  readonly action: 'reject' | 'set_null';
}

export function edgesOf(model: PipelineModel): Edge[] {
  const edges: Edge[] = [];
  for (const name of model.loadOrder) {
    const t = model.tables.get(name)!;
    for (const c of t.columns) {
      const fk = c.foreignKey;
      if (!fk || !model.tables.has(fk.table)) continue;
      edges.push({ from: t, column: c.name, to: fk.table, toColumn: fk.column, action: fk.onMissing === 'set_null' && c.nullable ? 'set_null' : 'reject' });
    }
  }
  return edges;
}

/** Columns of `table` that some foreign key of the model references. */
export function referencedColumns(edges: readonly Edge[], table: string): string[] {
  return [...new Set(edges.filter((e) => e.to === table).map((e) => e.toColumn))];
}
