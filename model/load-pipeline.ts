// Reads pipeline.yaml into the resolved, frozen PipelineModel, or throws one ConfigError listing
// every finding (file, line, key, what was expected). Two passes: the node walk checks shapes and
// kinds against the field spec (model/pipeline-spec.ts); the resolver then checks what only the
// whole file can tell (columns named by mappings, strategies and constraints, foreign keys, cycles,
// export_order) and points each finding at the node that names the offending thing.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigFinding } from './errors.ts';
import type {
  ArraySpec,
  CollectionModel,
  ColumnModel,
  ColumnSource,
  DedupeSpec,
  DocumentFilter,
  ExplodeSpec,
  ForeignKey,
  MissingReferencePolicy,
  PipelineModel,
  Settings,
  SqlType,
  Strategy,
  TableModel,
} from './types.ts';
import { closest, INVALID, lintValue, LintContext, type Path } from './field-spec.ts';
import { PIPELINE_SPEC, type RawArray, type RawColumn, type RawPipeline, type RawSettings, type RawTable } from './pipeline-spec.ts';
import { KNOWN_SQL_TYPES, parseSqlType, sqlTypeText, typeFamily } from './sql-types.ts';
import { findCycles, loadOrder } from './load-order.ts';
import { fieldsOfFilter } from './filter.ts';
import { checkFileNames } from './names.ts';

export { sqlTypeText } from './sql-types.ts';

export interface LoadPipelineOptions {
  /** GLOBAL_DATE_THRESHOLD: when set, replaces settings.date_threshold. */
  readonly globalDateThreshold?: Date | null;
}

/** Tables the tool keeps its own state in (schema/state-tables.ts): a pipeline may not define them. */
export const RESERVED_TABLES: readonly string[] = Object.freeze(['etl_watermarks', 'etl_runs']);

export const DEFAULT_SETTINGS: Settings = Object.freeze({
  timezone: 'Europe/Paris',
  batchSize: 1000,
  dateThreshold: null,
  watermarkMarginSeconds: 300,
  nulCharacter: 'reject',
});

// PostgreSQL silently truncates longer identifiers, which would make two names collide.
const MAX_IDENTIFIER_BYTES = 63;

