// Random edits of pipeline.yaml, made as a user would make them between two runs, for the
// schema-evolution proof (test/mirror/evolution-randomized.test.ts): columns added, dropped, widened
// and narrowed; filters widened and narrowed; an explode constant or merge changed; a dedupe table's
// latest_by and key; a table's primary key; the settings that change values (timezone, date_threshold,
// nul_character); a table's own date_threshold; the GLOBAL_DATE_THRESHOLD environment variable (not
// in the file: `env` holds it for every command of the round and for the reference run); tables
// added and removed; force_reimport + truncate_before_import set and removed; a new column taken into
// a table's primary key or merge key, or into a dedupe table's key, by the edit that adds it.
//
// Edited through the yaml package's Document API, so the header comment and every other comment
// survive; each candidate edit is checked by resolving the edited text with model/load-pipeline.ts
// and kept only if it is a valid pipeline. Seeded (sample/prng.ts): the same seed gives the same
// edits. Each edit says which `--allow` tokens `etl schema` needs for it (README, "Schema evolution").
import { writeFile } from 'node:fs/promises';
import { isMap, isSeq, parseDocument, type Document, type YAMLMap, type YAMLSeq } from 'yaml';
import { hash, Rng } from '../../sample/prng.ts';
import { resolvePipeline } from '../../model/load-pipeline.ts';
import type { PipelineModel, TableModel } from '../../model/types.ts';

export type PipelineEditKind =
  | 'add_column'
  | 'drop_column'
  | 'widen_type'
  | 'narrow_type'
  | 'nullability'
  | 'on_missing'
  | 'filter'
  | 'explode_constant'
  | 'explode_merge'
  | 'latest_by'
  | 'dedupe_key'
  | 'primary_key'
  | 'timezone'
  | 'date_threshold'
  | 'table_date_threshold'
  | 'global_date_threshold'
  | 'nul_character'
  | 'add_table'
  | 'remove_table'
  | 'truncate_before_import'
  | 'key_new_column'
  | 'dedupe_key_new_column';

/** How often each kind is drawn (relative weights). */
export const PIPELINE_EDIT_WEIGHTS: readonly (readonly [PipelineEditKind, number])[] = [
  ['add_column', 6],
  ['drop_column', 4],
  ['widen_type', 3],
  ['narrow_type', 3],
  ['nullability', 3],
  ['on_missing', 2],
  ['filter', 4],
  ['explode_constant', 2],
  ['explode_merge', 2],
  ['latest_by', 2],
  ['dedupe_key', 2],
  ['primary_key', 6],
  ['timezone', 2],
  ['date_threshold', 2],
  ['table_date_threshold', 2],
  ['global_date_threshold', 2],
  ['nul_character', 1],
  ['add_table', 3],
  ['remove_table', 2],
  ['truncate_before_import', 4],
  ['key_new_column', 3],
  ['dedupe_key_new_column', 2],
];

export interface PipelineEdit {
  readonly round: number;
  readonly n: number;
  readonly kind: PipelineEditKind;
  readonly detail: string;
  /** `--allow` tokens `etl schema` needs to apply it (README: refused unless named). */
  readonly allow: readonly string[];
}

export const formatPipelineEdit = (e: PipelineEdit): string =>
  `r${e.round}#p${e.n} ${e.kind} ${e.detail}${e.allow.length > 0 ? ` (--allow ${e.allow.join(',')})` : ''}`;

/** A column a table may gain: an unmapped field of its collection (sample/documents.ts). */
interface ColumnCandidate {
  readonly table: string;
  readonly name: string;
  readonly field: string;
  readonly sqlType: string;
  /** Every document has the field, so the column may be NOT NULL. */
  readonly always?: boolean;
  readonly foreignKey?: string;
}

const COLUMN_CANDIDATES: readonly ColumnCandidate[] = [
  { table: 'users', name: 'gender', field: 'gender', sqlType: 'VARCHAR(10)', always: true },
  { table: 'users', name: 'picture', field: 'picture', sqlType: 'VARCHAR' },
  { table: 'offers', name: 'price', field: 'price', sqlType: 'NUMERIC(10,2)', always: true },
  { table: 'offers', name: 'description', field: 'description', sqlType: 'TEXT' },
  { table: 'recipes', name: 'duration', field: 'duration', sqlType: 'SMALLINT', always: true },
  { table: 'recipes', name: 'description', field: 'description', sqlType: 'TEXT' },
  { table: 'contents', name: 'is_default', field: 'default', sqlType: 'BOOLEAN' },
  { table: 'contents', name: 'categories', field: 'categories', sqlType: 'JSONB' },
  { table: 'quizzs', name: 'description', field: 'description', sqlType: 'TEXT' },
  { table: 'items', name: 'order', field: 'order', sqlType: 'SMALLINT' },
  { table: 'menus', name: 'start_date', field: 'start_date', sqlType: 'TIMESTAMP', always: true },
  { table: 'menus', name: 'description', field: 'description', sqlType: 'TEXT' },
  { table: 'events', name: 'points', field: 'points', sqlType: 'INTEGER' },
  { table: 'menu_recipes', name: 'menu_day', field: 'day', sqlType: 'VARCHAR(10)' },
  { table: 'menu_recipes', name: 'period', field: 'period', sqlType: 'VARCHAR(10)' },
  { table: 'users_logbook', name: 'logbook_id', field: 'logbook', sqlType: 'VARCHAR', foreignKey: 'users_quizzs(id)' },
  { table: 'users_logbook', name: 'coaching_id', field: 'coaching', sqlType: 'VARCHAR' },
  { table: 'user_events', name: 'user_email', field: 'email', sqlType: 'VARCHAR(255)' },
  { table: 'users_targets', name: 'role', field: 'role', sqlType: 'VARCHAR(100)' },
  { table: 'messages', name: 'seen', field: 'seen', sqlType: 'BOOLEAN' },
  { table: 'messages', name: 'attachment', field: 'attachment', sqlType: 'VARCHAR' },
  { table: 'appointments', name: 'note', field: 'note', sqlType: 'TEXT' },
  { table: 'appointments', name: 'visio_url', field: 'visio_url', sqlType: 'VARCHAR' },
];

