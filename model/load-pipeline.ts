// Reads pipeline.yaml into the resolved, frozen PipelineModel, or throws one ConfigError listing
// every finding (file, line, key, what was expected). Two passes: the node walk checks shapes and
// kinds against the field spec (model/pipeline-spec.ts); the resolver then checks what only the
// whole file can tell (columns named by mappings, strategies and constraints, foreign keys, cycles,
// export_order) and points each finding at the node that names the offending thing.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../errors/etl-error.ts';
import type { ConfigFinding } from '../errors/config-finding.ts';
import type { CollectionModel, ColumnModel, DocumentFilter, PipelineModel, Settings, TableModel } from './types.ts';
import { closest, INVALID, lintValue, LintContext } from './field-spec.ts';
import { PIPELINE_SPEC, type RawPipeline, type RawSettings, type RawTable } from './pipeline-spec.ts';
import { sqlTypeText, typeFamily } from './sql-types.ts';
import { findCycles, loadOrder } from './load-order.ts';
import { fieldsOfFilter } from './filter.ts';
import { documentKeyOf, mergeKindOf, resolveTable, type TableDraft } from './resolve-table.ts';
import { isRecord, list, quote as q, sameSet } from './resolve-util.ts';
import { constraintName, contributionsIndexName, contributionsTableName } from './derived-names.ts';
import { stagedFileCollisions } from './names.ts';

export { sqlTypeText } from './sql-types.ts';

export interface LoadPipelineOptions {
  /** GLOBAL_DATE_THRESHOLD: when set, replaces settings.date_threshold. */
  readonly globalDateThreshold?: Date | null;
}

export { RESERVED_TABLES } from './resolve-table.ts';

export const DEFAULT_SETTINGS: Settings = Object.freeze({
  timezone: 'Europe/Paris',
  batchSize: 1000,
  dateThreshold: null,
  watermarkMarginSeconds: 300,
  nulCharacter: 'reject',
});

/**
 * The largest pipeline file etl reads: the whole Wappizy mapping (31 tables) is 25 kB. A file of tens
 * of MB is a mistake, and would take minutes and gigabytes to parse (the YAML parser checks each key
 * of a mapping against the others), so it is refused before it is read.
 */
export const MAX_PIPELINE_BYTES = 1024 * 1024;

/** The finding of a file over MAX_PIPELINE_BYTES. */
function tooLarge(file: string, size: number): ConfigFinding {
  const mib = (size / 1024 / 1024).toFixed(1);
  return { file, line: 1, col: 1, path: [], code: 'file_too_large', message: `the file is ${mib} MiB (${size} bytes): a pipeline file holds at most 1 MiB` };
}

