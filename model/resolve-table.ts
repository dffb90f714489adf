// One table of pipeline.yaml → a TableDraft, checking what only the whole table can tell: columns
// named by mappings, the strategy's keys and columns, the constraints a merge needs. Each step is a
// method of TableResolver, in the order its findings used to be added (so findings on one line keep
// their order); the cross-table checks (foreign keys, cycles, export_order) are model/load-pipeline.ts's.
import type {
  ArraySpec,
  ColumnSource,
  DedupeSpec,
  ExplodeSpec,
  ForeignKey,
  MergeKind,
  MissingReferencePolicy,
  SqlType,
  Strategy,
} from './types.ts';
import { closest, type LintContext, type Path, type Position } from './field-spec.ts';
import type { RawArray, RawColumn, RawTable } from './pipeline-spec.ts';
import { KNOWN_SQL_TYPES, parseSqlType, sqlTypeRangeProblem } from './sql-types.ts';
import { isRecord, list, MAX_IDENTIFIER_BYTES, quote as q, sameSet } from './resolve-util.ts';
import { checkFileNames } from './names.ts';

/** Tables the tool keeps its own state in (schema/state-tables.ts): a pipeline may not define them. */
export const RESERVED_TABLES: readonly string[] = Object.freeze(['etl_watermarks', 'etl_runs', 'etl_pending', 'etl_claims', 'etl_gone']);
/**
 * Every name starting so is the tool's: its state tables (those above, the contributions table
 * etl_contrib_<table> of each dedupe table, any added later) and their keys and indexes. A table of
 * the pipeline under such a name would be one with them: `CREATE TABLE IF NOT EXISTS` skips a name
 * taken, and `etl schema` then adds the pipeline's columns and key to the tool's table.
 */
const RESERVED_PREFIX = 'etl_';

export interface ColumnDraft {
  readonly name: string;
  readonly sqlType: SqlType | null;
  readonly nullable: boolean;
  readonly primaryKey: boolean;
  readonly foreignKeyText: string | null;
  readonly onMissing: MissingReferencePolicy;
  /** Path of the column's node (base columns: the include_base key). */
  readonly path: Path;
  readonly line: number;
  /** Base columns read these fields unless a mapping says otherwise. */
  readonly defaultField: string | null;
  source: ColumnSource | null;
  foreignKey: ForeignKey | null;
}

export interface TableDraft {
  readonly name: string;
  readonly index: number;
  readonly path: Path;
  readonly line: number;
  readonly raw: RawTable;
  readonly strategy: Strategy;
  readonly columns: ColumnDraft[];
  readonly byName: Map<string, ColumnDraft>;
  readonly primaryKey: string[];
  readonly uniques: string[][];
  readonly mergeKey: string[];
  readonly explode: ExplodeSpec | null;
  readonly dedupe: DedupeSpec | null;
  /** Tables this one references, filled by the foreign-key pass. */
  readonly references: string[];
}

const BASE_COLUMNS: readonly { name: string; sqlType: SqlType; field: string; primaryKey: boolean }[] = [
  { name: 'id', sqlType: { kind: 'varchar', length: null }, field: '_id', primaryKey: true },
  { name: 'created_at', sqlType: { kind: 'timestamp' }, field: 'creation_date', primaryKey: false },
  { name: 'updated_at', sqlType: { kind: 'timestamp' }, field: 'update_date', primaryKey: false },
];

const EXPLODE_KEYS = ['parent_column', 'merge', 'arrays'] as const;
const DEDUPE_KEYS = ['dedupe_key', 'latest_by'] as const;

/** A field → column mapping as written (additional_mappings and explicit_mappings mean the same). */
interface Mapping {
  readonly field: string;
  readonly path: Path;
}

interface PlacedArray {
  readonly spec: ArraySpec;
  readonly path: Path;
}

export function resolveTable(ctx: LintContext, name: string, raw: RawTable, index: number): TableDraft {
  return new TableResolver(ctx, name, raw, index).resolve();
}

/** How load merges the table's rows (see MergeKind). */
export function mergeKindOf(strategy: Strategy, explode: ExplodeSpec | null): MergeKind {
  if (strategy === 'dedupe') return 'dedupe_upsert';
  if (strategy === 'explode' && explode?.merge === 'delete_and_insert') return 'delete_and_insert';
  return 'upsert';
}