/** The filters a table may have (null: none); menus' is the shipped one. */
const FILTERS: Readonly<Record<string, readonly (Record<string, unknown> | null)[]>> = {
  menus: [{ __t: 'menu' }, { __t: { $in: ['menu', 'webinar'] } }, { __t: { $ne: 'individualChallenge' } }],
  coachings: [null, { status: { $ne: 'COACHING_STATUS_DROPPED' } }, { status: { $in: ['COACHING_STATUS_STARTED', 'COACHING_STATUS_FINISHED'] } }],
  users_targets: [null, { role: 'CUSTOMER' }],
  messages: [null, { receiver: { $exists: true } }],
};

const CONSTANTS = ['basic', 'specificity', 'health', 'specific', 'reason', 'health_reason', 'other'];
const TIMEZONES = ['Europe/Paris', 'UTC', 'America/New_York', 'Asia/Tokyo', 'Pacific/Kiritimati'];
const THRESHOLDS = [null, '2020-06-01', '2022-01-01', '2023-09-15'];

/** Whole tables a pipeline may gain, each reading fields pipeline.yaml does not map today. */
const NEW_TABLES: Readonly<Record<string, Record<string, unknown>>> = {
  recipe_details: {
    mongo_collection: 'recipes',
    include_base: true,
    additional_columns: [
      { name: 'description', sql_type: 'TEXT' },
      { name: 'minutes', sql_type: 'SMALLINT', nullable: false },
    ],
    additional_mappings: { duration: 'minutes' },
  },
  recipe_ingredients: {
    mongo_collection: 'recipes',
    strategy: 'explode',
    parent_column: 'recipe_id',
    merge: 'delete_and_insert',
    arrays: [{ field: 'ingredients', item_column: 'ingredient_id', item_id_key: 'ingredient' }],
    columns: [
      { name: 'recipe_id', sql_type: 'VARCHAR', nullable: false, foreign_key: 'recipes(id)' },
      { name: 'ingredient_id', sql_type: 'VARCHAR', nullable: false, foreign_key: 'ingredients(id)' },
      { name: 'created_at', sql_type: 'TIMESTAMP', nullable: false },
      { name: 'updated_at', sql_type: 'TIMESTAMP', nullable: false },
    ],
    explicit_mappings: { creation_date: 'created_at', update_date: 'updated_at' },
    unique_constraints: [['recipe_id', 'ingredient_id']],
  },
  events_companies: {
    mongo_collection: 'events',
    strategy: 'explode',
    parent_column: 'event_id',
    merge: 'upsert',
    arrays: [{ field: 'companies', item_column: 'company_id', constants: { kind: 'guest' } }],
    columns: [
      { name: 'event_id', sql_type: 'VARCHAR', nullable: false, foreign_key: 'events(id)' },
      { name: 'company_id', sql_type: 'VARCHAR', nullable: false, foreign_key: 'companies(id)' },
      { name: 'kind', sql_type: 'VARCHAR(20)', nullable: false },
      { name: 'created_at', sql_type: 'TIMESTAMP', nullable: false },
      { name: 'updated_at', sql_type: 'TIMESTAMP', nullable: false },
    ],
    explicit_mappings: { creation_date: 'created_at', update_date: 'updated_at' },
    unique_constraints: [['event_id', 'company_id']],
  },
  menu_days: {
    mongo_collection: 'menurecipes',
    strategy: 'dedupe',
    dedupe_key: ['menu_id', 'menu_day'],
    latest_by: 'updated_at',
    columns: [
      { name: 'menu_id', sql_type: 'VARCHAR', nullable: false, foreign_key: 'menus(id)' },
      { name: 'menu_day', sql_type: 'VARCHAR(10)', nullable: false },
      { name: 'recipe_id', sql_type: 'VARCHAR', foreign_key: 'recipes(id)', on_missing: 'set_null' },
      { name: 'created_at', sql_type: 'TIMESTAMP', nullable: false },
      { name: 'updated_at', sql_type: 'TIMESTAMP', nullable: false },
    ],
    explicit_mappings: { menu: 'menu_id', day: 'menu_day', recipe: 'recipe_id', creation_date: 'created_at', update_date: 'updated_at' },
    unique_constraints: [['menu_id', 'menu_day']],
  },
};

