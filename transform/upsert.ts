// strategy: upsert in transform — each document's row (mapping/upsert.ts), converted and written.
import type { DedupeMapping } from '../mapping/dedupe.ts';
import type { UpsertMapping } from '../mapping/upsert.ts';
import type { Cell } from '../staging/csv.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { Rejection } from '../mapping/convert.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { TableWork, type KeyCell, type OutputOptions } from './table-work.ts';

export class UpsertWork extends TableWork {
  private readonly rows: UpsertMapping | DedupeMapping;

  constructor(mapping: UpsertMapping | DedupeMapping, collection: string, o: OutputOptions) {
    super(mapping.table, collection, o);
    this.rows = mapping;
  }

  accept(doc: RawDocument): void {
    this.documents += 1;
    const key = this.noteDocument(doc);
    const skipped = this.rows.skip(doc);
    if (skipped !== null) {
      this.skip(skipped);
      return;
    }
    const cells = this.buildRow(doc, key);
    if (cells) this.take(doc, cells, key);
  }

  /** A document's converted row (`key`: its keys-file cell, or null): upsert writes it. */
  protected take(_doc: RawDocument, cells: Cell[], _key: KeyCell | null): void {
    this.writeRow(cells);
  }

  /**
   * The row's cells, or null after writing the reject line of the first column that fails (or of the
   * key, too long to index: mapping/key-size.ts). The
   * document key column's cell is the keys file's, converted once (the same converter, the same value).
   */
  private buildRow(doc: RawDocument, key: KeyCell | null): Cell[] | null {
    const readers = this.rows.readers;
    const keyIndex = key === null ? -1 : (this.rows.keyIndex ?? -1);
    const cells: Cell[] = new Array(this.columns.length);
    for (let i = 0; i < this.columns.length; i += 1) {
      if (i === keyIndex) {
        cells[i] = key!.cell;
        if (key!.stripped) this.noteStrip(this.columns[i]!.column.name);
        continue;
      }
      const value = readers[i]!(doc);
      const cell = this.cell(this.columns[i]!, value);
      if (cell instanceof Rejection) {
        this.reject(doc, this.columns[i]!.column.name, value, cell.reason);
        return null;
      }
      cells[i] = cell;
    }
    const long = this.keyOverflow(cells);
    if (long >= 0) {
      this.reject(doc, this.columns[long]!.column.name, cells[long], 'key_too_long');
      return null;
    }
    return cells;
  }

  protected extra(): Partial<TransformTableRecord> | Promise<Partial<TransformTableRecord>> {
    return {};
  }
}