/**
 * The column holding the document `_id` for the rows a document owns (TableModel.documentKey): an
 * explode table's parent column; an upsert table's primary-key column fed by `_id`, alone or with
 * other columns (a key (id, text) still gives one row per document, and the row whose text changed
 * must leave with its document's old row).
 */
export function documentKeyOf(t: {
  readonly strategy: Strategy;
  readonly primaryKey: readonly string[];
  readonly columns: readonly { readonly name: string; readonly source: ColumnSource | null }[];
  readonly explode: ExplodeSpec | null;
}): string | null {
  if (t.strategy === 'explode') return t.explode?.parentColumn ?? null;
  if (t.strategy !== 'upsert') return null;
  const fedById = (name: string): boolean => {
    const source = t.columns.find((c) => c.name === name)?.source;
    return source?.kind === 'field' && source.path === '_id';
  };
  return t.primaryKey.find(fedById) ?? null;
}

class TableResolver {
  private readonly path: Path;
  private readonly strategy: Strategy;
  private readonly columns: ColumnDraft[] = [];
  private readonly byName = new Map<string, ColumnDraft>();
  /** Columns the explode strategy fills (parent id, item id, constants). */
  private readonly special = new Map<string, ColumnSource>();

  constructor(
    private readonly ctx: LintContext,
    private readonly name: string,
    private readonly raw: RawTable,
    private readonly index: number,
  ) {
    this.path = ['tables', name];
    this.strategy = raw.strategy ?? 'upsert';
  }

  resolve(): TableDraft {
    const line = this.ctx.lineOf(this.path, 'key');
    this.checkName();
    this.readColumns();
    const mapped = this.mappings();
    this.checkStrategyKeys();
    const explode = this.strategy === 'explode' ? this.explode() : null;
    const dedupe = this.strategy === 'dedupe' ? this.dedupe() : null;
    this.sources(mapped);
    const primaryKey = this.columns.filter((c) => c.primaryKey).map((c) => c.name);
    const uniques = this.uniqueConstraints();
    const hasKeyErrors = (this.raw.unique_constraints ?? []).length !== uniques.length;
    this.checkHasKey(primaryKey, uniques, hasKeyErrors);
    const mergeKey = this.mergeKey(primaryKey, uniques, hasKeyErrors, explode, dedupe);
    this.checkTruncate();
    return {
      name: this.name,
      index: this.index,
      path: this.path,
      line,
      raw: this.raw,
      strategy: this.strategy,
      columns: this.columns,
      byName: this.byName,
      primaryKey,
      uniques,
      mergeKey,
      explode,
      dedupe,
      references: [],
    };
  }

  private add(path: Path, code: string, message: string, at: Position | null = null, prefer: 'value' | 'key' = 'value'): void {
    this.ctx.add(path, code, message, at, prefer);
  }

  private checkName(): void {
    if (Buffer.byteLength(this.name) > MAX_IDENTIFIER_BYTES) {
      this.add(this.path, 'name_too_long', `table name ${q(this.name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`, null, 'key');
    }
    if (RESERVED_TABLES.includes(this.name) || this.name.startsWith(RESERVED_PREFIX)) {
      this.add(this.path, 'reserved_table', `table name ${q(this.name)} is reserved for the tool's own state (every name starting with ${RESERVED_PREFIX}: ${list(RESERVED_TABLES)}, etl_contrib_<table>, their keys and indexes)`, null, 'key');
    }
    checkFileNames(this.ctx, this.name, this.raw.mongo_collection, this.path);
  }

  private written(key: string): boolean {
    return this.ctx.hasKey([...this.path, key]);
  }

  private keep(c: ColumnDraft): void {
    this.columns.push(c);
    this.byName.set(c.name, c);
  }