/** A table's column list: `additional_columns` with include_base, `columns` otherwise. */
const columnsKey = (table: YAMLMap): string => (table.get('include_base') === true ? 'additional_columns' : 'columns');
/** A table's field → column map: `additional_mappings` with include_base, `explicit_mappings` otherwise. */
const mappingsKey = (table: YAMLMap): string => (table.get('include_base') === true ? 'additional_mappings' : 'explicit_mappings');

/** The columns a table's strategy or keys need: never dropped or retyped by a random edit. */
function structural(t: TableModel): Set<string> {
  const out = new Set<string>([...t.primaryKey, ...t.uniqueConstraints.flat(), ...t.mergeKey]);
  if (t.explode) {
    out.add(t.explode.parentColumn);
    for (const a of t.explode.arrays) {
      out.add(a.itemColumn);
      for (const c of Object.keys(a.constants ?? {})) out.add(c);
    }
  }
  if (t.dedupe) out.add(t.dedupe.latestBy);
  for (const c of t.columns) if (c.source.kind === 'generated' || c.name === 'created_at' || c.name === 'updated_at') out.add(c.name);
  return out;
}

/** The columns include_base adds (model/resolve-table.ts): name, sql_type, the field it reads. */
const BASE_COLUMNS: readonly { readonly name: string; readonly sqlType: string; readonly field: string }[] = [
  { name: 'id', sqlType: 'VARCHAR', field: '_id' },
  { name: 'created_at', sqlType: 'TIMESTAMP', field: 'creation_date' },
  { name: 'updated_at', sqlType: 'TIMESTAMP', field: 'update_date' },
];

/**
 * `include_base: true` written out: its three columns (NOT NULL, `id` the primary key) before
 * `additional_columns` as `columns`, and their fields before `additional_mappings` as `explicit_mappings`.
 */
export function spellOutBase(doc: Document, table: YAMLMap): void {
  const extra = table.get('additional_columns');
  const mappings = table.get('additional_mappings');
  const columns = [
    ...BASE_COLUMNS.map((b) => doc.createNode({ name: b.name, sql_type: b.sqlType, nullable: false, ...(b.name === 'id' ? { primary_key: true } : {}) })),
    ...(isSeq(extra) ? extra.items : []),
  ];
  const fields = doc.createNode(Object.fromEntries(BASE_COLUMNS.map((b) => [b.field, b.name]))) as YAMLMap;
  if (isMap(mappings)) for (const pair of mappings.items) fields.items.push(pair);
  table.delete('include_base');
  table.delete('additional_columns');
  table.delete('additional_mappings');
  table.set('columns', doc.createNode(columns));
  table.set('explicit_mappings', fields);
}

/** What one edit made: its words, its --allow tokens, and the GLOBAL_DATE_THRESHOLD it sets (undefined: unchanged). */
interface Made {
  readonly detail: string;
  readonly allow: string[];
  readonly globalThreshold?: string | null;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((c) => b.includes(c));

/** Tables a foreign key of another table points at. */
function referencedTables(model: PipelineModel): Set<string> {
  return new Set([...model.tables.values()].flatMap((t) => t.columns.flatMap((c) => (c.foreignKey && c.foreignKey.table !== t.name ? [c.foreignKey.table] : []))));
}

/** The table's primary key holds every row a merge on `key` makes: none, a SERIAL in it, or all of `key`'s columns. */
function holdsRowsOf(t: TableModel, key: readonly string[]): boolean {
  const serial = t.primaryKey.some((n) => t.columns.some((c) => c.name === n && c.sqlType.kind === 'serial'));
  return t.primaryKey.length === 0 || serial || key.every((c) => t.primaryKey.includes(c));
}

export class PipelineEditor {
  readonly rng: Rng;
  /** Every edit kept, all rounds. */
  readonly applied: PipelineEdit[] = [];
  /** Candidate edits the pipeline refused (a mistake of this generator), with the reason. */
  readonly invalid: string[] = [];
  private doc: Document;
  model: PipelineModel;
  private round = 0;
  private n = 0;
  /** Tables added this round: not loaded yet, so no date_threshold may be set before their first run. */
  private added = new Set<string>();
  /** GLOBAL_DATE_THRESHOLD of every command from this round on (null: unset). */
  private globalThreshold: string | null = null;

  private constructor(
    text: string,
    private readonly file: string,
    seed: number,
  ) {
    this.rng = new Rng(hash(seed >>> 0, 0x9a7e));
    this.doc = parseDocument(text);
    this.model = resolvePipeline(Buffer.from(text), file);
  }

  /** Starts from `text` (the shipped pipeline.yaml); every round writes the current pipeline to `file`. */
  static async open(text: string, file: string, seed: number): Promise<PipelineEditor> {
    const editor = new PipelineEditor(text, file, seed);
    await writeFile(file, text);
    return editor;
  }

  /** The current pipeline's text. */
  get text(): string {
    return this.doc.toString();
  }

  /** The environment every command of the round runs with, the reference included (GLOBAL_DATE_THRESHOLD overrides settings.date_threshold). */
  get env(): Record<string, string> {
    return this.globalThreshold === null ? {} : { GLOBAL_DATE_THRESHOLD: this.globalThreshold };
  }

  /** A date threshold is in force for every table: a new table's first run would read from it alone (see addTable). */
  private globalThresholdInForce(): boolean {
    return this.model.settings.dateThreshold !== null || this.globalThreshold !== null;
  }

