// strategy: dedupe in transform — many documents, one row per key (mapping/dedupe.ts says which
// documents yield a row and which one wins); this file keeps the winners and writes them.
//
// The key map is the one piece of state allowed to grow in a stage, bounded by the number of
// distinct keys. Rows are written at the end, sorted by key, so the CSV's bytes are stable.
import { replacesKept, SUPERSEDED, type DedupeMapping } from '../mapping/dedupe.ts';
import type { Cell } from '../staging/csv.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import type { RawDocument } from '../mapping/ejson-value.ts';
import { documentIdColumn } from '../mapping/scope.ts';
import { documentIdKey } from './rejects.ts';
import { csvField, csvLine } from '../staging/csv-lines.ts';
import { CsvOutput, type NdjsonOutput } from './staged-output.ts';
import { textualColumns, type KeyCell, type OutputOptions } from './table-work.ts';
import { UpsertWork } from './upsert.ts';
import { Rejection } from '../mapping/convert.ts';

/**
 * What the map keeps for a key, packed in one flat string: `_id NUL latest NUL line`, latest as `0`
 * (NULL) or `1` + its text, line the row's CSV line (csvLine: the bytes the CSV gets at the end).
 * A third of a million kept rows as arrays of cells were millions of live objects for the garbage
 * collector to walk; one string each is one. Keeping the line, not the cells, means the row is
 * made into CSV once, for the contributions and the CSV alike. NUL never occurs in the `_id` text
 * nor in a cell (the converters reject or strip it), which pack() checks for the two it must split.
 */
type Packed = string;
const SEP = '\u0000';

function pack(id: string, latest: Cell, line: string): Packed {
  if (id.indexOf(SEP) !== -1 || (latest !== null && latest.indexOf(SEP) !== -1)) throw new Error('a converted cell holds a NUL character (a bug)');
  // join() allocates one flat string: a template would keep a tree of five pieces alive per kept
  // row, flattened again by every indexOf of keptId/keptLatest/keptLine.
  return [id, latest === null ? '0' : `1${latest}`, line].join(SEP);
}

function keptId(packed: Packed): string {
  return packed.slice(0, packed.indexOf(SEP));
}

function keptLatest(packed: Packed): Cell {
  const from = packed.indexOf(SEP) + 1;
  return packed.charCodeAt(from) === 48 /* 0 */ ? null : packed.slice(from + 1, packed.indexOf(SEP, from));
}

function keptLine(packed: Packed): string {
  return packed.slice(packed.indexOf(SEP, packed.indexOf(SEP) + 1) + 1);
}

export class DedupeWork extends UpsertWork {
  /**
   * transform/<table>.contrib.csv: the row each document contributes (its `_id` first), superseded
   * ones included: load keeps them, so a row is recomputed from every document of its key.
   */
  readonly contrib: CsvOutput;
  private readonly kept = new Map<string, Packed>();
  /** NUL strips of kept rows (nul_character: strip only; rare). */
  private readonly keptStrips = new Map<string, string[]>();
  private readonly mapping: DedupeMapping;
  private superseded = 0;
  /** The CSV's quoting per column (csvLine), the same for the contributions after their `_id`. */
  private readonly textual: readonly boolean[];

  constructor(mapping: DedupeMapping, collection: string, o: OutputOptions) {
    super(mapping, collection, o);
    this.mapping = mapping;
    const table = mapping.table;
    const header = [documentIdColumn(table), ...table.stagedColumns.map((c) => c.name)];
    this.textual = textualColumns(table);
    this.contrib = new CsvOutput(o.paths, o.paths.transformContrib(table.name), header, o.signal, o.onFailure, [true, ...this.textual]);
  }

  override get outputs(): readonly (CsvOutput | NdjsonOutput)[] {
    return [...super.outputs, this.contrib];
  }

  protected override take(doc: RawDocument, cells: Cell[], scope: KeyCell | null): void {
    const { keyIndexes, latestIndex } = this.mapping;
    const strips = this.takeStrips();
    // A document the keys file cannot name cannot be replaced later either: its row is refused.
    if (scope === null) {
      const refused = documentIdKey(doc._id);
      this.reject(doc, '_id', doc._id, refused instanceof Rejection ? refused.reason : 'nul_character');
      return;
    }
    // The keys file's cell: documentIdKey's text of the `_id`.
    const id = scope.cell as string;
    // The contributions' line is the `_id`'s field and the row's line: csvLine quotes cell by cell.
    const line = csvLine(cells, this.textual);
    this.contrib.writeLine(`${csvField(id)},${line}`);
    const keyParts: string[] = new Array(keyIndexes.length);
    for (let i = 0; i < keyIndexes.length; i += 1) keyParts[i] = cells[keyIndexes[i]!]!;
    // Joined, not concatenated: a flat string hashes and compares (in the final sort) without being rebuilt.
    const key = keyParts.join(SEP);
    const old = this.kept.get(key);
    if (old !== undefined) {
      // One of the two loses.
      this.superseded += 1;
      this.skip(SUPERSEDED);
      if (!replacesKept(this.mapping, cells[latestIndex]!, id, keptLatest(old), keptId(old))) return;
    }
    this.kept.set(key, pack(id, cells[latestIndex]!, line));
    if (strips) this.keptStrips.set(key, strips);
    else if (old !== undefined) this.keptStrips.delete(key);
  }

  override async finish(drain: () => Promise<void>): Promise<void> {
    // Code-unit order of the key text: deterministic, and NUL (never in a cell) separates key parts.
    // The default sort compares strings natively (no comparator call per comparison).
    const keys = [...this.kept.keys()].sort();
    for (let i = 0; i < keys.length; i += 1) {
      const key = keys[i]!;
      this.csv.writeLine(keptLine(this.kept.get(key)!));
      const strips = this.keptStrips.get(key);
      if (strips) this.countStrips(strips);
      if (this.csv.needsDrain) await drain();
    }
    this.kept.clear();
    this.keptStrips.clear();
  }

  protected override async extra(): Promise<Partial<TransformTableRecord>> {
    const spec = this.table.dedupe!;
    return { contrib: await this.contrib.commit(), dedupe: { key: [...spec.key], latest_by: spec.latestBy, superseded: this.superseded } };
  }
}