  /** include_base's columns, then `columns` (or `additional_columns`). */
  private readColumns(): void {
    const { raw, path: tPath } = this;
    if (raw.include_base) this.baseColumns();
    if (raw.additional_columns !== undefined && raw.columns !== undefined) {
      this.add([...tPath, 'columns'], 'both_column_lists', '`columns` and `additional_columns` mean the same list: use one of them', null, 'key');
    }
    const listKey = raw.columns !== undefined ? 'columns' : 'additional_columns';
    for (const [i, rc] of (raw[listKey] ?? []).entries()) {
      if (!isRecord(rc)) continue;
      const c = this.column(rc as RawColumn, [...tPath, listKey, i]);
      if (c) this.keep(c);
    }
    if (this.columns.length === 0 && (raw[listKey] ?? []).length === 0 && this.written(listKey)) {
      this.add([...tPath, listKey], 'no_columns', `table ${q(this.name)} has no columns`, null, 'key');
    } else if (this.columns.length === 0 && !this.written('include_base') && !this.written('columns') && !this.written('additional_columns')) {
      this.add(tPath, 'no_columns', `table ${q(this.name)} has no columns (expected \`include_base: true\`, \`columns:\` or \`additional_columns:\`)`, null, 'key');
    }
  }

  private baseColumns(): void {
    const basePath = [...this.path, 'include_base'];
    for (const b of BASE_COLUMNS) {
      this.keep({
        name: b.name,
        sqlType: b.sqlType,
        nullable: false,
        primaryKey: b.primaryKey,
        foreignKeyText: null,
        onMissing: 'reject',
        path: basePath,
        line: this.ctx.lineOf(basePath, 'key'),
        defaultField: b.field,
        source: null,
        foreignKey: null,
      });
    }
  }

  private column(rc: RawColumn, cPath: Path): ColumnDraft | null {
    if (rc.name === undefined) return null;
    const name = rc.name;
    const first = this.byName.get(name);
    if (first) {
      const where = first.defaultField !== null ? 'by include_base' : `at line ${first.line}`;
      this.add([...cPath, 'name'], 'duplicate_column', `duplicate column ${q(name)} (already defined ${where})`);
      return null;
    }
    if (Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES) {
      this.add([...cPath, 'name'], 'name_too_long', `column name ${q(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`);
    }
    const sqlType = this.sqlType(rc, cPath);
    const primaryKey = rc.primary_key === true;
    if (primaryKey && this.raw.include_base === true) {
      this.add([...cPath, 'primary_key'], 'primary_key_with_base', 'include_base already makes `id` the primary key: remove primary_key here', null, 'key');
    }
    const implicitNotNull = primaryKey || sqlType?.kind === 'serial';
    if (rc.nullable === true && implicitNotNull) {
      this.add([...cPath, 'nullable'], 'bad_nullable', `column ${q(name)} is ${primaryKey ? 'a primary key' : 'SERIAL'}, which is never NULL: remove nullable: true`);
    }
    const nullable = rc.nullable ?? !implicitNotNull;
    const onMissing = this.onMissing(rc, cPath, nullable);
    return {
      name,
      sqlType,
      nullable,
      primaryKey,
      foreignKeyText: rc.foreign_key ?? null,
      onMissing,
      path: cPath,
      line: this.ctx.lineOf(cPath),
      defaultField: null,
      source: null,
      foreignKey: null,
    };
  }

  private sqlType(rc: RawColumn, cPath: Path): SqlType | null {
    if (rc.sql_type === undefined) return null;
    const sqlType = parseSqlType(rc.sql_type);
    if (sqlType === null) {
      const range = sqlTypeRangeProblem(rc.sql_type);
      if (range) this.add([...cPath, 'sql_type'], 'sql_type_out_of_range', `sql_type ${q(rc.sql_type)}: ${range}`);
      else this.add([...cPath, 'sql_type'], 'unknown_sql_type', `unknown sql_type ${q(rc.sql_type)} (expected one of: ${list(KNOWN_SQL_TYPES)})`);
    }
    return sqlType;
  }

  private onMissing(rc: RawColumn, cPath: Path, nullable: boolean): MissingReferencePolicy {
    if (rc.on_missing !== undefined && rc.foreign_key === undefined) {
      this.add([...cPath, 'on_missing'], 'on_missing_without_fk', 'on_missing only applies to a column with a foreign_key', null, 'key');
    }
    const onMissing = rc.on_missing ?? 'reject';
    if (onMissing === 'set_null' && !nullable) {
      this.add(
        [...cPath, 'on_missing'],
        'set_null_not_nullable',
        `on_missing: set_null on column ${q(rc.name!)}, which is NOT NULL (nullable: false): use on_missing: reject, or make the column nullable`,
      );
    }
    return onMissing;
  }