  /** Applies `count` random valid edits, writes the pipeline file; returns the edits. */
  async applyRound(count: number): Promise<PipelineEdit[]> {
    this.round += 1;
    this.n = 0;
    this.added.clear();
    const edits: PipelineEdit[] = [];
    for (let attempts = 0; edits.length < count && attempts < count * 30; attempts++) {
      const kind = this.rng.weighted(PIPELINE_EDIT_WEIGHTS);
      const draft = this.doc.clone();
      const made = this.make(kind, draft);
      if (!made) continue;
      const text = draft.toString();
      let model: PipelineModel;
      try {
        model = resolvePipeline(Buffer.from(text), this.file);
      } catch (e) {
        this.invalid.push(`${kind} ${made.detail}: ${(e as Error).message} ${JSON.stringify((e as { findings?: unknown }).findings ?? '')}`);
        continue;
      }
      this.doc = draft;
      this.model = model;
      if (made.globalThreshold !== undefined) this.globalThreshold = made.globalThreshold;
      if (kind === 'add_table') this.added.add(made.detail);
      this.n += 1;
      const edit: PipelineEdit = { round: this.round, n: this.n, kind, detail: made.detail, allow: made.allow };
      edits.push(edit);
      this.applied.push(edit);
    }
    await writeFile(this.file, this.text);
    return edits;
  }

  private make(kind: PipelineEditKind, doc: Document): Made | null {
    switch (kind) {
      case 'add_column':
        return this.addColumn(doc);
      case 'drop_column':
        return this.dropColumn(doc);
      case 'widen_type':
        return this.changeType(doc, 'widen');
      case 'narrow_type':
        return this.changeType(doc, 'narrow');
      case 'nullability':
        return this.nullability(doc);
      case 'on_missing':
        return this.onMissing(doc);
      case 'filter':
        return this.filter(doc);
      case 'explode_constant':
        return this.explodeConstant(doc);
      case 'explode_merge':
        return this.explodeMerge(doc);
      case 'latest_by':
        return this.latestBy(doc);
      case 'dedupe_key':
        return this.dedupeKey(doc);
      case 'primary_key':
        return this.primaryKey(doc);
      case 'timezone':
        return this.setting(doc, 'timezone', TIMEZONES);
      case 'date_threshold':
        // See addTable: a table's first run must not be under a threshold.
        return this.added.size > 0 ? null : this.setting(doc, 'date_threshold', THRESHOLDS);
      case 'table_date_threshold':
        return this.tableDateThreshold(doc);
      case 'global_date_threshold':
        return this.added.size > 0 ? null : this.globalDateThreshold();
      case 'nul_character':
        return this.setting(doc, 'nul_character', ['reject', 'strip']);
      case 'add_table':
        return this.addTable(doc);
      case 'remove_table':
        return this.removeTable(doc);
      case 'truncate_before_import':
        return this.truncateBeforeImport(doc);
      case 'key_new_column':
        return this.keyNewColumn(doc);
      case 'dedupe_key_new_column':
        return this.dedupeKeyNewColumn(doc);
    }
  }

  private tableNode(doc: Document, name: string): YAMLMap {
    const node = doc.getIn(['tables', name]);
    if (!isMap(node)) throw new Error(`pipeline edit: no table ${name}`);
    return node;
  }

  private columnNodes(doc: Document, name: string): YAMLMap[] {
    const seq = this.tableNode(doc, name).get(columnsKey(this.tableNode(doc, name)));
    return isSeq(seq) ? (seq.items as YAMLMap[]) : [];
  }

  /** The column candidates a table of the current pipeline may gain (no column of that name, its field unmapped). */
  private columnCandidates(): ColumnCandidate[] {
    return COLUMN_CANDIDATES.filter((c) => {
      const t = this.model.tables.get(c.table);
      return t && !t.columns.some((col) => col.name === c.name) && !t.columns.some((col) => col.source.kind === 'field' && col.source.path === c.field);
    });
  }

  /** Writes the candidate's column (and its field's mapping) into its table; returns the column's node. */
  private insertColumn(doc: Document, c: ColumnCandidate, extra: Record<string, unknown>): YAMLMap {
    const table = this.tableNode(doc, c.table);
    const column: Record<string, unknown> = { name: c.name, sql_type: c.sqlType, ...extra };
    if (c.foreignKey) Object.assign(column, { foreign_key: c.foreignKey, on_missing: 'set_null' });
    const node = doc.createNode(column) as YAMLMap;
    (table.get(columnsKey(table)) as YAMLSeq).add(node);
    if (c.field !== c.name) {
      const mk = mappingsKey(table);
      if (!isMap(table.get(mk))) table.set(mk, doc.createNode({}));
      (table.get(mk) as YAMLMap).set(c.field, c.name);
    }
    return node;
  }

  private addColumn(doc: Document): { detail: string; allow: string[] } | null {
    const fits = this.columnCandidates();
    if (fits.length === 0) return null;
    const c = this.rng.pick(fits);
    const notNull = c.always === true && this.rng.chance(0.4);
    this.insertColumn(doc, c, notNull ? { nullable: false } : {});
    return { detail: `${c.table}.${c.name} ${c.sqlType}${notNull ? ' NOT NULL' : ''} ← ${c.field}`, allow: [] };
  }

