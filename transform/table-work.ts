// What every strategy shares for one table: its output files, its counters, and turning a value
// into a cell or a reject line. Which documents and items become rows, and their values, is the
// table's mapping (mapping/); the strategy classes here (upsert.ts, explode.ts, dedupe.ts) convert
// and write what it yields.
import type { ColumnModel, TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import type { RunPaths } from '../staging/run-folder.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { columnConverter, Rejection, rejection, type ConvertSettings, type Converter, type NulTally, type RejectReason } from '../mapping/convert.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { documentIdKey, documentIdText, rejectLine, shortValue } from './rejects.ts';
import { keysFileColumns } from '../mapping/scope.ts';
import { keyOverflow, keyTextTooLong } from '../mapping/key-size.ts';
import { CsvOutput, NdjsonOutput } from './staged-output.ts';
import { csvField } from '../staging/csv-lines.ts';

export interface ConvertedColumn {
  readonly column: ColumnModel;
  readonly convert: Converter;
}

export interface OutputOptions {
  readonly paths: RunPaths;
  readonly settings: ConvertSettings;
  readonly signal: AbortSignal;
  readonly onFailure: (error: unknown) => void;
}

/** Types whose cells may hold any character (the others are digits, signs, dates: never quoted). */
const TEXTUAL_KINDS = new Set(['varchar', 'text', 'jsonb']);

/** Per staged column, whether its cells may hold any character (CsvOutput quotes only those). */
export const textualColumns = (table: TableModel): boolean[] => table.stagedColumns.map((c) => TEXTUAL_KINDS.has(c.sqlType.kind));

/** A document's cell in the keys file, and whether a NUL was stripped from it. */
export interface KeyCell {
  readonly cell: Cell;
  readonly stripped: boolean;
}

/** How a document's `_id` becomes its key in the keys file: the key column's converter, or (dedupe) its text. */
type ScopeKey = (id: unknown) => { cell: Cell | Rejection; stripped: boolean };

export abstract class TableWork {
  readonly name: string;
  readonly csv: CsvOutput;
  readonly rejects: NdjsonOutput;
  /** The scope: every document offered whose `_id` the key column holds (load replaces what they own). */
  readonly keys: CsvOutput | null;
  /** Documents of the collection offered to this table. */
  documents = 0;
  /** Documents whose `_id` the key column cannot hold: the run cannot name them (their rows stay). */
  unkeyed = 0;
  /** A repair run: documents asked for but not found, named in the keys file (null: not a repair). */
  absent: number | null = null;
  /** Documents extract refused, named in the keys file; null when the collection has no extract rejects. */
  extractRejected: number | null = null;
  rejected = 0;
  readonly skipped: Record<string, number> = {};
  /** Values changed on purpose (nul_character: strip), per column. */
  readonly altered: Record<string, Record<string, number>> = {};
  readonly columns: readonly ConvertedColumn[];
  protected readonly tally: NulTally = { stripped: false };
  /** Columns whose NULs were stripped in the row being built; counted when the row is written. */
  private pendingStrips: string[] = [];
  private readonly scopeKey: ScopeKey | null;
  /** Index of the key column to name when a converted row's key is too long to index (mapping/key-size.ts), else -1. */
  protected readonly keyOverflow: (cells: readonly Cell[]) => number;
  /** The keys file names each document's `_id` beside its key when they differ. */
  private readonly withIdentity: boolean;

  constructor(
    readonly table: TableModel,
    readonly collection: string,
    o: OutputOptions,
  ) {
    this.name = table.name;
    this.columns = table.stagedColumns.map((column) => ({ column, convert: columnConverter(column, o.settings, this.tally) }));
    this.csv = new CsvOutput(o.paths, o.paths.transformCsv(table.name), table.stagedColumns.map((c) => c.name), o.signal, o.onFailure, textualColumns(table));
    this.rejects = new NdjsonOutput(o.paths, o.paths.transformRejects(table.name), o.signal, o.onFailure);
    const keysColumns = keysFileColumns(table);
    this.keys = keysColumns === null ? null : new CsvOutput(o.paths, o.paths.transformKeys(table.name), keysColumns, o.signal, o.onFailure);
    this.withIdentity = keysColumns !== null && keysColumns.length === 2;
    this.scopeKey = this.scopeKeyOf(table);
    this.keyOverflow = keyOverflow(table);
  }

  private scopeKeyOf(table: TableModel): ScopeKey | null {
    if (table.strategy === 'dedupe') return (id) => ({ cell: documentIdKey(id), stripped: false });
    const i = table.stagedColumns.findIndex((c) => c.name === table.documentKey);
    if (i < 0) return null;
    return (id) => {
      const kept = this.convertKept(this.columns[i]!, id);
      // A key no index can hold names nothing: its rows are refused (keyOverflow).
      return typeof kept.cell === 'string' && keyTextTooLong(kept.cell) ? { cell: rejection('key_too_long'), stripped: false } : kept;
    };
  }

  /** The document's key cell as the keys file has it, or why it has none (a Rejection; null: a NULL key). */
  protected documentKeyCell(doc: RawDocument): Cell | Rejection {
    return this.scopeKey ? this.scopeKey(doc._id).cell : null;
  }


  /**
   * Every document offered to the table names itself in the keys file, whether it yields rows or not
   * (filtered out, refused, skipped): load replaces what it owned. Returns its key cell (with whether
   * a NUL was stripped from it), or null when the key column cannot hold its `_id`.
   */
  protected noteDocument(doc: RawDocument): KeyCell | null {
    if (!this.scopeKey) return null;
    const key = this.scopeKey(doc._id);
    if (key.cell instanceof Rejection || key.cell === null) {
      this.unkeyed += 1;
      return null;
    }
    // The line written directly (csvLine's bytes for [cell, id] or [cell]: every cell inspected, NULL
    // as nothing): no array per document, once per table of the collection.
    const field = csvField(key.cell);
    if (this.withIdentity) {
      const id = documentIdText(doc._id);
      this.keys!.writeLine(id === key.cell ? `${field},` : `${field},${csvField(id)}`);
    } else this.keys!.writeLine(field);
    // The converted key is already a KeyCell (a Rejection or NULL was refused above).
    return key as KeyCell;
  }

  /**
   * A repair run asked for this document and the collection does not hold it: it names itself in
   * the keys file like a read document that yields nothing, so load removes what it owned.
   */
  noteAbsent(doc: RawDocument): void {
    this.absent = (this.absent ?? 0) + 1;
    this.noteDocument(doc);
  }

  /**
   * A document extract refused (too deep, a field named twice…): it yields nothing now, so it names
   * itself in the keys file like a read document that yields nothing, and load removes what it owned
   * (a complete read would leave it no row either). Counted apart from `documents`.
   */
  noteRejectedByExtract(doc: RawDocument): void {
    this.extractRejected = (this.extractRejected ?? 0) + 1;
    this.noteDocument(doc);
  }

  /** One document of the collection (synchronous: outputs buffer, the reader drains). */
  abstract accept(doc: RawDocument): void;

  /** After the last document. Dedupe writes its rows here; `drain` relieves backpressure. */
  async finish(_drain: () => Promise<void>): Promise<void> {}

  /** Strategy-specific fields of the manifest record (their files committed). */
  protected abstract extra(): Partial<TransformTableRecord> | Promise<Partial<TransformTableRecord>>;

  /** Converts one value of the row being built (a NUL strip is counted if the row is written). */
  protected cell(c: ConvertedColumn, value: unknown): Cell | Rejection {
    this.tally.stripped = false;
    const out = c.convert(value);
    if (this.tally.stripped && !(out instanceof Rejection)) this.pendingStrips.push(c.column.name);
    return out;
  }

  /** Converts a value kept for several rows: its NUL strip is reported to the caller, not to the row being built. */
  protected convertKept(c: ConvertedColumn, value: unknown): { cell: Cell | Rejection; stripped: boolean } {
    this.tally.stripped = false;
    const cell = c.convert(value);
    return { cell, stripped: this.tally.stripped && !(cell instanceof Rejection) };
  }

  /** Writes the reject line for a value. */
  protected reject(doc: RawDocument, column: string, value: unknown, reason: RejectReason | string): void {
    this.pendingStrips.length = 0;
    this.rejected += 1;
    this.rejects.write(rejectLine({ collection: this.collection, _id: documentIdText(doc._id), table: this.name, column, value: shortValue(value), reason }));
  }

  /** Writes a row and counts the NULs stripped from it. */
  protected writeRow(cells: readonly Cell[]): void {
    this.csv.write(cells);
    this.commitStrips();
  }

  private commitStrips(): void {
    if (this.pendingStrips.length === 0) return;
    this.countStrips(this.pendingStrips);
    this.pendingStrips.length = 0;
  }

  /** Hands over the strips of a row kept for later (dedupe writes it, and counts them, at the end). */
  protected takeStrips(): string[] | null {
    if (this.pendingStrips.length === 0) return null;
    const taken = this.pendingStrips;
    this.pendingStrips = [];
    return taken;
  }

  /** A NUL strip of a value converted earlier and reused in the row being built. */
  protected noteStrip(column: string): void {
    this.pendingStrips.push(column);
  }

  protected countStrips(columns: readonly string[]): void {
    for (const column of columns) {
      const slot = (this.altered[column] ??= {});
      slot.nul_stripped = (slot.nul_stripped ?? 0) + 1;
    }
  }

  /** Drops the strips of a row that was built but not written. */
  protected forgetStrips(): void {
    this.pendingStrips.length = 0;
  }

  protected skip(reason: string): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
  }

  get outputs(): readonly (CsvOutput | NdjsonOutput)[] {
    return this.keys ? [this.csv, this.keys, this.rejects] : [this.csv, this.rejects];
  }

  /** Commits the files and returns the manifest record. */
  async commit(): Promise<TransformTableRecord> {
    const csv = await this.csv.commit();
    const keys = this.keys ? await this.keys.commit() : null;
    const rejects = await this.rejects.commit();
    return {
      collection: this.collection,
      strategy: this.table.strategy,
      documents: this.documents,
      rows: csv.records,
      rejected: this.rejected,
      skipped: sortedCounts(this.skipped),
      altered: Object.fromEntries(Object.keys(this.altered).sort().map((k) => [k, sortedCounts(this.altered[k]!)])),
      csv,
      keys,
      rejects,
      ...(keys ? { unkeyed: this.unkeyed } : {}),
      ...(this.absent !== null ? { absent: this.absent } : {}),
      ...(this.extractRejected !== null ? { extract_rejected: this.extractRejected } : {}),
      ...(await this.extra()),
    };
  }

  async discard(): Promise<void> {
    for (const o of this.outputs) await o.discard();
  }
}

/** Reason → count with keys sorted, so the manifest's bytes do not depend on arrival order. */
export function sortedCounts(counts: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(counts).sort().map((k) => [k, counts[k]!]));
}