  private unknownColumn(p: Path, what: string, column: string): void {
    const names = this.columns.map((c) => c.name);
    const guess = closest(column, names);
    this.add(p, 'unknown_column', `${what} ${q(column)} is not a column of ${q(this.name)} (${guess ? `did you mean "${guess}"? ` : ''}columns: ${list(names)})`);
  }

  /** MongoDB field → column: which field feeds each mapped column. */
  private mappings(): Map<string, Mapping> {
    const mapped = new Map<string, Mapping>();
    for (const key of ['additional_mappings', 'explicit_mappings'] as const) {
      for (const [field, column] of this.raw[key] ?? []) {
        if (typeof column !== 'string') continue;
        const mPath = [...this.path, key, field];
        const first = mapped.get(column);
        if (!this.byName.has(column)) {
          this.unknownColumn(mPath, `mapping of field ${q(field)}: column`, column);
        } else if (first) {
          this.add(mPath, 'duplicate_mapping', `column ${q(column)} is already fed by field ${q(first.field)} (line ${this.ctx.lineOf(first.path)})`);
        } else {
          mapped.set(column, { field, path: mPath });
        }
      }
    }
    return mapped;
  }

  /** Keys of another strategy than the table's are findings. */
  private checkStrategyKeys(): void {
    for (const key of [...EXPLODE_KEYS, ...DEDUPE_KEYS]) {
      const owner = (EXPLODE_KEYS as readonly string[]).includes(key) ? 'explode' : 'dedupe';
      if (this.raw[key] !== undefined && this.strategy !== owner) {
        this.add([...this.path, key], 'not_for_strategy', `${q(key)} only applies to \`strategy: ${owner}\` (this table's strategy is ${this.strategy})`, null, 'key');
      }
    }
  }

  private missing(key: string, what: string): void {
    this.ctx.add([...this.path, key], 'strategy_missing_key', `strategy: ${this.strategy} needs ${q(key)} (${what})`, this.ctx.where(this.path, 'key'));
  }

  private explode(): ExplodeSpec | null {
    const parent = this.raw.parent_column;
    if (parent === undefined) this.missing('parent_column', "the column receiving the parent document's _id");
    else if (!this.byName.has(parent)) this.unknownColumn([...this.path, 'parent_column'], 'parent_column', parent);
    else this.special.set(parent, { kind: 'parent_id' });
    if (this.raw.arrays === undefined) this.missing('arrays', 'the arrays to explode, each with field and item_column');
    const arrays = this.arrays(parent);
    this.checkConstantClashes(arrays);
    this.checkNotNullGaps(arrays);
    if (parent === undefined || !this.byName.has(parent) || arrays.length === 0) return null;
    return { parentColumn: parent, merge: this.raw.merge ?? 'delete_and_insert', arrays: arrays.map((a) => a.spec) };
  }

  /** The arrays whose columns all exist; each item column becomes a special column. */
  private arrays(parent: string | undefined): PlacedArray[] {
    const arrays: PlacedArray[] = [];
    for (const [i, ra] of (this.raw.arrays ?? []).entries()) {
      if (!isRecord(ra)) continue;
      const a = ra as RawArray;
      const aPath = [...this.path, 'arrays', i];
      if (a.field === undefined || a.item_column === undefined) continue;
      let ok = true;
      if (!this.byName.has(a.item_column)) {
        this.unknownColumn([...aPath, 'item_column'], 'item_column', a.item_column);
        ok = false;
      } else if (a.item_column === parent) {
        this.add([...aPath, 'item_column'], 'item_is_parent', `item_column ${q(a.item_column)} is also the parent_column`);
        ok = false;
      } else {
        this.special.set(a.item_column, { kind: 'item_id' });
      }
      const constants: Record<string, string> = {};
      for (const [col, value] of a.constants ?? []) {
        if (typeof value !== 'string') continue;
        if (!this.byName.has(col)) {
          this.unknownColumn([...aPath, 'constants', col], 'constant column', col);
          ok = false;
        } else constants[col] = value;
      }
      const spec: ArraySpec = { field: a.field, itemColumn: a.item_column, itemIdKey: a.item_id_key ?? null, itemDateKey: a.item_date_key ?? null, constants };
      if (ok) arrays.push({ spec, path: aPath });
    }
    return arrays;
  }