  /**
   * force_reimport + truncate_before_import set on a table (TRUNCATE … CASCADE before each load, which
   * empties the tables referencing it too: the same run reads them in full), or truncate_before_import
   * removed again, force_reimport with it or not. Neither changes the mapping's fingerprint (README,
   * "How a mapping change is backfilled"): no `etl schema` change, only how the next runs read and load.
   */
  private truncateBeforeImport(doc: Document): Made | null {
    // Half the draws turn one off again while one is on (the other half picks any table).
    const truncating = [...this.model.tables.values()].filter((t) => t.truncateBeforeImport).map((t) => t.name);
    const name = truncating.length > 0 && this.rng.chance(0.5) ? this.rng.pick(truncating) : this.rng.pick([...this.model.tables.keys()]);
    const t = this.model.tables.get(name)!;
    const node = this.tableNode(doc, name);
    if (t.truncateBeforeImport) {
      node.delete('truncate_before_import');
      const keepForce = this.rng.chance(0.5);
      if (!keepForce) node.delete('force_reimport');
      return { detail: `${name}: truncate_before_import off${keepForce ? ' (force_reimport stays)' : ', force_reimport off'}`, allow: [] };
    }
    const had = t.forceReimport;
    node.set('force_reimport', true);
    node.set('truncate_before_import', true);
    return { detail: `${name}: truncate_before_import on${had ? '' : ', force_reimport on'}`, allow: [] };
  }

  /**
   * A column added and, in the same edit, taken into the table's key: for an upsert table of one row
   * per document, the primary key becomes its `_id` column and the new column (include_base spelled
   * out first, as primaryKey does); for an explode table, the new column (NOT NULL) joins the unique
   * constraint it merges on. Not on a table another references (its key stays). README, schema
   * evolution: a primary key over a column pipeline.yaml adds to a table holding rows is refused
   * unless `not-null:<table>.<column>` names it (the rows go, the next run reads the table in full),
   * and the old key's replacement needs `primary-key:<table>`; a new unique constraint over a new,
   * empty column is lossless.
   */
  private keyNewColumn(doc: Document): { detail: string; allow: string[] } | null {
    const referenced = referencedTables(this.model);
    const fits = this.columnCandidates().filter((c) => {
      const t = this.model.tables.get(c.table)!;
      if (referenced.has(t.name) || c.foreignKey) return false;
      if (t.strategy === 'explode') return t.uniqueConstraints.length > 0;
      return t.strategy === 'upsert' && t.columns.some((col) => col.source.kind === 'field' && col.source.path === '_id');
    });
    if (fits.length === 0) return null;
    const c = this.rng.pick(fits);
    const t = this.model.tables.get(c.table)!;
    if (t.strategy === 'explode') {
      this.insertColumn(doc, c, { nullable: false });
      const node = this.tableNode(doc, t.name);
      const [first, ...rest] = (node.toJSON() as { unique_constraints: string[][] }).unique_constraints;
      const key = [...first!, c.name];
      node.set('unique_constraints', doc.createNode([key, ...rest].map((u) => doc.createNode(u, { flow: true }))));
      return { detail: `${t.name}.${c.name} ${c.sqlType} NOT NULL ← ${c.field}, merge key (${first!.join(', ')}) → (${key.join(', ')})`, allow: [] };
    }
    const documentId = t.columns.find((col) => col.source.kind === 'field' && col.source.path === '_id')!;
    const based = this.tableNode(doc, t.name).get('include_base') === true;
    if (based) spellOutBase(doc, this.tableNode(doc, t.name));
    for (const node of this.columnNodes(doc, t.name)) {
      if (String(node.get('name')) === documentId.name) node.set('primary_key', true);
      else node.delete('primary_key');
    }
    this.insertColumn(doc, c, { primary_key: true });
    const key = [documentId.name, c.name];
    const allow = [...(t.primaryKey.length > 0 ? [`primary-key:${t.name}`] : []), `not-null:${t.name}.${c.name}`];
    return { detail: `${t.name}.${c.name} ${c.sqlType} ← ${c.field}${based ? ' (include_base spelled out)' : ''}, primary key (${t.primaryKey.join(', ')}) → (${key.join(', ')})`, allow };
  }

  /**
   * A dedupe table's key gains a column added by the same edit (or, now and then, becomes that column
   * alone), with the unique constraint it merges on, as dedupeKey does. Documents without the field
   * are skipped (README: documents without the key field skipped and counted), as a full run skips
   * them; the rows the old key made hold NULL there until the next run, which reads the table in full
   * (its mapping changed) and recomputes every row by the new key.
   */
  private dedupeKeyNewColumn(doc: Document): { detail: string; allow: string[] } | null {
    const choices = this.columnCandidates().flatMap((c) => {
      const t = this.model.tables.get(c.table)!;
      if (!t.dedupe || c.foreignKey) return [];
      return [[...t.dedupe.key, c.name], [c.name]].filter((key) => holdsRowsOf(t, key)).map((key) => ({ c, t, key }));
    });
    if (choices.length === 0) return null;
    const wide = choices.filter((x) => x.key.length > 1);
    const { c, t, key } = this.rng.chance(0.8) && wide.length > 0 ? this.rng.pick(wide) : this.rng.pick(choices);
    const notNull = this.rng.chance(0.5);
    this.insertColumn(doc, c, notNull ? { nullable: false } : {});
    const before = [...t.dedupe!.key];
    const node = this.tableNode(doc, t.name);
    node.set('dedupe_key', doc.createNode(key, { flow: true }));
    const uniques = (node.toJSON() as { unique_constraints?: string[][] }).unique_constraints ?? [];
    const rest = uniques.filter((u) => !sameSet(u, before));
    node.set('unique_constraints', doc.createNode([key, ...rest].map((u) => doc.createNode(u, { flow: true }))));
    return { detail: `${t.name}.${c.name} ${c.sqlType}${notNull ? ' NOT NULL' : ''} ← ${c.field}, dedupe_key [${before.join(', ')}] → [${key.join(', ')}]`, allow: [] };
  }

