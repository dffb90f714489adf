// strategy: upsert — one document, one row (after the table's filter).
import type { TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { Rejection } from './convert.ts';
import { compilePath, type RawDocument } from './ejson-value.ts';
import { compileFilter } from './filter.ts';
import { TableWork, type OutputOptions } from './table-work.ts';

/** Reads a column's value from the document: a field (dotted path). */
export function fieldReader(table: TableModel, name: string, source: TableModel['columns'][number]['source']): (doc: RawDocument) => unknown {
  switch (source.kind) {
    case 'field':
      return compilePath(source.path);
    case 'parent_id':
      return compilePath('_id');
    default:
      throw new Error(`table ${table.name}: column ${name} has source "${source.kind}", which a ${table.strategy} table cannot fill`);
  }
}

export class UpsertWork extends TableWork {
  private readonly readers: ((doc: RawDocument) => unknown)[];
  protected readonly keep: ((doc: RawDocument) => boolean) | null;

  constructor(table: TableModel, collection: string, o: OutputOptions) {
    super(table, collection, o, null);
    this.readers = this.columns.map((c) => fieldReader(table, c.column.name, c.column.source));
    this.keep = compileFilter(table.filter);
  }

  accept(doc: RawDocument): void {
    this.documents += 1;
    if (this.keep && !this.keep(doc)) {
      this.skip('filtered');
      return;
    }
    const cells = this.buildRow(doc);
    if (cells) this.writeRow(cells);
  }

  /** The row's cells, or null after writing the reject line of the first column that fails. */
  protected buildRow(doc: RawDocument): Cell[] | null {
    const cells: Cell[] = new Array(this.columns.length);
    for (let i = 0; i < this.columns.length; i += 1) {
      const value = this.readers[i]!(doc);
      const cell = this.cell(this.columns[i]!, value);
      if (cell instanceof Rejection) {
        this.reject(doc, this.columns[i]!.column.name, value, cell.reason);
        return null;
      }
      cells[i] = cell;
    }
    return cells;
  }

  protected extra(): Partial<TransformTableRecord> {
    return {};
  }
}
