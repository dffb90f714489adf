// strategy: dedupe — many documents, one row per key (users_logbook: one row per (user, day);
// menu_recipes: one per (menu, recipe)). The latest document of a key wins: greatest `latest_by`,
// then greatest source _id, so the outcome never depends on the order of the extract.
//
// The key map is the one piece of state allowed to grow in a stage, bounded by the number of
// distinct keys. Rows are written at the end, sorted by key, so the CSV's bytes are stable.
import type { TableModel } from '../model/types.ts';
import type { Cell } from '../staging/csv.ts';
import type { TransformTableRecord } from '../staging/manifest-transform.ts';
import { compilePath, type RawDocument } from './ejson-value.ts';
import { documentIdText } from './rejects.ts';
import type { OutputOptions } from './table-work.ts';
import { UpsertWork } from './upsert.ts';

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

type Compare = (a: Cell, b: Cell) => number;

/** Order of a latest_by cell: numeric for integer columns, text otherwise (timestamps and dates are fixed-width). */
function cellOrder(table: TableModel, column: string): Compare {
  const kind = table.stagedColumns.find((c) => c.name === column)?.sqlType.kind;
  const nullFirst = (a: Cell, b: Cell): number | null => (a === null ? (b === null ? 0 : -1) : b === null ? 1 : null);
  if (kind === 'smallint' || kind === 'integer' || kind === 'bigint') {
    return (a, b) => nullFirst(a, b) ?? (BigInt(a!) < BigInt(b!) ? -1 : BigInt(a!) > BigInt(b!) ? 1 : 0);
  }
  if (kind === 'numeric') return (a, b) => nullFirst(a, b) ?? Number(a) - Number(b);
  return (a, b) => nullFirst(a, b) ?? (a! < b! ? -1 : a! > b! ? 1 : 0);
}

export class DedupeWork extends UpsertWork {
  private readonly kept = new Map<string, Packed>();
  /** NUL strips of kept rows (nul_character: strip only; rare). */
  private readonly keptStrips = new Map<string, string[]>();
  private readonly keyIndexes: number[];
  private readonly keyReaders: { read: (doc: RawDocument) => unknown; reason: string }[];
  private readonly latestIndex: number;
  private readonly compareLatest: Compare;
  private superseded = 0;

  constructor(table: TableModel, collection: string, o: OutputOptions) {
    super(table, collection, o);
    const spec = table.dedupe;
    if (!spec) throw new Error(`table ${table.name}: strategy dedupe without a dedupe spec`);
    const indexOf = (name: string): number => {
      const i = table.stagedColumns.findIndex((c) => c.name === name);
      if (i < 0) throw new Error(`table ${table.name}: dedupe column ${name} is not staged`);
      return i;
    };
    this.keyIndexes = spec.key.map(indexOf);
    this.keyReaders = spec.key.map((name) => {
      const source = table.stagedColumns[indexOf(name)]!.source;
      // Named after the document's field: "missing_user" is what a person looks for in MongoDB.
      const field = source.kind === 'field' ? source.path : name;
      return { read: compilePath(field), reason: `missing_${field}` };
    });
    this.latestIndex = indexOf(spec.latestBy);
    this.compareLatest = cellOrder(table, spec.latestBy);
  }

  override accept(doc: RawDocument): void {
    this.documents += 1;
    if (this.keep && !this.keep(doc)) {
      this.skip('filtered');
      return;
    }
    for (const k of this.keyReaders) {
      const v = k.read(doc);
      if (v === undefined || v === null) {
        this.skip(k.reason);
        return;
      }
    }
    const cells = this.buildRow(doc);
    if (!cells) return;
    const strips = this.takeStrips();
    const keyParts: string[] = new Array(this.keyIndexes.length);
    for (let i = 0; i < this.keyIndexes.length; i += 1) keyParts[i] = cells[this.keyIndexes[i]!]!;
    // Joined, not concatenated: a flat string hashes and compares (in the final sort) without being rebuilt.
    const key = keyParts.join(SEP);
    const id = documentIdText(doc._id);
    const old = this.kept.get(key);
    if (old !== undefined) {
      // One of the two loses: the row with the smaller latest_by, then the smaller _id.
      this.superseded += 1;
      this.skip('superseded');
      const parts = old.split(SEP);
      const oldId = parts[0]!;
      const oldLatest = unpackCell(parts[1 + this.latestIndex]!);
      const order = this.compareLatest(cells[this.latestIndex]!, oldLatest) || (id < oldId ? -1 : id > oldId ? 1 : 0);
      if (order <= 0) return;
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

  protected override extra(): Partial<TransformTableRecord> {
    const spec = this.table.dedupe!;
    return { dedupe: { key: [...spec.key], latest_by: spec.latestBy, superseded: this.superseded } };
  }
}