  /** A column no strategy or key needs, that no other table references. */
  private pickColumn(doc: Document, accept: (type: string, node: YAMLMap) => boolean): { table: string; node: YAMLMap; name: string; type: string } | null {
    const choices: { table: string; node: YAMLMap; name: string; type: string }[] = [];
    for (const t of this.model.tables.values()) {
      const needed = structural(t);
      for (const node of this.columnNodes(doc, t.name)) {
        const name = String(node.get('name'));
        const type = String(node.get('sql_type'));
        if (!needed.has(name) && accept(type, node)) choices.push({ table: t.name, node, name, type });
      }
    }
    return choices.length === 0 ? null : this.rng.pick(choices);
  }

  private dropColumn(doc: Document): { detail: string; allow: string[] } | null {
    const c = this.pickColumn(doc, () => true);
    if (!c) return null;
    const table = this.tableNode(doc, c.table);
    const list = table.get(columnsKey(table)) as YAMLSeq;
    list.items.splice(list.items.indexOf(c.node), 1);
    const mappings = table.get(mappingsKey(table));
    if (isMap(mappings)) {
      for (const pair of [...mappings.items]) if (String((pair.value as { value?: unknown })?.value ?? pair.value) === c.name) mappings.delete(pair.key);
      if (mappings.items.length === 0) table.delete(mappingsKey(table));
    }
    return { detail: `${c.table}.${c.name} ${c.type}`, allow: [`drop-column:${c.table}.${c.name}`] };
  }

  private changeType(doc: Document, how: 'widen' | 'narrow'): { detail: string; allow: string[] } | null {
    const widen = (type: string): string[] => {
      const m = /^VARCHAR\((\d+)\)$/.exec(type);
      if (m) return [`VARCHAR(${Number(m[1]) * 2})`, 'VARCHAR', 'TEXT'];
      if (type === 'SMALLINT') return ['INTEGER', 'BIGINT'];
      if (type === 'INTEGER') return ['BIGINT'];
      return [];
    };
    const narrow = (type: string): string[] => {
      const m = /^VARCHAR\((\d+)\)$/.exec(type);
      if (m && Number(m[1]) > 12) return ['VARCHAR(12)', 'VARCHAR(24)'];
      if (type === 'VARCHAR' || type === 'TEXT') return ['VARCHAR(24)', 'VARCHAR(40)'];
      if (type === 'INTEGER' || type === 'BIGINT') return ['SMALLINT'];
      return [];
    };
    // Another type than the column's (a narrowing of VARCHAR(24) may draw VARCHAR(24) itself).
    const to = (type: string): string[] => (how === 'widen' ? widen : narrow)(type).filter((t) => t !== type);
    const c = this.pickColumn(doc, (type) => to(type).length > 0);
    if (!c) return null;
    const type = this.rng.pick(to(c.type));
    c.node.set('sql_type', type);
    return { detail: `${c.table}.${c.name} ${c.type} → ${type}`, allow: how === 'narrow' ? [`type:${c.table}.${c.name}`] : [] };
  }

  /** NOT NULL set (refused without `not-null:` when rows hold NULL) or dropped. */
  private nullability(doc: Document): { detail: string; allow: string[] } | null {
    const c = this.pickColumn(doc, () => true);
    if (!c) return null;
    const notNull = c.node.get('nullable') === false;
    // set_null is for nullable columns only (pipeline.yaml's header).
    if (!notNull && c.node.get('on_missing') === 'set_null') return null;
    if (notNull) c.node.delete('nullable');
    else c.node.set('nullable', false);
    return { detail: `${c.table}.${c.name} ${notNull ? 'NOT NULL → nullable' : 'nullable → NOT NULL'}`, allow: notNull ? [] : [`not-null:${c.table}.${c.name}`] };
  }

  /** A foreign key's on_missing: reject ↔ set_null (set_null only on a nullable column). */
  private onMissing(doc: Document): { detail: string; allow: string[] } | null {
    const c = this.pickColumn(doc, (_type, node) => node.has('foreign_key'));
    if (!c) return null;
    const before = String(c.node.get('on_missing') ?? 'reject');
    const after = before === 'set_null' ? 'reject' : 'set_null';
    if (after === 'set_null' && c.node.get('nullable') === false) return null;
    c.node.set('on_missing', after);
    return { detail: `${c.table}.${c.name} on_missing: ${before} → ${after}`, allow: [] };
  }