export async function loadPipeline(file: string, options: LoadPipelineOptions = {}): Promise<PipelineModel> {
  const abs = path.resolve(file);
  let bytes: Buffer;
  try {
    const { size } = await stat(abs);
    if (size > MAX_PIPELINE_BYTES) throw invalidPipeline(abs, [tooLarge(abs, size)]);
    bytes = await readFile(abs);
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
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
  const fail = (findings: readonly ConfigFinding[]): never => {
    throw invalidPipeline(file, findings);
  };
  if (bytes.length > MAX_PIPELINE_BYTES) fail([tooLarge(file, bytes.length)]);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = Buffer.from(bytes).toString('utf8');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    fail(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { file, line: pos.line, col: pos.col, path: [], code: 'yaml_syntax', message: yamlErrorWords(e, text) };
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

/**
 * What the parser found, in words that say what to do: its own name its API (a second document), or
 * do not say which key or what to type instead (a key given twice, a tab); otherwise its message.
 */
function yamlErrorWords(e: { code: string; message: string; pos: [number, number] }, text: string): string {
  if (e.code === 'MULTIPLE_DOCS') return 'a second YAML document starts here (---): a pipeline file holds one';
  if (e.code === 'DUPLICATE_KEY') {
    const key = /^(?:"((?:[^"\\\n]|\\.)*)"|'([^'\n]*)'|([^:#\n]*?))\s*:/.exec(text.slice(e.pos[0], e.pos[0] + 1000));
    const name = key ? (key[1] ?? key[2] ?? key[3] ?? '') : '';
    return `${name ? `the key ${JSON.stringify(name)} is` : 'a key is'} given twice in this map: keep one (YAML does not say which one counts)`;
  }
  if (e.code === 'TAB_AS_INDENT') return 'a tab indents this line: YAML allows no tab in indentation; indent with spaces';
  return parserWords(e.message);
}

/** The parser's message, first line; its JavaScript words for nesting it could not follow said for a person. */
function parserWords(message: string): string {
  if (/Maximum call stack size exceeded/i.test(message)) return 'the YAML is nested too deeply here (thousands of levels): a pipeline file nests a few';
  return message.split('\n')[0]!;
}

/** The one error of a pipeline file with findings, each naming its line. */
function invalidPipeline(file: string, findings: readonly ConfigFinding[]): ConfigError {
  const errors = findings.length === 1 ? '1 error' : `${findings.length} errors`;
  return new ConfigError(`${file} is not a valid pipeline: ${errors}`, findings, {
    context: { file, line: findings[0]?.line, path: findings[0] ? findings[0].path.join('.') : undefined },
    hint: 'fix the lines above, then run `etl validate`',
  });
}

/** The relations etl creates for a table (the table, the indexes of its keys, its state table), each with words for it. */
function relationsOf(t: TableModel): [name: string, what: string, isTable?: boolean][] {
  const out: [string, string, boolean?][] = [[t.name, `table ${q(t.name)}`, true]];
  if (t.primaryKey.length > 0) out.push([constraintName(t.name, t.primaryKey, 'pkey'), `the primary key of table ${q(t.name)}`]);
  for (const u of t.uniqueConstraints) out.push([constraintName(t.name, u, 'key'), `the unique constraint (${list(u)}) of table ${q(t.name)}`]);
  if (t.strategy === 'dedupe') {
    out.push([contributionsTableName(t.name), `the contributions table of ${q(t.name)}`]);
    out.push([contributionsIndexName(t.name), `the index of the contributions table of ${q(t.name)}`]);
  }
  return out;
}

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
      const draft = isRecord(value) ? resolveTable(this.ctx, name, value as RawTable, index++) : null;
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
    this.relationNames([...drafts.values()].map((d) => tables.get(d.name)!));
    this.stagedFileNames([...drafts.values()].map((d) => tables.get(d.name)!));
    return {
      file: this.file,
      sha256: this.sha256,
      settings,
      tables,
      loadOrder: order,
      collections: collectionsOf(order.map((n) => tables.get(n)!)),
    };
  }

  /**
   * PostgreSQL keeps tables and the indexes behind keys under one name space: two of them etl would
   * name alike (table "a_b" with UNIQUE (c) and table "a" with UNIQUE (b_c), both "a_b_c_key"; a table
   * "users_pkey" beside "users"; the contributions of dedupe tables "a" and "a_key") would make
   * `etl schema` fail half-way, or skip one (IF NOT EXISTS). Refused here, both named.
   */
  private relationNames(tables: readonly TableModel[]): void {
    const taken = new Map<string, string>();
    for (const t of tables) {
      for (const [name, what, isTable] of relationsOf(t)) {
        const first = taken.get(name);
        if (first === undefined) {
          taken.set(name, what);
          continue;
        }
        this.ctx.add(
          ['tables', t.name],
          'name_collision',
          `${isTable ? `${what} has the name of ${first}` : `${what} would be named ${q(name)}, as is ${first}`}: PostgreSQL cannot hold both under one name (rename a table or a column)`,
          null,
          'key',
        );
      }
    }
  }

  /** Two names that would write one staged file (`c` and `c.rejects`, `t` and `t.keys`): refused, the later named. */
  private stagedFileNames(tables: readonly TableModel[]): void {
    for (const c of stagedFileCollisions(tables)) {
      const what = c.collection === null ? `table ${q(c.table)}` : `mongo_collection ${q(c.collection)} of table ${q(c.table)}`;
      this.ctx.add(
        c.collection === null ? ['tables', c.table] : ['tables', c.table, 'mongo_collection'],
        'file_name_collision',
        `${what} would be staged as ${c.file}, ${c.taken}: one file cannot be both (rename the table, or map the collection under another table name)`,
        null,
        c.collection === null ? 'key' : undefined,
      );
    }
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
      strategy: t.strategy,
      columns,
      stagedColumns: columns.filter((c) => c.source.kind !== 'generated'),
      primaryKey: t.primaryKey,
      uniqueConstraints: t.uniques,
      mergeKey: t.mergeKey,
      mergeKind: mergeKindOf(t.strategy, t.explode),
      documentKey: documentKeyOf(t),
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

/**
 * The top-level fields of a document the table reads: `_id`, its columns' fields, its arrays and its
 * filter's fields (transform reads only these from a staged line; extract projects them).
 */
export function topLevelFieldsRead(t: TableModel): Set<string> {
  const fields = new Set(['_id']);
  const top = (p: string) => fields.add(p.split('.')[0]!);
  for (const c of t.columns) if (c.source.kind === 'field') top(c.source.path);
  for (const a of t.explode?.arrays ?? []) top(a.field);
  if (t.filter) fieldsOfFilter(t.filter).forEach(top);
  return fields;
}

/** One entry per distinct collection, in the load order of the first table reading it. */
export function collectionsOf(tablesInLoadOrder: readonly TableModel[]): CollectionModel[] {
  const groups = new Map<string, TableModel[]>();
  for (const t of tablesInLoadOrder) groups.set(t.collection, [...(groups.get(t.collection) ?? []), t]);
  return [...groups].map(([name, tables]) => {
    // Filters are re-checked per table in transform when the server filter is wider, so their fields are projected too.
    const fields = new Set(['_id', 'creation_date', 'update_date']);
    for (const t of tables) for (const f of topLevelFieldsRead(t)) fields.add(f);
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