  /** Constants after every item column is known, so a clash is found whatever the array order. */
  private checkConstantClashes(arrays: readonly PlacedArray[]): void {
    for (const { spec, path: aPath } of arrays) {
      for (const col of Object.keys(spec.constants)) {
        const taken = this.special.get(col);
        if (taken && taken.kind !== 'constant') {
          const role = taken.kind === 'parent_id' ? 'parent_column' : 'item_column';
          this.add([...aPath, 'constants', col], 'constant_conflict', `column ${q(col)} is already the ${role}: it cannot hold a constant`, null, 'key');
        } else this.special.set(col, { kind: 'constant' });
      }
    }
  }

  /** A row from one array leaves the other arrays' item/constant columns empty: NOT NULL forbids it. */
  private checkNotNullGaps(arrays: readonly PlacedArray[]): void {
    for (const { spec, path: aPath } of arrays) {
      for (const [col, source] of this.special) {
        if (this.byName.get(col)!.nullable) continue;
        if (source.kind === 'constant' && !(col in spec.constants)) {
          this.add(aPath, 'constant_missing', `array ${q(spec.field)} sets no constant for column ${q(col)}, which is NOT NULL (add it under constants)`);
        } else if (source.kind === 'item_id' && spec.itemColumn !== col) {
          this.add(aPath, 'item_column_missing', `array ${q(spec.field)} leaves item column ${q(col)} empty, which is NOT NULL`);
        }
      }
    }
  }

  private dedupe(): DedupeSpec | null {
    const { raw, path: tPath } = this;
    const key: string[] = [];
    if (raw.dedupe_key === undefined) this.missing('dedupe_key', 'the columns identifying one row, e.g. [user_id, day]');
    for (const [i, k] of (raw.dedupe_key ?? []).entries()) {
      if (typeof k !== 'string') continue;
      if (!this.byName.has(k)) this.unknownColumn([...tPath, 'dedupe_key', i], 'dedupe_key column', k);
      else if (key.includes(k)) this.add([...tPath, 'dedupe_key', i], 'duplicate_column', `column ${q(k)} appears twice in dedupe_key`);
      else key.push(k);
    }
    if (raw.latest_by === undefined) this.missing('latest_by', 'the column deciding which document is the latest, e.g. updated_at');
    else if (!this.byName.has(raw.latest_by)) this.unknownColumn([...tPath, 'latest_by'], 'latest_by column', raw.latest_by);
    return raw.latest_by !== undefined && key.length > 0 ? { key, latestBy: raw.latest_by } : null;
  }

  /** Where each column's value comes from: PostgreSQL (SERIAL), the explode strategy, or a field. */
  private sources(mapped: ReadonlyMap<string, Mapping>): void {
    for (const c of this.columns) {
      const m = mapped.get(c.name);
      const special = this.special.get(c.name);
      if (c.sqlType?.kind === 'serial') {
        if (m) this.add(m.path, 'mapping_to_generated', `column ${q(c.name)} is SERIAL (PostgreSQL assigns it): it cannot be fed from field ${q(m.field)}`);
        c.source = { kind: 'generated' };
      } else if (special) {
        if (m) {
          const what = special.kind.replace('_', ' ');
          this.add(m.path, 'mapping_to_strategy_column', `column ${q(c.name)} is filled by the explode strategy (${what}): remove this mapping`);
        }
        c.source = special;
      } else {
        c.source = { kind: 'field', path: m?.field ?? c.defaultField ?? c.name };
      }
    }
  }

  private uniqueConstraints(): string[][] {
    const uniques: string[][] = [];
    for (const [i, u] of (this.raw.unique_constraints ?? []).entries()) {
      if (!Array.isArray(u)) continue;
      const cols = this.uniqueColumns(u, i);
      if (cols === null) continue;
      if (uniques.some((x) => sameSet(x, cols))) {
        this.add([...this.path, 'unique_constraints', i], 'duplicate_unique', `unique constraint (${list(cols)}) is listed twice`);
        continue;
      }
      uniques.push(cols);
    }
    return uniques;
  }