  private filter(doc: Document): { detail: string; allow: string[] } | null {
    const tables = Object.keys(FILTERS).filter((t) => this.model.tables.has(t));
    if (tables.length === 0) return null;
    const name = this.rng.pick(tables);
    const table = this.tableNode(doc, name);
    const now = table.has('filter') ? JSON.stringify(table.toJSON().filter) : 'null';
    const others = FILTERS[name]!.filter((f) => JSON.stringify(f) !== now);
    const next = this.rng.pick(others);
    if (next === null) table.delete('filter');
    else table.set('filter', doc.createNode(next, { flow: true }));
    return { detail: `${name}: ${now} → ${JSON.stringify(next)}`, allow: [] };
  }

  private explodeTables(): TableModel[] {
    return [...this.model.tables.values()].filter((t) => t.explode !== null);
  }

  private explodeConstant(doc: Document): { detail: string; allow: string[] } | null {
    const choices = this.explodeTables().flatMap((t) => t.explode!.arrays.map((a, i) => ({ t, a, i }))).filter(({ a }) => Object.keys(a.constants ?? {}).length > 0);
    if (choices.length === 0) return null;
    const { t, i } = this.rng.pick(choices);
    const constants = doc.getIn(['tables', t.name, 'arrays', i, 'constants']) as YAMLMap;
    const column = String((constants.items[0]!.key as { value?: unknown })?.value ?? constants.items[0]!.key);
    const before = String(constants.get(column));
    const after = this.rng.pick(CONSTANTS.filter((c) => c !== before));
    constants.set(column, after);
    return { detail: `${t.name} arrays[${i}] ${column}: ${before} → ${after}`, allow: [] };
  }

  private explodeMerge(doc: Document): { detail: string; allow: string[] } | null {
    const tables = this.explodeTables();
    if (tables.length === 0) return null;
    const t = this.rng.pick(tables);
    const node = this.tableNode(doc, t.name);
    const before = String(node.get('merge') ?? 'delete_and_insert');
    const after = before === 'upsert' ? 'delete_and_insert' : 'upsert';
    node.set('merge', after);
    return { detail: `${t.name} merge: ${before} → ${after}`, allow: [] };
  }

  private latestBy(doc: Document): { detail: string; allow: string[] } | null {
    const tables = [...this.model.tables.values()].filter((t) => t.dedupe !== null);
    if (tables.length === 0) return null;
    const t = this.rng.pick(tables);
    const after = t.dedupe!.latestBy === 'updated_at' ? 'created_at' : 'updated_at';
    this.tableNode(doc, t.name).set('latest_by', after);
    return { detail: `${t.name} latest_by: ${t.dedupe!.latestBy} → ${after}`, allow: [] };
  }

  /** A dedupe table's key (and the unique constraint it merges on) gains or loses created_at. */
  private dedupeKey(doc: Document): { detail: string; allow: string[] } | null {
    const newKey = (t: TableModel): string[] => (t.dedupe!.key.includes('created_at') ? t.dedupe!.key.filter((c) => c !== 'created_at') : [...t.dedupe!.key, 'created_at']);
    // A primary key narrower than the new key would refuse the rows it makes (see primaryKey).
    const tables = [...this.model.tables.values()].filter((t) => t.dedupe !== null && t.columns.some((c) => c.name === 'created_at') && holdsRowsOf(t, newKey(t)));
    if (tables.length === 0) return null;
    const t = this.rng.pick(tables);
    const before = [...t.dedupe!.key];
    const after = newKey(t);
    const node = this.tableNode(doc, t.name);
    node.set('dedupe_key', doc.createNode(after, { flow: true }));
    const uniques = (node.toJSON() as { unique_constraints?: string[][] }).unique_constraints ?? [];
    const rest = uniques.filter((u) => !(u.length === before.length && u.every((c) => before.includes(c))));
    node.set('unique_constraints', doc.createNode([after, ...rest].map((u) => doc.createNode(u, { flow: true }))));
    return { detail: `${t.name} dedupe_key: [${before.join(', ')}] → [${after.join(', ')}]`, allow: [] };
  }

  /**
   * A table gets another primary key (moved, widened, narrowed, dropped), only one its rows always
   * satisfy: the merge key (one row per merge key), the merge key and one more NOT NULL column, or a
   * SERIAL; none while the merge key is a unique constraint; for a table of one row per document, its
   * `_id` column alone or with any one other column. A column a key takes becomes NOT NULL (a primary
   * key is never NULL): one that may hold NULLs today needs --allow not-null:<table>.<column> too (its
   * NULL rows go; a full run rejects them). A table with include_base (whose `id` is the key, and which
   * takes no primary_key of its own) is first spelled out without it: the same columns, mappings and
   * key, which changes nothing by itself. A table another references keeps its key. Replacing or
   * dropping a key needs --allow primary-key:<table>.
   */
  private primaryKey(doc: Document): { detail: string; allow: string[] } | null {
    const referenced = referencedTables(this.model);
    const choices: { t: TableModel; key: string[] }[] = [];
    for (const t of this.model.tables.values()) {
      if (referenced.has(t.name)) continue;
      for (const key of this.keyCandidates(doc, t)) if (!sameSet(key, t.primaryKey)) choices.push({ t, key });
    }
    if (choices.length === 0) return null;
    const { t, key } = this.rng.pick(choices);
    const based = this.tableNode(doc, t.name).get('include_base') === true;
    if (based) spellOutBase(doc, this.tableNode(doc, t.name));
    const nowNullable: string[] = [];
    for (const node of this.columnNodes(doc, t.name)) {
      const name = String(node.get('name'));
      if (!key.includes(name)) node.delete('primary_key');
      else {
        if (!t.primaryKey.includes(name) && t.columns.find((c) => c.name === name)?.nullable === true) nowNullable.push(name);
        node.set('primary_key', true);
      }
    }
    const allow = [...(t.primaryKey.length > 0 ? [`primary-key:${t.name}`] : []), ...nowNullable.map((c) => `not-null:${t.name}.${c}`)];
    return { detail: `${t.name}${based ? ' (include_base spelled out)' : ''}: (${t.primaryKey.join(', ')}) → (${key.join(', ')})`, allow };
  }