export async function loadPipeline(file: string, options: LoadPipelineOptions = {}): Promise<PipelineModel> {
  const abs = path.resolve(file);
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read the pipeline file ${abs}${code === 'ENOENT' ? ': no such file' : `: ${(cause as Error).message}`}`, [], {
      cause,
      context: { file: abs },
      hint: 'pass --pipeline FILE or set ETL_PIPELINE',
    });
  }
  return resolvePipeline(bytes, abs, options);
}

/** The same as loadPipeline, from bytes already read (`file` names them in findings). */
export function resolvePipeline(bytes: Uint8Array, file: string, options: LoadPipelineOptions = {}): PipelineModel {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = Buffer.from(bytes).toString('utf8');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const fail = (findings: readonly ConfigFinding[]): never => {
    const errors = findings.length === 1 ? '1 error' : `${findings.length} errors`;
    throw new ConfigError(`${file} is not a valid pipeline: ${errors}`, findings, {
      context: { file, line: findings[0]?.line, path: findings[0] ? findings[0].path.join('.') : undefined },
      hint: 'fix the lines above, then run `etl validate`',
    });
  };
  if (doc.errors.length > 0) {
    fail(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { file, line: pos.line, col: pos.col, path: [], code: 'yaml_syntax', message: e.message.split('\n')[0]! };
      }),
    );
  }
  const ctx = new LintContext(doc, lineCounter);
  const raw = lintValue(doc.contents as never, PIPELINE_SPEC, [], ctx);
  const model = raw === INVALID ? null : new Resolver(ctx, file, sha256, options).resolve(raw as RawPipeline);
  if (ctx.lints.length > 0 || model === null) {
    const sorted = [...ctx.lints].sort((a, b) => a.line - b.line || a.col - b.col);
    fail(sorted.map((l) => ({ file, ...l })));
  }
  return deepFreeze(model!);
}

// ── resolution ───────────────────────────────────────────────────────────────────────────────────

interface ColumnDraft {
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

interface TableDraft {
  readonly name: string;
  readonly index: number;
  readonly path: Path;
  readonly line: number;
  readonly raw: RawTable;
  readonly columns: ColumnDraft[];
  readonly byName: Map<string, ColumnDraft>;
  primaryKey: string[];
  uniques: string[][];
  mergeKey: string[];
  explode: ExplodeSpec | null;
  dedupe: DedupeSpec | null;
  references: string[];
}

const BASE_COLUMNS: readonly { name: string; sqlType: SqlType; field: string; primaryKey: boolean }[] = [
  { name: 'id', sqlType: { kind: 'varchar', length: null }, field: '_id', primaryKey: true },
  { name: 'created_at', sqlType: { kind: 'timestamp' }, field: 'creation_date', primaryKey: false },
  { name: 'updated_at', sqlType: { kind: 'timestamp' }, field: 'update_date', primaryKey: false },
];

const EXPLODE_KEYS = ['parent_column', 'merge', 'arrays'] as const;
const DEDUPE_KEYS = ['dedupe_key', 'latest_by'] as const;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map);
const q = (s: string) => JSON.stringify(s);
const list = (names: readonly string[]) => names.join(', ');
const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));

class Resolver {
  constructor(
    private readonly ctx: LintContext,
    private readonly file: string,
    private readonly sha256: string,
    private readonly options: LoadPipelineOptions,
  ) {}

  resolve(raw: RawPipeline): PipelineModel | null {
    const settings = this.settings(raw.settings ?? {});
    if (!raw.tables) return null;
    if (raw.tables.size === 0) this.ctx.add(['tables'], 'no_tables', 'no tables defined: add at least one under `tables:`');

    const drafts = new Map<string, TableDraft>();
    let index = 0;
    for (const [name, value] of raw.tables) {
      const draft = isRecord(value) ? this.table(name, value as RawTable, index++) : null;
      if (draft) drafts.set(name, draft);
    }
    for (const t of drafts.values()) this.foreignKeys(t, drafts);
    if (!this.cycles(drafts)) return null;
    const exportOrder = effectiveExportOrders(drafts);
    this.exportOrders(drafts, exportOrder);
    if (this.ctx.lints.length > 0) return null;

    const order = loadOrder(
      [...drafts.values()].map((t) => ({ name: t.name, exportOrder: exportOrder.get(t.name)!, index: t.index, references: t.references })),
    );
    if (order === null) return null; // a cycle, already reported
    const tables = new Map<string, TableModel>(order.map((name) => [name, this.tableModel(drafts.get(name)!, exportOrder.get(name)!)]));
    return {
      file: this.file,
      sha256: this.sha256,
      settings,
      tables,
      loadOrder: order,
      collections: collectionsOf(order.map((n) => tables.get(n)!)),
    };
  }

  private settings(raw: RawSettings): Settings {
    const timezone = raw.timezone ?? DEFAULT_SETTINGS.timezone;
    if (raw.timezone !== undefined && !isTimeZone(raw.timezone)) {
      const guess = closest(raw.timezone, Intl.supportedValuesOf('timeZone'));
      this.ctx.add(
        ['settings', 'timezone'],
        'bad_timezone',
        `unknown time zone ${q(raw.timezone)} (${guess ? `did you mean "${guess}"? ` : ''}expected an IANA zone such as Europe/Paris or UTC)`,
      );
    }
    const global = this.options.globalDateThreshold;
    return {
      timezone,
      batchSize: raw.batch_size ?? DEFAULT_SETTINGS.batchSize,
      dateThreshold: global ?? raw.date_threshold ?? null,
      watermarkMarginSeconds: raw.watermark_margin_seconds ?? DEFAULT_SETTINGS.watermarkMarginSeconds,
      nulCharacter: raw.nul_character ?? DEFAULT_SETTINGS.nulCharacter,
    };
  }

  private table(name: string, raw: RawTable, index: number): TableDraft {
    const ctx = this.ctx;
    const tPath: Path = ['tables', name];
    const line = ctx.lineOf(tPath, 'key');
    if (Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES) {
      ctx.add(tPath, 'name_too_long', `table name ${q(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`, null, 'key');
    }
    if (RESERVED_TABLES.includes(name)) {
      ctx.add(tPath, 'reserved_table', `table name ${q(name)} is reserved for the tool's own state (reserved: ${list(RESERVED_TABLES)})`, null, 'key');
    }
    checkFileNames(ctx, name, raw.mongo_collection, tPath);

    // ── columns
    const columns: ColumnDraft[] = [];
    const byName = new Map<string, ColumnDraft>();
    if (raw.include_base) {
      const basePath = [...tPath, 'include_base'];
      for (const b of BASE_COLUMNS) {
        const c: ColumnDraft = {
          name: b.name,
          sqlType: b.sqlType,
          nullable: false,
          primaryKey: b.primaryKey,
          foreignKeyText: null,
          onMissing: 'reject',
          path: basePath,
          line: ctx.lineOf(basePath, 'key'),
          defaultField: b.field,
          source: null,
          foreignKey: null,
        };
        columns.push(c);
        byName.set(c.name, c);
      }
    }
    if (raw.additional_columns !== undefined && raw.columns !== undefined) {
      ctx.add([...tPath, 'columns'], 'both_column_lists', '`columns` and `additional_columns` mean the same list: use one of them', null, 'key');
    }
    const listKey = raw.columns !== undefined ? 'columns' : 'additional_columns';
    for (const [i, rc] of (raw[listKey] ?? []).entries()) {
      if (!isRecord(rc)) continue;
      const c = this.column(rc as RawColumn, [...tPath, listKey, i], raw.include_base === true, byName);
      if (c) {
        columns.push(c);
        byName.set(c.name, c);
      }
    }
    const written = (key: string) => ctx.hasKey([...tPath, key]);
    if (columns.length === 0 && (raw[listKey] ?? []).length === 0 && written(listKey)) {
      ctx.add([...tPath, listKey], 'no_columns', `table ${q(name)} has no columns`, null, 'key');
    } else if (columns.length === 0 && !written('include_base') && !written('columns') && !written('additional_columns')) {
      ctx.add(tPath, 'no_columns', `table ${q(name)} has no columns (expected \`include_base: true\`, \`columns:\` or \`additional_columns:\`)`, null, 'key');
    }
    const names = columns.map((c) => c.name);
    const unknownColumn = (p: Path, what: string, column: string) => {
      const guess = closest(column, names);
      ctx.add(p, 'unknown_column', `${what} ${q(column)} is not a column of ${q(name)} (${guess ? `did you mean "${guess}"? ` : ''}columns: ${list(names)})`);
    };

    // ── mappings: MongoDB field → column (additional_mappings and explicit_mappings mean the same)
    const mapped = new Map<string, { field: string; path: Path }>();
    for (const key of ['additional_mappings', 'explicit_mappings'] as const) {
      for (const [field, column] of raw[key] ?? []) {
        if (typeof column !== 'string') continue;
        const mPath = [...tPath, key, field];
        if (!byName.has(column)) {
          unknownColumn(mPath, `mapping of field ${q(field)}: column`, column);
        } else if (mapped.has(column)) {
          const first = mapped.get(column)!;
          ctx.add(mPath, 'duplicate_mapping', `column ${q(column)} is already fed by field ${q(first.field)} (line ${ctx.lineOf(first.path)})`);
        } else {
          mapped.set(column, { field, path: mPath });
        }
      }
    }

    // ── strategy
    const strategy: Strategy = raw.strategy ?? 'upsert';
    for (const key of [...EXPLODE_KEYS, ...DEDUPE_KEYS]) {
      const owner = (EXPLODE_KEYS as readonly string[]).includes(key) ? 'explode' : 'dedupe';
      if (raw[key] !== undefined && strategy !== owner) {
        ctx.add([...tPath, key], 'not_for_strategy', `${q(key)} only applies to \`strategy: ${owner}\` (this table's strategy is ${strategy})`, null, 'key');
      }
    }
    const missing = (key: string, what: string) =>
      ctx.add([...tPath, key], 'strategy_missing_key', `strategy: ${strategy} needs ${q(key)} (${what})`, ctx.where(tPath, 'key'));

    const special = new Map<string, ColumnSource>();
    let explode: ExplodeSpec | null = null;
    if (strategy === 'explode') explode = this.explode(raw, tPath, byName, special, missing, unknownColumn);

    let dedupe: DedupeSpec | null = null;
    if (strategy === 'dedupe') {
      const key: string[] = [];
      if (raw.dedupe_key === undefined) missing('dedupe_key', 'the columns identifying one row, e.g. [user_id, day]');
      for (const [i, k] of (raw.dedupe_key ?? []).entries()) {
        if (typeof k !== 'string') continue;
        if (!byName.has(k)) unknownColumn([...tPath, 'dedupe_key', i], 'dedupe_key column', k);
        else if (key.includes(k)) ctx.add([...tPath, 'dedupe_key', i], 'duplicate_column', `column ${q(k)} appears twice in dedupe_key`);
        else key.push(k);
      }
      if (raw.latest_by === undefined) missing('latest_by', 'the column deciding which document is the latest, e.g. updated_at');
      else if (!byName.has(raw.latest_by)) unknownColumn([...tPath, 'latest_by'], 'latest_by column', raw.latest_by);
      if (raw.latest_by !== undefined && key.length > 0) dedupe = { key, latestBy: raw.latest_by };
      if (raw.propagate_deletes === true) {
        ctx.add(
          [...tPath, 'propagate_deletes'],
          'propagate_deletes_dedupe',
          'propagate_deletes is not supported on a dedupe table: a document _id names no row (its rows still go when the row they reference is deleted)',
        );
      }
    }

    // ── sources
    for (const c of columns) {
      const m = mapped.get(c.name);
      if (c.sqlType?.kind === 'serial') {
        if (m) ctx.add(m.path, 'mapping_to_generated', `column ${q(c.name)} is SERIAL (PostgreSQL assigns it): it cannot be fed from field ${q(m.field)}`);
        c.source = { kind: 'generated' };
      } else if (special.has(c.name)) {
        if (m) {
          const what = special.get(c.name)!.kind.replace('_', ' ');
          ctx.add(m.path, 'mapping_to_strategy_column', `column ${q(c.name)} is filled by the explode strategy (${what}): remove this mapping`);
        }
        c.source = special.get(c.name)!;
      } else {
        c.source = { kind: 'field', path: m?.field ?? c.defaultField ?? c.name };
      }
    }

    // ── keys
    const primaryKey = columns.filter((c) => c.primaryKey).map((c) => c.name);
    const uniques: string[][] = [];
    for (const [i, u] of (raw.unique_constraints ?? []).entries()) {
      if (!Array.isArray(u)) continue;
      const cols: string[] = [];
      let ok = true;
      for (const [j, col] of u.entries()) {
        if (typeof col !== 'string') {
          ok = false;
          continue;
        }
        const uPath = [...tPath, 'unique_constraints', i, j];
        if (!byName.has(col)) {
          unknownColumn(uPath, 'unique constraint column', col);
          ok = false;
        } else if (cols.includes(col)) {
          ctx.add(uPath, 'duplicate_column', `column ${q(col)} appears twice in this unique constraint`);
          ok = false;
        } else cols.push(col);
      }
      if (!ok) continue;
      if (uniques.some((x) => sameSet(x, cols))) {
        ctx.add([...tPath, 'unique_constraints', i], 'duplicate_unique', `unique constraint (${list(cols)}) is listed twice`);
        continue;
      }
      uniques.push(cols);
    }
    const hasKeyErrors = (raw.unique_constraints ?? []).length !== uniques.length;
    const baseInvalid = written('include_base') && raw.include_base === undefined;
    if (primaryKey.length === 0 && uniques.length === 0 && !hasKeyErrors && !baseInvalid && columns.length > 0 && strategy !== 'explode') {
      ctx.add(
        tPath,
        'no_key',
        `table ${q(name)} has neither a primary key nor a unique constraint, so its rows cannot be merged (add include_base: true, primary_key: true on a column, or unique_constraints)`,
        null,
        'key',
      );
    }
    const staged = (cols: readonly string[]) => cols.every((c) => byName.get(c)?.source?.kind !== 'generated');
    let mergeKey: string[] = [];
    if (strategy === 'upsert') {
      mergeKey = primaryKey.length > 0 && staged(primaryKey) ? primaryKey : (uniques.find(staged) ?? []);
      if (mergeKey.length === 0 && (primaryKey.length > 0 || uniques.length > 0)) {
        ctx.add(tPath, 'no_merge_key', `table ${q(name)}: strategy upsert needs a primary key or unique constraint whose columns are staged (a SERIAL is assigned by PostgreSQL)`, null, 'key');
      }
    } else if (strategy === 'explode') {
      mergeKey = uniques[0] ?? [];
      if (uniques.length === 0 && !hasKeyErrors) {
        ctx.add(
          [...tPath, 'unique_constraints'],
          'explode_needs_unique',
          `strategy: explode needs a unique constraint identifying one link (e.g. [${explode?.parentColumn ?? 'parent_id'}, ${explode?.arrays[0]?.itemColumn ?? 'item_id'}]): load merges and removes duplicates on it`,
          ctx.where(tPath, 'key'),
        );
      } else if (uniques[0] && !staged(uniques[0])) {
        ctx.add([...tPath, 'unique_constraints', 0], 'no_merge_key', 'the first unique constraint of an explode table must not hold a SERIAL column');
      }
    } else if (dedupe) {
      mergeKey = [...dedupe.key];
      const isKey = sameSet(primaryKey, dedupe.key) || uniques.some((u) => sameSet(u, dedupe!.key));
      if (!isKey && !hasKeyErrors) {
        ctx.add(
          [...tPath, 'dedupe_key'],
          'dedupe_key_not_unique',
          `dedupe_key [${list(dedupe.key)}] must also be the primary key or a unique constraint (load upserts ON CONFLICT on it): add it to unique_constraints`,
        );
      }
    }

    if (raw.truncate_before_import === true && raw.force_reimport !== true) {
      ctx.add(
        [...tPath, 'truncate_before_import'],
        'truncate_without_force',
        'truncate_before_import: true must go with force_reimport: true (TRUNCATE … CASCADE empties the table, so every document must be re-read)',
      );
    }

    return { name, index, path: tPath, line, raw, columns, byName, primaryKey, uniques, mergeKey, explode, dedupe, references: [] };
  }

  private column(rc: RawColumn, cPath: Path, includeBase: boolean, byName: Map<string, ColumnDraft>): ColumnDraft | null {
    const ctx = this.ctx;
    if (rc.name === undefined) return null;
    const name = rc.name;
    if (byName.has(name)) {
      const first = byName.get(name)!;
      const where = first.defaultField !== null ? 'by include_base' : `at line ${first.line}`;
      ctx.add([...cPath, 'name'], 'duplicate_column', `duplicate column ${q(name)} (already defined ${where})`);
      return null;
    }
    if (Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES) {
      ctx.add([...cPath, 'name'], 'name_too_long', `column name ${q(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`);
    }
    let sqlType: SqlType | null = null;
    if (rc.sql_type !== undefined) {
      sqlType = parseSqlType(rc.sql_type);
      if (sqlType === null) {
        ctx.add([...cPath, 'sql_type'], 'unknown_sql_type', `unknown sql_type ${q(rc.sql_type)} (expected one of: ${list(KNOWN_SQL_TYPES)})`);
      }
    }
    const primaryKey = rc.primary_key === true;
    if (primaryKey && includeBase) {
      ctx.add([...cPath, 'primary_key'], 'primary_key_with_base', 'include_base already makes `id` the primary key: remove primary_key here', null, 'key');
    }
    const implicitNotNull = primaryKey || sqlType?.kind === 'serial';
    if (rc.nullable === true && implicitNotNull) {
      ctx.add([...cPath, 'nullable'], 'bad_nullable', `column ${q(name)} is ${primaryKey ? 'a primary key' : 'SERIAL'}, which is never NULL: remove nullable: true`);
    }
    const nullable = rc.nullable ?? !implicitNotNull;
    if (rc.on_missing !== undefined && rc.foreign_key === undefined) {
      ctx.add([...cPath, 'on_missing'], 'on_missing_without_fk', 'on_missing only applies to a column with a foreign_key', null, 'key');
    }
    const onMissing = rc.on_missing ?? 'reject';
    if (onMissing === 'set_null' && !nullable) {
      ctx.add(
        [...cPath, 'on_missing'],
        'set_null_not_nullable',
        `on_missing: set_null on column ${q(name)}, which is NOT NULL (nullable: false): use on_missing: reject, or make the column nullable`,
      );
    }
    return {
      name,
      sqlType,
      nullable,
      primaryKey,
      foreignKeyText: rc.foreign_key ?? null,
      onMissing,
      path: cPath,
      line: ctx.lineOf(cPath),
      defaultField: null,
      source: null,
      foreignKey: null,
    };
  }

  private explode(
    raw: RawTable,
    tPath: Path,
    byName: Map<string, ColumnDraft>,
    special: Map<string, ColumnSource>,
    missing: (key: string, what: string) => void,
    unknownColumn: (p: Path, what: string, column: string) => void,
  ): ExplodeSpec | null {
    const ctx = this.ctx;
    const parent = raw.parent_column;
    if (parent === undefined) missing('parent_column', "the column receiving the parent document's _id");
    else if (!byName.has(parent)) unknownColumn([...tPath, 'parent_column'], 'parent_column', parent);
    else special.set(parent, { kind: 'parent_id' });
    if (raw.arrays === undefined) missing('arrays', 'the arrays to explode, each with field and item_column');

    const arrays: { spec: ArraySpec; path: Path }[] = [];
    for (const [i, ra] of (raw.arrays ?? []).entries()) {
      if (!isRecord(ra)) continue;
      const a = ra as RawArray;
      const aPath = [...tPath, 'arrays', i];
      if (a.field === undefined || a.item_column === undefined) continue;
      let ok = true;
      if (!byName.has(a.item_column)) {
        unknownColumn([...aPath, 'item_column'], 'item_column', a.item_column);
        ok = false;
      } else if (a.item_column === parent) {
        ctx.add([...aPath, 'item_column'], 'item_is_parent', `item_column ${q(a.item_column)} is also the parent_column`);
        ok = false;
      } else {
        special.set(a.item_column, { kind: 'item_id' });
      }
      const constants: Record<string, string> = {};
      for (const [col, value] of a.constants ?? []) {
        if (typeof value !== 'string') continue;
        if (!byName.has(col)) {
          unknownColumn([...aPath, 'constants', col], 'constant column', col);
          ok = false;
        } else constants[col] = value;
      }
      const spec: ArraySpec = { field: a.field, itemColumn: a.item_column, itemIdKey: a.item_id_key ?? null, itemDateKey: a.item_date_key ?? null, constants };
      if (ok) arrays.push({ spec, path: aPath });
    }
    // Constants after every item column is known, so a clash is found whatever the array order.
    for (const { spec, path: aPath } of arrays) {
      for (const col of Object.keys(spec.constants)) {
        const taken = special.get(col);
        if (taken && taken.kind !== 'constant') {
          ctx.add([...aPath, 'constants', col], 'constant_conflict', `column ${q(col)} is already the ${taken.kind === 'parent_id' ? 'parent_column' : 'item_column'}: it cannot hold a constant`, null, 'key');
        } else special.set(col, { kind: 'constant' });
      }
    }
    // A row from one array leaves the other arrays' item/constant columns empty: NOT NULL forbids it.
    for (const { spec, path: aPath } of arrays) {
      for (const [col, source] of special) {
        const c = byName.get(col)!;
        if (c.nullable) continue;
        if (source.kind === 'constant' && !(col in spec.constants)) {
          ctx.add(aPath, 'constant_missing', `array ${q(spec.field)} sets no constant for column ${q(col)}, which is NOT NULL (add it under constants)`);
        } else if (source.kind === 'item_id' && spec.itemColumn !== col) {
          ctx.add(aPath, 'item_column_missing', `array ${q(spec.field)} leaves item column ${q(col)} empty, which is NOT NULL`);
        }
      }
    }
    if (parent === undefined || !byName.has(parent) || arrays.length === 0) return null;
    return { parentColumn: parent, merge: raw.merge ?? 'delete_and_insert', arrays: arrays.map((a) => a.spec) };
  }

  private foreignKeys(t: TableDraft, drafts: ReadonlyMap<string, TableDraft>): void {
    const ctx = this.ctx;
    for (const c of t.columns) {
      if (c.foreignKeyText === null) continue;
      const fkPath = [...c.path, 'foreign_key'];
      const m = /^\s*([^()]+?)\s*\(\s*([^()]+?)\s*\)\s*$/.exec(c.foreignKeyText);
      if (!m) {
        ctx.add(fkPath, 'bad_foreign_key', `expected "table(column)", e.g. users(id), got ${q(c.foreignKeyText)}`);
        continue;
      }
      const [, tableName, columnName] = m as unknown as [string, string, string];
      const target = drafts.get(tableName);
      if (!target) {
        const guess = closest(tableName, [...drafts.keys()]);
        ctx.add(fkPath, 'unknown_table', `foreign key to unknown table ${q(tableName)}${guess ? ` (did you mean "${guess}"?)` : ''}`);
        continue;
      }
      const targetColumn = target.byName.get(columnName);
      if (!targetColumn) {
        ctx.add(fkPath, 'unknown_column', `foreign key to unknown column ${q(columnName)} of table ${q(tableName)} (its columns: ${list(target.columns.map((x) => x.name))})`);
        continue;
      }
      const unique = sameSet(target.primaryKey, [columnName]) || target.uniques.some((u) => sameSet(u, [columnName]));
      if (!unique) {
        ctx.add(fkPath, 'fk_target_not_unique', `foreign key to ${tableName}(${columnName}), which is neither the primary key nor a single-column unique constraint of ${q(tableName)} (PostgreSQL requires one)`);
        continue;
      }
      if (c.sqlType && targetColumn.sqlType && typeFamily(c.sqlType) !== typeFamily(targetColumn.sqlType)) {
        ctx.add(fkPath, 'fk_type_mismatch', `column ${q(c.name)} is ${sqlTypeText(c.sqlType)} but ${tableName}(${columnName}) is ${sqlTypeText(targetColumn.sqlType)}: the types must match`);
        continue;
      }
      c.foreignKey = { table: tableName, column: columnName, onMissing: c.onMissing };
      if (tableName !== t.name && !t.references.includes(tableName)) t.references.push(tableName);
    }
  }

  /** Reports each foreign-key cycle; false when there is one. */
  private cycles(drafts: ReadonlyMap<string, TableDraft>): boolean {
    const nodes = [...drafts.values()].map((t) => ({ name: t.name, exportOrder: 0, index: t.index, references: t.references }));
    const cycles = findCycles(nodes);
    for (const cycle of cycles) {
      const [first, second] = [cycle[0]!, cycle[1] ?? cycle[0]!];
      const fk = drafts.get(first)!.columns.find((c) => c.foreignKey?.table === second)!;
      this.ctx.add(
        [...fk.path, 'foreign_key'],
        'fk_cycle',
        `foreign keys form a cycle: ${[...cycle, first].join(' → ')} (no load order can put each table after the tables it references)`,
      );
    }
    return cycles.length === 0;
  }

  private exportOrders(drafts: ReadonlyMap<string, TableDraft>, effective: ReadonlyMap<string, number>): void {
    for (const t of drafts.values()) {
      const own = t.raw.export_order;
      if (own === undefined) continue;
      for (const ref of t.references) {
        const theirs = effective.get(ref)!;
        if (own >= theirs) continue;
        const fk = t.columns.find((c) => c.foreignKey?.table === ref)!;
        this.ctx.add(
          [...t.path, 'export_order'],
          'export_order_conflict',
          `export_order ${own} puts ${q(t.name)} before ${q(ref)} (export_order ${theirs}${drafts.get(ref)!.raw.export_order === undefined ? ', implied by its foreign keys' : ''}), which it references (column ${q(fk.name)}, foreign_key at line ${this.ctx.lineOf([...fk.path, 'foreign_key'])}): give ${q(t.name)} an export_order of at least ${theirs}`,
        );
      }
    }
  }

  private tableModel(t: TableDraft, exportOrder: number): TableModel {
    const columns: ColumnModel[] = t.columns.map((c) => ({
      name: c.name,
      sqlType: c.sqlType!,
      sqlTypeText: sqlTypeText(c.sqlType!),
      nullable: c.nullable,
      primaryKey: c.primaryKey,
      source: c.source!,
      foreignKey: c.foreignKey,
      line: c.line,
    }));
    return {
      name: t.name,
      collection: t.raw.mongo_collection ?? t.name,
      strategy: t.raw.strategy ?? 'upsert',
      columns,
      stagedColumns: columns.filter((c) => c.source.kind !== 'generated'),
      primaryKey: t.primaryKey,
      uniqueConstraints: t.uniques,
      mergeKey: t.mergeKey,
      filter: (t.raw.filter ?? null) as DocumentFilter | null,
      explode: t.explode,
      dedupe: t.dedupe,
      exportOrder,
      forceReimport: t.raw.force_reimport ?? false,
      truncateBeforeImport: t.raw.truncate_before_import ?? false,
      dateThreshold: t.raw.date_threshold ?? null,
      propagateDeletes: t.raw.propagate_deletes ?? false,
      line: t.line,
    };
  }
}

