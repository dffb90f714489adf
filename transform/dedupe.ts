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
import { CsvOutput, type NdjsonOutput } from './staged-output.ts';
import { textualColumns, type KeyCell, type OutputOptions } from './table-work.ts';
import { UpsertWork } from './upsert.ts';
import { Rejection } from '../mapping/convert.ts';

/**
 * What the map keeps for a key, packed in one flat string: `_id NUL cell NUL cell …`, each cell as
 * `0` (NULL) or `1` + its text. A third of a million kept rows as arrays of cells were millions of
 * live objects for the garbage collector to walk; one string each is one. NUL never occurs in a
 * cell (the converters reject or strip it), which pack() checks.
 */
type Packed = string;
const SEP = '\u0000';

function pack(id: string, cells: readonly Cell[]): Packed {
  const parts: string[] = [id];
  for (const c of cells) {
    if (c !== null && c.indexOf(SEP) !== -1) throw new Error('a converted cell holds a NUL character (a bug)');
    parts.push(c === null ? '0' : `1${c}`);
  }
  // join() allocates one flat string; += would keep a tree of pieces alive per kept row.
  return parts.join(SEP);
}

function unpackCell(part: string): Cell {
  return part.charCodeAt(0) === 48 /* 0 */ ? null : part.slice(1);
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

  constructor(mapping: DedupeMapping, collection: string, o: OutputOptions) {
    super(mapping, collection, o);
    this.mapping = mapping;
    const table = mapping.table;
    const header = [documentIdColumn(table), ...table.stagedColumns.map((c) => c.name)];
    this.contrib = new CsvOutput(o.paths, o.paths.transformContrib(table.name), header, o.signal, o.onFailure, [true, ...textualColumns(table)]);
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
    this.contrib.write([id, ...cells]);
    const keyParts: string[] = new Array(keyIndexes.length);
    for (let i = 0; i < keyIndexes.length; i += 1) keyParts[i] = cells[keyIndexes[i]!]!;
    // Joined, not concatenated: a flat string hashes and compares (in the final sort) without being rebuilt.
    const key = keyParts.join(SEP);
    const old = this.kept.get(key);
    if (old !== undefined) {
      // One of the two loses.
      this.superseded += 1;
      this.skip(SUPERSEDED);
      const parts = old.split(SEP);
      if (!replacesKept(this.mapping, cells[latestIndex]!, id, unpackCell(parts[1 + latestIndex]!), parts[0]!)) return;
    }
    this.kept.set(key, pack(id, cells));
    if (strips) this.keptStrips.set(key, strips);
    else if (old !== undefined) this.keptStrips.delete(key);
  }

  override async finish(drain: () => Promise<void>): Promise<void> {
    // Code-unit order of the key text: deterministic, and NUL (never in a cell) separates key parts.
    // The default sort compares strings natively (no comparator call per comparison).
    const keys = [...this.kept.keys()].sort();
    for (let i = 0; i < keys.length; i += 1) {
      const key = keys[i]!;
      const parts = this.kept.get(key)!.split(SEP);
      const cells: Cell[] = new Array(parts.length - 1);
      for (let j = 1; j < parts.length; j += 1) cells[j - 1] = unpackCell(parts[j]!);
      this.writeKeptRow(cells, this.keptStrips.get(key) ?? null);
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