  /** The primary keys a table's rows always satisfy (see primaryKey). */
  private keyCandidates(doc: Document, t: TableModel): string[][] {
    const based = this.tableNode(doc, t.name).get('include_base') === true;
    const nodes = new Map(this.columnNodes(doc, t.name).map((n) => [String(n.get('name')), n]));
    const serial = (name: string): boolean => t.columns.some((c) => c.name === name && c.sqlType.kind === 'serial');
    // Declared NOT NULL (include_base's columns are): it stays NOT NULL when the key moves away from it.
    const notNull = (name: string): boolean => (based && BASE_COLUMNS.some((b) => b.name === name)) || nodes.get(name)?.get('nullable') === false || serial(name);
    const out: string[][] = [];
    if (t.uniqueConstraints.some((u) => sameSet(u, t.mergeKey))) out.push([]);
    if (t.mergeKey.length > 0 && t.mergeKey.every(notNull)) {
      out.push([...t.mergeKey]);
      for (const c of t.columns) if (!t.mergeKey.includes(c.name) && !serial(c.name) && notNull(c.name)) out.push([...t.mergeKey, c.name]);
    }
    for (const c of t.columns) if (serial(c.name)) out.push([c.name]);
    const documentId = t.strategy === 'upsert' ? t.columns.find((c) => c.source.kind === 'field' && c.source.path === '_id') : undefined;
    if (documentId) {
      out.push([documentId.name]);
      // Any other column, NULLs or not; not one whose missing reference is set NULL (a key is never NULL).
      for (const c of t.columns) if (c !== documentId && !serial(c.name) && c.foreignKey?.onMissing !== 'set_null') out.push([documentId.name, c.name]);
    }
    return out;
  }

  /** A table's own date_threshold (it overrides the global one) set, moved or removed; not on a table added this round (see addTable). */
  private tableDateThreshold(doc: Document): { detail: string; allow: string[] } | null {
    const tables = [...this.model.tables.keys()].filter((n) => !this.added.has(n));
    if (tables.length === 0) return null;
    const name = this.rng.pick(tables);
    const node = this.tableNode(doc, name);
    const before = (node.toJSON() as { date_threshold?: unknown }).date_threshold;
    const beforeText = before instanceof Date ? before.toISOString().slice(0, 10) : before === undefined || before === null ? null : String(before);
    const after = this.rng.pick(THRESHOLDS.filter((v) => v !== beforeText));
    if (after === null) node.delete('date_threshold');
    else node.set('date_threshold', after);
    return { detail: `${name}.date_threshold: ${beforeText} → ${after}`, allow: [] };
  }

  /** GLOBAL_DATE_THRESHOLD set, changed or unset for the commands from this round on (pipeline.yaml unchanged). */
  private globalDateThreshold(): Made {
    const after = this.rng.pick(THRESHOLDS.filter((v) => v !== this.globalThreshold));
    return { detail: `GLOBAL_DATE_THRESHOLD: ${this.globalThreshold} → ${after}`, allow: [], globalThreshold: after };
  }

  private setting(doc: Document, key: string, values: readonly (string | null)[]): { detail: string; allow: string[] } | null {
    const before = (doc.getIn(['settings', key]) ?? null) as string | null;
    const after = this.rng.pick(values.filter((v) => v !== before));
    doc.setIn(['settings', key], after);
    return { detail: `settings.${key}: ${before} → ${after}`, allow: [] };
  }

  /**
   * Only while no date_threshold is in force: a table's first run reads from the threshold alone
   * (README, incremental runs: "never read documents created and updated before this date"), so it
   * would rightly hold fewer rows than the `--full` reference. Every other table was loaded in full
   * before any threshold was set, and a threshold only ever widens their reads.
   */
  private addTable(doc: Document): { detail: string; allow: string[] } | null {
    if (this.globalThresholdInForce()) return null;
    const fits = Object.keys(NEW_TABLES).filter((n) => !this.model.tables.has(n));
    if (fits.length === 0) return null;
    const name = this.rng.pick(fits);
    (doc.get('tables') as YAMLMap).set(name, doc.createNode(NEW_TABLES[name]));
    return { detail: name, allow: [] };
  }

  /** A table no other table references. */
  private removeTable(doc: Document): { detail: string; allow: string[] } | null {
    const referenced = referencedTables(this.model);
    const leaves = [...this.model.tables.keys()].filter((n) => !referenced.has(n));
    if (leaves.length <= 1) return null;
    const name = this.rng.pick(leaves);
    (doc.get('tables') as YAMLMap).delete(name);
    return { detail: name, allow: [] };
  }
}