/**
 * export_order as written, or, when a table leaves it out, the greatest export_order among the
 * tables it references (1 without references): the group its foreign keys already imply, so an
 * omitted export_order never contradicts them. Called only once the foreign keys have no cycle.
 */
function effectiveExportOrders(drafts: ReadonlyMap<string, TableDraft>): Map<string, number> {
  const out = new Map<string, number>();
  const of = (t: TableDraft): number => {
    const known = out.get(t.name);
    if (known !== undefined) return known;
    const value = t.raw.export_order ?? Math.max(1, ...t.references.map((r) => of(drafts.get(r)!)));
    out.set(t.name, value);
    return value;
  };
  for (const t of drafts.values()) of(t);
  return out;
}

/** One entry per distinct collection, in the load order of the first table reading it. */
export function collectionsOf(tablesInLoadOrder: readonly TableModel[]): CollectionModel[] {
  const groups = new Map<string, TableModel[]>();
  for (const t of tablesInLoadOrder) groups.set(t.collection, [...(groups.get(t.collection) ?? []), t]);
  return [...groups].map(([name, tables]) => {
    // Filters are re-checked per table in transform when the server filter is wider, so their fields are projected too.
    const fields = new Set(['_id', 'creation_date', 'update_date']);
    const top = (p: string) => fields.add(p.split('.')[0]!);
    for (const t of tables) {
      for (const c of t.columns) if (c.source.kind === 'field') top(c.source.path);
      for (const a of t.explode?.arrays ?? []) top(a.field);
      if (t.filter) fieldsOfFilter(t.filter).forEach(top);
    }
    let serverFilter: Record<string, unknown> | null = null;
    if (tables.every((t) => t.filter !== null)) {
      const distinct = [...new Map(tables.map((t) => [JSON.stringify(t.filter!.mongoQuery), t.filter!.mongoQuery])).values()];
      serverFilter = distinct.length === 1 ? { ...distinct[0] } : { $or: distinct };
    }
    return { name, tables: tables.map((t) => t.name), projection: [...fields], serverFilter };
  });
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Freezes the model all the way down; maps become read-only (set/delete/clear throw). */
function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v);
    const refuse = () => {
      throw new TypeError('the pipeline model is read-only');
    };
    Object.defineProperties(value, { set: { value: refuse }, delete: { value: refuse }, clear: { value: refuse } });
    return Object.freeze(value);
  }
  if (typeof value === 'object' && value !== null && !(value instanceof Date) && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