  /** The columns of one unique constraint, or null when one is unknown, repeated or not a name. */
  private uniqueColumns(u: readonly unknown[], i: number): string[] | null {
    const cols: string[] = [];
    let ok = true;
    for (const [j, col] of u.entries()) {
      if (typeof col !== 'string') {
        ok = false;
        continue;
      }
      const uPath = [...this.path, 'unique_constraints', i, j];
      if (!this.byName.has(col)) {
        this.unknownColumn(uPath, 'unique constraint column', col);
        ok = false;
      } else if (cols.includes(col)) {
        this.add(uPath, 'duplicate_column', `column ${q(col)} appears twice in this unique constraint`);
        ok = false;
      } else cols.push(col);
    }
    return ok ? cols : null;
  }

  private checkHasKey(primaryKey: readonly string[], uniques: readonly string[][], hasKeyErrors: boolean): void {
    const baseInvalid = this.written('include_base') && this.raw.include_base === undefined;
    if (primaryKey.length > 0 || uniques.length > 0 || hasKeyErrors || baseInvalid || this.columns.length === 0 || this.strategy === 'explode') return;
    this.add(
      this.path,
      'no_key',
      `table ${q(this.name)} has neither a primary key nor a unique constraint, so its rows cannot be merged (add include_base: true, primary_key: true on a column, or unique_constraints)`,
      null,
      'key',
    );
  }

  private staged(cols: readonly string[]): boolean {
    return cols.every((c) => this.byName.get(c)?.source?.kind !== 'generated');
  }

  /** The columns a staged row is merged on (TableModel.mergeKey), checked against the strategy. */
  private mergeKey(primaryKey: string[], uniques: string[][], hasKeyErrors: boolean, explode: ExplodeSpec | null, dedupe: DedupeSpec | null): string[] {
    switch (this.strategy) {
      case 'upsert':
        return this.upsertMergeKey(primaryKey, uniques);
      case 'explode':
        return this.explodeMergeKey(uniques, hasKeyErrors, explode);
      case 'dedupe':
        return dedupe ? this.dedupeMergeKey(primaryKey, uniques, hasKeyErrors, dedupe) : [];
    }
  }

  private upsertMergeKey(primaryKey: string[], uniques: string[][]): string[] {
    const mergeKey = primaryKey.length > 0 && this.staged(primaryKey) ? primaryKey : (uniques.find((u) => this.staged(u)) ?? []);
    if (mergeKey.length === 0 && (primaryKey.length > 0 || uniques.length > 0)) {
      this.add(this.path, 'no_merge_key', `table ${q(this.name)}: strategy upsert needs a primary key or unique constraint whose columns are staged (a SERIAL is assigned by PostgreSQL)`, null, 'key');
    }
    return mergeKey;
  }

  private explodeMergeKey(uniques: string[][], hasKeyErrors: boolean, explode: ExplodeSpec | null): string[] {
    if (uniques.length === 0 && !hasKeyErrors) {
      this.ctx.add(
        [...this.path, 'unique_constraints'],
        'explode_needs_unique',
        `strategy: explode needs a unique constraint identifying one link (e.g. [${explode?.parentColumn ?? 'parent_id'}, ${explode?.arrays[0]?.itemColumn ?? 'item_id'}]): load merges and removes duplicates on it`,
        this.ctx.where(this.path, 'key'),
      );
    } else if (uniques[0] && !this.staged(uniques[0])) {
      this.add([...this.path, 'unique_constraints', 0], 'no_merge_key', 'the first unique constraint of an explode table must not hold a SERIAL column');
    }
    return uniques[0] ?? [];
  }

  private dedupeMergeKey(primaryKey: string[], uniques: string[][], hasKeyErrors: boolean, dedupe: DedupeSpec): string[] {
    const isKey = sameSet(primaryKey, dedupe.key) || uniques.some((u) => sameSet(u, dedupe.key));
    if (!isKey && !hasKeyErrors) {
      this.add(
        [...this.path, 'dedupe_key'],
        'dedupe_key_not_unique',
        `dedupe_key [${list(dedupe.key)}] must also be the primary key or a unique constraint (load upserts ON CONFLICT on it): add it to unique_constraints`,
      );
    }
    return [...dedupe.key];
  }

  private checkTruncate(): void {
    if (this.raw.truncate_before_import === true && this.raw.force_reimport !== true) {
      this.add(
        [...this.path, 'truncate_before_import'],
        'truncate_without_force',
        'truncate_before_import: true must go with force_reimport: true (TRUNCATE … CASCADE empties the table, so every document must be re-read)',
      );
    }
  }
}
